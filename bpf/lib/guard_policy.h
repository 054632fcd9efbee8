/* SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause */
/*
 * The half of a guard that does not depend on the hook: the address rules,
 * the ring buffer of denials and its counters. lsm_guard.bpf.c and
 * cgroup_guard.bpf.c include it after vmlinux.h and the libbpf headers.
 */
#ifndef GUARD_POLICY_H
#define GUARD_POLICY_H

#include "../guard.h"

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

/* (3) Counts a denial and reports it; `key` is NULL for a file. */
static __always_inline void report(__u32 kind, __u32 rule,
				   const struct addr_key *key, __u32 type,
				   __u32 protocol)
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
	d->type = type;
	d->protocol = protocol;
	bpf_get_current_comm(d->comm, sizeof(d->comm));
	bpf_ringbuf_submit(d, 0);
}

#endif /* GUARD_POLICY_H */
