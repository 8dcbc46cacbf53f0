/*
 * chan.h - handshakes between a test and the processes it starts.
 *
 * Owns the pipes that let a test decide exactly when a child acts and
 * learn when it has: a channel is two pipes, commands down and answers up,
 * one byte each.  Every read is bounded, so a child that died or hangs is
 * a failed test, never a stuck one.  The parent's side asserts; the
 * child's side (child_say, child_hear) exits CHILD_FAIL instead.
 */
#ifndef SHMQ_TEST_CHAN_H
#define SHMQ_TEST_CHAN_H

#include <stddef.h>

struct chan {
	int down[2];    /* parent -> child: commands */
	int up[2];      /* child -> parent: answers */
};

/* Before the fork. */
void chan_init(struct chan *c);
/* After it: each side closes the ends it does not use. */
void chan_child(struct chan *c);
void chan_parent(struct chan *c);
/* The parent is done with it. */
void chan_done(struct chan *c);

/* Waits (15 s at most) for the child's answer, which must be `want`. */
void chan_expect(struct chan *c, int want);
/* Sends a command and waits for its answer. */
void chan_cmd(struct chan *c, int cmd, int want);

/* In the child: answer, and wait (20 s at most) for the next command. */
void child_say(struct chan *c, int b);
int child_hear(struct chan *c);

/* One byte from `fd` within `ms`, or -1 (timeout or end of file). */
int byte_read(int fd, int ms);
int byte_write(int fd, int b);
/* Exactly `len` bytes, or -1 at end of file; read_timed waits at most
 * WAIT_MS for each chunk. */
int read_full(int fd, void *p, size_t len);
int read_timed(int fd, void *p, size_t len);

#endif /* SHMQ_TEST_CHAN_H */
