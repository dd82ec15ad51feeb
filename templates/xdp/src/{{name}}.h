/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Shared by the BPF program and its loader: the layout of the counters. */
#ifndef __{{name}}_H
#define __{{name}}_H

/* The `stats` map holds one record per XDP action (XDP_ABORTED .. XDP_REDIRECT),
 * indexed by the action's value. */
#define STATS_MAX_ACTIONS 5
#define MAX_BLOCKED 1024

struct datarec {
	unsigned long long packets;
	unsigned long long bytes;
};

#endif /* __{{name}}_H */
