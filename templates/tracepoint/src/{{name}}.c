// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Loader for {{name}}: prints one line per execve seen by the BPF program; with a
 * COMMAND, runs it once the program is attached and exits when it ends. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/wait.h>
#include <bpf/libbpf.h>
#include "{{name}}.h"
#include "{{name}}.skel.h"

static volatile sig_atomic_t exiting;
static int verbose;

static void usage(FILE *out, const char *prog)
{
	fprintf(out,
		"usage: %s [-v] [-p PPID] [-d SECONDS] [--] [COMMAND [ARG]...]\n"
		"Print one line per execve on the machine; with COMMAND, run it once tracing\n"
		"has started and exit with its status when it ends.\n"
		"  -p, --ppid=PPID           only report processes whose parent is PPID\n"
		"  -d, --duration=SECONDS    exit after SECONDS (default: run until Ctrl-C)\n"
		"  -v, --verbose             print libbpf's debug log\n"
		"  -h, --help                show this help and exit\n", prog);
}

static int print_libbpf_log(enum libbpf_print_level level, const char *format, va_list args)
{
	if (level == LIBBPF_DEBUG && !verbose)
		return 0;
	return vfprintf(stderr, format, args);
}

static void on_signal(int sig)
{
	(void)sig;
	exiting = 1;
}

static int handle_event(void *ctx, void *data, size_t size)
{
	const struct event *e = data;

	(void)ctx;
	if (size < sizeof(*e))
		return 0;
	printf("%-7d %-7d %-6u %-16s %s\n", e->pid, e->ppid, e->uid, e->comm, e->filename);
	return 0;
}

static const struct option long_options[] = {
	{"ppid", required_argument, NULL, 'p'},
	{"duration", required_argument, NULL, 'd'},
	{"verbose", no_argument, NULL, 'v'},
	{"help", no_argument, NULL, 'h'},
	{NULL, 0, NULL, 0},
};

int main(int argc, char **argv)
{
	struct {{name}}_bpf *skel;
	struct ring_buffer *rb = NULL;
	long ppid = 0, duration = 0;
	time_t deadline = 0;
	int opt, err, status = 0;
	pid_t child = 0;
	char *end;

	/* "+": options end at COMMAND, whose own options are its own. */
	while ((opt = getopt_long(argc, argv, "+hvp:d:", long_options, NULL)) != -1) {
		switch (opt) {
		case 'v':
			verbose = 1;
			break;
		case 'p':
			ppid = strtol(optarg, &end, 10);
			if (*end || ppid <= 0) {
				fprintf(stderr, "{{name}}: invalid PPID '%s'\n", optarg);
				return 2;
			}
			break;
		case 'd':
			duration = strtol(optarg, &end, 10);
			if (*end || duration <= 0) {
				fprintf(stderr, "{{name}}: invalid duration '%s'\n", optarg);
				return 2;
			}
			break;
		case 'h':
			usage(stdout, argv[0]);
			return 0;
		default:
			usage(stderr, argv[0]);
			return 2;
		}
	}

	libbpf_set_print(print_libbpf_log);
	if (geteuid() != 0)
		fprintf(stderr, "{{name}}: not running as root: loading will likely fail "
			"(run with sudo, or grant CAP_BPF and CAP_PERFMON)\n");

	skel = {{name}}_bpf__open();
	if (!skel) {
		fprintf(stderr, "{{name}}: failed to open BPF object: %s\n", strerror(errno));
		return 1;
	}
	/* const volatile globals live in .rodata: set them before load. */
	skel->rodata->target_ppid = (int)ppid;

	err = {{name}}_bpf__load(skel);
	if (err) {
		fprintf(stderr, "{{name}}: failed to load BPF programs: %s%s\n", strerror(-err),
			err == -ENOSYS ? " (this system has no bpf() syscall: a kernel without "
			"CONFIG_BPF_SYSCALL, or an emulator such as qemu-user)" :
			err == -EPERM ? " (run as root, or with CAP_BPF and CAP_PERFMON)" :
			verbose ? "" : " (rerun with -v for the verifier log)");
		goto cleanup;
	}
	err = {{name}}_bpf__attach(skel);
	if (err) {
		fprintf(stderr, "{{name}}: failed to attach: %s (is tracefs available?)\n",
			strerror(-err));
		goto cleanup;
	}
	rb = ring_buffer__new(bpf_map__fd(skel->maps.events), handle_event, NULL, NULL);
	if (!rb) {
		err = -errno;
		fprintf(stderr, "{{name}}: failed to create ring buffer: %s\n", strerror(errno));
		goto cleanup;
	}

	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (duration)
		deadline = time(NULL) + duration;
	printf("%-7s %-7s %-6s %-16s %s\n", "PID", "PPID", "UID", "COMM", "FILENAME");
	if (optind < argc) {
		child = fork();
		if (child < 0) {
			err = -errno;
			fprintf(stderr, "{{name}}: cannot fork: %s\n", strerror(errno));
			goto cleanup;
		}
		if (child == 0) {
			execvp(argv[optind], &argv[optind]);
			fprintf(stderr, "{{name}}: cannot run %s: %s\n", argv[optind], strerror(errno));
			_exit(127);
		}
	}

	while (!exiting && (!deadline || time(NULL) < deadline)) {
		err = ring_buffer__poll(rb, 100 /* ms */);
		if (err == -EINTR) {
			err = 0;
			break;
		}
		if (err < 0) {
			fprintf(stderr, "{{name}}: polling the ring buffer failed: %s\n", strerror(-err));
			break;
		}
		err = 0;
		if (child && waitpid(child, &status, WNOHANG) == child) {
			child = 0;
			status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
			break;
		}
	}
	/* What arrived between the last poll and the signal (or COMMAND's end). */
	if (!err)
		ring_buffer__consume(rb);

cleanup:
	if (child > 0) {	/* stopped by Ctrl-C or -d: COMMAND does not outlive us */
		kill(child, SIGTERM);
		waitpid(child, NULL, 0);
	}
	ring_buffer__free(rb);
	{{name}}_bpf__destroy(skel);
	return err ? 1 : status;
}
