/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Shared by both BPF programs and both loaders. */
#ifndef __NETWATCH_H
#define __NETWATCH_H

/* Packet classes counted by pktcount. */
enum pkt_class {
	PKT_IPV4_TCP,
	PKT_IPV4_UDP,
	PKT_IPV4_OTHER,
	PKT_IPV6,
	PKT_OTHER,
	PKT_CLASS_MAX,
};

#define MAX_SYSCALLS 512

#endif /* __NETWATCH_H */
