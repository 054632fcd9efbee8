// SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause
/*
 * verifier - classic rejections, each as a pair of programs: `<case>_bad`,
 * which the verifier refuses, and `<case>_ok`, the same idea written the
 * way it accepts. The `verifier` binary loads one program at a time (the
 * others are switched off before load) and prints the verifier's log.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define ETH_P_IP 0x0800

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} values SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4096);
} events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16);
	__type(key, __u32);
	__type(value, __u64);
} counts SEC(".maps");

struct locked {
	struct bpf_spin_lock lock;
	__u64 count;
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct locked);
} locked SEC(".maps");

/* ANCHOR: packet_bounds */
/* (1) Packet access without a bounds check: the verifier only lets a
 * program read packet bytes that it has proved lie before data_end. */
SEC("xdp")
int packet_bounds_bad(struct xdp_md *ctx)
{
	struct ethhdr *eth = (void *)(long)ctx->data;

	return eth->h_proto == bpf_htons(ETH_P_IP) ? XDP_PASS : XDP_DROP;
}

SEC("xdp")
int packet_bounds_ok(struct xdp_md *ctx)
{
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = (void *)(long)ctx->data;

	if ((void *)(eth + 1) > data_end) /* the check it wants */
		return XDP_DROP;
	return eth->h_proto == bpf_htons(ETH_P_IP) ? XDP_PASS : XDP_DROP;
}
/* ANCHOR_END: packet_bounds */

/* ANCHOR: map_value_null */
/* (2) A map lookup returns a pointer to the value or NULL (no such key),
 * and the pointer may not be used before the program has checked which. */
SEC("xdp")
int map_value_null_bad(struct xdp_md *ctx)
{
	__u32 key = 0;
	__u64 *value = bpf_map_lookup_elem(&counts, &key);

	*value += 1;
	return XDP_PASS;
}

SEC("xdp")
int map_value_null_ok(struct xdp_md *ctx)
{
	__u32 key = 0;
	__u64 *value = bpf_map_lookup_elem(&counts, &key);

	if (value) /* the check it wants */
		*value += 1;
	return XDP_PASS;
}
/* ANCHOR_END: map_value_null */

/* ANCHOR: unbounded_loop */
/* (3) A loop the verifier cannot prove ends. It follows loops one pass at
 * a time; here the counter is never increased, so each pass starts in the
 * very state the last one did, and the loop can never end. */
SEC("xdp")
int unbounded_loop_bad(struct xdp_md *ctx)
{
	__u32 key = 0, i = 0;
	__u64 *n = bpf_map_lookup_elem(&values, &key);

	if (!n)
		return XDP_PASS;
	while (i < *(volatile __u64 *)n) {
		/* i++ forgotten */
	}
	return XDP_PASS;
}

SEC("xdp")
int unbounded_loop_ok(struct xdp_md *ctx)
{
	__u32 key = 0, i;
	__u64 *n = bpf_map_lookup_elem(&values, &key), sum = 0;

	if (!n)
		return XDP_PASS;
	/* A counter that grows, and a constant bound as well: the verifier
	 * follows at most 64 passes. */
	for (i = 0; i < *n && i < 64; i++)
		sum += i;
	return sum & 1 ? XDP_PASS : XDP_DROP;
}
/* ANCHOR_END: unbounded_loop */

/* ANCHOR: ringbuf_leak */
/* (4) A reservation in a ring buffer is a reference the program holds: on
 * every path it must be submitted or discarded, or the space would never
 * be given back. */
SEC("xdp")
int ringbuf_leak_bad(struct xdp_md *ctx)
{
	__u64 *slot = bpf_ringbuf_reserve(&events, sizeof(*slot), 0);

	if (!slot)
		return XDP_PASS;
	*slot = bpf_ktime_get_ns();
	if (*slot & 1)
		return XDP_DROP; /* leaves without submitting */
	bpf_ringbuf_submit(slot, 0);
	return XDP_PASS;
}

SEC("xdp")
int ringbuf_leak_ok(struct xdp_md *ctx)
{
	__u64 *slot = bpf_ringbuf_reserve(&events, sizeof(*slot), 0);

	if (!slot)
		return XDP_PASS;
	*slot = bpf_ktime_get_ns();
	if (*slot & 1) {
		bpf_ringbuf_discard(slot, 0); /* given back on this path too */
		return XDP_DROP;
	}
	bpf_ringbuf_submit(slot, 0);
	return XDP_PASS;
}
/* ANCHOR_END: ringbuf_leak */

/* ANCHOR: helper_not_allowed */
/* (5) Each program type has its own list of helpers. An XDP program runs
 * before the kernel has built a socket buffer (sk_buff) for the packet,
 * so the helpers that work on one are not on its list. */
SEC("xdp")
int helper_bad(struct xdp_md *ctx)
{
	__u16 proto = 0;

	bpf_skb_load_bytes(ctx, 12, &proto, sizeof(proto));
	return proto == bpf_htons(ETH_P_IP) ? XDP_PASS : XDP_DROP;
}

SEC("xdp")
int helper_ok(struct xdp_md *ctx)
{
	__u16 proto = 0;

	/* XDP's own helper for the same job (5.18). */
	bpf_xdp_load_bytes(ctx, 12, &proto, sizeof(proto));
	return proto == bpf_htons(ETH_P_IP) ? XDP_PASS : XDP_DROP;
}
/* ANCHOR_END: helper_not_allowed */

/* ANCHOR: ctx_arith */
/* (6) The context (struct xdp_md here) is not memory the program may
 * walk: the verifier rewrites each access to a known field into a read of
 * the kernel's real structure, so the offset must be a constant it can
 * see, not a computed one. */
SEC("xdp")
int ctx_arith_bad(struct xdp_md *ctx)
{
	__u32 off = bpf_get_prandom_u32() & 4;

	return *(__u32 *)((void *)ctx + off) ? XDP_PASS : XDP_DROP;
}

SEC("xdp")
int ctx_arith_ok(struct xdp_md *ctx)
{
	__u32 pick = bpf_get_prandom_u32() & 4;
	__u32 data = ctx->data, end = ctx->data_end;

	/* Read both fields by name, then choose. (barrier_var stops clang from
	 * turning the choice back into arithmetic on ctx.) */
	barrier_var(data);
	barrier_var(end);
	return (pick ? end : data) ? XDP_PASS : XDP_DROP;
}
/* ANCHOR_END: ctx_arith */

/* ANCHOR: scalar_as_pointer */
/* (7) A number is not a pointer: memory may only be read through
 * pointers the verifier handed out (the context, a map value, the stack,
 * the packet), whatever the number's value. */
SEC("xdp")
int scalar_ptr_bad(struct xdp_md *ctx)
{
	__u64 addr = bpf_ktime_get_ns();

	return *(__u8 *)addr ? XDP_PASS : XDP_DROP;
}

SEC("xdp")
int scalar_ptr_ok(struct xdp_md *ctx)
{
	__u32 key = 0;
	__u8 *value = bpf_map_lookup_elem(&values, &key); /* a real pointer */

	return value && *value ? XDP_PASS : XDP_DROP;
}
/* ANCHOR_END: scalar_as_pointer */

/* ANCHOR: spin_lock_call */
/* (8) While a bpf_spin_lock is held, no helper may be called: a helper
 * could sleep, fault or take the same lock again. */
SEC("xdp")
int spin_lock_bad(struct xdp_md *ctx)
{
	__u32 key = 0;
	struct locked *v = bpf_map_lookup_elem(&locked, &key);

	if (!v)
		return XDP_PASS;
	bpf_spin_lock(&v->lock);
	v->count = bpf_ktime_get_ns();
	bpf_spin_unlock(&v->lock);
	return XDP_PASS;
}

SEC("xdp")
int spin_lock_ok(struct xdp_md *ctx)
{
	__u32 key = 0;
	struct locked *v = bpf_map_lookup_elem(&locked, &key);
	__u64 now = bpf_ktime_get_ns(); /* called before the lock */

	if (!v)
		return XDP_PASS;
	bpf_spin_lock(&v->lock);
	v->count = now;
	bpf_spin_unlock(&v->lock);
	return XDP_PASS;
}
/* ANCHOR_END: spin_lock_call */

/* ANCHOR: return_value */
/* (9) Some program types give their return value a fixed meaning, and the
 * verifier checks its range: a cgroup_skb ingress program says 1 (let the
 * packet in) or 0 (drop it), nothing else. */
SEC("cgroup_skb/ingress")
int return_value_bad(struct __sk_buff *skb)
{
	return skb->len > 1000 ? 2 : 1;
}

SEC("cgroup_skb/ingress")
int return_value_ok(struct __sk_buff *skb)
{
	return skb->len > 1000 ? 0 : 1;
}
/* ANCHOR_END: return_value */
