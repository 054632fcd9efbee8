/* SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause */
/* Types shared by load_balancer.bpf.c and the Rust side (through BTF). */
#ifndef LOAD_BALANCER_H
#define LOAD_BALANCER_H

#define LB_MAX_BACKENDS 64
/* New flows take the table's slots in turn; user space fills the slots in
 * proportion to the weights of the active backends, interleaved. */
#define LB_TABLE_SIZE 1024
#define LB_NO_BACKEND 0xffffffff

enum lb_backend_state {
	LB_BACKEND_ACTIVE = 0,	 /* takes new flows */
	LB_BACKEND_DRAINING = 1, /* keeps its flows, takes no new ones */
};

/* One backend; addr 0 marks an empty slot. 16 bytes, no padding. */
struct lb_backend {
	__u32 addr; /* IPv4, network byte order */
	__u32 port; /* host byte order */
	__u32 weight;
	__u32 state; /* enum lb_backend_state */
};

/* Per backend, per CPU: client-to-backend traffic. */
struct lb_stats {
	__u64 connections;
	__u64 packets;
	__u64 bytes;
};

/* Program-wide counters, per CPU. */
struct lb_counters {
	__u64 new_flows;
	__u64 no_backend; /* dropped: no active backend */
	__u64 ct_errors;  /* conntrack refused a lookup, alloc or insert */
	__u64 stray;	  /* dropped: a TCP segment of no known flow */
	__u64 unroutable; /* dropped: no route (or forwarding off) */
};

#endif /* LOAD_BALANCER_H */
