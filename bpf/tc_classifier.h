/* SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause */
/* Types shared by tc_classifier.bpf.c and the Rust side (through BTF). */
#ifndef TC_CLASSIFIER_H
#define TC_CLASSIFIER_H

enum tc_dir {
	TC_DIR_INGRESS = 0,
	TC_DIR_EGRESS = 1,
	TC_DIR_MAX = 2,
};

enum tc_proto {
	TC_PROTO_TCP = 0,
	TC_PROTO_UDP = 1,
	TC_PROTO_ICMP = 2,
	TC_PROTO_ICMPV6 = 3,
	TC_PROTO_OTHER = 4,
	TC_PROTO_MAX = 5,
};

/* One slot of the counters map: key = dir * TC_PROTO_MAX + proto. */
struct tc_counter {
	__u64 packets;
	__u64 bytes;   /* skb->len: the whole frame, L2 header included */
	__u64 dropped; /* packets of this slot that the port policy dropped */
};

#endif /* TC_CLASSIFIER_H */
