/*
 * foreign.h - daemons the test did not start as its own children.
 *
 * Owns finding, recording and stopping shmqd processes that autostart or
 * socket activation started: they are not our children, so they are
 * found through /proc, recorded for harness_sweep(), and stopped through
 * a pidfd.  Also lends the harness's directory and socket path to tests
 * that start daemons in those other ways.
 */
#ifndef SHMQ_TEST_FOREIGN_H
#define SHMQ_TEST_FOREIGN_H

#include <sys/types.h>

#include "harness.h"

/* Counts the processes that hold `sock`.lock open (the daemon's lock);
 * *holder is one of them. */
int lock_holders(const char *sock, pid_t *holder);
/* Every shmqd running with `--socket sock`, whether or not it got the
 * lock; at most `max` of them go to `pids`.  Returns how many. */
int daemons_on(const char *sock, pid_t *pids, int max);
/* Records the daemons on d's socket for the sweep, then waits until one
 * is left and returns it: racers that lost the lock exit by themselves,
 * which with sanitizers (a leak check at exit) takes a moment.  Call it
 * before asserting anything about them. */
pid_t sole_daemon(const struct daemon *d);
/* Stops a process that is not our child: SIGTERM, and waits for its exit
 * through a pidfd (SIGKILL after 10 s).  1 if it exited on SIGTERM. */
int stop_foreign(pid_t pid);

/* Starts a daemon only to have the harness own a directory and a socket
 * path, then stops it cleanly so that the path is free; the harness
 * still cleans up after whatever the test starts there. */
void borrow_dir(struct daemon *d);

#endif /* SHMQ_TEST_FOREIGN_H */
