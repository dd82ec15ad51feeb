/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Shared by the BPF program and its loader: what is counted for each process. */
#ifndef __{{name}}_H
#define __{{name}}_H

#define TASK_COMM_LEN 16
#define MAX_PROCESSES 10240

struct alloc_stats {
	unsigned long long calls;
	unsigned long long bytes;    /* the sum of the size arguments */
	char comm[TASK_COMM_LEN];    /* the name of the thread that called last */
};

#endif /* __{{name}}_H */
