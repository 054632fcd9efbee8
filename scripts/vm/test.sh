#!/usr/bin/env bash
# `make vm-test KERNEL=6.1` (5.10, 6.1, 6.12 or newest): the test suite
# against one of Debian's kernels. Builds the test binaries here, boots the
# kernel once with scripts/vm/run.sh, asks the doctor there which lessons
# will run, runs every test binary with CI=true, prints each one's result,
# writes target/vm-results/<KERNEL>.txt (one line per test binary: name,
# status, passed, failed, and the tests reported NOT RUN) and
# <KERNEL>.doctor (the doctor's table), and exits non-zero if any test
# failed. scripts/tested-on.sh compares the two.
#
# The emulated CPUs are slow: xdp_firewall's property test runs 10 of its
# 40 scenarios (PROPTEST_CASES); the host runs them all.
# Two test binaries are left out: the book's (it checks the documentation
# with mdbook and a browser, not the kernel) and the demos' (each demo runs
# a lesson whose own tests run here); the host and the container run both.
set -euo pipefail
cd "$(dirname "$0")/../.."
kernel=${1:?usage: scripts/vm/test.sh KERNEL   (5.10, 6.1, 6.12 or newest)}
skip=" book demos "

# The VM sees this checkout read-only: what its tests build with make
# (the raw objects that iproute2 loads) is built here first.
make -s raw
bins=$(cargo test --no-run --tests --message-format=json 2>/dev/null |
	sed -n 's/.*"kind":\["test"\].*"executable":"\([^"]*\)".*/\1/p')
[ -n "$bins" ] || { echo "no test binaries built (run cargo test --no-run to see why)" >&2; exit 1; }

mkdir -p target/vm target/vm-results
job=target/vm/run-tests-$kernel.sh
{
	echo '#!/bin/bash'
	echo 'echo "LEBPF-KERNEL $(uname -r)"'
	# The doctor's prediction, before any test has changed anything.
	echo 'echo LEBPF-DOCTOR-BEGIN; target/debug/doctor 2>&1; echo LEBPF-DOCTOR-END'
	for bin in $bins; do
		name=$(basename "$bin")
		name=${name%-*}
		case "$skip" in *" $name "*) continue ;; esac
		printf 'echo "LEBPF-BEGIN %s"\n' "$name"
		printf 'CI=true PROPTEST_CASES=10 %q --test-threads=2 --show-output 2>&1; echo "LEBPF-END %s $?"\n' "$bin" "$name"
	done
} >"$job"

log=target/vm/$kernel.log
start=$(date +%s)
LEBPF_VM_TIMEOUT=${LEBPF_VM_TIMEOUT:-1500} scripts/vm/run.sh "$kernel" -- bash "$job" | tee "$log" |
	grep -E '^(LEBPF-|test |NOT RUN|REFUSED|SKIPPED)' | sed 's/\x1b\[[0-9;]*m//g' || true
secs=$(($(date +%s) - start))

# One line per binary: name, ok/FAILED, passed, failed, NOT RUN tests.
results=target/vm-results/$kernel.txt
awk -v secs="$secs" -f scripts/test-results.awk "$log" >"$results"
sed -n '/^LEBPF-DOCTOR-BEGIN/,/^LEBPF-DOCTOR-END/{/^LEBPF-DOCTOR-/d;p}' "$log" >"target/vm-results/$kernel.doctor"
echo
cat "$results"
if ! grep -q '^kernel ' "$results"; then
	echo "the VM did not run the tests (see $log)" >&2
	exit 1
fi
if grep -q ' FAILED ' "$results"; then
	echo "tests failed on Debian's $kernel kernel (log: $log)" >&2
	exit 1
fi
echo "all tests passed on Debian's $kernel kernel in ${secs} s"
