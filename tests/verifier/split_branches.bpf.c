// SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause
/*
 * The shape of the xdp_firewall lesson that the verifier refuses: parse in
 * one "IPv4 or IPv6" branch, then build the key in a second branch on the
 * same EtherType. Correct C, but the verifier does not know that the two
 * tests agree: it explores "parsed as IPv4, keyed as IPv6" and finds a read
 * of the IPv6 source address past what was checked. Loaded by
 * tests/verifier_logs.rs, which compares the log with the chapter.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "parsing.h"

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16);
	__type(key, __u8[16]);
	__type(value, __u8);
} blocked SEC(".maps");

SEC("xdp")
int split_branches(struct xdp_md *ctx)
{
	void *data_end = (void *)(long)ctx->data_end;
	void *data = (void *)(long)ctx->data;
	struct hdr_cursor nh = {.pos = data};
	struct ipv6hdr *ip6h;
	struct iphdr *iph;
	struct ethhdr *eth;
	__u8 key[16] = {};
	int eth_type, proto;
	void *l3;

	eth_type = parse_ethhdr(&nh, data_end, &eth);
	l3 = nh.pos;
	if (eth_type == bpf_htons(ETH_P_IP))
		proto = parse_iphdr(&nh, data_end, &iph);
	else if (eth_type == bpf_htons(ETH_P_IPV6))
		proto = parse_ip6hdr(&nh, data_end, &ip6h);
	else
		return XDP_PASS;
	if (proto < 0)
		return XDP_DROP;

	/* The second branch, on the EtherType read again from the packet (an
	 * untagged frame here). The verifier knows nothing of the value it
	 * loads, so it explores both sides of this test after either parse.
	 * (volatile: else clang reuses the first load and merges the
	 * branches.) */
	if (*(volatile __be16 *)&eth->h_proto == bpf_htons(ETH_P_IP))
		__builtin_memcpy(key, &((struct iphdr *)l3)->saddr, 4);
	else
		__builtin_memcpy(key, &((struct ipv6hdr *)l3)->saddr, 16);
	return bpf_map_lookup_elem(&blocked, key) ? XDP_DROP : XDP_PASS;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
