// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* raw tracepoint sys_enter: count system calls by number, for one process or all. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include "netwatch.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

const volatile int target_tgid = 0;

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, MAX_SYSCALLS);
	__type(key, u32);
	__type(value, u64);
} syscalls SEC(".maps");

SEC("raw_tp/sys_enter")
int count_syscall(struct bpf_raw_tracepoint_args *ctx)
{
	u32 nr = (u32)ctx->args[1];
	u64 *count;

	if (target_tgid && (bpf_get_current_pid_tgid() >> 32) != target_tgid)
		return 0;
	count = bpf_map_lookup_elem(&syscalls, &nr);
	if (count)
		__sync_fetch_and_add(count, 1);
	return 0;
}
