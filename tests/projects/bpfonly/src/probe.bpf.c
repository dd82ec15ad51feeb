// SPDX-License-Identifier: GPL-2.0
/* Only vmlinux.h and libbpf's headers, no linux/ uapi header: so the target
 * arch's uapi headers (linux-libc-dev:ARCH) are not needed either. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

char LICENSE[] SEC("license") = "GPL";

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, u32);
	__type(value, u64);
} opens SEC(".maps");

SEC("kprobe/do_sys_openat2")
int BPF_KPROBE(count_open, int dfd, const char *filename)
{
	u32 pid = bpf_get_current_pid_tgid() >> 32;
	u64 one = 1, *count = bpf_map_lookup_elem(&opens, &pid);

	if (count)
		__sync_fetch_and_add(count, 1);
	else
		bpf_map_update_elem(&opens, &pid, &one, BPF_ANY);
	return dfd;
}
