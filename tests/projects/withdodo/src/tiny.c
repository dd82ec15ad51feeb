/* Opens the skeleton without loading it: runs without root. */
#include <stdio.h>
#include "tiny.skel.h"

int main(void)
{
	struct tiny_bpf *skel = tiny_bpf__open();

	if (!skel)
		return 1;
	printf("tiny: opened\n");
	tiny_bpf__destroy(skel);
	return 0;
}
