// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Reports every file deletion (unlink, unlinkat) with its result. A kprobe on
 * do_unlinkat reads the file name on entry; a kretprobe on the same function reads
 * the return value and sends both to user space through a ring buffer. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include "{{name}}.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL"; /* kprobe helpers need a GPL-compatible license */

/* Set by user space before load: report only this process (0: every process). */
const volatile int target_tgid = 0;

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 256 * 1024);
} events SEC(".maps");

/* Thread (pid_tgid) -> the event being built between the entry and the return. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 10240);
	__type(key, __u64);
	__type(value, struct event);
} in_flight SEC(".maps");

/* Ring buffer records have no map type: this makes clang emit struct event's BTF,
 * so that tests (and bpftool) can decode the records by field name. */
const struct event *unused_event __attribute__((unused));

/* A kprobe's arguments are registers: BPF_KPROBE names them, and BPF_CORE_READ
 * follows name->name with CO-RE offsets for the running kernel's struct filename. */
SEC("kprobe/do_unlinkat")
int BPF_KPROBE(unlink_entry, int dfd, struct filename *name)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct event event = {};

	if (target_tgid && (id >> 32) != target_tgid)
		return 0;
	event.pid = id >> 32;
	bpf_get_current_comm(&event.comm, sizeof(event.comm));
	bpf_probe_read_kernel_str(&event.filename, sizeof(event.filename), BPF_CORE_READ(name, name));
	bpf_map_update_elem(&in_flight, &id, &event, BPF_ANY);
	return 0;
}

SEC("kretprobe/do_unlinkat")
int BPF_KRETPROBE(unlink_exit, int ret)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct event *pending, *e;

	pending = bpf_map_lookup_elem(&in_flight, &id);
	if (!pending)
		return 0; /* filtered out on entry, or the entry was missed */
	e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (e) {
		__builtin_memcpy(e, pending, sizeof(*e));
		e->ret = ret;
		bpf_ringbuf_submit(e, 0);
	}
	bpf_map_delete_elem(&in_flight, &id);
	return 0;
}
