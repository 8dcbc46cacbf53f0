/*
 * control.h - the library's connection to shmqd.
 *
 * One connection per process, opened on first use (starting a per-user
 * daemon when none answers and SHMQ_NO_AUTOSTART is unset), shared by all
 * threads and re-opened after fork() or after the daemon restarted.  It is
 * used only to create, open, detach, close, delete, stat and list queues
 * and to list deadlocks; put and get use it only to tell shmqd, without
 * waiting, that they have been blocked for a while (deadlock detection).
 */
#ifndef SHMQ_CONTROL_H
#define SHMQ_CONTROL_H

#include <stddef.h>
#include <stdint.h>

/* Sends one request and waits for its reply.  Returns a transport error
 * (SHMQ_ENODAEMON, SHMQ_EPROTO, ...) or the status the daemon replied with.
 * The reply body (status included) is copied into `reply` (at most `cap`
 * bytes, length in *reply_len).  If `fd` is not NULL it receives the file
 * descriptor passed with the reply, or -1. */
int control_call(uint16_t type, const void *req, size_t req_len,
		 void *reply, size_t cap, size_t *reply_len, int *fd);

/* control_call(), except that it never starts a daemon: with none
 * answering it fails at once (SHMQ_ENODAEMON).  For what a call on a
 * handle does on the side (reopening a dead-letter queue). */
int control_call_quiet(uint16_t type, const void *req, size_t req_len,
		       void *reply, size_t cap, size_t *reply_len, int *fd);

/* Sends one request of `type` with SHMQ_MSG_NOREPLY, if that can be done
 * without waiting: it gives up (SHMQ_EAGAIN) if another thread is talking
 * to the daemon or the socket is full, and if the connection must be
 * opened again it starts no daemon and waits at most 100 ms for its
 * HELLO.  For calls that are blocked in the queue.  Leaves
 * control_detail() alone. */
int control_notify(uint16_t type, const void *req, size_t req_len);

/* Why this thread's last call failed: the daemon's explanation, or the
 * transport's (socket, connect error, autostart), or "". */
const char *control_detail(void);
void control_set_detail(const char *detail, size_t size);

/* A connection of the caller's own to the daemon on `path`, outside the
 * shared one: no autostart, no retry.  With `greet`, says HELLO as the
 * library does.  SHMQ_OK: *fd is connected (and greeted).  Otherwise *fd
 * is -1 and the status says why: SHMQ_ENODAEMON or SHMQ_EACCES if the
 * connect failed (errno from connect(2)), or the status of a refused
 * HELLO.  The test suites speak the protocol through this. */
int control_connect(const char *path, int greet, int *fd);

#endif /* SHMQ_CONTROL_H */
