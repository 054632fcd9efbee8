/* SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause */
/* Types shared by uprobe.bpf.c and the Rust side (through BTF). */
#ifndef UPROBE_H
#define UPROBE_H

#define UPROBE_STR_LEN 64

enum uprobe_kind {
	UPROBE_ENTRY = 0,  /* the function was called: args are set */
	UPROBE_RETURN = 1, /* it returned: ret is set */
};

enum uprobe_limits {
	UPROBE_ARGS = 3,	    /* integer arguments reported */
	UPROBE_NO_STR = 0xffffffff, /* str_arg: no argument read as a string */
};

/* 136 bytes, no padding: 8 + 3 * 8 + 8 + 4 * 4 + 64 + 16. */
struct uprobe_event {
	__u64 ts_ns;
	__u64 args[UPROBE_ARGS]; /* the first integer arguments */
	__u64 ret;		 /* the return value */
	__u32 kind;		 /* enum uprobe_kind */
	__u32 pid;
	__u32 tid;
	__u32 str_arg; /* which argument str holds, or UPROBE_NO_STR */
	char str[UPROBE_STR_LEN]; /* that argument read as a C string */
	char comm[16];
};

#endif /* UPROBE_H */
