/*
 * icount: counts the user-space instructions a launcher executes from its own exec to the
 * exec of the program it starts, by single-stepping it with ptrace.
 *
 *   icount [-n RUNS] [-p FILE] LAUNCHER ARGS...   e.g. icount -n 5 moat run --ro /etc -- /bin/true
 *
 * With -p FILE, the address of every instruction stepped (one run) is appended to FILE, one
 * hexadecimal number a line, for a profile by symbol (`nm -n` on an unstripped build).
 *
 * Prints one count per run and the median. The count is the number of PTRACE_SINGLESTEP
 * stops between the launcher's exec (PTRACE_EVENT_EXEC of the first execve) and the next
 * exec: each stop is one user-space instruction retired (a system call counts as one), so
 * the figure does not depend on the machine's load or clock, unlike wall time, and needs
 * neither a PMU (this VM has none) nor valgrind (which does not know Landlock's system
 * calls). Kernel work (the system calls themselves) is not counted.
 *
 * Built by bench/peers/build.sh. Exits 1 on a usage or tracing error.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <unistd.h>

static FILE *profile;

static long count_once(char **argv)
{
	int status, execs = 0;
	long steps = 0;
	pid_t pid = fork();

	if (pid < 0)
		return -1;
	if (pid == 0) {
		ptrace(PTRACE_TRACEME, 0, 0, 0);
		raise(SIGSTOP);
		execv(argv[0], argv);
		_exit(127);
	}
	if (waitpid(pid, &status, 0) != pid || !WIFSTOPPED(status))
		return -1;
	ptrace(PTRACE_SETOPTIONS, pid, 0, PTRACE_O_TRACEEXEC | PTRACE_O_EXITKILL);
	/* Run freely up to the launcher's own exec, then step until the next one. */
	ptrace(PTRACE_CONT, pid, 0, 0);
	for (;;) {
		if (waitpid(pid, &status, __WALL) != pid)
			return -1;
		if (WIFEXITED(status) || WIFSIGNALED(status))
			return execs == 1 ? -2 : -1;
		if (status >> 8 == (SIGTRAP | (PTRACE_EVENT_EXEC << 8))) {
			if (++execs == 2)
				break;
			ptrace(PTRACE_SINGLESTEP, pid, 0, 0);
			continue;
		}
		if (execs == 0) {
			/* A signal before the launcher started: pass it on. */
			ptrace(PTRACE_CONT, pid, 0, WSTOPSIG(status) == SIGTRAP ? 0 : WSTOPSIG(status));
			continue;
		}
		if (WSTOPSIG(status) == SIGTRAP) {
			steps++;
			if (profile) {
				struct user_regs_struct regs;
				if (ptrace(PTRACE_GETREGS, pid, 0, &regs) == 0)
					fprintf(profile, "%llx\n", regs.rip);
			}
		}
		ptrace(PTRACE_SINGLESTEP, pid, 0,
		       WSTOPSIG(status) == SIGTRAP ? 0 : WSTOPSIG(status));
	}
	kill(pid, SIGKILL);
	waitpid(pid, &status, 0);
	return steps;
}

static int cmp(const void *a, const void *b)
{
	long x = *(const long *)a, y = *(const long *)b;
	return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
	int runs = 3, i = 1;
	long *counts;

	for (;;) {
		if (i + 1 < argc && strcmp(argv[i], "-n") == 0) {
			runs = atoi(argv[i + 1]);
			i += 2;
		} else if (i + 1 < argc && strcmp(argv[i], "-p") == 0) {
			profile = fopen(argv[i + 1], "w");
			if (!profile) {
				perror(argv[i + 1]);
				return 1;
			}
			i += 2;
		} else {
			break;
		}
	}
	if (i >= argc || runs < 1) {
		fprintf(stderr, "usage: icount [-n RUNS] [-p FILE] LAUNCHER ARGS...\n");
		return 1;
	}
	counts = calloc(runs, sizeof(*counts));
	for (int r = 0; r < runs; r++) {
		counts[r] = count_once(argv + i);
		if (counts[r] < 0) {
			fprintf(stderr, "icount: %s\n",
				counts[r] == -2 ? "the launcher exited without exec'ing a program"
						: "tracing failed");
			return 1;
		}
		printf("%ld\n", counts[r]);
		if (profile) {
			fclose(profile);
			profile = NULL;
		}
	}
	qsort(counts, runs, sizeof(*counts), cmp);
	printf("median %ld\n", counts[runs / 2]);
	return 0;
}
