/*
 * harness.h - the real shmqd, started in a temporary directory for tests.
 *
 * Integration tests never mock the daemon: they start the built shmqd on a
 * private socket, talk to it as clients do, and kill it as life does.
 * Everything a test binary starts is tied to it (PR_SET_PDEATHSIG) and
 * everything it leaves (daemons, segments, directories) is swept by
 * harness_sweep() at the end of main, even after a test failed or timed
 * out in Check's forked child.
 *
 * Nothing here asserts: children use these functions too.
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
/* Calls fn(path, arg) for every /dev/shm object of this daemon (queue
 * segments and their ".meta" records alike); returns how many there
 * were. */
int daemon_each_segment(const struct daemon *d,
			void (*fn)(const char *path, void *arg), void *arg);

/* The binary's scratch directory (removed by harness_sweep), for files a
 * test makes. */
const char *harness_scratch(void);
/* fork() whose child dies with the test (PR_SET_PDEATHSIG). */
pid_t harness_fork(void);
/* Waits for `pid` at most `ms` milliseconds; SIGKILLs it after that.
 * Returns the wait status, or -1 if it had to be killed. */
int harness_wait(pid_t pid, int ms);
/* The path of a built program, e.g. "daemon/shmqd" or "tools/qctl". */
const char *harness_path(const char *rel, char *buf, size_t size);
/* Adds a daemon the harness did not start itself (autostarted, socket
 * activated) to the ones harness_sweep() kills if a test dies. */
void harness_remember_pid(pid_t pid);
/* Whether `pid` runs a shmqd (pids are reused: look before killing). */
int harness_is_shmqd(pid_t pid);

/* sd_notify as systemd does it: a datagram socket bound at `path`
 * (NOTIFY_SOCKET for the daemon), or -1 with errno set; and whether
 * READY=1 arrives on it within `ms` (0: whether it is there already). */
int notify_socket(const char *path);
int notify_ready(int fd, int ms);

/* Whether the file at `path` (a daemon's log, say) contains `needle` in
 * its first 64 KiB. */
int file_contains(const char *path, const char *needle);

#endif /* SHMQ_TEST_HARNESS_H */
