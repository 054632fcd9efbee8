// SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause
/*
 * netfilter_bpf - one policy (drop packets from denied source prefixes or
 * to denied TCP/UDP ports), two ways into netfilter:
 *
 *   nfb_match, a socket filter program that an iptables rule runs as its
 *   match (`-m bpf --object-pinned`): it returns 1 when the packet matches,
 *   and the rule's target (DROP) decides;
 *
 *   nfb_hook, a netfilter program attached with a bpf_link to a netfilter
 *   hook (Linux 6.4+): it returns the verdict itself, NF_DROP or NF_ACCEPT.
 *
 * Both read the packet from its IP header on, each with the helper its
 * program type has, and share the maps: a change to the policy reaches both
 * on the next packet.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "lib/parsing.h"
#include "netfilter_bpf.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* Netfilter's verdicts: #defines in the uapi header, not in vmlinux.h. */
#define NF_DROP 0
#define NF_ACCEPT 1

extern int bpf_dynptr_from_skb(struct __sk_buff *skb, __u64 flags,
			       struct bpf_dynptr *ptr) __ksym;

/* ANCHOR: maps */
/* (1) The policy: source prefixes (longest match) and destination ports. */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(map_flags, BPF_F_NO_PREALLOC); /* LPM tries require it */
	__uint(max_entries, 1024);
	__type(key, struct nfb_lpm_v4);
	__type(value, __u8);
} deny_src_v4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, 1024);
	__type(key, struct nfb_lpm_v6);
	__type(value, __u8);
} deny_src_v6 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u16); /* host byte order */
	__type(value, __u8);
} deny_ports SEC(".maps");

/* (2) Packets and bytes per way and verdict, per CPU. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, NFB_WAY_MAX *NFB_VERDICT_MAX);
	__type(key, __u32);
	__type(value, struct nfb_count);
} verdicts SEC(".maps");
/* ANCHOR_END: maps */

/* Makes the enums visible to the Rust skeleton's generated types. */
enum nfb_verdict nfb_verdict_unused;
enum nfb_way nfb_way_unused;

/* ANCHOR: reader */
/* (3) Where the bytes come from. A socket filter reads them with
 * bpf_skb_load_bytes(); a netfilter program has no such helper, but can
 * wrap the skb in a dynptr (a pointer the verifier knows the size of) and
 * read through it. Each program passes its kind as a constant, so the
 * compiler keeps only its branch. */
enum nfb_source { FROM_SKB, FROM_DYNPTR };

struct nfb_pkt {
	struct __sk_buff *skb;	/* FROM_SKB */
	struct bpf_dynptr *ptr; /* FROM_DYNPTR */
};

static __always_inline int load(const struct nfb_pkt *p, enum nfb_source from,
				__u32 off, void *buf, __u32 len)
{
	if (from == FROM_SKB)
		return bpf_skb_load_bytes(p->skb, off, buf, len);
	return bpf_dynptr_read(buf, len, p->ptr, off, 0);
}
/* ANCHOR_END: reader */

/* The destination port of the TCP or UDP header at `off`. */
static __always_inline int
dest_port(const struct nfb_pkt *p, enum nfb_source from, __u32 off, __u16 *port)
{
	__be16 ports[2];

	if (load(p, from, off, ports, sizeof(ports)))
		return -1;
	*port = bpf_ntohs(ports[1]);
	return 0;
}

/* IPv6: the protocol after the extension headers, and where it starts.
 * -1: cut off; IPV6_EXT_CHAIN_TOO_LONG: more headers than we walk. */
static __always_inline int skip_ext(const struct nfb_pkt *p,
				    enum nfb_source from, __u8 next, __u32 *off,
				    bool *later_fragment)
{
	__u8 hdr[2]; /* next header, length */
	__be16 frag_off;
	int i;

	for (i = 0; i < IPV6_EXT_MAX_CHAIN + 1; i++) {
		switch (next) {
		case IPPROTO_HOPOPTS:
		case IPPROTO_DSTOPTS:
		case IPPROTO_ROUTING:
		case IPPROTO_MH:
			if (load(p, from, *off, hdr, sizeof(hdr)))
				return -1;
			next = hdr[0];
			*off += (hdr[1] + 1) * 8;
			break;
		case IPPROTO_FRAGMENT:
			if (load(p, from, *off, hdr, sizeof(hdr)) ||
			    load(p, from, *off + 2, &frag_off,
				 sizeof(frag_off)))
				return -1;
			next = hdr[0];
			if (frag_off & bpf_htons(IP6_OFFSET))
				*later_fragment = true;
			*off += 8;
			break;
		default:
			return next;
		}
	}
	return IPV6_EXT_CHAIN_TOO_LONG;
}

/* ANCHOR: classify */
/* (4) The policy, on a packet that starts at its IP header: the source
 * first, then (TCP and UDP, not a later fragment) the destination port. */
static __always_inline enum nfb_verdict
classify(const struct nfb_pkt *p, enum nfb_source from, __u16 l3_proto)
{
	bool later_fragment = false;
	__u32 off = 0;
	__u16 dport;
	int proto;

	if (l3_proto == bpf_htons(ETH_P_IP)) {
		struct nfb_lpm_v4 key = {.prefixlen = 32};
		struct iphdr iph;

		if (load(p, from, 0, &iph, sizeof(iph)) || iph.ihl < 5)
			return NFB_PASS; /* the stack drops what is cut off */
		__builtin_memcpy(key.addr, &iph.saddr, 4);
		if (bpf_map_lookup_elem(&deny_src_v4, &key))
			return NFB_DROP_SOURCE;
		if (iph.frag_off & bpf_htons(IP_OFFSET))
			return NFB_PASS; /* a later fragment: no ports */
		proto = iph.protocol;
		off = iph.ihl * 4;
	} else if (l3_proto == bpf_htons(ETH_P_IPV6)) {
		struct nfb_lpm_v6 key = {.prefixlen = 128};
		struct ipv6hdr ip6h;

		if (load(p, from, 0, &ip6h, sizeof(ip6h)))
			return NFB_PASS;
		__builtin_memcpy(key.addr, &ip6h.saddr, 16);
		if (bpf_map_lookup_elem(&deny_src_v6, &key))
			return NFB_DROP_SOURCE;
		off = sizeof(ip6h);
		proto = skip_ext(p, from, ip6h.nexthdr, &off, &later_fragment);
		/* (5) A chain too long to walk could hide a denied port:
		 * such a packet does not pass. */
		if (proto == IPV6_EXT_CHAIN_TOO_LONG)
			return NFB_DROP_PORT;
		if (proto < 0 || later_fragment)
			return NFB_PASS;
	} else {
		return NFB_PASS;
	}

	if ((proto == IPPROTO_TCP || proto == IPPROTO_UDP) &&
	    !dest_port(p, from, off, &dport) &&
	    bpf_map_lookup_elem(&deny_ports, &dport))
		return NFB_DROP_PORT;
	return NFB_PASS;
}
/* ANCHOR_END: classify */

static __always_inline void count(enum nfb_way way, enum nfb_verdict verdict,
				  __u32 len)
{
	__u32 key = way * NFB_VERDICT_MAX + verdict;
	struct nfb_count *c = bpf_map_lookup_elem(&verdicts, &key);

	if (c) {
		c->packets++;
		c->bytes += len;
	}
}

/* ANCHOR: programs */
/* (6) As an iptables match, the program sees the packet from its IP header
 * on (iptables runs at the IP layer) and answers "matches" (non-zero) or
 * not; the rule's target does the dropping. */
SEC("socket")
int nfb_match(struct __sk_buff *skb)
{
	struct nfb_pkt p = {.skb = skb};
	enum nfb_verdict v = classify(&p, FROM_SKB, skb->protocol);

	count(NFB_WAY_IPTABLES, v, skb->len);
	return v != NFB_PASS;
}

/* (7) On its own netfilter hook, the program gives the verdict. */
SEC("netfilter")
int nfb_hook(struct bpf_nf_ctx *ctx)
{
	struct sk_buff *skb = ctx->skb;
	struct bpf_dynptr ptr;
	struct nfb_pkt p = {.ptr = &ptr};
	enum nfb_verdict v;

	if (bpf_dynptr_from_skb((struct __sk_buff *)skb, 0, &ptr))
		return NF_ACCEPT;
	v = classify(&p, FROM_DYNPTR, skb->protocol);
	count(NFB_WAY_HOOK, v, skb->len);
	return v == NFB_PASS ? NF_ACCEPT : NF_DROP;
}
/* ANCHOR_END: programs */
