/* SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause */
/* Types shared by socket_filter.bpf.c and the Rust side (through BTF). */
#ifndef SOCKET_FILTER_H
#define SOCKET_FILTER_H

/* What each program decided, counted per CPU: user space sums the CPUs. */
struct filter_counts {
	__u64 kept;
	__u64 rejected;
};

#endif /* SOCKET_FILTER_H */
