// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* TC classifier: drops IPv4 and IPv6 TCP/UDP packets whose destination port is in
 * `blocked_ports`, lets everything else through, and counts both. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "{{name}}.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* uapi macros (linux/pkt_cls.h, linux/if_ether.h) are not in vmlinux.h. */
#define TC_ACT_OK 0
#define TC_ACT_SHOT 2
#define ETH_P_IP 0x0800
#define ETH_P_IPV6 0x86DD
#define IPPROTO_TCP 6
#define IPPROTO_UDP 17

/* Blocked destination ports (host byte order) -> packets dropped. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_BLOCKED_PORTS);
	__type(key, __u16);
	__type(value, __u64);
} blocked_ports SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, STAT_MAX);
	__type(key, __u32);
	__type(value, struct datarec);
} stats SEC(".maps");

static __always_inline int verdict(struct __sk_buff *skb, __u32 index)
{
	struct datarec *rec = bpf_map_lookup_elem(&stats, &index);

	if (rec) {
		rec->packets++;
		rec->bytes += skb->len;
	}
	return index == STAT_DROPPED ? TC_ACT_SHOT : TC_ACT_OK;
}

SEC("tc")
int tc_filter(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	void *l4;
	__u8 proto;
	__u16 port;
	__u64 *dropped;

	/* Bounds are checked before every read, or the verifier rejects the program.
	 * Headers beyond the linear part of the skb fail these checks: such packets pass
	 * (bpf_skb_pull_data could make them readable, at a cost). */
	if ((void *)(eth + 1) > data_end)
		return verdict(skb, STAT_PASSED);
	if (eth->h_proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = (void *)(eth + 1);

		if ((void *)(ip + 1) > data_end || ip->ihl < 5)
			return verdict(skb, STAT_PASSED);
		/* Only the first fragment carries the ports. */
		if (ip->frag_off & bpf_htons(0x1fff))
			return verdict(skb, STAT_PASSED);
		proto = ip->protocol;
		l4 = (void *)ip + ip->ihl * 4;
	} else if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = (void *)(eth + 1);

		if ((void *)(ip6 + 1) > data_end)
			return verdict(skb, STAT_PASSED);
		proto = ip6->nexthdr; /* extension headers are not followed */
		l4 = ip6 + 1;
	} else {
		return verdict(skb, STAT_PASSED);
	}

	/* TCP and UDP both start with the source port then the destination port. */
	if (proto != IPPROTO_TCP && proto != IPPROTO_UDP)
		return verdict(skb, STAT_PASSED);
	if (l4 + 4 > data_end)
		return verdict(skb, STAT_PASSED);
	port = bpf_ntohs(*(__be16 *)(l4 + 2));

	dropped = bpf_map_lookup_elem(&blocked_ports, &port);
	if (dropped) {
		__sync_fetch_and_add(dropped, 1);
		return verdict(skb, STAT_DROPPED);
	}
	return verdict(skb, STAT_PASSED);
}
