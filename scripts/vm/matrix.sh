#!/usr/bin/env bash
# `make vm-matrix`: the test suite on every kernel of the matrix, two VMs at
# a time (LEBPF_VM_JOBS): an emulated VM keeps about one of two host CPUs
# busy, its tests waiting on timers and the network much of the time.
# Each kernel's output goes to target/vm/<KERNEL>.out; the summary of each
# run is printed as it ends, and the script fails if any kernel failed.
#
# scripts/vm/matrix.sh [KERNEL ...]   (default: 5.10 6.1 6.12 newest)
set -euo pipefail
cd "$(dirname "$0")/../.."
kernels=("$@")
[ ${#kernels[@]} -gt 0 ] || kernels=(5.10 6.1 6.12 newest)
jobs=${LEBPF_VM_JOBS:-2}

# Build once, before any VM starts: the VMs read this checkout.
make -s raw
cargo test --no-run --tests -q 2>&1 | grep -E '^(error|warning)' && exit 1
mkdir -p target/vm

start=$(date +%s)
declare -A pid_of=() began=()
failed=()
report() { # kernel status
	local k=$1 rc=$2
	echo "== $k: $(tail -n 1 "target/vm/$k.out") ($(($(date +%s) - ${began[$k]})) s in all)"
	[ "$rc" -eq 0 ] || failed+=("$k")
}
wait_one() {
	local k rc
	while true; do
		for k in "${!pid_of[@]}"; do
			if ! kill -0 "${pid_of[$k]}" 2>/dev/null; then
				rc=0
				wait "${pid_of[$k]}" || rc=$?
				unset "pid_of[$k]"
				report "$k" "$rc"
				return
			fi
		done
		sleep 2
	done
}
for k in "${kernels[@]}"; do
	while [ ${#pid_of[@]} -ge "$jobs" ]; do wait_one; done
	echo "== $k: started"
	began[$k]=$(date +%s)
	scripts/vm/test.sh "$k" >"target/vm/$k.out" 2>&1 &
	pid_of[$k]=$!
done
while [ ${#pid_of[@]} -gt 0 ]; do wait_one; done
echo "the matrix (${kernels[*]}) took $(($(date +%s) - start)) s, $jobs VMs at a time"
if [ ${#failed[@]} -gt 0 ]; then
	for k in "${failed[@]}"; do
		echo "--- $k (target/vm/$k.out):" >&2
		grep -E ' FAILED |panicked|^error|VM .* ended' "target/vm/$k.out" | head -n 20 >&2 || true
	done
	echo "tests failed on: ${failed[*]}" >&2
	exit 1
fi
