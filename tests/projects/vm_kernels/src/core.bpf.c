// SPDX-License-Identifier: GPL-2.0
/* CO-RE reads of a field Linux 6.7 added (struct inode::i_mtime_sec; 6.1 has i_mtime). */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

char LICENSE[] SEC("license") = "GPL";

__u64 seen;

static struct inode *exe_inode(void)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();

	return BPF_CORE_READ(task, mm, exe_file, f_inode);
}

/* Rejected where the kernel lacks the field: libbpf cannot relocate the read. */
SEC("raw_tp/sys_enter")
int read_mtime(void *ctx)
{
	struct inode *inode = exe_inode();

	seen = BPF_CORE_READ(inode, i_mtime_sec);
	return 0;
}

/* The same read behind bpf_core_field_exists(): loads on every kernel. */
SEC("raw_tp/sys_enter")
int read_mtime_guarded(void *ctx)
{
	struct inode *inode = exe_inode();

	if (bpf_core_field_exists(inode->i_mtime_sec))
		seen = BPF_CORE_READ(inode, i_mtime_sec);
	return 0;
}
