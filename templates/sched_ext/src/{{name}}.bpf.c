// SPDX-License-Identifier: GPL-2.0
/*
 * {{name}}: a sched_ext scheduler with one global FIFO. A task that wakes up while a
 * CPU is idle runs there at once; every other runnable task joins one queue shared by
 * all CPUs (a dispatch queue, DSQ), and a CPU that runs out of work takes the oldest.
 */
#include "scx/sched_ext.h"
#include "{{name}}.h"

char LICENSE[] SEC("license") = "GPL";	/* sched_ext takes GPL schedulers only */

#define SHARED_DSQ 0	/* our DSQ's id: ids below 2^63 are the scheduler's own */

/* How long a task runs before the CPU looks for another, in ns; set by the loader
 * (-s) before load. */
const volatile __u64 slice_ns = SCX_SLICE_DFL;

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, NR_SCHED_STATS);
	__type(key, u32);
	__type(value, u64);
} stats SEC(".maps");

/* Why the scheduler stopped, for the loader (in .bss, which it maps). */
struct exit_info exit_info;

static void count(u32 stat)
{
	u64 *value = bpf_map_lookup_elem(&stats, &stat);

	if (value)
		(*value)++;	/* this CPU's counter: no other CPU writes it */
}

s32 SCX_CALLBACK({{name}}_select_cpu, struct task_struct *p, s32 prev_cpu, u64 wake_flags)
{
	bool is_idle = false;
	s32 cpu = scx_bpf_select_cpu_dfl(p, prev_cpu, wake_flags, &is_idle);

	if (is_idle) {
		/* Straight to the idle CPU's local DSQ: enqueue is not called. */
		count(STAT_DIRECT);
		scx_bpf_dsq_insert(p, SCX_DSQ_LOCAL, slice_ns, 0);
	}
	return cpu;
}

void SCX_CALLBACK({{name}}_enqueue, struct task_struct *p, u64 enq_flags)
{
	count(STAT_QUEUED);
	scx_bpf_dsq_insert(p, SHARED_DSQ, slice_ns, enq_flags);
}

void SCX_CALLBACK({{name}}_dispatch, s32 cpu, struct task_struct *prev)
{
	if (scx_bpf_dsq_move_to_local(SHARED_DSQ))
		count(STAT_DISPATCHED);
}

s32 SCX_CALLBACK_SLEEPABLE({{name}}_init)
{
	return scx_bpf_create_dsq(SHARED_DSQ, -1);
}

void SCX_CALLBACK({{name}}_exit, struct scx_exit_info *info)
{
	exit_info.exit_code = info->exit_code;
	bpf_probe_read_kernel_str(exit_info.reason, sizeof(exit_info.reason), info->reason);
	bpf_probe_read_kernel_str(exit_info.msg, sizeof(exit_info.msg), info->msg);
	exit_info.kind = info->kind;	/* last: the loader reads the rest once it is set */
}

/* The scheduler: in .struct_ops.link, so that loading it registers nothing; the
 * loader's bpf_map__attach_struct_ops() switches it on, and destroying the link off. */
SEC(".struct_ops.link")
struct sched_ext_ops {{name}}_ops = {
	.select_cpu = (void *){{name}}_select_cpu,
	.enqueue = (void *){{name}}_enqueue,
	.dispatch = (void *){{name}}_dispatch,
	.init = (void *){{name}}_init,
	.exit = (void *){{name}}_exit,
	.name = "{{name}}",
};
