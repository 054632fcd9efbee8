#!/usr/bin/env bash
# Prepares a Debian machine for learning-ebpf-rs: the packages the build and
# the tests need, the Rust components, and the BPF-related filesystems that a
# fresh machine may not have mounted. Safe to run again: it only does what is
# missing.
set -euo pipefail

PACKAGES=(
	clang llvm clang-format # compile BPF C; check its format
	bpftool                 # make vmlinux; inspect programs and maps
	libbpf-dev              # libbpf's headers for `make raw`
	libelf-dev zlib1g-dev pkg-config make # libbpf-sys builds libbpf from source
	iproute2 iputils-ping   # ip, tc, ping for the network tests
	nftables conntrack      # baselines and conntrack lessons
	util-linux              # setpriv, for the no-privileges tests
	procps kmod             # sysctl in the chapters; modprobe (load_balancer)
	socat                   # the load_balancer demo's backends and client
	ethtool                 # veth GRO on, for the XDP flood benchmark
)

if [ "$(id -u)" -ne 0 ]; then
	echo "make setup needs root: it installs packages and mounts bpffs (try: sudo make setup)"
	exit 1
fi

missing=()
for pkg in "${PACKAGES[@]}"; do
	dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
	echo "installing: ${missing[*]}"
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# libbpf-cargo formats the generated skeletons with rustfmt; lint uses clippy.
if command -v rustup >/dev/null; then
	for comp in rustfmt clippy; do
		rustup component list --installed 2>/dev/null | grep -q "^$comp" || rustup component add "$comp"
	done
fi

# A fresh machine may lack these mounts: bpffs for pinning, tracefs for
# bpf_printk's trace_pipe and tracepoints, securityfs to see the active LSMs.
# SETUP_SKIP_MOUNTS=1 skips this (a `docker build` step may not mount).
mount_once() { # type dir
	mountpoint -q "$2" || mount -t "$1" "$1" "$2"
}
if [ "${SETUP_SKIP_MOUNTS:-0}" != 1 ]; then
	mount_once bpf /sys/fs/bpf
	mount_once tracefs /sys/kernel/tracing
	mount_once securityfs /sys/kernel/security
fi

echo "setup done: clang $(clang -dumpversion), $(bpftool version | head -n1), kernel $(uname -r)"
