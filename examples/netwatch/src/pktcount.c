// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* pktcount: attach the XDP counter to an interface and print the counts. */
#include <errno.h>
#include <getopt.h>
#include <net/if.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include "netwatch.h"
#include "util.h"
#include "pktcount.skel.h"

static const char *class_names[PKT_CLASS_MAX] = {
	[PKT_IPV4_TCP] = "ipv4/tcp", [PKT_IPV4_UDP] = "ipv4/udp",
	[PKT_IPV4_OTHER] = "ipv4/other", [PKT_IPV6] = "ipv6", [PKT_OTHER] = "other",
};

static void print_counts(struct pktcount_bpf *skel)
{
	int ncpus = libbpf_num_possible_cpus();
	__u64 values[ncpus > 0 ? ncpus : 1];

	for (__u32 key = 0; key < PKT_CLASS_MAX; key++) {
		__u64 total = 0;

		if (bpf_map__lookup_elem(skel->maps.counts, &key, sizeof(key), values,
					 sizeof(values), 0))
			continue;
		for (int cpu = 0; cpu < ncpus; cpu++)
			total += values[cpu];
		printf("%-12s %llu\n", class_names[key], (unsigned long long)total);
	}
}

static void usage(FILE *out, const char *prog)
{
	fprintf(out,
		"usage: %s [-v] [-d SECONDS] IFNAME\n"
		"Count the packets arriving on IFNAME by class (XDP), then print the counts.\n"
		"  -d, --duration=SECONDS    count for SECONDS (default: 5)\n"
		"  -v, --verbose             print libbpf's debug log\n"
		"  -h, --help                show this help and exit\n", prog);
}

static const struct option long_options[] = {
	{"duration", required_argument, NULL, 'd'},
	{"verbose", no_argument, NULL, 'v'},
	{"help", no_argument, NULL, 'h'},
	{NULL, 0, NULL, 0},
};

int main(int argc, char **argv)
{
	struct pktcount_bpf *skel;
	struct bpf_link *link = NULL;
	long seconds = 5;
	int opt, ifindex, err = 0, verbose = 0;

	while ((opt = getopt_long(argc, argv, "hvd:", long_options, NULL)) != -1) {
		if (opt == 'v') {
			verbose = 1;
		} else if (opt == 'd') {
			seconds = parse_positive(argv[0], "duration", optarg);
		} else if (opt == 'h') {
			usage(stdout, argv[0]);
			return 0;
		} else {
			usage(stderr, argv[0]);
			return 2;
		}
	}
	if (optind != argc - 1) {
		usage(stderr, argv[0]);
		return 2;
	}
	ifindex = if_nametoindex(argv[optind]);
	if (!ifindex) {
		fprintf(stderr, "pktcount: no interface '%s'\n", argv[optind]);
		return 2;
	}

	setup_libbpf_log(verbose);
	setup_signals();
	skel = pktcount_bpf__open_and_load();
	if (!skel) {
		err = errno;
		fprintf(stderr, "pktcount: failed to load BPF program: %s%s\n", strerror(err),
			load_hint(err));
		return 1;
	}
	link = bpf_program__attach_xdp(skel->progs.count_packets, ifindex);
	if (!link) {
		err = -errno;
		fprintf(stderr, "pktcount: failed to attach XDP to %s: %s\n", argv[optind],
			strerror(errno));
		goto cleanup;
	}
	while (!exiting && seconds-- > 0)
		sleep(1);
	print_counts(skel);
cleanup:
	bpf_link__destroy(link);
	pktcount_bpf__destroy(skel);
	return err ? 1 : 0;
}
