// SPDX-License-Identifier: GPL-2.0
/* An fentry program: some hosts refuse the type (EPERM), Debian's kernels load it. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

char LICENSE[] SEC("license") = "GPL";

__u64 unlinks;

SEC("fentry/do_unlinkat")
int BPF_PROG(on_unlinkat, int dfd, struct filename *name)
{
	__sync_fetch_and_add(&unlinks, 1);
	return 0;
}
