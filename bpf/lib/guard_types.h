/* SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause */
/*
 * The policy keys and the denial record of the two security lessons,
 * lsm_guard and cgroup_guard, shared with the Rust side (through BTF).
 */
#ifndef GUARD_TYPES_H
#define GUARD_TYPES_H

#define GUARD_COMM_LEN 16

/* What the denied process tried to do. */
enum guard_kind {
	GUARD_CONNECT = 1, /* connect(), also on a UDP socket */
	GUARD_SENDMSG = 2, /* sendto()/sendmsg() with an address */
	GUARD_OPEN = 3,	   /* open() of a listed file */
	GUARD_SOCKET = 4, /* socket(): a kind whose sends no rule could check */
	GUARD_TUN = 5,	  /* a tun/tap device: packets written into the stack */
};

/*
 * Rule 0 is no --deny rule: the guard's own refusals. A socket whose sends
 * no rule could check (GUARD_SOCKET, GUARD_TUN), or a destination the
 * kernel turns into other hosts after the check (GUARD_CONNECT,
 * GUARD_SENDMSG to the unspecified, broadcast or a multicast address).
 */
enum guard_rule {
	GUARD_RULE_BUILTIN = 0,
};

/*
 * A --deny rule: an address and a port. IPv4 addresses are stored
 * IPv4-mapped (::ffff:a.b.c.d), so one map and one lookup serve both
 * families, and an IPv4 address written as a mapped IPv6 one is the same
 * key. 20 bytes, no padding.
 */
struct addr_key {
	__u32 addr[4]; /* network byte order */
	__u32 port;    /* host byte order; 0 stands for every port */
};

/*
 * A --deny-path rule: the file's identity, its inode, which every name of
 * the file leads to (symlinks, hard links, relative paths, /proc/self/fd).
 */
struct file_key {
	__u64 dev; /* the kernel's s_dev: MAJOR << 20 | MINOR */
	__u64 ino;
};

/* One denial, sent through the ring buffer. 64 bytes, no padding. */
struct denial {
	__u32 pid;	/* the process (thread group) id */
	__u32 tid;	/* the thread */
	__u32 rule;	/* which rule matched: its number on the command line */
	__u32 kind;	/* enum guard_kind */
	__u32 addr[4];	/* CONNECT and SENDMSG: the destination, as in addr_key
			 */
	__u32 port;	/* ... and its port */
	__u32 type;	/* the socket type: SOCK_STREAM, SOCK_DGRAM, SOCK_RAW */
	__u32 protocol; /* IPPROTO_TCP, IPPROTO_UDP, IPPROTO_ICMP, ... */
	__u32 family;	/* the socket's family: AF_INET, AF_INET6, AF_PACKET */
	char comm[GUARD_COMM_LEN];
};

#endif /* GUARD_TYPES_H */
