#!/usr/bin/env bash
# `make solutions`: proves the exercises' solutions still work. Each
# solutions/<lesson>/<n>.patch is a change to the lesson (C, Rust and the
# tests that show the exercise done). It is applied to a copy of this
# checkout, which is built and whose lesson tests run against the kernel;
# a solution that no longer applies, builds or passes fails here. A patch
# whose header has a line `Kernel: SERIES` runs its tests in a VM with that
# Debian kernel (scripts/vm/run.sh), for lessons this host's kernel refuses.
#
# scripts/solutions.sh [LESSON/N ...]   (default: every solution)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
# One target directory for all copies: the dependencies build once.
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$root/target/solutions}

# The copies live under target/: a VM sees this machine's files (read-only),
# and the tests read the chapters of their own copy.
mkdir -p "$root/target"
work=$(mktemp -d "$root/target/solutions-work.XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM

if [ $# -gt 0 ]; then
	patches=()
	for s in "$@"; do patches+=("solutions/$s.patch"); done
else
	patches=(solutions/*/*.patch)
fi

failed=()
for patch in "${patches[@]}"; do
	[ -f "$patch" ] || { echo "no such solution: $patch" >&2; exit 1; }
	name=${patch#solutions/}
	name=${name%.patch}
	lesson=${name%%/*}
	copy=$work/${name//\//-}
	mkdir -p "$copy"
	tar --exclude=./target --exclude=./build --exclude=./.git -cf - . | tar -xf - -C "$copy"
	bin=""
	kernel=$(sed -n 's/^Kernel: \([0-9.]*\).*/\1/p;/^diff /q' "$patch")
	start=$(date +%s)
	log=$copy.log
	if ! patch -d "$copy" -p1 --quiet --forward <"$patch" >"$log" 2>&1; then
		echo "FAIL $name: the patch no longer applies to the lesson:" >&2
		cat "$log" >&2
		failed+=("$name")
		continue
	fi
	if [ -n "$kernel" ]; then
		# Build the lesson's tests, then run that binary in the VM.
		bin=$( (cd "$copy" && cargo test --no-run --test "$lesson" --message-format=json 2>>"$log") |
			sed -n 's/.*"executable":"\([^"]*\)".*/\1/p' | grep "/deps/$lesson-" | tail -n1)
		run=(env CI=true scripts/vm/run.sh "$kernel" -- "$bin" --test-threads=1)
	else
		run=(cargo test --no-fail-fast --test "$lesson")
	fi
	if [ -n "$kernel" ] && [ -z "$bin" ]; then
		echo "FAIL $name: its tests did not build:" >&2
		grep -E '^error' -A5 "$log" | head -n 40 >&2
		failed+=("$name")
	elif (cd "$copy" && "${run[@]}") >>"$log" 2>&1; then
		where=""
		[ -z "$kernel" ] || where=" in a VM with Debian's $kernel kernel"
		echo "PASS $name$where ($(($(date +%s) - start)) s): $(grep -h 'test result' "$log" | tail -n1 | sed 's/\x1b\[[0-9;]*m//g')"
	else
		echo "FAIL $name: the tests of $lesson failed in the patched copy${kernel:+ (VM $kernel)}:" >&2
		grep -E '^(error|test .*FAILED|failures:|---- )|panicked' "$log" | head -n 40 >&2
		failed+=("$name")
	fi
done

if [ ${#failed[@]} -gt 0 ]; then
	echo "solutions that fail: ${failed[*]}" >&2
	exit 1
fi
echo "all ${#patches[@]} solutions apply, build and pass"
