// SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause
/*
 * socket_filter - a small tcpdump. `capture` runs on an AF_PACKET socket
 * and keeps the frames that match a filter set before load, cut to a snap
 * length; `datagrams` runs on a UDP socket and keeps only the datagrams
 * whose payload starts with a given prefix.
 *
 * A socket filter's return value is the number of bytes of the packet to
 * keep: 0 drops it (for this socket only: the packet goes on to everyone
 * else), a number at least the packet's length keeps all of it.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "socket_filter.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define ETH_HLEN 14
#define ETH_P_IP 0x0800
#define ETH_P_IPV6 0x86DD
#define ETH_P_8021Q 0x8100
#define ETH_P_8021AD 0x88A8
#define IPPROTO_ICMPV6 58
#define VLAN_VID_MASK 0x0fff
#define IP_MF 0x2000
#define IP_OFFSET 0x1fff

/* ANCHOR: config */
/* (1) The filter, set before load; 0 (or false) matches anything. */
const volatile __u8 want_proto = 0; /* IPPROTO_TCP, _UDP, _ICMP, _ICMPV6 */
const volatile __u16 want_port = 0; /* source or destination port */
const volatile bool want_host = false;
const volatile __u32 host_addr[4] = {}; /* source or destination; IPv4 mapped */
const volatile __u16 want_vlan = 0;	/* VLAN id, 1-4094 */
const volatile __u32 snaplen = 262144;	/* bytes kept of each frame */
/* ANCHOR_END: config */

/* For `datagrams`: the payload prefix a datagram must start with. */
const volatile __u8 prefix[16] = {};
const volatile __u32 prefix_len = 0;

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct filter_counts);
} counts SEC(".maps");

static __always_inline __u32 verdict(__u32 keep)
{
	struct filter_counts *c;
	__u32 zero = 0;

	c = bpf_map_lookup_elem(&counts, &zero);
	if (c) {
		/* Per-CPU: no other CPU writes this copy, no atomics needed. */
		if (keep)
			c->kept++;
		else
			c->rejected++;
	}
	return keep;
}

/* What the filter looks at, read from the frame. */
struct headers {
	__u16 vlan; /* the first VLAN id, 0 if untagged */
	bool ip;    /* IPv4 or IPv6 */
	__u8 proto; /* L4 protocol */
	bool ports; /* sport and dport were read */
	__u16 sport, dport;
	__u32 saddr[4], daddr[4]; /* IPv4 mapped into IPv6 */
};

/* (2) Socket filters cannot read the packet directly (skb->data is not
 * theirs to dereference): bpf_skb_load_bytes_relative() copies bytes at
 * an offset from the start of a header, here the Ethernet (MAC) header,
 * and fails when they are not there instead of reading past the end.
 * Relative to the MAC header, because where skb->data points depends on
 * the caller: the Ethernet header on an AF_PACKET socket, the IP header
 * under BPF_PROG_TEST_RUN. */
static __always_inline int load(struct __sk_buff *skb, __u32 off, void *to,
				__u32 len)
{
	return bpf_skb_load_bytes_relative(skb, off, to, len,
					   BPF_HDR_START_MAC);
}

/* ANCHOR: parse */
static __always_inline int parse(struct __sk_buff *skb, struct headers *h)
{
	__u32 off = 12; /* the EtherType, after two MAC addresses */
	__u16 proto, tci;

	/* (3) A tag the driver took out of the frame (VLAN offload) is in
	 * the skb's metadata; tags still in the frame follow the MACs. */
	if (skb->vlan_present)
		h->vlan = skb->vlan_tci & VLAN_VID_MASK;
	if (load(skb, off, &proto, 2))
		return -1;
	for (int i = 0; i < 2; i++) {
		if (proto != bpf_htons(ETH_P_8021Q) &&
		    proto != bpf_htons(ETH_P_8021AD))
			break;
		if (load(skb, off + 2, &tci, 2) ||
		    load(skb, off + 4, &proto, 2))
			return -1;
		if (!h->vlan)
			h->vlan = bpf_ntohs(tci) & VLAN_VID_MASK;
		off += 4;
	}
	off += 2;

	if (proto == bpf_htons(ETH_P_IP)) {
		struct iphdr ip;

		if (load(skb, off, &ip, sizeof(ip)) || ip.ihl < 5)
			return -1;
		h->saddr[2] = h->daddr[2] = bpf_htonl(0xffff);
		h->saddr[3] = ip.saddr;
		h->daddr[3] = ip.daddr;
		h->proto = ip.protocol;
		h->ip = true;
		/* Only the first fragment holds the ports. */
		if (ip.frag_off & bpf_htons(IP_OFFSET))
			return 0;
		off += ip.ihl * 4;
	} else if (proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr ip6;

		if (load(skb, off, &ip6, sizeof(ip6)))
			return -1;
		__builtin_memcpy(h->saddr, &ip6.saddr, 16);
		__builtin_memcpy(h->daddr, &ip6.daddr, 16);
		/* Extension headers are not followed: a packet that has
		 * them shows its first one as the protocol. */
		h->proto = ip6.nexthdr;
		h->ip = true;
		off += sizeof(ip6);
	} else {
		return 0;
	}

	if (h->proto == IPPROTO_TCP || h->proto == IPPROTO_UDP) {
		__u16 ports[2];

		if (load(skb, off, ports, sizeof(ports)))
			return 0; /* no ports: only a port filter fails */
		h->sport = bpf_ntohs(ports[0]);
		h->dport = bpf_ntohs(ports[1]);
		h->ports = true;
	}
	return 0;
}
/* ANCHOR_END: parse */

static __always_inline bool same_addr(const __u32 *a)
{
	return a[0] == host_addr[0] && a[1] == host_addr[1] &&
	       a[2] == host_addr[2] && a[3] == host_addr[3];
}

/* ANCHOR: capture */
/* (4) Every criterion given must hold; then keep `snaplen` bytes. */
SEC("socket")
int capture(struct __sk_buff *skb)
{
	struct headers h = {};

	if (parse(skb, &h))
		return verdict(0); /* a frame too short for its headers */
	if (want_vlan && h.vlan != want_vlan)
		return verdict(0);
	if ((want_proto || want_port || want_host) && !h.ip)
		return verdict(0);
	if (want_proto && h.proto != want_proto)
		return verdict(0);
	if (want_port &&
	    (!h.ports || (h.sport != want_port && h.dport != want_port)))
		return verdict(0);
	if (want_host && !same_addr(h.saddr) && !same_addr(h.daddr))
		return verdict(0);
	return verdict(snaplen);
}
/* ANCHOR_END: capture */

/* ANCHOR: datagrams */
/* (5) On a UDP socket the program sees the datagram from its UDP header
 * on (the IP header is already gone). Keep those whose payload starts
 * with the prefix, cut to the UDP header and `snaplen` bytes of payload;
 * drop the rest, which the socket then never queues. */
SEC("socket")
int datagrams(struct __sk_buff *skb)
{
	__u8 head[16];
	__u32 n = prefix_len;

	if (n > sizeof(head))
		n = sizeof(head);
	if (n && bpf_skb_load_bytes(skb, sizeof(struct udphdr), head, n))
		return verdict(0); /* shorter than the prefix */
	for (__u32 i = 0; i < sizeof(head); i++) {
		if (i >= n)
			break;
		if (head[i] != prefix[i])
			return verdict(0);
	}
	return verdict(sizeof(struct udphdr) + snaplen);
}
/* ANCHOR_END: datagrams */
