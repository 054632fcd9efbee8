// SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause
/*
 * fentry - how long a kernel function takes, as a log2 histogram: fentry
 * runs when the function is entered, fexit when it returns. User space
 * chooses the function (bpf_program__set_attach_target) before load.
 *
 * fentry/fexit use BPF trampolines: the kernel patches a call into the
 * function's entry that jumps straight to the program. That is much cheaper
 * than a kprobe's breakpoint, and fexit can see both the arguments and the
 * return value. Some kernels refuse trampolines (this project's CI host
 * answers EPERM): the binary says so.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include "histogram.h"

const volatile __u32 targ_tgid = 0;  /* 0: every process */
const volatile __u64 unit_ns = 1000; /* 1: ns, 1000: us, 1000000: ms */

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 10240);
	__type(key, __u32);
	__type(value, __u64);
} start SEC(".maps");

/* The same log2 histogram as runqlat (histogram.h). */
DEFINE_HISTOGRAM(hist);

/* (1) No target in the section name: user space sets it before load. */
SEC("fentry")
int BPF_PROG(handle_entry)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u32 tid = (__u32)id;
	__u64 ts;

	if (targ_tgid && (id >> 32) != targ_tgid)
		return 0;
	ts = bpf_ktime_get_ns();
	bpf_map_update_elem(&start, &tid, &ts, BPF_ANY);
	return 0;
}

SEC("fexit")
int BPF_PROG(handle_exit)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	__u64 *tsp, delta;

	tsp = bpf_map_lookup_elem(&start, &tid);
	if (!tsp)
		return 0;
	delta = (bpf_ktime_get_ns() - *tsp) / unit_ns;
	bpf_map_delete_elem(&start, &tid);
	hist_add(&hist, delta);
	return 0;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
