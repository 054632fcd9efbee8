// SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause
/*
 * runqlat - scheduler run queue latency: how long a task that is ready to run
 * waits before it gets a CPU, as a log2 histogram built in the kernel.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include "histogram.h"

#define TASK_RUNNING 0

const volatile __u32 targ_tgid = 0;  /* 0: every process */
const volatile __u32 targ_tid = 0;   /* 0: every thread */
const volatile bool targ_ms = false; /* milliseconds instead of microseconds */

/* (1) When each thread became ready to run, by thread id. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 10240);
	__type(key, __u32);
	__type(value, __u64);
} start SEC(".maps");

/* (2) The histogram: one counter per log2 slot (histogram.h). User space
 * never resets it; it prints the difference between two readings. */
DEFINE_HISTOGRAM(hist);

static __always_inline bool wanted(struct task_struct *p)
{
	/* (4) tp_btf arguments are typed kernel pointers: p->tgid is a
	 * plain load, checked by the verifier against the kernel's BTF, with
	 * no bpf_probe_read_kernel() (BPF_CORE_READ) around it. vmlinux.h
	 * marks its types for CO-RE, so the offset is relocated at load. */
	if (targ_tgid && p->tgid != (int)targ_tgid)
		return false;
	if (targ_tid && p->pid != (int)targ_tid)
		return false;
	return true;
}

/* ANCHOR: task_state */
/* (6) Linux 5.14 renamed task_struct's state to __state. This is the
 * older layout, for CO-RE: libbpf drops the ___old suffix when it matches
 * the struct against the kernel's BTF, and relocates `state` there. */
struct task_struct___old {
	long state;
} __attribute__((preserve_access_index));

/* Whichever field this kernel has: bpf_core_field_exists() is a constant
 * that libbpf fills in at load, and the verifier drops the branch that
 * names a field this kernel lacks. */
static __always_inline long task_state(struct task_struct *t)
{
	if (bpf_core_field_exists(t->__state))
		return BPF_CORE_READ(t, __state);
	return BPF_CORE_READ((struct task_struct___old *)t, state);
}
/* ANCHOR_END: task_state */

static __always_inline int enqueued(struct task_struct *p)
{
	__u32 tid = p->pid;
	__u64 ts;

	if (!tid || !wanted(p)) /* tid 0: the idle task */
		return 0;
	ts = bpf_ktime_get_ns();
	bpf_map_update_elem(&start, &tid, &ts, BPF_ANY);
	return 0;
}

SEC("tp_btf/sched_wakeup")
int BPF_PROG(handle_wakeup, struct task_struct *p)
{
	return enqueued(p);
}

SEC("tp_btf/sched_wakeup_new")
int BPF_PROG(handle_wakeup_new, struct task_struct *p)
{
	return enqueued(p);
}

SEC("tp_btf/sched_switch")
int BPF_PROG(handle_switch, bool preempt, struct task_struct *prev,
	     struct task_struct *next)
{
	__u64 *tsp, delta;
	__u32 tid;

	/* (5) A thread switched out while still runnable (preempted) goes
	 * straight back to waiting on the run queue. */
	if (task_state(prev) == TASK_RUNNING)
		enqueued(prev);

	tid = next->pid;
	tsp = bpf_map_lookup_elem(&start, &tid);
	if (!tsp)
		return 0;
	delta = bpf_ktime_get_ns() - *tsp;
	bpf_map_delete_elem(&start, &tid);

	delta /= targ_ms ? 1000000 : 1000;
	/* (3) The slot is log2 of the wait, computed without a loop. */
	hist_add(&hist, delta);
	return 0;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
