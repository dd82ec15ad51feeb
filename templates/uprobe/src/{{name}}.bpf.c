// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Counts the calls of a malloc-like function and sums its size argument, per process.
 * The loader chooses the binary and the function at run time: SEC("uprobe") names
 * no target, so the same program can probe malloc in libc or any function of any
 * binary whose first argument is a size. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include "{{name}}.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* Set by user space before load: allocations smaller than this are not counted. */
const volatile __u64 min_size = 0;

/* Process id (tgid) -> its counts. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_PROCESSES);
	__type(key, __u32);
	__type(value, struct alloc_stats);
} allocs SEC(".maps");

/* BPF_KPROBE also serves uprobes: it names the function's arguments, read from the
 * registers of the calling convention of the arch the object is built for. */
SEC("uprobe")
int BPF_KPROBE(on_malloc, size_t size)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	struct alloc_stats *stats;

	if (size < min_size)
		return 0;
	stats = bpf_map_lookup_elem(&allocs, &tgid);
	if (!stats) {
		struct alloc_stats fresh = {};

		/* BPF_NOEXIST: if another thread got there first, keep its entry. */
		bpf_map_update_elem(&allocs, &tgid, &fresh, BPF_NOEXIST);
		stats = bpf_map_lookup_elem(&allocs, &tgid);
		if (!stats)
			return 0; /* the map is full */
	}
	__sync_fetch_and_add(&stats->calls, 1);
	__sync_fetch_and_add(&stats->bytes, size);
	/* The name at the latest call: a process that forked then exec'd was renamed. */
	bpf_get_current_comm(stats->comm, sizeof(stats->comm));
	return 0;
}
