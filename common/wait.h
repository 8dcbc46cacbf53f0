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
 */
#ifndef SHMQ_WAIT_H
#define SHMQ_WAIT_H

#include "futex.h"
#include "ring_impl.h"

/* Called after a commit (which is a full barrier): wake the other side,
 * but only if somebody announced that they sleep.  On the data path, so
 * it costs one load when nobody sleeps. */
static inline void wait_notify(uint32_t *word)
{
	uint32_t w = LOAD_SC(*word);

	while (w & SHMQ_WAIT_SLEEPER) {
		uint32_t next = (w & ~SHMQ_WAIT_SLEEPER) + SHMQ_WAIT_EPOCH;
		if (__atomic_compare_exchange_n(word, &w, next, 0,
						__ATOMIC_SEQ_CST,
						__ATOMIC_SEQ_CST)) {
			futex_wake_all(word);
			return;
		}
	}
}

/* Waits until `side` may be able to make progress (for put, `len` is the
 * next message's length): spins for the adaptive window, then sleeps on
 * the side's futex.  SHMQ_OK means "try again"; else SHMQ_ETIMEDOUT or
 * SHMQ_EINTR. */
int wait_for(struct ring *r, enum side side, uint64_t len,
	     struct timeout *to);
/* Sleeps on `word` (no spinning) until cond(r, ctx) holds, for waits on
 * something other than room or data (join).  Whoever makes cond true must
 * wait_notify(word) after a full barrier.  SHMQ_OK, SHMQ_EAGAIN (timeout
 * 0), SHMQ_ETIMEDOUT or SHMQ_EINTR. */
int wait_until(struct ring *r, uint32_t *word,
	       int (*cond)(struct ring *r, void *ctx), void *ctx,
	       struct timeout *to);
/* Sets up a handle's spin window and strides at attach. */
void wait_tune(struct ring *r);

#endif /* SHMQ_WAIT_H */
