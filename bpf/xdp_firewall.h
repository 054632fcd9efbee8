/* SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause */
/* Types shared by xdp_firewall.bpf.c and the Rust side (through BTF). */
#ifndef XDP_FIREWALL_H
#define XDP_FIREWALL_H

/* Why a packet got its verdict; the counters map is indexed by this. */
enum fw_reason {
	FW_PASS = 0,	/* passed the policy (or is not IP) */
	FW_ALLOWED = 1, /* source on the allowlist: passed, not rate limited */
	FW_BLOCKED = 2, /* source on the blocklist: dropped */
	FW_RATE_LIMITED = 3, /* over its source's rate: dropped */
	FW_MALFORMED = 4,    /* headers cut off or invalid: dropped */
	FW_REASON_MAX = 5,
};

struct fw_counter {
	__u64 packets;
	__u64 bytes;
};

/* LPM trie keys: prefix length in bits, then the address (network order). */
/* ANCHOR: lpm_key */
struct fw_lpm_v4 {
	__u32 prefixlen;
	__u8 addr[4];
};
/* ANCHOR_END: lpm_key */

struct fw_lpm_v6 {
	__u32 prefixlen;
	__u8 addr[16];
};

/* A blocklist or allowlist entry's value: packets it matched. */
struct fw_rule {
	__u64 hits;
};

/*
 * Rate-limit key: an IPv4 source as ::ffff:a.b.c.d, or the /64 of an IPv6
 * source (one host usually owns a whole /64, so per-address buckets would be
 * trivial to dodge).
 */
struct fw_src {
	__u8 addr[16];
};

/* GCRA state: the theoretical arrival time of the next conforming packet. */
struct fw_bucket {
	__u64 tat_ns;
};

#endif /* XDP_FIREWALL_H */
