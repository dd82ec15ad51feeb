// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Shared user-space code linked into every netwatch app. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <bpf/libbpf.h>
#include "util.h"

volatile sig_atomic_t exiting;
static int log_verbose;

static int print_libbpf_log(enum libbpf_print_level level, const char *format, va_list args)
{
	if (level == LIBBPF_DEBUG && !log_verbose)
		return 0;
	return vfprintf(stderr, format, args);
}

void setup_libbpf_log(int verbose)
{
	log_verbose = verbose;
	libbpf_set_print(print_libbpf_log);
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

long parse_positive(const char *prog, const char *what, const char *text)
{
	char *end;
	long value = strtol(text, &end, 10);

	if (*end || value <= 0) {
		fprintf(stderr, "%s: invalid %s '%s'\n", prog, what, text);
		exit(2);
	}
	return value;
}

const char *load_hint(int err)
{
	if (err == ENOSYS)
		return " (this system has no bpf() syscall: a kernel without CONFIG_BPF_SYSCALL, "
		       "or an emulator such as qemu-user)";
	if (err == EPERM)
		return " (run as root, or with CAP_BPF and CAP_PERFMON)";
	return " (rerun with -v for libbpf's log)";
}
