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
#define AF_UNSPEC 0
#define AF_UNIX 1
#define AF_INET 2
#define AF_NETLINK 16
#define AF_INET6 10
#define SOCK_STREAM 1
#define SOCK_DGRAM 2
#define IPPROTO_IP 0
#define IPPROTO_ICMP 1
#define IPPROTO_TCP 6
#define IPPROTO_UDP 17
#define IPPROTO_ICMPV6 58
#define IPPROTO_UDPLITE 136

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
 * families the policy does not cover (AF_UNIX, ...). `sa` points to the
 * kernel's copy of the caller's address, `len` bytes long: read it with
 * bpf_probe_read_kernel (BPF_CORE_READ). Parse what the protocols accept,
 * not what a polite caller passes:
 * - an IPv6 address may be 24 bytes, without the scope id
 *   (SIN6_LEN_RFC2133): the address ends at byte 24, so that is enough;
 * - AF_UNSPEC on an IPv4 UDP or raw socket, or an IPv6 raw socket, is
 *   taken as the socket's own family: read it as that family.
 * A shorter address is refused by every protocol, so it is let through. */
static __always_inline bool read_addr(struct socket *sock, struct sockaddr *sa,
				      int len, struct addr_key *key)
{
	__u16 family = BPF_CORE_READ(sa, sa_family);

	if (family == AF_UNSPEC)
		family = BPF_CORE_READ(sock, sk, __sk_common.skc_family);
	if (family == AF_INET) {
		struct sockaddr_in *sin = (struct sockaddr_in *)sa;

		/* family, port and address: the first 8 bytes */
		if (len < (int)offsetof(struct sockaddr_in, __pad))
			return false;
		key->addr[2] = bpf_htonl(0xffff);
		key->addr[3] = BPF_CORE_READ(sin, sin_addr.s_addr);
		key->port = bpf_ntohs(BPF_CORE_READ(sin, sin_port));
		return true;
	}
	if (family == AF_INET6) {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)sa;

		if (len < (int)offsetof(struct sockaddr_in6, sin6_scope_id))
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

	if (!in_target() || !read_addr(sock, sa, len, &key))
		return 0;
	if (!dest_denied(&key, &rule))
		return 0;
	report(kind, rule, &key,
	       BPF_CORE_READ(sock, sk, __sk_common.skc_family),
	       BPF_CORE_READ(sock, type), BPF_CORE_READ(sock, sk, sk_protocol));
	return -EPERM;
}
/* ANCHOR_END: addr */

/* ANCHOR: hooks */
/* (5) Every connect(), whatever the socket type: TCP, UDP, UDP-Lite, ICMP.
 * The last argument is the return value of the BPF programs before this
 * one on the same hook (another LSM that refused has stopped the call
 * before BPF's turn): keep a refusal. */
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

/* ANCHOR: sockets */
/* (7) Sockets whose sends these hooks cannot check: a raw socket's header
 * (IP_HDRINCL) or payload (a UDP header with its port) is the caller's
 * own, a packet socket (AF_PACKET, and SOCK_PACKET, which the kernel makes
 * an AF_PACKET socket before asking) writes whole frames, SCTP and MPTCP
 * reach addresses the peer announces, and other families (AF_XDP,
 * AF_VSOCK, ...) are not IP at all. Allow local sockets (AF_UNIX,
 * AF_NETLINK) and the IP protocols whose destination the hooks read;
 * refuse the rest (rule 0). `kern` sockets are the kernel's own. */
static __always_inline bool checked_socket(int family, int type, int protocol)
{
	if (family == AF_UNIX || family == AF_NETLINK)
		return true;
	if (family != AF_INET && family != AF_INET6)
		return false;
	if (type == SOCK_STREAM)
		return protocol == IPPROTO_IP || protocol == IPPROTO_TCP;
	if (type == SOCK_DGRAM)
		return protocol == IPPROTO_IP || protocol == IPPROTO_UDP ||
		       protocol == IPPROTO_UDPLITE ||
		       protocol == IPPROTO_ICMP || protocol == IPPROTO_ICMPV6;
	return false;
}

SEC("lsm/socket_create")
int BPF_PROG(guard_socket, int family, int type, int protocol, int kern,
	     int ret)
{
	if (ret)
		return ret;
	if (kern || !in_target() || checked_socket(family, type, protocol))
		return 0;
	report(GUARD_SOCKET, GUARD_RULE_BUILTIN, NULL, family, type, protocol);
	return -EPERM;
}

/* (8) A tun or tap device: what the process writes to it enters the stack
 * as if received from a network, to be delivered or forwarded anywhere.
 * Refuse making one and attaching to one. */
static __always_inline int refuse_tun(int ret)
{
	if (ret)
		return ret;
	if (!in_target())
		return 0;
	report(GUARD_TUN, GUARD_RULE_BUILTIN, NULL, 0, 0, 0);
	return -EPERM;
}

SEC("lsm/tun_dev_create")
int BPF_PROG(guard_tun_create, int ret)
{
	return refuse_tun(ret);
}

SEC("lsm/tun_dev_open")
int BPF_PROG(guard_tun_open, void *security, int ret)
{
	return refuse_tun(ret);
}

SEC("lsm/tun_dev_attach_queue")
int BPF_PROG(guard_tun_attach_queue, void *security, int ret)
{
	return refuse_tun(ret);
}
/* ANCHOR_END: sockets */

/* ANCHOR: open */
/* (9) Every open, matched by inode: whichever name the process used, the
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
	report(GUARD_OPEN, *rule, NULL, 0, 0, 0);
	return -EPERM;
}
/* ANCHOR_END: open */
