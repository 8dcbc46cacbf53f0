/*
 * users.c - test processes that run as another user (see users.h).
 */
#define _GNU_SOURCE
#include <grp.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "checks.h"
#include "users.h"

void share_socket(const struct daemon *d)
{
	char scratch[sizeof(d->dir)];
	char *slash;

	snprintf(scratch, sizeof(scratch), "%s", d->dir);
	slash = strrchr(scratch, '/');
	ck_assert_ptr_nonnull(slash);
	*slash = '\0';
	ck_assert_int_eq(chmod(scratch, 0711), 0);
	ck_assert_int_eq(chmod(d->dir, 0711), 0);
	ck_assert_int_eq(chmod(d->sock, 0666), 0);
}

void become_user(uid_t uid, gid_t gid, const gid_t *groups, size_t ngroups)
{
	pid_t parent = getppid();

	CHILD_CHECK(setgroups(ngroups, groups) == 0);
	CHILD_CHECK(setresgid(gid, gid, gid) == 0);
	CHILD_CHECK(setresuid(uid, uid, uid) == 0);
	CHILD_CHECK(prctl(PR_SET_PDEATHSIG, SIGKILL) == 0);
	CHILD_CHECK(getppid() == parent);
}

void become_nobody(const gid_t *groups, size_t ngroups)
{
	become_user(NOBODY, NOBODY, groups, ngroups);
}
