// SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause
/*
 * lwt_filter - a filter that runs only for the traffic of one route. The
 * program is attached to a route, as its lightweight tunnel (LWT)
 * encapsulation: `lwt_in` runs for every packet received that the route
 * carries, and its verdict passes (BPF_OK) or drops (BPF_DROP) it. Traffic
 * on every other route never meets it.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "lib/parsing.h"
#include "lwt_filter.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* BPF_OK and BPF_DROP are #defines in the uapi header, not in vmlinux.h. */
#define LWT_OK 0
#define LWT_DROP 2

/* ANCHOR: maps */
/* (1) The policy: source prefixes (longest match) and destination ports. */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(map_flags, BPF_F_NO_PREALLOC); /* LPM tries require it */
	__uint(max_entries, 1024);
	__type(key, struct lwt_lpm_v4);
	__type(value, __u8);
} deny_src_v4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, 1024);
	__type(key, struct lwt_lpm_v6);
	__type(value, __u8);
} deny_src_v6 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u16); /* host byte order */
	__type(value, __u8);
} deny_ports SEC(".maps");

/* (2) Packets and bytes per verdict. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, LWT_VERDICT_MAX);
	__type(key, __u32);
	__type(value, struct lwt_count);
} verdicts SEC(".maps");
/* ANCHOR_END: maps */

/* Makes the enum visible to the Rust skeleton's generated types. */
enum lwt_verdict lwt_verdict_unused;

static __always_inline int count(struct __sk_buff *skb, __u32 verdict)
{
	struct lwt_count *c = bpf_map_lookup_elem(&verdicts, &verdict);

	if (c) {
		c->packets++;
		c->bytes += skb->len;
	}
	return verdict == LWT_PASS ? LWT_OK : LWT_DROP;
}

/* ANCHOR: lwt_in */
/* (3) The packet starts at its IP header: a route carries IP, and LWT
 * programs never see a link-layer header. Like TC programs they read it in
 * place, between skb->data and skb->data_end. */
SEC("lwt_in")
int lwt_in_filter(struct __sk_buff *skb)
{
	void *data_end = (void *)(long)skb->data_end;
	struct hdr_cursor nh = {.pos = (void *)(long)skb->data};
	struct l4_ports *ports;
	int proto = -1;

	if (skb->protocol == bpf_htons(ETH_P_IP)) {
		struct lwt_lpm_v4 key = {.prefixlen = 32};
		struct iphdr *iph;

		proto = parse_iphdr(&nh, data_end, &iph);
		if (proto < 0)
			return count(skb, LWT_PASS); /* the stack drops it */
		__builtin_memcpy(key.addr, &iph->saddr, 4);
		if (bpf_map_lookup_elem(&deny_src_v4, &key))
			return count(skb, LWT_DROP_SOURCE);
		if (ipv4_is_later_fragment(iph))
			return count(skb, LWT_PASS); /* no ports to check */
	} else if (skb->protocol == bpf_htons(ETH_P_IPV6)) {
		struct lwt_lpm_v6 key = {.prefixlen = 128};
		struct ipv6hdr *ip6h;
		bool later_fragment = false;

		proto = parse_ip6hdr(&nh, data_end, &ip6h);
		if (proto < 0)
			return count(skb, LWT_PASS);
		__builtin_memcpy(key.addr, &ip6h->saddr, 16);
		if (bpf_map_lookup_elem(&deny_src_v6, &key))
			return count(skb, LWT_DROP_SOURCE);
		proto = skip_ip6hdrext(&nh, data_end, proto, &later_fragment);
		/* (4) A chain too long to walk could hide a denied port:
		 * such a packet does not pass. */
		if (proto == IPV6_EXT_CHAIN_TOO_LONG)
			return count(skb, LWT_DROP_PORT);
		if (proto < 0 || later_fragment)
			return count(skb, LWT_PASS);
	}

	if ((proto == IPPROTO_TCP || proto == IPPROTO_UDP) &&
	    !parse_ports(&nh, data_end, proto, &ports)) {
		__u16 dport = bpf_ntohs(ports->dest);

		if (bpf_map_lookup_elem(&deny_ports, &dport))
			return count(skb, LWT_DROP_PORT);
	}
	return count(skb, LWT_PASS);
}
/* ANCHOR_END: lwt_in */
