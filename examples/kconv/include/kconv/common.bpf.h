/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* What every BPF source of kconv includes first, as sched_ext's <scx/common.bpf.h>:
 * vmlinux.h, libbpf's helpers, and the tally library's extern map and function. */
#ifndef __KCONV_COMMON_BPF_H
#define __KCONV_COMMON_BPF_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include "tally.h"

/* A named type, so that the library's definition and the objects' extern declaration
 * are one type for the static linker. */
struct tally_map {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, TALLY_MAX_ENTRIES);
	__type(key, struct tally_key);
	__type(value, __u64);
};

/* Defined in src/lib/tally.bpf.c. */
extern struct tally_map tally SEC(".maps");
extern int tally_current(void);

#endif /* __KCONV_COMMON_BPF_H */
