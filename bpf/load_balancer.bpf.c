// SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause
/*
 * load_balancer - an L4 load balancer on the kernel's own conntrack. For the
 * first packet of a flow to the virtual address, the program picks a backend
 * and creates a conntrack entry that says "translate this flow's
 * destination to that backend". Netfilter then applies that NAT to every
 * packet of the flow and translates the replies back, so a connection stays
 * on its backend whatever happens to the backend set later.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include "parsing.h"
#include "load_balancer.h"

#define BPF_F_CURRENT_NETNS (-1)
#define ENOENT 2
/* Linux 6.1 accepts only the first 12 bytes of struct bpf_ct_opts (later
 * kernels added fields and accept 12 too): pass 12, not sizeof. */
#define CT_OPTS_SZ 12
#define TCP_TIMEOUT_MS 120000
#define UDP_TIMEOUT_MS 30000

/*
 * (1) kfuncs: kernel functions a BPF program may call, declared here with
 * __ksym. vmlinux.h has their types but not their prototypes; libbpf
 * resolves each name against the kernel's BTF at load time. Unlike helpers
 * they are not a stable ABI: a kernel may change or drop them.
 */
struct nf_conn *bpf_skb_ct_lookup(struct __sk_buff *skb,
				  struct bpf_sock_tuple *tuple, __u32 tuple__sz,
				  struct bpf_ct_opts *opts,
				  __u32 opts__sz) __ksym;
struct nf_conn___init *bpf_skb_ct_alloc(struct __sk_buff *skb,
					struct bpf_sock_tuple *tuple,
					__u32 tuple__sz,
					struct bpf_ct_opts *opts,
					__u32 opts__sz) __ksym;
struct nf_conn *bpf_ct_insert_entry(struct nf_conn___init *nfct) __ksym;
void bpf_ct_release(struct nf_conn *nfct) __ksym;
void bpf_ct_set_timeout(struct nf_conn___init *nfct, __u32 timeout) __ksym;
int bpf_ct_set_nat_info(struct nf_conn___init *nfct, union nf_inet_addr *addr,
			int port, enum nf_nat_manip_type manip) __ksym;

const volatile __u32 vip_addr = 0; /* network byte order */
const volatile __u16 vip_port = 0; /* host byte order */
const volatile bool balance_tcp = true;
const volatile bool balance_udp = true;

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, LB_MAX_BACKENDS);
	__type(key, __u32);
	__type(value, struct lb_backend);
} backends SEC(".maps");

/* (2) The selection table: LB_TABLE_SIZE backend indexes, in the order of
 * a smooth weighted round robin. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, LB_TABLE_SIZE);
	__type(key, __u32);
	__type(value, __u32);
} table SEC(".maps");

/* Where each CPU is in the table: the next new flow on this CPU takes the
 * next slot (weighted round robin). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} cursor SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, LB_MAX_BACKENDS);
	__type(key, __u32);
	__type(value, struct lb_stats);
} stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct lb_counters);
} counters SEC(".maps");

/* Makes the enum visible to the Rust skeleton's generated types. */
enum lb_backend_state lb_backend_state_unused;

static __always_inline struct lb_counters *get_counters(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&counters, &zero);
}

static __always_inline void count_packet(__u32 idx, __u32 len, bool new_flow)
{
	struct lb_stats *s = bpf_map_lookup_elem(&stats, &idx);

	if (!s)
		return;
	s->packets++;
	s->bytes += len;
	if (new_flow)
		s->connections++;
}

/* A new flow: pick a backend, record the NAT in a new conntrack entry. */
static __always_inline int new_flow(struct __sk_buff *skb,
				    struct bpf_sock_tuple *tuple,
				    struct bpf_ct_opts *opts,
				    struct lb_counters *cnt)
{
	union nf_inet_addr addr = {};
	struct nf_conn___init *nct;
	struct lb_backend *be;
	__u32 slot, *idx, *pos;
	struct nf_conn *ct;
	__u32 zero = 0;

	/* (3) Weighted round robin: user space fills the table with backend
	 * indexes, each active backend in proportion to its weight and spread
	 * evenly; each CPU walks it with its own cursor (per-CPU: no locks). */
	pos = bpf_map_lookup_elem(&cursor, &zero);
	if (!pos)
		return TC_ACT_OK;
	slot = (*pos)++ % LB_TABLE_SIZE;
	idx = bpf_map_lookup_elem(&table, &slot);
	if (!idx || *idx == LB_NO_BACKEND)
		goto no_backend;
	be = bpf_map_lookup_elem(&backends, idx);
	if (!be || !be->addr)
		goto no_backend;

	/* (4) A conntrack entry for this flow's tuple, not yet in the table. */
	nct = bpf_skb_ct_alloc(skb, tuple, sizeof(tuple->ipv4), opts,
			       CT_OPTS_SZ);
	if (!nct) {
		cnt->ct_errors++;
		return TC_ACT_OK;
	}
	/* (5) "Rewrite the destination to the backend": netfilter's NAT
	 * applies it to this flow's packets, and undoes it on replies. */
	addr.ip = be->addr;
	bpf_ct_set_nat_info(nct, &addr, be->port, NF_NAT_MANIP_DST);
	bpf_ct_set_timeout(nct, opts->l4proto == IPPROTO_TCP ? TCP_TIMEOUT_MS
							     : UDP_TIMEOUT_MS);
	/* (6) Remember the backend in the entry's mark, for the statistics of
	 * the flow's later packets. */
	((struct nf_conn *)nct)->mark = *idx + 1;

	/* (7) Insert: the entry becomes visible to netfilter, which finds it
	 * for this very packet a moment later. nct is consumed either way. */
	ct = bpf_ct_insert_entry(nct);
	if (!ct) {
		cnt->ct_errors++;
		return TC_ACT_OK;
	}
	bpf_ct_release(ct);
	cnt->new_flows++;
	count_packet(*idx, skb->len, true);
	return TC_ACT_OK;

no_backend:
	cnt->no_backend++;
	return TC_ACT_SHOT;
}

SEC("tc")
int lb_ingress(struct __sk_buff *skb)
{
	void *data_end = (void *)(long)skb->data_end;
	void *data = (void *)(long)skb->data;
	struct hdr_cursor nh = {.pos = data};
	struct bpf_ct_opts opts = {};
	struct bpf_sock_tuple tuple = {};
	struct lb_counters *cnt;
	struct l4_ports *ports;
	struct tcphdr *tcph;
	struct ethhdr *eth;
	struct iphdr *iph;
	struct nf_conn *ct;
	int proto;
	__u32 mark;

	if (parse_ethhdr(&nh, data_end, &eth) != bpf_htons(ETH_P_IP))
		return TC_ACT_OK;
	proto = parse_iphdr(&nh, data_end, &iph);
	if (proto < 0)
		return TC_ACT_OK;
	if (iph->daddr != vip_addr || ipv4_is_later_fragment(iph))
		return TC_ACT_OK;
	if (!(proto == IPPROTO_TCP && balance_tcp) &&
	    !(proto == IPPROTO_UDP && balance_udp))
		return TC_ACT_OK;
	tcph = nh.pos;
	if (parse_ports(&nh, data_end, proto, &ports) < 0)
		return TC_ACT_OK;
	if (ports->dest != bpf_htons(vip_port))
		return TC_ACT_OK;
	cnt = get_counters();
	if (!cnt)
		return TC_ACT_OK;

	tuple.ipv4.saddr = iph->saddr;
	tuple.ipv4.daddr = iph->daddr;
	tuple.ipv4.sport = ports->source;
	tuple.ipv4.dport = ports->dest;
	opts.netns_id = BPF_F_CURRENT_NETNS;
	opts.l4proto = proto;

	/* (8) A known flow: netfilter will apply its NAT; we only count. The
	 * entry comes back with a reference that we must release. */
	ct = bpf_skb_ct_lookup(skb, &tuple, sizeof(tuple.ipv4), &opts,
			       CT_OPTS_SZ);
	if (ct) {
		mark = ct->mark;
		bpf_ct_release(ct);
		if (mark > 0 && mark <= LB_MAX_BACKENDS)
			count_packet(mark - 1, skb->len, false);
		return TC_ACT_OK;
	}
	if (opts.error != -ENOENT) {
		cnt->ct_errors++;
		return TC_ACT_OK;
	}
	/* (9) Only a SYN starts a TCP flow; a stray segment of a flow we do
	 * not know is left to conntrack (which marks it invalid). parse_ports
	 * checked 20 bytes for TCP, but the verifier does not connect that
	 * check (whose length depended on proto) with this branch: check again
	 * next to the read. */
	if (proto == IPPROTO_TCP) {
		if ((void *)(tcph + 1) > data_end)
			return TC_ACT_OK;
		if (!tcph->syn || tcph->ack)
			return TC_ACT_OK;
	}
	return new_flow(skb, &tuple, &opts, cnt);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
