// SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause
/*
 * uprobe - trace a function in a user-space program or library: its
 * arguments when it is called (uprobe) and its return value (uretprobe).
 * User space picks the binary, the function and the process at attach time;
 * the same two programs work for any function.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include "uprobe.h"

/* (1) Which argument (0-2) is a C string to copy, or UPROBE_NO_STR. */
const volatile __u32 str_arg = UPROBE_NO_STR;
/* (4) 0: every process; else only this one (see start()). */
const volatile __u32 targ_tgid = 0;

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 256 * 1024);
} events SEC(".maps");

__u64 dropped = 0;

/* Makes the types visible to the Rust skeleton's generated types. */
struct uprobe_event uprobe_event_unused;
enum uprobe_kind uprobe_kind_unused;
enum uprobe_limits uprobe_limits_unused;

static __always_inline struct uprobe_event *start(__u32 kind)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct uprobe_event *e;

	/* (4) Attaching for one pid should be enough, but older kernels
	 * (Debian's 6.1, where the tests saw it) also run a uretprobe attached
	 * for one process on the returns of other processes through the same
	 * probe: the program checks the process itself. */
	if (targ_tgid && (id >> 32) != targ_tgid)
		return NULL;
	e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		__sync_fetch_and_add(&dropped, 1);
		return NULL;
	}
	e->ts_ns = bpf_ktime_get_ns();
	e->kind = kind;
	e->pid = id >> 32;
	e->tid = (__u32)id;
	e->str_arg = UPROBE_NO_STR;
	e->str[0] = '\0';
	e->ret = 0;
	bpf_get_current_comm(e->comm, sizeof(e->comm));
	return e;
}

/* (2) BPF_KPROBE names the arguments; underneath they come from the saved
 * registers (pt_regs) through the architecture's calling convention. For
 * uprobes, libbpf 1.2+ also spells it BPF_UPROBE; the older libbpf headers
 * that `make raw` uses (Debian's 1.1) have only BPF_KPROBE. */
SEC("uprobe")
int BPF_KPROBE(handle_entry, __u64 a0, __u64 a1, __u64 a2)
{
	struct uprobe_event *e = start(UPROBE_ENTRY);
	__u64 str_ptr;

	if (!e)
		return 0;
	e->args[0] = a0;
	e->args[1] = a1;
	e->args[2] = a2;
	if (str_arg < 3) {
		str_ptr = str_arg == 0 ? a0 : str_arg == 1 ? a1 : a2;
		/* (3) The string lives in the traced process's memory: a
		 * user-space read, which may fail if the page is not in. */
		bpf_probe_read_user_str(e->str, sizeof(e->str),
					(const void *)str_ptr);
		e->str_arg = str_arg;
	}
	bpf_ringbuf_submit(e, 0);
	return 0;
}

SEC("uretprobe")
int BPF_KRETPROBE(handle_return, __u64 ret)
{
	struct uprobe_event *e = start(UPROBE_RETURN);

	if (!e)
		return 0;
	e->args[0] = e->args[1] = e->args[2] = 0;
	e->ret = ret;
	bpf_ringbuf_submit(e, 0);
	return 0;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
