/* SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause */
/* Types shared by pinning.bpf.c and the Rust side (through BTF). */
#ifndef PINNING_H
#define PINNING_H

/* The key of the counts map: a command name, as the kernel keeps it
 * (TASK_COMM_LEN bytes, NUL-padded). */
struct comm_key {
	char comm[16];
};

/* The one value of the settings map, which other processes change. */
struct settings {
	__u32 paused; /* non-zero: count nothing */
};

#endif /* PINNING_H */
