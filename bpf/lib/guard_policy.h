/* SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause */
/*
 * The half of a guard that does not depend on the hook: the address rules,
 * the ring buffer of denials and its counters. lsm_guard.bpf.c and
 * cgroup_guard.bpf.c include it after vmlinux.h and the libbpf headers.
 */
#ifndef GUARD_POLICY_H
#define GUARD_POLICY_H

#include "guard_types.h"

#define GUARD_MAX_RULES 1024

/* ANCHOR: maps */
/* (1) --deny rules: address and port -> rule number (1, 2, ...). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, GUARD_MAX_RULES);
	__type(key, struct addr_key);
	__type(value, __u32);
} deny_addrs SEC(".maps");

/* (2) Denials for user space. A policy denies rarely, so 64 KiB (about 900
 * records) is plenty; what does not fit is counted in `dropped`. */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 64 * 1024);
} denials SEC(".maps");

__u64 denied = 0;  /* every denial */
__u64 dropped = 0; /* denials the ring buffer had no room to report */
/* ANCHOR_END: maps */

/* Makes the types visible to the Rust skeleton's generated types. */
struct denial guard_denial_unused;
enum guard_kind guard_kind_unused;

/* ANCHOR: lookup */
/* The rule that denies `key`: its exact port first, then "every port".
 * 0 when none does. */
static __always_inline __u32 addr_rule(const struct addr_key *key)
{
	struct addr_key any = *key;
	__u32 *rule;

	rule = bpf_map_lookup_elem(&deny_addrs, key);
	if (rule)
		return *rule;
	any.port = 0;
	rule = bpf_map_lookup_elem(&deny_addrs, &any);
	return rule ? *rule : 0;
}
/* ANCHOR_END: lookup */

/* ANCHOR: destination */
/* (3) Destinations that are not one host the caller named. The kernel
 * sends to the unspecified address (0.0.0.0, ::, ::ffff:0.0.0.0) as to a
 * local one it picks after every check: the socket's bound address, or
 * loopback. The limited broadcast (255.255.255.255) and multicast groups
 * reach whichever hosts listen. No rule can say where those go, so they are
 * refused outright. */
static __always_inline bool many_hosts(const struct addr_key *key)
{
	__u32 a0 = bpf_ntohl(key->addr[0]), a3 = bpf_ntohl(key->addr[3]);
	bool mapped = !key->addr[0] && !key->addr[1] &&
		      key->addr[2] == bpf_htonl(0xffff);

	if (mapped)
		return a3 == 0 || a3 == 0xffffffff || (a3 >> 28) == 0xe;
	if ((a0 >> 24) == 0xff) /* ff00::/8, IPv6 multicast */
		return true;
	return !key->addr[0] && !key->addr[1] && !key->addr[2] && !key->addr[3];
}

/* (4) An IPv4 address in the NAT64 well-known prefix (64:ff9b::a.b.c.d,
 * RFC 6052) is translated back to a.b.c.d by a NAT64 gateway on the way:
 * key it as that IPv4 address. */
static __always_inline void unwrap_nat64(struct addr_key *key)
{
	if (key->addr[0] == bpf_htonl(0x0064ff9b) && !key->addr[1] &&
	    !key->addr[2]) {
		key->addr[0] = 0;
		key->addr[2] = bpf_htonl(0xffff);
	}
}

/* The rule that denies sending to `key`: a --deny rule's number,
 * GUARD_RULE_BUILTIN for a destination of many hosts; false when none
 * does. */
static __always_inline bool dest_denied(struct addr_key *key, __u32 *rule)
{
	unwrap_nat64(key);
	if (many_hosts(key)) {
		*rule = GUARD_RULE_BUILTIN;
		return true;
	}
	*rule = addr_rule(key);
	return *rule != 0;
}
/* ANCHOR_END: destination */

/* (5) Counts a denial and reports it; `key` is NULL for a file or a
 * socket. */
static __always_inline void report(__u32 kind, __u32 rule,
				   const struct addr_key *key, __u32 family,
				   __u32 type, __u32 protocol)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct denial *d;

	__sync_fetch_and_add(&denied, 1);
	d = bpf_ringbuf_reserve(&denials, sizeof(*d), 0);
	if (!d) {
		__sync_fetch_and_add(&dropped, 1);
		return;
	}
	d->pid = id >> 32;
	d->tid = (__u32)id;
	d->rule = rule;
	d->kind = kind;
	if (key) {
		__builtin_memcpy(d->addr, key->addr, sizeof(d->addr));
		d->port = key->port;
	} else {
		__builtin_memset(d->addr, 0, sizeof(d->addr));
		d->port = 0;
	}
	d->family = family;
	d->type = type;
	d->protocol = protocol;
	bpf_get_current_comm(d->comm, sizeof(d->comm));
	bpf_ringbuf_submit(d, 0);
}

#endif /* GUARD_POLICY_H */
