// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Counts exec()s, by the name of the program each one starts. */
#include <kconv/common.bpf.h>

char LICENSE[] SEC("license") = "Dual BSD/GPL";

__u64 execs = 0;

SEC("tp/sched/sched_process_exec")
int count_exec(void *ctx)
{
	__sync_fetch_and_add(&execs, 1);
	return tally_current(); /* the task already has the new program's name */
}
