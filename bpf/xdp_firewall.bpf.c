// SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause
/*
 * xdp_firewall - drop unwanted traffic before the kernel allocates anything
 * for it: malformed packets, sources on a blocklist, and sources sending
 * faster than a per-source rate limit. An allowlist overrides the blocklist
 * and the rate limit.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include "parsing.h"
#include "xdp_firewall.h"

#define NSEC_PER_SEC 1000000000ULL
#define CAS_TRIES 4

/* (1) Configuration fixed at load time: the verifier sees the values, so a
 * disabled feature's code is removed before it ever runs. */
/* ANCHOR: config */
const volatile __u64 cfg_interval_ns = 0;   /* 0: no rate limit; else 1s/pps */
const volatile __u64 cfg_tolerance_ns = 0;  /* (burst - 1) * interval */
const volatile bool cfg_fake_clock = false; /* tests set the clock below */
/* ANCHOR_END: config */

/* Read instead of bpf_ktime_get_ns() when cfg_fake_clock is set. */
__u64 fake_now_ns = 0;

/* Makes the reason enum visible to the Rust skeleton's generated types. */
enum fw_reason fw_reason_unused;

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, FW_REASON_MAX);
	__type(key, __u32);
	__type(value, struct fw_counter);
} counters SEC(".maps");

/* (2) Longest-prefix-match tries: a lookup with a /32 (or /128) key finds
 * the most specific prefix that contains the address. LPM tries must be
 * created without preallocation: memory is taken per prefix inserted, so a
 * large max_entries (262,144 blocked prefixes) costs nothing until used. */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 262144);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct fw_lpm_v4);
	__type(value, struct fw_rule);
} block_v4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 262144);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct fw_lpm_v6);
	__type(value, struct fw_rule);
} block_v6 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 4096);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct fw_lpm_v4);
	__type(value, struct fw_rule);
} allow_v4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 4096);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct fw_lpm_v6);
	__type(value, struct fw_rule);
} allow_v6 SEC(".maps");

/* (3) One bucket per source. LRU: when a flood from many sources fills the
 * map, the least recently seen source is evicted instead of new sources
 * being refused, and memory stays bounded. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct fw_src);
	__type(value, struct fw_bucket);
} rate_buckets SEC(".maps");

static __always_inline int verdict(struct xdp_md *ctx, enum fw_reason reason)
{
	__u32 key = reason;
	struct fw_counter *cnt = bpf_map_lookup_elem(&counters, &key);

	if (cnt) {
		cnt->packets++;
		cnt->bytes += ctx->data_end - ctx->data;
	}
	return reason == FW_PASS || reason == FW_ALLOWED ? XDP_PASS : XDP_DROP;
}

/*
 * The coarse clock advances once per scheduler tick (4 ms with HZ=250) and is
 * about 50 ns cheaper per packet than bpf_ktime_get_ns() on a VM. GCRA keeps
 * the long-run rate exact with it, as long as a burst covers at least one
 * tick's worth of packets (user space enforces burst >= rate * tick).
 */
static __always_inline __u64 now_ns(void)
{
	return cfg_fake_clock ? fake_now_ns : bpf_ktime_get_coarse_ns();
}

/*
 * (4) GCRA, a token bucket kept as one number per source: the time at which
 * the next packet would be exactly on schedule (tat). A packet conforms if
 * tat is at most `tolerance` ahead of now; it then moves tat one interval on.
 * The update is a compare-and-swap, so two CPUs handling the same source at
 * once cannot both spend the same token. After CAS_TRIES lost races the
 * packet counts as over the rate: under that much contention the source is
 * flooding.
 */
static __always_inline bool over_rate(const struct fw_src *src)
{
	__u64 now = now_ns(), old, tat;
	struct fw_bucket *b, fresh;
	int i;

	b = bpf_map_lookup_elem(&rate_buckets, src);
	if (!b) {
		/* First packet from this source: it conforms. If another CPU
		 * created the bucket meanwhile, NOEXIST keeps theirs. */
		fresh.tat_ns = now + cfg_interval_ns;
		bpf_map_update_elem(&rate_buckets, src, &fresh, BPF_NOEXIST);
		return false;
	}
	for (i = 0; i < CAS_TRIES; i++) {
		old = b->tat_ns;
		tat = old > now ? old : now;
		if (tat - now > cfg_tolerance_ns)
			return true;
		if (__sync_val_compare_and_swap(&b->tat_ns, old,
						tat + cfg_interval_ns) == old)
			return false;
	}
	return true;
}

/* (5) The allowlist first, then the blocklist, then the rate limit. */
static __always_inline enum fw_reason
policy(void *allow, void *block, const void *key, const struct fw_src *src)
{
	struct fw_rule *rule;

	if (bpf_map_lookup_elem(allow, key))
		return FW_ALLOWED;
	rule = bpf_map_lookup_elem(block, key);
	if (rule) {
		/* Many CPUs may hit the same rule: add atomically. */
		__sync_fetch_and_add(&rule->hits, 1);
		return FW_BLOCKED;
	}
	if (cfg_interval_ns && over_rate(src))
		return FW_RATE_LIMITED;
	return FW_PASS;
}

/*
 * (6) One function per address family, each ending in its own verdict.
 * Branching on the EtherType a second time after parsing ("if IPv4, build
 * the v4 key, else the v6 key") reads naturally but fails to load: the
 * verifier does not know that the two tests of eth_type agree, explores
 * "parsed as IPv4, keyed as IPv6", and finds an IPv6 read past what was
 * checked. See the chapter for the log.
 */
static __always_inline int handle_ipv4(struct xdp_md *ctx,
				       struct hdr_cursor *nh, void *data_end)
{
	struct fw_lpm_v4 key = {.prefixlen = 32};
	struct fw_src src = {};
	struct iphdr *iph;
	int proto;

	proto = parse_iphdr(nh, data_end, &iph);
	if (proto < 0)
		return verdict(ctx, FW_MALFORMED);
	/* (7) A first fragment or whole packet must carry a complete L4
	 * header: tiny first fragments are a classic way around filters. */
	if (!ipv4_is_later_fragment(iph) &&
	    check_l4hdr(nh, data_end, proto) < 0)
		return verdict(ctx, FW_MALFORMED);

	__builtin_memcpy(key.addr, &iph->saddr, 4);
	src.addr[10] = 0xff;
	src.addr[11] = 0xff;
	__builtin_memcpy(&src.addr[12], &iph->saddr, 4);
	return verdict(ctx, policy(&allow_v4, &block_v4, &key, &src));
}

static __always_inline int handle_ipv6(struct xdp_md *ctx,
				       struct hdr_cursor *nh, void *data_end)
{
	struct fw_lpm_v6 key = {.prefixlen = 128};
	bool later_fragment = false;
	struct fw_src src = {};
	struct ipv6hdr *ip6h;
	int proto;

	proto = parse_ip6hdr(nh, data_end, &ip6h);
	if (proto < 0)
		return verdict(ctx, FW_MALFORMED);
	proto = skip_ip6hdrext(nh, data_end, proto, &later_fragment);
	if (proto < 0)
		return verdict(ctx, FW_MALFORMED);
	if (!later_fragment && check_l4hdr(nh, data_end, proto) < 0)
		return verdict(ctx, FW_MALFORMED);

	__builtin_memcpy(key.addr, &ip6h->saddr, 16);
	__builtin_memcpy(src.addr, &ip6h->saddr, 8); /* the /64 */
	return verdict(ctx, policy(&allow_v6, &block_v6, &key, &src));
}

SEC("xdp")
int xdp_firewall(struct xdp_md *ctx)
{
	void *data_end = (void *)(long)ctx->data_end;
	void *data = (void *)(long)ctx->data;
	struct hdr_cursor nh = {.pos = data};
	struct ethhdr *eth;
	int eth_type;

	eth_type = parse_ethhdr(&nh, data_end, &eth);
	if (eth_type < 0)
		return verdict(ctx, FW_MALFORMED);
	if (eth_type == bpf_htons(ETH_P_IP))
		return handle_ipv4(ctx, &nh, data_end);
	if (eth_type == bpf_htons(ETH_P_IPV6))
		return handle_ipv6(ctx, &nh, data_end);
	/* (8) More VLAN tags than we walk: we cannot see what is inside, so
	 * it must not pass unchecked. */
	if (proto_is_vlan(eth_type))
		return verdict(ctx, FW_MALFORMED);
	/* ARP and other non-IP traffic is none of our business. */
	return verdict(ctx, FW_PASS);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
