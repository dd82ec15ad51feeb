// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Loader for {{name}}: opens a packet socket, attaches the filter to it, and prints
 * one line per packet the filter keeps, then the per-protocol counts. */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <net/if.h>
#include <net/if_arp.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include "{{name}}.h"
#include "{{name}}.skel.h"

static volatile sig_atomic_t exiting;
static int verbose;

static const struct {
	const char *name;
	int number;
} known_protocols[] = {
	{ "icmp", IPPROTO_ICMP }, { "tcp", IPPROTO_TCP }, { "udp", IPPROTO_UDP },
	{ "icmp6", IPPROTO_ICMPV6 }, { "sctp", IPPROTO_SCTP },
};

static void usage(FILE *out, const char *prog)
{
	fprintf(out,
		"usage: %s [-i IFACE] [-P PROTOCOL] [-d SECONDS] [-v]\n"
		"  -i, --interface=IFACE     capture on this interface only (default: all)\n"
		"  -P, --protocol=PROTOCOL   keep only this IP protocol: icmp, tcp, udp, icmp6, sctp or a number\n"
		"                            (default: every IPv4 and IPv6 packet)\n"
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

static int parse_protocol(const char *arg)
{
	char *end;
	long number;
	size_t i;

	for (i = 0; i < sizeof(known_protocols) / sizeof(known_protocols[0]); i++)
		if (!strcasecmp(arg, known_protocols[i].name))
			return known_protocols[i].number;
	number = strtol(arg, &end, 10);
	return *end || number <= 0 || number >= MAX_IP_PROTOCOLS ? -1 : (int)number;
}

static const char *protocol_name(int number)
{
	static char buf[8];
	size_t i;

	for (i = 0; i < sizeof(known_protocols) / sizeof(known_protocols[0]); i++)
		if (known_protocols[i].number == number)
			return known_protocols[i].name;
	snprintf(buf, sizeof(buf), "%d", number);
	return buf;
}

/* One line per packet: direction, interface, protocol, addresses (and ports), length.
 * buf holds the first caplen bytes of a packet of len bytes. */
static void print_packet(const unsigned char *buf, size_t caplen, size_t len,
			 const struct sockaddr_ll *from)
{
	char src[INET6_ADDRSTRLEN] = "?", dst[INET6_ADDRSTRLEN] = "?", ifname[IF_NAMESIZE] = "?";
	/* SOCK_RAW packet sockets get the link-layer header; an Ethernet one is 14 bytes. */
	size_t off = from->sll_hatype == ARPHRD_ETHER || from->sll_hatype == ARPHRD_LOOPBACK ? ETH_HLEN : 0;
	const unsigned char *l4 = NULL;
	int proto = -1;

	if (caplen >= off + 20 && buf[off] >> 4 == 4) {
		size_t ihl = (buf[off] & 0xf) * 4;

		proto = buf[off + 9];
		inet_ntop(AF_INET, buf + off + 12, src, sizeof(src));
		inet_ntop(AF_INET, buf + off + 16, dst, sizeof(dst));
		l4 = caplen >= off + ihl + 4 ? buf + off + ihl : NULL;
	} else if (caplen >= off + 40 && buf[off] >> 4 == 6) {
		proto = buf[off + 6];
		inet_ntop(AF_INET6, buf + off + 8, src, sizeof(src));
		inet_ntop(AF_INET6, buf + off + 24, dst, sizeof(dst));
		l4 = caplen >= off + 44 ? buf + off + 40 : NULL;
	}
	if_indextoname(from->sll_ifindex, ifname);
	printf("%-3s %-8s %-5s %s", from->sll_pkttype == PACKET_OUTGOING ? "out" : "in", ifname,
	       proto < 0 ? "?" : protocol_name(proto), src);
	if (l4 && (proto == IPPROTO_TCP || proto == IPPROTO_UDP))
		printf(":%u -> %s:%u", l4[0] << 8 | l4[1], dst, l4[2] << 8 | l4[3]);
	else
		printf(" -> %s", dst);
	printf(" %zu bytes\n", len);
}

static void print_protocols(int map_fd)
{
	int ncpus = libbpf_num_possible_cpus(), i;
	struct datarec *values;
	__u32 key;

	if (ncpus < 0 || !(values = calloc(ncpus, sizeof(*values))))
		return;
	printf("%-8s %12s %14s\n", "PROTOCOL", "PACKETS", "BYTES");
	for (key = 0; key < MAX_IP_PROTOCOLS; key++) {
		unsigned long long packets = 0, bytes = 0;

		if (bpf_map_lookup_elem(map_fd, &key, values))
			break;
		for (i = 0; i < ncpus; i++) {
			packets += values[i].packets;
			bytes += values[i].bytes;
		}
		if (packets)
			printf("%-8s %12llu %14llu\n", protocol_name(key), packets, bytes);
	}
	free(values);
}

static const struct option long_options[] = {
	{"interface", required_argument, NULL, 'i'},
	{"protocol", required_argument, NULL, 'P'},
	{"duration", required_argument, NULL, 'd'},
	{"verbose", no_argument, NULL, 'v'},
	{"help", no_argument, NULL, 'h'},
	{NULL, 0, NULL, 0},
};

int main(int argc, char **argv)
{
	struct sockaddr_ll addr = { .sll_family = AF_PACKET, .sll_protocol = htons(ETH_P_ALL) };
	struct {{name}}_bpf *skel = NULL;
	int opt, err = 0, proto = 0, sock = -1, prog_fd;
	const char *ifname = NULL;
	unsigned char buf[2048];
	long duration = 0;
	time_t deadline = 0;
	char *end;

	while ((opt = getopt_long(argc, argv, "hvi:P:d:", long_options, NULL)) != -1) {
		switch (opt) {
		case 'v':
			verbose = 1;
			break;
		case 'i':
			ifname = optarg;
			break;
		case 'P':
			proto = parse_protocol(optarg);
			if (proto < 0) {
				fprintf(stderr, "{{name}}: unknown protocol '%s'\n", optarg);
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
	if (optind != argc) {
		usage(stderr, argv[0]);
		return 2;
	}
	if (ifname) {
		addr.sll_ifindex = (int)if_nametoindex(ifname);
		if (!addr.sll_ifindex) {
			fprintf(stderr, "{{name}}: no interface '%s': %s\n", ifname, strerror(errno));
			return 1;
		}
	}

	libbpf_set_print(print_libbpf_log);
	if (geteuid() != 0)
		fprintf(stderr, "{{name}}: not running as root: this will likely fail "
			"(run with sudo, or grant CAP_BPF and CAP_NET_RAW)\n");

	skel = {{name}}_bpf__open();
	if (!skel) {
		fprintf(stderr, "{{name}}: failed to open BPF object: %s\n", strerror(errno));
		return 1;
	}
	/* const volatile globals live in .rodata: set them before load. */
	skel->rodata->ip_proto = (__u8)proto;
	err = {{name}}_bpf__load(skel);
	if (err) {
		fprintf(stderr, "{{name}}: failed to load BPF programs: %s%s\n", strerror(-err),
			err == -ENOSYS ? " (this system has no bpf() syscall: a kernel without "
			"CONFIG_BPF_SYSCALL, or an emulator such as qemu-user)" :
			err == -EPERM ? " (run as root, or with CAP_BPF and CAP_PERFMON)" :
			verbose ? "" : " (rerun with -v for the verifier log)");
		goto cleanup;
	}

	/* Protocol 0 receives nothing until bind(): attach the filter first, so that no
	 * unfiltered packet is queued in between. */
	sock = socket(AF_PACKET, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (sock < 0) {
		err = -errno;
		fprintf(stderr, "{{name}}: cannot open a packet socket: %s%s\n", strerror(errno),
			errno == EPERM ? " (needs CAP_NET_RAW)" : "");
		goto cleanup;
	}
	prog_fd = bpf_program__fd(skel->progs.socket_filter);
	if (setsockopt(sock, SOL_SOCKET, SO_ATTACH_BPF, &prog_fd, sizeof(prog_fd))) {
		err = -errno;
		fprintf(stderr, "{{name}}: failed to attach the filter: %s\n", strerror(errno));
		goto cleanup;
	}
	if (bind(sock, (struct sockaddr *)&addr, sizeof(addr))) {
		err = -errno;
		fprintf(stderr, "{{name}}: cannot bind to %s: %s\n", ifname ? ifname : "all interfaces",
			strerror(errno));
		goto cleanup;
	}

	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (duration)
		deadline = time(NULL) + duration;
	printf("{{name}}: capturing %s packets on %s; Ctrl-C to stop\n",
	       proto ? protocol_name(proto) : "IP", ifname ? ifname : "all interfaces");

	while (!exiting && (!deadline || time(NULL) < deadline)) {
		struct pollfd pfd = { .fd = sock, .events = POLLIN };
		struct sockaddr_ll from;
		socklen_t fromlen = sizeof(from);
		ssize_t len;

		if (poll(&pfd, 1, 100 /* ms */) <= 0)
			continue; /* timeout, or EINTR from a signal */
		while ((len = recvfrom(sock, buf, sizeof(buf), MSG_TRUNC, (struct sockaddr *)&from,
				       &fromlen)) >= 0) {
			/* MSG_TRUNC: len is the packet's length, even if buf got less. */
			print_packet(buf, (size_t)len < sizeof(buf) ? (size_t)len : sizeof(buf),
				     (size_t)len, &from);
			fromlen = sizeof(from);
		}
		if (errno != EAGAIN && errno != EINTR) {
			err = -errno;
			fprintf(stderr, "{{name}}: receiving failed: %s\n", strerror(errno));
			break;
		}
	}
	print_protocols(bpf_map__fd(skel->maps.protocols));

cleanup:
	if (sock >= 0)
		close(sock);
	{{name}}_bpf__destroy(skel);
	return err ? 1 : 0;
}
