/*
 * check_knot.c - shmqd's deadlock analysis (daemon/knot.c) on looks built
 * by hand.
 *
 * Owns two promises of knot.h: the answer (who is deadlocked, who is
 * blocked behind whom, who could free each wait, and that anything a
 * process outside the set could end is never a deadlock), and the cost:
 * linear in the size of the look, whatever its shape.  A look is what
 * shmqd builds from the wait records of the queues it watches; here it is
 * built directly, so that shapes too large for real processes (a chain of
 * 200 000, a queue that 50 000 wait on) can be timed.  The same code runs
 * in shmqd, where check_deadlock drives it with real processes.  Every
 * test is bounded by Check's timeout, and the costs are CPU time of this
 * process, measured, never assumed.
 */
#define _GNU_SOURCE
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "knot.h"
#include "lib/runner.h"

/* A look under construction: processes are numbered as added, and their
 * entries chained as knot.h wants. */
struct built {
	struct look l;
	uint32_t *last;             /* per process: its last entry */
	int *refuse;                /* per process: agrees() says no */
	size_t capq, capa, capp;
};

static void b_init(struct built *b, size_t nq, size_t na, size_t np)
{
	memset(b, 0, sizeof(*b));
	b->l.q = calloc(nq ? nq : 1, sizeof(*b->l.q));
	b->l.a = calloc(na ? na : 1, sizeof(*b->l.a));
	b->l.p = calloc(np ? np : 1, sizeof(*b->l.p));
	b->last = calloc(np ? np : 1, sizeof(*b->last));
	b->refuse = calloc(np ? np : 1, sizeof(*b->refuse));
	ck_assert(b->l.q && b->l.a && b->l.p && b->last && b->refuse);
	b->capq = nq;
	b->capa = na;
	b->capp = np;
}

static void b_free(struct built *b)
{
	free(b->l.q);
	free(b->l.a);
	free(b->l.p);
	free(b->last);
	free(b->refuse);
}

/* Adds a queue (its entries must be added next, all together). */
static uint32_t b_queue(struct built *b)
{
	ck_assert_uint_lt(b->l.nq, b->capq);
	struct lq *q = &b->l.q[b->l.nq];
	q->id = b->l.nq + 1;
	snprintf(q->name, sizeof(q->name), "q%zu", b->l.nq);
	q->stable = 1;
	q->could_block[0] = q->could_block[1] = 1;
	q->first = (uint32_t)b->l.na;
	return (uint32_t)b->l.nq++;
}

static uint32_t b_proc(struct built *b, int candidate)
{
	ck_assert_uint_lt(b->l.np, b->capp);
	struct lp *p = &b->l.p[b->l.np];
	p->pid = (uint32_t)b->l.np + 100;
	p->first = KNOT_NONE;
	p->stuck = candidate;
	b->last[b->l.np] = KNOT_NONE;
	return (uint32_t)b->l.np++;
}

/* An entry of process p on queue q (the last one added), with `role`,
 * blocked in put (side 0) or get (side 1), or neither (side -1). */
static void b_entry(struct built *b, uint32_t q, uint32_t p, uint32_t role,
		    int side)
{
	ck_assert_uint_lt(b->l.na, b->capa);
	ck_assert_uint_eq(q, b->l.nq - 1);
	uint32_t i = (uint32_t)b->l.na++;
	struct la *a = &b->l.a[i];
	a->q = q;
	a->proc = p;
	a->next = KNOT_NONE;
	a->w.pid = b->l.p[p].pid;
	a->w.role = role;
	if (side >= 0)
		a->w.threads[side] = 1;
	if (b->last[p] == KNOT_NONE)
		b->l.p[p].first = i;
	else
		b->l.a[b->last[p]].next = i;
	b->last[p] = i;
	b->l.q[q].n++;
}

static int agrees(struct lp *p, void *ctx)
{
	struct built *b = ctx;

	return !b->refuse[p - b->l.p];
}

static double cpu_seconds(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int find(struct built *b)
{
	return knot_find(&b->l, agrees, b);
}

#define P SHMQ_ROLE_PRODUCER
#define C SHMQ_ROLE_CONSUMER

/* ======================================================================= */
/* Answers                                                                 */

/* One process, one queue it produces and consumes, blocked in put: a
 * deadlock of one, freed only by itself. */
START_TEST(test_self)
{
	struct built b;

	b_init(&b, 1, 1, 1);
	uint32_t p = b_proc(&b, 1);
	uint32_t q = b_queue(&b);
	b_entry(&b, q, p, P | C, 0);
	ck_assert_int_eq(find(&b), 1);
	ck_assert_int_eq(b.l.p[p].deadlock, 0);
	ck_assert_int_eq(b.l.p[p].behind, 0);
	ck_assert_uint_eq(b.l.q[q].nfreers[0], 1);
	ck_assert_uint_eq(b.l.q[q].freers[0][0], p);
	b_free(&b);
}
END_TEST

/* x and y each wait in put for the other's queue, z waits in put on x's
 * input queue from outside (behind them); w is a deadlock of one of its
 * own.  Then the same with a fourth process, running, that has y's queue
 * open: it could close it, and nothing is left but w. */
static void two_cycles(struct built *b, int with_runner)
{
	b_init(b, 4, 9, 5);
	uint32_t x = b_proc(b, 1), y = b_proc(b, 1), z = b_proc(b, 1),
		 w = b_proc(b, 1), r = b_proc(b, 0);
	uint32_t qx = b_queue(b);       /* x consumes, y and z put */
	b_entry(b, qx, x, C, -1);
	b_entry(b, qx, y, P, 0);
	b_entry(b, qx, z, P, 0);
	uint32_t qy = b_queue(b);       /* y consumes, x puts */
	b_entry(b, qy, y, C, -1);
	b_entry(b, qy, x, P, 0);
	if (with_runner)
		b_entry(b, qy, r, 0, -1);
	uint32_t qw = b_queue(b);
	b_entry(b, qw, w, P | C, 1);
	(void)qw;
}

START_TEST(test_cycle_and_behind)
{
	struct built b;

	two_cycles(&b, 0);
	ck_assert_int_eq(find(&b), 2);
	ck_assert_int_eq(b.l.p[0].deadlock, 0);   /* x */
	ck_assert_int_eq(b.l.p[1].deadlock, 0);   /* y */
	ck_assert_int_eq(b.l.p[2].deadlock, 0);   /* z, behind */
	ck_assert_int_eq(b.l.p[0].behind, 0);
	ck_assert_int_eq(b.l.p[1].behind, 0);
	ck_assert_int_eq(b.l.p[2].behind, 1);
	ck_assert_int_eq(b.l.p[3].deadlock, 1);   /* w, a get of its own */
	ck_assert_int_eq(b.l.p[4].stuck, 0);
	/* The put on qx could be freed by x alone. */
	ck_assert_uint_eq(b.l.q[0].nfreers[0], 1);
	ck_assert_uint_eq(b.l.q[0].freers[0][0], 0);
	b_free(&b);

	two_cycles(&b, 1);
	ck_assert_int_eq(find(&b), 1);
	for (int i = 0; i < 3; i++)
		ck_assert_int_eq(b.l.p[i].stuck, 0);
	ck_assert_int_eq(b.l.p[3].deadlock, 0);
	b_free(&b);
}
END_TEST

/* A put on a queue nobody consumes, by a process whose only consumer
 * elsewhere is itself blocked: a newcomer may consume; no deadlock. */
START_TEST(test_nobody_on_the_other_side)
{
	struct built b;

	b_init(&b, 2, 3, 2);
	uint32_t p = b_proc(&b, 1), c = b_proc(&b, 1);
	uint32_t full = b_queue(&b);
	b_entry(&b, full, p, P, 0);
	b_entry(&b, full, c, P, -1);    /* a producer, not a consumer */
	uint32_t empty = b_queue(&b);
	b_entry(&b, empty, c, C, 1);
	ck_assert_int_eq(find(&b), 0);
	ck_assert_int_eq(b.l.p[p].stuck, 0);
	ck_assert_int_eq(b.l.p[c].stuck, 0);
	b_free(&b);
}
END_TEST

/* A process that /proc says may still run (stopped, say) takes the
 * cycle through it with it; the others are not deadlocked either. */
START_TEST(test_refused)
{
	struct built b;

	two_cycles(&b, 0);
	b.refuse[1] = 1;                /* y */
	ck_assert_int_eq(find(&b), 1);
	ck_assert_int_eq(b.l.p[0].stuck, 0);
	ck_assert_int_eq(b.l.p[2].stuck, 0);
	ck_assert_int_eq(b.l.p[3].deadlock, 0);
	b_free(&b);
}
END_TEST

/* On an acked queue a lease holder can end a get: with one (itself
 * blocked), a getter waits for it; without, for nobody attached. */
START_TEST(test_lease_holder)
{
	struct built b;

	for (int holds = 0; holds < 2; holds++) {
		b_init(&b, 2, 4, 2);
		uint32_t g = b_proc(&b, 1), h = b_proc(&b, 1);
		uint32_t aq = b_queue(&b);
		b_entry(&b, aq, g, C, 1);
		b_entry(&b, aq, h, C, -1);
		b.l.a[1].holder = holds;
		uint32_t ar = b_queue(&b);
		b_entry(&b, ar, g, C, -1);
		b_entry(&b, ar, h, P, 0);
		ck_assert_int_eq(find(&b), holds);
		if (holds) {
			ck_assert_uint_eq(b.l.q[aq].nfreers[1], 1);
			ck_assert_uint_eq(b.l.q[aq].freers[1][0], h);
		}
		b_free(&b);
	}
}
END_TEST

/* ======================================================================= */
/* Costs                                                                   */

#define CHAIN 200000

/* P_j waits in get on Q_j, whose only producer is P_j+1; the last one's
 * producer runs (free end), or is P_0 (a cycle of all of them).  Taking
 * out one link per pass over everything would take CHAIN passes. */
static void chain(struct built *b, int closed)
{
	b_init(b, CHAIN, 2 * CHAIN + 1, CHAIN + 1);
	for (uint32_t j = 0; j < CHAIN; j++)
		b_proc(b, 1);
	uint32_t runner = b_proc(b, 0);
	for (uint32_t j = 0; j < CHAIN; j++) {
		uint32_t q = b_queue(b);
		b_entry(b, q, j, C, 1);
		if (j + 1 < CHAIN)
			b_entry(b, q, j + 1, P, -1);
		else
			b_entry(b, q, closed ? 0 : runner, P, -1);
	}
}

START_TEST(test_chain_linear)
{
	struct built b;

	chain(&b, 0);
	double t0 = cpu_seconds();
	ck_assert_int_eq(find(&b), 0);
	double t = cpu_seconds() - t0;
	fprintf(stderr, "a chain of %d freed in %.3f s\n", CHAIN, t);
	ck_assert_msg(t < 2.0, "%.3f s", t);
	for (uint32_t j = 0; j < CHAIN; j++)
		ck_assert_int_eq(b.l.p[j].stuck, 0);
	b_free(&b);

	chain(&b, 1);
	t0 = cpu_seconds();
	ck_assert_int_eq(find(&b), 1);
	t = cpu_seconds() - t0;
	fprintf(stderr, "a cycle of %d found in %.3f s\n", CHAIN, t);
	ck_assert_msg(t < 2.0, "%.3f s", t);
	for (uint32_t j = 0; j < CHAIN; j++)
		ck_assert_int_eq(b.l.p[j].deadlock, 0);
	b_free(&b);
}
END_TEST

/* 50 000 processes, each a producer and a consumer of one full queue,
 * all blocked in put on it: each could be freed by any of the others,
 * 2.5 billion pairs; the graph through the queue's node has 100 000
 * edges.  And a long tail behind it: 100 000 processes each waiting for
 * the next one, the last for the star. */
#define STAR 50000
#define TAIL 100000

START_TEST(test_star_linear)
{
	struct built b;

	b_init(&b, TAIL + 1, STAR + 2 * TAIL, STAR + TAIL);
	for (uint32_t j = 0; j < STAR + TAIL; j++)
		b_proc(&b, 1);
	uint32_t star = b_queue(&b);
	for (uint32_t j = 0; j < STAR; j++)
		b_entry(&b, star, j, P | C, 0);
	for (uint32_t t = 0; t < TAIL; t++) {
		/* Tail process STAR + t waits in get on its queue, whose
		 * only producer is the next tail process; the last one's
		 * is star process 0, blocked in the star. */
		uint32_t q = b_queue(&b);
		uint32_t me = STAR + t;
		b_entry(&b, q, me, C, 1);
		b_entry(&b, q, t + 1 < TAIL ? me + 1 : 0, P, -1);
	}
	double t0 = cpu_seconds();
	ck_assert_int_eq(find(&b), 1);
	double t = cpu_seconds() - t0;
	fprintf(stderr, "a star of %d and a tail of %d in %.3f s\n", STAR,
		TAIL, t);
	ck_assert_msg(t < 2.0, "%.3f s", t);
	ck_assert_int_eq(b.l.p[0].behind, 0);
	ck_assert_int_eq(b.l.p[STAR].behind, 1);
	ck_assert_int_eq(b.l.p[STAR + TAIL - 1].deadlock, 0);
	ck_assert_uint_eq(b.l.q[star].nfreers[0], STAR);
	b_free(&b);
}
END_TEST

static Suite *knot_suite(void)
{
	Suite *s = suite_create("knot");
	TCase *tc;

	tc = tcase_create("answers");
	tcase_add_test(tc, test_self);
	tcase_add_test(tc, test_cycle_and_behind);
	tcase_add_test(tc, test_nobody_on_the_other_side);
	tcase_add_test(tc, test_refused);
	tcase_add_test(tc, test_lease_holder);
	suite_add_tcase(s, tc);

	tc = tcase_create("costs");
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_chain_linear);
	tcase_add_test(tc, test_star_linear);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return run_suite(knot_suite(), "knot");
}
