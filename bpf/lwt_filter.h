/* SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause */
/* Types shared by lwt_filter.bpf.c and the Rust side (through BTF). */
#ifndef LWT_FILTER_H
#define LWT_FILTER_H

/* The verdicts counted, as indexes into the `verdicts` map. */
enum lwt_verdict {
	LWT_PASS = 0,	     /* not denied: on its way */
	LWT_DROP_SOURCE = 1, /* from a --deny-src prefix */
	LWT_DROP_PORT = 2,   /* to a --deny-port */
	LWT_VERDICT_MAX = 3,
};

/* Per verdict, per CPU: user space sums the CPUs. */
struct lwt_count {
	__u64 packets;
	__u64 bytes;
};

/* LPM trie keys: the prefix length, then the address (network order). */
struct lwt_lpm_v4 {
	__u32 prefixlen;
	__u8 addr[4];
};

struct lwt_lpm_v6 {
	__u32 prefixlen;
	__u8 addr[16];
};

#endif /* LWT_FILTER_H */
