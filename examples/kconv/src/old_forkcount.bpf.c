// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* The first forkcount: a kprobe on _do_fork, which Linux 5.10 renamed kernel_clone,
 * reading the child with bpf_probe_read(), which libbpf's headers no longer declare for
 * BPF CO-RE programs. Kept for its history; [build] exclude leaves it out. */
#include <kconv/common.bpf.h>
#include "old_events.h" /* gone with the perf buffer it described */

char LICENSE[] SEC("license") = "Dual BSD/GPL";

SEC("kprobe/_do_fork")
int BPF_KPROBE(old_count_fork, struct kernel_clone_args *args)
{
	struct old_event event = {};

	bpf_probe_read(&event.flags, sizeof(event.flags), &args->flags);
	return tally_current();
}
