/*
 * checks.c - wait statuses in words (see checks.h).
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <sys/wait.h>

#include "checks.h"

const char *describe(int status)
{
	static char buf[64];

	if (status == -1)
		snprintf(buf, sizeof(buf), "did not finish in time");
	else if (WIFEXITED(status))
		snprintf(buf, sizeof(buf), "exit status %d",
			 WEXITSTATUS(status));
	else if (WIFSIGNALED(status))
		snprintf(buf, sizeof(buf), "killed by signal %d",
			 WTERMSIG(status));
	else
		snprintf(buf, sizeof(buf), "wait status %#x", status);
	return buf;
}

int exited_with(int status, int code)
{
	return status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == code;
}
