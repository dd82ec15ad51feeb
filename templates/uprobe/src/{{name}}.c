// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Loader for {{name}}: attaches the uprobe to a function (libc's malloc by default)
 * and prints, per process, how often it was called and the bytes asked for. */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include "{{name}}.h"
#include "{{name}}.skel.h"

/* Debian and Ubuntu keep libc in a folder named after the target (multiarch). */
#if defined(__x86_64__)
#define MULTIARCH "x86_64-linux-gnu"
#elif defined(__aarch64__)
#define MULTIARCH "aarch64-linux-gnu"
#elif defined(__arm__)
#define MULTIARCH "arm-linux-gnueabihf"
#elif defined(__riscv) && __riscv_xlen == 64
#define MULTIARCH "riscv64-linux-gnu"
#elif defined(__powerpc64__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define MULTIARCH "powerpc64le-linux-gnu"
#elif defined(__s390x__)
#define MULTIARCH "s390x-linux-gnu"
#elif defined(__loongarch64)
#define MULTIARCH "loongarch64-linux-gnu"
#else
#define MULTIARCH "unknown"
#endif

#define TOP 20

static volatile sig_atomic_t exiting;
static int verbose;

static void usage(FILE *out, const char *prog)
{
	fprintf(out,
		"usage: %s [-b BINARY] [-f FUNCTION] [-p PID] [-m MIN_SIZE] [-i SECONDS] [-d SECONDS] [-v]\n"
		"  -b, --binary=BINARY       the executable or library to probe (default: libc, found at run time)\n"
		"  -f, --function=FUNCTION   the function to probe; its first argument is counted as a size\n"
		"                            (default: malloc)\n"
		"  -p, --pid=PID             trace only this process (default: every process using BINARY)\n"
		"  -m, --min-size=MIN_SIZE   count only calls asking for at least MIN_SIZE bytes\n"
		"  -i, --interval=SECONDS    print the table every SECONDS (default: only at exit)\n"
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

static long parse_number(const char *arg, const char *what, long min)
{
	char *end;
	long value = strtol(arg, &end, 10);

	if (*end || end == arg || value < min) {
		fprintf(stderr, "{{name}}: invalid %s '%s'\n", what, arg);
		exit(2);
	}
	return value;
}

/* The libc to probe: the one process PID has mapped, else the usual places. */
static int find_libc(int pid, char *path, size_t size)
{
	static const char *const candidates[] = {
		"/lib/" MULTIARCH "/libc.so.6", "/usr/lib/" MULTIARCH "/libc.so.6",
		"/lib64/libc.so.6", "/usr/lib64/libc.so.6", "/lib/libc.so.6", "/usr/lib/libc.so.6",
	};
	char maps[64], line[PATH_MAX + 128];
	size_t i;
	FILE *f;

	if (pid > 0) {
		snprintf(maps, sizeof(maps), "/proc/%d/maps", pid);
		f = fopen(maps, "r");
		while (f && fgets(line, sizeof(line), f)) {
			char *file = strchr(line, '/'), *base;

			if (!file)
				continue;
			file[strcspn(file, "\n")] = '\0';
			base = strrchr(file, '/') + 1;
			if (!strncmp(base, "libc.so", 7) || !strncmp(base, "libc-", 5)) {
				snprintf(path, size, "%s", file);
				fclose(f);
				return 0;
			}
		}
		if (f)
			fclose(f);
	}
	for (i = 0; i < sizeof(candidates) / sizeof(candidates[0]); i++) {
		if (!access(candidates[i], R_OK)) {
			snprintf(path, size, "%s", candidates[i]);
			return 0;
		}
	}
	return -ENOENT;
}

struct row {
	unsigned int pid;
	struct alloc_stats stats;
};

static int by_bytes(const void *a, const void *b)
{
	const struct row *x = a, *y = b;

	return x->stats.bytes < y->stats.bytes ? 1 : x->stats.bytes > y->stats.bytes ? -1 : 0;
}

static void print_table(int map_fd)
{
	static struct row rows[MAX_PROCESSES];
	unsigned int key, next, *prev = NULL;
	size_t n = 0, i;

	/* The first call (prev NULL) gets the first key; a key deleted meanwhile is skipped. */
	while (n < MAX_PROCESSES && !bpf_map_get_next_key(map_fd, prev, &next)) {
		key = next;
		if (!bpf_map_lookup_elem(map_fd, &key, &rows[n].stats))
			rows[n++].pid = key;
		prev = &key;
	}
	qsort(rows, n, sizeof(rows[0]), by_bytes);
	printf("%-8s %-16s %12s %16s\n", "PID", "COMM", "CALLS", "BYTES");
	for (i = 0; i < n && i < TOP; i++)
		printf("%-8u %-16s %12llu %16llu\n", rows[i].pid, rows[i].stats.comm,
		       rows[i].stats.calls, rows[i].stats.bytes);
}

static const struct option long_options[] = {
	{"binary", required_argument, NULL, 'b'},
	{"function", required_argument, NULL, 'f'},
	{"pid", required_argument, NULL, 'p'},
	{"min-size", required_argument, NULL, 'm'},
	{"interval", required_argument, NULL, 'i'},
	{"duration", required_argument, NULL, 'd'},
	{"verbose", no_argument, NULL, 'v'},
	{"help", no_argument, NULL, 'h'},
	{NULL, 0, NULL, 0},
};

int main(int argc, char **argv)
{
	LIBBPF_OPTS(bpf_uprobe_opts, uprobe_opts);
	struct {{name}}_bpf *skel = NULL;
	struct bpf_link *link = NULL;
	const char *binary = NULL, *function = "malloc";
	long pid = 0, min_size = 0, interval = 0, duration = 0;
	char libc[PATH_MAX];
	time_t deadline = 0, next_print = 0;
	int opt, err = 0;

	while ((opt = getopt_long(argc, argv, "hvb:f:p:m:i:d:", long_options, NULL)) != -1) {
		switch (opt) {
		case 'v':
			verbose = 1;
			break;
		case 'b':
			binary = optarg;
			break;
		case 'f':
			function = optarg;
			break;
		case 'p':
			pid = parse_number(optarg, "PID", 1);
			break;
		case 'm':
			min_size = parse_number(optarg, "size", 0);
			break;
		case 'i':
			interval = parse_number(optarg, "interval", 1);
			break;
		case 'd':
			duration = parse_number(optarg, "duration", 1);
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
	if (!binary) {
		if (find_libc((int)pid, libc, sizeof(libc))) {
			fprintf(stderr, "{{name}}: cannot find libc: name the binary with -b\n");
			return 1;
		}
		binary = libc;
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
	skel->rodata->min_size = (__u64)min_size;
	err = {{name}}_bpf__load(skel);
	if (err) {
		fprintf(stderr, "{{name}}: failed to load BPF programs: %s%s\n", strerror(-err),
			err == -ENOSYS ? " (this system has no bpf() syscall: a kernel without "
			"CONFIG_BPF_SYSCALL, or an emulator such as qemu-user)" :
			err == -EPERM ? " (run as root, or with CAP_BPF and CAP_PERFMON)" :
			verbose ? "" : " (rerun with -v for the verifier log)");
		goto cleanup;
	}

	/* libbpf finds the function's offset in the binary's symbol table. */
	uprobe_opts.func_name = function;
	link = bpf_program__attach_uprobe_opts(skel->progs.on_malloc, pid ? (int)pid : -1, binary,
					       0, &uprobe_opts);
	if (!link) {
		err = -errno;
		fprintf(stderr, "{{name}}: failed to attach to %s in %s: %s%s\n", function, binary,
			strerror(errno),
			errno == ENOENT ? " (no such file, or no such function in its symbols)" : "");
		goto cleanup;
	}

	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (duration)
		deadline = time(NULL) + duration;
	if (interval)
		next_print = time(NULL) + interval;
	printf("{{name}}: tracing %s in %s", function, binary);
	if (pid)
		printf(" for PID %ld", pid);
	printf("; Ctrl-C to stop\n");

	while (!exiting && (!deadline || time(NULL) < deadline)) {
		usleep(100 * 1000); /* a signal interrupts it */
		if (next_print && time(NULL) >= next_print && !exiting) {
			print_table(bpf_map__fd(skel->maps.allocs));
			next_print += interval;
		}
	}
	print_table(bpf_map__fd(skel->maps.allocs));

cleanup:
	bpf_link__destroy(link);
	{{name}}_bpf__destroy(skel);
	return err ? 1 : 0;
}
