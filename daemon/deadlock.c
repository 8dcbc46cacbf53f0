/*
 * deadlock.c - deadlocks of blocked processes: watching, naming, breaking.
 *
 * Owns the watch list (queues where a call said it has been blocked for a
 * while), the timer that looks at them, the reading of their wait records
 * into a look (knot.h), the log line of each deadlock (once), the victims
 * of the `fail` policy, and what DEADLOCKS answers; knot.c works out who
 * waits only for whom.  It must never report a deadlock that is not one:
 * every doubt (a process it cannot read, a wait too young, a queue that
 * moved, a record that does not add up, a wait that could not be
 * blocked) counts as "this process may still run".  It believes a record
 * only in an attachment entry it handed out itself, of the process it
 * handed it to (procs.c), so that nobody can speak for a process on a
 * queue that process never opened; and its work is in proportion to the
 * entries it handed out on the queues it watches, whatever the tables
 * hold.  It never takes a queue's lock, never waits, reads segments only
 * under registry_access(), and does nothing while no call is blocked.
 *
 * The model is in shmq.h ("Deadlocks").  In short: a process is stuck when
 * every thread of it is counted in a wait record, each for at least the
 * timeout, on queues where nothing moved between two looks and where such
 * a wait is possible at all (a full queue for a put, an empty one for a
 * get), and it is not stopped.  Starting from the stuck processes, any
 * whose wait some process outside the set could end (any other process
 * with the queue open: a consumer by a get, a producer by a put, anyone
 * by a close), or whose wait nobody attached on the other side could end
 * (a newcomer might), is taken out, until nothing changes.  Those left
 * wait only for each other.  In the graph "waits for a consumer/producer
 * of its queue", each strongly connected part that no edge leaves is one
 * deadlock (its cycles); the others reach one and are blocked behind it.
 */
#define _GNU_SOURCE
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>

#include "clock.h"
#include "deadlock.h"
#include "knot.h"
#include "log.h"
#include "procs.h"

#define LINE_MAX_LEN 4000       /* one log line */
#define BACKOFF_MAX 8
/* A deadlock logged is remembered while it is seen, and for this many
 * looks after: a look that misses it (a /proc read that failed, say)
 * must not make it new again. */
#define KEEP_LOOKS 8

/* --- between looks ------------------------------------------------------ */

struct watch {
	uint64_t id;
	int have;                   /* `last` holds the previous look */
	int cleaned;                /* entries nobody was handed, cleared */
	struct ring_progress last;
};

static struct event *tick_ev;
static int64_t timeout_ns, period_ns;
static int ticking;
/* Between two looks: a period, doubled after every look where nothing
 * could become a deadlock by waiting longer, up to BACKOFF_MAX periods,
 * and a period again as soon as a wait shmqd has not seen reports. */
static int64_t interval_ns;
static int64_t next_tick_ns;    /* when the pending look is due */
static struct watch *watches;
static size_t nwatch, capwatch;

/* The attachments of the queue being read (procs.c's word). */
static struct procs_entry *known;
static size_t capknown;

/* What the last look found: rows, and the queue of each. */
static struct shmq_wire_dl_wait *rows;
static uint64_t *row_queue;
static size_t nrows;
static uint32_t rows_more;

/* The deadlocks logged, by key (see deadlock_key), with the last look
 * that saw each: an open-addressing table, at most half full, that grows
 * with the number of deadlocks.  Key 0 marks a free slot. */
struct logged {
	uint64_t key;
	uint64_t look;
};
static struct logged *logged;
static size_t caplogged, nlogged;
static uint64_t look_no;

/* Makes room for `want` elements in array `ptr`, which holds `cap` of
 * them: 0, or -1 if out of memory (the array is then as it was). */
#define GROW(ptr, cap, want)                                                 \
	((ptr) = grow_to((ptr), &(cap), (want), sizeof(*(ptr))),            \
	 grow_failed ? -1 : 0)

static int grow_failed;

static void *grow_to(void *old, size_t *cap, size_t want, size_t size)
{
	grow_failed = 0;
	if (want <= *cap)
		return old;
	size_t n = *cap ? *cap : 16;
	while (n < want)
		n *= 2;
	void *q = realloc(old, n * size);
	if (q == NULL) {
		grow_failed = 1;
		return old;
	}
	*cap = n;
	return q;
}

/* --- deadlocks remembered ------------------------------------------------ */

static void logged_put(struct logged *t, size_t cap, struct logged e)
{
	size_t i = (size_t)(e.key * UINT64_C(0x9e3779b97f4a7c15) >> 7) &
		   (cap - 1);

	while (t[i].key != 0 && t[i].key != e.key)
		i = (i + 1) & (cap - 1);
	t[i] = e;
}

/* Rebuilds the table at `cap` slots with the keys seen in the last
 * KEEP_LOOKS looks; -1 if out of memory (the table is then as it was). */
static int logged_rebuild(size_t cap)
{
	struct logged *t = calloc(cap, sizeof(*t));
	size_t n = 0;

	if (t == NULL)
		return -1;
	for (size_t i = 0; i < caplogged; i++)
		if (logged[i].key != 0 && logged[i].look + KEEP_LOOKS >= look_no) {
			logged_put(t, cap, logged[i]);
			n++;
		}
	free(logged);
	logged = t;
	caplogged = cap;
	nlogged = n;
	return 0;
}

/* Whether deadlock `key` was logged already; it is remembered as seen at
 * this look either way (unless out of memory: then it counts as logged,
 * so that no line is written twice). */
static int logged_before(uint64_t key)
{
	if (key == 0)
		key = 1;
	if (caplogged > 0) {
		size_t i = (size_t)(key * UINT64_C(0x9e3779b97f4a7c15) >> 7) &
			   (caplogged - 1);
		for (; logged[i].key != 0; i = (i + 1) & (caplogged - 1))
			if (logged[i].key == key) {
				logged[i].look = look_no;
				return 1;
			}
	}
	if (2 * (nlogged + 1) > caplogged &&
	    logged_rebuild(caplogged ? 2 * caplogged : 64) < 0)
		return 1;
	logged_put(logged, caplogged, (struct logged){ key, look_no });
	nlogged++;
	return 0;
}

/* Forgets the deadlocks not seen for KEEP_LOOKS looks (when they are
 * enough to matter: the cost stays in proportion to the deadlocks). */
static void logged_expire(void)
{
	size_t live = 0;

	if (nlogged < 64)
		return;
	for (size_t i = 0; i < caplogged; i++)
		live += logged[i].key != 0 &&
			logged[i].look + KEEP_LOOKS >= look_no;
	if (2 * live < nlogged)
		logged_rebuild(caplogged);
}

/* --- one look ------------------------------------------------------------ */

static int same_progress(const struct ring_progress *a,
			 const struct ring_progress *b)
{
	return a->tail_word == b->tail_word && a->head == b->head &&
	       a->acked == b->acked && a->dead_lettered == b->dead_lettered &&
	       a->dropped == b->dropped && a->discarded == b->discarded &&
	       a->leased == b->leased && a->returned == b->returned;
}

struct read_ctx {
	struct look *l;
	const struct procs_entry *known;    /* the attachments shmqd knows */
	size_t nknown;
	uint8_t *seen;              /* clean: one byte per entry, zeroed */
	struct ring_progress prog;
	int blocked;                /* some call is counted in a record */
};

/* Clears every entry of the table that shmqd did not hand out: a client
 * wrote it, and all it could say is a lie. */
static void clean_table(struct ring *r, const struct read_ctx *c)
{
	for (size_t k = 0; k < c->nknown; k++)
		c->seen[c->known[k].index] = 1;
	for (uint32_t i = 0; i < r->nclients; i++) {
		struct ring_waiter w;
		if (c->seen[i])
			continue;
		ring_client_look(r, i, &w);
		if (w.pid != 0)
			ring_client_forget(r, i);
	}
}

static int cmp_index(const void *x, const void *y)
{
	const struct la *a = x, *b = y;
	return a->index < b->index ? -1 : a->index > b->index;
}

struct holders {
	struct la *a;               /* this queue's entries, by index */
	size_t n;
};

static void mark_holder(uint32_t index, uint32_t gen, void *arg)
{
	struct holders *h = arg;
	size_t lo = 0, hi = h->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (h->a[mid].index < index)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo < h->n && h->a[lo].index == index && h->a[lo].gen == gen)
		h->a[lo].holder = 1;
}

/* Under registry_access(): copies what the analysis needs.  Room for
 * every entry was made before, and the queue counts only once complete,
 * so an access abandoned half-way leaves nothing behind.  Only entries
 * shmqd handed out are read, and a record counts only while the entry
 * still names the process and generation it was handed to: a record is
 * the word of whoever wrote it, and any process with the queue open may
 * write any entry.  The work is in the number of those entries, never in
 * the size of the table (but for the one cleaning). */
static void read_queue(struct queue *q, void *arg)
{
	struct read_ctx *c = arg;
	struct look *l = c->l;
	struct ring *r = &q->ring;
	struct lq *lq = &l->q[l->nq];
	size_t na = l->na;
	int getting = 0;

	if (c->seen)
		clean_table(r, c);
	ring_progress(r, &c->prog);
	for (size_t k = 0; k < c->nknown; k++) {
		const struct procs_entry *e = &c->known[k];
		struct la *a = &l->a[na];
		if (e->index >= r->nclients)
			continue;
		ring_client_look(r, e->index, &a->w);
		if (a->w.pid != (uint32_t)e->pid || a->w.gen != e->gen)
			memset(&a->w, 0, sizeof(a->w));
		a->w.pid = (uint32_t)e->pid;
		a->w.gen = e->gen;
		a->w.start_time = e->start_time;
		a->w.role = e->role;
		a->q = (uint32_t)l->nq;
		a->index = e->index;
		a->gen = e->gen;
		a->holder = 0;
		if (a->w.threads[0] || a->w.threads[1])
			c->blocked = 1;
		getting |= a->w.threads[KNOT_GET] != 0;
		na++;
	}
	/* A get on an acked queue can also be ended by a lease holder (an
	 * ack, a nack, a return): the lease table names their entries,
	 * which count only if shmqd handed them out. */
	if (getting && r->leases) {
		struct holders h = { &l->a[l->na], na - l->na };
		qsort(h.a, h.n, sizeof(*h.a), cmp_index);
		ring_lease_holders(r, mark_holder, &h);
	}
	lq->state = ring_dl_state(r);
	/* A wait we have seen need not tell us again while we watch (until
	 * the longest we may wait before the next look, and a period more),
	 * and a wait that began after this look knows that we have not. */
	ring_dl_set_watch(r,
			  c->blocked ? l->now + (BACKOFF_MAX + 1) * period_ns
				     : 0,
			  l->now);
	if (!c->blocked && lq->state)
		ring_dl_set_state(r, 0);
	lq->first = (uint32_t)l->na;
	lq->n = (uint32_t)(na - l->na);
	l->na = na;
}

static void fill_queue(struct lq *lq, struct queue *q,
		       const struct ring_progress *p)
{
	const struct ring *r = &q->ring;
	uint64_t tail = p->tail_word & SHMQ_TAIL_COUNT;
	uint64_t queued = tail >= p->head ? tail - p->head : 0;
	int closed = (p->tail_word & SHMQ_TAIL_CLOSED) != 0;

	lq->id = q->id;
	strcpy(lq->name, q->name);
	lq->capacity = r->capacity;
	lq->bytes = p->bytes;
	lq->max_bytes = r->max_bytes;
	/* `leased` counts every lease slot in use, returned ones too. */
	queued += p->leased;
	lq->messages = queued > UINT32_MAX ? UINT32_MAX : (uint32_t)queued;
	lq->fail = (q->config_flags & SHMQ_CFG_DEADLOCK_FAIL) != 0;
	/* Could a put be blocked here for good?  Not on a closed queue
	 * (it fails), nor on one with room, unless a byte budget is what
	 * keeps it out (the length it waits to put is its own). */
	lq->could_block[KNOT_PUT] = !closed && (queued >= r->capacity ||
						r->max_bytes != 0);
	/* A get: only on an empty queue with nothing to redeliver, still
	 * open (or acked, closed, with leases out that may come back), and
	 * with no lease that will time out by itself. */
	lq->could_block[KNOT_GET] =
		!(p->tail_word & SHMQ_TAIL_NOW) && tail == p->head &&
		p->returned == 0 && (!closed || (r->leases && p->leased > 0)) &&
		!(p->leased > 0 && p->next_deadline != SHMQ_NO_DEADLINE);
}

/* Reads every watched queue; drops those where no call shmqd believes in
 * is blocked. */
static void read_watched(struct look *l)
{
	size_t keep = 0;

	for (size_t i = 0; i < nwatch; i++) {
		struct watch w = watches[i];
		struct queue *q = registry_find_id(w.id);
		if (q == NULL || q->broken)
			continue;
		struct read_ctx c = { .l = l };
		if (GROW(l->q, l->capq, l->nq + 1) < 0 ||
		    GROW(l->a, l->capa, l->na + q->attached) < 0 ||
		    GROW(known, capknown, q->attached) < 0 ||
		    (!w.cleaned &&
		     (c.seen = calloc(q->ring.nclients, 1)) == NULL)) {
			watches[keep++] = w;    /* next time */
			continue;
		}
		c.known = known;
		c.nknown = procs_entries(q, known, capknown);
		size_t na = l->na;
		int rc = registry_access(q, read_queue, &c);
		free(c.seen);
		if (rc != SHMQ_OK) {
			l->na = na;
			continue;
		}
		w.cleaned = 1;
		if (!c.blocked) {
			l->na = na;
			continue;
		}
		struct lq *lq = &l->q[l->nq++];
		fill_queue(lq, q, &c.prog);
		lq->new_state = 0;
		lq->stable = w.have && same_progress(&w.last, &c.prog);
		w.last = c.prog;
		w.have = 1;
		watches[keep++] = w;
	}
	nwatch = keep;
}

struct key {
	uint32_t pid;
	uint64_t start;
	uint32_t a;
};

static int cmp_key(const void *x, const void *y)
{
	const struct key *a = x, *b = y;
	if (a->pid != b->pid)
		return a->pid < b->pid ? -1 : 1;
	if (a->start != b->start)
		return a->start < b->start ? -1 : 1;
	return a->a < b->a ? -1 : a->a > b->a;
}

/* Groups the entries by process (pid and start time, shmqd's own). */
static int gather_procs(struct look *l)
{
	struct key *k = malloc((l->na ? l->na : 1) * sizeof(*k));

	if (k == NULL)
		return -1;
	for (size_t i = 0; i < l->na; i++)
		k[i] = (struct key){ l->a[i].w.pid, l->a[i].w.start_time,
				     (uint32_t)i };
	qsort(k, l->na, sizeof(*k), cmp_key);
	for (size_t i = 0; i < l->na; i++) {
		if (i == 0 || k[i].pid != k[i - 1].pid ||
		    k[i].start != k[i - 1].start) {
			if (GROW(l->p, l->capp, l->np + 1) < 0) {
				free(k);
				return -1;
			}
			l->p[l->np++] = (struct lp){
				.pid = k[i].pid, .start_time = k[i].start,
				.first = KNOT_NONE, .deadlock = -1,
			};
		}
		struct lp *p = &l->p[l->np - 1];
		struct la *a = &l->a[k[i].a];
		a->proc = (uint32_t)(l->np - 1);
		a->next = p->first;
		p->first = k[i].a;
	}
	free(k);
	return 0;
}

/* Will a timed call counted in the record of entry a, side d, return by
 * itself before the next look ends?  Then its process is no deadlock:
 * the list would name a call that is gone (and the fail policy could
 * fail a call that was about to return). */
static int ends_soon(const struct look *l, const struct la *a, int d)
{
	return a->w.timed[d] != 0 && (a->w.timed[d] == SHMQ_TIMED_COUNT ||
				      a->w.deadline[d] <= l->horizon);
}

/* Is process p, by its own records, blocked long enough, in waits that
 * could be blocked, on queues where nothing moved, and none about to
 * time out? */
static int looks_stuck(const struct look *l, const struct lp *p,
		       uint32_t *blocked)
{
	uint64_t sum = 0;

	for (uint32_t i = p->first; i != KNOT_NONE; i = l->a[i].next) {
		const struct la *a = &l->a[i];
		const struct lq *q = &l->q[a->q];
		for (int d = 0; d < 2; d++) {
			if (a->w.threads[d] == 0)
				continue;
			if (!q->stable || !q->could_block[d] ||
			    a->w.nested[d] || a->w.since[d] <= 0 ||
			    l->now - a->w.since[d] < timeout_ns ||
			    ends_soon(l, a, d))
				return 0;
			sum += a->w.threads[d];
		}
	}
	if (sum == 0 || sum > UINT32_MAX)
		return 0;
	*blocked = (uint32_t)sum;
	return 1;
}

/* knot_find's question: does /proc agree that p is stuck: the process we
 * recorded, not stopped, frozen or dying, with as many threads as its
 * records count? */
static int proc_agrees(struct lp *p, void *ctx)
{
	struct proc_info pi;

	(void)ctx;
	if (p->pid == 0 || p->pid > INT32_MAX ||
	    procs_info((pid_t)p->pid, &pi) < 0 ||
	    pi.start_time != p->start_time || pi.threads != p->blocked)
		return 0;
	if (strchr("TtZXxWP", pi.state) != NULL || procs_frozen((pid_t)p->pid))
		return 0;
	memcpy(p->comm, pi.comm, sizeof(p->comm));
	return 1;
}

/* --- what the user sees --------------------------------------------------- */

/* The processes of every deadlock, in order: those of deadlock 0's cycle,
 * then those behind it, then deadlock 1's, ... (a counting sort). */
static uint32_t *order_procs(const struct look *l, int ndl, size_t **startp)
{
	size_t nb = 2 * (size_t)ndl;
	size_t *start = calloc(nb + 1, sizeof(*start));
	uint32_t *order = malloc((l->np ? l->np : 1) * sizeof(*order));

	if (start == NULL || order == NULL) {
		free(start);
		free(order);
		return NULL;
	}
	for (size_t i = 0; i < l->np; i++)
		if (l->p[i].stuck && l->p[i].deadlock >= 0)
			start[2 * (size_t)l->p[i].deadlock + (size_t)l->p[i].behind +
			      1]++;
	for (size_t b = 0; b < nb; b++)
		start[b + 1] += start[b];
	size_t *at = malloc((nb ? nb : 1) * sizeof(*at));
	if (at == NULL) {
		free(start);
		free(order);
		return NULL;
	}
	memcpy(at, start, nb * sizeof(*at));
	for (size_t i = 0; i < l->np; i++)
		if (l->p[i].stuck && l->p[i].deadlock >= 0)
			order[at[2 * (size_t)l->p[i].deadlock +
				 (size_t)l->p[i].behind]++] = (uint32_t)i;
	free(at);
	*startp = start;
	return order;
}

/* A deadlock's identity: its cycle's processes and the waits they are in.
 * The same deadlock seen again is not logged again; one formed anew
 * (after a victim's call returned) is. */
static uint64_t deadlock_key(const struct look *l, const uint32_t *procs,
			     size_t n)
{
	uint64_t h = UINT64_C(0xcbf29ce484222325);

	for (size_t i = 0; i < n; i++) {
		const struct lp *p = &l->p[procs[i]];
		uint64_t v[2] = { p->pid, p->start_time };
		for (uint32_t k = p->first; k != KNOT_NONE; k = l->a[k].next)
			for (int d = 0; d < 2; d++)
				if (l->a[k].w.threads[d])
					v[1] ^= (uint64_t)l->a[k].w.since[d] +
						l->q[l->a[k].q].id + (uint64_t)d;
		const unsigned char *b = (const unsigned char *)v;
		for (size_t j = 0; j < sizeof(v); j++) {
			h ^= b[j];
			h *= UINT64_C(0x100000001b3);
		}
	}
	return h;
}

struct line {
	char buf[LINE_MAX_LEN];
	size_t len;
};

static void add(struct line *ln, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void add(struct line *ln, const char *fmt, ...)
{
	va_list ap;

	if (ln->len >= sizeof(ln->buf) - 1)
		return;
	va_start(ap, fmt);
	int n = vsnprintf(ln->buf + ln->len, sizeof(ln->buf) - ln->len, fmt,
			  ap);
	va_end(ap);
	if (n > 0)
		ln->len += (size_t)n;
	if (ln->len >= sizeof(ln->buf) - 1) {
		ln->len = sizeof(ln->buf) - 1;
		memcpy(ln->buf + ln->len - 3, "...", 3);
	}
}

/* One wait of process p in one line: on entry k, side d. */
static void add_wait(struct line *ln, const struct look *l,
		     const struct lp *p, const struct la *a, int d)
{
	const struct lq *q = &l->q[a->q];

	if (d == KNOT_PUT && q->messages < q->capacity)
		add(ln, " in put on '%s' (full: byte budget %" PRIu64 "/%" PRIu64,
		    q->name, q->bytes, q->max_bytes);
	else if (d == KNOT_PUT)
		add(ln, " in put on '%s' (full %u/%u", q->name, q->messages,
		    q->capacity);
	else
		add(ln, " in get on '%s' (empty", q->name);
	if (a->w.threads[d] > 1)
		add(ln, ", %u threads", a->w.threads[d]);
	if (a->w.timed[d])
		add(ln, ", may end at its timeout in %.1f s",
		    (double)(a->w.deadline[d] - l->now) / 1e9);
	add(ln, "), freed only by ");
	if (q->nfreers[d] == 1 && &l->p[q->freers[d][0]] == p) {
		add(ln, "itself");
		return;
	}
	for (uint32_t k = 0; k < q->nfreers[d] && k < KNOT_FREERS; k++) {
		const struct lp *f = &l->p[q->freers[d][k]];
		add(ln, "%spid %u (%s)", k ? ", " : "", f->pid, f->comm);
	}
	if (q->nfreers[d] > KNOT_FREERS)
		add(ln, " and %u more", q->nfreers[d] - KNOT_FREERS);
}

/* One line for the log: every process of the deadlock and what it waits
 * for, those blocked behind it last (log.c escapes what the processes
 * chose, their command names). */
static void log_deadlock(const struct look *l, const uint32_t *procs,
			 size_t n)
{
	struct line ln = { .len = 0 };
	int behind = 0;

	add(&ln, "deadlock: ");
	for (size_t i = 0; i < n; i++) {
		const struct lp *p = &l->p[procs[i]];
		if (p->behind && !behind)
			add(&ln, "; blocked behind it: ");
		else if (i > 0)
			add(&ln, "; ");
		behind = p->behind;
		add(&ln, "pid %u (%s) blocked", p->pid, p->comm);
		int first = 1;
		for (uint32_t k = p->first; k != KNOT_NONE; k = l->a[k].next)
			for (int d = 0; d < 2; d++) {
				if (l->a[k].w.threads[d] == 0)
					continue;
				if (!first)
					add(&ln, ", and");
				first = 0;
				add_wait(&ln, l, p, &l->a[k], d);
			}
	}
	log_warn("%s", ln.buf);
}

/* The rows of the processes procs[0 .. n) into out[*nout ..), at most
 * `cap` in all; those left off are counted in *more. */
static void add_rows(const struct look *l, const uint32_t *procs, size_t n,
		     struct shmq_wire_dl_wait *out, uint64_t *ids,
		     size_t *nout, size_t cap, uint32_t *more)
{
	for (size_t i = 0; i < n; i++) {
		const struct lp *p = &l->p[procs[i]];
		for (uint32_t k = p->first; k != KNOT_NONE; k = l->a[k].next) {
			const struct la *a = &l->a[k];
			const struct lq *q = &l->q[a->q];
			for (int d = 0; d < 2; d++) {
				if (a->w.threads[d] == 0)
					continue;
				if (*nout >= cap) {
					(*more)++;
					continue;
				}
				ids[*nout] = q->id;
				struct shmq_wire_dl_wait *r = &out[(*nout)++];
				memset(r, 0, sizeof(*r));
				strcpy(r->queue, q->name);
				memcpy(r->comm, p->comm, sizeof(r->comm));
				r->deadlock = (uint32_t)p->deadlock;
				r->pid = p->pid;
				r->flags = (d == KNOT_PUT ? SHMQ_WIRE_DL_PUT : 0) |
					   (p->behind ? SHMQ_WIRE_DL_BEHIND : 0) |
					   (q->fail ? SHMQ_WIRE_DL_FAIL : 0) |
					   (a->w.victim[d] != 0 &&
							    a->w.victim[d] ==
								    a->w.seq[d]
						    ? SHMQ_WIRE_DL_VICTIM : 0);
				r->threads = a->w.threads[d];
				r->messages = q->messages;
				r->capacity = q->capacity;
				r->bytes = q->bytes;
				r->max_bytes = q->max_bytes;
				r->blocked_ns = l->now - a->w.since[d];
				if (a->w.timed[d])
					r->ends_in_ns =
						a->w.deadline[d] > l->now
							? a->w.deadline[d] - l->now
							: 1;
				r->nfreers = q->nfreers[d];
				for (uint32_t m = 0; m < q->nfreers[d] &&
						     m < SHMQ_WIRE_DL_FREERS; m++)
					r->freers[m] = l->p[q->freers[d][m]].pid;
			}
		}
	}
}

/* --- acting on it ----------------------------------------------------------- */

struct state_change {
	uint32_t state;
};

static void write_state(struct queue *q, void *arg)
{
	ring_dl_set_state(&q->ring, ((struct state_change *)arg)->state);
}

/* The victims written at the last look or this one: a victim word found
 * in a deadlock is pending (its waiter was woken to claim it) if it is
 * one of these; any other was not claimed in time, or names a wait that
 * ended, or is not ours, and is taken back. */
struct victim {
	uint64_t queue;
	uint32_t index, gen;
	int side;
	uint64_t seq;
	uint64_t look;
	int done;
};
static struct victim *victims;
static size_t nvictims, capvictims;

static void write_victim(struct queue *q, void *arg)
{
	struct victim *v = arg;
	v->done = ring_client_fail_wait(&q->ring, v->index, v->gen, v->side,
					v->seq, 0);
}

static void take_back(struct queue *q, void *arg)
{
	struct victim *v = arg;
	v->done = ring_client_unfail_wait(&q->ring, v->index, v->gen, v->side,
					  v->seq);
}

static int pending(const struct lq *q, const struct la *a, int d)
{
	for (size_t i = 0; i < nvictims; i++) {
		const struct victim *v = &victims[i];
		if (v->queue == q->id && v->index == a->index &&
		    v->gen == a->gen && v->side == d &&
		    v->seq == a->w.victim[d] && v->look + 1 >= look_no)
			return 1;
	}
	return 0;
}

/* The fail policy: unless a victim of this deadlock is still pending,
 * fail the most recent wait on a `fail` queue, in the cycle if there is
 * one there, else behind it (its wait would never end either).  Only
 * that wait (by its number) can claim it: not another thread on the
 * same handle. */
static void break_deadlock(const struct look *l, const uint32_t *procs,
			   size_t n)
{
	const struct la *best = NULL;
	int best_d = 0, best_behind = 2;

	for (size_t i = 0; i < n; i++) {
		const struct lp *p = &l->p[procs[i]];
		for (uint32_t k = p->first; k != KNOT_NONE; k = l->a[k].next) {
			const struct la *a = &l->a[k];
			const struct lq *q = &l->q[a->q];
			for (int d = 0; d < 2; d++) {
				if (a->w.threads[d] == 0)
					continue;
				if (a->w.victim[d] != 0) {
					if (pending(q, a, d))
						return;
					struct victim v = {
						.index = a->index, .gen = a->gen,
						.side = d, .seq = a->w.victim[d],
					};
					struct queue *queue =
						registry_find_id(q->id);
					if (queue == NULL ||
					    registry_access(queue, take_back,
							    &v) != SHMQ_OK ||
					    !v.done)
						return; /* claimed after all */
				}
				if (!q->fail)
					continue;
				if (p->behind < best_behind ||
				    (p->behind == best_behind &&
				     a->w.since[d] > best->w.since[best_d])) {
					best = a;
					best_d = d;
					best_behind = p->behind;
				}
			}
		}
	}
	if (best == NULL || GROW(victims, capvictims, nvictims + 1) < 0)
		return;
	const struct lq *q = &l->q[best->q];
	struct queue *queue = registry_find_id(q->id);
	struct victim v = { q->id, best->index, best->gen, best_d,
			    best->w.seq[best_d], look_no, 0 };
	if (queue == NULL || registry_access(queue, write_victim, &v) !=
				     SHMQ_OK || !v.done)
		return;
	victims[nvictims++] = v;
	const struct lp *p = &l->p[best->proc];
	log_warn("deadlock: breaking it: the %s of pid %u (%s) on '%s' fails "
		 "(on-deadlock fail)", best_d == KNOT_PUT ? "put" : "get",
		 p->pid, p->comm, q->name);
}

/* Forgets the victims written before the last look. */
static void victims_expire(void)
{
	size_t keep = 0;

	for (size_t i = 0; i < nvictims; i++)
		if (victims[i].look + 1 >= look_no)
			victims[keep++] = victims[i];
	nvictims = keep;
}

/* Logs the deadlocks not logged before, breaks those it should, keeps
 * the rows that DEADLOCKS answers with, and marks the queues. */
static void publish(struct look *l, int ndl)
{
	struct shmq_wire_dl_wait *out = NULL, *one = NULL;
	uint64_t *ids = NULL, *one_ids = NULL;
	size_t *start = NULL, n = 0;
	uint32_t *order = ndl > 0 ? order_procs(l, ndl, &start) : NULL;
	uint32_t more = 0;

	if (ndl > 0 && order != NULL) {
		out = malloc(SHMQ_WIRE_DL_MAX * sizeof(*out));
		ids = malloc(SHMQ_WIRE_DL_MAX * sizeof(*ids));
		one = malloc(SHMQ_WIRE_DL_MAX * sizeof(*one));
		one_ids = malloc(SHMQ_WIRE_DL_MAX * sizeof(*one_ids));
	}
	for (int dl = 0; out && ids && one && one_ids && dl < ndl; dl++) {
		const uint32_t *procs = order + start[2 * dl];
		size_t nproc = start[2 * dl + 2] - start[2 * dl];
		size_t ncycle = start[2 * dl + 1] - start[2 * dl];
		size_t m = 0;
		uint32_t left = 0;
		if (!logged_before(deadlock_key(l, procs, ncycle)))
			log_deadlock(l, procs, nproc);
		break_deadlock(l, procs, nproc);
		/* Only what one reply carries is kept. */
		add_rows(l, procs, nproc, one, one_ids, &m, SHMQ_WIRE_DL_MAX,
			 &left);
		for (size_t i = 0; i < m; i++) {
			if (n == SHMQ_WIRE_DL_MAX) {
				more++;
				continue;
			}
			ids[n] = one_ids[i];
			out[n++] = one[i];
		}
		more += left;
		for (size_t i = 0; i < nproc; i++) {
			const struct lp *p = &l->p[procs[i]];
			for (uint32_t k = p->first; k != KNOT_NONE;
			     k = l->a[k].next) {
				const struct la *a = &l->a[k];
				if (a->w.threads[0] || a->w.threads[1])
					l->q[a->q].new_state = SHMQ_DL_WAITERS;
			}
		}
	}
	free(one);
	free(one_ids);
	free(order);
	free(start);
	free(rows);
	free(row_queue);
	rows = out;
	row_queue = ids;
	nrows = rows && row_queue ? n : 0;
	rows_more = more;
	logged_expire();

	for (size_t j = 0; j < l->nq; j++) {
		struct lq *q = &l->q[j];
		if (q->new_state == q->state)
			continue;
		struct queue *queue = registry_find_id(q->id);
		struct state_change sc = { q->new_state };
		if (queue)
			registry_access(queue, write_state, &sc);
	}
}

static void look_free(struct look *l)
{
	free(l->q);
	free(l->a);
	free(l->p);
}

/* Is some wait of the look younger than the timeout?  It may become part
 * of a deadlock just by waiting on: the next look must not be late. */
static int young_waits(const struct look *l)
{
	for (size_t i = 0; i < l->na; i++)
		for (int d = 0; d < 2; d++)
			if (l->a[i].w.threads[d] &&
			    l->now - l->a[i].w.since[d] < timeout_ns)
				return 1;
	return 0;
}

/* One look; returns whether it was quiet: no deadlock, and no wait that
 * could still become part of one by aging (every wait is old, and each
 * is freed by someone running, or stopped, or waits for nobody). */
static int look_once(void)
{
	struct look l = { .now = (int64_t)mono_ns() };
	int ndl = -1;

	look_no++;
	victims_expire();
	l.horizon = l.now + interval_ns + period_ns / 2;
	read_watched(&l);
	if (gather_procs(&l) == 0) {
		for (size_t i = 0; i < l.np; i++)
			l.p[i].stuck = looks_stuck(&l, &l.p[i],
						   &l.p[i].blocked);
		ndl = knot_find(&l, proc_agrees, NULL);
	}
	publish(&l, ndl > 0 ? ndl : 0);
	int quiet = ndl == 0 && !young_waits(&l);
	look_free(&l);
	/* A segment that broke under us is removed between events. */
	registry_reap();
	return quiet;
}

static void arm(int64_t ns)
{
	struct timeval tv = { .tv_sec = ns / 1000000000,
			      .tv_usec = (ns % 1000000000) / 1000 };

	ticking = evtimer_add(tick_ev, &tv) == 0;
	next_tick_ns = (int64_t)mono_ns() + ns;
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	int quiet = look_once();
	if (nwatch == 0) {
		ticking = 0;
		interval_ns = period_ns;
		return;
	}
	if (!quiet)
		interval_ns = period_ns;
	else if (interval_ns < BACKOFF_MAX * period_ns)
		interval_ns *= 2;
	arm(interval_ns);
}

/* --- the interface ----------------------------------------------------------- */

void deadlock_init(struct event_base *base, int64_t timeout)
{
	timeout_ns = timeout;
	period_ns = timeout / 2;
	if (timeout_ns > 0 && period_ns < 1000000)
		period_ns = 1000000;
	interval_ns = period_ns;
	if (timeout_ns > 0)
		tick_ev = evtimer_new(base, on_tick, NULL);
}

void deadlock_shutdown(void)
{
	if (tick_ev)
		event_free(tick_ev);
	tick_ev = NULL;
	free(watches);
	watches = NULL;
	nwatch = capwatch = 0;
	free(rows);
	free(row_queue);
	rows = NULL;
	row_queue = NULL;
	nrows = 0;
	free(known);
	known = NULL;
	capknown = 0;
	free(logged);
	logged = NULL;
	caplogged = nlogged = 0;
	free(victims);
	victims = NULL;
	nvictims = capvictims = 0;
	ticking = 0;
}

uint32_t deadlock_timeout_ms(void)
{
	return (uint32_t)(timeout_ns / 1000000);
}

void deadlock_watch(struct queue *q)
{
	if (tick_ev == NULL || q->broken)
		return;
	size_t i;
	for (i = 0; i < nwatch; i++)
		if (watches[i].id == q->id)
			break;
	if (i == nwatch) {
		if (GROW(watches, capwatch, nwatch + 1) < 0)
			return;
		watches[nwatch++] = (struct watch){ .id = q->id };
		log_debug("deadlock detection: watching '%s', where a call "
			  "has been blocked", q->name);
	}
	/* A wait we have not seen: looks every period again, and if we
	 * were not going to look within one, the first soon: it is the one
	 * the next compares to.  Not at once: the wait that told us is then
	 * half a timeout old, and one period later it must be a whole one,
	 * which it would be only just, or just not. */
	interval_ns = period_ns;
	if (!ticking || next_tick_ns - (int64_t)mono_ns() > period_ns)
		arm(period_ns / 8);
}

struct take {
	uint32_t report_ms;
	int blocked;
};

static void take_queue(struct queue *q, void *arg)
{
	struct take *t = arg;
	struct ring *r = &q->ring;
	struct ring_waiter w;

	ring_dl_set_period(r, t->report_ms);
	ring_dl_set_state(r, 0);
	ring_dl_set_watch(r, 0, 0);
	for (uint32_t i = 0; i < r->nclients && t->report_ms; i++) {
		ring_client_look(r, i, &w);
		if (w.pid && (w.threads[0] || w.threads[1]))
			t->blocked = 1;
	}
}

void deadlock_take(struct queue *q)
{
	struct take t = { 0, 0 };

	if (tick_ev != NULL) {
		int64_t ms = period_ns / 1000000;
		t.report_ms = ms < 1 ? 1 : ms > UINT32_MAX ? UINT32_MAX
							   : (uint32_t)ms;
	}
	if (registry_access(q, take_queue, &t) == SHMQ_OK && t.blocked)
		deadlock_watch(q);
}

void deadlock_gone(pid_t pid)
{
	int gone[SHMQ_WIRE_DL_MAX];
	size_t keep = 0;
	int any = 0;

	memset(gone, 0, sizeof(gone));
	for (size_t i = 0; i < nrows; i++)
		if (rows[i].pid == (uint32_t)pid &&
		    rows[i].deadlock < SHMQ_WIRE_DL_MAX)
			any = gone[rows[i].deadlock] = 1;
	if (!any)
		return;
	/* Renumber what is left: 0, 1, ... without gaps. */
	int num[SHMQ_WIRE_DL_MAX], next = 0;
	for (size_t d = 0; d < SHMQ_WIRE_DL_MAX; d++)
		num[d] = -1;
	for (size_t i = 0; i < nrows; i++) {
		uint32_t d = rows[i].deadlock;
		if (d >= SHMQ_WIRE_DL_MAX || gone[d])
			continue;
		if (num[d] < 0)
			num[d] = next++;
		rows[keep] = rows[i];
		row_queue[keep] = row_queue[i];
		rows[keep++].deadlock = (uint32_t)num[d];
	}
	nrows = keep;
}

size_t deadlock_rows(const struct shmq_wire_dl_wait **out,
		     const uint64_t **queues, uint32_t *more)
{
	*out = rows;
	*queues = row_queue;
	*more = rows_more;
	return nrows;
}
