/*
 * knot.h - one look at the blocked calls: what deadlock.c read of the
 * watched queues, and which of the blocked processes wait only for each
 * other (knot.c).
 *
 * A look is three tables: the watched queues (lq), the attachments shmqd
 * handed out on them with the wait records read there (la, each queue's
 * contiguous), and the processes those attachments belong to (lp, by pid,
 * each with its attachments chained).  deadlock.c fills them and says,
 * for each process, whether its own records make it a candidate (every
 * thread blocked, long enough, on queues where nothing moved); knot.c
 * does the rest in time linear in the size of the tables.
 */
#ifndef SHMQD_KNOT_H
#define SHMQD_KNOT_H

#include <stddef.h>
#include <stdint.h>

#include "ring.h"
#include "shmq_layout.h"

#define KNOT_NONE    UINT32_MAX
#define KNOT_FREERS  8u         /* freers named per wait */

/* Side of a wait: [0] put, [1] get. */
#define KNOT_PUT 0
#define KNOT_GET 1

struct lq {                     /* a watched queue as read at this look */
	uint64_t id;
	char name[SHMQ_NAME_MAX + 1];
	uint32_t capacity;
	uint32_t messages;          /* queued, leased and returned */
	uint64_t bytes, max_bytes;  /* queued bytes (if known), byte budget */
	int fail;                   /* its policy is fail */
	int stable;                 /* nothing moved since the last look */
	int could_block[2];         /* a put, a get could wait here for good */
	uint32_t first, n;          /* its entries: la[first .. first+n) */
	uint32_t state;             /* SHMQ_DL_* as found */
	uint32_t new_state;
	/* knot.c */
	int freed;                  /* a process outside the set has it open */
	uint32_t enders[2];         /* entries that could end a put, a get */
	uint32_t node[2];           /* graph node of its waits, or KNOT_NONE */
	uint32_t nfreers[2];        /* distinct processes that could end one */
	uint32_t freers[2][KNOT_FREERS];   /* the first of them (lp index) */
};

struct la {                     /* one attachment shmqd handed out */
	uint32_t q;                 /* in lq[] */
	uint32_t proc;              /* in lp[] */
	uint32_t index, gen;        /* in the queue's table */
	uint32_t next;              /* the process's next entry, or KNOT_NONE */
	int holder;                 /* holds a lease here: may end a get */
	struct ring_waiter w;       /* records zeroed unless believed */
};

struct lp {                     /* a process attached to a watched queue */
	uint32_t pid;
	uint64_t start_time;
	uint32_t first;             /* its first entry, chained by la.next */
	uint32_t blocked;           /* threads counted in its wait records */
	int stuck;                  /* in the set (the caller sets the
				       candidates; knot_find takes out) */
	int deadlock;               /* which deadlock it is in, or -1 */
	int behind;                 /* blocked behind it, not in its cycle */
	char comm[16];
};

struct look {
	int64_t now;
	int64_t horizon;            /* the end of the next look (a call that
				       times out before it is no deadlock) */
	struct lq *q;
	size_t nq, capq;
	struct la *a;
	size_t na, capa;
	struct lp *p;
	size_t np, capp;
};

/* Could entry `a` end a wait on side d of its queue: a consumer a put, a
 * producer (or, on an acked queue, a lease holder) a get? */
static inline int knot_ender(const struct la *a, int d)
{
	if (d == KNOT_PUT)
		return (a->w.role & SHMQ_ROLE_CONSUMER) != 0;
	return (a->w.role & SHMQ_ROLE_PRODUCER) != 0 || a->holder;
}

/* Takes out of the set (lp.stuck) every candidate that a process outside
 * it could free (by ending its wait, or by closing the queue: anyone with
 * it open), or whose wait nobody attached on the other side could end (a
 * newcomer might); asks agrees() about each survivor once (0: it may still
 * run: taken out too), and takes out again.  Those left wait only for each
 * other.  Then numbers the deadlocks: in the graph "waits for a process
 * that could end its wait", every strongly connected part that no edge
 * leaves is one (lp.deadlock, from 0 in the order of the processes); every
 * other process left reaches one and is blocked behind it (lp.behind).
 * Fills lq.nfreers and lq.freers for the waits of those left.  Returns the
 * number of deadlocks, or -1 if out of memory (then nothing is found). */
int knot_find(struct look *l, int (*agrees)(struct lp *p, void *ctx),
	      void *ctx);

#endif /* SHMQD_KNOT_H */
