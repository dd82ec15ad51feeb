// SPDX-License-Identifier: GPL-2.0
/*
 * scx_qstat: scx_fifo that counts, with the qstats library, what it queues and
 * dispatches; every runnable task goes into one shared queue (a DSQ) and each CPU
 * takes the oldest; a task that wakes up on an idle CPU runs there at once.
 */
#include <scx/common.bpf.h>
#include <scx/qstats.bpf.h>

#define SHARED_DSQ 0

char _license[] SEC("license") = "GPL";

s32 BPF_STRUCT_OPS(qstat_select_cpu, struct task_struct *p, s32 prev_cpu, u64 wake_flags)
{
	bool is_idle = false;
	s32 cpu = scx_bpf_select_cpu_dfl(p, prev_cpu, wake_flags, &is_idle);

	if (is_idle)
		scx_bpf_dsq_insert(p, SCX_DSQ_LOCAL, SCX_SLICE_DFL, 0);
	return cpu;
}

void BPF_STRUCT_OPS(qstat_enqueue, struct task_struct *p, u64 enq_flags)
{
	qstat_inc(QSTAT_ENQUEUE);
	scx_bpf_dsq_insert(p, SHARED_DSQ, SCX_SLICE_DFL, enq_flags);
}

void BPF_STRUCT_OPS(qstat_dispatch, s32 cpu, struct task_struct *prev)
{
	if (scx_bpf_dsq_move_to_local(SHARED_DSQ))
		qstat_inc(QSTAT_DISPATCH);
}

s32 BPF_STRUCT_OPS_SLEEPABLE(qstat_init)
{
	return scx_bpf_create_dsq(SHARED_DSQ, -1);
}

SCX_OPS_DEFINE(qstat_ops,
	       .select_cpu = (void *)qstat_select_cpu,
	       .enqueue = (void *)qstat_enqueue,
	       .dispatch = (void *)qstat_dispatch,
	       .init = (void *)qstat_init,
	       .name = "qstat")
