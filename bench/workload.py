"""The benchmark's workload: N tracing apps and one XDP app that share headers and a source.

Every tracing app K is `src/appK.bpf.c` (vmlinux.h, a tracepoint or raw_tp program,
a ring buffer or hash map, `common.h`, and `maps.h` for even K) plus its loader
`src/appK.c` (`appK.skel.h`, `common.h`, `util.h`). `src/util.c` is linked into every
app. The XDP app `xdpfilter` uses uapi headers (<linux/bpf.h>...) instead of
vmlinux.h and does not include `common.h`. Programs rotate through seven kinds, as
the tools of libbpf-tools do: exec, exit, syscall counts, opens, forks, syscall
latency and signals.
"""

from __future__ import annotations

import re
from pathlib import Path
from string import Template

DEFAULT_TRACING_APPS = 14
XDP_APP = "xdpfilter"
SHARED_HEADER = "src/common.h"
"""The header the benchmark edits: included by every tracing app, BPF and user side."""
TOUCHED_SOURCE = "src/app1.bpf.c"
"""The source the benchmark touches."""

SPDX = "// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)\n"

COMMON_H = """\
/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Event layouts and limits shared by the tracing programs and their loaders. */
#ifndef __BENCH_COMMON_H
#define __BENCH_COMMON_H

#define TASK_COMM_LEN 16
#define MAX_FILENAME_LEN 127
#define MAX_ENTRIES 10240
#define MAX_SYSCALLS 512
#define MAX_SLOTS 27

struct exec_event {
	int pid;
	int ppid;
	unsigned long long ts_ns;
	char comm[TASK_COMM_LEN];
	char filename[MAX_FILENAME_LEN];
};

struct exit_event {
	int pid;
	int ppid;
	unsigned int exit_code;
	unsigned long long duration_ns;
	char comm[TASK_COMM_LEN];
};

struct open_event {
	int pid;
	int flags;
	int ret;
	char comm[TASK_COMM_LEN];
	char filename[MAX_FILENAME_LEN];
};

struct fork_event {
	int parent_pid;
	int child_pid;
	unsigned long long parent_forks;
	char comm[TASK_COMM_LEN];
};

struct signal_event {
	int sender_pid;
	int target_pid;
	int sig;
	int result;
	char comm[TASK_COMM_LEN];
};

#endif /* __BENCH_COMMON_H */
"""

MAPS_H = """\
/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Map declarations shared by BPF programs (include after bpf_helpers.h). */
#ifndef __BENCH_MAPS_H
#define __BENCH_MAPS_H

#define RINGBUF_SIZE (256 * 1024)

#define RINGBUF_MAP(_name, _size)				\\
	struct {						\\
		__uint(type, BPF_MAP_TYPE_RINGBUF);		\\
		__uint(max_entries, _size);			\\
	} _name SEC(".maps")

#define HASH_MAP(_name, _key, _value, _max)			\\
	struct {						\\
		__uint(type, BPF_MAP_TYPE_HASH);		\\
		__uint(max_entries, _max);			\\
		__type(key, _key);				\\
		__type(value, _value);				\\
	} _name SEC(".maps")

#define ARRAY_MAP(_name, _value, _max)				\\
	struct {						\\
		__uint(type, BPF_MAP_TYPE_ARRAY);		\\
		__uint(max_entries, _max);			\\
		__type(key, u32);				\\
		__type(value, _value);				\\
	} _name SEC(".maps")

/* Add one to *map[key], creating the entry when it is missing. */
static __always_inline u64 count_one(void *map, const void *key)
{
	u64 *count = bpf_map_lookup_elem(map, key), one = 1;

	if (count)
		return __sync_fetch_and_add(count, 1) + 1;
	bpf_map_update_elem(map, key, &one, BPF_NOEXIST);
	return 1;
}

#endif /* __BENCH_MAPS_H */
"""

UTIL_H = """\
/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Helpers every loader uses: options, libbpf logging, signals, output. */
#ifndef __BENCH_UTIL_H
#define __BENCH_UTIL_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>

struct options {
	bool verbose;
	long duration;		/* -d SECONDS, 0: until Ctrl-C */
	long interval;		/* -i SECONDS between reports */
	long target;		/* -p NUM: a pid, a signal or a port, per tool */
	const char *ifname;	/* -I IFNAME */
};

extern volatile sig_atomic_t exiting;

/* Parse -v -d -i -p -I; print usage and return -1 on a bad option. */
int parse_options(int argc, char **argv, struct options *opts, const char *what);
/* libbpf logs to stderr; debug messages only when verbose. */
void setup_libbpf_log(bool verbose);
/* SIGINT/SIGTERM set `exiting`. */
void setup_signals(void);
/* True once opts->duration seconds have passed since parse_options(). */
bool time_is_up(const struct options *opts);
/* HH:MM:SS of now. */
void format_time(char *buf, size_t size);
/* Print a power-of-two histogram as the bcc tools do. */
void print_log2_hist(const unsigned int *vals, int vals_size, const char *unit);

#endif /* __BENCH_UTIL_H */
"""

UTIL_C = """\
// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Shared user-space helpers, linked into every app. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <bpf/libbpf.h>
#include "util.h"

volatile sig_atomic_t exiting;
static bool verbose_log;
static struct timespec started;

static long parse_number(const char *prog, const char *what, const char *text)
{
	char *end;
	long value;

	errno = 0;
	value = strtol(text, &end, 10);
	if (errno || *end || value < 0) {
		fprintf(stderr, "%s: invalid %s: '%s'\\n", prog, what, text);
		return -1;
	}
	return value;
}

int parse_options(int argc, char **argv, struct options *opts, const char *what)
{
	int opt;

	if (!opts->interval)
		opts->interval = 1;
	while ((opt = getopt(argc, argv, "vd:i:p:I:h")) != -1) {
		switch (opt) {
		case 'v':
			opts->verbose = true;
			break;
		case 'd':
			if ((opts->duration = parse_number(argv[0], "duration", optarg)) < 0)
				return -1;
			break;
		case 'i':
			if ((opts->interval = parse_number(argv[0], "interval", optarg)) <= 0)
				return -1;
			break;
		case 'p':
			if ((opts->target = parse_number(argv[0], "target", optarg)) < 0)
				return -1;
			break;
		case 'I':
			opts->ifname = optarg;
			break;
		default:
			fprintf(stderr, "%s: %s\\n"
				"usage: %s [-v] [-d SECONDS] [-i SECONDS] [-p NUM] [-I IFNAME]\\n",
				argv[0], what, argv[0]);
			return -1;
		}
	}
	clock_gettime(CLOCK_MONOTONIC, &started);
	return 0;
}

static int print_libbpf(enum libbpf_print_level level, const char *format, va_list args)
{
	if (level == LIBBPF_DEBUG && !verbose_log)
		return 0;
	return vfprintf(stderr, format, args);
}

void setup_libbpf_log(bool verbose)
{
	verbose_log = verbose;
	libbpf_set_print(print_libbpf);
}

static void on_signal(int sig)
{
	(void)sig;
	exiting = 1;
}

void setup_signals(void)
{
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
}

bool time_is_up(const struct options *opts)
{
	struct timespec now;

	if (!opts->duration)
		return false;
	clock_gettime(CLOCK_MONOTONIC, &now);
	return now.tv_sec - started.tv_sec >= opts->duration;
}

void format_time(char *buf, size_t size)
{
	time_t now = time(NULL);
	struct tm tm;

	localtime_r(&now, &tm);
	strftime(buf, size, "%H:%M:%S", &tm);
}

static void print_stars(unsigned int val, unsigned int val_max, int width)
{
	int num_stars = val_max ? (int)((unsigned long long)val * width / val_max) : 0;
	int i;

	for (i = 0; i < num_stars && i < width; i++)
		putchar('*');
	if (val > val_max)
		putchar('+');
}

void print_log2_hist(const unsigned int *vals, int vals_size, const char *unit)
{
	unsigned int val_max = 0;
	int i, idx_max = -1;

	for (i = 0; i < vals_size; i++) {
		if (vals[i] > 0)
			idx_max = i;
		if (vals[i] > val_max)
			val_max = vals[i];
	}
	if (idx_max < 0)
		return;
	printf("%*s%-*s : count    distribution\\n", idx_max <= 32 ? 5 : 15, "",
	       idx_max <= 32 ? 19 : 29, unit);
	for (i = 0; i <= idx_max; i++) {
		unsigned long long low = (1ULL << (i + 1)) >> 1, high = (1ULL << (i + 1)) - 1;

		if (low == high)
			low -= 1;
		printf("%*llu -> %-*llu : %-8u |", idx_max <= 32 ? 10 : 20, low,
		       idx_max <= 32 ? 10 : 20, high, vals[i]);
		print_stars(vals[i], val_max, 40);
		printf("|\\n");
	}
}
"""

BPF_PRELUDE = Template("""\
$spdx/* $name: $what */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>
#include "common.h"
$maps_include
char LICENSE[] SEC("license") = "Dual BSD/GPL";

""")


def _ringbuf(name: str, with_maps_h: bool, k: int) -> str:
    """A ring buffer; its size must be a power of two pages, 64 to 512 KiB here."""
    if with_maps_h:
        return f"RINGBUF_MAP({name}, RINGBUF_SIZE);\n"
    return (
        f"struct {{\n\t__uint(type, BPF_MAP_TYPE_RINGBUF);\n"
        f'\t__uint(max_entries, {64 << (k % 4)} * 1024);\n}} {name} SEC(".maps");\n'
    )


def _hash(name: str, key: str, value: str, size: str, with_maps_h: bool) -> str:
    if with_maps_h:
        return f"HASH_MAP({name}, {key}, {value}, {size});\n"
    return (
        f"struct {{\n\t__uint(type, BPF_MAP_TYPE_HASH);\n\t__uint(max_entries, {size});\n"
        f'\t__type(key, {key});\n\t__type(value, {value});\n}} {name} SEC(".maps");\n'
    )


def _array(name: str, value: str, size: str, with_maps_h: bool) -> str:
    if with_maps_h:
        return f"ARRAY_MAP({name}, {value}, {size});\n"
    return (
        f"struct {{\n\t__uint(type, BPF_MAP_TYPE_ARRAY);\n\t__uint(max_entries, {size});\n"
        f'\t__type(key, u32);\n\t__type(value, {value});\n}} {name} SEC(".maps");\n'
    )


def _count_one(
    map_name: str, key: str, with_maps_h: bool, result: str | None = None
) -> tuple[str, str]:
    """Declarations, then statements, that add one to map[key] (new count in result)."""
    if with_maps_h:
        decl = f"\tu64 {result};\n" if result else ""
        assign = f"{result} = " if result else ""
        return decl + "\n", f"\t{assign}count_one(&{map_name}, &{key});\n"
    decl = f"\tu64 *slot, {result or 'one = 1'};\n"
    if not result:
        return decl + "\n", (
            f"\tslot = bpf_map_lookup_elem(&{map_name}, &{key});\n\tif (slot)\n"
            f"\t\t__sync_fetch_and_add(slot, 1);\n\telse\n"
            f"\t\tbpf_map_update_elem(&{map_name}, &{key}, &one, BPF_NOEXIST);\n"
        )
    return decl + "\n", (
        f"\tslot = bpf_map_lookup_elem(&{map_name}, &{key});\n"
        f"\tif (slot) {{\n\t\t{result} = __sync_fetch_and_add(slot, 1) + 1;\n\t}} else {{\n"
        f"\t\t{result} = 1;\n\t\tbpf_map_update_elem(&{map_name}, &{key}, &{result}, BPF_NOEXIST);\n\t}}\n"
    )


# -- BPF programs: (what it does, body), one per kind ---------------------------


def bpf_exec(k: int, m: bool) -> tuple[str, str]:
    return "report every exec with its parent and filename (tracepoint, ring buffer).", (
        "const volatile int targ_ppid = 0;\n\n"
        + _ringbuf("events", m, k)
        + """
SEC("tp/sched/sched_process_exec")
int handle_exec(struct trace_event_raw_sched_process_exec *ctx)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	unsigned int fname_off = ctx->__data_loc_filename & 0xFFFF;
	int ppid = BPF_CORE_READ(task, real_parent, tgid);
	struct exec_event *e;

	if (targ_ppid && ppid != targ_ppid)
		return 0;
	e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e)
		return 0;
	e->pid = bpf_get_current_pid_tgid() >> 32;
	e->ppid = ppid;
	e->ts_ns = bpf_ktime_get_ns();
	bpf_get_current_comm(&e->comm, sizeof(e->comm));
	bpf_probe_read_kernel_str(&e->filename, sizeof(e->filename), (void *)ctx + fname_off);
	bpf_ringbuf_submit(e, 0);
	return 0;
}
"""
    )


def bpf_exit(k: int, m: bool) -> tuple[str, str]:
    return "report process exits with exit code and lifetime (tracepoint, ring buffer).", (
        "const volatile bool ignore_threads = true;\n\n"
        + _ringbuf("events", m, k)
        + """
SEC("tp/sched/sched_process_exit")
int handle_exit(struct trace_event_raw_sched_process_template *ctx)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	u64 id = bpf_get_current_pid_tgid();
	int pid = id >> 32, tid = (u32)id;
	struct exit_event *e;

	if (ignore_threads && pid != tid)
		return 0;
	e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e)
		return 0;
	e->pid = pid;
	e->ppid = BPF_CORE_READ(task, real_parent, tgid);
	e->exit_code = (BPF_CORE_READ(task, exit_code) >> 8) & 0xff;
	e->duration_ns = bpf_ktime_get_ns() - BPF_CORE_READ(task, start_time);
	bpf_get_current_comm(&e->comm, sizeof(e->comm));
	bpf_ringbuf_submit(e, 0);
	return 0;
}
"""
    )


def bpf_syscount(k: int, m: bool) -> tuple[str, str]:
    decl, count = _count_one("counts", "key", m)
    return "count system calls by number (raw_tp, hash map).", (
        "const volatile int targ_pid = 0;\n\n"
        + _hash("counts", "u32", "u64", "MAX_SYSCALLS", m)
        + """
SEC("raw_tp/sys_enter")
int BPF_PROG(count_sys_enter, struct pt_regs *regs, long id)
{
	u32 key = (u32)id;
"""
        + decl
        + """\
	if (id < 0)
		return 0;
	if (targ_pid && (bpf_get_current_pid_tgid() >> 32) != targ_pid)
		return 0;
"""
        + count
        + """\
	return 0;
}
"""
    )


def bpf_opensnoop(k: int, m: bool) -> tuple[str, str]:
    return "trace openat() calls with their result (tracepoints, hash map, ring buffer).", (
        "struct open_args {\n\tconst char *fname;\n\tint flags;\n};\n\n"
        "const volatile int targ_pid = 0;\n\n"
        + _hash("start", "u32", "struct open_args", "MAX_ENTRIES", m)
        + "\n"
        + _ringbuf("events", m, k)
        + """
SEC("tp/syscalls/sys_enter_openat")
int handle_openat_enter(struct trace_event_raw_sys_enter *ctx)
{
	u64 id = bpf_get_current_pid_tgid();
	u32 tid = (u32)id;
	struct open_args args = {};

	if (targ_pid && (id >> 32) != targ_pid)
		return 0;
	args.fname = (const char *)ctx->args[1];
	args.flags = (int)ctx->args[2];
	bpf_map_update_elem(&start, &tid, &args, BPF_ANY);
	return 0;
}

SEC("tp/syscalls/sys_exit_openat")
int handle_openat_exit(struct trace_event_raw_sys_exit *ctx)
{
	u64 id = bpf_get_current_pid_tgid();
	u32 tid = (u32)id;
	struct open_args *args = bpf_map_lookup_elem(&start, &tid);
	struct open_event *e;

	if (!args)
		return 0;
	e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (e) {
		e->pid = id >> 32;
		e->flags = args->flags;
		e->ret = ctx->ret;
		bpf_get_current_comm(&e->comm, sizeof(e->comm));
		bpf_probe_read_user_str(&e->filename, sizeof(e->filename), args->fname);
		bpf_ringbuf_submit(e, 0);
	}
	bpf_map_delete_elem(&start, &tid);
	return 0;
}
"""
    )


def bpf_forks(k: int, m: bool) -> tuple[str, str]:
    decl, count = _count_one("fork_counts", "parent", m, result="count")
    return "report forks with a per-parent count (tracepoint, hash map, ring buffer).", (
        _hash("fork_counts", "u32", "u64", "MAX_ENTRIES", m)
        + "\n"
        + _ringbuf("events", m, k)
        + """
SEC("tp/sched/sched_process_fork")
int handle_fork(struct trace_event_raw_sched_process_fork *ctx)
{
	u32 parent = ctx->parent_pid;
	struct fork_event *e;
"""
        + decl
        + count
        + """\
	e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e)
		return 0;
	e->parent_pid = ctx->parent_pid;
	e->child_pid = ctx->child_pid;
	e->parent_forks = count;
	bpf_get_current_comm(&e->comm, sizeof(e->comm));
	bpf_ringbuf_submit(e, 0);
	return 0;
}
"""
    )


def bpf_syslat(k: int, m: bool) -> tuple[str, str]:
    return "histogram of system call latency in microseconds (raw_tp, hash map, array).", (
        "const volatile int targ_pid = 0;\n\n"
        + _hash("start", "u32", "u64", "MAX_ENTRIES", m)
        + "\n"
        + _array("hist", "u32", "MAX_SLOTS", m)
        + """
static __always_inline u32 log2_u32(u32 v)
{
	u32 shift, r;

	r = (v > 0xFFFF) << 4; v >>= r;
	shift = (v > 0xFF) << 3; v >>= shift; r |= shift;
	shift = (v > 0xF) << 2; v >>= shift; r |= shift;
	shift = (v > 0x3) << 1; v >>= shift; r |= shift;
	r |= (v >> 1);
	return r;
}

static __always_inline u32 log2_u64(u64 v)
{
	u32 hi = v >> 32;

	return hi ? log2_u32(hi) + 32 : log2_u32(v);
}

SEC("raw_tp/sys_enter")
int BPF_PROG(lat_sys_enter, struct pt_regs *regs, long id)
{
	u64 pid_tgid = bpf_get_current_pid_tgid();
	u32 tid = (u32)pid_tgid;
	u64 ts = bpf_ktime_get_ns();

	if (targ_pid && (pid_tgid >> 32) != targ_pid)
		return 0;
	bpf_map_update_elem(&start, &tid, &ts, BPF_ANY);
	return 0;
}

SEC("raw_tp/sys_exit")
int BPF_PROG(lat_sys_exit, struct pt_regs *regs, long ret)
{
	u32 tid = (u32)bpf_get_current_pid_tgid();
	u64 *tsp = bpf_map_lookup_elem(&start, &tid);
	u32 slot, *value;

	if (!tsp)
		return 0;
	slot = log2_u64((bpf_ktime_get_ns() - *tsp) / 1000);
	if (slot >= MAX_SLOTS)
		slot = MAX_SLOTS - 1;
	value = bpf_map_lookup_elem(&hist, &slot);
	if (value)
		__sync_fetch_and_add(value, 1);
	bpf_map_delete_elem(&start, &tid);
	return 0;
}
"""
    )


def bpf_signals(k: int, m: bool) -> tuple[str, str]:
    return "report signals as they are generated (tracepoint, ring buffer).", (
        "const volatile int targ_sig = 0;\n\n"
        + _ringbuf("events", m, k)
        + """
SEC("tp/signal/signal_generate")
int handle_signal(struct trace_event_raw_signal_generate *ctx)
{
	struct signal_event *e;

	if (targ_sig && ctx->sig != targ_sig)
		return 0;
	e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e)
		return 0;
	e->sender_pid = bpf_get_current_pid_tgid() >> 32;
	e->target_pid = ctx->pid;
	e->sig = ctx->sig;
	e->result = ctx->result;
	bpf_get_current_comm(&e->comm, sizeof(e->comm));
	bpf_ringbuf_submit(e, 0);
	return 0;
}
"""
    )


# -- loaders ----------------------------------------------------------------------

LOADER_HEAD = Template("""\
$spdx/* $name: $what */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include "$name.skel.h"
#include "common.h"
#include "util.h"

""")

RINGBUF_MAIN = Template("""
int main(int argc, char **argv)
{
	struct options opts = {};
	struct ring_buffer *rb = NULL;
	struct ${name}_bpf *skel;
	int err;

	if (parse_options(argc, argv, &opts, "$what"))
		return 2;
	setup_libbpf_log(opts.verbose);
	setup_signals();
	skel = ${name}_bpf__open();
	if (!skel) {
		fprintf(stderr, "$name: failed to open BPF object: %s\\n", strerror(errno));
		return 1;
	}
$set_rodata	err = ${name}_bpf__load(skel);
	if (!err)
		err = ${name}_bpf__attach(skel);
	if (err) {
		fprintf(stderr, "$name: failed to load or attach: %s (root needed)\\n", strerror(-err));
		goto cleanup;
	}
	rb = ring_buffer__new(bpf_map__fd(skel->maps.events), handle_event, NULL, NULL);
	if (!rb) {
		err = -errno;
		fprintf(stderr, "$name: failed to create ring buffer: %s\\n", strerror(errno));
		goto cleanup;
	}
	printf($header);
	while (!exiting && !time_is_up(&opts)) {
		err = ring_buffer__poll(rb, 100);
		if (err == -EINTR) {
			err = 0;
			break;
		}
		if (err < 0) {
			fprintf(stderr, "$name: error polling ring buffer: %d\\n", err);
			break;
		}
		err = 0;
	}
cleanup:
	ring_buffer__free(rb);
	${name}_bpf__destroy(skel);
	return err ? 1 : 0;
}
""")

MAP_MAIN = Template("""
int main(int argc, char **argv)
{
	struct options opts = {};
	struct ${name}_bpf *skel;
	int err;

	if (parse_options(argc, argv, &opts, "$what"))
		return 2;
	setup_libbpf_log(opts.verbose);
	setup_signals();
	skel = ${name}_bpf__open();
	if (!skel) {
		fprintf(stderr, "$name: failed to open BPF object: %s\\n", strerror(errno));
		return 1;
	}
	skel->rodata->targ_pid = (int)opts.target;
	err = ${name}_bpf__load(skel);
	if (!err)
		err = ${name}_bpf__attach(skel);
	if (err) {
		fprintf(stderr, "$name: failed to load or attach: %s (root needed)\\n", strerror(-err));
		goto cleanup;
	}
	while (!exiting && !time_is_up(&opts)) {
		sleep(opts.interval);
		report(skel);
	}
cleanup:
	${name}_bpf__destroy(skel);
	return err ? 1 : 0;
}
""")


def user_exec(name: str) -> str:
    return """\
static int handle_event(void *ctx, void *data, size_t size)
{
	const struct exec_event *e = data;
	char ts[16];

	(void)ctx;
	if (size < sizeof(*e))
		return 0;
	format_time(ts, sizeof(ts));
	printf("%-8s %-16s %-7d %-7d %s\\n", ts, e->comm, e->pid, e->ppid, e->filename);
	return 0;
}
""" + RINGBUF_MAIN.substitute(
        name=name,
        what="print every exec",
        header='"%-8s %-16s %-7s %-7s %s\\n", "TIME", "COMM", "PID", "PPID", "FILENAME"',
        set_rodata="\tskel->rodata->targ_ppid = (int)opts.target;\n",
    )


def user_exit(name: str) -> str:
    return """\
static int handle_event(void *ctx, void *data, size_t size)
{
	const struct exit_event *e = data;
	char ts[16];

	(void)ctx;
	if (size < sizeof(*e))
		return 0;
	format_time(ts, sizeof(ts));
	printf("%-8s %-16s %-7d %-7d %-5u %llu ms\\n", ts, e->comm, e->pid, e->ppid,
	       e->exit_code, e->duration_ns / 1000000);
	return 0;
}
""" + RINGBUF_MAIN.substitute(
        name=name,
        what="print every process exit",
        header='"%-8s %-16s %-7s %-7s %-5s %s\\n", "TIME", "COMM", "PID", "PPID", "CODE", "LIFETIME"',
        set_rodata="\tskel->rodata->ignore_threads = !opts.verbose;\n",
    )


def user_syscount(name: str) -> str:
    return f"""\
static void report(struct {name}_bpf *skel)
{{
	int fd = bpf_map__fd(skel->maps.counts);
	unsigned int key = 0, next;
	unsigned long long count;
	int first = 1;

	printf("%-8s %s\\n", "SYSCALL", "COUNT");
	while (bpf_map_get_next_key(fd, first ? NULL : &key, &next) == 0) {{
		if (bpf_map_lookup_elem(fd, &next, &count) == 0)
			printf("%-8u %llu\\n", next, count);
		key = next;
		first = 0;
	}}
}}
""" + MAP_MAIN.substitute(name=name, what="count system calls")


def user_opensnoop(name: str) -> str:
    return """\
static int handle_event(void *ctx, void *data, size_t size)
{
	const struct open_event *e = data;
	char ts[16];

	(void)ctx;
	if (size < sizeof(*e))
		return 0;
	format_time(ts, sizeof(ts));
	printf("%-8s %-16s %-7d %-4d %-6o %s\\n", ts, e->comm, e->pid, e->ret,
	       (unsigned int)e->flags, e->filename);
	return 0;
}
""" + RINGBUF_MAIN.substitute(
        name=name,
        what="trace openat() calls",
        header='"%-8s %-16s %-7s %-4s %-6s %s\\n", "TIME", "COMM", "PID", "FD", "FLAGS", "PATH"',
        set_rodata="\tskel->rodata->targ_pid = (int)opts.target;\n",
    )


def user_forks(name: str) -> str:
    return """\
static int handle_event(void *ctx, void *data, size_t size)
{
	const struct fork_event *e = data;
	char ts[16];

	(void)ctx;
	if (size < sizeof(*e))
		return 0;
	format_time(ts, sizeof(ts));
	printf("%-8s %-16s %-7d %-7d %llu\\n", ts, e->comm, e->parent_pid, e->child_pid,
	       e->parent_forks);
	return 0;
}
""" + RINGBUF_MAIN.substitute(
        name=name,
        what="print every fork",
        header='"%-8s %-16s %-7s %-7s %s\\n", "TIME", "COMM", "PARENT", "CHILD", "FORKS"',
        set_rodata="",
    )


def user_syslat(name: str) -> str:
    return f"""\
static void report(struct {name}_bpf *skel)
{{
	int fd = bpf_map__fd(skel->maps.hist);
	unsigned int vals[MAX_SLOTS] = {{0}}, slot;

	for (slot = 0; slot < MAX_SLOTS; slot++)
		bpf_map_lookup_elem(fd, &slot, &vals[slot]);
	print_log2_hist(vals, MAX_SLOTS, "usecs");
}}
""" + MAP_MAIN.substitute(name=name, what="histogram of system call latency")


def user_signals(name: str) -> str:
    return """\
static int handle_event(void *ctx, void *data, size_t size)
{
	const struct signal_event *e = data;
	char ts[16];

	(void)ctx;
	if (size < sizeof(*e))
		return 0;
	format_time(ts, sizeof(ts));
	printf("%-8s %-16s %-7d %-7d %-4d %d\\n", ts, e->comm, e->sender_pid, e->target_pid,
	       e->sig, e->result);
	return 0;
}
""" + RINGBUF_MAIN.substitute(
        name=name,
        what="print signals as they are sent",
        header='"%-8s %-16s %-7s %-7s %-4s %s\\n", "TIME", "COMM", "SENDER", "TARGET", "SIG", "RESULT"',
        set_rodata="\tskel->rodata->targ_sig = (int)opts.target;\n",
    )


KINDS = [
    (bpf_exec, user_exec),
    (bpf_exit, user_exit),
    (bpf_syscount, user_syscount),
    (bpf_opensnoop, user_opensnoop),
    (bpf_forks, user_forks),
    (bpf_syslat, user_syslat),
    (bpf_signals, user_signals),
]

# -- the XDP app: uapi headers, no vmlinux.h ----------------------------------------

XDP_H = """\
/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Packet classes counted by xdpfilter, shared by the program and its loader. */
#ifndef __BENCH_XDPFILTER_H
#define __BENCH_XDPFILTER_H

enum packet_class {
	CLASS_OTHER,
	CLASS_ARP,
	CLASS_IPV4_TCP,
	CLASS_IPV4_UDP,
	CLASS_IPV4_ICMP,
	CLASS_IPV4_OTHER,
	CLASS_IPV6,
	CLASS_DROPPED,
	CLASS_MAX,
};

struct class_stats {
	unsigned long long packets;
	unsigned long long bytes;
};

#endif /* __BENCH_XDPFILTER_H */
"""

XDP_BPF = (
    SPDX
    + """\
/* xdpfilter: count packets and bytes per class, drop UDP to one port (XDP). */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/in.h>
#include <linux/udp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "xdpfilter.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

const volatile __u16 blocked_udp_port = 0;

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, CLASS_MAX);
	__type(key, __u32);
	__type(value, struct class_stats);
} stats SEC(".maps");

static __always_inline void account(__u32 class, __u64 bytes)
{
	struct class_stats *s = bpf_map_lookup_elem(&stats, &class);

	if (s) {
		s->packets++;
		s->bytes += bytes;
	}
}

static __always_inline int classify_ipv4(struct iphdr *ip, void *data_end, __u32 *class)
{
	struct udphdr *udp;

	if ((void *)(ip + 1) > data_end || ip->ihl < 5)
		return XDP_PASS;
	switch (ip->protocol) {
	case IPPROTO_TCP:
		*class = CLASS_IPV4_TCP;
		return XDP_PASS;
	case IPPROTO_ICMP:
		*class = CLASS_IPV4_ICMP;
		return XDP_PASS;
	case IPPROTO_UDP:
		*class = CLASS_IPV4_UDP;
		udp = (void *)ip + ip->ihl * 4;
		if ((void *)(udp + 1) > data_end)
			return XDP_PASS;
		if (blocked_udp_port && udp->dest == bpf_htons(blocked_udp_port)) {
			*class = CLASS_DROPPED;
			return XDP_DROP;
		}
		return XDP_PASS;
	default:
		*class = CLASS_IPV4_OTHER;
		return XDP_PASS;
	}
}

SEC("xdp")
int xdp_filter(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	__u32 class = CLASS_OTHER;
	int action = XDP_PASS;

	if ((void *)(eth + 1) > data_end)
		goto out;
	switch (bpf_ntohs(eth->h_proto)) {
	case ETH_P_ARP:
		class = CLASS_ARP;
		break;
	case ETH_P_IPV6:
		if ((void *)((struct ipv6hdr *)(eth + 1) + 1) <= data_end)
			class = CLASS_IPV6;
		break;
	case ETH_P_IP:
		action = classify_ipv4((void *)(eth + 1), data_end, &class);
		break;
	}
out:
	account(class, data_end - data);
	return action;
}
"""
)

XDP_USER = (
    SPDX
    + """\
/* xdpfilter: attach the XDP program to an interface and print per-class counters. */
#include <errno.h>
#include <net/if.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include "xdpfilter.skel.h"
#include "xdpfilter.h"
#include "util.h"

static const char *class_names[CLASS_MAX] = {
	[CLASS_OTHER] = "other", [CLASS_ARP] = "arp", [CLASS_IPV4_TCP] = "ipv4/tcp",
	[CLASS_IPV4_UDP] = "ipv4/udp", [CLASS_IPV4_ICMP] = "ipv4/icmp",
	[CLASS_IPV4_OTHER] = "ipv4/other", [CLASS_IPV6] = "ipv6", [CLASS_DROPPED] = "dropped",
};

static void report(struct xdpfilter_bpf *skel, int ncpus)
{
	struct class_stats values[ncpus];
	int fd = bpf_map__fd(skel->maps.stats);
	unsigned int class;
	int cpu;

	printf("%-12s %12s %14s\\n", "CLASS", "PACKETS", "BYTES");
	for (class = 0; class < CLASS_MAX; class++) {
		unsigned long long packets = 0, bytes = 0;

		if (bpf_map_lookup_elem(fd, &class, values))
			continue;
		for (cpu = 0; cpu < ncpus; cpu++) {
			packets += values[cpu].packets;
			bytes += values[cpu].bytes;
		}
		printf("%-12s %12llu %14llu\\n", class_names[class], packets, bytes);
	}
}

int main(int argc, char **argv)
{
	struct options opts = {.ifname = "lo"};
	struct bpf_link *link = NULL;
	struct xdpfilter_bpf *skel;
	int ifindex, ncpus, err;

	if (parse_options(argc, argv, &opts, "count packets per class with XDP"))
		return 2;
	ifindex = if_nametoindex(opts.ifname);
	if (!ifindex) {
		fprintf(stderr, "xdpfilter: no interface %s\\n", opts.ifname);
		return 2;
	}
	ncpus = libbpf_num_possible_cpus();
	if (ncpus < 0)
		return 1;
	setup_libbpf_log(opts.verbose);
	setup_signals();
	skel = xdpfilter_bpf__open();
	if (!skel) {
		fprintf(stderr, "xdpfilter: failed to open BPF object: %s\\n", strerror(errno));
		return 1;
	}
	skel->rodata->blocked_udp_port = (unsigned short)opts.target;
	err = xdpfilter_bpf__load(skel);
	if (err) {
		fprintf(stderr, "xdpfilter: failed to load: %s (root needed)\\n", strerror(-err));
		goto cleanup;
	}
	link = bpf_program__attach_xdp(skel->progs.xdp_filter, ifindex);
	if (!link) {
		err = -errno;
		fprintf(stderr, "xdpfilter: failed to attach to %s: %s\\n", opts.ifname, strerror(errno));
		goto cleanup;
	}
	while (!exiting && !time_is_up(&opts)) {
		sleep(opts.interval);
		report(skel, ncpus);
	}
cleanup:
	bpf_link__destroy(link);
	xdpfilter_bpf__destroy(skel);
	return err ? 1 : 0;
}
"""
)


def app_names(tracing_apps: int) -> list[str]:
    """Names of every app, the tracing ones first."""
    return [f"app{k}" for k in range(1, tracing_apps + 1)] + [XDP_APP]


def generate(root: Path, tracing_apps: int = DEFAULT_TRACING_APPS) -> list[str]:
    """Write the workload into root (which must not hold one yet); return the app names."""
    if tracing_apps < 1:
        raise ValueError("the workload needs at least one tracing app")
    src = root / "src"
    src.mkdir(parents=True)
    (root / "bpfbuild.toml").write_text('[project]\nname = "bench"\n')
    (src / "common.h").write_text(COMMON_H)
    (src / "maps.h").write_text(MAPS_H)
    (src / "util.h").write_text(UTIL_H)
    (src / "util.c").write_text(UTIL_C)
    for k in range(1, tracing_apps + 1):
        name = f"app{k}"
        bpf_kind, user_kind = KINDS[(k - 1) % len(KINDS)]
        with_maps_h = k % 2 == 0
        what, body = bpf_kind(k, with_maps_h)
        prelude = BPF_PRELUDE.substitute(
            spdx=SPDX,
            name=name,
            what=what,
            maps_include='#include "maps.h"\n' if with_maps_h else "",
        )
        (src / f"{name}.bpf.c").write_text(prelude + body)
        (src / f"{name}.c").write_text(
            LOADER_HEAD.substitute(spdx=SPDX, name=name, what=f"loader for {name}.bpf.c: {what}")
            + user_kind(name)
        )
    (src / f"{XDP_APP}.h").write_text(XDP_H)
    (src / f"{XDP_APP}.bpf.c").write_text(XDP_BPF)
    (src / f"{XDP_APP}.c").write_text(XDP_USER)
    return app_names(tracing_apps)


_QUOTED_INCLUDE = re.compile(r'^\s*#\s*include\s*"([^"]+)"', re.M)


def dependents(root: Path, header: str) -> set[str]:
    """The sources under root/src (as `src/NAME.c`) that include header, directly or
    through another header of src/: what a correct build recompiles after editing it."""
    src = root / "src"
    target = (root / header).resolve()

    def includes(path: Path) -> set[Path]:
        found = set()
        for name in _QUOTED_INCLUDE.findall(path.read_text(errors="replace")):
            candidate = (path.parent / name).resolve()
            if candidate.is_file():
                found.add(candidate)
        return found

    def reaches(path: Path, seen: set[Path]) -> bool:
        for included in includes(path):
            if included == target:
                return True
            if included not in seen:
                seen.add(included)
                if reaches(included, seen):
                    return True
        return False

    return {f"src/{p.name}" for p in sorted(src.glob("*.c")) if reaches(p, set())}
