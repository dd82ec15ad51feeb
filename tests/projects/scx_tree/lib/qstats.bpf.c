// SPDX-License-Identifier: GPL-2.0
/* The qstats library: one per-CPU array of counters, linked into each scheduler
 * that lists it. */
#include <scx/common.bpf.h>
#include <scx/qstats.bpf.h>

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, QSTAT_NR);
	__type(key, u32);
	__type(value, u64);
} qstats SEC(".maps");

__noinline int qstat_inc(u32 counter)
{
	u64 *count = bpf_map_lookup_elem(&qstats, &counter);

	if (count)
		(*count)++;
	return 0;
}
