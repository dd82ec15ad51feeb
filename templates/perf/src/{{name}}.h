/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Shared by the BPF program and its loader: what one sample is counted under. */
#ifndef __{{name}}_H
#define __{{name}}_H

#define TASK_COMM_LEN 16
#define MAX_STACK_DEPTH 127 /* PERF_MAX_STACK_DEPTH */
#define MAX_SAMPLE_KEYS 16384

/* Samples are counted per process, command name and pair of stacks. A stack id
 * is a key of the `stacks` map, or negative if the stack could not be taken (a
 * sample in user mode has no kernel stack; -EEXIST if the stack table is full). */
struct sample_key {
	unsigned int tgid;
	int kernel_stack_id;
	int user_stack_id;
	char comm[TASK_COMM_LEN];
};

#endif /* __{{name}}_H */
