// SPDX-License-Identifier: GPL-2.0
/*
 * slowcc: a TCP congestion control that halves the window on loss and grows it by
 * one segment per ACK. Its cong_avoid callback counts ACKs in a hash map value it
 * never checks against NULL: the verifier rejects that callback alone.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

char _license[] SEC("license") = "GPL";

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, u32);
	__type(value, u64);
} acks SEC(".maps");

static struct tcp_sock *tcp_sk(const struct sock *sk)
{
	return (struct tcp_sock *)sk;
}

SEC("struct_ops/slowcc_init")
void BPF_PROG(slowcc_init, struct sock *sk)
{
}

SEC("struct_ops/slowcc_ssthresh")
u32 BPF_PROG(slowcc_ssthresh, struct sock *sk)
{
	u32 half = tcp_sk(sk)->snd_cwnd >> 1;

	return half > 2 ? half : 2;
}

SEC("struct_ops/slowcc_cong_avoid")
void BPF_PROG(slowcc_cong_avoid, struct sock *sk, u32 ack, u32 acked)
{
	u32 key = ack & 63;
	u64 *count = bpf_map_lookup_elem(&acks, &key);

	*count += acked; /* BROKEN: no NULL check */
	tcp_sk(sk)->snd_cwnd += 1;
}

SEC("struct_ops/slowcc_undo_cwnd")
u32 BPF_PROG(slowcc_undo_cwnd, struct sock *sk)
{
	return tcp_sk(sk)->snd_cwnd;
}

SEC(".struct_ops.link")
struct tcp_congestion_ops slowcc = {
	.init = (void *)slowcc_init,
	.ssthresh = (void *)slowcc_ssthresh,
	.cong_avoid = (void *)slowcc_cong_avoid,
	.undo_cwnd = (void *)slowcc_undo_cwnd,
	.name = "bpfbuild_slowcc",
};

SEC("xdp")
int count_packets(struct xdp_md *ctx)
{
	return XDP_PASS;
}
