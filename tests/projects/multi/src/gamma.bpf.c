// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* A socket filter from uapi headers only (no vmlinux.h): counts IPv4 frames. */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

char LICENSE[] SEC("license") = "Dual BSD/GPL";

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} ipv4_frames SEC(".maps");

SEC("socket")
int count_ipv4(struct __sk_buff *skb)
{
	__u32 key = 0;
	__u64 *count;

	if (skb->protocol != bpf_htons(ETH_P_IP))
		return skb->len;
	count = bpf_map_lookup_elem(&ipv4_frames, &key);
	if (count)
		__sync_fetch_and_add(count, 1);
	return skb->len;
}
