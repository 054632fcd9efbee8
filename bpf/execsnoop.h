/* SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause */
/* Types shared by execsnoop.bpf.c and the Rust side (through BTF). */
#ifndef EXECSNOOP_H
#define EXECSNOOP_H

#define EXECSNOOP_COMM_LEN 16
#define EXECSNOOP_FILENAME_LEN 256

enum exec_event_type {
	EXEC_EVENT_EXEC = 0,
	EXEC_EVENT_EXIT = 1,
};

/* 304 bytes, no padding: 8 + 6 * 4 + 16 + 256. */
struct exec_event {
	__u64 ts_ns; /* bpf_ktime_get_ns(): CLOCK_MONOTONIC */
	__u32 type;  /* enum exec_event_type */
	__u32 pid;   /* the process (thread group) id */
	__u32 ppid;
	__u32 uid;
	__u32 exit_code; /* EXIT: status << 8 | signal, as wait(2) reports it */
	__u32 cpu;	 /* where the event was recorded */
	char comm[EXECSNOOP_COMM_LEN];
	char filename[EXECSNOOP_FILENAME_LEN]; /* EXEC: the program run */
};

#endif /* EXECSNOOP_H */
