// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Loader for {{name}}: attaches the XDP firewall to an interface, blocks the given
 * IPv4 sources, and prints the packet counters every second until stopped. */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <net/if.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <linux/bpf.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include "{{name}}.h"
#include "{{name}}.skel.h"

#define MAX_ARGS_BLOCKED 64

static volatile sig_atomic_t exiting;
static int verbose;

static void usage(FILE *out, const char *prog)
{
	fprintf(out,
		"usage: %s -i IFACE [-b IPV4]... [-d SECONDS] [-v]\n"
		"  -i, --interface=IFACE     the network interface to attach to (e.g. eth0)\n"
		"  -b, --block=IPV4          drop packets from this source address (repeatable)\n"
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
static int read_stats(int map_fd, __u32 action, struct datarec *total)
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
	err = bpf_map_lookup_elem(map_fd, &action, values);
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

	if (read_stats(map_fd, XDP_PASS, &passed) || read_stats(map_fd, XDP_DROP, &dropped)) {
		fprintf(stderr, "{{name}}: reading the counters failed: %s\n", strerror(errno));
		return;
	}
	printf("passed %llu packets (%llu bytes), dropped %llu packets (%llu bytes)\n",
	       passed.packets, passed.bytes, dropped.packets, dropped.bytes);
}

static const struct option long_options[] = {
	{"interface", required_argument, NULL, 'i'},
	{"block", required_argument, NULL, 'b'},
	{"duration", required_argument, NULL, 'd'},
	{"verbose", no_argument, NULL, 'v'},
	{"help", no_argument, NULL, 'h'},
	{NULL, 0, NULL, 0},
};

int main(int argc, char **argv)
{
	const char *blocked[MAX_ARGS_BLOCKED];
	struct {{name}}_bpf *skel = NULL;
	struct bpf_link *link = NULL;
	int opt, err = 0, nblocked = 0, i;
	const char *ifname = NULL;
	unsigned int ifindex;
	long duration = 0;
	time_t deadline = 0;
	char *end;

	while ((opt = getopt_long(argc, argv, "hvi:b:d:", long_options, NULL)) != -1) {
		switch (opt) {
		case 'v':
			verbose = 1;
			break;
		case 'i':
			ifname = optarg;
			break;
		case 'b':
			if (nblocked == MAX_ARGS_BLOCKED) {
				fprintf(stderr, "{{name}}: at most %d -b options\n", MAX_ARGS_BLOCKED);
				return 2;
			}
			blocked[nblocked++] = optarg;
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
	ifindex = if_nametoindex(ifname);
	if (!ifindex) {
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
	for (i = 0; i < nblocked; i++) {
		__u32 addr;
		__u64 zero = 0;

		if (inet_pton(AF_INET, blocked[i], &addr) != 1) {
			fprintf(stderr, "{{name}}: '%s' is not an IPv4 address\n", blocked[i]);
			err = -EINVAL;
			goto cleanup;
		}
		/* addr is in network byte order, as the program reads it from the packet. */
		err = bpf_map_update_elem(bpf_map__fd(skel->maps.blocklist), &addr, &zero, BPF_ANY);
		if (err) {
			err = -errno;
			fprintf(stderr, "{{name}}: cannot block %s: %s\n", blocked[i], strerror(errno));
			goto cleanup;
		}
	}

	/* A BPF link (not the older netlink attach): the kernel detaches the program
	 * when this process exits, even if it is killed. */
	link = bpf_program__attach_xdp(skel->progs.xdp_filter, ifindex);
	if (!link) {
		err = -errno;
		fprintf(stderr, "{{name}}: failed to attach XDP to %s: %s%s\n", ifname, strerror(errno),
			errno == EBUSY ? " (another XDP program is attached)" : "");
		goto cleanup;
	}

	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (duration)
		deadline = time(NULL) + duration;
	printf("{{name}}: filtering %s (ifindex %u), blocked sources: %d; Ctrl-C to stop\n",
	       ifname, ifindex, nblocked);

	while (!exiting && (!deadline || time(NULL) < deadline)) {
		sleep(1); /* a signal interrupts it */
		if (!exiting)
			print_stats(bpf_map__fd(skel->maps.stats));
	}
	print_stats(bpf_map__fd(skel->maps.stats));

cleanup:
	bpf_link__destroy(link);
	{{name}}_bpf__destroy(skel);
	return err ? 1 : 0;
}
