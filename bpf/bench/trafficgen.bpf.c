// SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause
/*
 * trafficgen - a packet generator for the benchmarks, not a lesson. Run with
 * BPF_PROG_TEST_RUN in live-frames mode (BPF_F_TEST_XDP_LIVE_FRAMES), the
 * kernel builds an xdp_frame from the test data for every repeat, and
 * XDP_REDIRECT transmits it on target_ifindex. Into a veth, the frames reach
 * the peer as xdp_frames, with no sk_buff, the way a NIC's frames reach a
 * native XDP program.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

const volatile __u32 target_ifindex = 0;

SEC("xdp")
int xdp_trafficgen(struct xdp_md *ctx)
{
	return bpf_redirect(target_ifindex, 0);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
