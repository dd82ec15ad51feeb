// SPDX-License-Identifier: GPL-2.0
/* One program per typical mistake; each line marked MISTAKE is what the verifier refuses. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16);
	__type(key, u32);
	__type(value, u64);
} counts SEC(".maps");

struct slots {
	u64 hits[16];
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, u32);
	__type(value, struct slots);
} table SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4096);
} events SEC(".maps");

SEC("xdp")
int packet_unchecked(struct xdp_md *ctx)
{
	struct ethhdr *eth = (void *)(long)ctx->data;

	if (eth->h_proto == 0) /* MISTAKE: no data_end check */
		return XDP_DROP;
	return XDP_PASS;
}

SEC("xdp")
int null_unchecked(struct xdp_md *ctx)
{
	u32 key = ctx->ingress_ifindex;
	u64 *count = bpf_map_lookup_elem(&counts, &key);

	*count += 1; /* MISTAKE: no NULL check */
	return XDP_PASS;
}

SEC("xdp")
int reference_leaked(struct xdp_md *ctx)
{
	u64 *event = bpf_ringbuf_reserve(&events, sizeof(*event), 0);

	if (!event)
		return XDP_PASS;
	*event = ctx->ingress_ifindex;
	return XDP_PASS; /* MISTAKE: neither submitted nor discarded */
}

SEC("xdp")
int index_unbounded(struct xdp_md *ctx)
{
	u32 key = 0;
	struct slots *slots = bpf_map_lookup_elem(&table, &key);

	if (!slots)
		return XDP_PASS;
	slots->hits[ctx->ingress_ifindex] += 1; /* MISTAKE: index not bounded */
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
