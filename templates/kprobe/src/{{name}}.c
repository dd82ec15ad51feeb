// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Loader for {{name}}: prints one line per file deletion seen by the kprobes. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <bpf/libbpf.h>
#include "{{name}}.h"
#include "{{name}}.skel.h"

#define KPROBE_PMU "/sys/bus/event_source/devices/kprobe"

static volatile sig_atomic_t exiting;
static int verbose;

static void usage(FILE *out, const char *prog)
{
	fprintf(out,
		"usage: %s [-p PID] [-d SECONDS] [-v]\n"
		"  -p, --pid=PID             only report this process\n"
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

static long parse_number(const char *arg, const char *what)
{
	char *end;
	long value = strtol(arg, &end, 10);

	if (*end || value <= 0) {
		fprintf(stderr, "{{name}}: invalid %s '%s'\n", what, arg);
		exit(2);
	}
	return value;
}

static int handle_event(void *ctx, void *data, size_t size)
{
	const struct event *e = data;

	(void)ctx;
	if (size < sizeof(*e))
		return 0;
	printf("%-7d %-16s %-6d %s\n", e->pid, e->comm, e->ret, e->filename);
	return 0;
}

static const struct option long_options[] = {
	{"pid", required_argument, NULL, 'p'},
	{"duration", required_argument, NULL, 'd'},
	{"verbose", no_argument, NULL, 'v'},
	{"help", no_argument, NULL, 'h'},
	{NULL, 0, NULL, 0},
};

int main(int argc, char **argv)
{
	struct {{name}}_bpf *skel;
	struct ring_buffer *rb = NULL;
	long pid = 0, duration = 0;
	time_t deadline = 0;
	int opt, err;

	while ((opt = getopt_long(argc, argv, "hvp:d:", long_options, NULL)) != -1) {
		switch (opt) {
		case 'v':
			verbose = 1;
			break;
		case 'p':
			pid = parse_number(optarg, "PID");
			break;
		case 'd':
			duration = parse_number(optarg, "duration");
			break;
		case 'h':
			usage(stdout, argv[0]);
			return 0;
		default:
			usage(stderr, argv[0]);
			return 2;
		}
	}
	if (optind != argc) {
		usage(stderr, argv[0]);
		return 2;
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
	skel->rodata->target_tgid = (int)pid;
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
		if (access(KPROBE_PMU, F_OK))
			fprintf(stderr, "{{name}}: failed to attach: %s: this kernel has no kprobe "
				"support (built without CONFIG_KPROBES or CONFIG_KPROBE_EVENTS)\n",
				strerror(-err));
		else
			fprintf(stderr, "{{name}}: failed to attach the kprobes: %s%s\n", strerror(-err),
				err == -ENOENT ? " (is do_unlinkat in /proc/kallsyms?)" : "");
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
	printf("%-7s %-16s %-6s %s\n", "PID", "COMM", "RET", "FILENAME");

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
	}
	/* What arrived between the last poll and the signal. */
	if (!err)
		ring_buffer__consume(rb);

cleanup:
	ring_buffer__free(rb);
	{{name}}_bpf__destroy(skel);
	return err ? 1 : 0;
}
