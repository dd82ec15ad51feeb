// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Loader of execcount: attaches the program, runs COMMAND (or waits), then prints how
 * many exec()s it saw and which programs they started. */
#include <stdio.h>
#include <bpf/libbpf.h>
#include "tally_print.h"
#include "execcount.bpf.skel.h"

int main(int argc, char **argv)
{
	struct execcount *skel;
	double seconds;
	int first, status, err;

	first = parse_args(argc, argv, "exec()s", &seconds);
	if (first < 0)
		return first == -1 ? 0 : 2;
	skel = execcount__open_and_load();
	if (!skel) {
		fprintf(stderr, "execcount: cannot load the BPF object (root or CAP_BPF needed)\n");
		return 1;
	}
	err = execcount__attach(skel);
	if (err) {
		fprintf(stderr, "execcount: cannot attach: %d\n", err);
		execcount__destroy(skel);
		return 1;
	}
	status = run_or_wait(argv + first, seconds);
	printf("execs: %llu\n", (unsigned long long)skel->bss->execs);
	print_tally(stdout, bpf_map__fd(skel->maps.tally), 10);
	execcount__destroy(skel);
	return status;
}
