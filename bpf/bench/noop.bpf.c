// SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause
/*
 * noop - programs that do nothing, the baselines the benchmarks divide by:
 * what BPF_PROG_TEST_RUN costs for a program that returns at once.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include "parsing.h"

SEC("tc")
int tc_noop(struct __sk_buff *skb)
{
	return TC_ACT_OK;
}

SEC("xdp")
int xdp_noop(struct xdp_md *ctx)
{
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
