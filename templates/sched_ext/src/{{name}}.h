/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Shared by the scheduler and its loader: the counters of the stats map, and why the
 * scheduler stopped. */
#ifndef __{{name}}_H
#define __{{name}}_H

/* Keys of the per-CPU stats map. */
enum {
	STAT_DIRECT,		/* woke up on an idle CPU: ran there at once */
	STAT_QUEUED,		/* went through the shared queue */
	STAT_DISPATCHED,	/* taken from the shared queue by a CPU */
	NR_SCHED_STATS,
};

#define EXIT_REASON_LEN 128
#define EXIT_MSG_LEN 1024
/* enum scx_exit_kind: 0 while running, 64 and up when unregistered, 1024 and up when
 * the kernel stopped the scheduler because of an error (of the BPF code, a stall...). */
#define EXIT_KIND_ERROR 1024

/* Copied from struct scx_exit_info by the exit callback; kind is written last. */
struct exit_info {
	int kind;
	long long exit_code;
	char reason[EXIT_REASON_LEN];
	char msg[EXIT_MSG_LEN];
};

#endif /* __{{name}}_H */
