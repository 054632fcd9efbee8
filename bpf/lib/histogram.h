/* SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause */
/*
 * histogram.h - log2 latency histograms kept in the kernel, shared by the
 * tracing lessons (runqlat, fentry). User space reads them with
 * learning_ebpf_rs::hist, which uses the same slot rule.
 */
#ifndef LEBPF_HISTOGRAM_H
#define LEBPF_HISTOGRAM_H

/* Slot i counts values in [2^i, 2^(i+1)); slot 0 also takes 0; the last
 * slot takes everything longer. 27 slots of microseconds reach over a
 * minute. */
#define HIST_MAX_SLOTS 27

/* One counter per slot. User space never resets them; it prints the
 * difference between two readings. */
#define DEFINE_HISTOGRAM(name)                                                 \
	struct {                                                               \
		__uint(type, BPF_MAP_TYPE_ARRAY);                              \
		__uint(max_entries, HIST_MAX_SLOTS);                           \
		__type(key, __u32);                                            \
		__type(value, __u64);                                          \
	} name SEC(".maps")

/* log2, rounded down, without a loop: halve the search range each step. */
static __always_inline __u32 log2l(__u64 v)
{
	__u32 r = 0;

	if (v >> 32) {
		v >>= 32;
		r += 32;
	}
	if (v >> 16) {
		v >>= 16;
		r += 16;
	}
	if (v >> 8) {
		v >>= 8;
		r += 8;
	}
	if (v >> 4) {
		v >>= 4;
		r += 4;
	}
	if (v >> 2) {
		v >>= 2;
		r += 2;
	}
	if (v >> 1)
		r += 1;
	return r;
}

/* Adds one to the slot of `value`. Two CPUs may add to the same slot at
 * once, hence the atomic add. */
static __always_inline void hist_add(void *hist, __u64 value)
{
	__u32 slot = log2l(value);
	__u64 *count;

	if (slot >= HIST_MAX_SLOTS)
		slot = HIST_MAX_SLOTS - 1;
	count = bpf_map_lookup_elem(hist, &slot);
	if (count)
		__sync_fetch_and_add(count, 1);
}

#endif /* LEBPF_HISTOGRAM_H */
