// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Loader for {{name}}: runs the task iterator and copies its output to stdout, once
 * or every few seconds. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include "{{name}}.skel.h"

static volatile sig_atomic_t exiting;
static int verbose;

static void usage(FILE *out, const char *prog)
{
	fprintf(out,
		"usage: %s [-t] [-i SECONDS [-d SECONDS]] [-v]\n"
		"  -t, --threads             list every thread, not only processes\n"
		"  -i, --interval=SECONDS    list again every SECONDS (default: once)\n"
		"  -d, --duration=SECONDS    with -i: exit after SECONDS (default: run until Ctrl-C)\n"
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

static long parse_seconds(const char *arg, const char *what)
{
	char *end;
	long value = strtol(arg, &end, 10);

	if (*end || value <= 0) {
		fprintf(stderr, "{{name}}: invalid %s '%s'\n", what, arg);
		exit(2);
	}
	return value;
}

/* Each iterator file descriptor runs the program over every task once: read it to
 * the end, then close it. */
static int list_once(struct bpf_link *link)
{
	char buf[4096];
	ssize_t len;
	int fd = bpf_iter_create(bpf_link__fd(link));

	if (fd < 0) {
		fprintf(stderr, "{{name}}: cannot create the iterator: %s\n", strerror(errno));
		return -errno;
	}
	while ((len = read(fd, buf, sizeof(buf))) > 0)
		fwrite(buf, 1, (size_t)len, stdout);
	if (len < 0)
		fprintf(stderr, "{{name}}: reading the iterator failed: %s\n", strerror(errno));
	close(fd);
	fflush(stdout);
	return len < 0 ? -errno : 0;
}

static const struct option long_options[] = {
	{"threads", no_argument, NULL, 't'},
	{"interval", required_argument, NULL, 'i'},
	{"duration", required_argument, NULL, 'd'},
	{"verbose", no_argument, NULL, 'v'},
	{"help", no_argument, NULL, 'h'},
	{NULL, 0, NULL, 0},
};

int main(int argc, char **argv)
{
	struct {{name}}_bpf *skel;
	long interval = 0, duration = 0;
	int opt, err, threads = 0;
	time_t deadline = 0;

	while ((opt = getopt_long(argc, argv, "hvti:d:", long_options, NULL)) != -1) {
		switch (opt) {
		case 'v':
			verbose = 1;
			break;
		case 't':
			threads = 1;
			break;
		case 'i':
			interval = parse_seconds(optarg, "interval");
			break;
		case 'd':
			duration = parse_seconds(optarg, "duration");
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
	skel->rodata->show_threads = threads;
	err = {{name}}_bpf__load(skel);
	if (err) {
		fprintf(stderr, "{{name}}: failed to load BPF programs: %s%s\n", strerror(-err),
			err == -ENOSYS ? " (this system has no bpf() syscall: a kernel without "
			"CONFIG_BPF_SYSCALL, or an emulator such as qemu-user)" :
			err == -EPERM ? " (run as root, or with CAP_BPF and CAP_PERFMON)" :
			verbose ? "" : " (rerun with -v for the verifier log)");
		goto cleanup;
	}
	/* Attaching an iterator creates a link; nothing runs until an iterator is read. */
	err = {{name}}_bpf__attach(skel);
	if (err) {
		fprintf(stderr, "{{name}}: failed to attach the iterator: %s\n", strerror(-err));
		goto cleanup;
	}

	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	if (duration)
		deadline = time(NULL) + duration;
	err = list_once(skel->links.list_tasks);
	while (!err && interval && !exiting && (!deadline || time(NULL) < deadline)) {
		sleep((unsigned int)interval); /* a signal interrupts it */
		if (!exiting) {
			printf("\n");
			err = list_once(skel->links.list_tasks);
		}
	}

cleanup:
	{{name}}_bpf__destroy(skel);
	return err ? 1 : 0;
}
