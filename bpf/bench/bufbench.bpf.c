// SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause
/*
 * bufbench - the producer for the ring buffer vs perf buffer benchmark, not
 * a lesson: one 16-byte event per getpgid() call of one process, written to
 * a ring buffer or (use_perf_buffer) a perf buffer, the way execsnoop does.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

const volatile __u32 targ_tgid = 0;
const volatile bool use_perf_buffer = false;
const volatile bool count_only = false; /* no output: the producer's ceiling */
/* Ring buffer: 0 lets the kernel decide when to wake the consumer (when it
 * has caught up); N wakes it only every Nth event. */
const volatile __u32 wakeup_every = 0;

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

__u64 produced = 0;
__u64 dropped = 0;

SEC("tp/syscalls/sys_enter_getpgid")
int produce(void *ctx)
{
	struct bench_event *e, ev;

	if (bpf_get_current_pid_tgid() >> 32 != targ_tgid)
		return 0;
	if (count_only) {
		__sync_fetch_and_add(&produced, 1);
		return 0;
	}
	if (use_perf_buffer) {
		ev.seq = __sync_fetch_and_add(&produced, 1);
		ev.ts_ns = bpf_ktime_get_ns();
		if (bpf_perf_event_output(ctx, &pb, BPF_F_CURRENT_CPU, &ev,
					  sizeof(ev)))
			__sync_fetch_and_add(&dropped, 1);
		return 0;
	}
	e = bpf_ringbuf_reserve(&rb, sizeof(*e), 0);
	if (!e) {
		__sync_fetch_and_add(&dropped, 1);
		return 0;
	}
	e->seq = __sync_fetch_and_add(&produced, 1);
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
