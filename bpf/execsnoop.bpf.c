// SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause
/*
 * execsnoop - report every exec() and process exit, through a BPF ring
 * buffer or (with use_perf_buffer) a perf buffer, so the two can be compared
 * on the same events.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include "execsnoop.h"

/* (1) Set by user space before load. */
const volatile __u32 targ_pid = 0; /* 0: everyone; else it and its children */
const volatile bool use_perf_buffer = false;

/* (2) The ring buffer: one buffer shared by all CPUs, events in the order
 * they were reserved. Its size (bytes, a power of two) is set at open. */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 256 * 1024);
} events_rb SEC(".maps");

/* (3) The perf buffer: one buffer per CPU; libbpf sets the size. */
struct {
	__uint(type, BPF_MAP_TYPE_PERF_EVENT_ARRAY);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, sizeof(__u32));
} events_pb SEC(".maps");

/* bpf_perf_event_output copies from memory we own: a per-CPU scratch slot,
 * since 304 bytes is a lot of the 512-byte BPF stack. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct exec_event);
} scratch SEC(".maps");

/* (4) Events that did not fit in the buffer. A ring buffer leaves counting
 * them to us. A perf buffer counts them itself, but tells user space only
 * lazily (in a record written before the next sample that fits into that
 * same CPU's buffer), so we count there too for an immediate, exact figure. */
__u64 dropped = 0;

/* Makes the enum visible to the Rust skeleton's generated types. */
enum exec_event_type exec_event_type_unused;

static __always_inline bool wanted(struct task_struct *task, __u32 tgid)
{
	if (!targ_pid || tgid == targ_pid)
		return true;
	return (__u32)BPF_CORE_READ(task, real_parent, tgid) == targ_pid;
}

/* (5) Where to build the event: ring buffer space reserved in place (no
 * copy), or the scratch slot that the perf buffer will copy from. */
static __always_inline struct exec_event *event_start(void)
{
	struct exec_event *e;
	__u32 zero = 0;

	if (use_perf_buffer)
		return bpf_map_lookup_elem(&scratch, &zero);
	e = bpf_ringbuf_reserve(&events_rb, sizeof(*e), 0);
	if (!e)
		__sync_fetch_and_add(&dropped, 1);
	return e;
}

static __always_inline void event_finish(void *ctx, struct exec_event *e)
{
	if (use_perf_buffer) {
		if (bpf_perf_event_output(ctx, &events_pb, BPF_F_CURRENT_CPU, e,
					  sizeof(*e)))
			__sync_fetch_and_add(&dropped, 1);
	} else
		bpf_ringbuf_submit(e, 0);
}

static __always_inline void fill(struct exec_event *e, struct task_struct *task,
				 __u32 type, __u32 tgid)
{
	e->ts_ns = bpf_ktime_get_ns();
	e->type = type;
	e->pid = tgid;
	/* (6) CO-RE: the offset of real_parent and tgid in task_struct comes
	 * from this kernel's BTF at load time, not from our vmlinux.h. */
	e->ppid = BPF_CORE_READ(task, real_parent, tgid);
	e->uid = (__u32)bpf_get_current_uid_gid();
	e->cpu = bpf_get_smp_processor_id();
	bpf_get_current_comm(e->comm, sizeof(e->comm));
}

SEC("tp/sched/sched_process_exec")
int handle_exec(struct trace_event_raw_sched_process_exec *ctx)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	unsigned int filename_off;
	struct exec_event *e;

	if (!wanted(task, tgid))
		return 0;
	e = event_start();
	if (!e)
		return 0;
	fill(e, task, EXEC_EVENT_EXEC, tgid);
	e->exit_code = 0;
	/* (7) The filename is a __data_loc field: the low 16 bits of the
	 * field give its offset from the start of the record. */
	filename_off = ctx->__data_loc_filename & 0xFFFF;
	bpf_probe_read_kernel_str(e->filename, sizeof(e->filename),
				  (void *)ctx + filename_off);
	event_finish(ctx, e);
	return 0;
}

/* include/linux/sched/signal.h: signal->flags once exit_group() or a fatal
 * signal ends every thread of the process (#defines are not in BTF). */
#define SIGNAL_GROUP_EXIT 0x00000004

/* (8) Every thread runs this tracepoint as it exits; the process ends with
 * the last one, which need not be the main thread (pid == tgid): the main
 * thread may leave first (pthread_exit), and an exec from another thread
 * ends the main thread while the process lives on. Since Linux 6.16 the
 * tracepoint says whether this thread was the last (group_dead); before,
 * the count of live threads, already decremented here, tells. */
static __always_inline bool process_ended(void *ctx, struct task_struct *task)
{
	struct trace_event_raw_sched_process_exit *args = ctx;

	if (bpf_core_field_exists(args->group_dead))
		return args->group_dead;
	return BPF_CORE_READ(task, signal, live.counter) == 0;
}

/* The status the parent's wait(2) gets: exit_group()'s or the fatal
 * signal's for the whole process, else the main thread's own. */
static __always_inline __u32 process_exit_code(struct task_struct *task)
{
	struct signal_struct *sig = BPF_CORE_READ(task, signal);

	if (BPF_CORE_READ(sig, flags) & SIGNAL_GROUP_EXIT)
		return BPF_CORE_READ(sig, group_exit_code);
	return BPF_CORE_READ(task, group_leader, exit_code);
}

SEC("tp/sched/sched_process_exit")
int handle_exit(void *ctx)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	struct exec_event *e;

	if (!process_ended(ctx, task) || !wanted(task, tgid))
		return 0;
	e = event_start();
	if (!e)
		return 0;
	fill(e, task, EXEC_EVENT_EXIT, tgid);
	e->exit_code = process_exit_code(task);
	e->filename[0] = '\0';
	event_finish(ctx, e);
	return 0;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
