#!/usr/bin/env bash
# `make solutions`: proves the exercises' solutions still work. Each
# solutions/<lesson>/<n>.patch is a change to the lesson (C, Rust and the
# tests that show the exercise done). It is applied to a copy of this
# checkout, which is built and whose lesson tests run against the kernel;
# a solution that no longer applies, builds or passes fails here. A patch
# whose header has a line `Kernel: SERIES` runs its tests in a VM with that
# Debian kernel (scripts/vm/run.sh), for lessons this host's kernel refuses.
#
# Building a copy is most of the time, so solutions share copies where that
# cannot change what a test sees: a patch that touches only its own
# lesson's files (bpf/<lesson>*, src/bin/<lesson>*, tests/<lesson>*, its
# chapter docs/NN-<lesson>.md) joins a
# copy with one solution of each other lesson (the first solutions in one
# copy, the second ones in the next, ...). A patch that touches shared code
# gets a copy of its own. When a shared copy does not build, each of its
# solutions is retried alone, so that a failure names the one to blame.
#
# scripts/solutions.sh [LESSON/N ...]   (default: every solution)
# scripts/solutions.sh --apply-only     (seconds: does each still apply?)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

if [ "${1:-}" = --apply-only ]; then
	stale=0
	for patch in solutions/*/*.patch; do
		if ! patch -p1 --dry-run --forward --silent -f <"$patch" >/dev/null 2>&1; then
			echo "$patch no longer applies to the lesson: apply it by hand (patch -p1 --forward), fix the rejects, and write the diff back" >&2
			stale=1
		fi
	done
	exit $stale
fi
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
for patch in "${patches[@]}"; do
	[ -f "$patch" ] || { echo "no such solution: $patch" >&2; exit 1; }
done

lesson_of() { local n=${1#solutions/}; echo "${n%%/*}"; }
name_of() { local n=${1#solutions/}; echo "${n%.patch}"; }
kernel_of() { sed -n 's/^Kernel: \([0-9.]*\).*/\1/p;/^diff /q' "$1"; }
# True when every file the patch changes belongs to its lesson.
own_files_only() {
	local lesson
	lesson=$(lesson_of "$1")
	! grep '^+++ ' "$1" | awk '{print $2}' | sed 's|^b/||' |
		grep -qvE "^((bpf|src/bin|tests)/${lesson}([._/]|$)|docs/[0-9]+-${lesson}\.md$)"
}

# --- groups: one line each, the patches that share a copy.
groups=()
declare -A round_of=()
rounds=()
for patch in "${patches[@]}"; do
	if own_files_only "$patch"; then
		lesson=$(lesson_of "$patch")
		r=${round_of[$lesson]:-0}
		round_of[$lesson]=$((r + 1))
		rounds[r]="${rounds[r]:-} $patch"
	else
		groups+=("$patch")
	fi
done
groups=("${rounds[@]}" "${groups[@]}")

failed=()
passed=0
n_copy=0

# run_group PATCH... : one copy with all of them applied, built once, then
# each solution's lesson tests. Prints PASS/FAIL per solution.
run_group() {
	local copy log patch lesson kernel bin start where name
	n_copy=$((n_copy + 1))
	copy=$work/copy-$n_copy
	log=$copy.log
	mkdir -p "$copy"
	tar --exclude=./target --exclude=./build --exclude=./.git -cf - . | tar -xf - -C "$copy"
	# The copies share a target directory, and cargo decides what to rebuild
	# by the sources' times, which tar keeps: without this, a crate whose
	# sources did not change would be reused with the paths of an earlier
	# copy compiled in (CARGO_MANIFEST_DIR), and its tests would read that
	# copy's chapters.
	find "$copy" -name '*.rs' -exec touch {} +
	local applied=() tests=()
	for patch in "$@"; do
		name=$(name_of "$patch")
		if ! patch -d "$copy" -p1 --quiet --forward <"$patch" >"$log.$n_copy.patch" 2>&1; then
			echo "FAIL $name: the patch no longer applies to the lesson:" >&2
			cat "$log.$n_copy.patch" >&2
			failed+=("$name")
			continue
		fi
		applied+=("$patch")
		tests+=(--test "$(lesson_of "$patch")")
	done
	[ ${#applied[@]} -gt 0 ] || return 0
	start=$(date +%s)
	if ! (cd "$copy" && cargo test --no-run "${tests[@]}" --message-format=json 2>>"$log") >"$copy.json"; then
		if [ ${#applied[@]} -gt 1 ]; then
			echo "(a copy with ${#applied[@]} solutions did not build; trying each alone)"
			for patch in "${applied[@]}"; do run_group "$patch"; done
		else
			echo "FAIL $(name_of "${applied[0]}"): it does not build:" >&2
			grep -E '^error' -A5 "$log" | head -n 40 >&2
			failed+=("$(name_of "${applied[0]}")")
		fi
		return 0
	fi
	echo "built a copy with ${#applied[@]} solution(s) in $(($(date +%s) - start)) s"
	for patch in "${applied[@]}"; do
		name=$(name_of "$patch")
		lesson=$(lesson_of "$patch")
		kernel=$(kernel_of "$patch")
		start=$(date +%s)
		local tlog=$copy.$lesson.log
		if [ -n "$kernel" ]; then
			bin=$(sed -n 's/.*"executable":"\([^"]*\)".*/\1/p' "$copy.json" | grep "/deps/$lesson-" | tail -n1)
			run=(env CI=true scripts/vm/run.sh "$kernel" -- "$bin" --test-threads=1)
		else
			run=(cargo test --no-fail-fast --test "$lesson")
		fi
		if (cd "$copy" && "${run[@]}") >"$tlog" 2>&1; then
			where=""
			[ -z "$kernel" ] || where=" in a VM with Debian's $kernel kernel"
			echo "PASS $name$where ($(($(date +%s) - start)) s): $(grep -h 'test result' "$tlog" | tail -n1 | sed 's/\x1b\[[0-9;]*m//g')"
			passed=$((passed + 1))
		else
			echo "FAIL $name: the tests of $lesson failed in the patched copy${kernel:+ (VM $kernel)}:" >&2
			grep -E '^(error|test .*FAILED|failures:|---- )|panicked' "$tlog" | head -n 40 >&2
			failed+=("$name")
		fi
	done
}

for group in "${groups[@]}"; do
	# shellcheck disable=SC2086 # a group is a list of paths without spaces
	run_group $group
done

if [ ${#failed[@]} -gt 0 ]; then
	echo "solutions that fail: ${failed[*]}" >&2
	exit 1
fi
echo "all $passed solutions apply, build and pass ($n_copy copies built)"
