// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* An object without a loader: discovery makes it an object and a skeleton only. */
#include <vmlinux.h>
#include <bpf/bpf_helpers.h>
#include "common.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

__u64 opens[COMMON_SLOTS];

SEC("tp/syscalls/sys_enter_openat")
int count_openat(void *ctx)
{
	opens[bpf_get_smp_processor_id() % COMMON_SLOTS]++;
	return 0;
}
