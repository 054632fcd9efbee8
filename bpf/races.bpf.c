// SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause
/*
 * races - one counter, updated by the same program running on two CPUs at
 * once, in five ways: a plain increment, an atomic add, a per-CPU counter,
 * a spin lock, and a compare-and-swap loop. User space runs each program
 * on both CPUs with BPF_PROG_TEST_RUN and compares what it counted with
 * the number of runs.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include "races.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define CAS_MAX_TRIES 64

/* ANCHOR: plain */
/* (1) A global: one copy, in a map that both CPUs share. `++` compiles to
 * three instructions, a load, an add and a store: two CPUs that load the
 * same value both store value + 1, and one update is lost. */
__u64 plain_count = 0;

SEC("xdp")
int count_plain(struct xdp_md *ctx)
{
	plain_count++;
	return XDP_PASS;
}
/* ANCHOR_END: plain */

/* ANCHOR: atomic */
/* (2) One instruction that loads, adds and stores as a whole (BPF_ATOMIC
 * BPF_ADD, a locked add on x86): no other CPU's update can come between. */
__u64 atomic_count = 0;

SEC("xdp")
int count_atomic(struct xdp_md *ctx)
{
	__sync_fetch_and_add(&atomic_count, 1);
	return XDP_PASS;
}
/* ANCHOR_END: atomic */

/* ANCHOR: percpu */
/* (3) A copy per CPU: each CPU updates its own, so there is nothing to
 * race on. User space adds the copies up when it reads. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} percpu_count SEC(".maps");

SEC("xdp")
int count_percpu(struct xdp_md *ctx)
{
	__u32 zero = 0;
	__u64 *count = bpf_map_lookup_elem(&percpu_count, &zero);

	if (count)
		(*count)++;
	return XDP_PASS;
}
/* ANCHOR_END: percpu */

/* ANCHOR: spinlock */
/* (4) A lock and the data it protects, in one map value. Between lock and
 * unlock the verifier allows no helper call and no other lock. */
struct locked {
	struct bpf_spin_lock lock;
	__u64 count;
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct locked);
} locked_count SEC(".maps");

SEC("xdp")
int count_spinlock(struct xdp_md *ctx)
{
	__u32 zero = 0;
	struct locked *v = bpf_map_lookup_elem(&locked_count, &zero);

	if (v) {
		bpf_spin_lock(&v->lock);
		v->count++;
		bpf_spin_unlock(&v->lock);
	}
	return XDP_PASS;
}
/* ANCHOR_END: spinlock */

/* ANCHOR: cas */
/* (5) Read, compute, and store only if the value is still the one read;
 * if the other CPU changed it meanwhile, read again. The verifier wants
 * the loop bounded: an update that loses CAS_MAX_TRIES times in a row is
 * counted as given up, not lost silently. */
__u64 cas_count = 0;
struct cas_stats cas = {};

SEC("xdp")
int count_cas(struct xdp_md *ctx)
{
	for (int i = 0; i < CAS_MAX_TRIES; i++) {
		__u64 old = *(volatile __u64 *)&cas_count;

		if (__sync_val_compare_and_swap(&cas_count, old, old + 1) ==
		    old)
			return XDP_PASS;
		__sync_fetch_and_add(&cas.retries, 1);
	}
	__sync_fetch_and_add(&cas.gave_up, 1);
	return XDP_PASS;
}
/* ANCHOR_END: cas */

/* ANCHOR: forced */
/* (6) The plain increment cut in two, so that user space can run its two
 * halves in the order that loses an update, every time: CPU 0 loads, CPU 1
 * loads, CPU 0 stores, CPU 1 stores. Each CPU keeps what it loaded in its
 * own slot of a per-CPU array. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} loaded SEC(".maps");

SEC("xdp")
int plain_load(struct xdp_md *ctx)
{
	__u32 zero = 0;
	__u64 *slot = bpf_map_lookup_elem(&loaded, &zero);

	if (slot)
		*slot = plain_count;
	return XDP_PASS;
}

SEC("xdp")
int plain_store(struct xdp_md *ctx)
{
	__u32 zero = 0;
	__u64 *slot = bpf_map_lookup_elem(&loaded, &zero);

	if (slot)
		plain_count = *slot + 1;
	return XDP_PASS;
}
/* ANCHOR_END: forced */
