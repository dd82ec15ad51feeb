// SPDX-License-Identifier: GPL-2.0
/* The index into a 4-slot map value comes from .rodata: slot 8 is out of bounds. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

const volatile __u32 slot = 0;

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64[4]);
} table SEC(".maps");

SEC("socket")
int read_slot(struct __sk_buff *skb)
{
	__u32 key = 0;
	__u64 *row = bpf_map_lookup_elem(&table, &key);

	if (!row)
		return 0;
	return row[slot] & 1;
}

char LICENSE[] SEC("license") = "GPL";
