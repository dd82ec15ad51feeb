// SPDX-License-Identifier: GPL-2.0
/* A kfunc Linux 6.2 added: 6.1 cannot resolve it, 6.12 loads the program. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

char LICENSE[] SEC("license") = "GPL";

extern void bpf_rcu_read_lock(void) __ksym;
extern void bpf_rcu_read_unlock(void) __ksym;

__u64 execs;

SEC("tp_btf/sched_process_exec")
int BPF_PROG(on_exec, struct task_struct *task, pid_t old_pid, struct linux_binprm *bprm)
{
	bpf_rcu_read_lock();
	execs++;
	bpf_rcu_read_unlock();
	return 0;
}
