#!/usr/bin/env bash
# `make solutions`: proves the exercises' solutions still work. Each
# solutions/<lesson>/<n>.patch is a change to the lesson (C, Rust and the
# tests that show the exercise done). It is applied to a copy of this
# checkout, which is built and whose lesson tests run against the kernel;
# a solution that no longer applies, builds or passes fails here.
#
# scripts/solutions.sh [LESSON/N ...]   (default: every solution)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
# One target directory for all copies: the dependencies build once.
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$root/target/solutions}

work=$(mktemp -d /tmp/lebpf-solutions.XXXXXX)
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
	start=$(date +%s)
	log=$copy.log
	if ! patch -d "$copy" -p1 --quiet --forward <"$patch" >"$log" 2>&1; then
		echo "FAIL $name: the patch no longer applies to the lesson:" >&2
		cat "$log" >&2
		failed+=("$name")
		continue
	fi
	if (cd "$copy" && cargo test --no-fail-fast --test "$lesson") >"$log" 2>&1; then
		echo "PASS $name ($(($(date +%s) - start)) s): $(grep -h '^test result' "$log" | tail -n1)"
	else
		echo "FAIL $name: cargo test --test $lesson failed in the patched copy:" >&2
		grep -E '^(error|test .*FAILED|failures:|---- )|panicked' "$log" | head -n 40 >&2
		failed+=("$name")
	fi
done

if [ ${#failed[@]} -gt 0 ]; then
	echo "solutions that fail: ${failed[*]}" >&2
	exit 1
fi
echo "all ${#patches[@]} solutions apply, build and pass"
