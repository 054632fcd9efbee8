/* SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause */
/* Types shared by load_balancer.bpf.c and the Rust side (through BTF). */
#ifndef LOAD_BALANCER_H
#define LOAD_BALANCER_H

/* Only ACTIVE backends are in the selection table. Every state but
 * ACTIVE and PENDING keeps the flows a backend already has. */
enum lb_backend_state {
	LB_BACKEND_ACTIVE = 0,	 /* takes new flows */
	LB_BACKEND_DRAINING = 1, /* keeps its flows, takes no new ones */
	LB_BACKEND_REMOVED = 2,	 /* the same, and its slot may be reused */
	LB_BACKEND_PENDING = 3,	 /* added; waits for the balancer to attach */
	LB_BACKEND_FAILED = 4,	 /* added; the balancer could not take it up */
};

/* Each slot's generation goes into the conntrack mark of its flows, in
 * LB_GEN_BITS bits: a slot reused by a new backend gets the next one, so
 * the old backend's flows are told apart from the new one's. */
enum lb_limits {
	LB_MAX_BACKENDS = 64,
	/* New flows take the table's slots in turn; user space fills them in
	 * proportion to the weights of the active backends, interleaved. */
	LB_TABLE_SIZE = 1024,
	LB_NO_BACKEND = 0xffffffff,
	LB_GEN_BITS = 15,
};

/* One backend; addr 0 marks a slot never used. 20 bytes, no padding. */
struct lb_backend {
	__u32 addr; /* IPv4, network byte order */
	__u32 port; /* host byte order */
	__u32 weight;
	__u32 state; /* enum lb_backend_state */
	__u32 gen;   /* below 1 << LB_GEN_BITS */
};

/* Per backend, per CPU: client-to-backend traffic. The program zeroes its
 * CPU's copy when it finds gen older than the backend's: user space sums
 * only the copies whose gen is the backend's. */
struct lb_stats {
	__u64 gen;
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
	/* Traffic of removed backends whose slot a new backend took. */
	__u64 retired_packets;
	__u64 retired_bytes;
};

#endif /* LOAD_BALANCER_H */
