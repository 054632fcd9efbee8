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
	iptables                # netfilter_bpf: a pinned program as an iptables rule
	util-linux              # setpriv, for the no-privileges tests
	procps kmod             # sysctl in the chapters; modprobe (load_balancer)
	socat                   # the load_balancer demo's backends and client
	ethtool                 # veth GRO on, for the XDP flood benchmark
	libssl-dev              # mdbook-linkcheck's build (it links OpenSSL)
	chromium                # the book's check in a real browser
	patch                   # make solutions applies each solution to a copy
	tcpdump                 # the socket_filter chapter compares with its classic BPF
	xdp-tools               # xdp-filter, the firewall benchmark's peer
)

# The book's tools, pinned: mdbook-linkcheck 0.7.7 is built against mdbook
# 0.4 (it does not build against 0.5), and mdbook 0.4.52 is the last 0.4.
BOOK_TOOLS=(
	mdbook@0.4.52
	mdbook-linkcheck@0.7.7
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

# `cargo install --locked` builds each book tool once (a few minutes) into
# cargo's bin directory; a tool already there at that version is kept.
if command -v cargo >/dev/null; then
	for tool in "${BOOK_TOOLS[@]}"; do
		name=${tool%@*} version=${tool#*@}
		if ! "$name" --version 2>/dev/null | grep -qF "$version"; then
			echo "building $name $version (once; a few minutes)"
			cargo install --quiet --locked "$name" --version "$version"
		fi
	done
else
	echo "cargo not found: install the Rust toolchain, then run make setup again (the book needs mdbook)"
	exit 1
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

# Last, what this machine can run (builds the project the first time). A
# lesson that cannot run is reported, not a setup failure: the doctor's
# lines say what to do. SETUP_SKIP_DOCTOR=1 skips it.
if [ "${SETUP_SKIP_DOCTOR:-0}" != 1 ]; then
	echo "running the doctor (make doctor):"
	(cd "$(dirname "$0")/.." && cargo run --quiet --bin doctor) ||
		echo "the doctor found something to fix: see its FAIL lines above"
fi
