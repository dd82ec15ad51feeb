// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Loader of forkcount: attaches the program, runs COMMAND (or waits), then prints how
 * many fork()s it saw and which programs made them. */
#include <stdio.h>
#include <bpf/libbpf.h>
#include "tally_print.h"
#include "forkcount.bpf.skel.h"

int main(int argc, char **argv)
{
	struct forkcount *skel;
	double seconds;
	int first, status, err;

	first = parse_args(argc, argv, "fork()s", &seconds);
	if (first < 0)
		return first == -1 ? 0 : 2;
	skel = forkcount__open_and_load();
	if (!skel) {
		fprintf(stderr, "forkcount: cannot load the BPF object (root or CAP_BPF needed)\n");
		return 1;
	}
	err = forkcount__attach(skel);
	if (err) {
		fprintf(stderr, "forkcount: cannot attach: %d\n", err);
		forkcount__destroy(skel);
		return 1;
	}
	status = run_or_wait(argv + first, seconds);
	printf("forks: %llu (busiest parent: %llu, last child: %d)\n",
	       (unsigned long long)skel->bss->forks, (unsigned long long)skel->bss->busiest,
	       skel->bss->last_child);
	print_tally(stdout, bpf_map__fd(skel->maps.tally), 10);
	forkcount__destroy(skel);
	return status;
}
