/* SPDX-License-Identifier: GPL-2.0 */
/* The qstats BPF library (lib/qstats.bpf.c): counters of what a scheduler did. */
#ifndef __SCX_QSTATS_BPF_H
#define __SCX_QSTATS_BPF_H

#include "qstats.h"

/* Defined in lib/qstats.bpf.c; bpftool gen object resolves it in each scheduler. */
extern int qstat_inc(u32 counter);

#endif
