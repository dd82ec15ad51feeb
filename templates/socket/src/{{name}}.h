/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Shared by the BPF program and its loader: the layout of the counters. */
#ifndef __{{name}}_H
#define __{{name}}_H

/* The `protocols` map holds one record per IP protocol number (IPPROTO_*). */
#define MAX_IP_PROTOCOLS 256

struct datarec {
	unsigned long long packets;
	unsigned long long bytes;
};

#endif /* __{{name}}_H */
