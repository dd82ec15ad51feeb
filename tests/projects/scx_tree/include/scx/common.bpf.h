/* SPDX-License-Identifier: GPL-2.0 */
/*
 * What every scheduler's BPF side includes first, as the kernel's
 * tools/sched_ext/include/scx/common.bpf.h: vmlinux.h, libbpf's helpers, the
 * sched_ext kfuncs of the 7.x kernels, and the struct_ops markers.
 */
#ifndef __SCX_COMMON_BPF_H
#define __SCX_COMMON_BPF_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

s32 scx_bpf_create_dsq(u64 dsq_id, s32 node) __ksym;
void scx_bpf_dsq_insert(struct task_struct *p, u64 dsq_id, u64 slice, u64 enq_flags) __ksym;
bool scx_bpf_dsq_move_to_local(u64 dsq_id) __ksym;
s32 scx_bpf_select_cpu_dfl(struct task_struct *p, s32 prev_cpu, u64 wake_flags,
			   bool *is_idle) __ksym;

#define BPF_STRUCT_OPS(name, args...) SEC("struct_ops/" #name) BPF_PROG(name, ##args)
#define BPF_STRUCT_OPS_SLEEPABLE(name, args...) SEC("struct_ops.s/" #name) BPF_PROG(name, ##args)

/* The scheduler's ops, attached through a link (libbpf 1.2 and later read it). */
#define SCX_OPS_DEFINE(__name, ...)					\
	SEC(".struct_ops.link")						\
	struct sched_ext_ops __name = {					\
		__VA_ARGS__,						\
	};

#endif /* __SCX_COMMON_BPF_H */
