// SPDX-License-Identifier: GPL-2.0
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include "events.h"
#include "limits.h"

char LICENSE[] SEC("license") = "GPL";

int last_kind = 0;
int capacity = MAX_EVENTS;

SEC("tp/syscalls/sys_enter_getpid")
int on_getpid(void *ctx)
{
	struct event e = { .kind = EVENT_GETPID };

	last_kind = e.kind;
	return 0;
}
