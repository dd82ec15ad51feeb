// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* XDP firewall: drops IPv4 packets whose source address is in `blocklist`, passes
 * everything else, and counts packets and bytes per verdict. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "{{name}}.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define ETH_P_IP 0x0800 /* uapi macros are not in vmlinux.h, which has types only */

/* Blocked IPv4 source addresses (network byte order) -> packets dropped. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_BLOCKED);
	__type(key, __u32);
	__type(value, __u64);
} blocklist SEC(".maps");

/* Per-CPU: each CPU updates its own copy without atomics; user space sums them. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, STATS_MAX_ACTIONS);
	__type(key, __u32);
	__type(value, struct datarec);
} stats SEC(".maps");

static __always_inline int count(struct xdp_md *ctx, __u32 action)
{
	struct datarec *rec = bpf_map_lookup_elem(&stats, &action);

	if (rec) {
		rec->packets++;
		rec->bytes += ctx->data_end - ctx->data;
	}
	return action;
}

SEC("xdp")
int xdp_filter(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip;
	__u64 *dropped;

	/* The verifier rejects any packet access it cannot prove is within bounds:
	 * each header is checked against data_end before it is read. */
	if ((void *)(eth + 1) > data_end)
		return count(ctx, XDP_PASS);
	if (eth->h_proto != bpf_htons(ETH_P_IP))
		return count(ctx, XDP_PASS);
	ip = (void *)(eth + 1);
	if ((void *)(ip + 1) > data_end)
		return count(ctx, XDP_PASS); /* truncated: the stack will drop it */

	dropped = bpf_map_lookup_elem(&blocklist, &ip->saddr);
	if (dropped) {
		__sync_fetch_and_add(dropped, 1); /* shared by every CPU: atomic */
		return count(ctx, XDP_DROP);
	}
	return count(ctx, XDP_PASS);
}
