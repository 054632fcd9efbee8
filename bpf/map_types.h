/* SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause */
/* Types shared by map_types.bpf.c and the Rust side (through BTF). */
#ifndef MAP_TYPES_H
#define MAP_TYPES_H

/* One event of the workload: the first bytes of the frame that
 * BPF_PROG_TEST_RUN hands to the `workload` program. */
struct event {
	__u32 key;   /* a small number: 1, 2, 3, ... */
	__u32 value; /* what to add up */
	__u32 addr;  /* an IPv4 address, network byte order, for the LPM trie */
};

/* The key of the LPM trie: the prefix length in bits, then the address,
 * most significant byte first (network order), as the trie compares it. */
struct ipv4_lpm_key {
	__u32 prefixlen;
	__u32 addr;
};

/* Sizes both sides need. */
enum map_sizes {
	ARRAY_SLOTS = 4,   /* the array and per-CPU array: key % ARRAY_SLOTS */
	HASH_ENTRIES = 64, /* the hash maps, LPM trie and inner maps */
	LRU_ENTRIES = 8,   /* small, so that eviction shows */
	QUEUE_ENTRIES = 4, /* the queue and the stack */
	INNER_MAPS = 2,	   /* the map of maps: event key % INNER_MAPS */
};

/* What the `bench` program does on each run: one map operation, so that
 * BPF_PROG_TEST_RUN's time per run is that operation plus a constant. */
enum bench_op {
	OP_NOTHING,
	OP_ARRAY_LOOKUP,
	OP_ARRAY_UPDATE,
	OP_PERCPU_ARRAY_LOOKUP,
	OP_PERCPU_ARRAY_UPDATE,
	OP_HASH_LOOKUP,
	OP_HASH_UPDATE,
	OP_PERCPU_HASH_LOOKUP,
	OP_PERCPU_HASH_UPDATE,
	OP_LRU_LOOKUP,
	OP_LRU_UPDATE,
	OP_LPM_LOOKUP,
	OP_LPM_UPDATE,
	OP_QUEUE_PEEK,
	OP_QUEUE_PUSH_POP,
	OP_STACK_PEEK,
	OP_STACK_PUSH_POP,
	OP_MAP_OF_MAPS_LOOKUP,
	OP_COUNT,
};

#endif /* MAP_TYPES_H */
