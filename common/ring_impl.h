/*
 * ring_impl.h - what the files of the queue core share with each other.
 *
 * The core is split by what each file owns: segment.c (geometry, format,
 * attach, checks, statistics), ring.c (the data path: put, get, close),
 * wait.c (spinning, sleeping and waking), clients.c (the attachment
 * table and its wait records, for deadlock detection), lease.c and
 * lease_look.c (acked queues: the lease table, changed under the
 * consumers' lock and looked at without it), poll.c (pollable
 * descriptors).  They share the atomics below, the checked slot reader
 * and the deadline type.  Nothing outside common/ includes this file: the rest of
 * the project uses ring.h.
 */
#ifndef SHMQ_RING_IMPL_H
#define SHMQ_RING_IMPL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>
#include <time.h>

#include "clock.h"
#include "ring.h"

#define HOOK(point)                                                          \
	do {                                                                 \
		if (__builtin_expect(ring_test_hook != NULL, 0))             \
			ring_test_hook(point);                               \
	} while (0)

/* Single reads of shared memory: the compiler must neither repeat nor
 * tear them, or a value could change between its check and its use. */
#define READ_ONCE(x)      __atomic_load_n(&(x), __ATOMIC_RELAXED)
#define WRITE_ONCE(x, v)  __atomic_store_n(&(x), (v), __ATOMIC_RELAXED)
#define LOAD_ACQ(x)       __atomic_load_n(&(x), __ATOMIC_ACQUIRE)
#define LOAD_SC(x)        __atomic_load_n(&(x), __ATOMIC_SEQ_CST)

/* Internal status: the operation must wait for room or data. */
#define RING_WAIT 100
/* Internal status: return SHMQ_OK with the side's lock still held
 * (zero copy). */
#define RING_HOLD 101

enum side { PUT_SIDE, GET_SIDE };

static inline uint64_t align_up(uint64_t v, uint64_t a)
{
	return (v + a - 1) & ~(a - 1);
}

/* ------------------------------------------------------------------ */
/* Deadlines                                                          */

/* A caller's timeout, turned into an absolute CLOCK_MONOTONIC deadline the
 * first time something has to wait, so the fast path never reads a clock. */
struct timeout {
	int ms;                 /* SHMQ_FOREVER, SHMQ_NOWAIT or > 0 */
	int have;
	struct timespec at;
};

static inline void timeout_init(struct timeout *to, int ms)
{
	to->ms = ms < 0 ? SHMQ_FOREVER : ms;
	to->have = 0;
}

static inline void ns_to_ts(uint64_t ns, struct timespec *ts)
{
	ts->tv_sec = (time_t)(ns / 1000000000u);
	ts->tv_nsec = (long)(ns % 1000000000u);
}

static inline int ts_before(const struct timespec *a, const struct timespec *b)
{
	return a->tv_sec < b->tv_sec ||
	       (a->tv_sec == b->tv_sec && a->tv_nsec < b->tv_nsec);
}

/* The deadline for sleeping, or NULL for none. */
static inline const struct timespec *
timeout_deadline(struct timeout *to)
{
	if (to->ms == SHMQ_FOREVER)
		return NULL;
	if (!to->have) {
		ns_to_ts(mono_ns() + (uint64_t)to->ms * 1000000u, &to->at);
		to->have = 1;
	}
	return &to->at;
}

/* ------------------------------------------------------------------ */
/* Slots                                                              */

/* Reads the slot of `ticket` once and checks it.  A slot is trusted only
 * if it names its own ticket and its bytes lie inside the data ring. */
static inline __attribute__((always_inline)) int
read_slot(const struct ring *r, uint64_t ticket, struct shmq_slot *s)
{
	const struct shmq_slot *p = &r->slots[ticket & r->mask];

	s->ticket = READ_ONCE(p->ticket);
	s->off = READ_ONCE(p->off);
	s->bytes = READ_ONCE(p->bytes);
	s->pos = READ_ONCE(p->pos);
	s->len = READ_ONCE(p->len);
	if (s->ticket != ticket || s->len > r->max_msg ||
	    s->pos > r->data_size || s->pos % SHMQ_DATA_ALIGN != 0 ||
	    (s->len > SHMQ_INLINE_MAX && s->len > r->data_size - s->pos))
		return SHMQ_ECORRUPT;
	return SHMQ_OK;
}

/* Bytes a message takes in the data ring: none if it lives in its slot. */
static inline uint64_t ring_bytes(uint64_t len)
{
	return len > SHMQ_INLINE_MAX ? align_up(len, SHMQ_DATA_ALIGN) : 0;
}

/* Where the bytes of a message (checked by read_slot) are. */
static inline const uint8_t *slot_data(const struct ring *r, uint64_t ticket,
				       const struct shmq_slot *s)
{
	return s->len > SHMQ_INLINE_MAX ? r->data + s->pos
					: r->slots[ticket & r->mask].inline_data;
}

/* Functions one file of the core offers the others.  Hidden: they bind
 * within the library (no PLT, no interposition).  That does not make them
 * inline: the compiler weighs a function with a symbol of its own like any
 * other.  What the data path needs inline is static inline in its own
 * file, and other files get a thin out-of-line wrapper declared here (see
 * ring.c's get helpers). */
#define RING_INTERNAL __attribute__((visibility("hidden")))

/* --- ring.c ----------------------------------------------------------- */

/* Could an operation on `side` make progress now?  (wait.c asks it before
 * sleeping.) */
RING_INTERNAL int ring_ready(struct ring *r, enum side side, uint64_t len);
/* Sets up the data path's per-handle tuning at attach. */
RING_INTERNAL void ring_tune(struct ring *r);

/* One attempt, made with the side's lock held: returns RING_WAIT to wait
 * for the queue to change and try again, RING_HOLD to return SHMQ_OK with
 * the lock still held (zero copy), anything else to return it.  It sets
 * *progressed when it committed something the other side may wait for. */
typedef int (*attempt_fn)(struct ring *r, void *ctx, int *progressed);
/* Every blocking operation: lock, attempt, and while the queue is full
 * (empty), wait and attempt again.  *wait_len is the length of the
 * message a put waits to place (0 for get); the attempt may update it. */
RING_INTERNAL int ring_run_locked(struct ring *r, enum side side,
				  int timeout_ms, const uint64_t *wait_len,
				  attempt_fn attempt, void *ctx);

/* Under get_lock (see ring.c for each; wrappers of its inline get
 * helpers, for lease.c): */
RING_INTERNAL int ring_eos(const struct ring *r);
RING_INTERNAL int ring_get_avail(struct ring *r, uint64_t head,
				 uint64_t *tail, int *looked);
RING_INTERNAL int ring_closed_now(struct ring *r);
RING_INTERNAL uint64_t ring_get_start(struct ring *r, uint64_t *tail);
RING_INTERNAL void ring_get_commit(struct ring *r, uint64_t head);
/* ring_get, also saying the ticket of the first message it took. */
RING_INTERNAL int ring_get_seq(struct ring *r, void *buf, size_t size,
			       struct iovec *out, size_t n, size_t *got,
			       int timeout_ms, uint64_t *first);

/* --- clients.c: a handle's own wait records ---------------------------- */

struct wait_call;
/* The first sleep of a blocking call: counts it in the handle's wait
 * record for `side` as waiting since wc->since (CLOCK_MONOTONIC ns), with
 * a timeout ending at wc->deadline (0: none), and sets wc->seq to its
 * number (0 without an entry).  The matching ring_client_wait_end()
 * comes when the call returns. */
RING_INTERNAL void ring_client_wait_begin(struct ring *r, enum side side,
					  struct wait_call *wc);
/* Ends it; returns `rc`, the call's status, or SHMQ_EDEADLK for a slice
 * of a continued call (ring_client_wait_continue, ring.h) that ends by its
 * timeout or a signal while shmqd names it to fail. */
RING_INTERNAL int ring_client_wait_end(struct ring *r, enum side side,
				       const struct wait_call *wc, int rc);
/* Has shmqd chosen this very wait to fail (and nobody claimed it yet)?
 * 1 claims it: the caller returns SHMQ_EDEADLK. */
RING_INTERNAL int ring_client_wait_victim(struct ring *r, enum side side,
					  const struct wait_call *wc);

/* --- lease.c: acked queues ------------------------------------------- */

/* One lease slot, read once and checked.  Returns its state, or FREE for
 * a slot that is not in use by rule L1 of lease.c (or that is damaged
 * beyond use: a message is never read out of it). */
static inline uint32_t read_lease(const struct ring *r, uint32_t i,
				  uint64_t head, struct shmq_lease *s)
{
	const struct shmq_lease *p = &r->leases[i];

	s->state = READ_ONCE(p->state);
	s->epoch = READ_ONCE(p->epoch);
	s->ticket = READ_ONCE(p->ticket);
	s->holder = READ_ONCE(p->holder);
	s->holder_gen = READ_ONCE(p->holder_gen);
	s->len = READ_ONCE(p->len);
	s->deliveries = READ_ONCE(p->deliveries);
	s->deadline = READ_ONCE(p->deadline);
	s->since = READ_ONCE(p->since);
	if (s->state == SHMQ_LEASE_FREE || s->state > SHMQ_LEASE_DEAD ||
	    s->ticket >= head || s->len > r->max_msg)
		return SHMQ_LEASE_FREE;
	return s->state;
}

/* Is the attachment that took this lease still there?  An entry removed
 * by shmqd (its process died or detached) or marked detached by its own
 * process holds nothing any more. */
static inline int holder_alive(const struct ring *r,
			       const struct shmq_lease *s)
{
	if (s->holder >= r->nclients)
		return 0;
	const struct shmq_client *c = &r->clients[s->holder];
	return READ_ONCE(c->pid) != 0 && READ_ONCE(c->gen) == s->holder_gen &&
	       READ_ONCE(c->detached) != SHMQ_CLIENT_DETACHED;
}

/* How many slots handles other than the caller's hold leased, from the
 * counters: every slot in use but those waiting (returned, dead letters)
 * and the caller's own.  Exact under get_lock once what a sweep would
 * notice has been swept; a hint without the lock. */
static inline uint32_t lease_others(const struct ring *r)
{
	const struct shmq_seg_hdr *h = r->hdr;
	uint64_t busy = READ_ONCE(h->leased);
	uint64_t idle = (uint64_t)READ_ONCE(h->returned) + READ_ONCE(h->dead);
	uint64_t own = r->self ? READ_ONCE(r->self->leases) : 0;

	return busy > idle + own ? (uint32_t)(busy - idle - own) : 0;
}

enum lease_mode {
	LEASE_COPY,     /* lease; copy the message into the caller's buffer */
	LEASE_VIEW,     /* lease; point at the lease slot's copy */
	LEASE_SETTLE,   /* a plain get: take and settle at once */
};
/* The get of an acked queue.  For LEASE_SETTLE `out` receives the
 * messages as ring_get's does; otherwise `msgs` does. */
RING_INTERNAL int lease_get(struct ring *r, void *buf, size_t size,
			    struct iovec *out, struct shmq_msg *msgs,
			    size_t n, size_t *got, int timeout_ms,
			    enum lease_mode mode);
/* Lockless: may a get make progress (a returned message, a lease to
 * return, or the end of the stream)?  The ring's own messages are
 * ring_ready's business. */
RING_INTERNAL int lease_ready(struct ring *r, uint64_t head);
/* Under get_lock: frees slots whose lease never committed, recounts the
 * counters from the slots (after EOWNERDEAD). */
RING_INTERNAL int lease_recount(struct ring *r, uint64_t head);
/* Under get_lock, at close --now: drops the returned messages; returns
 * how many. */
RING_INTERNAL uint64_t lease_discard(struct ring *r, uint64_t head);
/* Lockless: adds the lease table's numbers to a stat (segment.c). */
RING_INTERNAL void lease_stat(const struct ring *r, uint64_t head,
			      struct shmq_stat *st);
/* Lockless: SHMQ_ECORRUPT if a slot in use is not well formed. */
RING_INTERNAL int lease_check(const struct ring *r, uint64_t head);
/* The earliest lease deadline, for a getter's sleep; SHMQ_NO_DEADLINE. */
RING_INTERNAL int64_t lease_next_deadline(const struct ring *r);

/* --- segment.c -------------------------------------------------------- */

/* This process's network namespace (the inode of /proc/self/ns/net), or
 * 0 if it cannot tell. */
RING_INTERNAL uint64_t ring_netns(void);

/* --- poll.c: pollable descriptors -------------------------------------- */

/* How many times a non-blocking call that found the queue ready when it
 * armed tries again before it gives up (its descriptor then comes back
 * readable a little later, as after poll_busy). */
#define POLL_TRIES 4
/* Does the handle have a descriptor for `side` (an event loop may be
 * watching it)? */
static inline int poll_watched(const struct ring *r, enum side side)
{
	return __atomic_load_n(&r->poll[side].open, __ATOMIC_ACQUIRE);
}
/* wait.c's wake-ups of pollers on `side`, for a waker that found the
 * side's poll bit set (or for everybody, `all`): sends one datagram to
 * every armed entry, clears their armings, then the bit (see wait.h). */
RING_INTERNAL void poll_wake(struct ring *r, enum side side, int all);
/* Makes the handle's own descriptor for `side` readable. */
RING_INTERNAL void poll_kick(struct ring *r, enum side side);
/* A non-blocking call on a watched `side` could not have the lock: the
 * descriptor is emptied and comes back readable after a short delay that
 * grows while the lock stays held. */
RING_INTERNAL void poll_busy(struct ring *r, enum side side);
/* ...and one that had it: the next delay starts short again. */
static inline void poll_lock_taken(struct ring *r, enum side side)
{
	if (__atomic_load_n(&r->poll[side].retry_ms, __ATOMIC_RELAXED))
		__atomic_store_n(&r->poll[side].retry_ms, 0, __ATOMIC_RELAXED);
}
/* A non-blocking call on `side` found nothing to do: if the handle has a
 * descriptor for it, arm it and look again.  SHMQ_OK: ready after all,
 * try again (*tries counts these, start at 0); SHMQ_EAGAIN: return it. */
RING_INTERNAL int poll_nowait(struct ring *r, enum side side, uint64_t len,
			      int *tries);

#endif /* SHMQ_RING_IMPL_H */
