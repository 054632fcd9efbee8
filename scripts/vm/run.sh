#!/usr/bin/env bash
# Runs a command inside a VM booted with one of Debian's kernels, against
# this machine's files: `scripts/vm/run.sh 6.12 -- target/debug/fentry -f
# do_unlinkat 1 1`. The kernel package is downloaded with apt and unpacked
# into a cache (never installed); the VM shares the host's root read-only
# over 9p, with /tmp writable (tmpfs), and bpffs, tracefs, securityfs and
# cgroup2 mounted. Prints the command's output, and exits with its status.
#
# Needs root (apt, mounts in the cache), and qemu-system-x86, busybox-static
# and kmod, which it installs when they are missing. Software emulation
# (TCG) unless the CPU has hardware virtualisation: a paravirtual KVM is too
# slow for a stock kernel. LEBPF_VM_TIMEOUT bounds a run (seconds, default
# 300); LEBPF_VM_CACHE is the download cache.
set -euo pipefail
usage() {
	echo "usage: scripts/vm/run.sh SERIES -- COMMAND [ARGS...]   (SERIES: 6.1 or 6.12)" >&2
	exit 2
}
[ $# -ge 3 ] && [ "$2" = "--" ] || usage
series=$1
shift 2
[ "$(id -u)" -eq 0 ] || { echo "scripts/vm/run.sh needs root (apt, mounts)" >&2; exit 1; }
cache=${LEBPF_VM_CACHE:-/var/cache/learning-ebpf-rs/vm}
timeout_s=${LEBPF_VM_TIMEOUT:-300}
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$cache"
work="" job=""
cleanup() {
	[ -n "$work" ] && rm -rf "$work"
	[ -n "$job" ] && rm -f "$job"
	[ -n "$job" ] && [ -z "${LEBPF_VM_KEEP_LOG:-}" ] && rm -f "$job.log"
	return 0
}
trap cleanup EXIT

# --- tools: qemu (bookworm's own 7.2 conflicts with newer qemu-utils; the
# backports one installs), busybox for the initramfs, kmod for depmod.
need=()
command -v qemu-system-x86_64 >/dev/null || need+=(qemu-system-x86)
[ -x /bin/busybox ] && busybox --list 2>/dev/null | grep -qx cpio || need+=(busybox-static)
command -v depmod >/dev/null || need+=(kmod)
if [ ${#need[@]} -gt 0 ]; then
	codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-bookworm}")
	if [[ " ${need[*]} " == *" qemu-system-x86 "* ]] &&
		! grep -rqs "${codename}-backports" /etc/apt/sources.list /etc/apt/sources.list.d/; then
		mirror=$(grep -hE '^URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null | head -n 1 | awk '{print $2}')
		[ -n "$mirror" ] || mirror=$(grep -hE '^deb ' /etc/apt/sources.list 2>/dev/null | head -n 1 | awk '{print $2}')
		echo "deb $mirror ${codename}-backports main" >/etc/apt/sources.list.d/learning-ebpf-rs-backports.list
	fi
	apt-get update -qq
	for pkg in "${need[@]}"; do
		if [ "$pkg" = qemu-system-x86 ]; then
			DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
				-t "${codename}-backports" qemu-system-x86 >/dev/null
		else
			DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$pkg" >/dev/null
		fi
	done
fi

# --- the kernel: the newest Debian package of that series. Its name (the
# ABI number) changes with every security update, so it is looked up here.
# The generic flavour: -cloud-amd64 has no 9p, -rt-amd64 is another kernel.
find_pkg() {
	apt-cache search --names-only "^linux-image-${series}[.][0-9].*-amd64-unsigned\$" 2>/dev/null |
		awk '{print $1}' | grep -vE -- '-(rt|cloud)-amd64-unsigned$' | sort -V | tail -n 1
}
pkg=$(find_pkg)
if [ -z "$pkg" ]; then
	apt-get update -qq
	pkg=$(find_pkg)
fi
[ -n "$pkg" ] || { echo "no Debian kernel package linux-image-${series}.*-amd64-unsigned in the apt sources" >&2; exit 1; }
kdir="$cache/$pkg"
if [ ! -d "$kdir/boot" ]; then
	rm -rf "$kdir.tmp" && mkdir -p "$kdir.tmp"
	(cd "$kdir.tmp" && apt-get download -qq "$pkg" >/dev/null)
	dpkg-deb -x "$kdir.tmp"/*.deb "$kdir.tmp/root"
	kver=$(ls "$kdir.tmp/root/lib/modules")
	depmod -b "$kdir.tmp/root" "$kver"
	mv "$kdir.tmp/root" "$kdir"
	rm -rf "$kdir.tmp"
fi
kver=$(ls "$kdir/lib/modules")

# --- the initramfs: busybox, the modules that 9p over virtio needs (with
# their dependencies, in load order), and an init that mounts the host.
initrd="$cache/$pkg.initrd"
if [ ! -f "$initrd" ] || [ "$here/init.sh" -nt "$initrd" ]; then
	work=$(mktemp -d)
	mkdir -p "$work"/{bin,mods,proc,sys,dev,host}
	cp /bin/busybox "$work/bin/busybox"
	ln -s busybox "$work/bin/sh"
	: >"$work/modules"
	for m in virtio_pci 9pnet_virtio 9p; do
		modprobe -d "$kdir" -S "$kver" --show-depends "$m" | awk '$1 == "insmod" {print $2}'
	done | awk '!seen[$0]++' | while read -r ko; do
		name=$(basename "$ko")
		case "$name" in
		*.xz) xz -dc "$ko" >"$work/mods/${name%.xz}" && name=${name%.xz} ;;
		*.zst) zstd -qdc "$ko" >"$work/mods/${name%.zst}" && name=${name%.zst} ;;
		*) cp "$ko" "$work/mods/$name" ;;
		esac
		echo "$name" >>"$work/modules"
	done
	cp "$here/init.sh" "$work/init"
	chmod +x "$work/init"
	(cd "$work" && find . | busybox cpio -o -H newc 2>/dev/null | gzip -1) >"$initrd.tmp"
	mv "$initrd.tmp" "$initrd"
fi

# --- run: the command, and the directory to run it in, go to the guest as
# a script in /tmp, which it reads over 9p; the kernel command line names it.
job=$(mktemp /tmp/lebpf-vm-job.XXXXXX)
{
	printf 'cd %q\n' "$PWD"
	printf 'export CI=%q HOME=/root PATH=%q\n' "${CI:-}" "$PATH"
	printf '%q ' "$@"
	echo
} >"$job"
accel=tcg
grep -qE 'vmx|svm' /proc/cpuinfo && [ -w /dev/kvm ] && accel=kvm
cpu=max
[ $accel = kvm ] && cpu=host
log="$job.log"
# The guest's console: only what the command printed is passed on.
timeout "$timeout_s" qemu-system-x86_64 -M q35,accel=$accel -cpu $cpu -smp 2 -m 1024 \
	-nodefaults -nographic -no-reboot -serial stdio -display none \
	-kernel "$kdir/boot/vmlinuz-$kver" -initrd "$initrd" \
	-append "console=ttyS0 panic=-1 quiet lebpf_job=$job lebpf_kroot=$kdir" \
	-virtfs local,path=/,mount_tag=hostroot,security_model=none,readonly=on \
	</dev/null | tr -d '\r' | tee "$log" |
	sed -n '/LEBPF-VM-START$/,/^LEBPF-VM-EXIT=/{/LEBPF-VM-/d;p}' || true
status=$(grep -a '^LEBPF-VM-EXIT=' "$log" | tail -n 1 | cut -d= -f2)
if [ -z "$status" ]; then
	echo "the VM ($pkg) ended without the command's status (timeout ${timeout_s}s, or a boot failure)" >&2
	exit 1
fi
exit "$status"
