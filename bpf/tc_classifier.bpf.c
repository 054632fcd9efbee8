// SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause
/*
 * tc_classifier - count packets per protocol at the TC hook, both directions,
 * and drop the destination ports that user space lists in a map.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include "parsing.h"
#include "tc_classifier.h"

/* (1) Per-CPU counters: each CPU adds to its own copy, no atomics needed. */
/* ANCHOR: counters */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, TC_DIR_MAX *TC_PROTO_MAX);
	__type(key, __u32);
	__type(value, struct tc_counter);
} counters SEC(".maps");
/* ANCHOR_END: counters */

/* (2) The policy: destination ports (host byte order) to drop. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u16);
	__type(value, __u8);
} drop_ports SEC(".maps");

/* Makes the enums visible to the Rust skeleton's generated types. */
enum tc_dir tc_dir_unused;
enum tc_verdict tc_verdict_unused;
enum tc_proto tc_proto_unused;

static __always_inline enum tc_proto proto_class(int l4proto)
{
	switch (l4proto) {
	case IPPROTO_TCP:
		return TC_PROTO_TCP;
	case IPPROTO_UDP:
		return TC_PROTO_UDP;
	case IPPROTO_ICMP:
		return TC_PROTO_ICMP;
	case IPPROTO_ICMPV6:
		return TC_PROTO_ICMPV6;
	default:
		return TC_PROTO_OTHER;
	}
}

static __always_inline int classify(struct __sk_buff *skb, enum tc_dir dir)
{
	/* (3) Direct packet access: data and data_end bound every read. */
	/* ANCHOR: packet_bounds */
	void *data_end = (void *)(long)skb->data_end;
	void *data = (void *)(long)skb->data;
	/* ANCHOR_END: packet_bounds */
	struct hdr_cursor nh = {.pos = data};
	bool later_fragment = false;
	struct l4_ports *ports = NULL;
	struct ipv6hdr *ip6h;
	struct tc_counter *cnt;
	struct ethhdr *eth;
	struct iphdr *iph;
	int eth_type, l4proto = -1;
	__u32 key;
	__u16 dport;

	eth_type = parse_ethhdr(&nh, data_end, &eth);
	if (eth_type == bpf_htons(ETH_P_IP)) {
		l4proto = parse_iphdr(&nh, data_end, &iph);
		if (l4proto >= 0)
			later_fragment = ipv4_is_later_fragment(iph);
	} else if (eth_type == bpf_htons(ETH_P_IPV6)) {
		l4proto = parse_ip6hdr(&nh, data_end, &ip6h);
		if (l4proto >= 0)
			l4proto = skip_ip6hdrext(&nh, data_end, l4proto,
						 &later_fragment);
	}

	/* (4) Count first, so that dropped packets are counted too. */
	key = dir * TC_PROTO_MAX + proto_class(l4proto);
	cnt = bpf_map_lookup_elem(&counters, &key);
	/* (5) Lookups can return NULL as far as the verifier knows. */
	if (!cnt)
		return TC_ACT_OK;
	cnt->packets++;
	cnt->bytes += skb->len;

	/* Its ports lie beyond the extension headers we walk: it could be
	 * going to any port, so the port policy cannot let it pass. */
	if (l4proto == IPV6_EXT_CHAIN_TOO_LONG) {
		cnt->dropped++;
		return TC_ACT_SHOT;
	}

	/* (6) Only a first fragment (or a whole packet) has ports to read. */
	if ((l4proto != IPPROTO_TCP && l4proto != IPPROTO_UDP) ||
	    later_fragment)
		return TC_ACT_OK;
	if (parse_ports(&nh, data_end, l4proto, &ports) < 0)
		return TC_ACT_OK;

	dport = bpf_ntohs(ports->dest);
	if (bpf_map_lookup_elem(&drop_ports, &dport)) {
		cnt->dropped++;
		return TC_ACT_SHOT;
	}
	return TC_ACT_OK;
}

/*
 * (7) Two entry points, one per direction, sharing classify(). The ingress
 * one comes first in section "tc", so `tc filter ... sec tc` loads it.
 */
SEC("tc")
int tc_ingress(struct __sk_buff *skb)
{
	return classify(skb, TC_DIR_INGRESS);
}

SEC("tc")
int tc_egress(struct __sk_buff *skb)
{
	return classify(skb, TC_DIR_EGRESS);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
