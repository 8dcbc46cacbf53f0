/*
 * users.h - test processes that run as another user.
 *
 * Owns how a suite (running as root) lets a second uid reach its daemon
 * and turns a child into that uid.  Tests of what other users may do
 * (permissions, quotas) use these; nothing here decides a verdict.
 */
#ifndef SHMQ_TEST_USERS_H
#define SHMQ_TEST_USERS_H

#include <stddef.h>
#include <sys/types.h>

#include "harness.h"

/* The unprivileged uid (and gid) the suites use as "another user". */
#define NOBODY ((uid_t)65534)

/* In the test: lets every uid reach daemon `d`, whose directories are
 * 0700 and socket 0600 since a per-user daemon serves only its user. */
void share_socket(const struct daemon *d);

/* In a child: becomes `uid`/`gid` with the given supplementary groups.
 * Changing credentials clears the parent-death signal, so it is armed
 * again: the child must still die with the test.  The library connects
 * lazily, so the daemon sees these credentials.  Exits CHILD_FAIL if it
 * cannot. */
void become_user(uid_t uid, gid_t gid, const gid_t *groups, size_t ngroups);
/* become_user(NOBODY, NOBODY, groups, ngroups). */
void become_nobody(const gid_t *groups, size_t ngroups);

#endif /* SHMQ_TEST_USERS_H */
