/*
 * workers.h - producer and consumer processes a test drives.
 *
 * Owns the clients that stand for "another process" in the integration
 * tests: each is a real process with its own connection to the daemon
 * and its own mapping, started with harness_fork() (it dies with the
 * test) and driven over a channel (tests/lib/chan.h) so that the test
 * decides exactly when it acts.
 */
#ifndef SHMQ_TEST_WORKERS_H
#define SHMQ_TEST_WORKERS_H

#include <sys/types.h>

#include "chan.h"

/* A producer.  It answers 'r' once its handle is open; then, per
 * command:
 *   'p'  puts the next `batch` numbered messages "<tag><seq>", answers 'k'
 *   'd'  detaches, answers 'k', exits 0
 *   'x'  exits 0 at once without detaching
 * and otherwise waits, attached, until it is killed. */
struct producer {
	pid_t pid;
	struct chan ch;
};

void producer_start(struct producer *p, const char *queue, char tag,
		    unsigned batch);
/* Reaps it (it must have exited 0) and closes its channel. */
void producer_end(struct producer *p);

/* A consumer: answers 'r' once open, gets until the stream ends, checks
 * each producer's order (increasing: there may be other consumers), and
 * sends every message it got to the test as an 8-byte record (tag, seq)
 * on `rec[0]`.  Exits 0 on SHMQ_EOS, 2 on SHMQ_EOS_LOST. */
struct consumer {
	pid_t pid;
	struct chan ch;
	int rec[2];
};

void consumer_start(struct consumer *k, const char *queue);

/* A consumer of an acked queue that holds leases.  It opens `queue`,
 * leases `n` messages (waiting for each at most 10 s) and answers 'r';
 * then, per command:
 *   'a'  acks them all, answers 'k' (or 'e' if an ack was refused)
 *   'n'  nacks them all, answers 'k' (or 'e')
 *   'd'  detaches, answers 'k', exits 0
 * and otherwise waits, holding them, until it is killed. */
struct holder {
	pid_t pid;
	struct chan ch;
};

void holder_start(struct holder *h, const char *queue, unsigned n);

#endif /* SHMQ_TEST_WORKERS_H */
