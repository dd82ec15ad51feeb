// Counts syscalls per class (the syscall number modulo 32, of which 16 are kept). The
// class is a 32-bit value checked once against the array size; without -mcpu=v3,
// clang 14 widens it again after the check, in another register, so the verifier of
// Linux 6.18 sees an index it cannot bound and rejects the program.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

#define NR_CLASSES 16

const volatile bool in_usecs = false;
const volatile int only_cpu = -1;
__u64 hits[NR_CLASSES] = {};
__u64 sums[NR_CLASSES] = {};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} last SEC(".maps");

static bool cpu_selected(void)
{
	return only_cpu < 0 || bpf_get_smp_processor_id() == only_cpu;
}

static __noinline int account(unsigned int class)
{
	__u32 zero = 0;
	__u64 now, delta, *prev;

	if (!cpu_selected())
		return 0;
	if (class >= NR_CLASSES)
		return 0;
	prev = bpf_map_lookup_elem(&last, &zero);
	if (!prev)
		return 0;
	now = bpf_ktime_get_ns();
	delta = now - *prev;
	*prev = now;
	if (in_usecs)
		delta /= 1000U;
	__sync_fetch_and_add(&hits[class], 1);
	__sync_fetch_and_add(&sums[class], delta);
	return 0;
}

SEC("raw_tp/sys_enter")
int BPF_PROG(count_syscall, struct pt_regs *regs, long id)
{
	return account((unsigned int)id & 31);
}

char LICENSE[] SEC("license") = "GPL";
