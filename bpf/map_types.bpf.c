// SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause
/*
 * map_types - the maps a BPF program meets first, each fed the same
 * events: array, hash, per-CPU array and hash, LPM trie, queue, stack,
 * ring buffer, and a map of maps; and an LRU hash that is filled past its
 * size, to show what it evicts. User space runs the programs with
 * BPF_PROG_TEST_RUN, one event per run, then reads what each map holds.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include "map_types.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* ANCHOR: array */
/* (1) Array: ARRAY_SLOTS values, all allocated at creation and zeroed;
 * the key is an index. Elements are never deleted, so a lookup of an index
 * below max_entries always succeeds. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, ARRAY_SLOTS);
	__type(key, __u32);
	__type(value, __u64);
} array SEC(".maps");
/* ANCHOR_END: array */

/* (2) Hash: any key, inserted on first use, up to max_entries of them. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, HASH_ENTRIES);
	__type(key, __u32);
	__type(value, __u64);
} hash SEC(".maps");

/* (3) Per-CPU: the same two, with one value per CPU for each key. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, ARRAY_SLOTS);
	__type(key, __u32);
	__type(value, __u64);
} percpu_array SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, HASH_ENTRIES);
	__type(key, __u32);
	__type(value, __u64);
} percpu_hash SEC(".maps");

/* (4) LRU hash: when it is full, an insert evicts entries that were not
 * used lately instead of failing. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, LRU_ENTRIES);
	__type(key, __u32);
	__type(value, __u64);
} lru SEC(".maps");

/* (5) LPM trie: keys are prefixes; a lookup with a full address finds the
 * longest prefix that contains it. The kernel requires BPF_F_NO_PREALLOC. */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, HASH_ENTRIES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct ipv4_lpm_key);
	__type(value, __u64);
} lpm SEC(".maps");

/* (6) Queue and stack: no keys, values only. Push, then pop or peek: the
 * queue gives the oldest value first, the stack the newest. */
struct {
	__uint(type, BPF_MAP_TYPE_QUEUE);
	__uint(max_entries, QUEUE_ENTRIES);
	__type(value, __u32);
} queue SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_STACK);
	__uint(max_entries, QUEUE_ENTRIES);
	__type(value, __u32);
} stack SEC(".maps");

/* (7) Ring buffer: records for user space, in the order they were made;
 * its size is in bytes, a power of two and a whole number of pages. */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4096);
} events SEC(".maps");

/* ANCHOR: map_of_maps */
/* (8) Map of maps: an array whose values are other maps, here one hash
 * per group of keys. The inner maps are created with the outer one and
 * put in its slots by libbpf (the `values` list); user space could also
 * swap one for a new map in a single update, which a program then sees
 * at its next lookup. */
struct inner_map {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, HASH_ENTRIES);
	__type(key, __u32);
	__type(value, __u64);
} inner_0 SEC(".maps"), inner_1 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, INNER_MAPS);
	__type(key, __u32);
	__array(values, struct inner_map);
} groups SEC(".maps") = {
	.values = {&inner_0, &inner_1},
};
/* ANCHOR_END: map_of_maps */

/* Make the shared types visible to the Rust skeleton's generated types. */
struct event event_unused;
enum map_sizes map_sizes_unused;
enum bench_op bench_op_unused;

/* What did not fit, counted where user space can read it. */
__u64 stack_full = 0;
__u64 ringbuf_full = 0;

/* Adds `value` to the hash map's entry for `key`, creating it at 0 first.
 * BPF_NOEXIST makes the insert lose, harmlessly, to one made meanwhile
 * by another CPU; the lookup after it finds whichever won. */
static __always_inline void hash_add(void *map, __u32 key, __u64 value)
{
	__u64 zero = 0, *sum;

	sum = bpf_map_lookup_elem(map, &key);
	if (!sum) {
		bpf_map_update_elem(map, &key, &zero, BPF_NOEXIST);
		sum = bpf_map_lookup_elem(map, &key);
		if (!sum)
			return; /* full */
	}
	__sync_fetch_and_add(sum, value);
}

/* Reads the event at the start of the frame; NULL if the frame is too
 * short (the bounds check the verifier insists on). */
static __always_inline struct event *frame_event(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct event *ev = data;

	if ((void *)(ev + 1) > data_end)
		return NULL;
	return ev;
}

/* ANCHOR: workload */
SEC("xdp")
int workload(struct xdp_md *ctx)
{
	struct event *frame = frame_event(ctx), ev;
	struct ipv4_lpm_key prefix;
	__u32 slot, group;
	__u64 *sum;
	void *inner;

	if (!frame)
		return XDP_ABORTED;
	/* A copy on the stack: some helpers (bpf_ringbuf_output) may not
	 * read packet memory. */
	ev = *frame;

	/* (1) array: a slot per key % ARRAY_SLOTS; the lookup cannot fail
	 * for an index in range, but the verifier wants the check anyway. */
	slot = ev.key % ARRAY_SLOTS;
	sum = bpf_map_lookup_elem(&array, &slot);
	if (sum)
		__sync_fetch_and_add(sum, ev.value);

	/* (2) hash: an entry per key. */
	hash_add(&hash, ev.key, ev.value);

	/* (3) per-CPU: the pointer is this CPU's copy, so a plain += is
	 * safe (a program is not interrupted by itself on one CPU). */
	sum = bpf_map_lookup_elem(&percpu_array, &slot);
	if (sum)
		*sum += ev.value;
	sum = bpf_map_lookup_elem(&percpu_hash, &ev.key);
	if (!sum) {
		__u64 zero = 0;

		bpf_map_update_elem(&percpu_hash, &ev.key, &zero, BPF_NOEXIST);
		sum = bpf_map_lookup_elem(&percpu_hash, &ev.key);
	}
	if (sum)
		*sum += ev.value;

	/* (5) LPM trie: count the event under the longest prefix that holds
	 * its address; an address no prefix holds is not counted. */
	prefix.prefixlen = 32;
	prefix.addr = ev.addr;
	sum = bpf_map_lookup_elem(&lpm, &prefix);
	if (sum)
		__sync_fetch_and_add(sum, 1);

	/* (6) queue: BPF_EXIST makes a full queue drop its oldest value to
	 * take the new one; the stack, pushed with 0, refuses when full. */
	bpf_map_push_elem(&queue, &ev.value, BPF_EXIST);
	if (bpf_map_push_elem(&stack, &ev.value, 0))
		__sync_fetch_and_add(&stack_full, 1);

	/* (7) ring buffer: a copy of the event for user space. */
	if (bpf_ringbuf_output(&events, &ev, sizeof(ev), 0))
		__sync_fetch_and_add(&ringbuf_full, 1);

	/* (8) map of maps: find the group's inner map, then use it as any
	 * hash map. */
	group = ev.key % INNER_MAPS;
	inner = bpf_map_lookup_elem(&groups, &group);
	if (inner)
		hash_add(inner, ev.key, ev.value);

	return XDP_PASS;
}
/* ANCHOR_END: workload */

/* ANCHOR: lru */
/* (4) The LRU hash, used as a flow table is: look the key up, add to its
 * entry if there is one, insert it if not. The lookup is what marks an
 * entry as used; when the map is full, an insert evicts entries that were
 * not. */
SEC("xdp")
int lru_touch(struct xdp_md *ctx)
{
	struct event *ev = frame_event(ctx);
	__u64 *sum;

	if (!ev)
		return XDP_ABORTED;
	sum = bpf_map_lookup_elem(&lru, &ev->key);
	if (sum) {
		__sync_fetch_and_add(sum, ev->value);
	} else {
		__u64 value = ev->value;

		bpf_map_update_elem(&lru, &ev->key, &value, BPF_NOEXIST);
	}
	return XDP_PASS;
}
/* ANCHOR_END: lru */

/* What `bench` does on each run; set by user space between runs. */
volatile __u32 bench_op = OP_NOTHING;

/* ANCHOR: bench */
/* One map operation per run, chosen by bench_op, on key 1 (which user
 * space has put in every map). Every operation goes through the same
 * switch, so the differences between them are the operations' own. */
SEC("xdp")
int bench(struct xdp_md *ctx)
{
	struct ipv4_lpm_key prefix = {.prefixlen = 32, .addr = 0x0100000a};
	__u32 key = 1, value32 = 1, group = 1;
	__u64 value = 1;
	void *inner;

	switch (bench_op) {
	case OP_ARRAY_LOOKUP:
		return bpf_map_lookup_elem(&array, &key) ? XDP_PASS : XDP_DROP;
	case OP_ARRAY_UPDATE:
		return bpf_map_update_elem(&array, &key, &value, BPF_ANY)
			       ? XDP_DROP
			       : XDP_PASS;
	case OP_PERCPU_ARRAY_LOOKUP:
		return bpf_map_lookup_elem(&percpu_array, &key) ? XDP_PASS
								: XDP_DROP;
	case OP_PERCPU_ARRAY_UPDATE:
		return bpf_map_update_elem(&percpu_array, &key, &value, BPF_ANY)
			       ? XDP_DROP
			       : XDP_PASS;
	case OP_HASH_LOOKUP:
		return bpf_map_lookup_elem(&hash, &key) ? XDP_PASS : XDP_DROP;
	case OP_HASH_UPDATE:
		return bpf_map_update_elem(&hash, &key, &value, BPF_EXIST)
			       ? XDP_DROP
			       : XDP_PASS;
	case OP_PERCPU_HASH_LOOKUP:
		return bpf_map_lookup_elem(&percpu_hash, &key) ? XDP_PASS
							       : XDP_DROP;
	case OP_PERCPU_HASH_UPDATE:
		return bpf_map_update_elem(&percpu_hash, &key, &value,
					   BPF_EXIST)
			       ? XDP_DROP
			       : XDP_PASS;
	case OP_LRU_LOOKUP:
		return bpf_map_lookup_elem(&lru, &key) ? XDP_PASS : XDP_DROP;
	case OP_LRU_UPDATE:
		/* BPF_ANY, not BPF_EXIST: an LRU update takes a free entry
		 * before it looks for the old one, and taking it can evict the
		 * very key being updated (htab_lru_map_update_elem in
		 * kernel/bpf/hashtab.c). */
		return bpf_map_update_elem(&lru, &key, &value, BPF_ANY)
			       ? XDP_DROP
			       : XDP_PASS;
	case OP_LPM_LOOKUP:
		return bpf_map_lookup_elem(&lpm, &prefix) ? XDP_PASS : XDP_DROP;
	case OP_LPM_UPDATE:
		return bpf_map_update_elem(&lpm, &prefix, &value, BPF_ANY)
			       ? XDP_DROP
			       : XDP_PASS;
	case OP_QUEUE_PEEK:
		return bpf_map_peek_elem(&queue, &value32) ? XDP_DROP
							   : XDP_PASS;
	case OP_QUEUE_PUSH_POP:
		bpf_map_push_elem(&queue, &value32, BPF_EXIST);
		return bpf_map_pop_elem(&queue, &value32) ? XDP_DROP : XDP_PASS;
	case OP_STACK_PEEK:
		return bpf_map_peek_elem(&stack, &value32) ? XDP_DROP
							   : XDP_PASS;
	case OP_STACK_PUSH_POP:
		bpf_map_push_elem(&stack, &value32, BPF_EXIST);
		return bpf_map_pop_elem(&stack, &value32) ? XDP_DROP : XDP_PASS;
	case OP_MAP_OF_MAPS_LOOKUP:
		inner = bpf_map_lookup_elem(&groups, &group);
		if (!inner)
			return XDP_DROP;
		return bpf_map_lookup_elem(inner, &key) ? XDP_PASS : XDP_DROP;
	default:
		return XDP_PASS;
	}
}
/* ANCHOR_END: bench */
