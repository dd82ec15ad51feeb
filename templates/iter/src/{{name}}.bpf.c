// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Task iterator: lists the processes (or every thread) of the system as text, one
 * line each. Each read() of the iterator's file descriptor runs the program once
 * per task; what it prints with BPF_SEQ_PRINTF is what read() returns. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* Set by user space before load: list every thread, not only thread group leaders. */
const volatile bool show_threads = false;

SEC("iter/task")
int list_tasks(struct bpf_iter__task *ctx)
{
	struct seq_file *seq = ctx->meta->seq;
	struct task_struct *task = ctx->task;

	/* The program runs once more after the last task, with task NULL. */
	if (!task)
		return 0;
	if (ctx->meta->seq_num == 0)
		BPF_SEQ_PRINTF(seq, "%-8s %-8s %-8s %-6s %s\n", "PID", "TID", "PPID", "UID", "COMM");
	if (!show_threads && task->pid != task->tgid)
		return 0;
	/* The iterator hands over a trusted pointer: fields are read directly, and
	 * vmlinux.h makes each access a CO-RE relocation, fixed up for the running kernel. */
	BPF_SEQ_PRINTF(seq, "%-8d %-8d %-8d %-6u %s\n", task->tgid, task->pid,
		       task->real_parent->tgid, task->cred->uid.val, task->comm);
	return 0;
}
