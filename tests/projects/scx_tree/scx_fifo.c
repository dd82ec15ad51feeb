// SPDX-License-Identifier: GPL-2.0
/* Loads scx_fifo and runs it until Ctrl-C, as the kernel's tools/sched_ext loaders do. */
#include <signal.h>
#include <unistd.h>
#include <scx/common.h>
#include "scx_fifo.bpf.skel.h"

static volatile sig_atomic_t exiting;

static void on_signal(int sig)
{
	exiting = 1;
}

int main(void)
{
	struct scx_fifo *skel;
	struct bpf_link *link;

	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	skel = scx_fifo__open_and_load();
	if (!skel)
		SCX_BUG("cannot load scx_fifo: %s", strerror(errno));
	link = bpf_map__attach_struct_ops(skel->maps.fifo_ops);
	if (!link)
		SCX_BUG("cannot attach scx_fifo: %s", strerror(errno));
	while (!exiting)
		sleep(1);
	bpf_link__destroy(link);
	scx_fifo__destroy(skel);
	return 0;
}
