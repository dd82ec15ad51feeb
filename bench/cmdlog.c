// SPDX-License-Identifier: MIT
/*
 * The benchmark's command logger: stands in for clang, bpftool, cc, pkg-config or
 * strip (through CLANG, BPFTOOL, CC, PKG_CONFIG, STRIP), runs the real tool, and
 * appends one line to the log named by $BENCH_CMDLOG:
 *
 *   START_NS END_NS CHILD_CPU_US SELF_CPU_US NAME ARGS...
 *
 * START..END is the wall time from just before fork to just after the tool exited;
 * CHILD_CPU_US is the user + system time of the tool's whole process tree (wait4);
 * SELF_CPU_US is this logger's own. A C program, not a shell script: a bash wrapper
 * costs a few ms of start-up per command, which would be counted as the build
 * tool's own time. The tool's exit status (or signal) is passed on.
 *
 * Built by bench/run.py with -DREAL="/usr/bin/clang" -DNAME="clang".
 */
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static long long now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static long long cpu_us(const struct rusage *ru)
{
	return (long long)(ru->ru_utime.tv_sec + ru->ru_stime.tv_sec) * 1000000LL +
	       ru->ru_utime.tv_usec + ru->ru_stime.tv_usec;
}

int main(int argc, char **argv)
{
	const char *log = getenv("BENCH_CMDLOG");
	struct rusage child, self;
	long long start, end;
	size_t size = 256, used;
	char *line;
	int status, fd, i;
	pid_t pid;

	start = now_ns();
	pid = fork();
	if (pid < 0) {
		perror("cmdlog: fork");
		return 127;
	}
	if (pid == 0) {
		argv[0] = REAL;
		execv(REAL, argv);
		perror("cmdlog: exec " REAL);
		_exit(127);
	}
	if (wait4(pid, &status, 0, &child) < 0) {
		perror("cmdlog: wait4");
		return 127;
	}
	end = now_ns();
	getrusage(RUSAGE_SELF, &self);

	for (i = 1; i < argc; i++)
		size += strlen(argv[i]) + 1;
	line = log ? malloc(size) : NULL;
	if (line) {
		used = snprintf(line, size, "%lld %lld %lld %lld %s", start, end,
				cpu_us(&child), cpu_us(&self), NAME);
		for (i = 1; i < argc; i++)
			used += snprintf(line + used, size - used, " %s", argv[i]);
		used += snprintf(line + used, size - used, "\n");
		/* one write() of an O_APPEND file: lines of parallel jobs do not mix */
		fd = open(log, O_WRONLY | O_APPEND | O_CREAT, 0644);
		if (fd < 0 || write(fd, line, used) != (ssize_t)used)
			perror("cmdlog: write the log");
		if (fd >= 0)
			close(fd);
		free(line);
	}
	if (WIFSIGNALED(status)) {
		signal(WTERMSIG(status), SIG_DFL);
		raise(WTERMSIG(status));
	}
	return WIFEXITED(status) ? WEXITSTATUS(status) : 127;
}
