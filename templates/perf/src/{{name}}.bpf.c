// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* CPU profiler: runs on every sample of a perf event (the loader opens the cpu-clock
 * software event on each CPU) and counts the samples per process and stack. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include "{{name}}.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* Set by user space before load: count only this process (0: every process). */
const volatile __u32 target_tgid = 0;

/* Stack id -> the instruction pointers of one stack; equal stacks share an id. */
struct {
	__uint(type, BPF_MAP_TYPE_STACK_TRACE);
	__uint(max_entries, MAX_SAMPLE_KEYS);
	__type(key, __u32);
	__uint(value_size, MAX_STACK_DEPTH * sizeof(__u64));
} stacks SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_SAMPLE_KEYS);
	__type(key, struct sample_key);
	__type(value, __u64);
} samples SEC(".maps");

SEC("perf_event")
int on_sample(struct bpf_perf_event_data *ctx)
{
	struct sample_key key = {};
	__u64 one = 1, *count;

	key.tgid = bpf_get_current_pid_tgid() >> 32;
	if (key.tgid == 0)
		return 0; /* the idle task: the CPU had nothing to run */
	if (target_tgid && key.tgid != target_tgid)
		return 0;
	bpf_get_current_comm(key.comm, sizeof(key.comm));
	/* ctx holds the registers at the sample: the stacks are walked from there. */
	key.kernel_stack_id = bpf_get_stackid(ctx, &stacks, 0);
	key.user_stack_id = bpf_get_stackid(ctx, &stacks, BPF_F_USER_STACK);

	count = bpf_map_lookup_elem(&samples, &key);
	if (count) {
		__sync_fetch_and_add(count, 1);
		return 0;
	}
	/* First sample of this key; if another CPU created it meanwhile, add to it. */
	if (bpf_map_update_elem(&samples, &key, &one, BPF_NOEXIST)) {
		count = bpf_map_lookup_elem(&samples, &key);
		if (count)
			__sync_fetch_and_add(count, 1);
	}
	return 0;
}
