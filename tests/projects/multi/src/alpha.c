/* Loader for alpha; `alpha --version` runs without root. */
#include <stdio.h>
#include <string.h>
#include <bpf/libbpf.h>
#include <version.h>
#include "alpha.skel.h"
#include "util.h"

int main(int argc, char **argv)
{
	struct alpha_bpf *skel;

	if (argc > 1 && strcmp(argv[1], "--version") == 0) {
		printf("alpha %s, %s\n", MULTI_VERSION, util_greeting());
		return 0;
	}
	skel = alpha_bpf__open_and_load();
	if (!skel) {
		fprintf(stderr, "alpha: cannot load\n");
		return 1;
	}
	printf("alpha: loaded\n");
	alpha_bpf__destroy(skel);
	return 0;
}
