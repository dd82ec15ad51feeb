// SPDX-License-Identifier: GPL-2.0
/* flows: counts packets per interface; its loader sizes both maps before loading. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, u32);
	__type(value, u64);
} per_interface SEC(".maps"); /* max_entries: bpf_map__set_max_entries() at run time */

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
} events SEC(".maps"); /* likewise */

SEC("xdp")
int count_flows(struct xdp_md *ctx)
{
	u32 key = ctx->ingress_ifindex;
	u64 one = 1, *count = bpf_map_lookup_elem(&per_interface, &key);

	if (count)
		*count += 1;
	else
		bpf_map_update_elem(&per_interface, &key, &one, BPF_NOEXIST);
	bpf_ringbuf_output(&events, &key, sizeof(key), 0);
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
