// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Loader for {{name}}: samples every CPU with the cpu-clock software event, then
 * prints the processes that used the CPU most and, with -s, their hottest stacks
 * (kernel frames named from /proc/kallsyms, user frames as addresses). */
#include <errno.h>
#include <getopt.h>
#include <linux/perf_event.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include "{{name}}.h"
#include "{{name}}.skel.h"

static volatile sig_atomic_t exiting;
static int verbose;

static void usage(FILE *out, const char *prog)
{
	fprintf(out,
		"usage: %s [-F HZ] [-p PID] [-s] [-n TOP] [-d SECONDS] [-v]\n"
		"  -F, --frequency=HZ        samples per second on each CPU (default: 49)\n"
		"  -p, --pid=PID             profile only this process (default: every process)\n"
		"  -s, --stacks              also print the hottest stacks\n"
		"  -n, --top=TOP             how many processes (and stacks) to print (default: 10)\n"
		"  -d, --duration=SECONDS    profile for SECONDS (default: until Ctrl-C)\n"
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

static long parse_number(const char *arg, const char *what, long min, long max)
{
	char *end;
	long value = strtol(arg, &end, 10);

	if (*end || end == arg || value < min || value > max) {
		fprintf(stderr, "{{name}}: invalid %s '%s'\n", what, arg);
		exit(2);
	}
	return value;
}

/* glibc has no wrapper for perf_event_open. */
static int perf_event_open(struct perf_event_attr *attr, pid_t pid, int cpu)
{
	return (int)syscall(__NR_perf_event_open, attr, pid, cpu, -1, PERF_FLAG_FD_CLOEXEC);
}

/* ------------------------------------------------------------ kernel symbols */

struct ksym {
	unsigned long long addr;
	char name[128];
};

static struct ksym *ksyms;
static size_t nksyms;

static int by_addr(const void *a, const void *b)
{
	const struct ksym *x = a, *y = b;

	return x->addr < y->addr ? -1 : x->addr > y->addr;
}

static void load_kallsyms(void)
{
	FILE *f = fopen("/proc/kallsyms", "r");
	size_t capacity = 0;
	struct ksym sym;
	char type;

	while (f && fscanf(f, "%llx %c %127s%*[^\n]", &sym.addr, &type, sym.name) == 3) {
		if (nksyms == capacity) {
			struct ksym *grown;

			capacity = capacity ? capacity * 2 : 4096;
			grown = realloc(ksyms, capacity * sizeof(*ksyms));
			if (!grown)
				break;
			ksyms = grown;
		}
		ksyms[nksyms++] = sym;
	}
	if (f)
		fclose(f);
	qsort(ksyms, nksyms, sizeof(*ksyms), by_addr);
}

/* The symbol an address falls in: the last one starting at or below it. */
static const struct ksym *find_ksym(unsigned long long addr)
{
	size_t lo = 0, hi = nksyms;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (ksyms[mid].addr <= addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo && ksyms[lo - 1].addr ? &ksyms[lo - 1] : NULL;
}

/* ------------------------------------------------------------------ reports */

struct entry {
	struct sample_key key;
	unsigned long long count;
};

static int by_count(const void *a, const void *b)
{
	const struct entry *x = a, *y = b;

	return x->count < y->count ? 1 : x->count > y->count ? -1 : 0;
}

static size_t read_samples(int map_fd, struct entry *entries)
{
	struct sample_key key, next, *prev = NULL;
	size_t n = 0;

	while (n < MAX_SAMPLE_KEYS && !bpf_map_get_next_key(map_fd, prev, &next)) {
		key = next;
		if (!bpf_map_lookup_elem(map_fd, &key, &entries[n].count))
			entries[n++].key = key;
		prev = &key;
	}
	return n;
}

static void print_processes(struct entry *entries, size_t n, long top)
{
	static struct entry totals[MAX_SAMPLE_KEYS];
	unsigned long long all = 0;
	size_t ntotals = 0, i, j;

	/* One row per process: add up its stacks. */
	for (i = 0; i < n; i++) {
		all += entries[i].count;
		for (j = 0; j < ntotals && totals[j].key.tgid != entries[i].key.tgid; j++)
			;
		if (j == ntotals)
			totals[ntotals++] = entries[i];
		else
			totals[j].count += entries[i].count;
	}
	qsort(totals, ntotals, sizeof(totals[0]), by_count);
	printf("%-8s %-16s %10s %7s\n", "PID", "COMM", "SAMPLES", "%");
	for (i = 0; i < ntotals && i < (size_t)top; i++)
		printf("%-8u %-16s %10llu %6.1f%%\n", totals[i].key.tgid, totals[i].key.comm,
		       totals[i].count, 100.0 * totals[i].count / all);
}

static void print_stack(int stacks_fd, int stack_id, const char *kind)
{
	unsigned long long ips[MAX_STACK_DEPTH];
	int i;

	if (stack_id < 0 || bpf_map_lookup_elem(stacks_fd, &stack_id, ips))
		return;
	for (i = 0; i < MAX_STACK_DEPTH && ips[i]; i++) {
		const struct ksym *sym = kind[0] == 'k' ? find_ksym(ips[i]) : NULL;

		if (sym)
			printf("    [%s] %s+0x%llx\n", kind, sym->name, ips[i] - sym->addr);
		else
			printf("    [%s] 0x%llx\n", kind, ips[i]);
	}
}

static void print_stacks(int stacks_fd, struct entry *entries, size_t n, long top)
{
	size_t i;

	load_kallsyms();
	printf("\n");
	for (i = 0; i < n && i < (size_t)top; i++) {
		printf("%llu samples: PID %u %s\n", entries[i].count, entries[i].key.tgid,
		       entries[i].key.comm);
		print_stack(stacks_fd, entries[i].key.kernel_stack_id, "k");
		print_stack(stacks_fd, entries[i].key.user_stack_id, "u");
	}
}

static const struct option long_options[] = {
	{"frequency", required_argument, NULL, 'F'},
	{"pid", required_argument, NULL, 'p'},
	{"stacks", no_argument, NULL, 's'},
	{"top", required_argument, NULL, 'n'},
	{"duration", required_argument, NULL, 'd'},
	{"verbose", no_argument, NULL, 'v'},
	{"help", no_argument, NULL, 'h'},
	{NULL, 0, NULL, 0},
};

int main(int argc, char **argv)
{
	static struct entry entries[MAX_SAMPLE_KEYS];
	struct perf_event_attr attr = {
		.type = PERF_TYPE_SOFTWARE,
		.config = PERF_COUNT_SW_CPU_CLOCK,
		.size = sizeof(attr),
		.freq = 1, /* sample_freq is a frequency, not a period */
	};
	struct bpf_link **links = NULL;
	struct {{name}}_bpf *skel;
	long freq = 49, pid = 0, top = 10, duration = 0;
	int opt, err, cpu, ncpus, nevents = 0, stacks = 0;
	time_t deadline = 0;
	size_t n;

	while ((opt = getopt_long(argc, argv, "hvsF:p:n:d:", long_options, NULL)) != -1) {
		switch (opt) {
		case 'v':
			verbose = 1;
			break;
		case 's':
			stacks = 1;
			break;
		case 'F':
			freq = parse_number(optarg, "frequency", 1, 100000);
			break;
		case 'p':
			pid = parse_number(optarg, "PID", 1, 0x7fffffff);
			break;
		case 'n':
			top = parse_number(optarg, "count", 1, MAX_SAMPLE_KEYS);
			break;
		case 'd':
			duration = parse_number(optarg, "duration", 1, 0x7fffffff);
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
	attr.sample_freq = (__u64)freq;

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
	skel->rodata->target_tgid = (__u32)pid;
	err = {{name}}_bpf__load(skel);
	if (err) {
		fprintf(stderr, "{{name}}: failed to load BPF programs: %s%s\n", strerror(-err),
			err == -ENOSYS ? " (this system has no bpf() syscall: a kernel without "
			"CONFIG_BPF_SYSCALL, or an emulator such as qemu-user)" :
			err == -EPERM ? " (run as root, or with CAP_BPF and CAP_PERFMON)" :
			verbose ? "" : " (rerun with -v for the verifier log)");
		goto cleanup;
	}

	ncpus = libbpf_num_possible_cpus();
	if (ncpus < 0) {
		err = ncpus;
		fprintf(stderr, "{{name}}: cannot count the CPUs: %s\n", strerror(-err));
		goto cleanup;
	}
	links = calloc((size_t)ncpus, sizeof(*links));
	if (!links) {
		err = -ENOMEM;
		goto cleanup;
	}
	/* One event per CPU, for every process (pid -1): the program filters. */
	for (cpu = 0; cpu < ncpus; cpu++) {
		int fd = perf_event_open(&attr, -1, cpu);

		if (fd < 0) {
			if (errno == ENODEV)
				continue; /* a possible CPU that is offline */
			err = -errno;
			fprintf(stderr, "{{name}}: cannot open the cpu-clock event on CPU %d: %s%s\n", cpu,
				strerror(errno), errno == EACCES || errno == EPERM
				? " (needs CAP_PERFMON, or a lower /proc/sys/kernel/perf_event_paranoid)" : "");
			goto cleanup;
		}
		/* The link owns the event from here: destroying it closes fd. */
		links[cpu] = bpf_program__attach_perf_event(skel->progs.on_sample, fd);
		if (!links[cpu]) {
			err = -errno;
			close(fd);
			fprintf(stderr, "{{name}}: failed to attach to CPU %d: %s\n", cpu, strerror(-err));
			goto cleanup;
		}
		nevents++;
	}

	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (duration)
		deadline = time(NULL) + duration;
	printf("{{name}}: sampling %d CPUs at %ld Hz", nevents, freq);
	if (pid)
		printf(" for PID %ld", pid);
	printf("; Ctrl-C to stop\n");
	while (!exiting && (!deadline || time(NULL) < deadline))
		usleep(100 * 1000); /* a signal interrupts it */

	/* Stop sampling before reading, so that the report is consistent. */
	for (cpu = 0; cpu < ncpus; cpu++) {
		bpf_link__destroy(links[cpu]);
		links[cpu] = NULL;
	}
	n = read_samples(bpf_map__fd(skel->maps.samples), entries);
	qsort(entries, n, sizeof(entries[0]), by_count);
	print_processes(entries, n, top);
	if (stacks)
		print_stacks(bpf_map__fd(skel->maps.stacks), entries, n, top);

cleanup:
	for (cpu = 0; links && cpu < ncpus; cpu++)
		bpf_link__destroy(links[cpu]);
	free(links);
	free(ksyms);
	{{name}}_bpf__destroy(skel);
	return err ? 1 : 0;
}
