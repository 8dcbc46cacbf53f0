/*
 * lease.c - acked queues: leases, acks, returns, dead letters, join.
 *
 * Owns the lease table of an acked queue (proto/shmq_layout.h).  A get
 * moves the oldest message out of the ring into a free lease slot (its
 * bytes into that slot's lease_data) and commits by advancing head, as a
 * plain get does; the ring then goes on as if the message had been taken,
 * while the slot keeps it, counted against the capacity, until its holder
 * acks it.  The ring stays FIFO and never waits for a slow worker's ack.
 *
 * The rules that keep a lease table consistent when a process dies at any
 * instruction:
 *
 *   L1  A slot is in use only if its state says so AND its ticket is
 *       below head.  A getter fills the slot, then raises the counters,
 *       then advances head: killed before that store, it leaves a slot
 *       with ticket >= head, which is free by this rule (repair clears
 *       it).  So the head store is still the only commit of a get.
 *   L2  Every change of a slot is made under get_lock, by the lock holder
 *       (a getter, an ack, a nack, an extend, a sweep).  shmqd never
 *       writes a slot: it bumps `departures` when it removes an
 *       attachment, and the next holder returns the leases of holders
 *       that are gone (L4).
 *   L3  The counters (leased, lease_bytes, returned, next_deadline) are
 *       derived from the slots.  They change in an order that can only
 *       overstate what is in use (raised before a slot is used, lowered
 *       after it is freed), so producers never overfill the queue, and
 *       they are recounted after EOWNERDEAD and at every sweep.
 *   L4  A lease is its slot's (index, epoch); the epoch changes with every
 *       change of state.  An ack whose epoch does not match, or whose
 *       holder is not the caller's attachment, is refused (SHMQ_ELEASE),
 *       so an ack that comes after its lease ended can never remove a
 *       message that is now someone else's.
 *
 * A slot is re-delivered by writing its fields first and its state last,
 * together with its raised delivery count in the same store: killed
 * halfway, it stays returned, its count as it was.  A dead letter is committed to the
 * dead-letter queue before its slot is freed: a getter killed between the
 * two leaves it to be moved again (the one place a message can arrive
 * twice, there).
 *
 * It never talks to the daemon (dead letters go through the callback the
 * library set) and never trusts a slot: state, ticket, holder and length
 * are checked before use.
 */
#define _GNU_SOURCE /* wait.h: sched_getcpu */
#include <limits.h>
#include <string.h>

#include "ring_impl.h"
#include "wait.h"

#define DEAD_RETRY_NS       1000000000ll
#define JOIN_LOCK_MS        10

static uint64_t lease_id(uint32_t index, uint32_t epoch)
{
	return (uint64_t)epoch << 32 | ((uint64_t)index + 1);
}

static uint8_t *lease_bytes_of(const struct ring *r, uint32_t i)
{
	return r->lease_data + (size_t)i * r->lease_stride;
}

/* A slot's state and delivery count, stored as one word (see the layout),
 * whatever the byte order. */
typedef uint64_t lease_word __attribute__((may_alias));

/* Changes a slot's state and delivery count in one store, and its epoch
 * before them (rule L4): a delivery is counted if and only if it was
 * committed. */
static void set_state_count(struct ring *r, uint32_t i, uint32_t state,
			    uint32_t deliveries)
{
	struct shmq_lease *p = &r->leases[i];
	uint32_t pair[2] = { state, deliveries };
	uint64_t w;

	memcpy(&w, pair, sizeof(w));
	WRITE_ONCE(p->epoch, READ_ONCE(p->epoch) + 1);
	__atomic_store_n((lease_word *)&p->state, w, __ATOMIC_RELEASE);
}

/* Changes a slot's state, keeping its count. */
static void set_state(struct ring *r, uint32_t i, uint32_t state)
{
	set_state_count(r, i, state, READ_ONCE(r->leases[i].deliveries));
}

/* Frees slot i holding `len` bytes: state first, counters after (L3). */
static void free_slot(struct ring *r, uint32_t i, uint32_t len)
{
	struct shmq_seg_hdr *h = r->hdr;
	uint32_t n = READ_ONCE(h->leased);
	uint64_t b = READ_ONCE(h->lease_bytes);

	set_state(r, i, SHMQ_LEASE_FREE);
	WRITE_ONCE(h->leased, n ? n - 1 : 0);
	WRITE_ONCE(h->lease_bytes, b >= len ? b - len : 0);
}

/* The caller's attachment entry counts the slots it holds (see
 * `leases` in the layout): raised before a slot is leased to it, lowered
 * after the slot is freed or returned, so that it may overstate but never
 * understate; a sweep recounts every entry's. */
static void hold_more(struct ring *r)
{
	if (r->self)
		WRITE_ONCE(r->self->leases, READ_ONCE(r->self->leases) + 1);
}

static void hold_less(struct ring *r)
{
	if (r->self) {
		uint32_t n = READ_ONCE(r->self->leases);
		WRITE_ONCE(r->self->leases, n ? n - 1 : 0);
	}
}

static void add_total(uint64_t *ctr)
{
	WRITE_ONCE(*ctr, READ_ONCE(*ctr) + 1);
}

static int closed_now_word(const struct ring *r)
{
	return (LOAD_ACQ(r->hdr->tail) & SHMQ_TAIL_NOW) != 0;
}

/* ------------------------------------------------------------------ */
/* The order of redelivery                                            */

/*
 * Returned messages are delivered again oldest first.  Finding the oldest
 * by looking at every slot would cost a pass over the table per
 * redelivery (quadratic to drain a queue of nacked messages), so the
 * header keeps the next SHMQ_RET_CACHE returned slots in order (ret_*, see
 * the layout): one pass refills it, a nack slots its message in, and a
 * redelivery takes the next.  Its invariant: every returned slot whose
 * ticket is below ret_bound is in ret_slot[ret_pos..ret_n), in ticket
 * order.  Only a pop (ret_take) or a sweep (which rebuilds it) takes a
 * slot out of the returned state, so no entry goes stale in between; a
 * damaged cache can only change the order, never what is delivered:
 * every entry is checked to be a returned slot before it is used.
 */

/* The smallest tickets of a pass, a max-heap: the root is the largest
 * kept. */
struct ret_heap {
	uint32_t n;
	int more;               /* some were left out */
	uint64_t t[SHMQ_RET_CACHE];
	uint32_t i[SHMQ_RET_CACHE];
};

static void heap_swap(struct ret_heap *hp, uint32_t a, uint32_t b)
{
	uint64_t t = hp->t[a];
	uint32_t i = hp->i[a];

	hp->t[a] = hp->t[b];
	hp->i[a] = hp->i[b];
	hp->t[b] = t;
	hp->i[b] = i;
}

static void heap_down(struct ret_heap *hp, uint32_t k, uint32_t n)
{
	for (;;) {
		uint32_t c = 2 * k + 1;
		if (c >= n)
			return;
		if (c + 1 < n && hp->t[c + 1] > hp->t[c])
			c++;
		if (hp->t[c] <= hp->t[k])
			return;
		heap_swap(hp, k, c);
		k = c;
	}
}

static void heap_add(struct ret_heap *hp, uint64_t ticket, uint32_t i)
{
	if (hp->n < SHMQ_RET_CACHE) {
		uint32_t k = hp->n++;
		hp->t[k] = ticket;
		hp->i[k] = i;
		while (k > 0 && hp->t[(k - 1) / 2] < hp->t[k]) {
			heap_swap(hp, k, (k - 1) / 2);
			k = (k - 1) / 2;
		}
		return;
	}
	hp->more = 1;
	if (ticket < hp->t[0]) {
		hp->t[0] = ticket;
		hp->i[0] = i;
		heap_down(hp, 0, hp->n);
	}
}

/* Under get_lock: the heap of a pass over every slot becomes the cache. */
static void ret_store(struct ring *r, struct ret_heap *hp)
{
	struct shmq_seg_hdr *h = r->hdr;

	for (uint32_t k = hp->n; k > 1; k--) {      /* ascending */
		heap_swap(hp, 0, k - 1);
		heap_down(hp, 0, k - 1);
	}
	for (uint32_t k = 0; k < hp->n; k++)
		WRITE_ONCE(h->ret_slot[k], hp->i[k]);
	WRITE_ONCE(h->ret_pos, 0);
	WRITE_ONCE(h->ret_n, hp->n);
	WRITE_ONCE(h->ret_bound, hp->more ? hp->t[hp->n - 1] + 1 : UINT64_MAX);
}

/* Under get_lock: the cache says nothing (the next look refills it). */
static void ret_forget(struct ring *r)
{
	WRITE_ONCE(r->hdr->ret_bound, 0);
	WRITE_ONCE(r->hdr->ret_pos, 0);
	WRITE_ONCE(r->hdr->ret_n, 0);
}

/* Under get_lock: one pass over the table for the oldest returned. */
static void ret_refill(struct ring *r, uint64_t head)
{
	struct ret_heap hp = { 0 };

	for (uint32_t i = 0; i < r->capacity; i++) {
		struct shmq_lease s;
		if (read_lease(r, i, head, &s) == SHMQ_LEASE_RETURNED)
			heap_add(&hp, s.ticket, i);
	}
	ret_store(r, &hp);
}

/* Under get_lock: the oldest returned slot (a copy of it in *out), taken
 * off the cache, or UINT32_MAX if there is none.  The caller redelivers
 * or dead-letters it, or puts it back (ret_untake). */
static uint32_t ret_take(struct ring *r, uint64_t head,
			 struct shmq_lease *out)
{
	struct shmq_seg_hdr *h = r->hdr;

	for (int pass = 0; pass < 2; pass++) {
		uint32_t n = READ_ONCE(h->ret_n), pos = READ_ONCE(h->ret_pos);
		if (n > SHMQ_RET_CACHE || pos > n)
			n = pos = 0;            /* damaged: look again */
		while (pos < n) {
			uint32_t i = READ_ONCE(h->ret_slot[pos++]);
			if (i < r->capacity &&
			    read_lease(r, i, head, out) == SHMQ_LEASE_RETURNED) {
				WRITE_ONCE(h->ret_pos, pos);
				return i;
			}
		}
		/* Empty: a pass (counted as `returned`, some must be there,
		 * unless the count lied). */
		if (pass == 0)
			ret_refill(r, head);
	}
	return UINT32_MAX;
}

/* Under get_lock: slot i, just taken, stays returned after all. */
static void ret_untake(struct ring *r, uint32_t i)
{
	struct shmq_seg_hdr *h = r->hdr;
	uint32_t pos = READ_ONCE(h->ret_pos);

	if (pos > 0 && pos <= SHMQ_RET_CACHE &&
	    READ_ONCE(h->ret_slot[pos - 1]) == i)
		WRITE_ONCE(h->ret_pos, pos - 1);
	else
		ret_forget(r);
}

/* Under get_lock: slot i (of `ticket`) has just been returned: in its
 * place in the cache if it belongs there. */
static void ret_note(struct ring *r, uint32_t i, uint64_t ticket)
{
	struct shmq_seg_hdr *h = r->hdr;
	uint32_t n = READ_ONCE(h->ret_n), pos = READ_ONCE(h->ret_pos);

	if (ticket >= READ_ONCE(h->ret_bound))
		return;
	if (n > SHMQ_RET_CACHE || pos > n) {
		ret_forget(r);
		return;
	}
	if (n == SHMQ_RET_CACHE && pos > 0) {
		memmove(&h->ret_slot[0], &h->ret_slot[pos],
			(n - pos) * sizeof(h->ret_slot[0]));
		n -= pos;
		pos = 0;
	}
	if (n == SHMQ_RET_CACHE) {
		/* Full: the newest leaves, and the bound comes down to it. */
		uint32_t last = READ_ONCE(h->ret_slot[n - 1]);
		if (last >= r->capacity) {
			ret_forget(r);
			return;
		}
		uint64_t t = READ_ONCE(r->leases[last].ticket);
		WRITE_ONCE(h->ret_bound, t);
		n--;
		if (ticket >= t) {
			WRITE_ONCE(h->ret_n, n);
			WRITE_ONCE(h->ret_pos, pos);
			return;
		}
	}
	uint32_t lo = pos, hi = n;
	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;
		uint32_t j = READ_ONCE(h->ret_slot[mid]);
		if (j >= r->capacity) {
			ret_forget(r);
			return;
		}
		if (READ_ONCE(r->leases[j].ticket) < ticket)
			lo = mid + 1;
		else
			hi = mid;
	}
	memmove(&h->ret_slot[lo + 1], &h->ret_slot[lo],
		(n - lo) * sizeof(h->ret_slot[0]));
	WRITE_ONCE(h->ret_slot[lo], i);
	WRITE_ONCE(h->ret_n, n + 1);
	WRITE_ONCE(h->ret_pos, pos);
}

/* ------------------------------------------------------------------ */
/* Sweeping: returning what its holder cannot ack any more             */

static int try_dead_letter(struct ring *r, uint32_t i,
			   const struct shmq_lease *s, int64_t now);

/*
 * Under get_lock: one pass over the table.  Returns leases whose holder is
 * gone or whose deadline passed, retries dead letters that are due, and
 * recounts every counter from the slots, so that it also repairs them
 * (L3): the header's, each attachment entry's `leases` (counted in its
 * `tally` first, so that no entry's count is ever lower than what it
 * holds, even for a moment: shmqd reads it when the entry goes) and the
 * cache of returned slots.  After close --now it drops, instead, what is
 * returned (a lease whose holder is gone included) and the dead letters
 * waiting for room.
 */
static int sweep(struct ring *r, uint64_t head, int64_t now)
{
	struct shmq_seg_hdr *h = r->hdr;
	uint32_t departures = LOAD_ACQ(h->departures);
	uint32_t leased = 0, returned = 0, dead = 0;
	uint64_t bytes = 0;
	int64_t next = SHMQ_NO_DEADLINE;
	int now_closed = closed_now_word(r), freed = 0;
	struct ret_heap hp = { 0 };

	for (uint32_t c = 0; c < r->nclients; c++)
		WRITE_ONCE(r->clients[c].tally, 0);
	for (uint32_t i = 0; i < r->capacity; i++) {
		struct shmq_lease s;
		uint32_t st = read_lease(r, i, head, &s);

		if (st == SHMQ_LEASE_FREE) {
			/* A slot left by a getter that died before its commit
			 * (L1), or damaged: make it plainly free. */
			if (READ_ONCE(r->leases[i].state) != SHMQ_LEASE_FREE)
				set_state(r, i, SHMQ_LEASE_FREE);
			continue;
		}
		if (st == SHMQ_LEASE_LEASED &&
		    (!holder_alive(r, &s) || s.deadline <= now)) {
			st = SHMQ_LEASE_RETURNED;
			set_state(r, i, st);
		}
		if ((st == SHMQ_LEASE_RETURNED || st == SHMQ_LEASE_DEAD) &&
		    now_closed) {
			/* close --now drops what comes back, too, and what
			 * waits for the dead-letter queue. */
			set_state(r, i, SHMQ_LEASE_FREE);
			add_total(&h->lease_discarded);
			freed = 1;
			continue;
		}
		if (st == SHMQ_LEASE_DEAD && s.deadline <= now &&
		    try_dead_letter(r, i, &s, now))
			continue;
		leased++;
		bytes += s.len;
		if (st == SHMQ_LEASE_RETURNED) {
			returned++;
			heap_add(&hp, s.ticket, i);
		} else if (READ_ONCE(r->leases[i].deadline) < next) {
			next = READ_ONCE(r->leases[i].deadline);
		}
		if (READ_ONCE(r->leases[i].state) == SHMQ_LEASE_DEAD) {
			dead++;
		} else if (st == SHMQ_LEASE_LEASED) {
			uint32_t *t = &r->clients[s.holder].tally;
			WRITE_ONCE(*t, READ_ONCE(*t) + 1);
		}
	}
	for (uint32_t c = 0; c < r->nclients; c++)
		WRITE_ONCE(r->clients[c].leases,
			   READ_ONCE(r->clients[c].tally));
	ret_store(r, &hp);
	WRITE_ONCE(h->leased, leased);
	WRITE_ONCE(h->lease_bytes, bytes);
	WRITE_ONCE(h->returned, returned);
	WRITE_ONCE(h->dead, dead);
	WRITE_ONCE(h->next_deadline, next);
	WRITE_ONCE(h->departures_seen, departures);
	if (freed)
		wait_notify(r, &h->space_futex);
	return SHMQ_OK;
}

/* Under get_lock: has anything happened that only a sweep notices? */
static int sweep_due(const struct ring *r, int64_t now)
{
	const struct shmq_seg_hdr *h = r->hdr;

	return LOAD_ACQ(h->departures) != READ_ONCE(h->departures_seen) ||
	       READ_ONCE(h->next_deadline) <= now;
}

int lease_recount(struct ring *r, uint64_t head)
{
	return sweep(r, head, (int64_t)mono_ns());
}

uint64_t lease_discard(struct ring *r, uint64_t head)
{
	struct shmq_seg_hdr *h = r->hdr;
	int64_t now = (int64_t)mono_ns();

	/* Called at every attempt on a closed-now queue: only a pass when
	 * there is something to drop (the counters are right under the
	 * lock: a crash that left them wrong was followed by a recount). */
	if (READ_ONCE(h->returned) == 0 && READ_ONCE(h->dead) == 0 &&
	    !sweep_due(r, now))
		return 0;
	uint64_t before = READ_ONCE(h->lease_discarded);
	sweep(r, head, now);
	return READ_ONCE(h->lease_discarded) - before;
}

int64_t lease_next_deadline(const struct ring *r)
{
	return READ_ONCE(r->hdr->next_deadline);
}

/* ------------------------------------------------------------------ */
/* Dead letters                                                       */

/*
 * Under get_lock: slot i has been delivered max_deliveries times (or was
 * nacked with SHMQ_NACK_DEAD).  Moves it to the dead-letter queue, or
 * drops it when the queue has none.  1 if the slot was freed; 0 if the
 * dead-letter queue cannot take it now (full, missing, not reachable from
 * this handle): the slot then waits as DEAD and is tried again a second
 * later by whoever sweeps.
 */
static int try_dead_letter(struct ring *r, uint32_t i,
			   const struct shmq_lease *s, int64_t now)
{
	struct shmq_seg_hdr *h = r->hdr;

	if (!r->has_dead_letter) {
		free_slot(r, i, s->len);
		add_total(&h->dropped);
		wait_notify(r, &h->space_futex);
		return 1;
	}
	HOOK(RING_HOOK_LEASE_DEAD_LETTERING);
	if (r->dead_letter &&
	    r->dead_letter(r->dead_letter_ctx, lease_bytes_of(r, i),
			   s->len) == SHMQ_OK) {
		HOOK(RING_HOOK_LEASE_DEAD_LETTERED);
		free_slot(r, i, s->len);
		if (s->state == SHMQ_LEASE_DEAD) {
			uint32_t d = READ_ONCE(h->dead);
			WRITE_ONCE(h->dead, d ? d - 1 : 0);
		}
		add_total(&h->dead_lettered);
		wait_notify(r, &h->space_futex);
		return 1;
	}
	struct shmq_lease *p = &r->leases[i];
	WRITE_ONCE(p->deadline, now + DEAD_RETRY_NS);
	if (READ_ONCE(p->state) != SHMQ_LEASE_DEAD) {
		/* Counted first: the count may overstate, never miss one. */
		WRITE_ONCE(h->dead, READ_ONCE(h->dead) + 1);
		set_state(r, i, SHMQ_LEASE_DEAD);
	}
	if (now + DEAD_RETRY_NS < READ_ONCE(h->next_deadline))
		WRITE_ONCE(h->next_deadline, now + DEAD_RETRY_NS);
	return 0;
}

/* ------------------------------------------------------------------ */
/* Getting                                                            */

struct lease_args {
	uint8_t *buf;
	size_t size, used;
	struct iovec *out;          /* LEASE_SETTLE */
	struct shmq_msg *msgs;      /* LEASE_COPY, LEASE_VIEW */
	size_t n, got;
	enum lease_mode mode;
	int freed;                  /* settled a returned message: room */
};

/* A free slot for a new lease (rule L1 makes a slot with ticket >= head
 * free), or UINT32_MAX if the counters lied. */
static uint32_t free_lease_slot(struct ring *r, uint64_t head)
{
	uint32_t start = READ_ONCE(r->hdr->free_hint);

	if (start >= r->capacity)
		start = 0;
	for (uint32_t k = 0; k < r->capacity; k++) {
		uint32_t i = start + k < r->capacity ? start + k
						     : start + k - r->capacity;
		struct shmq_lease s;
		if (read_lease(r, i, head, &s) == SHMQ_LEASE_FREE) {
			WRITE_ONCE(r->hdr->free_hint, i + 1);
			return i;
		}
	}
	return UINT32_MAX;
}

/* Where message k of a batch goes in the caller's buffer: 16-aligned
 * after the ones before, as ring_get lays them out.  NULL if it does not
 * fit (*too_big set for the first message). */
static uint8_t *place(struct lease_args *a, size_t len, int *too_big)
{
	size_t at = a->got ? align_up(a->used, SHMQ_DATA_ALIGN) : 0;

	*too_big = 0;
	if (at > a->size || len > a->size - at) {
		*too_big = a->got == 0;
		return NULL;
	}
	a->used = at + len;
	/* A NULL buffer of size 0 takes empty messages; NULL + 0 is
	 * undefined. */
	return a->buf ? a->buf + at : NULL;
}

/* The first message does not fit the caller's buffer: it stays where it
 * is, and the caller learns its length. */
static int too_small(struct lease_args *a, uint32_t len)
{
	if (a->mode == LEASE_SETTLE) {
		a->out[0].iov_base = NULL;
		a->out[0].iov_len = len;
	} else {
		memset(&a->msgs[0], 0, sizeof(a->msgs[0]));
		a->msgs[0].len = len;
	}
	return SHMQ_EMSGSIZE;
}

/* Records the next delivery of the call. */
static void deliver(struct ring *r, struct lease_args *a, uint32_t i,
		    const uint8_t *dst, uint32_t len, uint64_t ticket,
		    uint32_t deliveries, uint32_t epoch)
{
	if (a->mode == LEASE_SETTLE) {
		a->out[a->got].iov_base = (void *)dst;
		a->out[a->got].iov_len = len;
	} else {
		struct shmq_msg *m = &a->msgs[a->got];
		m->data = a->mode == LEASE_VIEW ? lease_bytes_of(r, i)
						: (void *)dst;
		m->len = len;
		m->lease = lease_id(i, epoch);
		m->seq = ticket;
		m->deliveries = deliveries;
	}
	a->got++;
}

/* Under get_lock: hands out returned slot i (already checked) to the
 * caller, or (settle) takes it for good. */
static int redeliver(struct ring *r, struct lease_args *a, uint32_t i,
		     const struct shmq_lease *s, int64_t now)
{
	struct shmq_lease *p = &r->leases[i];
	int too_big = 0;
	uint8_t *dst = NULL;

	if (a->mode != LEASE_VIEW) {
		dst = place(a, s->len, &too_big);
		if (dst == NULL && (a->buf || s->len))
			return too_big ? too_small(a, s->len) : RING_WAIT;
		if (s->len)
			memcpy(dst, lease_bytes_of(r, i), s->len);
	}
	uint32_t deliveries = s->deliveries + 1;
	if (a->mode == LEASE_SETTLE) {
		free_slot(r, i, s->len);
		add_total(&r->hdr->acked);
		a->freed = 1;
	} else {
		WRITE_ONCE(p->holder, r->self_index);
		WRITE_ONCE(p->holder_gen, r->self_gen);
		WRITE_ONCE(p->since, now);
		WRITE_ONCE(p->deadline,
			   r->lease_timeout_ms
				   ? now + (int64_t)r->lease_timeout_ms * 1000000
				   : SHMQ_NO_DEADLINE);
		hold_more(r);
		HOOK(RING_HOOK_LEASE_REDELIVERING);
		set_state_count(r, i, SHMQ_LEASE_LEASED, deliveries);
		HOOK(RING_HOOK_LEASE_REDELIVERED);
		int64_t dl = READ_ONCE(p->deadline);
		if (dl < READ_ONCE(r->hdr->next_deadline))
			WRITE_ONCE(r->hdr->next_deadline, dl);
	}
	uint32_t ret = READ_ONCE(r->hdr->returned);
	WRITE_ONCE(r->hdr->returned, ret ? ret - 1 : 0);
	deliver(r, a, i, dst, s->len, s->ticket, deliveries,
		READ_ONCE(p->epoch));
	return SHMQ_OK;
}

/* Under get_lock: moves message `head` out of the ring into a lease slot
 * (or, settle, just out of the ring).  Does not commit: the caller
 * advances head once for the whole batch. */
static int lease_from_ring(struct ring *r, struct lease_args *a,
			   uint64_t head, int64_t now)
{
	struct shmq_seg_hdr *h = r->hdr;
	struct shmq_slot s;
	int too_big = 0;
	uint8_t *dst = NULL;

	if (read_slot(r, head, &s) != SHMQ_OK)
		return SHMQ_ECORRUPT;
	const uint8_t *src = slot_data(r, head, &s);
	if (a->mode != LEASE_VIEW) {
		dst = place(a, s.len, &too_big);
		if (dst == NULL && (a->buf || s.len))
			return too_big ? too_small(a, s.len) : RING_WAIT;
	}
	if (a->mode == LEASE_SETTLE) {
		/* (Counted as acked once head has moved: see attempt_lease.) */
		if (s.len)
			memcpy(dst, src, s.len);
		deliver(r, a, 0, dst, s.len, head, 1, 0);
		return SHMQ_OK;
	}
	uint32_t i = free_lease_slot(r, head);
	if (i == UINT32_MAX)
		return SHMQ_ECORRUPT;
	struct shmq_lease *p = &r->leases[i];
	uint8_t *keep = lease_bytes_of(r, i);
	if (s.len) {
		memcpy(keep, src, s.len);
		if (dst)
			memcpy(dst, keep, s.len);
	}
	WRITE_ONCE(p->ticket, head);
	WRITE_ONCE(p->holder, r->self_index);
	WRITE_ONCE(p->holder_gen, r->self_gen);
	WRITE_ONCE(p->len, s.len);
	WRITE_ONCE(p->since, now);
	int64_t dl = r->lease_timeout_ms
			     ? now + (int64_t)r->lease_timeout_ms * 1000000
			     : SHMQ_NO_DEADLINE;
	WRITE_ONCE(p->deadline, dl);
	hold_more(r);
	set_state_count(r, i, SHMQ_LEASE_LEASED, 1);
	/* Raised before head moves (L3). */
	WRITE_ONCE(h->leased, READ_ONCE(h->leased) + 1);
	WRITE_ONCE(h->lease_bytes, READ_ONCE(h->lease_bytes) + s.len);
	if (dl < READ_ONCE(h->next_deadline))
		WRITE_ONCE(h->next_deadline, dl);
	HOOK(RING_HOOK_LEASE_FILLED);
	deliver(r, a, i, dst, s.len, head, 1, READ_ONCE(p->epoch));
	return SHMQ_OK;
}

static int attempt_lease(struct ring *r, void *ctx, int *progressed)
{
	struct lease_args *a = ctx;
	uint64_t tail, head = ring_get_start(r, &tail), committed = head;
	int64_t now = (int64_t)mono_ns();
	int rc = SHMQ_OK, looked = 0;

	/* A lease frees no room; only a plain get (settle) does. */
	a->freed = 0;
	/* (After close --now, ring_closed_now's discard has swept what was
	 * due: a lease whose holder is gone is settled before the end.) */
	if (ring_closed_now(r))
		return ring_eos(r);
	if (sweep_due(r, now))
		sweep(r, head, now);

	while (a->got < a->n) {
		/* Returned messages first, oldest first. */
		if (READ_ONCE(r->hdr->returned) > 0) {
			struct shmq_lease s;
			uint32_t i = ret_take(r, head, &s);
			if (i != UINT32_MAX) {
				if (r->max_deliveries &&
				    s.deliveries >= r->max_deliveries) {
					try_dead_letter(r, i, &s, now);
					uint32_t ret = READ_ONCE(r->hdr->returned);
					WRITE_ONCE(r->hdr->returned,
						   ret ? ret - 1 : 0);
					continue;
				}
				rc = redeliver(r, a, i, &s, now);
				if (rc != SHMQ_OK) {
					ret_untake(r, i);
					break;
				}
				if (a->mode == LEASE_VIEW)
					break;
				continue;
			}
			WRITE_ONCE(r->hdr->returned, 0);  /* the count lied */
		}
		rc = ring_get_avail(r, head, &tail, &looked);
		if (rc != SHMQ_OK)
			break;
		rc = lease_from_ring(r, a, head, now);
		if (rc != SHMQ_OK)
			break;
		head++;
		if (a->mode == LEASE_VIEW)
			break;
	}
	if (head != committed) {
		ring_get_commit(r, head);
		if (a->mode == LEASE_SETTLE) {
			/* A plain get settles what it took by this commit:
			 * counted after it, a getter killed before it counts
			 * nothing. */
			WRITE_ONCE(r->hdr->acked,
				   READ_ONCE(r->hdr->acked) + (head - committed));
			a->freed = 1;
		}
	}
	*progressed = a->freed;
	if (a->got) {
		/* A batch stopped by a message that does not fit, or by an
		 * empty queue, still delivered what it has. */
		return SHMQ_OK;
	}
	if (rc == SHMQ_EOS || rc == SHMQ_EOS_LOST) {
		/* Closed and drained: unless another handle holds a lease
		 * that may come back, or dead letters wait for room (they
		 * are still here, unsettled: a waiter tries them again every
		 * second, as the sweep does).  The counters are exact here:
		 * what a sweep would have changed was swept above. */
		if (READ_ONCE(r->hdr->dead) > 0 || lease_others(r) > 0)
			return RING_WAIT;
	}
	return rc;
}

int lease_get(struct ring *r, void *buf, size_t size, struct iovec *out,
	      struct shmq_msg *msgs, size_t n, size_t *got, int timeout_ms,
	      enum lease_mode mode)
{
	struct lease_args a = { .buf = buf, .size = size, .out = out,
				.msgs = msgs, .n = n, .mode = mode };
	static const uint64_t zero;
	int rc = SHMQ_EINVAL;

	if (n)
		rc = ring_run_locked(r, GET_SIDE, timeout_ms, &zero,
				     attempt_lease, &a);
	if (got)
		*got = a.got;
	return rc;
}

int ring_lease(struct ring *r, void *buf, size_t size, struct shmq_msg *msgs,
	       size_t n, size_t *got, int timeout_ms, int view)
{
	if (got)
		*got = 0;
	if (view && n != 1)
		return SHMQ_EINVAL;
	if (r->leases)
		return lease_get(r, buf, size, NULL, msgs, n, got, timeout_ms,
				 view ? LEASE_VIEW : LEASE_COPY);
	if (view)
		return SHMQ_EINVAL;     /* plain queues: ring_view */

	/* A plain queue: a get, which settles as it takes, 16 messages at a
	 * time (the core never allocates).  The first chunk waits as the
	 * timeout allows; a later one takes what is there then, placed in
	 * buf as one get would have placed it (16-aligned after the last),
	 * and its finding nothing (or no room) ends the batch, no error. */
	struct iovec out[16];
	uint8_t *b = buf;
	size_t k = 0, used = 0;
	int rc = SHMQ_OK;

	while (k < n) {
		size_t want = n - k < 16 ? n - k : 16, c = 0;
		uint64_t first = 0;
		int crc = ring_get_seq(r, b ? b + used : NULL, size - used, out,
				       want, &c, k ? SHMQ_NOWAIT : timeout_ms,
				       &first);

		for (size_t i = 0; i < c; i++)
			msgs[k + i] = (struct shmq_msg){
				.data = out[i].iov_base,
				.len = out[i].iov_len,
				.seq = first + i,
				.deliveries = 1 };
		if (k == 0) {
			rc = crc;
			if (crc == SHMQ_EMSGSIZE)
				msgs[0] = (struct shmq_msg){
					.len = out[0].iov_len };
		}
		k += c;
		if (crc != SHMQ_OK || c < want)
			break;
		if (b)          /* else all were empty, and stay at NULL */
			used = align_up((size_t)((uint8_t *)out[c - 1].iov_base
						 - b) + out[c - 1].iov_len,
					SHMQ_DATA_ALIGN);
		if (used > size)
			break;
	}
	if (got)
		*got = k;
	return rc;
}

/* ------------------------------------------------------------------ */
/* Ack, nack, extend                                                  */

/* Checks that lease `id` is the caller's and still held; returns the slot
 * index (and a copy of it in *s), or UINT32_MAX. */
static uint32_t own_lease(const struct ring *r, uint64_t id, uint64_t head,
			  struct shmq_lease *s)
{
	uint64_t i = (id & 0xffffffffu) - 1;

	if (id == 0 || i >= r->capacity)
		return UINT32_MAX;
	if (read_lease(r, (uint32_t)i, head, s) != SHMQ_LEASE_LEASED ||
	    s->epoch != (uint32_t)(id >> 32) || s->holder != r->self_index ||
	    s->holder_gen != r->self_gen)
		return UINT32_MAX;
	return (uint32_t)i;
}

struct ack_args {
	const struct shmq_msg *msgs;
	size_t n, done;
	unsigned how;           /* 0 ack, 1 nack, 2 extend */
	unsigned flags;
	int ms;
	int lost;
};

static int attempt_ack(struct ring *r, void *ctx, int *progressed)
{
	struct ack_args *a = ctx;
	struct shmq_seg_hdr *h = r->hdr;
	uint64_t head = READ_ONCE(h->head);
	int64_t now = (int64_t)mono_ns();

	for (size_t k = 0; k < a->n; k++) {
		struct shmq_lease s;
		uint64_t id = a->msgs[k].lease;
		if (id == 0) {          /* a plain queue's get: settled */
			a->done++;
			continue;
		}
		uint32_t i = own_lease(r, id, head, &s);
		/* A lease that timed out is the sweep's, not the caller's:
		 * an ack racing its deadline loses once the deadline passed. */
		if (i == UINT32_MAX || s.deadline <= now) {
			a->lost = 1;
			continue;
		}
		struct shmq_lease *p = &r->leases[i];
		switch (a->how) {
		case 0:
			HOOK(RING_HOOK_LEASE_ACKING);
			free_slot(r, i, s.len);
			hold_less(r);
			add_total(&h->acked);
			*progressed = 1;
			break;
		case 1:
			if (closed_now_word(r)) {
				free_slot(r, i, s.len);
				add_total(&h->lease_discarded);
				*progressed = 1;
			} else if ((a->flags & SHMQ_NACK_DEAD) ||
				   (r->max_deliveries &&
				    s.deliveries >= r->max_deliveries)) {
				set_state(r, i, SHMQ_LEASE_RETURNED);
				s.state = SHMQ_LEASE_RETURNED;
				try_dead_letter(r, i, &s, now);
			} else {
				set_state(r, i, SHMQ_LEASE_RETURNED);
				WRITE_ONCE(h->returned,
					   READ_ONCE(h->returned) + 1);
				ret_note(r, i, s.ticket);
			}
			hold_less(r);
			break;
		default: {
			int64_t ms = a->ms > 0 ? (int64_t)a->ms
					   : (int64_t)r->lease_timeout_ms;
			int64_t dl = ms ? now + ms * 1000000 : SHMQ_NO_DEADLINE;
			WRITE_ONCE(p->deadline, dl);
			if (dl < READ_ONCE(h->next_deadline))
				WRITE_ONCE(h->next_deadline, dl);
			break;
		}
		}
		a->done++;
	}
	return SHMQ_OK;
}

static int ack_common(struct ring *r, struct ack_args *a)
{
	static const uint64_t zero;
	int rc;

	if (r->leases == NULL) {
		/* A plain queue: every get settled its message already. */
		for (size_t k = 0; k < a->n; k++)
			if (a->msgs[k].lease != 0)
				return SHMQ_ELEASE;
		a->done = a->n;
		return SHMQ_OK;
	}
	rc = ring_run_locked(r, GET_SIDE, SHMQ_FOREVER, &zero, attempt_ack, a);
	if (rc == SHMQ_OK && a->how != 2) {
		/* A nack offers a message; an ack may end the stream for
		 * getters waiting on a closed queue. */
		if (a->how == 1 || (LOAD_ACQ(r->hdr->tail) & SHMQ_TAIL_CLOSED))
			wait_notify(r, &r->hdr->data_futex);
	}
	if (rc == SHMQ_OK && a->lost)
		rc = SHMQ_ELEASE;
	return rc;
}

int ring_ack(struct ring *r, const struct shmq_msg *msgs, size_t n,
	     size_t *done)
{
	struct ack_args a = { .msgs = msgs, .n = n, .how = 0 };
	int rc = ack_common(r, &a);

	if (done)
		*done = a.done;
	return rc;
}

int ring_nack(struct ring *r, const struct shmq_msg *m, unsigned flags)
{
	struct ack_args a = { .msgs = m, .n = 1, .how = 1, .flags = flags };

	if (flags & ~SHMQ_NACK_DEAD)
		return SHMQ_EINVAL;
	return ack_common(r, &a);
}

int ring_extend(struct ring *r, const struct shmq_msg *m, int ms)
{
	struct ack_args a = { .msgs = m, .n = 1, .how = 2, .ms = ms };

	if (ms < 0)
		return SHMQ_EINVAL;
	return ack_common(r, &a);
}

struct swap_args {
	void *ctx, *old;
};

static int attempt_swap(struct ring *r, void *ctx, int *progressed)
{
	struct swap_args *a = ctx;
	struct shmq_seg_hdr *h = r->hdr;
	uint64_t head = READ_ONCE(h->head);
	int64_t now = (int64_t)mono_ns();

	(void)progressed;
	a->old = r->dead_letter_ctx;
	r->dead_letter_ctx = a->ctx;
	if (a->ctx == NULL || READ_ONCE(h->dead) == 0)
		return SHMQ_OK;
	/* A new way to the dead-letter queue: the letters waiting are due. */
	for (uint32_t i = 0; i < r->capacity; i++) {
		struct shmq_lease s;
		if (read_lease(r, i, head, &s) == SHMQ_LEASE_DEAD)
			WRITE_ONCE(r->leases[i].deadline, now);
	}
	WRITE_ONCE(h->next_deadline, now);
	return SHMQ_OK;
}

int ring_set_dead_letter(struct ring *r, void *ctx, void **old)
{
	struct swap_args a = { .ctx = ctx };
	static const uint64_t zero;
	int rc = SHMQ_OK;

	if (r->leases) {
		rc = ring_run_locked(r, GET_SIDE, SHMQ_FOREVER, &zero,
				     attempt_swap, &a);
	} else {
		a.old = r->dead_letter_ctx;
		r->dead_letter_ctx = ctx;
	}
	*old = rc == SHMQ_OK ? a.old : NULL;
	return rc;
}

/* ------------------------------------------------------------------ */
/* Join                                                               */

struct join_args {
	uint64_t upto;          /* every ticket below this must be settled */
	uint32_t at;            /* where an unsettled slot was last seen */
};

/* Lockless.  Once head has passed `upto`, a slot whose ticket is below
 * it can only become free (a new lease gets a ticket >= head): so the
 * look starts where it last saw an unsettled slot, and over a whole join
 * passes each slot about once, instead of once per wake-up. */
static int all_settled(struct ring *r, struct join_args *j)
{
	uint64_t head = LOAD_ACQ(r->hdr->head);

	if (head < j->upto)
		return 0;
	if (r->leases == NULL || READ_ONCE(r->hdr->leased) == 0)
		return 1;
	for (uint32_t k = 0; k < r->capacity; k++) {
		uint32_t i = j->at + k < r->capacity ? j->at + k
						     : j->at + k - r->capacity;
		struct shmq_lease s;
		if (read_lease(r, i, head, &s) != SHMQ_LEASE_FREE &&
		    s.ticket < j->upto) {
			j->at = i;
			return 0;
		}
	}
	return 1;
}

/* Under get_lock, for a joiner: what a getter would settle on its way
 * (the discard of close --now, leases of holders that are gone or past
 * their deadline, dead letters due), without getting anything. */
static int attempt_settle(struct ring *r, void *ctx, int *progressed)
{
	int64_t now = (int64_t)mono_ns();

	(void)ctx;
	(void)progressed;
	if (ring_closed_now(r))
		return SHMQ_OK;
	if (r->leases && sweep_due(r, now))
		sweep(r, READ_ONCE(r->hdr->head), now);
	return SHMQ_OK;
}

/* Lockless: would a getter settle something now (see attempt_settle)? */
static int settle_due(const struct ring *r)
{
	const struct shmq_seg_hdr *h = r->hdr;

	if (READ_ONCE(h->now_pending) &&
	    (LOAD_ACQ(h->tail) & SHMQ_TAIL_COUNT) != LOAD_ACQ(h->head))
		return 1;
	if (r->leases == NULL)
		return 0;
	int64_t dl = READ_ONCE(h->next_deadline);
	return LOAD_ACQ(h->departures) != READ_ONCE(h->departures_seen) ||
	       (dl != SHMQ_NO_DEADLINE && dl <= (int64_t)mono_ns());
}

/* A join settles what needs no getter itself: after close --now nothing
 * is delivered any more, so without it a lease whose holder died, say,
 * would never be settled. */
static int settled(struct ring *r, void *ctx)
{
	static const uint64_t zero;
	struct join_args *j = ctx;

	if (all_settled(r, j))
		return 1;
	if (!settle_due(r))
		return 0;
	/* Briefly: a lock held for longer belongs to a getter, which
	 * settles it. */
	ring_run_locked(r, GET_SIDE, JOIN_LOCK_MS, &zero, attempt_settle,
			NULL);
	return all_settled(r, j);
}

int ring_join(struct ring *r, int timeout_ms)
{
	struct join_args j = {
		.upto = LOAD_ACQ(r->hdr->tail) & SHMQ_TAIL_COUNT,
	};
	struct timeout to;

	timeout_init(&to, timeout_ms);
	return wait_until(r, &r->hdr->space_futex, settled, &j, &to);
}
