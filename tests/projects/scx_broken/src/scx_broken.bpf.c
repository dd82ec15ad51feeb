// SPDX-License-Identifier: GPL-2.0
/*
 * scx_broken: scx_fifo whose enqueue callback counts tasks in a map value it
 * never checks against NULL (a hash map: the lookup may fail). The verifier rejects that one callback; its
 * siblings are fine and must each get their own verdict.
 */
#include "scx.h"

#define SHARED_DSQ 0

char _license[] SEC("license") = "GPL";

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1);
	__type(key, u32);
	__type(value, u64);
} enqueued SEC(".maps");

s32 SCX_OPS(broken_select_cpu, struct task_struct *p, s32 prev_cpu, u64 wake_flags)
{
	bool is_idle = false;
	s32 cpu = scx_bpf_select_cpu_dfl(p, prev_cpu, wake_flags, &is_idle);

	if (is_idle)
		scx_bpf_dsq_insert(p, SCX_DSQ_LOCAL, SCX_SLICE_DFL, 0);
	return cpu;
}

void SCX_OPS(broken_enqueue, struct task_struct *p, u64 enq_flags)
{
	u32 zero = 0;
	u64 *count = bpf_map_lookup_elem(&enqueued, &zero);

	*count += 1; /* BROKEN: no NULL check */
	scx_bpf_dsq_insert(p, SHARED_DSQ, SCX_SLICE_DFL, enq_flags);
}

void SCX_OPS(broken_dispatch, s32 cpu, struct task_struct *prev)
{
	scx_bpf_dsq_move_to_local(SHARED_DSQ);
}

s32 SCX_OPS_SLEEPABLE(broken_init)
{
	return scx_bpf_create_dsq(SHARED_DSQ, -1);
}

void SCX_OPS(broken_exit, struct scx_exit_info *info)
{
}

SEC(".struct_ops.link")
struct sched_ext_ops broken_ops = {
	.select_cpu = (void *)broken_select_cpu,
	.enqueue = (void *)broken_enqueue,
	.dispatch = (void *)broken_dispatch,
	.init = (void *)broken_init,
	.exit = (void *)broken_exit,
	.name = "broken",
};
