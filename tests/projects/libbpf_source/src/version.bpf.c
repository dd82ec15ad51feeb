// Counts syscalls: a second object, so that a libbpf change relinks more than one app.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

__u64 syscalls = 0;

SEC("raw_tp/sys_enter")
int count_syscalls(void *ctx)
{
	__sync_fetch_and_add(&syscalls, 1);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
