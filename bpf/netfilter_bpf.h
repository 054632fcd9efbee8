/* SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause */
/* Types shared by netfilter_bpf.bpf.c and the Rust side (through BTF). */
#ifndef NETFILTER_BPF_H
#define NETFILTER_BPF_H

/* The verdicts counted. */
enum nfb_verdict {
	NFB_PASS = 0,	     /* not denied */
	NFB_DROP_SOURCE = 1, /* from a --deny-src prefix */
	NFB_DROP_PORT = 2,   /* TCP or UDP to a --deny-port */
	NFB_VERDICT_MAX = 3,
};

/* The two ways into netfilter, each with its own counters: the `verdicts`
 * map is indexed by way * NFB_VERDICT_MAX + verdict. */
enum nfb_way {
	NFB_WAY_IPTABLES = 0, /* the socket filter, as an iptables match */
	NFB_WAY_HOOK = 1,     /* the netfilter program, on its own hook */
	NFB_WAY_MAX = 2,
};

struct nfb_count {
	__u64 packets;
	__u64 bytes;
};

/* LPM trie keys: the prefix length, then the address (network order). */
struct nfb_lpm_v4 {
	__u32 prefixlen;
	__u8 addr[4];
};

struct nfb_lpm_v6 {
	__u32 prefixlen;
	__u8 addr[16];
};

#endif /* NETFILTER_BPF_H */
