// SPDX-License-Identifier: GPL-2.0
/* CONFIG_* values read at load time: libbpf fails the load ("failed to open system
 * Kconfig") when it finds no configuration of the running kernel. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

extern unsigned int CONFIG_HZ __kconfig;
extern bool CONFIG_BPF_SYSCALL __kconfig;

__u64 ticks_per_second;

SEC("socket")
int remember_hz(struct __sk_buff *skb)
{
	if (CONFIG_BPF_SYSCALL)
		ticks_per_second = CONFIG_HZ;
	return 0;
}
