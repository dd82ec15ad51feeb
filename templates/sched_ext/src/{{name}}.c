// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Loader for {{name}}: makes the BPF scheduler the kernel's sched_ext scheduler, prints
 * what it scheduled every second, and gives the CPUs back to the kernel's own
 * scheduler on Ctrl-C (or -d). If the kernel stops the scheduler first (an error in a
 * callback, a task left waiting too long), it prints why and exits with status 1.
 *
 * The skeleton follows the kernel tree's convention ([build] skel_header and skel_name
 * in bpfbuild.toml): {{name}}.bpf.skel.h, struct {{name}}, {{name}}__open().
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/utsname.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include "{{name}}.h"
#include "{{name}}.bpf.skel.h"

#define SCHED_EXT_STATE "/sys/kernel/sched_ext/state"
#define SCHED_EXT_OPS "/sys/kernel/sched_ext/root/ops"

static volatile sig_atomic_t exiting;
static int verbose;

static void usage(FILE *out, const char *prog)
{
	fprintf(out,
		"usage: %s [-v] [-s MICROSECONDS] [-d SECONDS]\n"
		"Run {{name}}, a global FIFO scheduler, as this machine's sched_ext scheduler,\n"
		"printing what it scheduled each second; Ctrl-C gives the CPUs back to the\n"
		"kernel's own scheduler.\n"
		"  -s, --slice=MICROSECONDS  time slice of a task (default: the kernel's, 20000)\n"
		"  -d, --duration=SECONDS    stop after SECONDS (default: run until Ctrl-C)\n"
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

/* The first line of a sysfs file, without its newline; "" if it cannot be read. */
static void read_line(const char *path, char *buf, size_t size)
{
	FILE *f = fopen(path, "r");

	buf[0] = '\0';
	if (!f)
		return;
	if (fgets(buf, (int)size, f))
		buf[strcspn(buf, "\n")] = '\0';
	fclose(f);
}

/* Whether this kernel can take a scheduler now; if not, say why on stderr. */
static int sched_ext_ready(void)
{
	struct utsname uts;
	char state[64], ops[128];

	if (access(SCHED_EXT_STATE, F_OK)) {
		uname(&uts);
		fprintf(stderr, "{{name}}: this kernel (%s) has no sched_ext: it needs "
			"CONFIG_SCHED_CLASS_EXT (Linux 6.12 or later; Debian's kernels from "
			"trixie-backports 7.x have it)\n", uts.release);
		return 0;
	}
	read_line(SCHED_EXT_STATE, state, sizeof(state));
	if (strcmp(state, "disabled")) {
		read_line(SCHED_EXT_OPS, ops, sizeof(ops));
		fprintf(stderr, "{{name}}: sched_ext is %s%s%s: stop the scheduler that runs "
			"first\n", state, ops[0] ? " with scheduler " : "", ops);
		return 0;
	}
	return 1;
}

/* The per-CPU counters of the stats map, summed over the CPUs. */
static int read_stats(struct {{name}} *skel, unsigned long long totals[NR_SCHED_STATS])
{
	int nr_cpus = libbpf_num_possible_cpus();
	unsigned long long *values;
	int err = 0;

	if (nr_cpus < 0)
		return nr_cpus;
	values = calloc((size_t)nr_cpus, sizeof(*values));
	if (!values)
		return -ENOMEM;
	for (__u32 key = 0; key < NR_SCHED_STATS && !err; key++) {
		err = bpf_map__lookup_elem(skel->maps.stats, &key, sizeof(key), values,
					   sizeof(*values) * (size_t)nr_cpus, 0);
		totals[key] = 0;
		for (int cpu = 0; cpu < nr_cpus && !err; cpu++)
			totals[key] += values[cpu];
	}
	free(values);
	return err;
}

static const struct option long_options[] = {
	{"slice", required_argument, NULL, 's'},
	{"duration", required_argument, NULL, 'd'},
	{"verbose", no_argument, NULL, 'v'},
	{"help", no_argument, NULL, 'h'},
	{NULL, 0, NULL, 0},
};

int main(int argc, char **argv)
{
	unsigned long long now[NR_SCHED_STATS], last[NR_SCHED_STATS] = {0};
	struct {{name}} *skel;
	struct bpf_link *link = NULL;
	long slice_us = 0, duration = 0;
	time_t deadline = 0;
	int opt, err, kind;
	char *end;

	while ((opt = getopt_long(argc, argv, "hvs:d:", long_options, NULL)) != -1) {
		switch (opt) {
		case 'v':
			verbose = 1;
			break;
		case 's':
			slice_us = strtol(optarg, &end, 10);
			if (*end || slice_us <= 0 || slice_us > 1000000) {
				fprintf(stderr, "{{name}}: invalid slice '%s' (1 to 1000000 "
					"microseconds)\n", optarg);
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
	if (optind < argc) {
		fprintf(stderr, "{{name}}: unexpected argument '%s'\n", argv[optind]);
		usage(stderr, argv[0]);
		return 2;
	}

	libbpf_set_print(print_libbpf_log);
	if (!sched_ext_ready())
		return 1;
	if (geteuid() != 0)
		fprintf(stderr, "{{name}}: not running as root: loading will likely fail "
			"(run with sudo)\n");

	skel = {{name}}__open();
	if (!skel) {
		fprintf(stderr, "{{name}}: failed to open BPF object: %s\n", strerror(errno));
		return 1;
	}
	/* const volatile globals live in .rodata: set them before load. */
	if (slice_us)
		skel->rodata->slice_ns = (unsigned long long)slice_us * 1000;

	/* Loading checks every callback with the verifier; it switches nothing on. */
	err = {{name}}__load(skel);
	if (err) {
		fprintf(stderr, "{{name}}: failed to load BPF programs: %s%s\n", strerror(-err),
			err == -EPERM ? " (run as root)" :
			verbose ? "" : " (rerun with -v for the verifier log)");
		goto cleanup;
	}
	/* Registering the ops through a link makes {{name}} the scheduler of every task
	 * of the sched_ext class (all of them: the ops ask for no partial switch). */
	link = bpf_map__attach_struct_ops(skel->maps.{{name}}_ops);
	if (!link) {
		err = -errno;
		fprintf(stderr, "{{name}}: failed to register the scheduler: %s%s\n",
			strerror(errno), err == -EBUSY ? " (another scheduler runs)" : "");
		goto cleanup;
	}

	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (duration)
		deadline = time(NULL) + duration;
	printf("%12s %12s %12s\n", "DIRECT", "QUEUED", "DISPATCHED");
	while (!exiting && (!deadline || time(NULL) < deadline) && !skel->bss->exit_info.kind) {
		sleep(1);	/* a signal ends it early */
		err = read_stats(skel, now);
		if (err) {
			fprintf(stderr, "{{name}}: cannot read the stats map: %s\n", strerror(-err));
			break;
		}
		printf("%12llu %12llu %12llu\n", now[STAT_DIRECT] - last[STAT_DIRECT],
		       now[STAT_QUEUED] - last[STAT_QUEUED],
		       now[STAT_DISPATCHED] - last[STAT_DISPATCHED]);
		memcpy(last, now, sizeof(last));
	}

	/* Unregister (if the kernel has not already): the exit callback runs before this
	 * returns, so exit_info says why the scheduler stopped. */
	bpf_link__destroy(link);
	link = NULL;
	kind = skel->bss->exit_info.kind;
	if (kind >= EXIT_KIND_ERROR) {
		fprintf(stderr, "{{name}}: the kernel stopped the scheduler: %s%s%s\n",
			skel->bss->exit_info.reason, skel->bss->exit_info.msg[0] ? ": " : "",
			skel->bss->exit_info.msg);
		err = -EINVAL;
	} else {
		fprintf(stderr, "{{name}}: stopped (%s)\n",
			kind ? skel->bss->exit_info.reason : "not yet unregistered");
	}

cleanup:
	bpf_link__destroy(link);
	{{name}}__destroy(skel);
	return err ? 1 : 0;
}
