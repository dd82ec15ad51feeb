// SPDX-License-Identifier: GPL-2.0
/* Program types some kernels refuse: fentry and LSM, beside one that loads. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

SEC("fentry/do_unlinkat")
int BPF_PROG(on_unlinkat, int dfd, struct filename *name)
{
	return 0;
}

SEC("lsm/file_open")
int BPF_PROG(on_file_open, struct file *file)
{
	return 0;
}

SEC("raw_tp/sys_enter")
int on_sys_enter(void *ctx)
{
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
