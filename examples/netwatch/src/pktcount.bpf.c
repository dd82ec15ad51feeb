// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* XDP: count packets per class in a per-CPU array, pass every packet. */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/in.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "netwatch.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, PKT_CLASS_MAX);
	__type(key, __u32);
	__type(value, __u64);
} counts SEC(".maps");

static __always_inline __u32 classify(void *data, void *data_end)
{
	struct ethhdr *eth = data;
	struct iphdr *ip;

	if ((void *)(eth + 1) > data_end)
		return PKT_OTHER;
	if (eth->h_proto == bpf_htons(ETH_P_IPV6))
		return PKT_IPV6;
	if (eth->h_proto != bpf_htons(ETH_P_IP))
		return PKT_OTHER;
	ip = (void *)(eth + 1);
	if ((void *)(ip + 1) > data_end)
		return PKT_OTHER;
	if (ip->protocol == IPPROTO_TCP)
		return PKT_IPV4_TCP;
	if (ip->protocol == IPPROTO_UDP)
		return PKT_IPV4_UDP;
	return PKT_IPV4_OTHER;
}

SEC("xdp")
int count_packets(struct xdp_md *ctx)
{
	__u32 key = classify((void *)(long)ctx->data, (void *)(long)ctx->data_end);
	__u64 *count = bpf_map_lookup_elem(&counts, &key);

	if (count)
		(*count)++;
	return XDP_PASS;
}
