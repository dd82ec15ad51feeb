// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* The loaders' shared code: linked into both apps (bpfbuild links every source of src/
 * that is no app's main into each app). */
#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/wait.h>
#include <bpf/bpf.h>
#include "kconv/tally.h"
#include "tally_print.h"

static void usage(FILE *out, const char *prog, const char *what)
{
	fprintf(out,
		"usage: %s [-d SECONDS] [--] [COMMAND [ARG]...]\n"
		"Count %s on the machine while COMMAND runs (or for SECONDS, default 1),\n"
		"then print the counts by program name.\n"
		"  -d, --duration=SECONDS    count for SECONDS when there is no COMMAND\n"
		"  -h, --help                show this help and exit\n", prog, what);
}

int parse_args(int argc, char **argv, const char *what, double *seconds)
{
	static const struct option options[] = {
		{"duration", required_argument, NULL, 'd'},
		{"help", no_argument, NULL, 'h'},
		{},
	};
	char *end;
	int opt;

	*seconds = 1;
	while ((opt = getopt_long(argc, argv, "+d:h", options, NULL)) != -1) {
		switch (opt) {
		case 'd':
			*seconds = strtod(optarg, &end);
			if (*end || *seconds <= 0) {
				fprintf(stderr, "%s: invalid duration '%s'\n", argv[0], optarg);
				return -2;
			}
			break;
		case 'h':
			usage(stdout, argv[0], what);
			return -1;
		default:
			usage(stderr, argv[0], what);
			return -2;
		}
	}
	return optind;
}

int run_or_wait(char **argv, double seconds)
{
	struct timespec pause = {(time_t)seconds, (long)((seconds - (time_t)seconds) * 1e9)};
	int status;
	pid_t pid;

	if (!argv[0]) {
		while (nanosleep(&pause, &pause) && errno == EINTR)
			;
		return 0;
	}
	pid = fork();
	if (pid < 0)
		return 127;
	if (pid == 0) {
		execvp(argv[0], argv);
		fprintf(stderr, "cannot run %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	if (waitpid(pid, &status, 0) < 0)
		return 127;
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

struct row {
	struct tally_key key;
	__u64 count;
};

static int busiest_first(const void *a, const void *b)
{
	const struct row *x = a, *y = b;

	if (x->count != y->count)
		return x->count < y->count ? 1 : -1;
	return strncmp(x->key.comm, y->key.comm, TALLY_COMM_LEN);
}

int print_tally(FILE *out, int map_fd, int limit)
{
	static struct row rows[TALLY_MAX_ENTRIES];
	struct tally_key key, *previous = NULL;
	int n = 0;

	while (n < TALLY_MAX_ENTRIES && !bpf_map_get_next_key(map_fd, previous, &key)) {
		rows[n].key = key;
		if (!bpf_map_lookup_elem(map_fd, &key, &rows[n].count))
			n++;
		previous = &rows[n > 0 ? n - 1 : 0].key;
	}
	qsort(rows, n, sizeof(rows[0]), busiest_first);
	fprintf(out, "%-16s %8s\n", "COMM", "COUNT");
	for (int i = 0; i < n && i < limit; i++)
		fprintf(out, "%-16.16s %8llu\n", rows[i].key.comm, (unsigned long long)rows[i].count);
	return n;
}
