/*
 * harness.h - the real shmqd, started in a temporary directory for tests.
 *
 * Integration tests never mock the daemon: they start the built shmqd on a
 * private socket, talk to it as clients do, and kill it as life does.
 * Everything a test binary starts is tied to it (PR_SET_PDEATHSIG) and
 * everything it leaves (daemons, segments, directories) is swept by
 * harness_sweep() at the end of main, even after a test failed or timed
 * out in Check's forked child.
 */
#ifndef SHMQ_TEST_HARNESS_H
#define SHMQ_TEST_HARNESS_H

#include <stddef.h>
#include <sys/types.h>

struct daemon {
	pid_t pid;
	char dir[88];           /* temporary directory of this daemon */
	char sock[108];
	char log[300];
	char prefix[40];        /* of its /dev/shm objects */
	char *const *args;      /* extra arguments, kept for restarts */
};

/* Call once at the start of main: creates the binary's scratch directory. */
void harness_init(const char *name);
/* Call at the end of main: kills leftover processes, removes segments and
 * directories.  Safe to call twice. */
void harness_sweep(void);

/* Starts shmqd --foreground on a fresh socket, waits for READY=1 (at most
 * 10 s) and points SHMQ_SOCKET at it (with SHMQ_NO_AUTOSTART=1).  `args`
 * is a NULL-terminated list of extra options, or NULL.  0 or -1. */
int daemon_start(struct daemon *d, char *const *args);
/* Starts it again on the same socket (after a kill), same arguments. */
int daemon_restart(struct daemon *d);
/* Sends `sig` and reaps it (SIGKILL after 10 s). Returns the wait status. */
int daemon_stop(struct daemon *d, int sig);
/* Stops the daemon if running (SIGTERM) and removes its segments and
 * directory.  Returns 0 if it exited cleanly with status 0: under
 * LeakSanitizer a leak is a non-zero exit, so tests assert on this. */
int daemon_cleanup(struct daemon *d);
/* Number of /dev/shm objects belonging to this daemon. */
int daemon_segments(const struct daemon *d);

/* fork() whose child dies with the test (PR_SET_PDEATHSIG). */
pid_t harness_fork(void);
/* Waits for `pid` at most `ms` milliseconds; SIGKILLs it after that.
 * Returns the wait status, or -1 if it had to be killed. */
int harness_wait(pid_t pid, int ms);
/* The path of a built program, e.g. "daemon/shmqd" or "tools/qctl". */
const char *harness_path(const char *rel, char *buf, size_t size);

#endif /* SHMQ_TEST_HARNESS_H */
