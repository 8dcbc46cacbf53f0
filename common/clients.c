/*
 * clients.c - the attachment table of a segment: one entry per open handle.
 *
 * Entries are added and removed by shmqd only (a client binds to the entry
 * the daemon gave it, marks it detached, and marks its own sleeps and
 * waits).  The producer and consumer counts, auto-close and "producer
 * lost" follow from the entries, so removing one is where those happen.
 * A relay producer (SHMQ_ROLE_RELAY) takes no part in them: it is not
 * counted, and its going closes nothing and loses nothing.
 * It must never release an entry on a client's word alone: the daemon
 * decides.
 */
#define _GNU_SOURCE /* wait.h: sched_getcpu */
#include "ring_impl.h"
#include "wait.h"

static uint32_t dec_floor0(uint32_t *ctr)
{
	uint32_t v = READ_ONCE(*ctr);
	while (v > 0 && !__atomic_compare_exchange_n(ctr, &v, v - 1, 0,
						     __ATOMIC_SEQ_CST,
						     __ATOMIC_RELAXED))
		;
	return v > 0 ? v - 1 : 0;
}

/* Does an entry of this role count in `producers` (auto-close, lost)? */
static int counted_producer(uint32_t role)
{
	return (role & (SHMQ_ROLE_PRODUCER | SHMQ_ROLE_RELAY)) ==
	       SHMQ_ROLE_PRODUCER;
}

static void clear_waits(struct shmq_client *c)
{
	for (int d = 0; d < 2; d++) {
		WRITE_ONCE(c->waits[d].threads, 0);
		WRITE_ONCE(c->waits[d].nested, 0);
		WRITE_ONCE(c->waits[d].since, 0);
		WRITE_ONCE(c->waits[d].seq, 0);
		WRITE_ONCE(c->waits[d].victim, 0);
		WRITE_ONCE(c->waits[d].timed, 0);
	}
}

int ring_client_add(struct ring *r, uint32_t pid, uint64_t start_time,
		    uint32_t role, uint32_t *index, uint32_t *gen)
{
	struct shmq_seg_hdr *h = r->hdr;

	if (pid == 0)
		return SHMQ_EINVAL;
	for (uint32_t i = 0; i < r->nclients; i++) {
		struct shmq_client *c = &r->clients[i];
		uint32_t free_pid = 0;
		if (READ_ONCE(c->pid) != 0 ||
		    !__atomic_compare_exchange_n(&c->pid, &free_pid, pid, 0,
						 __ATOMIC_ACQ_REL,
						 __ATOMIC_RELAXED))
			continue;
		uint32_t g;
		do
			g = __atomic_add_fetch(&h->client_gen, 1,
					       __ATOMIC_RELAXED);
		while (g == 0);
		WRITE_ONCE(c->role, role);
		WRITE_ONCE(c->wait, SHMQ_WAIT_NONE);
		clear_waits(c);
		WRITE_ONCE(c->detached, 0);
		WRITE_ONCE(c->leases, 0);
		WRITE_ONCE(c->tally, 0);
		WRITE_ONCE(c->start_time, start_time);
		WRITE_ONCE(c->poll_nonce[PUT_SIDE], 0);
		WRITE_ONCE(c->poll_nonce[GET_SIDE], 0);
		WRITE_ONCE(c->armed[PUT_SIDE], 0);
		WRITE_ONCE(c->armed[GET_SIDE], 0);
		__atomic_store_n(&c->gen, g, __ATOMIC_RELEASE);
		if (counted_producer(role))
			__atomic_add_fetch(&h->producers, 1, __ATOMIC_SEQ_CST);
		if (role & SHMQ_ROLE_CONSUMER)
			__atomic_add_fetch(&h->consumers, 1, __ATOMIC_SEQ_CST);
		*index = i;
		*gen = g;
		return SHMQ_OK;
	}
	return SHMQ_ELIMIT;
}

int ring_client_bind(struct ring *r, uint32_t index, uint32_t gen)
{
	if (index >= r->nclients || gen == 0 ||
	    LOAD_ACQ(r->clients[index].gen) != gen)
		return SHMQ_ECORRUPT;
	r->self = &r->clients[index];
	r->self_index = index;
	r->self_gen = gen;
	return SHMQ_OK;
}

/* The wait records (shmq_layout.h, "Wait records").  A wait raises
 * `since`, takes its number, counts itself in `timed`, and only then in
 * `threads`; shmqd reads `threads` first, then the rest: a wait it sees
 * counted, it sees with its start (or a later one: it could only
 * understate how long the thread has waited), its number and its
 * deadline (or an earlier one).  Ending, a wait leaves `threads` first:
 * `timed` may then count it a moment longer, which only makes shmqd
 * believe that something ends soon. */

/* Counts a wait with deadline `deadline` in `timed`. */
static void timed_add(uint64_t *word, int64_t deadline)
{
	uint64_t v = LOAD_SC(*word), n;
	uint64_t mine = (uint64_t)deadline >> SHMQ_TIMED_SHIFT;

	do {
		uint64_t count = v & SHMQ_TIMED_COUNT;
		uint64_t at = v >> SHMQ_TIMED_SHIFT;
		if (count >= SHMQ_TIMED_COUNT - 1)
			n = SHMQ_TIMED_COUNT;   /* uncountable: ends at once */
		else
			n = (count && at < mine ? at : mine) << SHMQ_TIMED_SHIFT |
			    (count + 1);
	} while (!__atomic_compare_exchange_n(word, &v, n, 0, __ATOMIC_SEQ_CST,
					      __ATOMIC_SEQ_CST));
}

/* Takes one timed wait out of `timed`: the earliest deadline stays (it
 * may be that of the wait gone: earlier than the truth, never later)
 * until none is left. */
static void timed_remove(uint64_t *word)
{
	uint64_t v = LOAD_SC(*word), n;

	do {
		uint64_t count = v & SHMQ_TIMED_COUNT;
		if (count == 0 || count == SHMQ_TIMED_COUNT)
			return;
		n = count == 1 ? 0 : v - 1;
	} while (!__atomic_compare_exchange_n(word, &v, n, 0, __ATOMIC_SEQ_CST,
					      __ATOMIC_SEQ_CST));
}

/* Waits of this thread counted now, in any record: more than one means a
 * signal handler blocked while its thread was counted already.  (Initial
 * exec: a handler may read it; the library is linked, not loaded late.) */
static __thread unsigned waits_here __attribute__((tls_model("initial-exec")));

/* A call continued in slices (shmq_wait_continue): what the binding set
 * for this thread's next waits (since 0: none), and what the waits of the
 * call so far left (`call`: the since they are of), kept across its
 * slices: the record and number of its wait, and when it last told shmqd
 * that it is blocked. */
struct continued {
	int64_t since, deadline;
	int64_t call;
	const struct shmq_wait_rec *rec;
	uint64_t seq;
	uint64_t told;
};
static __thread struct continued cont
	__attribute__((tls_model("initial-exec")));

void ring_client_wait_continue(int64_t since, int64_t deadline)
{
	if (since > 0 && (uint64_t)since > mono_ns())
		since = (int64_t)mono_ns();     /* never later than now */
	if (since > 0 && since != cont.call) {
		cont.call = since;
		cont.rec = NULL;
		cont.seq = 0;
		cont.told = (uint64_t)since;
	}
	cont.since = since > 0 ? since : 0;
	cont.deadline = since > 0 && deadline > 0 ? deadline : 0;
}

/* The report period in ns, and whether shmqd has seen a wait counted
 * since `since` and still watches the queue: as wait.c reads them. */
static uint64_t report_period_ns(const struct ring *r)
{
	uint32_t ms = READ_ONCE(r->hdr->dl_report_ms);

	if (ms > 3600000u)
		ms = 3600000u;
	return (uint64_t)ms * 1000000u;
}

static int seen_and_watched(const struct ring *r, uint64_t since,
			    uint64_t now, uint64_t period)
{
	int64_t seen = READ_ONCE(r->hdr->dl_seen_ns);
	int64_t watch = READ_ONCE(r->hdr->dl_watch_ns);

	return (int64_t)now < watch && seen >= (int64_t)(since + period / 2);
}

void ring_client_wait_begin(struct ring *r, enum side side,
			    struct wait_call *wc)
{
	wc->seq = 0;
	wc->nested = 0;
	wc->continued = 0;
	if (r->self == NULL)
		return;
	wc->nested = waits_here++ > 0;
	struct shmq_wait_rec *w = &r->self->waits[side];
	/* A slice of a continued call is its wait, not a new one: counted
	 * from the call's start, with the call's deadline, under the call's
	 * number while the record still holds it, and telling shmqd once
	 * per period of the call.  Not a wait nested in one of this thread
	 * (a signal handler's call): that is a call of its own. */
	if (cont.since > 0 && !wc->nested) {
		wc->continued = 1;
		if ((uint64_t)cont.since < wc->since)
			wc->since = (uint64_t)cont.since;
		wc->deadline = cont.deadline;
		wc->told = cont.told;
	}
	int64_t s = READ_ONCE(w->since), now = (int64_t)wc->since;

	while (s < now && !__atomic_compare_exchange_n(&w->since, &s, now, 0,
						       __ATOMIC_SEQ_CST,
						       __ATOMIC_RELAXED))
		;
	if (wc->continued && cont.rec == w && cont.seq != 0 &&
	    LOAD_SC(w->seq) == cont.seq)
		wc->seq = cont.seq;
	else
		do
			wc->seq = __atomic_add_fetch(&w->seq, 1,
						     __ATOMIC_SEQ_CST);
		while (wc->seq == 0);
	if (wc->deadline > 0)
		timed_add(&w->timed, wc->deadline);
	if (wc->nested)
		__atomic_add_fetch(&w->nested, 1, __ATOMIC_SEQ_CST);
	__atomic_add_fetch(&w->threads, 1, __ATOMIC_SEQ_CST);
	if (!wc->continued)
		return;
	cont.rec = w;
	cont.seq = wc->seq;
	/* A slice is shorter than a report period: its own sleeps may never
	 * get to tell shmqd (wait.c tells it before a later sleep), so the
	 * call does, at the start of a slice, once it has waited a period. */
	uint64_t period = report_period_ns(r), t = mono_ns();
	if (period && r->blocked && t - wc->told >= period) {
		wc->told = cont.told = t;
		if (!seen_and_watched(r, wc->since, t, period))
			r->blocked(r->blocked_ctx, side);
	}
}

int ring_client_wait_end(struct ring *r, enum side side,
			 const struct wait_call *wc, int rc)
{
	if (r->self == NULL)
		return rc;
	struct shmq_wait_rec *w = &r->self->waits[side];
	uint64_t mine = wc->seq;

	waits_here--;
	if (wc->continued && cont.call == (int64_t)wc->since)
		cont.told = wc->told;
	dec_floor0(&w->threads);
	if (wc->nested)
		dec_floor0(&w->nested);
	if (wc->deadline > 0)
		timed_remove(&w->timed);
	/* A victim word naming this wait, unclaimed: it goes with it; but a
	 * slice of a continued call that ends without success claims it,
	 * so that the call fails (the next slice would not look before its
	 * first sleep, which may last the slice). */
	if (mine != 0 &&
	    __atomic_compare_exchange_n(&w->victim, &mine, 0, 0,
					__ATOMIC_SEQ_CST, __ATOMIC_RELAXED) &&
	    wc->continued && (rc == SHMQ_ETIMEDOUT || rc == SHMQ_EINTR))
		return SHMQ_EDEADLK;
	return rc;
}

int ring_client_wait_victim(struct ring *r, enum side side,
			    const struct wait_call *wc)
{
	uint64_t mine = wc->seq;

	/* Only the wait that shmqd named: another thread's wait on the same
	 * handle has a number of its own. */
	if (r->self == NULL || mine == 0)
		return 0;
	return __atomic_compare_exchange_n(&r->self->waits[side].victim,
					   &mine, 0, 0, __ATOMIC_SEQ_CST,
					   __ATOMIC_RELAXED);
}

void ring_client_mark_detached(struct ring *r)
{
	if (r->self == NULL)
		return;
	__atomic_store_n(&r->self->detached, SHMQ_CLIENT_DETACHED,
			 __ATOMIC_SEQ_CST);
	/* Our leases are returned now, not when shmqd hears of the detach:
	 * tell the getters to look (if we hold any: a departure costs each
	 * getter a pass over the table). */
	if (r->leases && READ_ONCE(r->self->leases) != 0) {
		__atomic_add_fetch(&r->hdr->departures, 1, __ATOMIC_SEQ_CST);
		ring_wake_all(r);
	}
}

/* Empties an entry for its next owner; the pid goes last, with release
 * order, so that a reader who sees it 0 sees the rest cleared. */
static void entry_clear(struct shmq_client *c)
{
	WRITE_ONCE(c->role, 0);
	WRITE_ONCE(c->wait, SHMQ_WAIT_NONE);
	clear_waits(c);
	WRITE_ONCE(c->detached, 0);
	WRITE_ONCE(c->armed[PUT_SIDE], 0);
	WRITE_ONCE(c->armed[GET_SIDE], 0);
	WRITE_ONCE(c->leases, 0);
	WRITE_ONCE(c->gen, 0);
	WRITE_ONCE(c->start_time, 0);
	__atomic_store_n(&c->pid, 0, __ATOMIC_RELEASE);
}

void ring_client_remove(struct ring *r, uint32_t index, int died)
{
	struct shmq_seg_hdr *h = r->hdr;

	if (index >= r->nclients)
		return;
	struct shmq_client *c = &r->clients[index];
	uint32_t role = READ_ONCE(c->role);
	/* Leases it holds (acked queues; it may overstate, never less). */
	uint32_t held = r->leases ? LOAD_SC(c->leases) : 0;

	/* A handle that marked itself detached did not die attached, even
	 * if shmqd only hears of it from the process's exit. */
	if (READ_ONCE(c->detached) == SHMQ_CLIENT_DETACHED)
		died = 0;
	if (role & SHMQ_ROLE_CONSUMER)
		dec_floor0(&h->consumers);
	if (counted_producer(role)) {
		/* The lost mark goes first, so that a consumer that sees the
		 * close also sees why. */
		if (died)
			__atomic_fetch_or(&h->state_flags,
					  SHMQ_ST_PRODUCER_LOST,
					  __ATOMIC_SEQ_CST);
		if (dec_floor0(&h->producers) == 0 &&
		    (r->config_flags & SHMQ_CFG_AUTO_CLOSE)) {
			uint64_t tw = LOAD_ACQ(h->tail);
			if (!(tw & SHMQ_TAIL_CLOSED))
				__atomic_fetch_or(&h->state_flags,
						  SHMQ_ST_AUTO_CLOSED,
						  __ATOMIC_SEQ_CST);
			ring_close(r, SHMQ_CLOSE_DRAIN, NULL);
		}
	}
	entry_clear(c);
	/* Leases held by the entry are returned by the next getter, which
	 * learns of the departure here (lease.c never trusts shmqd to touch
	 * its table).  Only then: every departure costs each getter a pass
	 * over the table. */
	if (held)
		__atomic_add_fetch(&h->departures, 1, __ATOMIC_SEQ_CST);
	/* A process that died just after being woken may have taken a
	 * wake-up with it, and a departure with leases may end an acked
	 * stream: let every sleeper look again. */
	if (died || held)
		ring_wake_all(r);
}

void ring_client_forget(struct ring *r, uint32_t index)
{
	if (index >= r->nclients)
		return;
	struct shmq_client *c = &r->clients[index];

	/* Nobody was handed this entry: it counts in no total, and only its
	 * lies go (any lease it "holds" goes back at the next get). */
	entry_clear(c);
	__atomic_add_fetch(&r->hdr->departures, 1, __ATOMIC_SEQ_CST);
}

void ring_client_recount(struct ring *r)
{
	uint32_t producers = 0, consumers = 0;

	for (uint32_t i = 0; i < r->nclients; i++) {
		const struct shmq_client *c = &r->clients[i];
		if (READ_ONCE(c->pid) == 0)
			continue;
		uint32_t role = READ_ONCE(c->role);
		producers += counted_producer(role);
		consumers += !!(role & SHMQ_ROLE_CONSUMER);
	}
	__atomic_store_n(&r->hdr->producers, producers, __ATOMIC_SEQ_CST);
	__atomic_store_n(&r->hdr->consumers, consumers, __ATOMIC_SEQ_CST);
}

/* --- shmqd's deadlock detection ---------------------------------------- */

void ring_client_look(const struct ring *r, uint32_t index,
		      struct ring_waiter *w)
{
	const struct shmq_client *c = &r->clients[index];

	w->pid = LOAD_ACQ(c->pid);
	w->gen = LOAD_ACQ(c->gen);
	w->role = READ_ONCE(c->role);
	w->start_time = READ_ONCE(c->start_time);
	for (int d = 0; d < 2; d++) {
		/* `threads` first, `seq` before `since`: see the wait
		 * records above. */
		w->threads[d] = LOAD_SC(c->waits[d].threads);
		w->nested[d] = LOAD_SC(c->waits[d].nested);
		w->seq[d] = LOAD_SC(c->waits[d].seq);
		w->since[d] = LOAD_SC(c->waits[d].since);
		uint64_t t = LOAD_SC(c->waits[d].timed);
		w->timed[d] = (uint32_t)(t & SHMQ_TIMED_COUNT);
		w->deadline[d] = w->timed[d] == SHMQ_TIMED_COUNT
					 ? 0
					 : (int64_t)(t >> SHMQ_TIMED_SHIFT
							     << SHMQ_TIMED_SHIFT);
		w->victim[d] = LOAD_SC(c->waits[d].victim);
	}
}

int ring_client_fail_wait(struct ring *r, uint32_t index, uint32_t gen,
			  int side, uint64_t seq, uint64_t old)
{
	if (index >= r->nclients || (side != 0 && side != 1) || seq == 0)
		return 0;
	struct shmq_client *c = &r->clients[index];
	if (LOAD_ACQ(c->gen) != gen || LOAD_SC(c->waits[side].seq) != seq ||
	    LOAD_SC(c->waits[side].threads) == 0 ||
	    !__atomic_compare_exchange_n(&c->waits[side].victim, &old, seq, 0,
					 __ATOMIC_SEQ_CST, __ATOMIC_RELAXED))
		return 0;
	ring_wake_all(r);
	return 1;
}

int ring_client_unfail_wait(struct ring *r, uint32_t index, uint32_t gen,
			    int side, uint64_t seq)
{
	if (index >= r->nclients || (side != 0 && side != 1) || seq == 0)
		return 0;
	struct shmq_client *c = &r->clients[index];
	return LOAD_ACQ(c->gen) == gen &&
	       __atomic_compare_exchange_n(&c->waits[side].victim, &seq, 0, 0,
					   __ATOMIC_SEQ_CST, __ATOMIC_RELAXED);
}
