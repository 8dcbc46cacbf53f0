/*
 * checks.c - wait statuses in words, and the library's detail checked
 * (see checks.h).
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>

#include "checks.h"

void expect_detail(const char *word)
{
	const char *detail = shmq_error_detail();

	ck_assert_msg(detail[0] != '\0', "no detail for the failure");
	ck_assert_msg(strstr(detail, word) != NULL,
		      "detail '%s' does not mention '%s'", detail, word);
}

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

void check_leased(const struct shmq_msg *m, const char *want,
		  uint32_t deliveries, int line)
{
	ck_assert_msg(m->len == strlen(want) &&
			      memcmp(m->data, want, m->len) == 0,
		      "line %d: leased \"%.*s\", expected \"%s\"", line,
		      (int)m->len, (const char *)m->data, want);
	ck_assert_msg(m->deliveries == deliveries,
		      "line %d: \"%s\" delivered %u times, expected %u", line,
		      want, m->deliveries, deliveries);
}
