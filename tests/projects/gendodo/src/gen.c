// SPDX-License-Identifier: GPL-2.0
#include <stdio.h>
#include "events.h"
#include "gen.skel.h"

int main(void)
{
	struct gen_bpf *skel = gen_bpf__open();

	if (!skel)
		return 1;
	printf("%d %d\n", EVENT_GETPID, skel->data->capacity);
	gen_bpf__destroy(skel);
	return 0;
}
