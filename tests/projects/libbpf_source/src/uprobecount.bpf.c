// Counts the calls of a user-space function and records its arguments and result.
// BPF_UPROBE and BPF_URETPROBE come with libbpf 1.2: Debian 12's libbpf 1.1 lacks them.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

int calls = 0;
long long sum = 0;
long long last_result = 0;

SEC("uprobe")
int BPF_UPROBE(on_add, int a, int b)
{
	__sync_fetch_and_add(&calls, 1);
	__sync_fetch_and_add(&sum, a + b);
	return 0;
}

SEC("uretprobe")
int BPF_URETPROBE(on_add_return, int result)
{
	last_result = result;
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
