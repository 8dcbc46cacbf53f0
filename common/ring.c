/*
 * ring.c - the queue itself: put, get and close on a mapped segment.
 *
 * This file is the data path.  It must never make a system call while the
 * queue is neither full nor empty, never trust a byte of the segment, and
 * never leave the segment in a state that a process killed at the current
 * instruction could not be recovered from.  The layout and its crash rules
 * are described in proto/shmq_layout.h; the invariants they rely on are:
 *
 *   I1  head <= tail.count <= head + capacity, and both only grow.
 *   I2  Slots for tickets [head, tail) hold committed messages.  Only the
 *       holder of put_lock writes slots or data, and only at tickets >= tail
 *       and at data offsets past the oldest message still queued, so the
 *       slot and bytes of every ticket < tail stay intact until the ticket
 *       ring_slots later is written.
 *   I3  tail changes only by the put_lock holder's commit CAS and by
 *       close's atomic OR; head only by the get_lock holder's commit store.
 *   I4  head_hint <= head and tail_hint <= tail.count: a hint may be stale,
 *       which can make a queue look fuller or emptier, never the reverse.
 *   I5  The wpos hint is written after the commit it describes, under
 *       put_lock, and is used only while wpos_ticket equals tail; a
 *       producer that dies holding put_lock invalidates it (repair).
 *
 * What costs: every cache line that moves between the producers' and the
 * consumers' CPUs (tens of ns each on the machines we measured).  So the
 * put path reads only lines of its own side (tail, its hints, the slot it
 * writes), and the get path learns of new messages from the slot it is
 * about to read (its published mark) and reads `tail` only when it must:
 * to tell "empty" from "closed" and to cover a producer that died between
 * its commit and the mark.  A put also asks for the slot and the data
 * lines it will write a few messages later (prefetch_for_write,
 * prefetch_data_for_write), and a waiter lets a busy other side get a
 * stride ahead before it looks (see "Strides").
 *
 * Waiting and waking are wait.c's (wait.h), pollable descriptors
 * poll.c's; segment geometry, attach and statistics segment.c's; the
 * attachment table clients.c's.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <string.h>
#include <time.h>

#include "cpu.h"
#include "ring_impl.h"
#include "wait.h"

void (*ring_test_hook)(enum ring_hook_point point);

#define LOCK_SPINS         200
#define TRY_LOCK_GRACE_NS  10000000ll   /* timeout 0 still waits for a lock
					   holder, but not for a stalled one
					   (unless an event loop polls the
					   side: see side_lock) */
#define CLOSE_LOCK_MS    1000
/* A batch commits as it goes once it has moved this many payload bytes:
 * the other side can start on the first messages while this one copies
 * the rest (with a small capacity it would otherwise wait for the whole
 * batch).  Batches of small messages still commit once per call. */
#define BATCH_COMMIT_BYTES (32u << 10)

/*
 * Asking for a line before writing it.  Every slot line is read by the
 * consumers once per lap, and a store to it cannot complete until the line
 * has been taken back from that CPU's cache; the locked instruction of the
 * commit waits for it.  Measured here, that wait was half of a
 * single-message put (~50 of ~100 ns).  Asked for a few messages ahead,
 * ownership arrives while the puts in between run.  A read prefetch would
 * do the opposite (the line arrives shared, and the store still waits),
 * so on x86 this is PREFETCHW or nothing.
 */
#define PREFETCH_SLOTS_AHEAD 4

static inline void prefetch_for_write(const struct ring *r, const void *p)
{
	if (!r->prefetchw)
		return;
	cpu_prefetchw(p);
}

/*
 * The same for the data ring: a message longer than SHMQ_INLINE_MAX is
 * copied into lines that the consumers read one lap earlier, and each
 * store waits for its line to come back, one transfer per line (~200 ns
 * between two CCDs here, against ~25 ns on one core).  A put asks for the
 * lines of the message PREFETCH_DATA_AHEAD puts later, supposing it is
 * as long as this one (streams mostly are), its first PREFETCH_DATA_MAX
 * bytes at most (beyond that the copy is long enough for the hardware's
 * own prefetchers).  Only lines that are certainly free are asked for:
 * at most t - head messages of at most amax bytes are queued, plus the
 * padding of one wrap, so the data_size minus that many bytes after our
 * position hold nothing a consumer may be reading.  Measured here, 256 B
 * messages: 5.7 -> 9.5-10 M msgs/s between two CCDs, no change on one
 * core.  (The mirror image on the get side, a read prefetch of the
 * message a few ahead once its mark says it is committed, made no
 * difference in either state and was left out.)
 */
#define PREFETCH_DATA_AHEAD 4
#define PREFETCH_DATA_MAX 1024u

void ring_tune(struct ring *r)
{
	r->amax = (uint32_t)ring_bytes(r->max_msg);
	/* The slot asked for must never hold a queued message: with fewer
	 * spare slots than that, a nearly full queue would have the put take
	 * a line that a consumer is reading. */
	r->prefetchw = cpu_has_prefetchw() &&
		       r->mask + 1 - r->capacity >= PREFETCH_SLOTS_AHEAD;
}

/* ------------------------------------------------------------------ */
/* Slots                                                              */


/* Where the next message goes: just after the message before it.  (off
 * and bytes are kept apart so that the compiler does not fetch them as one
 * 16-byte load of values it has just stored one by one: such a load waits
 * until those stores reach the cache, behind the slot line in flight.) */
struct wpos {
	uint64_t off;       /* in the endless byte stream */
	uint64_t pos;       /* off modulo data_size */
	uint64_t bytes;     /* payload bytes before it */
};

static int next_wpos_slot(const struct ring *r, uint64_t tail,
			  struct wpos *w)
{
	struct shmq_slot s;

	if (tail == 0) {
		w->off = w->bytes = w->pos = 0;
		return SHMQ_OK;
	}
	if (read_slot(r, tail - 1, &s) != SHMQ_OK)
		return SHMQ_ECORRUPT;
	uint64_t a = ring_bytes(s.len);
	w->off = s.off + a;
	w->pos = s.pos + a;     /* <= data_size: both are 16-aligned */
	w->bytes = s.bytes + s.len;
	return SHMQ_OK;
}

/* The same under put_lock, from the producers' own hint when it is for
 * this tail: the slot before is on a line the consumers are reading. */
static inline __attribute__((always_inline)) int
next_wpos(const struct ring *r, uint64_t tail, struct wpos *w)
{
	const struct shmq_seg_hdr *h = r->hdr;

	if (READ_ONCE(h->wpos_ticket) != tail)
		return next_wpos_slot(r, tail, w);
	w->off = READ_ONCE(h->wpos_off);
	w->bytes = READ_ONCE(h->wpos_bytes);
	w->pos = READ_ONCE(h->wpos_pos);
	if (w->pos > r->data_size || w->pos % SHMQ_DATA_ALIGN != 0)
		return SHMQ_ECORRUPT;
	return SHMQ_OK;
}

/* After a commit that made `tail` the next ticket: remember where it goes. */
static void save_wpos(struct ring *r, uint64_t tail, const struct wpos *w)
{
	struct shmq_seg_hdr *h = r->hdr;

	WRITE_ONCE(h->wpos_off, w->off);
	WRITE_ONCE(h->wpos_bytes, w->bytes);
	WRITE_ONCE(h->wpos_pos, w->pos);
	WRITE_ONCE(h->wpos_ticket, tail);
}

/* Does a message of `len` bytes fit at `w`, with the oldest queued message
 * at ticket `head` and `tail` the next ticket?  1 yes, 0 no, or an error.
 * `oldest` caches the head slot across the messages of one batch. */
static int room_for(const struct ring *r, uint64_t head, uint64_t tail,
		    const struct wpos *w, uint64_t len,
		    struct shmq_slot *oldest)
{
	uint64_t held = 0, held_bytes = 0;

	/* (Unlikely: the plain put is the path that falls through.) */
	if (__builtin_expect(r->leases != NULL, 0)) {
		/* Acked: leased messages left the ring but still count.  A
		 * getter raises `leased` before it advances head, and an ack
		 * lowers it after freeing the slot, so with head read first
		 * the sum can only be overstated. */
		__atomic_thread_fence(__ATOMIC_ACQUIRE);
		held = READ_ONCE(r->hdr->leased);
		held_bytes = READ_ONCE(r->hdr->lease_bytes);
	}
	if (tail - head + held >= r->capacity)
		return 0;
	/* Empty: any message up to max_msg fits.  Without a byte budget the
	 * data ring holds capacity + 1 messages of the largest size (see
	 * plan_segment), so the count is the only limit: no need to read the
	 * consumers' slot, a cache line they are working on. */
	if (r->max_bytes == 0)
		return 1;
	if (tail == head)
		return held_bytes + len <= r->max_bytes;
	if (oldest->ticket != head &&
	    read_slot(r, head, oldest) != SHMQ_OK)
		return SHMQ_ECORRUPT;
	if (oldest->off > w->off || oldest->bytes > w->bytes)
		return SHMQ_ECORRUPT;
	uint64_t dlen = ring_bytes(len);
	uint64_t end = w->off + dlen;
	if (w->pos + dlen > r->data_size)
		end += r->data_size - w->pos;   /* wraps: skip the tail end */
	if (end - oldest->off > r->data_size)
		return 0;
	if (w->bytes - oldest->bytes + len + held_bytes > r->max_bytes)
		return 0;
	return 1;
}

/* ------------------------------------------------------------------ */
/* Locks                                                              */

static pthread_mutex_t *side_mutex(const struct ring *r, enum side side)
{
	return side == PUT_SIDE ? &r->hdr->put_lock.mutex
				: &r->hdr->get_lock.mutex;
}


/* Under get_lock, after close --now: defined with the get path. */
static inline uint64_t discard(struct ring *r, uint64_t tail_word);

/* After EOWNERDEAD: the previous holder died somewhere inside its critical
 * section.  Commits are single atomic stores, so there is nothing to undo;
 * check what the side owns, and finish an interrupted close --now. */
static int repair(struct ring *r, enum side side)
{
	struct shmq_seg_hdr *h = r->hdr;
	uint64_t tw = LOAD_ACQ(h->tail);
	uint64_t tail = tw & SHMQ_TAIL_COUNT;
	uint64_t head = LOAD_ACQ(h->head);
	struct wpos w;

	if (head > tail || tail - head > r->capacity)
		return SHMQ_ECORRUPT;
	if (side == PUT_SIDE) {
		/* The dead holder may have looked up the real head and written
		 * slots up to it + capacity - 1, over the slot of the older
		 * head_hint, which room_for() would then read as corrupt: the
		 * real head is always a valid hint and its slot is intact. */
		WRITE_ONCE(h->head_hint, head);
		/* It may also have died halfway through the wpos hint. */
		WRITE_ONCE(h->wpos_ticket, UINT64_MAX);
		return next_wpos_slot(r, tail, &w);
	}
	if (READ_ONCE(h->tail_hint) > tail)
		WRITE_ONCE(h->tail_hint, tail);
	/* A getter of an acked queue may have died between filling a lease
	 * slot and its commit, or between a slot and its counters. */
	if (r->leases && lease_recount(r, head) != SHMQ_OK)
		return SHMQ_ECORRUPT;
	if (tw & SHMQ_TAIL_NOW)
		discard(r, tw);         /* also after now_pending */
	return SHMQ_OK;
}

/* Takes one side's lock.  A short spin first: the holders' critical
 * sections are a copy long, shorter than a futex sleep.  A non-blocking
 * call then waits TRY_LOCK_GRACE_NS for a holder that lost its CPU; but
 * not on a side whose descriptor an event loop watches (`polled`): that
 * loop must never block, so the call returns SHMQ_EAGAIN after the spin
 * and the descriptor comes back readable a little later (poll_busy). */
static int side_lock(struct ring *r, enum side side, struct timeout *to,
		     int polled)
{
	pthread_mutex_t *m = side_mutex(r, side);
	int rc = pthread_mutex_trylock(m);

	for (int i = 0; rc == EBUSY && i < LOCK_SPINS; i++) {
		cpu_relax();
		/* Critical sections last a copy; a lock held this long
		 * belongs to a process that lost its CPU, maybe to us.  (An
		 * event loop gives the CPU away in its own wait instead.) */
		if ((i & 31) == 31 && !polled)
			sched_yield();
		rc = pthread_mutex_trylock(m);
	}
	if (rc == EBUSY) {
		if (to->ms == SHMQ_FOREVER) {
			rc = pthread_mutex_lock(m);
		} else if (to->ms == SHMQ_NOWAIT && polled) {
			rc = ETIMEDOUT;
		} else {
			struct timespec at;
			const struct timespec *dl = &at;
			if (to->ms == SHMQ_NOWAIT)
				ns_to_ts(mono_ns() + TRY_LOCK_GRACE_NS, &at);
			else
				dl = timeout_deadline(to);
			rc = pthread_mutex_clocklock(m, CLOCK_MONOTONIC, dl);
		}
	}
	switch (rc) {
	case 0:
		return SHMQ_OK;
	case EOWNERDEAD: {
		int st = repair(r, side);
		pthread_mutex_consistent(m);
		if (st != SHMQ_OK)
			pthread_mutex_unlock(m);
		return st;
	}
	case ETIMEDOUT:
		return to->ms == SHMQ_NOWAIT ? SHMQ_EAGAIN : SHMQ_ETIMEDOUT;
	default:
		/* ENOTRECOVERABLE or EINVAL: the lock word was damaged. */
		return SHMQ_ECORRUPT;
	}
}

static void side_unlock(struct ring *r, enum side side)
{
	pthread_mutex_unlock(side_mutex(r, side));
}

/* Could an operation on `side` make progress now?  For put, `len` is the
 * next message's length.  A "yes" only costs a retry under the lock; a
 * "no" must be right about every commit that came before it, which holds
 * because it reads the same fields the lock holders commit. */
int ring_ready(struct ring *r, enum side side, uint64_t len)
{
	struct shmq_seg_hdr *h = r->hdr;

	uint64_t head = LOAD_SC(h->head);

	/* The next message's own mark first: the line a consumer is about
	 * to need anyway, instead of the producers' busy tail. */
	if (side == GET_SIDE &&
	    LOAD_SC(r->slots[head & r->mask].published) == head)
		return 1;
	if (side == GET_SIDE && r->leases)
		return lease_ready(r, head);
	uint64_t tw = LOAD_SC(h->tail);

	if (tw & SHMQ_TAIL_CLOSED)
		return 1;
	uint64_t tail = tw & SHMQ_TAIL_COUNT;
	if (side == GET_SIDE)
		return head != tail;
	if (head > tail)
		return 1;       /* torn by a racing commit: retry */
	struct wpos w;
	struct shmq_slot oldest = { .ticket = ~UINT64_C(0) };
	if (next_wpos_slot(r, tail, &w) != SHMQ_OK)
		return 1;
	return room_for(r, head, tail, &w, len, &oldest) != 0;
}

/* ------------------------------------------------------------------ */
/* Put                                                                */

/* A put in progress under put_lock: what the producer saw when it took
 * the lock, and where it has got to. */
struct put_state {
	uint64_t tw;            /* tail word when we started */
	uint64_t t;             /* next ticket to write */
	uint64_t head;          /* a head known to be <= the real one */
	int fresh;              /* head was read from the real head */
	struct wpos w;          /* where the next message goes */
	struct shmq_slot oldest;
};

static inline __attribute__((always_inline)) int
put_begin(struct ring *r, struct put_state *ps)
{
	struct shmq_seg_hdr *h = r->hdr;

	ps->tw = LOAD_ACQ(h->tail);
	if (ps->tw & SHMQ_TAIL_CLOSED)
		return SHMQ_ECLOSED;
	ps->t = ps->tw & SHMQ_TAIL_COUNT;
	ps->head = READ_ONCE(h->head_hint);
	ps->fresh = 0;
	ps->oldest.ticket = ~UINT64_C(0);
	if (ps->head > ps->t || ps->t - ps->head > r->capacity) {
		ps->head = LOAD_ACQ(h->head);
		ps->fresh = 1;
		if (ps->head > ps->t || ps->t - ps->head > r->capacity)
			return SHMQ_ECORRUPT;
	}
	return next_wpos(r, ps->t, &ps->w) == SHMQ_OK ? SHMQ_OK
						      : SHMQ_ECORRUPT;
}

/* Finds room for one more message of `len` bytes and moves ps->w past a
 * wrap if it needs one.  SHMQ_OK, RING_WAIT when full, or an error. */
static inline __attribute__((always_inline)) int
put_room(struct ring *r, struct put_state *ps, uint64_t len)
{
	uint64_t t0 = ps->tw & SHMQ_TAIL_COUNT;

	if (len > r->max_msg)
		return SHMQ_E2BIG;
	int fit = room_for(r, ps->head, ps->t, &ps->w, len, &ps->oldest);
	if (fit == 0 && !ps->fresh) {
		/* The hint said full; ask the real head once. */
		uint64_t real = LOAD_ACQ(r->hdr->head);
		ps->fresh = 1;
		if (real < ps->head || real > t0)
			return SHMQ_ECORRUPT;
		ps->head = real;
		fit = room_for(r, ps->head, ps->t, &ps->w, len, &ps->oldest);
	}
	if (fit < 0)
		return fit;
	if (fit == 0) {
		/* The wait asks ring_ready(), which works from the slots: drop the
		 * hint, so that a damaged one cannot make the two disagree
		 * (the put saying "full", ring_ready() "room") for ever. */
		WRITE_ONCE(r->hdr->wpos_ticket, UINT64_MAX);
		return RING_WAIT;
	}
	if (ps->w.pos + ring_bytes(len) > r->data_size) {
		ps->w.off += r->data_size - ps->w.pos;
		ps->w.pos = 0;
	}
	return SHMQ_OK;
}

/*
 * Writing a slot.  A put builds its slot in registers, inline bytes
 * included, and writes it with one 8-byte and three 16-byte stores.  Why
 * it matters: x86 commits stores in order, the store to a slot line waits
 * until that line has come back from the consumers' CPU, and every later
 * store waits behind it in a store buffer of limited size.  The fewer
 * stores a message costs, the more slot lines a batch has on their way at
 * once (measured here: eight more stores per message took a minimal batch
 * loop from ~110 to ~40 M msg/s).  `published` is left alone: it still
 * names an older ticket until the commit.
 */
typedef uint64_t slot_vec __attribute__((vector_size(16), may_alias));

#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
/* n <= 8 bytes at p, read exactly (never past p + n), as the low bytes of
 * a word. */
static inline uint64_t load_word(const uint8_t *p, size_t n)
{
	uint64_t v = 0;
	size_t i = 0;

	if (n == 8) {
		memcpy(&v, p, 8);
		return v;
	}
	if (n & 4) {
		uint32_t x;
		memcpy(&x, p, 4);
		v = x;
		i = 4;
	}
	if (n & 2) {
		uint16_t x;
		memcpy(&x, p + i, 2);
		v |= (uint64_t)x << (i * 8);
		i += 2;
	}
	if (n & 1)
		v |= (uint64_t)p[i] << (i * 8);
	return v;
}

static inline __attribute__((always_inline)) void
slot_write(struct shmq_slot *s, uint64_t ticket, const struct wpos *w,
	   uint64_t len, const uint8_t *src)
{
	uint64_t in0 = 0, in1 = 0, in2 = 0;

	static_assert(SHMQ_INLINE_MAX == 24, "three words inline");
	if (src && len <= SHMQ_INLINE_MAX) {
		in0 = load_word(src, len < 8 ? len : 8);
		if (len > 8)
			in1 = load_word(src + 8, len < 16 ? len - 8 : 8);
		if (len > 16)
			in2 = load_word(src + 16, len - 16);
	}
	WRITE_ONCE(s->ticket, ticket);
	slot_vec *v = (slot_vec *)(void *)s;
	v[1] = (slot_vec){ w->off, w->bytes };
	v[2] = (slot_vec){ w->pos | len << 32, in0 };
	v[3] = (slot_vec){ in1, in2 };
}
#else
static inline void slot_write(struct shmq_slot *s, uint64_t ticket,
			      const struct wpos *w, uint64_t len,
			      const uint8_t *src)
{
	s->ticket = ticket;
	s->off = w->off;
	s->bytes = w->bytes;
	s->pos = (uint32_t)w->pos;
	s->len = (uint32_t)len;
	if (src && len <= SHMQ_INLINE_MAX && len)
		memcpy(s->inline_data, src, len);
}
#endif

static_assert(offsetof(struct shmq_slot, off) == 16 &&
	      offsetof(struct shmq_slot, bytes) == 24 &&
	      offsetof(struct shmq_slot, pos) == 32 &&
	      offsetof(struct shmq_slot, len) == 36 &&
	      offsetof(struct shmq_slot, inline_data) == 40,
	      "slot_write's picture of a slot");

static inline void prefetch_data_for_write(const struct ring *r,
					   const struct put_state *ps,
					   uint64_t a)
{
	uint64_t ahead = a * PREFETCH_DATA_AHEAD;
	uint64_t n = a < PREFETCH_DATA_MAX ? a : PREFETCH_DATA_MAX;
	uint64_t from = ps->w.pos + ahead;

	if (!r->prefetchw || from + n > r->data_size ||
	    (ps->t - ps->head + 1) * r->amax + ahead + n > r->data_size)
		return;
	for (uint64_t o = from & ~(uint64_t)(SHMQ_CACHELINE - 1);
	     o < from + n; o += SHMQ_CACHELINE)
		cpu_prefetchw(r->data + o);
}

/* Places one message of `len` bytes after the ones placed so far: its
 * slot, and its bytes from `src` unless src is NULL (zero copy: *data is
 * where the caller writes them).  SHMQ_OK, RING_WAIT, or an error. */
static inline __attribute__((always_inline)) int
put_place(struct ring *r, struct put_state *ps, uint64_t len,
	  const void *src, uint8_t **data)
{
	int rc = put_room(r, ps, len);

	if (rc != SHMQ_OK)
		return rc;
	uint64_t a = ring_bytes(len);
	struct shmq_slot *s = &r->slots[ps->t & r->mask];
	prefetch_for_write(r, &r->slots[(ps->t + PREFETCH_SLOTS_AHEAD) &
					r->mask]);
	slot_write(s, ps->t, &ps->w, len, src);
	if (a)
		prefetch_data_for_write(r, ps, a);
	if (a && src)
		memcpy(r->data + ps->w.pos, src, len);
	if (data)
		*data = a ? r->data + ps->w.pos : s->inline_data;
	ps->w.off += a;
	ps->w.pos += a;
	ps->w.bytes += len;
	ps->t++;
	return SHMQ_OK;
}

/* Makes everything placed since put_begin visible, with one CAS. */
static inline __attribute__((always_inline)) int
put_commit(struct ring *r, struct put_state *ps, size_t *done)
{
	struct shmq_seg_hdr *h = r->hdr;
	uint64_t n = ps->t - (ps->tw & SHMQ_TAIL_COUNT);
	uint64_t tw = ps->tw;

	*done = 0;
	if (n == 0)
		return SHMQ_OK;
	HOOK(RING_HOOK_PUT_COPIED);
	/* The commit.  It fails only if close set a bit since we loaded tail:
	 * then nothing we wrote becomes visible. */
	if (!__atomic_compare_exchange_n(&h->tail, &tw, tw + n, 0,
					 __ATOMIC_SEQ_CST, __ATOMIC_ACQUIRE))
		return (tw & SHMQ_TAIL_CLOSED) ? SHMQ_ECLOSED : SHMQ_ECORRUPT;
	/* Tell consumers through the slots they will read anyway. */
	for (uint64_t t = ps->t - n; t < ps->t; t++)
		__atomic_store_n(&r->slots[t & r->mask].published, t,
				 __ATOMIC_RELEASE);
	if (ps->fresh)
		WRITE_ONCE(h->head_hint, ps->head);
	save_wpos(r, ps->t, &ps->w);
	ps->tw = tw + n;
	HOOK(RING_HOOK_PUT_COMMITTED);
	*done = n;
	return SHMQ_OK;
}

static int put_locked(struct ring *r, const struct iovec *msgs, size_t n,
		      size_t *done)
{
	struct put_state ps;
	uint64_t since = 0;
	size_t k;
	int rc;

	*done = 0;
	rc = put_begin(r, &ps);
	if (rc != SHMQ_OK)
		return rc;
	for (size_t i = 0; rc == SHMQ_OK && i < n; i++) {
		uint64_t len = msgs[i].iov_len;
		/* (An empty message may come with iov_base NULL, which
		 * put_place would take for zero copy.) */
		rc = put_place(r, &ps, len, len ? msgs[i].iov_base : "", NULL);
		if (rc != SHMQ_OK)
			break;
		since += len;
		if (since >= BATCH_COMMIT_BYTES && i + 1 < n) {
			since = 0;
			rc = put_commit(r, &ps, &k);
			*done += k;
			if (rc != SHMQ_OK)
				return rc;      /* closed: nothing placed since */
			wait_notify(r, &r->hdr->data_futex);
		}
	}
	if (rc == SHMQ_ECORRUPT)
		return rc;
	/* Commit what was placed, then report why the batch stopped. */
	int crc = put_commit(r, &ps, &k);
	*done += k;
	return crc != SHMQ_OK ? crc : rc;
}

/* ------------------------------------------------------------------ */
/* Blocking                                                           */

int ring_run_locked(struct ring *r, enum side side, int timeout_ms,
		    const uint64_t *wait_len, attempt_fn attempt, void *ctx)
{
	struct wait_call wc = { 0 };
	struct timeout to;
	int rc, tries = 0;

	timeout_init(&to, timeout_ms);
	for (;;) {
		int polled = to.ms == SHMQ_NOWAIT && poll_watched(r, side);
		rc = side_lock(r, side, &to, polled);
		if (rc == SHMQ_EAGAIN && polled)
			/* Not armed: the lock holder wakes nobody when it lets
			 * go (and a stalled one never does), so the poller
			 * must come back by itself. */
			poll_busy(r, side);
		if (rc != SHMQ_OK)
			break;
		if (polled)
			poll_lock_taken(r, side);
		HOOK(side == PUT_SIDE ? RING_HOOK_PUT_LOCKED
				      : RING_HOOK_GET_LOCKED);
		int progressed = 0;
		rc = attempt(r, ctx, &progressed);
		if (rc == RING_HOLD) {
			rc = SHMQ_OK;
			break;
		}
		side_unlock(r, side);
		/* Wake the other side after unlocking, so that our own side
		 * does not queue behind the system call.  (A batch that
		 * commits as it goes also wakes as it goes, lock held: the
		 * other side's early start is the point of it.) */
		if (progressed) {
			wait_note_cpu(r, side);
			wait_notify(r, side == PUT_SIDE ? &r->hdr->data_futex
						   : &r->hdr->space_futex);
		}
		if (rc != RING_WAIT)
			break;
		if (to.ms == SHMQ_NOWAIT) {
			/* Nothing to do: arm the handle's descriptor, if it
			 * has one (poll.c). */
			rc = poll_nowait(r, side, *wait_len, &tries);
			if (rc != SHMQ_OK)
				break;
			continue;
		}
		rc = wait_for(r, side, *wait_len, &to, &wc);
		if (rc != SHMQ_OK)
			break;
	}
	/* However the call ends, it no longer waits (wait.c counted it in
	 * the handle's wait record when it first slept). */
	if (wc.recorded)
		rc = ring_client_wait_end(r, side, &wc, rc);
	return rc;
}

struct put_args {
	const struct iovec *msgs;
	size_t n, done;
	uint64_t next_len;
};

static int attempt_put(struct ring *r, void *ctx, int *progressed)
{
	struct put_args *a = ctx;
	size_t k;
	int rc = put_locked(r, a->msgs + a->done, a->n - a->done, &k);

	if (k) {
		a->done += k;
		*progressed = 1;
	}
	if (rc == RING_WAIT)
		a->next_len = a->msgs[a->done].iov_len;
	return rc;
}

int ring_put(struct ring *r, const struct iovec *msgs, size_t n,
	     size_t *done, int timeout_ms)
{
	struct put_args a = { .msgs = msgs, .n = n };
	int rc = SHMQ_OK;

	if (n)
		rc = ring_run_locked(r, PUT_SIDE, timeout_ms, &a.next_len,
				attempt_put, &a);
	if (done)
		*done = a.done;
	return rc;
}

/* Zero copy, put side: place one message and keep the lock until it is
 * committed or cancelled. */
struct reserve_args {
	uint64_t len;
	uint8_t *data;
	struct put_state ps;
};

static int attempt_reserve(struct ring *r, void *ctx, int *progressed)
{
	(void)progressed;
	struct reserve_args *a = ctx;
	int rc = put_begin(r, &a->ps);

	if (rc == SHMQ_OK)
		rc = put_place(r, &a->ps, a->len, NULL, &a->data);
	return rc == SHMQ_OK ? RING_HOLD : rc;
}

int ring_reserve(struct ring *r, size_t len, void **data, int timeout_ms)
{
	struct reserve_args a = { .len = len };
	int rc;

	if (r->held)
		return SHMQ_EINVAL;
	rc = ring_run_locked(r, PUT_SIDE, timeout_ms, &a.len, attempt_reserve, &a);
	if (rc == SHMQ_OK) {
		r->held = PUT_SIDE + 1;
		r->held_by = pthread_self();
		r->held_tw = a.ps.tw;
		r->held_head = a.ps.head;
		r->held_off = a.ps.w.off;
		r->held_bytes = a.ps.w.bytes;
		r->held_pos = a.ps.w.pos;
		*data = a.data;
	}
	return rc;
}

int ring_commit(struct ring *r, int cancel)
{
	struct put_state ps = {
		.tw = r->held_tw,
		.head = r->held_head,
		.w = { .off = r->held_off, .pos = r->held_pos,
		       .bytes = r->held_bytes },
	};
	size_t done;
	int rc = SHMQ_OK;

	if (r->held != PUT_SIDE + 1 || !pthread_equal(r->held_by, pthread_self()))
		return SHMQ_EINVAL;
	ps.t = (ps.tw & SHMQ_TAIL_COUNT) + !cancel;
	if (!cancel)
		rc = put_commit(r, &ps, &done);
	r->held = 0;
	side_unlock(r, PUT_SIDE);
	if (!cancel && rc == SHMQ_OK)
		wait_notify(r, &r->hdr->data_futex);
	return rc;
}

/* ------------------------------------------------------------------ */
/* Get                                                                */

/* The data path's helpers of get are static inline here, so that the
 * plain get (attempt_get, attempt_view) runs without a call per message;
 * lease.c, the acked queues' get, reaches them through the thin ring_*
 * wrappers below (ring_impl.h). */

static inline __attribute__((always_inline)) int eos(const struct ring *r)
{
	return (LOAD_ACQ(r->hdr->state_flags) & SHMQ_ST_PRODUCER_LOST)
		       ? SHMQ_EOS_LOST
		       : SHMQ_EOS;
}

/* Under get_lock, after close --now: drop everything still queued (and,
 * on an acked queue, every message waiting for redelivery); returns how
 * many.  The order (discard_from, then head) lets repair() finish it
 * after a crash. */
static inline uint64_t discard(struct ring *r, uint64_t tail_word)
{
	struct shmq_seg_hdr *h = r->hdr;
	uint64_t tail = tail_word & SHMQ_TAIL_COUNT;
	uint64_t head = READ_ONCE(h->head);
	uint64_t n = r->leases ? lease_discard(r, head) : 0;

	if (head >= tail)
		return n;
	if (READ_ONCE(h->discard_from) == SHMQ_NO_DISCARD)
		WRITE_ONCE(h->discard_from, head);
	__atomic_store_n(&h->head, tail, __ATOMIC_SEQ_CST);
	return n + (tail - head);
}

/* Under get_lock: is message `head` queued?  Asks, cheapest first, the
 * known tail (*tail), the slot's published mark, and (once per call,
 * *looked) the real tail, which is the producers' busiest cache line.
 * SHMQ_OK, RING_WAIT, end of stream, or an error. */
static inline __attribute__((always_inline)) int
get_avail(struct ring *r, uint64_t head, uint64_t *tail, int *looked)
{
	struct shmq_seg_hdr *h = r->hdr;

	if (head < *tail)
		return SHMQ_OK;
	if (LOAD_ACQ(r->slots[head & r->mask].published) == head) {
		*tail = head + 1;
		return SHMQ_OK;
	}
	if (*looked)
		return RING_WAIT;
	*looked = 1;
	uint64_t tw = LOAD_ACQ(h->tail);
	if (tw & SHMQ_TAIL_NOW) {
		/* A batch that took messages since its last commit stops
		 * here and commits them: the discard works from the
		 * committed head, so it would count them as discarded too,
		 * and the batch's commit would then move head back.  The
		 * next attempt discards and reports the end. */
		if (head != READ_ONCE(h->head))
			return RING_WAIT;
		discard(r, tw);
		return eos(r);
	}
	*tail = tw & SHMQ_TAIL_COUNT;
	if (*tail < head || *tail - head > r->capacity)
		return SHMQ_ECORRUPT;
	if (*tail == head)
		return (tw & SHMQ_TAIL_CLOSED) ? eos(r) : RING_WAIT;
	WRITE_ONCE(h->tail_hint, *tail);
	return SHMQ_OK;
}

/* Under get_lock: has close --now been asked for?  Then finish its
 * discard (its closer may have died or given up on our lock) and report
 * end of stream at once. */
static inline __attribute__((always_inline)) int closed_now(struct ring *r)
{
	if (!READ_ONCE(r->hdr->now_pending))
		return 0;
	uint64_t tw = LOAD_ACQ(r->hdr->tail);
	if (!(tw & SHMQ_TAIL_NOW))
		return 0;       /* asked, not yet set: keep going */
	discard(r, tw);
	return 1;
}

/* Under get_lock: our head, and the tail hint if it is believable. */
static inline __attribute__((always_inline)) uint64_t
get_start(struct ring *r, uint64_t *tail)
{
	uint64_t head = READ_ONCE(r->hdr->head);

	*tail = READ_ONCE(r->hdr->tail_hint);
	if (*tail < head || *tail - head > r->capacity)
		*tail = head;
	return head;
}

/* The get commit, and the barrier that orders it before wait_notify's
 * look at the producers' futex. */
static inline __attribute__((always_inline)) void
get_commit(struct ring *r, uint64_t head)
{
	HOOK(RING_HOOK_GET_COPIED);
	__atomic_store_n(&r->hdr->head, head, __ATOMIC_SEQ_CST);
	HOOK(RING_HOOK_GET_COMMITTED);
}

int ring_eos(const struct ring *r)
{
	return eos(r);
}

int ring_get_avail(struct ring *r, uint64_t head, uint64_t *tail,
		   int *looked)
{
	return get_avail(r, head, tail, looked);
}

int ring_closed_now(struct ring *r)
{
	return closed_now(r);
}

uint64_t ring_get_start(struct ring *r, uint64_t *tail)
{
	return get_start(r, tail);
}

void ring_get_commit(struct ring *r, uint64_t head)
{
	get_commit(r, head);
}

struct get_args {
	uint8_t *buf;
	size_t size;
	struct iovec *out;
	size_t n, got;
	/* First attempt of a call that may wait: trust the published marks
	 * alone.  Finding the queue empty then costs no look at `tail`,
	 * whose line the producer would have to take back for its next
	 * commit; the wait that follows looks at it before sleeping, and
	 * now and then while spinning. */
	int hint_only;
	uint64_t first;         /* ticket of the first message taken */
};

static int attempt_get(struct ring *r, void *ctx, int *progressed)
{
	struct get_args *a = ctx;
	uint64_t tail, head = get_start(r, &tail), committed = head;
	uint64_t since = 0;
	size_t used = 0, k = 0;
	int rc = SHMQ_OK, looked = a->hint_only;

	a->hint_only = 0;
	if (closed_now(r))
		return eos(r);
	while (k < a->n &&
	       (rc = get_avail(r, head, &tail, &looked)) == SHMQ_OK) {
		struct shmq_slot s;
		if (read_slot(r, head, &s) != SHMQ_OK) {
			rc = SHMQ_ECORRUPT;
			break;
		}
		/* In a batch, each message starts 16-aligned (relative to
		 * buf), so that a caller may read it as a struct. */
		if (k > 0) {
			size_t al = align_up(used, SHMQ_DATA_ALIGN);
			if (al > a->size)
				break;
			used = al;
		}
		if (s.len > a->size - used) {
			if (k == 0) {
				a->out[0].iov_base = NULL;
				a->out[0].iov_len = s.len;
				rc = SHMQ_EMSGSIZE;
			}
			break;
		}
		if (s.len)
			memcpy(a->buf + used, slot_data(r, head, &s), s.len);
		/* shmq_get() accepts buf NULL with size 0 (for empty messages);
		 * NULL + 0 is undefined, and fatal under UBSan. */
		a->out[k].iov_base = a->buf ? a->buf + used : NULL;
		a->out[k].iov_len = s.len;
		used += s.len;
		k++;
		head++;
		since += s.len;
		if (since >= BATCH_COMMIT_BYTES && k < a->n) {
			since = 0;
			get_commit(r, head);
			committed = head;
			wait_notify(r, &r->hdr->space_futex);
		}
	}
	if (k) {
		if (head != committed)
			get_commit(r, head);
		a->got = k;
		a->first = head - k;
		*progressed = 1;
		return SHMQ_OK;
	}
	return rc;
}

int ring_get(struct ring *r, void *buf, size_t size, struct iovec *out,
	     size_t n, size_t *got, int timeout_ms)
{
	return ring_get_seq(r, buf, size, out, n, got, timeout_ms, NULL);
}

int ring_get_seq(struct ring *r, void *buf, size_t size, struct iovec *out,
		 size_t n, size_t *got, int timeout_ms, uint64_t *first)
{
	struct get_args a = { .buf = buf, .size = size, .out = out, .n = n,
			      .hint_only = timeout_ms != SHMQ_NOWAIT };
	static const uint64_t zero;
	int rc = SHMQ_EINVAL;

	if (r->leases)
		return lease_get(r, buf, size, out, NULL, n, got, timeout_ms,
				 LEASE_SETTLE);
	if (n)
		rc = ring_run_locked(r, GET_SIDE, timeout_ms, &zero, attempt_get,
				     &a);
	if (got)
		*got = a.got;
	if (first)
		*first = a.first;
	return rc;
}

/* Zero copy, get side: find the oldest message and keep the lock until it
 * is released (taken) or left. */
struct view_args {
	const uint8_t *data;
	size_t len;
	uint64_t head;
};

static int attempt_view(struct ring *r, void *ctx, int *progressed)
{
	struct view_args *a = ctx;
	struct shmq_slot s;
	uint64_t tail;
	int looked = 0;

	(void)progressed;
	if (closed_now(r))
		return eos(r);
	a->head = get_start(r, &tail);
	int rc = get_avail(r, a->head, &tail, &looked);
	if (rc != SHMQ_OK)
		return rc;
	if (read_slot(r, a->head, &s) != SHMQ_OK)
		return SHMQ_ECORRUPT;
	a->data = slot_data(r, a->head, &s);
	a->len = s.len;
	return RING_HOLD;
}

int ring_view(struct ring *r, const void **data, size_t *len, int timeout_ms)
{
	struct view_args a = { 0 };
	static const uint64_t zero;
	int rc;

	if (r->held || r->leases)
		return SHMQ_EINVAL;     /* acked: lease_get(LEASE_VIEW) */
	rc = ring_run_locked(r, GET_SIDE, timeout_ms, &zero, attempt_view, &a);
	if (rc == SHMQ_OK) {
		r->held = GET_SIDE + 1;
		r->held_by = pthread_self();
		r->held_head = a.head;
		*data = a.data;
		*len = a.len;
	}
	return rc;
}

int ring_viewed_seq(const struct ring *r, uint64_t *seq)
{
	if (r->held != GET_SIDE + 1)
		return SHMQ_EINVAL;
	*seq = r->held_head;
	return SHMQ_OK;
}

int ring_release(struct ring *r, int leave)
{
	if (r->held != GET_SIDE + 1 || !pthread_equal(r->held_by, pthread_self()))
		return SHMQ_EINVAL;
	if (!leave)
		get_commit(r, r->held_head + 1);
	r->held = 0;
	side_unlock(r, GET_SIDE);
	if (!leave)
		wait_notify(r, &r->hdr->space_futex);
	return SHMQ_OK;
}

/* ------------------------------------------------------------------ */
/* Close                                                              */

int ring_close(struct ring *r, unsigned how, uint64_t *discarded)
{
	struct shmq_seg_hdr *h = r->hdr;
	uint64_t bits = SHMQ_TAIL_CLOSED;
	uint64_t n = 0;
	int rc = SHMQ_OK;

	if ((how & ~SHMQ_CLOSE_LOST) > SHMQ_CLOSE_NOW)
		return SHMQ_EINVAL;     /* before any change */
	if (how & SHMQ_CLOSE_LOST) {
		/* Before the close, so that a consumer that sees the close
		 * also sees why (as when shmqd marks a dead producer). */
		__atomic_fetch_or(&h->state_flags, SHMQ_ST_PRODUCER_LOST,
				  __ATOMIC_SEQ_CST);
		how &= ~SHMQ_CLOSE_LOST;
	}
	if (how == SHMQ_CLOSE_NOW)
		bits |= SHMQ_TAIL_NOW;
	else if (how != SHMQ_CLOSE_DRAIN)
		return SHMQ_EINVAL;
	if (how == SHMQ_CLOSE_NOW)
		__atomic_store_n(&h->now_pending, 1, __ATOMIC_SEQ_CST);

	uint64_t old = __atomic_fetch_or(&h->tail, bits, __ATOMIC_SEQ_CST);
	if (!(old & SHMQ_TAIL_CLOSED)) {
		struct timespec now;
		int64_t zero = 0;
		clock_gettime(CLOCK_REALTIME, &now);
		__atomic_compare_exchange_n(
			&h->closed_ns, &zero,
			(int64_t)now.tv_sec * 1000000000 + now.tv_nsec, 0,
			__ATOMIC_RELAXED, __ATOMIC_RELAXED);
	}
	if (how == SHMQ_CLOSE_NOW) {
		/* Discard under get_lock, so that the count is exact and no
		 * consumer takes a message after we return. */
		struct timeout to;
		timeout_init(&to, CLOSE_LOCK_MS);
		rc = side_lock(r, GET_SIDE, &to, 0);
		if (rc == SHMQ_OK) {
			n = discard(r, old | bits);
			side_unlock(r, GET_SIDE);
		} else if (rc == SHMQ_ETIMEDOUT) {
			rc = SHMQ_EBUSY;
		}
	}
	ring_wake_all(r);
	if (discarded)
		*discarded = n;
	return rc;
}

