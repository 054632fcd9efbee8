// SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause
/*
 * lsm_guard - deny connecting to listed addresses and opening listed files,
 * for the tasks of one cgroup, with BPF LSM programs. The kernel asks them
 * before it acts; a negative return (-EPERM) refuses the operation.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include "lib/guard_policy.h"

#define EPERM 1
#define AF_INET 2
#define AF_INET6 10

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* ANCHOR: scope */
/* (1) The target cgroup: user space stores its fd at index 0. */
struct {
	__uint(type, BPF_MAP_TYPE_CGROUP_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} target SEC(".maps");

/* (2) --deny-path rules: the file's inode -> rule number. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, GUARD_MAX_RULES);
	__type(key, struct file_key);
	__type(value, __u32);
} deny_files SEC(".maps");

/* (3) The policy applies to the target cgroup and every cgroup below it, so
 * a process cannot escape it by moving itself into a child cgroup. */
static __always_inline bool in_target(void)
{
	return bpf_current_task_under_cgroup(&target, 0) == 1;
}
/* ANCHOR_END: scope */

/* ANCHOR: addr */
/* (4) The destination of a connect or sendmsg as an addr_key; false for
 * families the policy does not cover (AF_UNIX, AF_UNSPEC, ...). `sa` points
 * to the kernel's copy of the caller's address: read it with
 * bpf_probe_read_kernel (BPF_CORE_READ), checking the length the caller
 * gave, as the protocol will. */
static __always_inline bool read_addr(struct sockaddr *sa, int len,
				      struct addr_key *key)
{
	__u16 family = BPF_CORE_READ(sa, sa_family);

	if (family == AF_INET) {
		struct sockaddr_in *sin = (struct sockaddr_in *)sa;

		if (len < (int)sizeof(*sin))
			return false;
		key->addr[2] = bpf_htonl(0xffff);
		key->addr[3] = BPF_CORE_READ(sin, sin_addr.s_addr);
		key->port = bpf_ntohs(BPF_CORE_READ(sin, sin_port));
		return true;
	}
	if (family == AF_INET6) {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)sa;

		if (len < (int)sizeof(*sin6))
			return false;
		BPF_CORE_READ_INTO(&key->addr, sin6, sin6_addr.in6_u.u6_addr32);
		key->port = bpf_ntohs(BPF_CORE_READ(sin6, sin6_port));
		return true;
	}
	return false;
}

static __always_inline int check_addr(__u32 kind, struct socket *sock,
				      struct sockaddr *sa, int len)
{
	struct addr_key key = {};
	__u32 rule;

	if (!in_target() || !read_addr(sa, len, &key))
		return 0;
	rule = addr_rule(&key);
	if (!rule)
		return 0;
	report(kind, rule, &key, BPF_CORE_READ(sock, type),
	       BPF_CORE_READ(sock, sk, sk_protocol));
	return -EPERM;
}
/* ANCHOR_END: addr */

/* ANCHOR: hooks */
/* (5) Every connect(), whatever the socket type: TCP, UDP, ICMP, raw. The
 * last argument is what the LSMs before this program decided: keep a
 * refusal. */
SEC("lsm/socket_connect")
int BPF_PROG(guard_connect, struct socket *sock, struct sockaddr *address,
	     int addrlen, int ret)
{
	if (ret)
		return ret;
	return check_addr(GUARD_CONNECT, sock, address, addrlen);
}

/* (6) sendto()/sendmsg() with a destination: a UDP socket does not need
 * connect() to reach an address. Without one (a connected socket) there is
 * nothing new to check. */
SEC("lsm/socket_sendmsg")
int BPF_PROG(guard_sendmsg, struct socket *sock, struct msghdr *msg, int size,
	     int ret)
{
	struct sockaddr *name;

	if (ret)
		return ret;
	name = BPF_CORE_READ(msg, msg_name);
	if (!name)
		return 0;
	return check_addr(GUARD_SENDMSG, sock, name,
			  BPF_CORE_READ(msg, msg_namelen));
}
/* ANCHOR_END: hooks */

/* ANCHOR: open */
/* (7) Every open, matched by inode: whichever name the process used, the
 * kernel has resolved it to this file by now. */
SEC("lsm/file_open")
int BPF_PROG(guard_open, struct file *file, int ret)
{
	struct file_key key = {};
	__u32 *rule;

	if (ret)
		return ret;
	if (!in_target())
		return 0;
	key.dev = BPF_CORE_READ(file, f_inode, i_sb, s_dev);
	key.ino = BPF_CORE_READ(file, f_inode, i_ino);
	rule = bpf_map_lookup_elem(&deny_files, &key);
	if (!rule)
		return 0;
	report(GUARD_OPEN, *rule, NULL, 0, 0);
	return -EPERM;
}
/* ANCHOR_END: open */
