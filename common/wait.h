/*
 * wait.h - how a queue operation waits for the other side, and wakes it.
 *
 * Sleeping uses one futex word per direction (data_futex for consumers,
 * space_futex for producers).  Bit 0 says "someone sleeps here"; a sleeper
 * sets it with a CAS (a full barrier) and re-checks the queue before
 * sleeping; a committer, after its own full barrier, only makes a system
 * call if it finds the bit set, then clears it, bumps the epoch and wakes
 * everybody.  Either the sleeper sees the commit or the committer sees the
 * bit, so no wake-up is lost; and a sleeper killed while asleep costs at
 * most one extra wake-up, because the next committer clears its bit.
 * Waking all instead of one means that a woken process that dies before
 * it takes the message cannot strand the other sleepers.
 *
 * Pollers (poll.c) follow the same rule with bit 1: a poller marks its
 * attachment entry armed, then sets the bit (always bumping the epoch),
 * then re-checks; a committer that finds the bit set sends a datagram to
 * every armed entry, clears the armings it sent to, and then the bit,
 * unless the word changed meanwhile.  Sleepers' wake-ups clear first
 * and wake after; a committer killed in between (RING_HOOK_WAKE) is
 * covered by shmqd: a death ends in ring_wake_all, which wakes every
 * sleeper and every armed entry whatever the bits say, and one stopped
 * there costs the sleepers at most their one-second cap.  Pollers have
 * no cap, so their bit is cleared last: a committer stopped or killed
 * on its way (RING_HOOK_POLL_SEND) leaves it set, and the next commit in
 * that direction sends.  What remains: a committer stopped between its
 * commit and its wake-up, with nobody committing after it, delays the
 * pollers until it runs again (or dies: then shmqd wakes them).
 */
#ifndef SHMQ_WAIT_H
#define SHMQ_WAIT_H

#include "cpu.h"
#include "futex.h"
#include "ring_impl.h"

/* The slow half of wait_notify: somebody sleeps or polls on `word`,
 * whose value was `w`. */
void wait_wake(struct ring *r, uint32_t *word, uint32_t w);

/* Called after a commit (which is a full barrier): wake the other side
 * (`word` is its futex word), but only if somebody announced that they
 * sleep or poll there.  On the data path, so it costs one load when
 * nobody does. */
static inline void wait_notify(struct ring *r, uint32_t *word)
{
	uint32_t w = LOAD_SC(*word);

	if (__builtin_expect((w & (SHMQ_WAIT_SLEEPER | SHMQ_WAIT_POLLER)) != 0,
			     0))
		wait_wake(r, word, w);
}

/* After a commit on `side`: says which CPU this side runs on, for the
 * other side's waiters (put_cpu and get_cpu in shmq_layout.h).  Stored
 * only when it changed, on a line the committer reads anyway. */
static inline void wait_note_cpu(struct ring *r, enum side side)
{
	uint32_t *f = side == PUT_SIDE ? &r->hdr->put_cpu : &r->hdr->get_cpu;
	uint32_t c = cpu_current();

	if (READ_ONCE(*f) != c)
		WRITE_ONCE(*f, c);
}

/* One blocking call's wait, across its calls of wait_for (ring.c keeps
 * it): whether the call is counted in its handle's wait record (from its
 * first sleep on, see "Wait records" in shmq_layout.h), since when, and
 * when it last told shmqd that it is still blocked.  The caller starts it
 * zeroed and, if `recorded`, calls ring_client_wait_end() when the call
 * returns. */
struct wait_call {
	int recorded;
	uint64_t since;
	int64_t deadline;           /* of its timeout, or 0 */
	uint64_t seq;               /* its number in the record */
	int nested;                 /* its thread was counted already */
	int continued;              /* a slice of a continued call */
	uint64_t told;
};

/* Waits until `side` may be able to make progress (for put, `len` is the
 * next message's length): spins for the adaptive window if the other side
 * may be running on another CPU, or yields the CPU once if it needs ours,
 * then sleeps on the side's futex (see "How a wait begins" in wait.c).
 * SHMQ_OK means "try again"; else SHMQ_ETIMEDOUT, SHMQ_EINTR, or
 * SHMQ_EDEADLK (shmqd chose this wait to break a deadlock). */
int wait_for(struct ring *r, enum side side, uint64_t len,
	     struct timeout *to, struct wait_call *wc);
/* Sleeps on `word` (no spinning) until cond(r, ctx) holds, for waits on
 * something other than room or data (join).  Whoever makes cond true must
 * wait_notify(r, word) after a full barrier.  SHMQ_OK, SHMQ_EAGAIN (timeout
 * 0), SHMQ_ETIMEDOUT or SHMQ_EINTR. */
int wait_until(struct ring *r, uint32_t *word,
	       int (*cond)(struct ring *r, void *ctx), void *ctx,
	       struct timeout *to);
/* How a wait on `side` begins now (`now`: CLOCK_MONOTONIC ns): see "How a
 * wait begins" in wait.c.  wait_for() asks it; tests too. */
enum wait_how { WAIT_SPIN, WAIT_HANDOFF, WAIT_SLEEP };
RING_INTERNAL enum wait_how wait_how(struct ring *r, enum side side,
				     uint64_t now);
/* Sets up a handle's spin window and strides at attach. */
void wait_tune(struct ring *r);

#endif /* SHMQ_WAIT_H */
