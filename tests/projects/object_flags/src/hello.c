// Prints the greeting; the BPF object is opened (not loaded) to check the skeleton.
#include <stdio.h>
#include "hello.skel.h"
#include "util.h"

int main(void)
{
	struct hello_bpf *skel = hello_bpf__open();

	if (!skel)
		return 1;
	printf("%s\n", greeting());
	hello_bpf__destroy(skel);
	return 0;
}
