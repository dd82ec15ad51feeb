// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* syscount: count system calls for a while, then print the busiest ones. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <bpf/libbpf.h>
#include "netwatch.h"
#include "util.h"
#include "syscount.skel.h"

static void usage(FILE *out, const char *prog)
{
	fprintf(out,
		"usage: %s [-v] [-d SECONDS] [-p PID]\n"
		"Count system calls for a while, then print the busiest ones.\n"
		"  -d, --duration=SECONDS    count for SECONDS (default: 5)\n"
		"  -p, --pid=PID             count only this process's calls\n"
		"  -v, --verbose             print libbpf's debug log\n"
		"  -h, --help                show this help and exit\n", prog);
}

static const struct option long_options[] = {
	{"duration", required_argument, NULL, 'd'},
	{"pid", required_argument, NULL, 'p'},
	{"verbose", no_argument, NULL, 'v'},
	{"help", no_argument, NULL, 'h'},
	{NULL, 0, NULL, 0},
};

int main(int argc, char **argv)
{
	struct syscount_bpf *skel;
	long seconds = 5, pid = 0;
	int opt, err, verbose = 0;

	while ((opt = getopt_long(argc, argv, "hvd:p:", long_options, NULL)) != -1) {
		if (opt == 'v')
			verbose = 1;
		else if (opt == 'd')
			seconds = parse_positive(argv[0], "duration", optarg);
		else if (opt == 'p')
			pid = parse_positive(argv[0], "pid", optarg);
		else if (opt == 'h') {
			usage(stdout, argv[0]);
			return 0;
		} else {
			usage(stderr, argv[0]);
			return 2;
		}
	}
	setup_libbpf_log(verbose);
	setup_signals();
	skel = syscount_bpf__open();
	if (!skel) {
		fprintf(stderr, "syscount: failed to open BPF object: %s\n", strerror(errno));
		return 1;
	}
	skel->rodata->target_tgid = (int)pid;
	err = syscount_bpf__load(skel);
	if (!err)
		err = syscount_bpf__attach(skel);
	if (err) {
		fprintf(stderr, "syscount: failed to load or attach: %s%s\n", strerror(-err),
			load_hint(-err));
		goto cleanup;
	}
	while (!exiting && seconds-- > 0)
		sleep(1);
	printf("%-8s %s\n", "SYSCALL", "COUNT");
	for (__u32 nr = 0; nr < MAX_SYSCALLS; nr++) {
		__u64 count = 0;

		if (bpf_map__lookup_elem(skel->maps.syscalls, &nr, sizeof(nr), &count,
					 sizeof(count), 0) == 0 && count)
			printf("%-8u %llu\n", nr, (unsigned long long)count);
	}
cleanup:
	syscount_bpf__destroy(skel);
	return err ? 1 : 0;
}
