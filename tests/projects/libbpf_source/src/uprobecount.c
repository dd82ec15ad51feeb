// Attaches a uprobe and a uretprobe to traced_add() in this very executable, calls it
// three times, and prints what the BPF side counted; exits 0 only when it is right.
#include <stdio.h>
#include <unistd.h>
#include <bpf/libbpf.h>
#include "uprobecount.skel.h"

__attribute__((noinline)) int traced_add(int a, int b)
{
	__asm__ volatile("" ::: "memory");   /* keep the calls: the probes count them */
	return a + b;
}

int main(void)
{
	LIBBPF_OPTS(bpf_uprobe_opts, entry, .func_name = "traced_add");
	LIBBPF_OPTS(bpf_uprobe_opts, exit_, .func_name = "traced_add", .retprobe = true);
	struct uprobecount_bpf *skel;
	char self[4096];
	ssize_t len;
	int total = 0;

	len = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (len < 0)
		return 1;
	self[len] = '\0';
	skel = uprobecount_bpf__open_and_load();
	if (!skel) {
		fprintf(stderr, "uprobecount: cannot load the BPF object\n");
		return 1;
	}
	skel->links.on_add = bpf_program__attach_uprobe_opts(skel->progs.on_add, 0, self, 0, &entry);
	skel->links.on_add_return =
		bpf_program__attach_uprobe_opts(skel->progs.on_add_return, 0, self, 0, &exit_);
	if (!skel->links.on_add || !skel->links.on_add_return) {
		fprintf(stderr, "uprobecount: cannot attach the uprobes\n");
		uprobecount_bpf__destroy(skel);
		return 1;
	}
	for (int i = 1; i <= 3; i++)
		total += traced_add(i, 10 * i);
	printf("calls=%d sum=%lld last_result=%lld total=%d\n", skel->bss->calls,
	       skel->bss->sum, skel->bss->last_result, total);
	uprobecount_bpf__destroy(skel);
	return total == 66 ? 0 : 1;
}
