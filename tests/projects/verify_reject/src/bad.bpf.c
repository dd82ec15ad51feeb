// SPDX-License-Identifier: GPL-2.0
/* bad_read reads the EtherType without checking data_end: the verifier rejects it. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

SEC("xdp")
int good_pass(struct xdp_md *ctx)
{
	return XDP_PASS;
}

SEC("xdp")
int bad_read(struct xdp_md *ctx)
{
	struct ethhdr *eth = (void *)(long)ctx->data;

	if (eth->h_proto == 0)
		return XDP_DROP;
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
