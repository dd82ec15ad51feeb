/* SPDX-License-Identifier: GPL-2.0 */
/*
 * What a sched_ext scheduler needs beyond vmlinux.h, written by hand (no scx
 * headers): the kfuncs it calls, as the 7.x kernels declare them, and the
 * struct_ops section markers. The types and SCX_* constants come from the
 * kernel's BTF through vmlinux.h.
 */
#ifndef SCX_H
#define SCX_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

s32 scx_bpf_create_dsq(u64 dsq_id, s32 node) __ksym;
void scx_bpf_dsq_insert(struct task_struct *p, u64 dsq_id, u64 slice, u64 enq_flags) __ksym;
bool scx_bpf_dsq_move_to_local(u64 dsq_id) __ksym;
s32 scx_bpf_select_cpu_dfl(struct task_struct *p, s32 prev_cpu, u64 wake_flags,
			   bool *is_idle) __ksym;

/* One struct_ops callback: its own section, so each is a program of its own. */
#define SCX_OPS(name, args...) SEC("struct_ops/" #name) BPF_PROG(name, ##args)
#define SCX_OPS_SLEEPABLE(name, args...) SEC("struct_ops.s/" #name) BPF_PROG(name, ##args)

#endif
