#!/bin/sh
# The container's first process: mounts the filesystems the lessons use
# where `docker run` left them out, then runs the command it was given
# (`make test` by default). Mounting needs CAP_SYS_ADMIN: the flags in
# README.md ("Docker") give it.
set -eu

mount_once() { # type dir
	mountpoint -q "$2" && return
	mkdir -p "$2" 2>/dev/null || true
	mount -t "$1" "$1" "$2" ||
		{ echo "cannot mount $1 on $2: run the container with the flags in README.md (Docker)" >&2; exit 1; }
}

mount_once bpf /sys/fs/bpf           # pins
mount_once tracefs /sys/kernel/tracing # tracepoints, bpf_printk
mount_once securityfs /sys/kernel/security # the active LSMs
# The security lessons attach to a cgroup v2 directory. On a host with
# cgroup v1 (or both), Docker mounts only v1 controllers here.
grep -q ' cgroup2 ' /proc/self/mounts || mount_once cgroup2 /sys/fs/cgroup/unified

exec "$@"
