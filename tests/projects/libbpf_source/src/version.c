// Prints the version of the libbpf linked in, then loads its BPF object.
#include <stdio.h>
#include <bpf/libbpf.h>
#include "version.skel.h"

int main(void)
{
	struct version_bpf *skel;

	printf("libbpf %u.%u\n", libbpf_major_version(), libbpf_minor_version());
	fflush(stdout);
	skel = version_bpf__open_and_load();
	if (!skel) {
		fprintf(stderr, "version: cannot load the BPF object\n");
		return 1;
	}
	version_bpf__destroy(skel);
	return 0;
}
