/*
 * deadlock.c - deadlocks of blocked processes: finding, naming, breaking.
 *
 * Owns the watch list (queues where a call said it has been blocked for a
 * while), the timer that looks at them, the analysis (who is stuck, who
 * could free whom, the cycles and who is blocked behind them), the log
 * line of each deadlock, the victims of the `fail` policy, and what
 * DEADLOCKS answers.  It must never report a deadlock that is not one:
 * every doubt (a process it cannot read, a wait too young, a queue that
 * moved, a record that does not add up, a wait that could not be
 * blocked) counts as "this process may still run".  It never takes a
 * queue's lock, never waits, reads segments only under registry_access(),
 * and does nothing while no call is blocked.
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
#include "log.h"
#include "procs.h"

#define RECENT_KEYS 64          /* deadlocks remembered as logged */
#define LINE_MAX_LEN 4000       /* one log line */

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
static uint64_t recent[RECENT_KEYS];   /* keys of logged deadlocks */
static size_t recent_next;

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

/* --- one look ------------------------------------------------------------ */

struct lq {                     /* a watched queue as read at this look */
	uint64_t id;
	char name[SHMQ_NAME_MAX + 1];
	uint32_t capacity;
	uint32_t messages;          /* queued, leased and returned */
	int fail;                   /* its policy is fail */
	int stable;                 /* nothing moved since the last look */
	int put_could_block, get_could_block;
	uint32_t first, n;          /* its entries: la[first .. first+n) */
	uint32_t state;             /* SHMQ_DL_* as found */
	uint32_t new_state;
};

struct la {                     /* one attachment entry of a watched queue */
	uint32_t q;                 /* in lq[] */
	uint32_t proc;              /* in lp[] */
	uint32_t index;             /* in the queue's table */
	uint32_t next;              /* the process's next entry, or NONE */
	struct ring_waiter w;
};

struct lp {                     /* a process attached to a watched queue */
	uint32_t pid;
	uint64_t start_time;
	uint32_t first;             /* its first entry, chained by la.next */
	uint32_t blocked;           /* threads counted in its wait records */
	int stuck;                  /* still in the set */
	int checked;                /* /proc agreed */
	int deadlock;               /* which deadlock it is in, or -1 */
	int behind;                 /* blocked behind it, not in its cycle */
	char comm[16];
	/* Tarjan's strongly connected components. */
	int idx, low, onstack, scc;
};

#define NONE UINT32_MAX

struct look {
	int64_t now;
	struct lq *q;
	size_t nq, capq;
	struct la *a;
	size_t na, capa;
	struct lp *p;
	size_t np, capp;
	uint32_t *edges;            /* pairs (from, to) of lp indexes */
	size_t nedges, capedges;
};

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

/* Under registry_access(): copies what the analysis needs.  Room for
 * every entry was made before, and the queue counts only once complete,
 * so an access abandoned half-way leaves nothing behind.  Only entries
 * shmqd handed out are read, and a record counts only while the entry
 * still names the process and generation it was handed to: a record is
 * the word of whoever wrote it, and any process with the queue open may
 * write any entry. */
static void read_queue(struct queue *q, void *arg)
{
	struct read_ctx *c = arg;
	struct look *l = c->l;
	struct ring *r = &q->ring;
	struct lq *lq = &l->q[l->nq];
	size_t na = l->na;

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
		if (a->w.threads[0] || a->w.threads[1])
			c->blocked = 1;
		na++;
	}
	lq->state = ring_dl_state(r);
	/* While we look anyway, waiters need not tell us. */
	ring_dl_set_watch(r, c->blocked ? l->now + 2 * period_ns : 0);
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
	/* `leased` counts every lease slot in use, returned ones too. */
	queued += p->leased;
	lq->messages = queued > UINT32_MAX ? UINT32_MAX : (uint32_t)queued;
	lq->fail = (q->config_flags & SHMQ_CFG_DEADLOCK_FAIL) != 0;
	/* Could a put be blocked here for good?  Not on a closed queue
	 * (it fails), nor on one with room, unless a byte budget is what
	 * keeps it out (the length it waits to put is its own). */
	lq->put_could_block = !closed && (queued >= r->capacity ||
					  r->max_bytes != 0);
	/* A get: only on an empty queue with nothing to redeliver, still
	 * open (or acked, closed, with leases out that may come back), and
	 * with no lease that will time out by itself. */
	lq->get_could_block =
		!(p->tail_word & SHMQ_TAIL_NOW) && tail == p->head &&
		p->returned == 0 && (!closed || (r->leases && p->leased > 0)) &&
		!(p->leased > 0 && p->next_deadline != SHMQ_NO_DEADLINE);
}

/* Reads every watched queue; drops those where nobody is blocked. */
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

/* Groups the entries by process (pid and start time). */
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
				.first = NONE, .deadlock = -1, .idx = -1,
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

/* Is process p, by its own records, blocked long enough, in waits that
 * could be blocked, on queues where nothing moved? */
static int looks_stuck(const struct look *l, const struct lp *p,
		       uint32_t *blocked)
{
	uint64_t sum = 0;

	for (uint32_t i = p->first; i != NONE; i = l->a[i].next) {
		const struct la *a = &l->a[i];
		const struct lq *q = &l->q[a->q];
		for (int d = 0; d < 2; d++) {
			if (a->w.threads[d] == 0)
				continue;
			int could = d == 0 ? q->put_could_block
					   : q->get_could_block;
			if (!q->stable || !could || a->w.since[d] <= 0 ||
			    l->now - a->w.since[d] < timeout_ns)
				return 0;
			sum += a->w.threads[d];
		}
	}
	if (sum == 0 || sum > UINT32_MAX)
		return 0;
	*blocked = (uint32_t)sum;
	return 1;
}

/* Who would normally end a wait on side d: a consumer (get) for a put,
 * a producer (put) for a get. */
static uint32_t ender_role(int d)
{
	return d == 0 ? SHMQ_ROLE_CONSUMER : SHMQ_ROLE_PRODUCER;
}

/* Could a process outside the set end a wait of p, or could nobody
 * attached on the other side end one (a newcomer might)? */
static int freeable(const struct look *l, const struct lp *p)
{
	for (uint32_t i = p->first; i != NONE; i = l->a[i].next) {
		const struct la *a = &l->a[i];
		const struct lq *q = &l->q[a->q];
		for (int d = 0; d < 2; d++) {
			if (a->w.threads[d] == 0)
				continue;
			int enders = 0;
			for (uint32_t j = q->first; j < q->first + q->n; j++) {
				const struct la *b = &l->a[j];
				if (!l->p[b->proc].stuck)
					return 1;   /* it could, if only close */
				enders += (b->w.role & ender_role(d)) != 0;
			}
			if (enders == 0)
				return 1;
		}
	}
	return 0;
}

/* Does /proc agree that p is stuck: the process we recorded, not stopped
 * or dying, with as many threads as its records count? */
static int proc_agrees(struct lp *p)
{
	struct proc_info pi;

	if (p->pid == 0 || p->pid > INT32_MAX ||
	    procs_info((pid_t)p->pid, &pi) < 0 ||
	    pi.start_time != p->start_time || pi.threads != p->blocked)
		return 0;
	if (strchr("TtZXxWP", pi.state) != NULL)
		return 0;
	memcpy(p->comm, pi.comm, sizeof(p->comm));
	return 1;
}

/* Takes out of the set every process that someone outside it could free,
 * until nothing changes; then asks /proc about those left, and again. */
static void reduce(struct look *l)
{
	for (;;) {
		int changed = 1;
		while (changed) {
			changed = 0;
			for (size_t i = 0; i < l->np; i++) {
				struct lp *p = &l->p[i];
				if (p->stuck && freeable(l, p)) {
					p->stuck = 0;
					changed = 1;
				}
			}
		}
		int refused = 0;
		for (size_t i = 0; i < l->np; i++) {
			struct lp *p = &l->p[i];
			if (!p->stuck || p->checked)
				continue;
			if (proc_agrees(p)) {
				p->checked = 1;
			} else {
				p->stuck = 0;
				refused = 1;
			}
		}
		if (!refused)
			return;
	}
}

/* Edges p -> f: f is a consumer (producer) of a queue where p waits in
 * put (get).  Within the set, every such f is in it too. */
static int build_edges(struct look *l)
{
	for (size_t i = 0; i < l->np; i++) {
		const struct lp *p = &l->p[i];
		if (!p->stuck)
			continue;
		for (uint32_t k = p->first; k != NONE; k = l->a[k].next) {
			const struct la *a = &l->a[k];
			const struct lq *q = &l->q[a->q];
			for (int d = 0; d < 2; d++) {
				if (a->w.threads[d] == 0)
					continue;
				for (uint32_t j = q->first; j < q->first + q->n;
				     j++) {
					const struct la *b = &l->a[j];
					if (!(b->w.role & ender_role(d)))
						continue;
					if (GROW(l->edges, l->capedges,
						 2 * (l->nedges + 1)) < 0)
						return -1;
					l->edges[2 * l->nedges] = (uint32_t)i;
					l->edges[2 * l->nedges + 1] = b->proc;
					l->nedges++;
				}
			}
		}
	}
	return 0;
}

/* Tarjan's algorithm over the stuck processes, without recursion: the
 * call stack holds (node, next edge to look at). */
static int find_sccs(struct look *l, int *nscc)
{
	size_t n = l->np;
	uint32_t *first = malloc((n + 1) * sizeof(*first));
	uint32_t *stack = malloc((n ? n : 1) * sizeof(*stack));
	uint32_t *cnode = malloc((n ? n : 1) * sizeof(*cnode));
	uint32_t *cedge = malloc((n ? n : 1) * sizeof(*cedge));
	size_t sp = 0, cp = 0;
	int counter = 0;

	*nscc = 0;
	if (!first || !stack || !cnode || !cedge) {
		free(first);
		free(stack);
		free(cnode);
		free(cedge);
		return -1;
	}
	/* Edges were added in order of their source: index them. */
	for (size_t i = 0, e = 0; i <= n; i++) {
		while (e < l->nedges && l->edges[2 * e] < i)
			e++;
		first[i] = (uint32_t)e;
	}
	for (size_t s = 0; s < n; s++) {
		if (!l->p[s].stuck || l->p[s].idx >= 0)
			continue;
		cnode[cp] = (uint32_t)s;
		cedge[cp++] = first[s];
		l->p[s].idx = l->p[s].low = counter++;
		l->p[s].onstack = 1;
		stack[sp++] = (uint32_t)s;
		while (cp > 0) {
			uint32_t v = cnode[cp - 1];
			uint32_t e = cedge[cp - 1];
			if (e < first[v + 1]) {
				cedge[cp - 1]++;
				uint32_t w = l->edges[2 * e + 1];
				struct lp *pw = &l->p[w];
				if (pw->idx < 0) {
					pw->idx = pw->low = counter++;
					pw->onstack = 1;
					stack[sp++] = w;
					cnode[cp] = w;
					cedge[cp++] = first[w];
				} else if (pw->onstack &&
					   pw->idx < l->p[v].low) {
					l->p[v].low = pw->idx;
				}
				continue;
			}
			cp--;
			if (cp > 0) {
				uint32_t u = cnode[cp - 1];
				if (l->p[v].low < l->p[u].low)
					l->p[u].low = l->p[v].low;
			}
			if (l->p[v].low == l->p[v].idx) {
				uint32_t w;
				do {
					w = stack[--sp];
					l->p[w].onstack = 0;
					l->p[w].scc = *nscc;
				} while (w != v);
				(*nscc)++;
			}
		}
	}
	free(first);
	free(stack);
	free(cnode);
	free(cedge);
	return 0;
}

/* Numbers the deadlocks: every component that no edge leaves is one (its
 * members wait only for each other); every other stuck process reaches
 * one and is blocked behind it.  Returns how many. */
static int number_deadlocks(struct look *l, int nscc)
{
	int *sink = calloc(nscc ? (size_t)nscc : 1, sizeof(*sink));
	int *num = malloc((nscc ? (size_t)nscc : 1) * sizeof(*num));
	int ndl = 0;

	if (sink == NULL || num == NULL) {
		free(sink);
		free(num);
		return 0;
	}
	for (int c = 0; c < nscc; c++)
		sink[c] = 1;
	for (size_t e = 0; e < l->nedges; e++) {
		int a = l->p[l->edges[2 * e]].scc, b = l->p[l->edges[2 * e + 1]].scc;
		if (a != b)
			sink[a] = 0;
	}
	/* In order of the processes, so that numbers do not depend on the
	 * order the components were found in. */
	for (int c = 0; c < nscc; c++)
		num[c] = -1;
	for (size_t i = 0; i < l->np; i++) {
		struct lp *p = &l->p[i];
		if (!p->stuck || !sink[p->scc])
			continue;
		if (num[p->scc] < 0)
			num[p->scc] = ndl++;
		p->deadlock = num[p->scc];
	}
	/* The others: the deadlock they reach first, through processes
	 * already placed.  Every stuck process reaches a sink. */
	int changed = 1;
	while (changed) {
		changed = 0;
		for (size_t e = 0; e < l->nedges; e++) {
			struct lp *a = &l->p[l->edges[2 * e]];
			const struct lp *b = &l->p[l->edges[2 * e + 1]];
			if (a->deadlock < 0 && b->deadlock >= 0) {
				a->deadlock = b->deadlock;
				a->behind = 1;
				changed = 1;
			}
		}
	}
	free(sink);
	free(num);
	return ndl;
}

/* --- what the user sees --------------------------------------------------- */

/* A deadlock's identity: its cycle's processes and the waits they are in.
 * The same deadlock seen again is not logged again; one formed anew
 * (after a victim's call returned) is. */
static uint64_t deadlock_key(const struct look *l, int dl)
{
	uint64_t h = UINT64_C(0xcbf29ce484222325);

	for (size_t i = 0; i < l->np; i++) {
		const struct lp *p = &l->p[i];
		if (p->deadlock != dl || p->behind)
			continue;
		uint64_t v[2] = { p->pid, p->start_time };
		for (uint32_t k = p->first; k != NONE; k = l->a[k].next)
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

static int seen_key(uint64_t key)
{
	for (size_t i = 0; i < RECENT_KEYS; i++)
		if (recent[i] == key)
			return 1;
	recent[recent_next] = key;
	recent_next = (recent_next + 1) % RECENT_KEYS;
	return 0;
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

static const char *comm_of(const struct look *l, uint32_t pid)
{
	for (size_t i = 0; i < l->np; i++)
		if (l->p[i].pid == pid && l->p[i].stuck)
			return l->p[i].comm;
	return "?";
}

/* The rows of deadlock `dl`, cycle first; appended to `out`. */
static void add_rows(const struct look *l, int dl, struct shmq_wire_dl_wait *out,
		     uint64_t *ids, size_t *n, size_t cap, uint32_t *more)
{
	for (int behind = 0; behind < 2; behind++)
		for (size_t i = 0; i < l->np; i++) {
			const struct lp *p = &l->p[i];
			if (p->deadlock != dl || p->behind != behind)
				continue;
			for (uint32_t k = p->first; k != NONE;
			     k = l->a[k].next) {
				const struct la *a = &l->a[k];
				const struct lq *q = &l->q[a->q];
				for (int d = 0; d < 2; d++) {
					if (a->w.threads[d] == 0)
						continue;
					if (*n == cap) {
						(*more)++;
						continue;
					}
					ids[*n] = q->id;
					struct shmq_wire_dl_wait *r = &out[(*n)++];
					memset(r, 0, sizeof(*r));
					strcpy(r->queue, q->name);
					memcpy(r->comm, p->comm, sizeof(r->comm));
					r->deadlock = (uint32_t)dl;
					r->pid = p->pid;
					r->flags = (d == 0 ? SHMQ_WIRE_DL_PUT : 0) |
						   (behind ? SHMQ_WIRE_DL_BEHIND : 0) |
						   (q->fail ? SHMQ_WIRE_DL_FAIL : 0) |
						   (a->w.victim[d] == a->w.since[d]
							    ? SHMQ_WIRE_DL_VICTIM : 0);
					r->threads = a->w.threads[d];
					r->messages = q->messages;
					r->capacity = q->capacity;
					r->blocked_ns = l->now - a->w.since[d];
					for (uint32_t j = q->first;
					     j < q->first + q->n; j++) {
						const struct la *b = &l->a[j];
						uint32_t pid = l->p[b->proc].pid;
						int dup = 0;
						if (!(b->w.role & ender_role(d)))
							continue;
						for (uint32_t m = 0; m < r->nfreers &&
						     m < SHMQ_WIRE_DL_FREERS; m++)
							dup |= r->freers[m] == pid;
						if (dup)
							continue;
						if (r->nfreers < SHMQ_WIRE_DL_FREERS)
							r->freers[r->nfreers] = pid;
						r->nfreers++;
					}
				}
			}
		}
}

/* One line for the log: every process of the deadlock and what it waits
 * for, those behind it last. */
static void log_deadlock(const struct look *l,
			 const struct shmq_wire_dl_wait *r, size_t n)
{
	struct line ln = { .len = 0 };
	uint32_t last_pid = 0;
	int behind = 0;

	add(&ln, "deadlock: ");
	for (size_t i = 0; i < n; i++) {
		int b = (r[i].flags & SHMQ_WIRE_DL_BEHIND) != 0;
		if (i > 0 && r[i].pid == last_pid && b == behind) {
			add(&ln, ", and");
		} else {
			if (b && !behind)
				add(&ln, "; blocked behind it: ");
			else if (i > 0)
				add(&ln, "; ");
			add(&ln, "pid %u (%s) blocked", r[i].pid, r[i].comm);
		}
		last_pid = r[i].pid;
		behind = b;
		if (r[i].flags & SHMQ_WIRE_DL_PUT)
			add(&ln, " in put on '%s' (full %u/%u", r[i].queue,
			    r[i].messages, r[i].capacity);
		else
			add(&ln, " in get on '%s' (empty", r[i].queue);
		if (r[i].threads > 1)
			add(&ln, ", %u threads", r[i].threads);
		add(&ln, "), freed only by ");
		if (r[i].nfreers == 1 && r[i].freers[0] == r[i].pid) {
			add(&ln, "itself");
			continue;
		}
		for (uint32_t k = 0; k < r[i].nfreers && k < SHMQ_WIRE_DL_FREERS;
		     k++)
			add(&ln, "%spid %u (%s)", k ? ", " : "", r[i].freers[k],
			    comm_of(l, r[i].freers[k]));
		if (r[i].nfreers > SHMQ_WIRE_DL_FREERS)
			add(&ln, " and %u more",
			    r[i].nfreers - SHMQ_WIRE_DL_FREERS);
	}
	log_warn("%s", ln.buf);
}

/* --- acting on it ----------------------------------------------------------- */

struct state_change {
	uint32_t state;
};

static void write_state(struct queue *q, void *arg)
{
	ring_dl_set_state(&q->ring, ((struct state_change *)arg)->state);
}

struct victim {
	uint32_t index, gen;
	int side;
	int64_t since;
	int done;
};

static void write_victim(struct queue *q, void *arg)
{
	struct victim *v = arg;
	v->done = ring_client_fail_wait(&q->ring, v->index, v->gen, v->side,
					v->since);
}

/* The fail policy: unless a victim of this deadlock is still pending,
 * fail the most recent wait on a `fail` queue, in the cycle if there is
 * one there, else behind it (its wait would never end either). */
static void break_deadlock(const struct look *l, int dl)
{
	const struct la *best = NULL;
	int best_d = 0, best_behind = 2;

	for (size_t i = 0; i < l->np; i++) {
		const struct lp *p = &l->p[i];
		if (p->deadlock != dl)
			continue;
		for (uint32_t k = p->first; k != NONE; k = l->a[k].next) {
			const struct la *a = &l->a[k];
			for (int d = 0; d < 2; d++) {
				if (a->w.threads[d] == 0)
					continue;
				if (a->w.victim[d] == a->w.since[d])
					return;         /* pending */
				if (!l->q[a->q].fail)
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
	if (best == NULL)
		return;
	const struct lq *q = &l->q[best->q];
	struct queue *queue = registry_find_id(q->id);
	struct victim v = { best->index, best->w.gen, best_d,
			    best->w.since[best_d], 0 };
	if (queue == NULL || registry_access(queue, write_victim, &v) !=
				     SHMQ_OK || !v.done)
		return;
	const struct lp *p = &l->p[best->proc];
	log_warn("deadlock: breaking it: the %s of pid %u (%s) on '%s' fails "
		 "(on-deadlock fail)", best_d == 0 ? "put" : "get", p->pid,
		 p->comm, q->name);
}

static void publish(struct look *l, int ndl)
{
	struct shmq_wire_dl_wait *out = NULL;
	uint64_t *ids = NULL;
	size_t n = 0, cap = 0, capids = 0;
	uint32_t more = 0;

	/* Every row of every deadlock; rows[] keeps at most the wire's
	 * worth. */
	for (int dl = 0; dl < ndl; dl++) {
		size_t start = n;
		uint32_t left = 0;
		if (GROW(out, cap, n + SHMQ_WIRE_DL_MAX) < 0 ||
		    GROW(ids, capids, n + SHMQ_WIRE_DL_MAX) < 0)
			break;
		add_rows(l, dl, out, ids, &n, start + SHMQ_WIRE_DL_MAX, &left);
		if (!seen_key(deadlock_key(l, dl)))
			log_deadlock(l, out + start, n - start);
		break_deadlock(l, dl);
		more += left;
	}
	/* The queues where some deadlocked process waits. */
	for (size_t i = 0; i < l->np; i++) {
		const struct lp *p = &l->p[i];
		for (uint32_t k = p->first; p->deadlock >= 0 && k != NONE;
		     k = l->a[k].next) {
			const struct la *a = &l->a[k];
			if (a->w.threads[0] || a->w.threads[1])
				l->q[a->q].new_state = SHMQ_DL_WAITERS;
		}
	}
	/* Only what one reply carries is kept. */
	if (n > SHMQ_WIRE_DL_MAX) {
		more += (uint32_t)(n - SHMQ_WIRE_DL_MAX);
		n = SHMQ_WIRE_DL_MAX;
	}
	free(rows);
	free(row_queue);
	rows = out;
	row_queue = ids;
	nrows = n;
	rows_more = more;

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
	free(l->edges);
}

static void look_once(void)
{
	struct look l = { .now = (int64_t)mono_ns() };
	int nscc = 0, ndl = 0;

	read_watched(&l);
	if (gather_procs(&l) == 0) {
		for (size_t i = 0; i < l.np; i++)
			l.p[i].stuck = looks_stuck(&l, &l.p[i],
						   &l.p[i].blocked);
		reduce(&l);
		if (build_edges(&l) == 0 && find_sccs(&l, &nscc) == 0)
			ndl = number_deadlocks(&l, nscc);
	}
	publish(&l, ndl);
	look_free(&l);
	/* A segment that broke under us is removed between events. */
	registry_reap();
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	look_once();
	if (nwatch == 0) {
		ticking = 0;
		return;
	}
	struct timeval tv = { .tv_sec = period_ns / 1000000000,
			      .tv_usec = (period_ns % 1000000000) / 1000 };
	evtimer_add(tick_ev, &tv);
}

/* --- the interface ----------------------------------------------------------- */

void deadlock_init(struct event_base *base, int64_t timeout)
{
	timeout_ns = timeout;
	period_ns = timeout / 2;
	if (timeout_ns > 0 && period_ns < 1000000)
		period_ns = 1000000;
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
	if (!ticking) {
		/* The first look soon: it is the one the next compares to.
		 * Not at once: the wait that told us is then half a timeout
		 * old, and one period later it must be a whole one, which
		 * it would be only just, or just not. */
		int64_t soon = period_ns / 8;
		struct timeval tv = { .tv_sec = soon / 1000000000,
				      .tv_usec = (soon % 1000000000) / 1000 };
		ticking = evtimer_add(tick_ev, &tv) == 0;
	}
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
	ring_dl_set_watch(r, 0);
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
