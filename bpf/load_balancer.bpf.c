// SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause
/*
 * load_balancer - an L4 load balancer whose flow table is the kernel's own
 * conntrack. The first packet of a flow to the virtual address gets a
 * backend and a new conntrack entry that records "this flow's destination
 * becomes that backend" (NAT info). Every packet of the flow, both ways, is
 * then found in conntrack, rewritten by this program and sent straight out
 * of the right interface: netfilter never sees these packets, so its
 * per-packet work (hooks, TCP state machine, NAT) is not done twice.
 *
 * Attach it to TC ingress of the interface the clients' traffic arrives on
 * and of every interface a backend is reached through (the same one, for a
 * one-armed balancer).
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "parsing.h"
#include "load_balancer.h"

#define ENOENT 2
#define AF_INET 2
#define ETH_ALEN 6
/* Linux 6.1 accepts only the first 12 bytes of struct bpf_ct_opts (later
 * kernels added fields and accept 12 too): pass 12, not sizeof. */
#define CT_OPTS_SZ 12
/* Netfilter's TCP state machine never sees our flows, so the program keeps
 * their entries alive itself: every packet refreshes the timeout, and a FIN
 * or RST in either direction shortens it for good. */
#define TCP_TIMEOUT_MS 120000
#define UDP_TIMEOUT_MS 30000
#define CLOSING_TIMEOUT_MS 10000
/* ct->mark: the backend's index + 1 (bits 0-15), the slot's generation
 * when the flow started (bits 16-30), and a flag once the flow is closing. */
#define MARK_BACKEND 0xffff
#define MARK_GEN_SHIFT 16
#define MARK_GEN (((1u << LB_GEN_BITS) - 1) << MARK_GEN_SHIFT)
#define MARK_CLOSING 0x80000000

/*
 * (1) kfuncs: kernel functions a BPF program may call, declared here with
 * __ksym. vmlinux.h has their types but not their prototypes; libbpf
 * resolves each name against the kernel's BTF at load time. Unlike helpers
 * they are not a stable ABI: a kernel may change or drop them.
 */
/* ANCHOR: ct_lookup */
struct nf_conn *bpf_skb_ct_lookup(struct __sk_buff *skb,
				  struct bpf_sock_tuple *tuple, __u32 tuple__sz,
				  struct bpf_ct_opts *opts,
				  __u32 opts__sz) __ksym;
/* ANCHOR_END: ct_lookup */
struct nf_conn___init *bpf_skb_ct_alloc(struct __sk_buff *skb,
					struct bpf_sock_tuple *tuple,
					__u32 tuple__sz,
					struct bpf_ct_opts *opts,
					__u32 opts__sz) __ksym;
struct nf_conn *bpf_ct_insert_entry(struct nf_conn___init *nfct) __ksym;
void bpf_ct_release(struct nf_conn *nfct) __ksym;
void bpf_ct_set_timeout(struct nf_conn___init *nfct, __u32 timeout) __ksym;
int bpf_ct_change_timeout(struct nf_conn *nfct, __u32 timeout) __ksym;
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

/* Makes the enums visible to the Rust skeleton's generated types. */
enum lb_backend_state lb_backend_state_unused;
enum lb_limits lb_limits_unused;
enum tc_verdict tc_verdict_unused;

/* What the program needs of a packet after the helpers that change it have
 * invalidated every packet pointer: where the rewritten fields are (offsets
 * from the start of the frame), the protocol, and whether it closes. */
struct pkt_info {
	__u32 l3_off;	/* IPv4 header */
	__u32 l4_off;	/* TCP or UDP header */
	__u32 csum_off; /* the L4 checksum */
	__u8 proto;
	bool closing; /* a FIN or RST */
};

static __always_inline struct lb_counters *get_counters(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&counters, &zero);
}

/* Counts a client's packet for its flow's backend. */
static __always_inline void count_packet(__u32 mark, __u32 len, bool new_flow,
					 struct lb_counters *cnt)
{
	__u32 gen = (mark & MARK_GEN) >> MARK_GEN_SHIFT;
	__u32 idx = (mark & MARK_BACKEND) - 1;
	struct lb_backend *be;
	struct lb_stats *s;

	be = bpf_map_lookup_elem(&backends, &idx);
	s = bpf_map_lookup_elem(&stats, &idx);
	if (!be || !s)
		return;
	/* (13) The flow started with an earlier backend of this slot, since
	 * removed: its packets must not count for the new one. */
	if (be->gen != gen) {
		cnt->retired_packets++;
		cnt->retired_bytes += len;
		return;
	}
	/* This CPU's copy still holds the slot's previous backend: start
	 * over. Only this CPU writes it, so this needs no lock. */
	if (s->gen != gen) {
		s->gen = gen;
		s->connections = 0;
		s->packets = 0;
		s->bytes = 0;
	}
	s->packets++;
	s->bytes += len;
	if (new_flow)
		s->connections++;
}

/* A new flow: pick a backend, record the NAT in a new conntrack entry.
 * Returns the inserted entry (a reference the caller releases), or NULL. */
static __always_inline struct nf_conn *new_flow(struct __sk_buff *skb,
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
		return NULL;
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
		return NULL;
	}
	/* (5) "This flow's destination becomes the backend": the NAT code
	 * computes the reply tuple (backend -> client), which is how a reply
	 * finds this entry, and how we know where to send the flow. */
	addr.ip = be->addr;
	bpf_ct_set_nat_info(nct, &addr, be->port, NF_NAT_MANIP_DST);
	bpf_ct_set_timeout(nct, opts->l4proto == IPPROTO_TCP ? TCP_TIMEOUT_MS
							     : UDP_TIMEOUT_MS);
	/* (6) The backend's slot and its generation in the entry's mark, for
	 * the statistics. */
	((struct nf_conn *)nct)->mark =
		(*idx + 1) | ((be->gen << MARK_GEN_SHIFT) & MARK_GEN);

	/* (7) Insert: the entry is now in the kernel's table (`conntrack -L`
	 * lists it). nct is consumed either way; a flow whose first packets
	 * race on two CPUs inserts once, and the loser's packet is dropped. */
	ct = bpf_ct_insert_entry(nct);
	if (!ct) {
		cnt->ct_errors++;
		return NULL;
	}
	cnt->new_flows++;
	return ct;

no_backend:
	cnt->no_backend++;
	return NULL;
}

/* Keeps the entry alive, and lets it expire soon once the flow closes. */
static __always_inline void refresh(struct nf_conn *ct, struct pkt_info *pkt)
{
	__u32 timeout =
		pkt->proto == IPPROTO_TCP ? TCP_TIMEOUT_MS : UDP_TIMEOUT_MS;

	if (pkt->closing)
		ct->mark |= MARK_CLOSING;
	if (ct->mark & MARK_CLOSING)
		timeout = CLOSING_TIMEOUT_MS;
	bpf_ct_change_timeout(ct, timeout);
}

/* TTL - 1 and the header checksum with it (RFC 1624), as ip_decrease_ttl. */
static __always_inline void decrease_ttl(struct iphdr *iph)
{
	__u32 check = iph->check;

	check += bpf_htons(0x0100);
	iph->check = (__u16)(check + (check >= 0xffff));
	iph->ttl--;
}

/*
 * (8) Rewrites one address and port of the packet (the destination on the
 * way in, the source on the way back) and takes one off the TTL, as a
 * router does. The writes are direct; the checksums are updated by
 * helpers, incrementally: the IPv4 header checksum covers the address, the
 * TCP or UDP checksum covers both (the address through the pseudo-header).
 * Only the helpers know the skb's checksum state (offloaded or not) and
 * keep it right. They invalidate every packet pointer.
 */
enum rewrite_end {
	REWRITE_DEST,	/* client -> backend: the destination */
	REWRITE_SOURCE, /* backend -> client: the source */
};

static __always_inline int rewrite(struct __sk_buff *skb, struct pkt_info *pkt,
				   struct iphdr *iph, struct l4_ports *ports,
				   enum rewrite_end end, __be32 new_addr,
				   __be16 new_port)
{
	/* UDP: a zero checksum means "none", and must stay zero. */
	__u64 l4_flags = pkt->proto == IPPROTO_UDP ? BPF_F_MARK_MANGLED_0 : 0;
	__be32 old_addr;
	__be16 old_port;

	if (end == REWRITE_DEST) {
		old_addr = iph->daddr;
		old_port = ports->dest;
		iph->daddr = new_addr;
		ports->dest = new_port;
	} else {
		old_addr = iph->saddr;
		old_port = ports->source;
		iph->saddr = new_addr;
		ports->source = new_port;
	}
	decrease_ttl(iph);

	if (bpf_l4_csum_replace(skb, pkt->csum_off, old_addr, new_addr,
				l4_flags | BPF_F_PSEUDO_HDR | sizeof(new_addr)))
		return -1;
	if (bpf_l4_csum_replace(skb, pkt->csum_off, old_port, new_port,
				l4_flags | sizeof(new_port)))
		return -1;
	if (bpf_l3_csum_replace(skb,
				pkt->l3_off + offsetof(struct iphdr, check),
				old_addr, new_addr, sizeof(new_addr)))
		return -1;
	return 0;
}

/*
 * (9) Forwarding, as a router would, without the trip through the stack:
 * the kernel's routing table says which interface and next hop lead to
 * daddr, and its neighbour table gives the MAC addresses.
 */
static __always_inline int forward(struct __sk_buff *skb, __be32 saddr,
				   __be32 daddr, struct lb_counters *cnt)
{
	struct bpf_fib_lookup fib = {
		.family = AF_INET,
		.ipv4_src = saddr,
		.ipv4_dst = daddr,
		.ifindex = skb->ingress_ifindex,
	};
	struct bpf_redir_neigh nh = {.nh_family = AF_INET};
	void *data, *data_end;
	struct ethhdr *eth;
	long rc;

	rc = bpf_fib_lookup(skb, &fib, sizeof(fib), 0);
	if (rc == BPF_FIB_LKUP_RET_SUCCESS) {
		/* The helpers before made us re-check the packet's bounds. */
		data = (void *)(long)skb->data;
		data_end = (void *)(long)skb->data_end;
		eth = data;
		if ((void *)(eth + 1) > data_end)
			return TC_ACT_SHOT;
		__builtin_memcpy(eth->h_dest, fib.dmac, ETH_ALEN);
		__builtin_memcpy(eth->h_source, fib.smac, ETH_ALEN);
		return bpf_redirect(fib.ifindex, 0);
	}
	if (rc == BPF_FIB_LKUP_RET_NO_NEIGH) {
		/* The next hop's MAC is not known yet: the kernel resolves it
		 * (ARP) and sends the packet when it is. */
		nh.ipv4_nh = fib.ipv4_dst;
		return bpf_redirect_neigh(fib.ifindex, &nh, sizeof(nh), 0);
	}
	cnt->unroutable++;
	return TC_ACT_SHOT;
}

/* Looks the packet's own 5-tuple up in conntrack. On NULL, opts->error
 * says why (-ENOENT: no such entry). */
static __always_inline struct nf_conn *
ct_lookup(struct __sk_buff *skb, struct iphdr *iph, struct l4_ports *ports,
	  __u8 proto, struct bpf_sock_tuple *tuple, struct bpf_ct_opts *opts)
{
	opts->netns_id = BPF_F_CURRENT_NETNS;
	opts->l4proto = proto;
	tuple->ipv4.saddr = iph->saddr;
	tuple->ipv4.daddr = iph->daddr;
	tuple->ipv4.sport = ports->source;
	tuple->ipv4.dport = ports->dest;
	return bpf_skb_ct_lookup(skb, tuple, sizeof(tuple->ipv4), opts,
				 CT_OPTS_SZ);
}

/* Client -> VIP: find or create the flow's entry; on to its backend. */
static __always_inline int to_backend(struct __sk_buff *skb, struct iphdr *iph,
				      struct l4_ports *ports,
				      struct tcphdr *tcph, void *data_end,
				      struct pkt_info *pkt,
				      struct lb_counters *cnt)
{
	struct bpf_sock_tuple tuple = {};
	struct bpf_ct_opts opts = {};
	__be32 be_addr, saddr = iph->saddr;
	bool created = false;
	struct nf_conn *ct;
	__be16 be_port;
	__u32 mark;

	if (iph->ttl <= 1)
		return TC_ACT_OK; /* the stack sends the ICMP time exceeded */

	/* (10) A known flow? The entry comes back with a reference that we
	 * must release, on every path: the verifier checks that we do. */
	ct = ct_lookup(skb, iph, ports, pkt->proto, &tuple, &opts);
	if (!ct) {
		if (opts.error != -ENOENT) {
			cnt->ct_errors++;
			return TC_ACT_SHOT;
		}
		/* Only a SYN starts a TCP flow: a segment of a flow we do not
		 * know (say, one that outlived its entry) is dropped, and the
		 * client's retries end in a reset or a timeout. The verifier
		 * needs the bounds check next to the read. */
		if (pkt->proto == IPPROTO_TCP) {
			if ((void *)(tcph + 1) > data_end)
				return TC_ACT_SHOT;
			if (!tcph->syn || tcph->ack) {
				cnt->stray++;
				return TC_ACT_SHOT;
			}
		}
		ct = new_flow(skb, &tuple, &opts, cnt);
		if (!ct)
			return TC_ACT_SHOT;
		created = true;
	}
	/* (11) Ours? An entry that netfilter made for the same tuple would
	 * have no destination NAT to a backend. */
	if (!(ct->status & IPS_DST_NAT) || !(ct->mark & MARK_BACKEND)) {
		bpf_ct_release(ct);
		return TC_ACT_OK;
	}
	/* The reply tuple's source is where the flow goes. */
	be_addr = ct->tuplehash[IP_CT_DIR_REPLY].tuple.src.u3.ip;
	be_port = ct->tuplehash[IP_CT_DIR_REPLY].tuple.src.u.all;
	/* A new entry got its timeout at alloc: no second kfunc call. */
	if (!created || pkt->closing)
		refresh(ct, pkt);
	mark = ct->mark;
	bpf_ct_release(ct);
	count_packet(mark, skb->len, created, cnt);

	if (rewrite(skb, pkt, iph, ports, REWRITE_DEST, be_addr, be_port))
		return TC_ACT_SHOT;
	return forward(skb, saddr, be_addr, cnt);
}

/* Backend -> client: a reply of one of our flows goes back from the VIP. */
static __always_inline int to_client(struct __sk_buff *skb, struct iphdr *iph,
				     struct l4_ports *ports,
				     struct pkt_info *pkt,
				     struct lb_counters *cnt)
{
	struct bpf_sock_tuple tuple = {};
	struct bpf_ct_opts opts = {};
	__be32 daddr = iph->daddr;
	struct nf_conntrack_tuple *orig;
	struct nf_conn *ct;
	bool ours;

	/* (12) The same lookup finds the entry from the reply's side: the
	 * kernel's table holds every entry under both of its tuples. Anything
	 * else crossing this interface is not ours and goes on untouched. */
	ct = ct_lookup(skb, iph, ports, pkt->proto, &tuple, &opts);
	if (!ct)
		return TC_ACT_OK;
	orig = &ct->tuplehash[IP_CT_DIR_ORIGINAL].tuple;
	ours = (ct->status & IPS_DST_NAT) && (ct->mark & MARK_BACKEND) &&
	       orig->dst.u3.ip == vip_addr &&
	       orig->dst.u.all == bpf_htons(vip_port) &&
	       orig->src.u3.ip == daddr;
	if (ours)
		refresh(ct, pkt);
	bpf_ct_release(ct);
	if (!ours || iph->ttl <= 1)
		return TC_ACT_OK;

	if (rewrite(skb, pkt, iph, ports, REWRITE_SOURCE, vip_addr,
		    bpf_htons(vip_port)))
		return TC_ACT_SHOT;
	return forward(skb, vip_addr, daddr, cnt);
}

SEC("tc")
int lb_ingress(struct __sk_buff *skb)
{
	void *data_end = (void *)(long)skb->data_end;
	void *data = (void *)(long)skb->data;
	struct hdr_cursor nh = {.pos = data};
	struct lb_counters *cnt;
	struct l4_ports *ports;
	struct pkt_info pkt = {};
	struct tcphdr *tcph;
	struct ethhdr *eth;
	struct iphdr *iph;
	int proto;

	/* IPv4 straight after an untagged Ethernet header: the forwarding
	 * below writes a plain Ethernet header. */
	if (parse_ethhdr(&nh, data_end, &eth) != bpf_htons(ETH_P_IP) ||
	    nh.pos != data + sizeof(*eth))
		return TC_ACT_OK;
	proto = parse_iphdr(&nh, data_end, &iph);
	if (proto < 0 || ipv4_is_later_fragment(iph))
		return TC_ACT_OK;
	if (!(proto == IPPROTO_TCP && balance_tcp) &&
	    !(proto == IPPROTO_UDP && balance_udp))
		return TC_ACT_OK;
	tcph = nh.pos;
	if (parse_ports(&nh, data_end, proto, &ports) < 0)
		return TC_ACT_OK;
	cnt = get_counters();
	if (!cnt)
		return TC_ACT_OK;

	pkt.proto = proto;
	pkt.l3_off = (void *)iph - data;
	pkt.l4_off = (void *)ports - data;
	pkt.csum_off = pkt.l4_off + (proto == IPPROTO_TCP
					     ? offsetof(struct tcphdr, check)
					     : offsetof(struct udphdr, check));
	if (proto == IPPROTO_TCP) {
		if ((void *)(tcph + 1) > data_end)
			return TC_ACT_OK;
		pkt.closing = tcph->fin || tcph->rst;
	}

	if (iph->daddr == vip_addr && ports->dest == bpf_htons(vip_port))
		return to_backend(skb, iph, ports, tcph, data_end, &pkt, cnt);
	return to_client(skb, iph, ports, &pkt, cnt);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
