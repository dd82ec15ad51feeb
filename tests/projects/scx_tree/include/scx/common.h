/* SPDX-License-Identifier: GPL-2.0 */
/* What every loader includes, as the kernel's tools/sched_ext/include/scx/common.h. */
#ifndef __SCX_COMMON_H
#define __SCX_COMMON_H

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#define SCX_BUG(__fmt, ...)						\
	do {								\
		fprintf(stderr, "[SCX_BUG] " __fmt "\n", ##__VA_ARGS__);	\
		exit(1);						\
	} while (0)

#endif /* __SCX_COMMON_H */
