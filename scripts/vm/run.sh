#!/usr/bin/env bash
# Runs a command inside a VM booted with one of Debian's kernels, against
# this machine's files: `scripts/vm/run.sh 6.12 -- target/debug/fentry -f
# do_unlinkat 1 1`. SERIES is 5.10 (Debian 11), 6.1 or 6.12 (Debian 12), or
# newest (or its series, such as 7.2): Debian unstable's current kernel.
# The kernel package is downloaded with apt and unpacked
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
	echo "usage: scripts/vm/run.sh SERIES -- COMMAND [ARGS...]   (SERIES: 5.10, 6.1, 6.12, 7.x or newest)" >&2
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

# --- the kernel: the newest Debian package of that series, from the Debian
# suite that carries it. Its name (the ABI number) changes with every
# security update, and unstable moves daily, so it is looked up here, in an
# apt index of that suite kept in the cache: the machine's own apt sources
# are left as they are, and no suite here ever becomes an upgrade source.
# The generic flavour: -cloud-amd64 has no 9p, -rt-amd64 is another kernel.
# Debian 11 builds BPF LSM in but leaves it out of the active LSMs: the
# VM boots with it added, as lesson 8's refusal tells a reader to do.
append=""
case "$series" in
5.10)
	suites="bullseye bullseye-security"
	append="lsm=lockdown,capability,yama,apparmor,tomoyo,bpf"
	;;
6.1 | 6.12) suites="bookworm bookworm-security" ;;
newest | 7.*) suites="sid" ;;
*) usage ;;
esac
aptdir="$cache/apt/${suites%% *}"
mkdir -p "$aptdir/lists/partial" "$aptdir/archives/partial"
{
	for suite in $suites; do
		case "$suite" in
		*-security) echo "deb [arch=amd64] http://deb.debian.org/debian-security $suite main" ;;
		*) echo "deb [arch=amd64] http://deb.debian.org/debian $suite main" ;;
		esac
	done
} >"$aptdir/sources.list"
apt_opts=(-o "Dir::Etc::SourceList=$aptdir/sources.list" -o Dir::Etc::SourceParts=/dev/null
	-o "Dir::State::Lists=$aptdir/lists" -o "Dir::Cache=$aptdir" -o "Dir::Cache::archives=$aptdir/archives"
	-o Dir::State::status=/dev/null -o APT::Sandbox::User=root)
# Up to 6.12 a kernel is one package, linux-image-VER-amd64-unsigned; from
# 6.16 on Debian splits it: the kernel in linux-binary-unsigned-VER-amd64,
# its modules in linux-modules-VER-amd64, config and maps in linux-base-VER-amd64.
find_pkg() {
	local want=${series//./[.]}
	[ "$series" = newest ] && want='[0-9]+[.][0-9]+'
	apt-cache "${apt_opts[@]}" search --names-only \
		"^linux-(image-${want}[.][0-9].*-amd64-unsigned|binary-unsigned-${want}[.][0-9].*-amd64)\$" 2>/dev/null |
		awk '{print $1}' | grep -vE -- '-(rt|cloud)-amd64' |
		sed -E 's/^linux-(image|binary-unsigned)-(.*)$/\2 &/' | sort -V | tail -n 1 | cut -d' ' -f2
}
cached_pkg() { # the newest kernel of this series already unpacked
	local p
	for p in "$cache"/*/boot; do
		p=$(basename "$(dirname "$p")")
		case "$p" in
		linux-image-"$series".* | linux-binary-unsigned-"$series".*) echo "$p" ;;
		linux-binary-unsigned-* | linux-image-7.* | linux-image-[89].*) [ "$series" = newest ] && echo "$p" ;;
		esac
	done | sort -V | tail -n 1
}
# One index refresh a day (unstable moves; the others change with security
# updates); without the network, the newest kernel already in the cache.
stamp="$aptdir/updated"
if [ -z "$(find "$stamp" -mmin -1440 2>/dev/null)" ]; then
	if apt-get "${apt_opts[@]}" update -qq >/dev/null 2>"$aptdir/update.err"; then
		touch "$stamp"
	else
		echo "scripts/vm/run.sh: could not refresh the index of $suites: $(tail -n 1 "$aptdir/update.err")" >&2
	fi
fi
pkg=$(find_pkg)
[ -n "$pkg" ] || pkg=$(cached_pkg)
[ -n "$pkg" ] || { echo "no Debian kernel package for $series in $suites (linux-image-$series.*-amd64-unsigned)" >&2; exit 1; }
kdir="$cache/$pkg"
if [ ! -d "$kdir/boot" ]; then
	rm -rf "$kdir.tmp" && mkdir -p "$kdir.tmp"
	debs=("$pkg")
	case "$pkg" in
	linux-binary-unsigned-*)
		ver=${pkg#linux-binary-unsigned-}
		debs+=("linux-modules-$ver" "linux-base-$ver")
		;;
	esac
	(cd "$kdir.tmp" && apt-get "${apt_opts[@]}" download -qq "${debs[@]}" >/dev/null)
	for deb in "$kdir.tmp"/*.deb; do dpkg-deb -x "$deb" "$kdir.tmp/root"; done
	# One layout for every package: the kernel at boot/vmlinuz-KVER and its
	# modules under lib/modules (newer packages put both in usr/lib/modules).
	root="$kdir.tmp/root"
	if [ -d "$root/usr/lib/modules" ] && [ ! -d "$root/lib/modules" ]; then
		mkdir -p "$root/lib"
		mv "$root/usr/lib/modules" "$root/lib/modules"
	fi
	kver=$(ls "$root/lib/modules")
	mkdir -p "$root/boot"
	for k in "$root/lib/modules/$kver"/vmlinuz*; do
		[ -f "$k" ] && mv "$k" "$root/boot/vmlinuz-$kver"
	done
	[ -f "$root/boot/vmlinuz-$kver" ] || { echo "no kernel image in $pkg" >&2; exit 1; }
	depmod -b "$root" "$kver"
	mv "$root" "$kdir"
	rm -rf "$kdir.tmp"
fi
kver=$(ls "$kdir/lib/modules")
echo "scripts/vm/run.sh: Debian's $pkg (kernel $kver)" >&2

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
	-append "console=ttyS0 panic=-1 quiet $append lebpf_job=$job lebpf_kroot=$kdir" \
	-virtfs local,path=/,mount_tag=hostroot,security_model=none,readonly=on \
	</dev/null | tr -d '\r' | tee "$log" |
	sed -n '/LEBPF-VM-START$/,/^LEBPF-VM-EXIT=/{/LEBPF-VM-/d;p}' || true
status=$(grep -a '^LEBPF-VM-EXIT=' "$log" | tail -n 1 | cut -d= -f2)
if [ -z "$status" ]; then
	echo "the VM ($pkg) ended without the command's status (timeout ${timeout_s}s, or a boot failure)" >&2
	exit 1
fi
exit "$status"
