/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Helpers every netwatch loader uses. */
#ifndef __NETWATCH_UTIL_H
#define __NETWATCH_UTIL_H

#include <signal.h>

extern volatile sig_atomic_t exiting;

/* libbpf logs to stderr; debug messages only when verbose. */
void setup_libbpf_log(int verbose);
/* SIGINT/SIGTERM set `exiting`. */
void setup_signals(void);
/* Parse a positive integer option or exit with a message naming it. */
long parse_positive(const char *prog, const char *what, const char *text);

/* Why loading failed, for a message: errno (positive) -> a hint in parentheses. */
const char *load_hint(int err);

#endif /* __NETWATCH_UTIL_H */
