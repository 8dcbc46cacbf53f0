/*
 * privd.h - a private shmqd for the tools that need one (shmq-bench,
 * shmq-torture): started in the foreground as the tool's child on a socket
 * of the tool's own, and ready once it answers HELLO.
 *
 * Owns how a tool starts its daemon and tells that it serves: the HELLO
 * is packed and checked by proto/wire.c, as the library's is.  It never
 * stops the daemon (each tool has its own way: a signal, a kill -9 for
 * the torture) and never prints: callers word their errors.  The test
 * suites have their own, fuller harness (tests/lib/harness.c).
 */
#ifndef SHMQ_PRIVD_H
#define SHMQ_PRIVD_H

#include <signal.h>
#include <stdint.h>
#include <sys/types.h>

/* A connection to the daemon on `path`, or -1 with errno. */
int privd_connect(const char *path);

/* Says HELLO on `fd` (request number `seq`), as a client's first packet.
 * The daemon's pid, or -1 (errno: ETIMEDOUT after 5 s, EPROTO for a reply
 * that is not a sound HELLO's, or what send(2) or recv(2) said). */
int privd_hello(int fd, uint32_t seq);

/* Forks and execs `bin` (a path, or a name looked up in PATH) as
 * `shmqd --foreground --socket sock --log log`.  In the child, `prep` (if
 * not NULL) runs first: signals, process group, death with the tool.
 * The pid, or -1 with errno from fork(2). */
pid_t privd_start(const char *bin, const char *sock, const char *log,
		  void (*prep)(void));

enum privd_ready {
	PRIVD_READY,            /* it answers HELLO */
	PRIVD_EXITED,           /* it exited (reaped; status in *status) */
	PRIVD_OTHER,            /* another process answers (pid in *other) */
	PRIVD_TIMEOUT,          /* nothing within the time given */
	PRIVD_STOPPED,          /* *stop became non-zero */
};

/* Waits at most `ms` for daemon `pid` to answer on `sock`, looking every
 * 5 ms; `stop` (or NULL) is a flag a signal handler sets. */
enum privd_ready privd_wait_ready(pid_t pid, const char *sock, int ms,
				  volatile sig_atomic_t *stop, int *status,
				  pid_t *other);

#endif /* SHMQ_PRIVD_H */
