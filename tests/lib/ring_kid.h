/*
 * ring_kid.h - child processes on the ring suites' segment, and parking
 * one at a hook point inside a critical section.
 *
 * Owns the processes that play a queue's other clients: each maps the
 * segment anew, at another address, as a real client does (nothing in
 * the segment may depend on where it is mapped), gets its attachment
 * entry from the test as shmqd would hand it out, runs one body, and
 * reports through its event pipe.  A child armed with `park` stops at
 * that ring_test_hook point, inside the critical section, says 'P', and
 * waits there to be SIGKILLed: the crash rules of proto/shmq_layout.h are
 * tested that way.  Children arm alarm(KID_ALARM_S); the parent reads
 * only with a timeout.  Also the suites' fixture (ring_tcase), which
 * reaps every child and unmaps the segment after each test.
 */
#ifndef SHMQ_TEST_RING_KID_H
#define SHMQ_TEST_RING_KID_H

#include <check.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "ring_seg.h"

#define KID_ALARM_S   20        /* a stuck child dies of SIGALRM */
#define MAX_KIDS      96
#define MAX_BATCH     32
#define NO_ENTRY      UINT32_MAX
#define KID_SETUP     71        /* exit status of a child that could not
				   attach (a failed check: CHILD_FAIL) */

struct kid {
	pid_t pid;
	int evt;                /* read end of the child's event pipe */
	uint32_t idx;           /* its attachment entry, or NO_ENTRY */
};

/* What a child's body gets: its own mapping and view of the segment. */
struct kctx {
	struct ring r;
	int evt;                /* write end of the event pipe */
	void *arg;
};

/* A child's body: returns its exit status. */
typedef int (*kid_fn)(struct kctx *c);

/* Forks a child running fn(arg).  Like shmqd, the parent registers the
 * child's attachment (if `role`) and hands it the entry to bind. */
struct kid *kid_start(uint32_t role, kid_fn fn, void *arg);
/* Reaps a child that must have exited on its own with status 0. */
void kid_ok(struct kid *k);
/* SIGKILLs a child and reaps it: it must have died of that signal (and
 * not earlier, of a failed check or its alarm). */
void kid_kill(struct kid *k);

/* What a put or get child does. */
struct op {
	int timeout;
	int park;               /* AT(hook point) to park there, 0: never */
	int park_nth;           /* 0 or 1: first hit */
	int until_now;          /* parked: go on once the queue is closed
				   with close --now (its closer is then
				   waiting for our lock), instead of waiting
				   to be killed */
	size_t n;               /* batch size (get: at most; 0 means 1) */
	const char *msgs[MAX_BATCH];
};

#define OP(...) ((struct op){ __VA_ARGS__ })
#define AT(point) ((int)(point) + 1)

/* A child's report: status, count, and the first message it got. */
struct kres {
	int32_t rc;
	uint32_t count;
	uint32_t len;
	char data[256];
};

/* In a child: park at op->park, if set, from now on (and, with
 * op->until_now, go on once close --now's bit is set). */
void park_arm(struct kctx *c, const struct op *op);
/* Bodies: one ring_put of op->msgs, or one ring_get of up to op->n. */
int kid_put(struct kctx *c);
int kid_get(struct kctx *c);
/* Closes the queue with close --now (waiting for the consumers' lock as
 * ring_close does); reports its status and how many it discarded. */
int kid_close_now(struct kctx *c);
/* kid_start with a struct op. */
struct kid *kid_op(uint32_t role, kid_fn fn, struct op *op);

/* Waits for the child's report of its one operation, then reaps it. */
struct kres kid_result(struct kid *k);
/* Asserts that nothing has been reported yet: the child still blocks. */
void kid_silent(struct kid *k);
/* Waits for the child to say it parked. */
void kid_expect_parked(struct kid *k);

/* The fixture: before each test, no segment, no children, no hook;
 * after it (when it passed: a failed one's process group is killed by
 * Check), every child killed and reaped and the segment unmapped. */
void ring_setup(void);
void ring_teardown(void);
/* A test case with that fixture and `timeout` seconds per test. */
TCase *ring_tcase(Suite *s, const char *name, double timeout);

#endif /* SHMQ_TEST_RING_KID_H */
