/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Shared by the BPF program and its loader: the event sent through the ring buffer. */
#ifndef __{{name}}_H
#define __{{name}}_H

#define TASK_COMM_LEN 16
#define MAX_FILENAME_LEN 256

struct event {
	int pid;
	int ret; /* do_unlinkat's result: 0, or a negative errno */
	char comm[TASK_COMM_LEN];
	char filename[MAX_FILENAME_LEN];
};

#endif /* __{{name}}_H */
