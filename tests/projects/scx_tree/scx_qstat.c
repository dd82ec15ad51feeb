// SPDX-License-Identifier: GPL-2.0
/* Loads scx_qstat and prints its counters (summed over the CPUs) every second. */
#include <signal.h>
#include <unistd.h>
#include <scx/common.h>
#include <scx/qstats.h>
#include "scx_qstat.bpf.skel.h"

static volatile sig_atomic_t exiting;

static void on_signal(int sig)
{
	exiting = 1;
}

static unsigned long long counter(struct scx_qstat *skel, __u32 index)
{
	int cpus = libbpf_num_possible_cpus();
	unsigned long long total = 0;
	__u64 values[cpus > 0 ? cpus : 1];

	if (cpus > 0 && !bpf_map__lookup_elem(skel->maps.qstats, &index, sizeof(index), values,
					      sizeof(values), 0))
		for (int cpu = 0; cpu < cpus; cpu++)
			total += values[cpu];
	return total;
}

int main(void)
{
	struct scx_qstat *skel;
	struct bpf_link *link;

	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	skel = scx_qstat__open_and_load();
	if (!skel)
		SCX_BUG("cannot load scx_qstat: %s", strerror(errno));
	link = bpf_map__attach_struct_ops(skel->maps.qstat_ops);
	if (!link)
		SCX_BUG("cannot attach scx_qstat: %s", strerror(errno));
	while (!exiting) {
		sleep(1);
		printf("enqueued %llu dispatched %llu\n", counter(skel, QSTAT_ENQUEUE),
		       counter(skel, QSTAT_DISPATCH));
	}
	bpf_link__destroy(link);
	scx_qstat__destroy(skel);
	return 0;
}
