/* SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause */
/* Types shared by races.bpf.c and the Rust side (through BTF). */
#ifndef RACES_H
#define RACES_H

/* The compare-and-swap loop's own counts, next to its counter. */
struct cas_stats {
	__u64 retries; /* a CAS that lost to the other CPU and tried again */
	__u64 gave_up; /* an update abandoned after CAS_MAX_TRIES */
};

#endif /* RACES_H */
