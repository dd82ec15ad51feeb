/* SPDX-License-Identifier: GPL-2.0 */
/*
 * What a sched_ext scheduler uses beyond vmlinux.h: the kfuncs it calls (as Linux 6.13
 * and later name them; vmlinux.h has the types and SCX_* constants, from the BTF of a
 * kernel with sched_ext) and a way to write one struct_ops callback.
 */
#ifndef __SCX_SCHED_EXT_H
#define __SCX_SCHED_EXT_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

/* Create the dispatch queue (DSQ) `dsq_id` (below 2^63), on NUMA node `node` (-1: any).
 * Only from a sleepable callback, such as init. */
s32 scx_bpf_create_dsq(u64 dsq_id, s32 node) __ksym;
/* Queue task p on a DSQ, to run for `slice` ns when a CPU takes it. */
void scx_bpf_dsq_insert(struct task_struct *p, u64 dsq_id, u64 slice, u64 enq_flags) __ksym;
/* From dispatch: move the first task of a DSQ to this CPU's local DSQ; true if one moved. */
bool scx_bpf_dsq_move_to_local(u64 dsq_id) __ksym;
/* The kernel's own choice of CPU for a waking task; *is_idle tells whether it is idle. */
s32 scx_bpf_select_cpu_dfl(struct task_struct *p, s32 prev_cpu, u64 wake_flags,
			   bool *is_idle) __ksym;

/*
 * One callback of struct sched_ext_ops: a program of its own (section
 * "struct_ops/NAME"), whose arguments BPF_PROG unpacks. The ops struct in section
 * .struct_ops.link names the callbacks; the loader registers it through a link.
 */
#define SCX_CALLBACK(name, args...) SEC("struct_ops/" #name) BPF_PROG(name, ##args)
/* A callback that may sleep (init: scx_bpf_create_dsq may allocate). */
#define SCX_CALLBACK_SLEEPABLE(name, args...) SEC("struct_ops.s/" #name) BPF_PROG(name, ##args)

#endif /* __SCX_SCHED_EXT_H */
