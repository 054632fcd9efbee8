#!/usr/bin/env bash
# One line per missing prerequisite, naming the make target that fixes it;
# every one is named, then the exit status is 1 if any was missing.
arch=$(uname -m)
clang=${BPF_CLANG:-clang}
missing=0
need() { # message: print it and remember the failure
	echo "$1"
	missing=1
}
command -v cargo >/dev/null || need "cargo not found: install the Rust toolchain (rustup), then run \`make setup\`"
command -v "$clang" >/dev/null || need "$clang not found: run \`make setup\` (or set BPF_CLANG)"
command -v rustfmt >/dev/null || need "rustfmt not found: run \`make setup\`"
command -v pkg-config >/dev/null || need "pkg-config not found: run \`make setup\`"
pkg-config --exists libelf 2>/dev/null || need "libelf not found (libelf-dev, pkg-config): run \`make setup\`"
pkg-config --exists zlib 2>/dev/null || need "zlib not found (zlib1g-dev): run \`make setup\`"
[ -f "headers/$arch/vmlinux.h" ] || need "headers/$arch/vmlinux.h is missing: run \`make vmlinux\` (on a machine of that architecture whose kernel has BTF)"
exit $missing
