/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Shared by the BPF program and its loader: the layout of the counters. */
#ifndef __{{name}}_H
#define __{{name}}_H

#define MAX_BLOCKED_PORTS 1024

/* Index of the per-CPU counters in the `stats` map. */
enum stat_index {
	STAT_PASSED = 0,
	STAT_DROPPED = 1,
	STAT_MAX,
};

struct datarec {
	unsigned long long packets;
	unsigned long long bytes;
};

#endif /* __{{name}}_H */
