/* Loader for gamma: loads the socket filter, prints "gamma: loaded" and exits. */
#include <stdio.h>
#include <bpf/libbpf.h>
#include "gamma.skel.h"
#include "util.h"

int main(void)
{
	struct gamma_bpf *skel = gamma_bpf__open_and_load();

	if (!skel) {
		fprintf(stderr, "gamma: cannot load\n");
		return 1;
	}
	printf("gamma: loaded, %s\n", util_greeting());
	gamma_bpf__destroy(skel);
	return 0;
}
