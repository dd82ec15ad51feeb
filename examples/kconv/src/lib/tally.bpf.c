// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* The tally library: counts events by the program name of the current task. Compiled
 * once per arch and linked into each object whose [object] table lists it in libs. */
#include <kconv/common.bpf.h>

struct tally_map tally SEC(".maps");

/* A global function: the verifier checks it once, on its own, for every program that
 * calls it. */
__noinline int tally_current(void)
{
	struct tally_key key = {};
	__u64 one = 1, *count;

	bpf_get_current_comm(&key.comm, sizeof(key.comm));
	count = bpf_map_lookup_elem(&tally, &key);
	if (count)
		__sync_fetch_and_add(count, 1);
	else
		bpf_map_update_elem(&tally, &key, &one, BPF_NOEXIST);
	return 0;
}
