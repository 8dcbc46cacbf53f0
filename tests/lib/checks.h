/*
 * checks.h - assertions of the test suites, in the test and in children.
 *
 * Owns how a verdict is reached: RC_EQ names both statuses in words; a
 * child process never calls ck_assert (its failure would be lost in the
 * child), it prints what failed and exits CHILD_FAIL, and the test's
 * CHILD_OK (or a suite's own reaping) turns that into the test's failure.
 */
#ifndef SHMQ_TEST_CHECKS_H
#define SHMQ_TEST_CHECKS_H

#include <stdio.h>
#include <unistd.h>

#include <check.h>

#include "clock.h"
#include "harness.h"
#include "shmq.h"

/* The exit status of a child whose check failed. */
#define CHILD_FAIL 70

#define RC_EQ(expr, want)                                                    \
	do {                                                                 \
		int rc_ = (expr), want_ = (want);                            \
		ck_assert_msg(rc_ == want_, "%s = %d (%s), want %d (%s)",    \
			      #expr, rc_, shmq_strerror(rc_), want_,         \
			      shmq_strerror(want_));                         \
	} while (0)

/* In a child process: report and exit instead of asserting. */
#define CHILD_CHECK(cond)                                                    \
	do {                                                                 \
		if (!(cond)) {                                               \
			fprintf(stderr, "%s:%d: child %ld: failed: %s\n",    \
				__FILE__, __LINE__, (long)getpid(), #cond);  \
			_exit(CHILD_FAIL);                                   \
		}                                                            \
	} while (0)

#define CHILD_EQ(a, b)                                                       \
	do {                                                                 \
		long long a_ = (long long)(a), b_ = (long long)(b);          \
		if (a_ != b_) {                                              \
			fprintf(stderr, "%s:%d: child %ld: %s == %lld, "     \
				"expected %s == %lld\n", __FILE__, __LINE__, \
				(long)getpid(), #a, a_, #b, b_);             \
			_exit(CHILD_FAIL);                                   \
		}                                                            \
	} while (0)

#define CHILD_RC(expr, want)                                                 \
	do {                                                                 \
		int rc_ = (expr), want_ = (want);                            \
		if (rc_ != want_) {                                          \
			fprintf(stderr,                                      \
				"%s:%d: child %ld: %s = %d (%s), want %d "   \
				"(%s); detail: %s\n",                        \
				__FILE__, __LINE__, (long)getpid(), #expr,   \
				rc_, shmq_strerror(rc_), want_,              \
				shmq_strerror(want_), shmq_error_detail());  \
			_exit(CHILD_FAIL);                                   \
		}                                                            \
	} while (0)

/* This thread's shmq_error_detail() is not empty and mentions `word`. */
void expect_detail(const char *word);

/* A wait status (or harness_wait's -1) in words. */
const char *describe(int status);
/* Whether the process exited by itself with status `code`. */
int exited_with(int status, int code);

/* A leased message (struct shmq_msg) holds exactly `want` and is its
 * `deliveries`th delivery; `line` names the caller in the failure. */
void check_leased(const struct shmq_msg *m, const char *want,
		  uint32_t deliveries, int line);

/* Reaps a child (killing it after 20 s) and fails unless it exited 0. */
#define CHILD_OK(pid)                                                        \
	do {                                                                 \
		pid_t p_ = (pid);                                            \
		int st_ = harness_wait(p_, 20000);                           \
		ck_assert_msg(exited_with(st_, 0), "child %ld: %s",          \
			      (long)p_, describe(st_));                      \
	} while (0)

/* Polls, with a bound of WAIT_MS, for a state another process reaches
 * without a handshake (asleep in put, say); fails the test if it never
 * does.  Only the wait is timed, never the verdict. */
#define EVENTUALLY(cond)                                                     \
	ck_assert_msg(WAIT_UNTIL(cond, WAIT_MS), "timed out waiting for: %s", \
		      #cond)

#endif /* SHMQ_TEST_CHECKS_H */
