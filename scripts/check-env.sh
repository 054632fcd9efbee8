#!/usr/bin/env bash
# One line per missing prerequisite, naming the make target that fixes it.
arch=$(uname -m)
clang=${BPF_CLANG:-clang}
fail() {
	echo "$1"
	exit 1
}
command -v cargo >/dev/null || fail "cargo not found: install the Rust toolchain (rustup), then run \`make setup\`"
command -v "$clang" >/dev/null || fail "$clang not found: run \`make setup\` (or set BPF_CLANG)"
command -v rustfmt >/dev/null || fail "rustfmt not found: run \`make setup\`"
pkg-config --exists libelf 2>/dev/null || fail "libelf not found (libelf-dev, pkg-config): run \`make setup\`"
pkg-config --exists zlib 2>/dev/null || fail "zlib not found (zlib1g-dev): run \`make setup\`"
[ -f "headers/$arch/vmlinux.h" ] || fail "headers/$arch/vmlinux.h is missing: run \`make vmlinux\` (on a machine of that architecture whose kernel has BTF)"
exit 0
