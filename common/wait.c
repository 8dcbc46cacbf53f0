/*
 * wait.c - spinning, sleeping and waking (see wait.h).
 *
 * Owns the policy of a waiting put or get: whether to spin, yield or sleep
 * (from the CPUs the process may use and where the other side runs), how
 * long to spin, when to let the other side get a stride ahead, when to
 * sleep and for how long at a time, the marks that say who sleeps, and
 * when a long wait is recorded for shmqd's deadlock detection and reported
 * to it.  It never takes a queue's lock and never changes the queue: it
 * only looks (ring_ready) and sleeps.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <time.h>

#include "cpu.h"
#include "wait.h"

/*
 * How a wait begins.  Spinning pays only while the side we wait for runs
 * on another CPU at the same time: on a two-core machine a futex round
 * trip costs tens of microseconds, far more than a hand-off between two
 * running processes.  So:
 *
 *  - WAIT_SPIN: the other side last ran on another CPU, and this thread
 *    may use two or more (its affinity mask and its cgroups' CPU quota,
 *    cpu_usable()): spin for a window that adapts to how often spinning
 *    pays off, then sleep.
 *  - WAIT_HANDOFF: the other side last ran on this very CPU, so it cannot
 *    run before we give the CPU up (or we are limited to one CPU and do
 *    not know where it runs): yield once.  If only the two of us want
 *    this CPU, the yield runs the other side until it waits in turn, and
 *    neither side makes a futex call (a pipe costs a system call per
 *    message and per wake-up).  Then sleep.
 *  - WAIT_SLEEP: limited to one CPU while the other side runs elsewhere
 *    (spinning would only burn the quota it needs), or yielding was found
 *    to hand the CPU to a third process: sleep at once.  So does one wait
 *    in PART_EVERY of two processes that share a CPU although they may
 *    use others: the wake-up puts the sleeper on a free CPU if there is
 *    one, and from then on the two spin on two CPUs.  Hand-offs alone
 *    never let the scheduler see two runnable processes, and kept a
 *    ping-pong on one CPU at 2.7 µs per round trip where two CPUs take
 *    0.3-1 µs; sleeping every time costs a futex call per hand-off when
 *    the other CPU is busy (4.5 µs).  A sleeper runs
 *    again when the other side wakes it, so a CPU-bound neighbour gets its
 *    share of the CPU and we get ours, as with any blocking transport.
 *
 * A spin that is not helping stops: a failed spin halves the window, and
 * a spin that ends only after sched_yield() gave the CPU away does not
 * count as paid off (the other side ran because we stopped).  A hand-off
 * whose yield took longer than HANDOFF_SLOW_NS ran somebody else for a
 * time slice: hand-offs are then left off for a backoff that doubles
 * (HANDOFF_OFF_MIN_NS to HANDOFF_OFF_MAX_NS) with every slow one, and is
 * forgotten only after HANDOFF_OFF_MAX_NS of quick ones.
 */
#define SPIN_MAX_NS      50000u
#define SPIN_MIN_NS        500u
#define SPIN_INIT_NS     20000u
#define SPIN_POLL_MAX       32          /* pauses between looks */
#define SPIN_YIELD_NS     4000u         /* then give the CPU away */
#define YIELD_AWAY_NS     3000u         /* a yield this long let another
					   process run */
#define HANDOFF_SLOW_NS   100000u
#define HANDOFF_OFF_MIN_NS 1000000ull
#define HANDOFF_OFF_MAX_NS 1000000000ull
#define SLEEP_CAP_NS      1000000000ull /* longest single futex sleep */
#define PART_EVERY        16u

/*
 * Strides.  While both sides run flat out, the one that catches up with
 * the other (a consumer finding the queue empty, a producer finding it
 * full) would look for the very next message or free slot, which is the
 * line the other side is writing at that moment: each look takes that line
 * away from it, and the two then trade it for every message at a fraction
 * of the speed.  So a waiter first waits, for at most STRIDE_NS and half
 * its spin window, until the other side is a stride ahead: a consumer
 * looks at the mark of the message `stride` after the next one (marks are
 * set after the commit, and commits are in order), a producer for room
 * for `stride` messages.  Then the two work on lines `stride` apart.  A
 * stride that does not come in time means the stream is not that busy:
 * that side's next STRIDE_SKIP waits look for one message at once, so a
 * sparse stream (a request and its reply) pays for this about once in
 * STRIDE_SKIP waits.
 */
#define STRIDE_MAX   16u
#define STRIDE_NS    4000u
#define STRIDE_SKIP  1024u

static uint32_t stride_for(uint32_t capacity)
{
	uint32_t k = capacity / 4 < STRIDE_MAX ? capacity / 4 : STRIDE_MAX;
	return k >= 2 ? k : 0;
}

void wait_tune(struct ring *r)
{
	/* Whether to spin at all is asked at each wait (wait_how). */
	r->spin_ns = SPIN_INIT_NS;
	r->stride = stride_for(r->capacity);
	r->handoff_after = 0;
	r->handoff_off_ns = 0;
	r->shared_waits = 0;
}

/* Clears the sleep bit and bumps the epoch (only if the bit is set,
 * unless `always`); returns whether it was set.  The poll bit is
 * poll.c's: it is cleared only after the pollers were sent to. */
static int take_sleepers(uint32_t *word, uint32_t w, int always)
{
	while (always || (w & SHMQ_WAIT_SLEEPER)) {
		if (__atomic_compare_exchange_n(word, &w,
						(w & ~(SHMQ_WAIT_SLEEPER |
						       SHMQ_WAIT_BATCH)) +
							SHMQ_WAIT_EPOCH,
						0, __ATOMIC_SEQ_CST,
						__ATOMIC_SEQ_CST))
			return (w & SHMQ_WAIT_SLEEPER) != 0;
	}
	return 0;
}

/*
 * Batches on a shared CPU.  When the two sides share one CPU with a third
 * process (or are limited to one CPU), every wake-up of a sleeper that
 * ran there makes it preempt the side that woke it, which had put (or
 * freed) one message: each message then costs two context switches and
 * two futex calls.  So a sleeper that shares the CPU with the other side,
 * while a stream is busy (it handled BATCH_STREAM messages or more since
 * its last wait, which a request and its reply never do), announces SHMQ_WAIT_BATCH and sleeps at most SHMQ_BATCH_SLEEP_NS
 * at a time; a committer on that CPU then leaves it asleep for up to half
 * the capacity of commits, and wakes it before it waits itself
 * (wake_left).  The sleeper then finds a batch, and each side runs for a
 * while: two context switches per batch instead of per message.  Whatever
 * the committer does next (returns and never puts again, dies), the
 * sleeper looks again within SHMQ_BATCH_SLEEP_NS; if it finds nothing,
 * its next sleep is an ordinary one.
 */

#define BATCH_STREAM 16u    /* messages since the last wait: a busy stream
				 (or half the capacity, if smaller) */

/* Called with sleepers on `word` (value `w`): may their wake-up wait for
 * more commits?  Counts this commit if so. */
static int wake_later(struct ring *r, uint32_t *word, uint32_t w)
{
	enum side s = word == &r->hdr->data_futex ? GET_SIDE : PUT_SIDE;
	uint32_t limit = r->capacity / 2, n = 0;

	if (!(w & SHMQ_WAIT_BATCH) || limit < 2)
		return 0;
	uint32_t cpu = s == GET_SIDE ? READ_ONCE(r->hdr->get_cpu)
				     : READ_ONCE(r->hdr->put_cpu);
	uint32_t me = cpu_current();
	if (me == 0 || cpu != me)
		return 0;
	if (__atomic_load_n(&r->defer_word[s], __ATOMIC_RELAXED) == w)
		n = __atomic_load_n(&r->defer_n[s], __ATOMIC_RELAXED);
	else
		__atomic_store_n(&r->defer_word[s], w, __ATOMIC_RELAXED);
	if (++n >= limit)
		n = 0;
	__atomic_store_n(&r->defer_n[s], n, __ATOMIC_RELAXED);
	return n != 0;
}

/* Before `side` waits: wakes the other side's sleepers if our commits left
 * them asleep (they may be what we wait for). */
static void wake_left(struct ring *r, enum side side)
{
	enum side o = side == PUT_SIDE ? GET_SIDE : PUT_SIDE;
	uint32_t *word = o == GET_SIDE ? &r->hdr->data_futex
				       : &r->hdr->space_futex;

	if (__atomic_load_n(&r->defer_n[o], __ATOMIC_RELAXED) == 0)
		return;
	__atomic_store_n(&r->defer_n[o], 0, __ATOMIC_RELAXED);
	uint32_t w = LOAD_SC(*word);
	if (w == __atomic_load_n(&r->defer_word[o], __ATOMIC_RELAXED) &&
	    take_sleepers(word, w, 0))
		futex_wake_all(word);
}

/* Should this wait's sleep be a batch sleep (see above)?  `now`: mono ns.
 * Notes how far this side's count has come, for its next wait. */
static int batch_sleep(struct ring *r, enum side side, uint64_t now)
{
	uint64_t count = side == GET_SIDE
				 ? LOAD_ACQ(r->hdr->head)
				 : LOAD_ACQ(r->hdr->tail) & SHMQ_TAIL_COUNT;
	uint64_t mark = __atomic_load_n(&r->sleep_mark[side],
					__ATOMIC_RELAXED);

	__atomic_store_n(&r->sleep_mark[side], count, __ATOMIC_RELAXED);
	uint32_t busy = r->capacity / 2 < BATCH_STREAM ? r->capacity / 2
						       : BATCH_STREAM;
	if (busy < 2 || count - mark < busy)
		return 0;
	uint32_t peer = side == GET_SIDE ? READ_ONCE(r->hdr->put_cpu)
					 : READ_ONCE(r->hdr->get_cpu);
	uint32_t me = cpu_current();
	if (me == 0 || peer != me)
		return 0;
	return cpu_usable(now) < 2 ||
	       now < __atomic_load_n(&r->handoff_after, __ATOMIC_RELAXED);
}

void wait_wake(struct ring *r, uint32_t *word, uint32_t w)
{
	if ((w & SHMQ_WAIT_SLEEPER) && !wake_later(r, word, w) &&
	    take_sleepers(word, w, 0)) {
		HOOK(RING_HOOK_WAKE);
		futex_wake_all(word);
	}
	if (w & SHMQ_WAIT_POLLER)
		poll_wake(r, word == &r->hdr->data_futex ? GET_SIDE : PUT_SIDE,
			  0);
}

/* Everybody, whatever the bits say: a waker may have died between taking
 * them and waking. */
void ring_wake_all(struct ring *r)
{
	uint32_t *words[2] = { &r->hdr->space_futex, &r->hdr->data_futex };

	for (int side = PUT_SIDE; side <= GET_SIDE; side++) {
		take_sleepers(words[side], LOAD_SC(*words[side]), 1);
		futex_wake_all(words[side]);
		poll_wake(r, (enum side)side, 1);
	}
}

/* A consumer's cheap look while spinning: is the next message there? */
static inline int spin_hint(struct ring *r)
{
	uint64_t head = LOAD_ACQ(r->hdr->head);
	return LOAD_ACQ(r->slots[head & r->mask].published) == head;
}

/* Should this wait on `side` start with a stride? */
static int stride_begin(struct ring *r, enum side side)
{
	uint32_t *skip = &r->stride_skip[side];
	uint32_t v = __atomic_load_n(skip, __ATOMIC_RELAXED);

	if (r->stride == 0)
		return 0;
	if (v) {
		__atomic_store_n(skip, v - 1, __ATOMIC_RELAXED);
		return 0;
	}
	return 1;
}

static void stride_missed(struct ring *r, enum side side)
{
	__atomic_store_n(&r->stride_skip[side], STRIDE_SKIP, __ATOMIC_RELAXED);
}

/* Is the other side a stride ahead (for a producer: or the queue closed;
 * a consumer notices a close once the stride window is over)?  A "yes" must
 * also be a yes of ring_ready(), or a waiter would spin on it: a consumer also
 * checks the next message's mark (a line the producer has left by then),
 * a producer counts leased messages and, with a byte budget, also asks
 * for room in bytes. */
static int stride_look(struct ring *r, enum side side, uint64_t len)
{
	struct shmq_seg_hdr *h = r->hdr;
	uint64_t head = LOAD_ACQ(h->head);

	if (side == GET_SIDE) {
		uint64_t t = head + r->stride;
		return LOAD_ACQ(r->slots[t & r->mask].published) == t &&
		       LOAD_ACQ(r->slots[head & r->mask].published) == head;
	}
	uint64_t tw = LOAD_ACQ(h->tail), tail = tw & SHMQ_TAIL_COUNT;
	if ((tw & SHMQ_TAIL_CLOSED) || head > tail)
		return 1;
	/* On an acked queue leased messages left the ring but still take
	 * room (as room_for counts them): without them, a queue full of
	 * leases would look empty here and full to the attempt, and the
	 * producer would spin between the two. */
	uint64_t held = r->leases ? READ_ONCE(h->leased) : 0;
	if (tail - head + held + r->stride > r->capacity)
		return 0;
	return r->max_bytes == 0 || ring_ready(r, side, len);
}

static void adapt_spin(struct ring *r, int paid_off)
{
	uint32_t s = __atomic_load_n(&r->spin_ns, __ATOMIC_RELAXED);

	if (s == 0)
		return;         /* never spins (tests) */
	if (paid_off)
		s = s * 2 > SPIN_MAX_NS ? SPIN_MAX_NS : s * 2;
	else
		s = s / 2 < SPIN_MIN_NS ? SPIN_MIN_NS : s / 2;
	__atomic_store_n(&r->spin_ns, s, __ATOMIC_RELAXED);
}

enum wait_how wait_how(struct ring *r, enum side side, uint64_t now)
{
	uint32_t peer = side == GET_SIDE ? READ_ONCE(r->hdr->put_cpu)
					 : READ_ONCE(r->hdr->get_cpu);
	uint32_t me = cpu_current();
	int may_hand_off = now >= __atomic_load_n(&r->handoff_after,
						  __ATOMIC_RELAXED);

	unsigned cpus = cpu_usable(now);

	if (me != 0 && peer == me) {
		if (!may_hand_off)
			return WAIT_SLEEP;
		/* Sharing a CPU we could leave: now and then sleep, and the
		 * wake-up puts us on a free CPU if there is one; hand-offs
		 * alone would keep the two together for good. */
		if (cpus >= 2 && __atomic_fetch_add(&r->shared_waits, 1,
						    __ATOMIC_RELAXED) %
					 PART_EVERY == 0)
			return WAIT_SLEEP;
		return WAIT_HANDOFF;
	}
	if (cpus < 2)
		return peer == 0 && may_hand_off ? WAIT_HANDOFF : WAIT_SLEEP;
	return WAIT_SPIN;
}

/* Gives the CPU to the other side once; 1 if that let it act.  (The
 * backoff is per handle, and racy between threads: a lost update only
 * changes how soon the next hand-off is tried.) */
static int hand_off(struct ring *r, enum side side, uint64_t len,
		    uint64_t now)
{
	sched_yield();
	uint64_t took = mono_ns() - now;
	int ok = ring_ready(r, side, len);
	uint64_t off = __atomic_load_n(&r->handoff_off_ns, __ATOMIC_RELAXED);

	if (took > HANDOFF_SLOW_NS) {
		off = off < HANDOFF_OFF_MIN_NS ? HANDOFF_OFF_MIN_NS
		      : off * 2 > HANDOFF_OFF_MAX_NS ? HANDOFF_OFF_MAX_NS
						     : off * 2;
		__atomic_store_n(&r->handoff_after, now + took + off,
				 __ATOMIC_RELAXED);
	} else if (ok && off && now - __atomic_load_n(&r->handoff_after,
						     __ATOMIC_RELAXED) >
					HANDOFF_OFF_MAX_NS) {
		/* Only a long run of quick ones forgets the slow: under a busy
		 * neighbour some yields are quick, and forgetting at the first
		 * of them made one wait in a hundred pay a time slice. */
		off = 0;
	}
	__atomic_store_n(&r->handoff_off_ns, off, __ATOMIC_RELAXED);
	return ok;
}

/* The adaptive spin (WAIT_SPIN); 1 if the other side acted within it. */
static int spin(struct ring *r, enum side side, uint64_t len,
		uint32_t spin_ns, uint64_t start)
{
	/* Look again after 1, 2, 4, ... pauses, then every SPIN_POLL_MAX:
	 * each look pulls the other side's cache line away from it, and it
	 * pays for that on its next commit, so a busy stream is polled
	 * rarely while a quiet one still gets an answer within a few hundred
	 * nanoseconds. */
	uint64_t until = start + spin_ns;
	/* At most half the window: the rest is for the next message alone,
	 * and a stride that did not come is always seen. */
	uint64_t stride_until = 0;
	if (stride_begin(r, side))
		stride_until = start + (spin_ns / 2 < STRIDE_NS ? spin_ns / 2
								: STRIDE_NS);
	unsigned gap = 1, looks = 0;
	int gave_away = 0;
	for (unsigned i = 1;; i++) {
		cpu_relax();
		if (i < gap)
			continue;
		int ok;
		if (stride_until)
			ok = stride_look(r, side, len);
		/* A consumer mostly watches the next slot's mark; the full
		 * look (which notices a close) only now and then. */
		else if (side == GET_SIDE && ++looks % 8 != 0)
			ok = spin_hint(r);
		else
			ok = ring_ready(r, side, len);
		if (ok) {
			adapt_spin(r, !gave_away);
			return 1;
		}
		uint64_t t = mono_ns();
		if (stride_until && t >= stride_until) {
			stride_missed(r, side);
			stride_until = 0;
			if (t < until) {
				i = 0;
				gap = 1;
				continue;
			}
		}
		if (t >= until)
			break;
		/* Waiting this long on a two-CPU machine usually means more
		 * runnable processes than CPUs: let the one we wait for run.
		 * If that ran somebody, what follows is no spin's merit. */
		if (t - start > SPIN_YIELD_NS) {
			sched_yield();
			if (mono_ns() - t > YIELD_AWAY_NS)
				gave_away = 1;
		}
		i = 0;
		if (gap < SPIN_POLL_MAX)
			gap *= 2;
	}
	adapt_spin(r, 0);
	return 0;
}

/* Marks our attachment entry as asleep in put or get (the statistics
 * count these marks), or awake again. */
static void mark_sleep(struct ring *r, uint32_t state)
{
	if (r->self)
		WRITE_ONCE(r->self->wait, state);
}

/* How often a recorded wait reports to shmqd, in ns (the segment says,
 * in ms; 0: never).  Bounded, since any process can write it. */
#define REPORT_MAX_MS 3600000u

static uint64_t report_period(const struct ring *r)
{
	uint32_t ms = READ_ONCE(r->hdr->dl_report_ms);

	if (ms > REPORT_MAX_MS)
		ms = REPORT_MAX_MS;
	return (uint64_t)ms * 1000000u;
}

/*
 * Deadlock detection, the waiter's part.  A call that is about to sleep
 * for the first time is counted in its handle's wait record (spins that
 * end the wait cost nothing), and its later spins and sleeps stay
 * counted until it returns.  While shmqd looks for deadlocks, a recorded
 * call tells it, once per report period, that it is blocked, unless
 * shmqd has seen this wait already and still samples the queue
 * (dl_seen_ns, dl_watch_ns): shmqd looks at the records only while
 * somebody is blocked, and less and less often while nothing changes.
 * Until shmqd has seen it, the call sleeps at most a period at a time;
 * then until shmqd's watch ends (at most a second, as always).  Before
 * each sleep it also looks whether shmqd chose it to break a deadlock
 * (victim): shmqd writes that before it wakes every sleeper, and the
 * sleeper has read its futex word before it looks, so the wake-up cannot
 * be missed.
 */

/* Has shmqd seen this wait (looked half a period after it began, to be
 * sure it was counted by then), and does it still watch the queue? */
static int seen_and_watched(const struct ring *r, const struct wait_call *wc,
			    uint64_t now, uint64_t period)
{
	int64_t seen = READ_ONCE(r->hdr->dl_seen_ns);
	int64_t watch = READ_ONCE(r->hdr->dl_watch_ns);

	return (int64_t)now < watch &&
	       seen >= (int64_t)(wc->since + period / 2);
}

static int before_sleep(struct ring *r, enum side side, struct wait_call *wc,
			struct timeout *to, uint64_t period)
{
	uint64_t now = mono_ns();

	if (!wc->recorded) {
		const struct timespec *due = timeout_deadline(to);
		wc->recorded = 1;
		wc->since = wc->told = now;
		wc->deadline = due ? (int64_t)due->tv_sec * 1000000000 +
					     due->tv_nsec
				   : 0;
		ring_client_wait_begin(r, side, wc);
		return SHMQ_OK;
	}
	if (ring_client_wait_victim(r, side, wc))
		return SHMQ_EDEADLK;
	if (period && r->blocked && now - wc->told >= period) {
		wc->told = now;
		if (!seen_and_watched(r, wc, now, period))
			r->blocked(r->blocked_ctx, side);
	}
	return SHMQ_OK;
}

int wait_for(struct ring *r, enum side side, uint64_t len,
	     struct timeout *to, struct wait_call *wc)
{
	uint32_t *word = side == PUT_SIDE ? &r->hdr->space_futex
					  : &r->hdr->data_futex;

	/* The deadline holds even if every look says "try again" and every
	 * attempt finds nothing to do (a damaged segment can do that). */
	const struct timespec *due = timeout_deadline(to);
	if (due) {
		struct timespec now;
		ns_to_ts(mono_ns(), &now);
		if (!ts_before(&now, due))
			return SHMQ_ETIMEDOUT;
	}

	wake_left(r, side);

	/* spin_ns 0: this handle never spins nor yields (tests). */
	uint32_t spin_ns = __atomic_load_n(&r->spin_ns, __ATOMIC_RELAXED);
	int batch = 0;
	if (spin_ns) {
		uint64_t now = mono_ns();
		batch = batch_sleep(r, side, now);
		switch (wait_how(r, side, now)) {
		case WAIT_SPIN:
			if (spin(r, side, len, spin_ns, now))
				return SHMQ_OK;
			break;
		case WAIT_HANDOFF:
			if (hand_off(r, side, len, now))
				return SHMQ_OK;
			break;
		case WAIT_SLEEP:
			break;
		}
	}

	for (;;) {
		uint32_t w = LOAD_SC(*word), want;
		/* The first sleeper of an epoch says whether it sleeps in
		 * batches; one that does not clears it for all. */
		if (!(w & SHMQ_WAIT_SLEEPER))
			want = w | SHMQ_WAIT_SLEEPER |
			       (batch ? SHMQ_WAIT_BATCH : 0);
		else if (!batch)
			want = w & ~SHMQ_WAIT_BATCH;
		else
			want = w;
		if (want != w) {
			if (!__atomic_compare_exchange_n(
				    word, &w, want, 0, __ATOMIC_SEQ_CST,
				    __ATOMIC_SEQ_CST))
				continue;
			w = want;
		}
		if (ring_ready(r, side, len))
			return SHMQ_OK;
		uint64_t period = report_period(r);
		int rc = before_sleep(r, side, wc, to, period);
		if (rc != SHMQ_OK)
			return rc;

		/* Never sleep more than a second at a time: a process killed
		 * between its commit and its wake-up would otherwise strand us
		 * until shmqd notices the death (not at all while it is down);
		 * waking to look again costs nothing that matters.  While
		 * shmqd looks for deadlocks, no longer than a report period
		 * until it has seen this wait, then until its watch ends (at
		 * least a millisecond: a damaged segment must not make us
		 * spin). */
		const struct timespec *dl = timeout_deadline(to);
		struct timespec cap;
		uint64_t now = mono_ns(), cap_ns = SLEEP_CAP_NS;
		if (period) {
			uint64_t watch = (uint64_t)READ_ONCE(r->hdr->dl_watch_ns);
			uint64_t until = period;
			if (seen_and_watched(r, wc, now, period) &&
			    watch - now > period)
				until = watch - now;
			if (until < cap_ns)
				cap_ns = until < 1000000u ? 1000000u : until;
		}
		if ((w & SHMQ_WAIT_BATCH) && cap_ns > SHMQ_BATCH_SLEEP_NS)
			cap_ns = SHMQ_BATCH_SLEEP_NS;
		cap_ns += now;
		/* An acked queue's getter also wakes when a lease times out:
		 * it is the one that returns it. */
		if (side == GET_SIDE && r->leases) {
			int64_t ld = lease_next_deadline(r);
			if (ld > 0 && (uint64_t)ld < cap_ns)
				cap_ns = (uint64_t)ld;
		}
		ns_to_ts(cap_ns, &cap);
		int capped = dl == NULL || ts_before(&cap, dl);
		HOOK(RING_HOOK_SLEEP);
		mark_sleep(r, side == PUT_SIDE ? SHMQ_WAIT_PUT : SHMQ_WAIT_GET);
		int e = futex_wait(word, w, capped ? &cap : dl);
		mark_sleep(r, SHMQ_WAIT_NONE);
		if (e == ETIMEDOUT && !capped)
			return SHMQ_ETIMEDOUT;
		if (e == EINTR)
			return SHMQ_EINTR;
		return SHMQ_OK;
	}
}

int wait_until(struct ring *r, uint32_t *word,
	       int (*cond)(struct ring *r, void *ctx), void *ctx,
	       struct timeout *to)
{
	for (;;) {
		uint32_t w = LOAD_SC(*word);
		/* Not a batch sleeper: nobody may leave it asleep. */
		uint32_t want = (w | SHMQ_WAIT_SLEEPER) & ~SHMQ_WAIT_BATCH;
		if (want != w) {
			if (!__atomic_compare_exchange_n(
				    word, &w, want, 0, __ATOMIC_SEQ_CST,
				    __ATOMIC_SEQ_CST))
				continue;
			w = want;
		}
		if (cond(r, ctx))
			return SHMQ_OK;
		if (to->ms == SHMQ_NOWAIT)
			return SHMQ_EAGAIN;
		/* Capped at a second, as wait_for's sleeps are. */
		const struct timespec *dl = timeout_deadline(to);
		struct timespec cap;
		ns_to_ts(mono_ns() + SLEEP_CAP_NS, &cap);
		int capped = dl == NULL || ts_before(&cap, dl);
		int e = futex_wait(word, w, capped ? &cap : dl);
		if (e == ETIMEDOUT && !capped)
			return cond(r, ctx) ? SHMQ_OK : SHMQ_ETIMEDOUT;
		if (e == EINTR)
			return SHMQ_EINTR;
	}
}
