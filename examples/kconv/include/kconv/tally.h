/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* The tally's key, shared by the BPF library and the loaders. */
#ifndef __KCONV_TALLY_H
#define __KCONV_TALLY_H

#define TALLY_COMM_LEN 16
#define TALLY_MAX_ENTRIES 1024

struct tally_key {
	char comm[TALLY_COMM_LEN]; /* the program name of the task counted */
};

#endif /* __KCONV_TALLY_H */
