// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Socket filter: counts every IPv4 and IPv6 packet by IP protocol, and lets through
 * to the socket only those of one protocol (or all IP packets). A socket filter
 * cannot change what the kernel does with a packet: it only chooses what the one
 * socket it is attached to receives. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "{{name}}.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define ETH_P_IP 0x0800 /* uapi macros are not in vmlinux.h, which has types only */
#define ETH_P_IPV6 0x86DD

/* Set by user space before load: the IP protocol to keep (IPPROTO_TCP...), 0 for all. */
const volatile __u8 ip_proto = 0;

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, MAX_IP_PROTOCOLS);
	__type(key, __u32);
	__type(value, struct datarec);
} protocols SEC(".maps");

SEC("socket")
int socket_filter(struct __sk_buff *skb)
{
	struct datarec *rec;
	__u32 key;
	__u8 proto;
	int err;

	/* Offsets relative to the network header (BPF_HDR_START_NET) hold on a packet
	 * socket, which sees the link-layer header, and on any link type. */
	if (skb->protocol == bpf_htons(ETH_P_IP))
		err = bpf_skb_load_bytes_relative(skb, offsetof(struct iphdr, protocol), &proto,
						  sizeof(proto), BPF_HDR_START_NET);
	else if (skb->protocol == bpf_htons(ETH_P_IPV6))
		err = bpf_skb_load_bytes_relative(skb, offsetof(struct ipv6hdr, nexthdr), &proto,
						  sizeof(proto), BPF_HDR_START_NET);
	else
		return 0; /* not IP: drop */
	if (err)
		return 0;

	key = proto;
	rec = bpf_map_lookup_elem(&protocols, &key);
	if (rec) {
		rec->packets++;
		rec->bytes += skb->len;
	}
	if (ip_proto && proto != ip_proto)
		return 0;
	/* The return value is how many bytes of the packet the socket gets: all of it. */
	return skb->len;
}
