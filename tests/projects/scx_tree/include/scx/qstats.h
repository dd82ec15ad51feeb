/* SPDX-License-Identifier: GPL-2.0 */
/* The counters of the qstats library, shared by its BPF side and the loaders. */
#ifndef __SCX_QSTATS_H
#define __SCX_QSTATS_H

enum qstat_counter {
	QSTAT_ENQUEUE,
	QSTAT_DISPATCH,
	QSTAT_NR,
};

#endif
