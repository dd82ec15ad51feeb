// Prints the greeting and a square root: [app.loud] libs = ["-lm"] links libm.
#include <math.h>
#include <stdio.h>
#include "hello.skel.h"
#include "util.h"

int main(int argc, char **argv)
{
	struct hello_bpf *skel = hello_bpf__open();
	volatile double sixteen = 16.0 + argc - 1;

	if (!skel)
		return 1;
	printf("%s %.0f\n", greeting(), sqrt(sixteen));
	hello_bpf__destroy(skel);
	return 0;
}
