// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Loader for {{name}}: attaches the classifier to an interface's ingress (or egress)
 * through a clsact qdisc, blocks the given ports, and prints the counters every
 * second until stopped. */
#include <errno.h>
#include <getopt.h>
#include <net/if.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include "{{name}}.h"
#include "{{name}}.skel.h"

#define MAX_ARGS_PORTS 64

static volatile sig_atomic_t exiting;
static int verbose;

static void usage(FILE *out, const char *prog)
{
	fprintf(out,
		"usage: %s -i IFACE [-e] [-p PORT]... [-d SECONDS] [-v]\n"
		"  -i, --interface=IFACE     the network interface to attach to (e.g. eth0)\n"
		"  -e, --egress              filter egress (outgoing) packets instead of ingress\n"
		"  -p, --port=PORT           drop TCP and UDP packets to this destination port (repeatable)\n"
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

/* Sum a per-CPU record over every possible CPU: the kernel returns one per CPU. */
static int read_stats(int map_fd, __u32 index, struct datarec *total)
{
	int ncpus = libbpf_num_possible_cpus();
	struct datarec *values;
	int i, err;

	if (ncpus < 0)
		return ncpus;
	values = calloc(ncpus, sizeof(*values));
	if (!values)
		return -ENOMEM;
	memset(total, 0, sizeof(*total));
	err = bpf_map_lookup_elem(map_fd, &index, values);
	for (i = 0; !err && i < ncpus; i++) {
		total->packets += values[i].packets;
		total->bytes += values[i].bytes;
	}
	free(values);
	return err ? -errno : 0;
}

static void print_stats(int map_fd)
{
	struct datarec passed, dropped;

	if (read_stats(map_fd, STAT_PASSED, &passed) || read_stats(map_fd, STAT_DROPPED, &dropped)) {
		fprintf(stderr, "{{name}}: reading the counters failed: %s\n", strerror(errno));
		return;
	}
	printf("passed %llu packets (%llu bytes), dropped %llu packets (%llu bytes)\n",
	       passed.packets, passed.bytes, dropped.packets, dropped.bytes);
}

static const struct option long_options[] = {
	{"interface", required_argument, NULL, 'i'},
	{"egress", no_argument, NULL, 'e'},
	{"port", required_argument, NULL, 'p'},
	{"duration", required_argument, NULL, 'd'},
	{"verbose", no_argument, NULL, 'v'},
	{"help", no_argument, NULL, 'h'},
	{NULL, 0, NULL, 0},
};

int main(int argc, char **argv)
{
	LIBBPF_OPTS(bpf_tc_hook, hook, .attach_point = BPF_TC_INGRESS);
	LIBBPF_OPTS(bpf_tc_opts, opts, .handle = 1, .priority = 1);
	__u16 ports[MAX_ARGS_PORTS];
	struct {{name}}_bpf *skel = NULL;
	bool hook_created = false, attached = false;
	int opt, err = 0, nports = 0, i;
	const char *ifname = NULL;
	long duration = 0, port;
	time_t deadline = 0;
	__u64 zero = 0;
	char *end;

	while ((opt = getopt_long(argc, argv, "hvei:p:d:", long_options, NULL)) != -1) {
		switch (opt) {
		case 'v':
			verbose = 1;
			break;
		case 'e':
			hook.attach_point = BPF_TC_EGRESS;
			break;
		case 'i':
			ifname = optarg;
			break;
		case 'p':
			port = strtol(optarg, &end, 10);
			if (*end || port <= 0 || port > 65535) {
				fprintf(stderr, "{{name}}: invalid port '%s'\n", optarg);
				return 2;
			}
			if (nports == MAX_ARGS_PORTS) {
				fprintf(stderr, "{{name}}: at most %d -p options\n", MAX_ARGS_PORTS);
				return 2;
			}
			ports[nports++] = (__u16)port;
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
	if (!ifname || optind != argc) {
		usage(stderr, argv[0]);
		return 2;
	}
	hook.ifindex = if_nametoindex(ifname);
	if (!hook.ifindex) {
		fprintf(stderr, "{{name}}: no interface '%s': %s\n", ifname, strerror(errno));
		return 1;
	}

	libbpf_set_print(print_libbpf_log);
	if (geteuid() != 0)
		fprintf(stderr, "{{name}}: not running as root: loading will likely fail "
			"(run with sudo, or grant CAP_BPF and CAP_NET_ADMIN)\n");

	skel = {{name}}_bpf__open_and_load();
	if (!skel) {
		err = -errno;
		fprintf(stderr, "{{name}}: failed to load BPF programs: %s%s\n", strerror(errno),
			err == -ENOSYS ? " (this system has no bpf() syscall: a kernel without "
			"CONFIG_BPF_SYSCALL, or an emulator such as qemu-user)" :
			err == -EPERM ? " (run as root, or with CAP_BPF and CAP_PERFMON)" :
			verbose ? "" : " (rerun with -v for the verifier log)");
		goto cleanup;
	}
	for (i = 0; i < nports; i++) {
		/* Host byte order: the program converts the packet's port before the lookup. */
		if (bpf_map_update_elem(bpf_map__fd(skel->maps.blocked_ports), &ports[i], &zero,
					BPF_ANY)) {
			err = -errno;
			fprintf(stderr, "{{name}}: cannot block port %u: %s\n", ports[i], strerror(errno));
			goto cleanup;
		}
	}

	/* The clsact qdisc holds the ingress and egress hooks. It may exist already
	 * (another program, or tc): then it is not ours to delete at exit. */
	err = bpf_tc_hook_create(&hook);
	if (!err)
		hook_created = true;
	else if (err != -EEXIST) {
		fprintf(stderr, "{{name}}: failed to create the clsact qdisc on %s: %s\n", ifname,
			strerror(-err));
		goto cleanup;
	}
	opts.prog_fd = bpf_program__fd(skel->progs.tc_filter);
	err = bpf_tc_attach(&hook, &opts);
	if (err) {
		fprintf(stderr, "{{name}}: failed to attach to %s: %s%s\n", ifname, strerror(-err),
			err == -EEXIST ? " (a filter with handle 1, priority 1 is there already)" : "");
		goto cleanup;
	}
	attached = true;

	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (duration)
		deadline = time(NULL) + duration;
	printf("{{name}}: filtering %s %s, blocked ports: %d; Ctrl-C to stop\n", ifname,
	       hook.attach_point == BPF_TC_EGRESS ? "egress" : "ingress", nports);

	while (!exiting && (!deadline || time(NULL) < deadline)) {
		sleep(1); /* a signal interrupts it */
		if (!exiting)
			print_stats(bpf_map__fd(skel->maps.stats));
	}
	print_stats(bpf_map__fd(skel->maps.stats));

cleanup:
	/* Unlike an XDP link, a tc filter outlives its process: remove it. */
	if (attached) {
		opts.flags = opts.prog_fd = opts.prog_id = 0;
		if (bpf_tc_detach(&hook, &opts))
			fprintf(stderr, "{{name}}: failed to detach from %s\n", ifname);
	}
	if (hook_created) {
		hook.attach_point = BPF_TC_INGRESS | BPF_TC_EGRESS; /* both: delete the qdisc */
		bpf_tc_hook_destroy(&hook);
	}
	{{name}}_bpf__destroy(skel);
	return err ? 1 : 0;
}
