// SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause
/*
 * cgroup_guard - lsm_guard's connect policy with cgroup socket-address
 * programs. They are attached to one cgroup and run for the sockets of its
 * processes (and of the cgroups below it) when they connect or send to an
 * address. Returning 0 refuses the call with EPERM; 1 lets it go on.
 * Only TCP and UDP pass those programs on every way they send, so a fifth
 * program refuses to create any other IPv4 or IPv6 socket in the cgroup.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "lib/guard_policy.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define DENY 0
#define ALLOW 1

/* ANCHOR: check */
/* (1) The destination as an addr_key. The context holds it in the
 * caller's byte order conventions: user_ip4 and user_ip6 in network order,
 * user_port in network order in its low 16 bits. */
static __always_inline void key4(const struct bpf_sock_addr *ctx,
				 struct addr_key *key)
{
	key->addr[2] = bpf_htonl(0xffff);
	key->addr[3] = ctx->user_ip4;
	key->port = bpf_ntohs(ctx->user_port);
}

static __always_inline void key6(const struct bpf_sock_addr *ctx,
				 struct addr_key *key)
{
	/* Word by word: the verifier allows 4-byte reads of user_ip6. */
	key->addr[0] = ctx->user_ip6[0];
	key->addr[1] = ctx->user_ip6[1];
	key->addr[2] = ctx->user_ip6[2];
	key->addr[3] = ctx->user_ip6[3];
	key->port = bpf_ntohs(ctx->user_port);
}

static __always_inline int check(__u32 kind, struct bpf_sock_addr *ctx,
				 struct addr_key *key)
{
	__u32 rule;

	if (!dest_denied(key, &rule))
		return ALLOW;
	report(kind, rule, key, ctx->family, ctx->type, ctx->protocol);
	return DENY;
}
/* ANCHOR_END: check */

/* ANCHOR: connect */
/* (2) connect() on IPv4 sockets, TCP and UDP (the only kinds allowed). */
SEC("cgroup/connect4")
int guard_connect4(struct bpf_sock_addr *ctx)
{
	struct addr_key key = {};

	key4(ctx, &key);
	return check(GUARD_CONNECT, ctx, &key);
}

/* (3) connect() on IPv6 sockets, IPv4-mapped destinations included: a
 * dual-stack socket connecting to ::ffff:a.b.c.d runs this program, not
 * connect4, and the mapped key is the IPv4 rule's key. */
SEC("cgroup/connect6")
int guard_connect6(struct bpf_sock_addr *ctx)
{
	struct addr_key key = {};

	key6(ctx, &key);
	return check(GUARD_CONNECT, ctx, &key);
}
/* ANCHOR_END: connect */

/* (4) sendto()/sendmsg() with a destination on unconnected UDP sockets. */
SEC("cgroup/sendmsg4")
int guard_sendmsg4(struct bpf_sock_addr *ctx)
{
	struct addr_key key = {};

	key4(ctx, &key);
	return check(GUARD_SENDMSG, ctx, &key);
}

SEC("cgroup/sendmsg6")
int guard_sendmsg6(struct bpf_sock_addr *ctx)
{
	struct addr_key key = {};

	key6(ctx, &key);
	return check(GUARD_SENDMSG, ctx, &key);
}

/* ANCHOR: sock_create */
/* (5) The address programs run where TCP and UDP pick a destination, and
 * nowhere else: a sendto() on a ping socket, anything on a raw socket, a
 * connected UDP-Lite socket (its connect() runs no program), SCTP and
 * MPTCP (they reach addresses the peer announces) pass none of them.
 * Allow the two protocols the rules can check and refuse every other
 * IPv4 and IPv6 socket (the report names rule 0). This program runs for
 * those two families only: packet sockets are made without it (see the
 * chapter). */
#define SOCK_STREAM 1
#define SOCK_DGRAM 2
#define IPPROTO_TCP 6
#define IPPROTO_UDP 17

SEC("cgroup/sock_create")
int guard_sock_create(struct bpf_sock *ctx)
{
	/* Each context field read once, into a register: the verifier refuses
	 * a context pointer that the compiler has moved (ctx + offset). The
	 * kernel has resolved protocol 0 to TCP or UDP by now. */
	__u32 family = ctx->family, type = ctx->type, protocol = ctx->protocol;

	if ((type == SOCK_STREAM && protocol == IPPROTO_TCP) ||
	    (type == SOCK_DGRAM && protocol == IPPROTO_UDP))
		return ALLOW;
	report(GUARD_SOCKET, GUARD_RULE_BUILTIN, NULL, family, type, protocol);
	return DENY;
}
/* ANCHOR_END: sock_create */
