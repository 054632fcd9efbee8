#!/bin/sh
# /init of the VM that scripts/vm/run.sh boots: load the 9p modules, mount
# the host's root read-only with a writable /tmp, the BPF-related
# filesystems, then run the job in a chroot and report its status.
export PATH=/bin
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
while read -r m; do insmod "/mods/$m"; done </modules
mount -t 9p -o trans=virtio,version=9p2000.L,ro,cache=loose,msize=262144 hostroot /host
job=$(sed -n 's/.*lebpf_job=\([^ ]*\).*/\1/p' /proc/cmdline)
cp "/host$job" /job.sh
# The job runs in the host's directory it names (its first line, `cd DIR`).
# A writable /tmp is a tmpfs over the host's: a DIR under /tmp (a checkout
# cloned there) would vanish under it, so its top directory is bound back
# over the tmpfs, read-only as the rest of the host.
keep=""
case "$(sed -n '1s/^cd //p' /job.sh)" in
/tmp/?*)
	keep=$(sed -n '1s/^cd //p' /job.sh | cut -d/ -f1-3)
	mkdir -p /keep
	mount -o bind "/host$keep" /keep
	;;
esac
mount -t tmpfs tmpfs /host/tmp
if [ -n "$keep" ]; then
	mkdir -p "/host$keep"
	mount -o bind /keep "/host$keep"
fi
mount -t tmpfs tmpfs /host/run
mkdir -p /host/run/netns
mount -t proc proc /host/proc
mount -t sysfs sysfs /host/sys
mount -t devtmpfs devtmpfs /host/dev
mount -t bpf bpf /host/sys/fs/bpf
mount -t tracefs tracefs /host/sys/kernel/tracing
mount -t securityfs securityfs /host/sys/kernel/security
mount -t cgroup2 cgroup2 /host/sys/fs/cgroup
# The guest kernel's own modules: its package, unpacked on the host (with
# modules.dep), is where kmod looks (modprobe -d, through MODPROBE_OPTIONS),
# for the job's own modprobe calls and for the kernel's requests (a veth
# pair, a qdisc, conntrack...), whose helper the kernel runs outside the
# chroot: the host's kmod, run in it.
kroot=$(sed -n 's/.*lebpf_kroot=\([^ ]*\).*/\1/p' /proc/cmdline)
modopts=""
if [ -n "$kroot" ] && [ -d "/host$kroot/lib/modules" ]; then
	modopts="-d $kroot"
	printf '#!/bin/sh\nexec chroot /host /usr/bin/env MODPROBE_OPTIONS="%s" /sbin/modprobe "$@"\n' \
		"$modopts" >/bin/lebpf-modprobe
	chmod +x /bin/lebpf-modprobe
	echo /bin/lebpf-modprobe >/proc/sys/kernel/modprobe
fi
cp /job.sh /host/tmp/lebpf-job.sh
echo "LEBPF-VM-START"
chroot /host /usr/bin/env MODPROBE_OPTIONS="$modopts" /bin/bash /tmp/lebpf-job.sh 2>&1
echo "LEBPF-VM-EXIT=$?"
poweroff -f
