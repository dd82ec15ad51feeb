// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* A socket filter that keeps every packet. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "Dual BSD/GPL";

SEC("socket")
int keep_all(struct __sk_buff *skb)
{
	return skb->len;
}
