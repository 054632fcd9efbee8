#!/usr/bin/env bash
# Build-time benchmark: a cold build, then the rebuild after touching one
# .bpf.c, against a rebuild of every BPF object (what a build.rs without
# dependency tracking does on any change), all in one run. Uses its own
# target directory so your normal build is left alone.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target/bench-build}
lesson=${1:-tc_classifier}

secs() { # command... -> wall seconds
	local t0 t1
	t0=$(date +%s.%N)
	"$@" >/dev/null 2>&1
	t1=$(date +%s.%N)
	awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }'
}
objs_mtimes() {
	stat -c '%n %Y.%y' "$CARGO_TARGET_DIR"/debug/build/learning-ebpf-rs-*/out/*.bpf.o | sort
}

rm -rf "$CARGO_TARGET_DIR"
cold=$(secs cargo build --bins)
before=$(objs_mtimes)
sleep 1
touch "bpf/$lesson.bpf.c"
one=$(secs cargo build --bins)
after=$(objs_mtimes)
rebuilt=$(diff <(echo "$before") <(echo "$after") | grep -c '^>' || true)
total=$(echo "$after" | wc -l)
# Baseline: a changed compiler command line makes every object stale.
all=$(secs env BPF_CFLAGS="-DBENCH_REBUILD_ALL=$RANDOM" cargo build --bins)

echo "cold build (dependencies included):       ${cold}s"
echo "touch bpf/$lesson.bpf.c, rebuild:    ${one}s  (BPF objects rebuilt: $rebuilt of $total)"
echo "every BPF object rebuilt (naive baseline): ${all}s"
echo "ratio touched-one / rebuild-all:           $(awk -v a="$one" -v b="$all" 'BEGIN { printf "%.2f", a / b }')"
