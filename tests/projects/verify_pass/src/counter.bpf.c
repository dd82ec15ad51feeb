// SPDX-License-Identifier: GPL-2.0
/* An XDP program that checks the packet bounds, and a socket filter whose verifier
 * cost grows with SUM_BOUND: the loop is not unrolled, so the verifier walks it
 * iteration by iteration. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

#define SUM_BOUND 16

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64[64]);
} values SEC(".maps");

SEC("xdp")
int count_packets(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;

	if ((void *)(eth + 1) > data_end)
		return XDP_ABORTED;
	if (eth->h_proto == 0)
		return XDP_DROP;
	return XDP_PASS;
}

SEC("socket")
int sum_array(struct __sk_buff *skb)
{
	__u32 key = 0;
	__u64 *row = bpf_map_lookup_elem(&values, &key);
	__u64 sum = 0;

	if (!row)
		return 0;
#pragma clang loop unroll(disable)
	for (__u32 i = 0; i < SUM_BOUND; i++)
		sum += row[i];
	return sum & 1;
}

char LICENSE[] SEC("license") = "GPL";
