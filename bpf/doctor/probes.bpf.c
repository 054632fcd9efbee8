// SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause
/*
 * probes - the smallest programs of each kind the lessons need, for the
 * doctor to load (and, where that is the question, attach) one at a time:
 * what loads here is what the lessons can use here. None does anything.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* BPF trampolines (fentry, fexit): bpf_fentry_test1 is a kernel function
 * that exists for such tests and that nothing else calls. */
SEC("fentry/bpf_fentry_test1")
int BPF_PROG(probe_fentry, int a)
{
	return 0;
}

/* kprobes, on the same function. */
SEC("kprobe/bpf_fentry_test1")
int BPF_KPROBE(probe_kprobe)
{
	return 0;
}

/* BPF LSM: a program that allows everything. */
SEC("lsm/file_open")
int BPF_PROG(probe_lsm, struct file *file)
{
	return 0;
}

/* A TC program, for the tcx probe. */
SEC("tc")
int probe_tc(struct __sk_buff *skb)
{
	return 0; /* TC_ACT_OK */
}
