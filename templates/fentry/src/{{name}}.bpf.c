// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Reports every file deletion (unlink, unlinkat) with its result, from fentry and
 * fexit programs: BPF trampolines that the kernel calls on entry to and return from
 * do_unlinkat. Unlike a kretprobe, fexit sees the arguments as well as the return
 * value, and arguments are typed (from the kernel's BTF) so they can be read
 * directly. They need a kernel with BTF and trampoline support (x86_64 and arm64
 * since 5.5 and 6.0), and no lockdown. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include "{{name}}.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL"; /* tracing programs need a GPL-compatible license */

/* Set by user space before load: report only this process (0: every process). */
const volatile int target_tgid = 0;

/* How many times do_unlinkat was entered (by the processes reported). */
__u64 calls = 0;

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 256 * 1024);
} events SEC(".maps");

/* Ring buffer records have no map type: this makes clang emit struct event's BTF,
 * so that tests (and bpftool) can decode the records by field name. */
const struct event *unused_event __attribute__((unused));

static __always_inline bool wanted(void)
{
	return !target_tgid || (bpf_get_current_pid_tgid() >> 32) == target_tgid;
}

SEC("fentry/do_unlinkat")
int BPF_PROG(unlink_entry, int dfd, struct filename *name)
{
	if (wanted())
		__sync_fetch_and_add(&calls, 1);
	return 0;
}

/* fexit gets the arguments, then the return value. */
SEC("fexit/do_unlinkat")
int BPF_PROG(unlink_exit, int dfd, struct filename *name, int ret)
{
	struct event *e;

	if (!wanted())
		return 0;
	e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e)
		return 0;
	e->pid = bpf_get_current_pid_tgid() >> 32;
	e->ret = ret;
	bpf_get_current_comm(&e->comm, sizeof(e->comm));
	/* name is a typed kernel pointer: name->name is a plain (checked) load. */
	bpf_probe_read_kernel_str(&e->filename, sizeof(e->filename), name->name);
	bpf_ringbuf_submit(e, 0);
	return 0;
}
