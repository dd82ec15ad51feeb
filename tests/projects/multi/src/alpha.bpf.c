// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Counts execve calls in an array map (vmlinux.h, tracepoint). */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include "common.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, COMMON_SLOTS);
	__type(key, __u32);
	__type(value, __u64);
} execs SEC(".maps");

SEC("tp/syscalls/sys_enter_execve")
int count_execve(struct trace_event_raw_sys_enter *ctx)
{
	__u32 key = bpf_get_smp_processor_id() % COMMON_SLOTS;
	__u64 *count = bpf_map_lookup_elem(&execs, &key);

	if (count)
		__sync_fetch_and_add(count, 1);
	return 0;
}
