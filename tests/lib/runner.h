/*
 * runner.h - the main() every Check suite of shmq shares.
 *
 * Owns how a suite runs: a scratch directory for the harness, SIGPIPE
 * ignored (a child that died must fail a test, not kill the runner), the
 * seed of the fuzz loops, each test in its own forked process (its
 * environment, such as SHMQ_SOCKET, and the library's one connection per
 * process start fresh; Check kills its process group afterwards), and
 * the sweep of whatever a dead test left behind.
 */
#ifndef SHMQ_TEST_RUNNER_H
#define SHMQ_TEST_RUNNER_H

#include <check.h>

/* Runs `s`; `name` names the scratch directory.  Returns main's status. */
int run_suite(Suite *s, const char *name);

#endif /* SHMQ_TEST_RUNNER_H */
