/* SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause */
/*
 * parsing.h - bounds-checked packet parsing shared by the packet lessons.
 *
 * Each helper reads one header at the cursor, moves the cursor past it and
 * returns the next protocol, or -1 when the header does not fit before
 * data_end. The verifier rejects any packet access it cannot prove to lie
 * inside [data, data_end), so every helper compares the end of the header it
 * is about to read with data_end first. Read this file next to the
 * tc_classifier chapter: it explains each check.
 */
#ifndef LEBPF_PARSING_H
#define LEBPF_PARSING_H

#include <bpf/bpf_endian.h>

/*
 * vmlinux.h carries the kernel's types and enums, but not its #define
 * constants (they are not in BTF), so the ones we need are spelled out here.
 */
#define ETH_P_IP 0x0800
#define ETH_P_IPV6 0x86DD
#define ETH_P_8021Q 0x8100
#define ETH_P_8021AD 0x88A8

#define IPPROTO_HOPOPTS 0
#define IPPROTO_ROUTING 43
#define IPPROTO_FRAGMENT 44
#define IPPROTO_ICMPV6 58
#define IPPROTO_NONE 59
#define IPPROTO_DSTOPTS 60
#define IPPROTO_MH 135

#define IP_OFFSET 0x1FFF  /* IPv4 fragment offset, in 8-byte units */
#define IP6_OFFSET 0xFFF8 /* IPv6 fragment offset bits of frag_off */

/* TC verdicts: #defines in the kernel's uapi headers, so not in vmlinux.h.
 * An enum here, so that the Rust side reads them from the skeleton's types
 * (a lesson makes them visible with a global of this type). Not
 * tc_action: vmlinux.h has a struct of that name. */
enum tc_verdict {
	TC_ACT_OK = 0,
	TC_ACT_SHOT = 2,
	TC_ACT_REDIRECT = 7,
};

#ifndef VLAN_MAX_DEPTH
#define VLAN_MAX_DEPTH 2 /* 802.1Q, or 802.1ad + 802.1Q (QinQ) */
#endif
#ifndef IPV6_EXT_MAX_CHAIN
#define IPV6_EXT_MAX_CHAIN 5 /* extension headers we accept before L4 */
#endif
/* skip_ip6hdrext(): more extension headers than IPV6_EXT_MAX_CHAIN. */
#define IPV6_EXT_CHAIN_TOO_LONG -2

/* Where the next header starts. */
struct hdr_cursor {
	void *pos;
};

static __always_inline bool proto_is_vlan(__u16 h_proto)
{
	return h_proto == bpf_htons(ETH_P_8021Q) ||
	       h_proto == bpf_htons(ETH_P_8021AD);
}

/*
 * Ethernet plus up to VLAN_MAX_DEPTH VLAN tags. Returns the EtherType that
 * follows the tags, in network byte order (a third tag comes back as
 * ETH_P_8021Q and so counts as "not IP").
 *
 * At the TC hook the kernel usually has already moved the outer tag into
 * skb->vlan_tci, so the data starts with the inner EtherType; in
 * BPF_PROG_TEST_RUN and at XDP the tags are still in the data. Parsing them
 * here handles both.
 */
static __always_inline int parse_ethhdr(struct hdr_cursor *nh, void *data_end,
					struct ethhdr **ethhdr)
{
	struct ethhdr *eth = nh->pos;
	struct vlan_hdr *vlh;
	__u16 h_proto;
	int i;

	/* (P1) The 14-byte Ethernet header must fit before we read h_proto.
	 * (-DOMIT_P1 builds it without, to see the verifier refuse.) */
#ifndef OMIT_P1
	if ((void *)(eth + 1) > data_end)
		return -1;
#endif
	nh->pos = eth + 1;
	*ethhdr = eth;
	h_proto = eth->h_proto;

	/* (P2) A loop with a constant bound: the verifier must see it end. */
#pragma unroll
	for (i = 0; i < VLAN_MAX_DEPTH; i++) {
		if (!proto_is_vlan(h_proto))
			break;
		vlh = nh->pos;
		if ((void *)(vlh + 1) > data_end)
			return -1;
		h_proto = vlh->h_vlan_encapsulated_proto;
		nh->pos = vlh + 1;
	}
	return h_proto;
}

/*
 * IPv4, options included. Returns the protocol of the payload.
 */
static __always_inline int parse_iphdr(struct hdr_cursor *nh, void *data_end,
				       struct iphdr **iphdr)
{
	struct iphdr *iph = nh->pos;
	int hdrsize;

	/* (P3) First the fixed 20 bytes, so that ihl can be read at all. */
	if ((void *)(iph + 1) > data_end)
		return -1;
	if (iph->version != 4)
		return -1;
	/*
	 * (P4) ihl < 5 is invalid: the "next" header would overlap this one.
	 * The verifier does not need this check (the read stays in bounds);
	 * correct parsing does.
	 */
	hdrsize = iph->ihl * 4;
	if (hdrsize < (int)sizeof(*iph))
		return -1;
	/* (P5) Options make the header variable-length: check all of it. */
	if (nh->pos + hdrsize > data_end)
		return -1;
	nh->pos += hdrsize;
	*iphdr = iph;
	return iph->protocol;
}

/* True for the second and later fragments: they carry no L4 header. */
static __always_inline bool ipv4_is_later_fragment(const struct iphdr *iph)
{
	return (iph->frag_off & bpf_htons(IP_OFFSET)) != 0;
}

/* IPv6 fixed header. Returns the first Next Header value. */
static __always_inline int parse_ip6hdr(struct hdr_cursor *nh, void *data_end,
					struct ipv6hdr **ip6hdr)
{
	struct ipv6hdr *ip6h = nh->pos;

	if ((void *)(ip6h + 1) > data_end)
		return -1;
	if (ip6h->version != 6)
		return -1;
	nh->pos = ip6h + 1;
	*ip6hdr = ip6h;
	return ip6h->nexthdr;
}

/*
 * Walks a chain of at most IPV6_EXT_MAX_CHAIN extension headers and returns
 * the upper-layer protocol. *later_fragment is set when a Fragment header says
 * this is not the first fragment; the walk stops there, because what follows
 * is payload, not a header. A header cut short returns -1; a longer chain
 * returns IPV6_EXT_CHAIN_TOO_LONG: without a bound the verifier would refuse
 * the loop, and an attacker can hide the TCP header behind more padding than
 * we walk, so a caller with a port policy must not let such packets pass.
 */
static __always_inline int skip_ip6hdrext(struct hdr_cursor *nh, void *data_end,
					  __u8 next_hdr, bool *later_fragment)
{
	struct ipv6_opt_hdr *hdr;
	struct frag_hdr *fh;
	int i;

	/* MAX + 1 rounds: the protocol after at most MAX headers is found in
	 * one of them; a chain still going after the last round is too long. */
#pragma unroll
	for (i = 0; i < IPV6_EXT_MAX_CHAIN + 1; i++) {
		switch (next_hdr) {
		case IPPROTO_HOPOPTS:
		case IPPROTO_DSTOPTS:
		case IPPROTO_ROUTING:
		case IPPROTO_MH:
			hdr = nh->pos;
			if ((void *)(hdr + 1) > data_end)
				return -1;
			/* Length in 8-byte units, not counting the first 8. */
			nh->pos = (char *)hdr + (hdr->hdrlen + 1) * 8;
			next_hdr = hdr->nexthdr;
			break;
		case IPPROTO_AH:
			hdr = nh->pos;
			if ((void *)(hdr + 1) > data_end)
				return -1;
			/* AH counts 4-byte units, minus 2. */
			nh->pos = (char *)hdr + (hdr->hdrlen + 2) * 4;
			next_hdr = hdr->nexthdr;
			break;
		case IPPROTO_FRAGMENT:
			fh = nh->pos;
			if ((void *)(fh + 1) > data_end)
				return -1;
			nh->pos = fh + 1;
			if (fh->frag_off & bpf_htons(IP6_OFFSET)) {
				*later_fragment = true;
				return fh->nexthdr;
			}
			next_hdr = fh->nexthdr;
			break;
		default:
			return next_hdr;
		}
	}
	return IPV6_EXT_CHAIN_TOO_LONG;
}

/* TCP or UDP: both start with source and destination port. */
struct l4_ports {
	__be16 source;
	__be16 dest;
};

/*
 * Reads the ports of a TCP or UDP header, which must be complete (20 bytes
 * for TCP, 8 for UDP). Returns 0, or -1 when it is truncated.
 */
static __always_inline int parse_ports(struct hdr_cursor *nh, void *data_end,
				       __u8 proto, struct l4_ports **ports)
{
	int len = proto == IPPROTO_TCP ? sizeof(struct tcphdr)
				       : sizeof(struct udphdr);

	if (nh->pos + len > data_end)
		return -1;
	*ports = nh->pos;
	nh->pos += len;
	return 0;
}

/*
 * Checks that the L4 header of `proto` is complete: TCP with its options
 * (doff words, at least 5), UDP 8 bytes, ICMP and ICMPv6 8 bytes. Other
 * protocols have no header we look at. Returns 0, or -1 when it is cut off
 * or invalid.
 */
static __always_inline int check_l4hdr(struct hdr_cursor *nh, void *data_end,
				       int proto)
{
	struct tcphdr *tcph;
	int len;

	switch (proto) {
	case IPPROTO_TCP:
		tcph = nh->pos;
		if ((void *)(tcph + 1) > data_end)
			return -1;
		len = tcph->doff * 4;
		if (len < (int)sizeof(*tcph))
			return -1;
		break;
	case IPPROTO_UDP:
		len = sizeof(struct udphdr);
		break;
	case IPPROTO_ICMP:
	case IPPROTO_ICMPV6:
		len = 8;
		break;
	default:
		return 0;
	}
	if (nh->pos + len > data_end)
		return -1;
	return 0;
}

#endif /* LEBPF_PARSING_H */
