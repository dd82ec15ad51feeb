// Counts getpid() calls.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

__u64 getpids = 0;

SEC("tracepoint/syscalls/sys_enter_getpid")
int count_getpid(void *ctx)
{
	__sync_fetch_and_add(&getpids, 1);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
