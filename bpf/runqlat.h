/* SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause */
/* Constants shared by runqlat.bpf.c and the Rust side. */
#ifndef RUNQLAT_H
#define RUNQLAT_H

/* Log2 slots: slot i counts latencies in [2^i, 2^(i+1)); the last one also
 * takes everything longer. 27 slots of microseconds reach over a minute. */
#define RUNQLAT_MAX_SLOTS 27

#endif /* RUNQLAT_H */
