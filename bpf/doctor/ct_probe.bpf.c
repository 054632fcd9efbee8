// SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause
/*
 * ct_probe - the conntrack kfuncs, on their own: libbpf resolves an
 * object's kfuncs when it loads any of its programs, and where conntrack
 * is a module that is not loaded they cannot be found, which must not stop
 * the other probes (probes.bpf.c) from loading.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "Dual BSD/GPL";

struct nf_conn *bpf_skb_ct_lookup(struct __sk_buff *skb,
				  struct bpf_sock_tuple *tuple, __u32 tuple__sz,
				  struct bpf_ct_opts *opts,
				  __u32 opts__sz) __ksym;
void bpf_ct_release(struct nf_conn *nfct) __ksym;

/* The conntrack kfuncs: load_balancer's lookup, resolved at load. */
SEC("tc")
int probe_ct(struct __sk_buff *skb)
{
	struct bpf_sock_tuple tuple = {};
	struct bpf_ct_opts opts = {.netns_id = -1, .l4proto = 6};
	struct nf_conn *ct;

	ct = bpf_skb_ct_lookup(skb, &tuple, sizeof(tuple.ipv4), &opts, 12);
	if (ct)
		bpf_ct_release(ct);
	return 0;
}
