/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* What both loaders share: running a command while attached, printing the tally. */
#ifndef __KCONV_TALLY_PRINT_H
#define __KCONV_TALLY_PRINT_H

#include <stdio.h>

/* Parse the common command line: [-d SECONDS] [--] [COMMAND [ARG]...]. Returns the
 * index of COMMAND in argv (argc when none), -1 after --help, -2 on a usage error. */
int parse_args(int argc, char **argv, const char *what, double *seconds);

/* Run argv (until it ends) or sleep seconds; the command's exit status, or 0. */
int run_or_wait(char **argv, double seconds);

/* Print the tally map (struct tally_key -> __u64), busiest first, at most limit rows. */
int print_tally(FILE *out, int map_fd, int limit);

#endif /* __KCONV_TALLY_PRINT_H */
