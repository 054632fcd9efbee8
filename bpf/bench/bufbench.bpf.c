// SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause
/*
 * bufbench - the producer for the ring buffer vs perf buffer benchmark, not
 * a lesson: one event (16 bytes unless event_size says more) per getpgid()
 * call of one process, written to a ring buffer or (use_perf_buffer) a perf
 * buffer, the way execsnoop does.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

const volatile __u32 targ_tgid = 0;
const volatile bool use_perf_buffer = false;
/* No output: the event is made (sequence number and time stamp) and left in
 * a per-CPU scratch buffer. The rate is the producer's own ceiling: what it
 * could deliver if the transport cost nothing. */
const volatile bool count_only = false;
/* Ring buffer: 0 lets the kernel decide when to wake the consumer (when it
 * has caught up); N wakes it only every Nth event. */
const volatile __u32 wakeup_every = 0;
/* Bytes per event, 16 to MAX_EVENT: the first 16 are the sequence number
 * and the time stamp. Known to the verifier (read-only data is frozen). */
const volatile __u32 event_size = 16;

#define MAX_EVENT 4096

struct bench_event {
	__u64 seq;
	__u64 ts_ns;
};

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 16 * 1024 * 1024);
} rb SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERF_EVENT_ARRAY);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, sizeof(__u32));
} pb SEC(".maps");

/* The perf buffer copies from here, and count_only writes here. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u8[MAX_EVENT]);
} scratch SEC(".maps");

/* One producing thread, and a program never runs twice at once for one
 * thread: the sequence number needs no atomic fetch-and-add (whose result
 * needs Linux 5.12), so this producer loads wherever the ring buffer does
 * (5.8). */
__u64 produced = 0;
__u64 dropped = 0;

SEC("tp/syscalls/sys_enter_getpgid")
int produce(void *ctx)
{
	__u32 zero = 0, size = event_size;
	struct bench_event *e;
	void *buf;

	if (bpf_get_current_pid_tgid() >> 32 != targ_tgid)
		return 0;
	if (size < sizeof(*e) || size > MAX_EVENT)
		return 0;
	if (count_only || use_perf_buffer) {
		buf = bpf_map_lookup_elem(&scratch, &zero);
		if (!buf)
			return 0;
		e = buf;
		e->seq = produced++;
		e->ts_ns = bpf_ktime_get_ns();
		if (use_perf_buffer &&
		    bpf_perf_event_output(ctx, &pb, BPF_F_CURRENT_CPU, buf,
					  size))
			__sync_fetch_and_add(&dropped, 1);
		return 0;
	}
	/* The ring buffer's reservation: the event is written in place. */
	e = bpf_ringbuf_reserve(&rb, size, 0);
	if (!e) {
		__sync_fetch_and_add(&dropped, 1);
		return 0;
	}
	e->seq = produced++;
	e->ts_ns = bpf_ktime_get_ns();
	if (wakeup_every)
		bpf_ringbuf_submit(e, e->seq % wakeup_every
					      ? BPF_RB_NO_WAKEUP
					      : BPF_RB_FORCE_WAKEUP);
	else
		bpf_ringbuf_submit(e, 0);
	return 0;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
