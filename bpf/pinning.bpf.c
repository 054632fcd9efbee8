// SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause
/*
 * pinning - counts exec()s by command name. The point is not the counting
 * but where the program, its maps and its attachment live: pinned in a
 * bpf filesystem, they outlive the process that loaded them, other
 * processes open them by path, and a new version of the program takes
 * over the same maps.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include "pinning.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* ANCHOR: maps */
/* (1) exec()s by command name. Pinned, so its counts survive the loader
 * and are there again when the program is reloaded. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, struct comm_key);
	__type(value, __u64);
} counts SEC(".maps");

/* (2) Settings that another process changes through the pin while the
 * program runs. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct settings);
} settings SEC(".maps");
/* ANCHOR_END: maps */

/* Set by user space before load (pinning --trace): say each exec() in the
 * kernel's trace buffer too. */
const volatile bool trace = false;

/* ANCHOR: program */
/* (3) Runs after every successful exec(), in the new program: its command
 * name is already the new one. */
SEC("tp_btf/sched_process_exec")
int BPF_PROG(count_exec, struct task_struct *p)
{
	struct comm_key key = {};
	struct settings *set;
	__u64 zero = 0, *count;
	__u32 first = 0;

	set = bpf_map_lookup_elem(&settings, &first);
	if (set && set->paused)
		return 0;
	bpf_get_current_comm(key.comm, sizeof(key.comm));
	/* ANCHOR: printk */
	if (trace)
		bpf_printk("exec %s", key.comm);
	/* ANCHOR_END: printk */
	count = bpf_map_lookup_elem(&counts, &key);
	if (!count) {
		/* A new name: insert 0, unless another CPU just did. */
		bpf_map_update_elem(&counts, &key, &zero, BPF_NOEXIST);
		count = bpf_map_lookup_elem(&counts, &key);
		if (!count)
			return 0; /* the map is full */
	}
	__sync_fetch_and_add(count, 1);
	return 0;
}
/* ANCHOR_END: program */
