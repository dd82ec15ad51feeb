// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Counts fork()s, by the name of the parent's program; keeps the highest count and the
 * last child's pid. */
#include <kconv/common.bpf.h>

char LICENSE[] SEC("license") = "Dual BSD/GPL";

__u64 forks = 0;
__u64 busiest = 0; /* the highest count in the tally so far */
__s32 last_child = 0;

SEC("raw_tp/sched_process_fork")
int BPF_PROG(count_fork, struct task_struct *parent, struct task_struct *child)
{
	struct tally_key key = {};
	__u64 *count;

	__sync_fetch_and_add(&forks, 1);
	last_child = BPF_CORE_READ(child, pid);
	tally_current(); /* runs in the parent */
	/* The library's map, read here through its extern declaration. */
	bpf_get_current_comm(&key.comm, sizeof(key.comm));
	count = bpf_map_lookup_elem(&tally, &key);
	if (count && *count > busiest)
		busiest = *count;
	return 0;
}
