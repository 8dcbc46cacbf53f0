/*
 * check_acked_crash.c - acked queues (common/lease.c) when a process dies
 * at each step of a lease's life, and the races of acks with deadlines.
 *
 * Owns the crash rules L1-L4 of lease.c: a consumer parked at a
 * ring_test_hook point (filling a lease slot before its commit, after
 * it, inside an ack, inside a redelivery, before, inside and after the
 * put of a dead letter) or simply holding a lease is SIGKILLed, the test
 * plays shmqd (ring_client_remove bumps `departures`), and the next
 * consumer must find every message exactly once more than before: the
 * dead holder's back, its delivery count raised by exactly that one
 * delivery, ahead of every message never delivered; nothing else
 * duplicated; the counters right.  The one window where a message is
 * duplicated - killed after the dead-letter queue committed it, before
 * its slot was freed - is asserted as what it is.  Also: leases count
 * against the capacity, end of stream and join wait for them, and an ack
 * racing its lease's deadline either wins or loses, never both.
 *
 * Rules of every ring suite (tests/lib/ring_kid.h): processes hand off
 * through pipes and state they publish in the segment, never through
 * timing (only the passing of a lease deadline is waited for by the
 * clock); every test is bounded; no daemon takes part.
 */
#define _GNU_SOURCE
#include <check.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

#include "lib/chan.h"
#include "lib/checks.h"
#include "lib/clock.h"
#include "lib/ring_mp.h"
#include "lib/rnd.h"
#include "lib/runner.h"

#define ROLE_BOTH (SHMQ_ROLE_PRODUCER | SHMQ_ROLE_CONSUMER)

/* ================================================================== */
/* The queue under test, its dead-letter queue, and the test's handle  */

/* The dead-letter queue: a second segment in shared anonymous memory,
 * made before any fork, so that every child reaches it at the same
 * address and attaches its own view, as each client opens its own. */
static uint8_t *dlq_mem;
static uint64_t dlq_size;
static struct ring DL;          /* the test's view of it */

static int dl_put(void *ctx, const void *msg, size_t len)
{
	struct iovec v = { (void *)msg, len };

	return ring_put(ctx, &v, 1, NULL, SHMQ_NOWAIT);
}

/* An acked queue; with max_deliveries and a dead-letter queue of
 * `dl_capacity` if not 0.  The test process binds an attachment entry of
 * its own, as a client's handle does: leases belong to one. */
static void acked_create(uint32_t capacity, uint32_t timeout_ms,
			 uint32_t max_deliveries, uint32_t dl_capacity)
{
	struct ring_config c = seg_config(capacity, 64, 0, SHMQ_CFG_ACKED);
	uint32_t idx, gen;

	c.lease_timeout_ms = timeout_ms;
	c.max_deliveries = max_deliveries;
	c.dead_letter = dl_capacity ? "dlq" : NULL;
	seg_create(&c);
	ck_assert_int_eq(ring_client_add(&R, (uint32_t)getpid(), 0, ROLE_BOTH,
					 &idx, &gen), SHMQ_OK);
	ck_assert_int_eq(ring_client_bind(&R, idx, gen), SHMQ_OK);
	if (dl_capacity == 0)
		return;
	struct ring_config d = seg_config(dl_capacity, 64, 0, 0);
	ck_assert_int_eq(ring_plan(&d, &dlq_size), SHMQ_OK);
	dlq_mem = mmap(NULL, dlq_size, PROT_READ | PROT_WRITE,
		       MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	ck_assert_ptr_ne(dlq_mem, MAP_FAILED);
	ck_assert_int_eq(ring_format(dlq_mem, dlq_size, &d), SHMQ_OK);
	ck_assert_int_eq(ring_attach(&DL, dlq_mem, dlq_size), SHMQ_OK);
	R.dead_letter = dl_put;
	R.dead_letter_ctx = &DL;
}

static void acked_teardown(void)
{
	ring_teardown();
	if (dlq_mem)
		munmap(dlq_mem, dlq_size);
	dlq_mem = NULL;
}

/* ------------------------------------------------------------------ */
/* The test's own leases                                              */

struct leased {
	struct shmq_msg m;
	char data[64];
};

static int lease_one(struct ring *r, struct leased *l, int timeout)
{
	size_t got = 0;
	int rc = ring_lease(r, l->data, sizeof(l->data), &l->m, 1, &got,
			    timeout, 0);

	if ((rc == SHMQ_OK) != (got == 1))
		return BAD_COUNT;
	return rc;
}

/* The next lease must be `want`, delivered for the `deliveries`th time. */
#define expect_lease(l, want, deliveries) \
	expect_lease_at((l), (want), (deliveries), __LINE__)

static void expect_lease_at(struct leased *l, const char *want,
			    uint32_t deliveries, int line)
{
	int rc = lease_one(&R, l, WAIT_MS);

	ck_assert_msg(rc == SHMQ_OK, "line %d: lease, expecting \"%s\": %d",
		      line, want, rc);
	check_leased(&l->m, want, deliveries, line);
}

/* Leases `want` and acks it. */
static void take(const char *want, uint32_t deliveries)
{
	struct leased l;

	expect_lease(&l, want, deliveries);
	ck_assert_int_eq(ring_ack(&R, &l.m, 1, NULL), SHMQ_OK);
}

static void expect_nothing(void)
{
	struct leased l;

	ck_assert_int_eq(lease_one(&R, &l, SHMQ_NOWAIT), SHMQ_EAGAIN);
}

/* Everything settled, the counters agree with the slots, the segment
 * passes its full check. */
static void expect_settled(uint64_t acked)
{
	struct shmq_stat st = stat_now();

	ck_assert_uint_eq(st.leased, 0);
	ck_assert_uint_eq(st.returned, 0);
	ck_assert_uint_eq(st.messages, 0);
	ck_assert_uint_eq(st.acked, acked);
	ck_assert_uint_eq(R.hdr->leased, 0);
	ck_assert_uint_eq(R.hdr->lease_bytes, 0);
	ck_assert_int_eq(ring_check(&R), SHMQ_OK);
}

static void put_all(int n)
{
	char m[16];

	for (int i = 0; i < n; i++) {
		snprintf(m, sizeof(m), "m%d", i);
		put_ok(&R, m);
	}
}

/* ------------------------------------------------------------------ */
/* Children that lease                                                */

enum then { HOLD, ACK, NACK, NACK_DEAD, GO_ACK };

struct lop {
	struct op op;           /* park, park_nth, n (how many to lease) */
	enum then then;         /* what to do with them */
	int go;                 /* GO_ACK: read end of a pipe to wait on */
};

/* Leases op.n messages (parking where op.park says), reports them, then
 * does `then` with all of them and reports again, then waits to be
 * killed (or, GO_ACK, acks once the test writes a byte, and exits). */
static int kid_lease(struct kctx *c)
{
	struct lop *lo = c->arg;
	struct shmq_msg m[MAX_BATCH];
	struct kres res = { 0 };
	struct ring dl;
	char buf[MAX_BATCH * 64];
	size_t got = 0, n = lo->op.n ? lo->op.n : 1;
	char b;

	if (dlq_mem) {
		CHILD_RC(ring_attach(&dl, dlq_mem, dlq_size), SHMQ_OK);
		c->r.dead_letter = dl_put;
		c->r.dead_letter_ctx = &dl;
	}
	park_arm(c, &lo->op);
	res.rc = ring_lease(&c->r, buf, sizeof(buf), m, n, &got,
			    lo->op.timeout ? lo->op.timeout : SHMQ_FOREVER, 0);
	res.count = (uint32_t)got;
	if (got) {
		res.len = (uint32_t)m[0].len;
		memcpy(res.data, m[0].data, m[0].len);
	}
	CHILD_CHECK(write(c->evt, &res, sizeof(res)) == sizeof(res));
	if (res.rc != SHMQ_OK)
		return 0;
	switch (lo->then) {
	case HOLD:
		break;
	case ACK:
		res.rc = ring_ack(&c->r, m, got, NULL);
		break;
	case NACK:
	case NACK_DEAD:
		for (size_t i = 0; i < got; i++)
			res.rc = ring_nack(&c->r, &m[i], lo->then == NACK_DEAD
							 ? SHMQ_NACK_DEAD : 0);
		break;
	case GO_ACK:
		CHILD_CHECK(read(lo->go, &b, 1) == 1);
		res.rc = ring_ack(&c->r, m, got, NULL);
		CHILD_CHECK(write(c->evt, &res, sizeof(res)) == sizeof(res));
		return 0;
	}
	CHILD_CHECK(write(c->evt, &res, sizeof(res)) == sizeof(res));
	for (;;)
		pause();
}

static struct kres kid_report(struct kid *k)
{
	struct kres res;

	ck_assert_msg(read_timed(k->evt, &res, sizeof(res)) == 0,
		      "no report from child %d", (int)k->pid);
	return res;
}

/* Kills a child and lets "shmqd" release its attachment. */
static void kill_holder(struct kid *k)
{
	kid_kill(k);
	ring_client_remove(&R, k->idx, 1);
}

/* ================================================================== */
/* Killed while leasing                                               */

struct lease_crash {
	int point, nth;
	size_t n;               /* messages the dead child leases */
	int committed;          /* its lease committed before the kill */
};

static const struct lease_crash lease_crashes[] = {
	{ RING_HOOK_GET_LOCKED, 1, 1, 0 },
	{ RING_HOOK_LEASE_FILLED, 1, 1, 0 },
	{ RING_HOOK_GET_COMMITTED, 1, 1, 1 },
	{ RING_HOOK_LEASE_FILLED, 2, 3, 0 },
	{ RING_HOOK_GET_COMMITTED, 1, 3, 1 },
};

START_TEST(test_crash_in_lease)
{
	const struct lease_crash *lc = &lease_crashes[_i];
	struct lop lo = { .op = OP(.park = AT(lc->point), .park_nth = lc->nth,
				   .n = lc->n), .then = HOLD };
	char m[16];

	acked_create(8, 0, 0, 0);
	put_all(5);
	struct kid *k = kid_start(SHMQ_ROLE_CONSUMER, kid_lease, &lo);
	kid_expect_parked(k);
	kill_holder(k);
	/* Committed, the dead child's messages come back first, delivered
	 * twice; not committed, they were never delivered. */
	for (int i = 0; i < 5; i++) {
		snprintf(m, sizeof(m), "m%d", i);
		take(m, lc->committed && (size_t)i < lc->n ? 2 : 1);
	}
	expect_nothing();
	expect_settled(5);
}
END_TEST

/* A plain get on an acked queue settles the message by its commit: killed
 * just before it, nothing was taken, nor counted as acked. */
START_TEST(test_crash_in_plain_get)
{
	struct op get = OP(.park = AT(RING_HOOK_GET_COPIED));

	acked_create(8, 0, 0, 0);
	put_all(1);
	struct kid *k = kid_op(SHMQ_ROLE_CONSUMER, kid_get, &get);
	kid_expect_parked(k);
	kill_holder(k);
	ck_assert_uint_eq(stat_now().acked, 0);
	take("m0", 1);
	expect_settled(1);
}
END_TEST

/* Killed holding leases, outside any critical section: the plain case of
 * a worker that dies.  A consumer waiting for a message is woken by the
 * departure and gets the first one back. */
START_TEST(test_crash_holding)
{
	struct lop hold = { .op = OP(.n = 3), .then = HOLD };
	struct lop waiter = { .op = OP(.n = 1), .then = HOLD };

	acked_create(8, 0, 0, 0);
	put_all(4);
	struct kid *k = kid_start(SHMQ_ROLE_CONSUMER, kid_lease, &hold);
	struct kres res = kid_report(k);
	ck_assert_int_eq(res.rc, SHMQ_OK);
	ck_assert_uint_eq(res.count, 3);
	take("m3", 1);
	ck_assert_uint_eq(stat_now().leased, 3);
	/* Nothing left to lease: the waiter sleeps until the holder dies. */
	struct kid *w = kid_start(SHMQ_ROLE_CONSUMER, kid_lease, &waiter);
	EVENTUALLY(entry_wait(w->idx) == SHMQ_WAIT_GET);
	kill_holder(k);
	res = kid_report(w);
	ck_assert_int_eq(res.rc, SHMQ_OK);
	ck_assert_uint_eq(res.len, 2);
	ck_assert_mem_eq(res.data, "m0", 2);
	kill_holder(w);
	/* m0 was delivered a third time, to the waiter, which died too. */
	take("m0", 3);
	take("m1", 2);
	take("m2", 2);
	expect_nothing();
	expect_settled(4);
}
END_TEST

/* ================================================================== */
/* Killed inside an ack                                               */

START_TEST(test_crash_in_ack)
{
	/* Parked before freeing the second of three slots of one ackv: the
	 * first is acked, the other two come back. */
	struct lop lo = { .op = OP(.park = AT(RING_HOOK_LEASE_ACKING),
				   .park_nth = 2, .n = 3), .then = ACK };

	acked_create(8, 0, 0, 0);
	put_all(4);
	struct kid *k = kid_start(SHMQ_ROLE_CONSUMER, kid_lease, &lo);
	ck_assert_int_eq(kid_report(k).count, 3);
	kid_expect_parked(k);
	kill_holder(k);
	take("m1", 2);
	take("m2", 2);
	take("m3", 1);
	expect_nothing();
	expect_settled(4);
}
END_TEST

/* An ack that completed stays done when its process dies after it. */
START_TEST(test_crash_after_ack)
{
	struct lop lo = { .op = OP(.n = 2), .then = ACK };

	acked_create(8, 0, 0, 0);
	put_all(3);
	struct kid *k = kid_start(SHMQ_ROLE_CONSUMER, kid_lease, &lo);
	ck_assert_int_eq(kid_report(k).count, 2);
	ck_assert_int_eq(kid_report(k).rc, SHMQ_OK);
	kill_holder(k);
	take("m2", 1);
	expect_nothing();
	expect_settled(3);
}
END_TEST

/* ================================================================== */
/* Killed inside a redelivery                                         */

START_TEST(test_crash_in_redelivery)
{
	/* Before the redelivery's commit, it never happened: the message
	 * comes back delivered twice, not three times.  After it, the dead
	 * child had it: three times. */
	static const int points[] = { RING_HOOK_LEASE_REDELIVERING,
				      RING_HOOK_LEASE_REDELIVERED };
	struct lop lo = { .op = OP(.park = AT(points[_i]), .n = 1),
			  .then = HOLD };
	struct leased l;

	acked_create(8, 0, 0, 0);
	put_all(3);
	expect_lease(&l, "m0", 1);
	ck_assert_int_eq(ring_nack(&R, &l.m, 0), SHMQ_OK);
	ck_assert_uint_eq(stat_now().returned, 1);
	struct kid *k = kid_start(SHMQ_ROLE_CONSUMER, kid_lease, &lo);
	kid_expect_parked(k);
	kill_holder(k);
	take("m0", _i == 0 ? 2 : 3);
	take("m1", 1);
	take("m2", 1);
	expect_nothing();
	expect_settled(3);
}
END_TEST

/* ================================================================== */
/* Killed while dead-lettering                                        */

/*
 * max_deliveries 2.  The message's second delivery ends by a nack (the
 * holder dead-letters it inside its nack) or by the holder's death (the
 * next consumer dead-letters it inside its lease); that one is killed
 * before the put into the dead-letter queue, inside it, or after its
 * commit.  Then the test's own lease finishes the move.  Killed before
 * the commit, the dead-letter queue gets the message once; after it,
 * twice: the one window lease.c documents.
 */
struct dl_crash {
	int by_nack;
	int point;
	int copies;             /* in the dead-letter queue at the end */
};

static const struct dl_crash dl_crashes[] = {
	{ 1, RING_HOOK_LEASE_DEAD_LETTERING, 1 },
	{ 1, RING_HOOK_PUT_COPIED, 1 },
	{ 1, RING_HOOK_LEASE_DEAD_LETTERED, 2 },
	{ 0, RING_HOOK_LEASE_DEAD_LETTERING, 1 },
	{ 0, RING_HOOK_PUT_COPIED, 1 },
	{ 0, RING_HOOK_LEASE_DEAD_LETTERED, 2 },
};

static void expect_dead_letters(int copies)
{
	char buf[64];
	size_t len;

	for (int i = 0; i < copies; i++) {
		ck_assert_int_eq(get_one(&DL, buf, sizeof(buf), &len, 0),
				 SHMQ_OK);
		ck_assert_uint_eq(len, 2);
		ck_assert_mem_eq(buf, "m0", 2);
	}
	ck_assert_int_eq(get_one(&DL, buf, sizeof(buf), &len, 0), SHMQ_EAGAIN);
	ck_assert_int_eq(ring_check(&DL), SHMQ_OK);
}

START_TEST(test_crash_dead_lettering)
{
	const struct dl_crash *dc = &dl_crashes[_i];
	struct lop second = { .op = OP(.n = 1), .then = HOLD };
	struct lop mover = { .op = OP(.park = AT(dc->point), .n = 1),
			     .then = HOLD };
	struct leased l;

	acked_create(8, 0, 2, 4);
	put_all(2);
	expect_lease(&l, "m0", 1);
	ck_assert_int_eq(ring_nack(&R, &l.m, 0), SHMQ_OK);
	struct kid *k;
	if (dc->by_nack) {
		/* The second delivery's holder nacks: it dead-letters. */
		second.op.park = mover.op.park;
		second.then = NACK;
		k = kid_start(SHMQ_ROLE_CONSUMER, kid_lease, &second);
		ck_assert_int_eq(kid_report(k).count, 1);
	} else {
		/* The second holder dies; the next lease dead-letters. */
		k = kid_start(SHMQ_ROLE_CONSUMER, kid_lease, &second);
		ck_assert_int_eq(kid_report(k).count, 1);
		kill_holder(k);
		k = kid_start(SHMQ_ROLE_CONSUMER, kid_lease, &mover);
	}
	kid_expect_parked(k);
	kill_holder(k);
	/* The test's lease moves what is left to move, then gets m1. */
	take("m1", 1);
	expect_nothing();
	struct shmq_stat st = stat_now();
	ck_assert_uint_eq(st.dead_lettered, 1);
	ck_assert_uint_eq(st.dropped, 0);
	ck_assert_uint_eq(st.leased, 0);
	ck_assert_uint_eq(st.returned, 0);
	ck_assert_uint_eq(st.messages, 0);
	expect_dead_letters(dc->copies);
	ck_assert_int_eq(ring_check(&R), SHMQ_OK);
}
END_TEST

/* Without a dead-letter queue the message is dropped and counted; with
 * one that is full, it waits (counted as returned, shown as waiting for
 * the dead-letter queue) and is moved once there is room, by whoever
 * takes the lock a second later. */
START_TEST(test_dead_letter_drop_and_wait)
{
	struct shmq_lease_info info[4];
	struct leased l;

	acked_create(8, 0, 1, 0);
	put_all(2);
	expect_lease(&l, "m0", 1);
	ck_assert_int_eq(ring_nack(&R, &l.m, 0), SHMQ_OK);
	struct shmq_stat st = stat_now();
	ck_assert_uint_eq(st.dropped, 1);
	ck_assert_uint_eq(st.returned, 0);
	take("m1", 1);
	expect_nothing();
	expect_settled(1);
	acked_teardown();
	ring_setup();

	acked_create(8, 0, 0, 1);
	put_ok(&DL, "full");
	put_all(2);
	expect_lease(&l, "m0", 1);
	ck_assert_int_eq(ring_nack(&R, &l.m, SHMQ_NACK_DEAD), SHMQ_OK);
	st = stat_now();
	ck_assert_uint_eq(st.dead_lettered, 0);
	ck_assert_uint_eq(st.returned, 1);
	ck_assert_uint_eq(st.messages, 2);
	ck_assert_uint_eq(ring_pending(&R, info, 4), 1);
	ck_assert_int_eq(info[0].state, SHMQ_LEASE_DEAD_LETTER);
	/* Waiting for the dead-letter queue, it is not delivered again. */
	take("m1", 1);
	expect_nothing();
	expect_msg(&DL, "full");
	/* Tried again a second later (the clock, not a handshake, is what
	 * the retry waits for), by the sweep of whoever leases. */
	ck_assert_msg(WAIT_UNTIL(lease_one(&R, &l, SHMQ_NOWAIT) == SHMQ_EAGAIN &&
					 stat_now().dead_lettered == 1,
				 WAIT_MS),
		      "the dead letter was never moved");
	expect_msg(&DL, "m0");
	expect_settled(1);
}
END_TEST

/* ================================================================== */
/* Deadlines                                                          */

static void wait_past(int64_t deadline_ns)
{
	while ((int64_t)mono_ns() <= deadline_ns)
		sleep_us(200);
}

/* An ack after its deadline loses, even before anyone returned the
 * lease; an extend before the deadline keeps it. */
START_TEST(test_ack_after_deadline)
{
	struct leased l, l2;

	acked_create(8, 30, 0, 0);
	put_all(2);
	expect_lease(&l, "m0", 1);
	wait_past(R.leases[(l.m.lease & 0xffffffffu) - 1].deadline);
	ck_assert_int_eq(ring_ack(&R, &l.m, 1, NULL), SHMQ_ELEASE);
	ck_assert_int_eq(ring_extend(&R, &l.m, 0), SHMQ_ELEASE);
	ck_assert_int_eq(ring_nack(&R, &l.m, 0), SHMQ_ELEASE);
	/* The next lease returns it, and delivers it again. */
	expect_lease(&l2, "m0", 2);
	ck_assert_int_eq(ring_extend(&R, &l2.m, 10000), SHMQ_OK);
	int64_t dl = R.leases[(l2.m.lease & 0xffffffffu) - 1].deadline;
	ck_assert_int_gt(dl, (int64_t)mono_ns() + 5000000000ll);
	ck_assert_int_eq(ring_ack(&R, &l.m, 1, NULL), SHMQ_ELEASE);
	ck_assert_int_eq(ring_ack(&R, &l2.m, 1, NULL), SHMQ_OK);
	ck_assert_int_eq(ring_ack(&R, &l2.m, 1, NULL), SHMQ_ELEASE);
	take("m1", 1);
	expect_settled(2);
}
END_TEST

/*
 * Acks racing their deadlines.  Three consumers lease with a 2 ms lease
 * timeout and ack after a random 0-4 ms: about half the acks come after
 * the deadline, some of them while another consumer's sweep returns the
 * lease.  Each message must be acked successfully exactly once over all
 * of them, and by the holder of its latest delivery: an ack that wins
 * means the message is never delivered again, one that loses means it
 * came back.
 */
#define RACE_MSGS 300

struct race {
	uint32_t acks[RACE_MSGS];       /* successful acks per message */
	uint32_t leased_max[RACE_MSGS]; /* the latest delivery leased */
	uint32_t acked_at[RACE_MSGS];   /* the delivery whose ack won */
	uint32_t lost;                  /* acks refused (ELEASE) */
};

static int kid_race(struct kctx *c)
{
	struct race *rc = c->arg;
	uint64_t x = (uint64_t)getpid() * 0x9e3779b97f4a7c15ull;

	for (;;) {
		struct shmq_msg m;
		char buf[64];
		size_t got;
		int st = ring_lease(&c->r, buf, sizeof(buf), &m, 1, &got,
				    SHMQ_FOREVER, 0);
		if (st == SHMQ_EOS)
			return 0;
		CHILD_RC(st, SHMQ_OK);
		unsigned i;
		CHILD_CHECK(m.len < sizeof(buf));
		buf[m.len] = '\0';
		CHILD_CHECK(sscanf(buf, "%u", &i) == 1 && i < RACE_MSGS);
		uint32_t seen = __atomic_load_n(&rc->leased_max[i],
						__ATOMIC_SEQ_CST);
		while (seen < m.deliveries &&
		       !__atomic_compare_exchange_n(&rc->leased_max[i], &seen,
						    m.deliveries, 0,
						    __ATOMIC_SEQ_CST,
						    __ATOMIC_SEQ_CST))
			;
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		sleep_us((long)(x % 4000));
		st = ring_ack(&c->r, &m, 1, NULL);
		if (st == SHMQ_OK) {
			__atomic_add_fetch(&rc->acks[i], 1, __ATOMIC_SEQ_CST);
			__atomic_store_n(&rc->acked_at[i], m.deliveries,
					 __ATOMIC_SEQ_CST);
		}
		else if (st == SHMQ_ELEASE)
			__atomic_add_fetch(&rc->lost, 1, __ATOMIC_SEQ_CST);
		else
			CHILD_RC(st, SHMQ_OK);
	}
}

START_TEST(test_ack_races_deadline)
{
	struct race *rc = shared_alloc(sizeof(*rc));
	struct kid *k[3];
	char m[16];

	acked_create(16, 2, 0, 0);
	for (int i = 0; i < 3; i++)
		k[i] = kid_start(SHMQ_ROLE_CONSUMER, kid_race, rc);
	for (int i = 0; i < RACE_MSGS; i++) {
		snprintf(m, sizeof(m), "%d", i);
		ck_assert_int_eq(put_one_str(&R, m, WAIT_MS * 4), SHMQ_OK);
	}
	ck_assert_int_eq(ring_close(&R, SHMQ_CLOSE_DRAIN, NULL), SHMQ_OK);
	for (int i = 0; i < 3; i++)
		kid_ok(k[i]);
	/* Once acked, never delivered again: the ack that won is that of
	 * the latest delivery (a stale ack that removed a redelivered
	 * message would be "both"). */
	for (int i = 0; i < RACE_MSGS; i++) {
		ck_assert_msg(rc->acks[i] == 1, "message %d acked %u times", i,
			      rc->acks[i]);
		ck_assert_msg(rc->acked_at[i] == rc->leased_max[i],
			      "message %d: delivery %u acked, but delivery %u "
			      "was leased", i, rc->acked_at[i],
			      rc->leased_max[i]);
	}
	/* The race did happen. */
	ck_assert_uint_gt(rc->lost, 0);
	struct shmq_stat st = stat_now();
	ck_assert_uint_eq(st.acked, RACE_MSGS);
	ck_assert_uint_eq(st.leased, 0);
	ck_assert_uint_eq(st.messages, 0);
	munmap(rc, sizeof(*rc));
}
END_TEST

/* ================================================================== */
/* Capacity, end of stream, join                                      */

static int kid_put_wait(struct kctx *c)
{
	struct kres res = { 0 };

	res.rc = put_one_str(&c->r, "late", SHMQ_FOREVER);
	return write(c->evt, &res, sizeof(res)) == sizeof(res) ? 0
							       : CHILD_FAIL;
}

START_TEST(test_capacity_counts_leases)
{
	struct leased l[4];

	acked_create(4, 0, 0, 0);
	put_all(4);
	for (int i = 0; i < 4; i++)
		ck_assert_int_eq(lease_one(&R, &l[i], 0), SHMQ_OK);
	struct shmq_stat st = stat_now();
	ck_assert_uint_eq(st.messages, 0);
	ck_assert_uint_eq(st.leased, 4);
	ck_assert_int_eq(put_one_str(&R, "x", SHMQ_NOWAIT), SHMQ_EAGAIN);
	struct kid *k = kid_start(SHMQ_ROLE_PRODUCER, kid_put_wait, NULL);
	EVENTUALLY(entry_wait(k->idx) == SHMQ_WAIT_PUT);
	kid_silent(k);
	/* A nack frees nothing: the message is queued again. */
	ck_assert_int_eq(ring_nack(&R, &l[3].m, 0), SHMQ_OK);
	kid_silent(k);
	ck_assert_int_eq(put_one_str(&R, "x", SHMQ_NOWAIT), SHMQ_EAGAIN);
	/* An ack does, and wakes the put. */
	ck_assert_int_eq(ring_ack(&R, &l[0].m, 1, NULL), SHMQ_OK);
	ck_assert_int_eq(kid_result(k).rc, SHMQ_OK);
	ck_assert_int_eq(put_one_str(&R, "x", SHMQ_NOWAIT), SHMQ_EAGAIN);
	ck_assert_int_eq(ring_ack(&R, &l[1].m, 1, NULL), SHMQ_OK);
	ck_assert_int_eq(ring_ack(&R, &l[2].m, 1, NULL), SHMQ_OK);
	take("m3", 2);
	take("late", 1);
	expect_nothing();
	expect_settled(5);
	acked_teardown();
	ring_setup();

	/* The byte budget counts leased bytes too. */
	struct ring_config c = seg_config(8, 32, 64, SHMQ_CFG_ACKED);
	uint32_t idx, gen;
	char big[32];
	seg_create(&c);
	ck_assert_int_eq(ring_client_add(&R, (uint32_t)getpid(), 0, ROLE_BOTH,
					 &idx, &gen), SHMQ_OK);
	ck_assert_int_eq(ring_client_bind(&R, idx, gen), SHMQ_OK);
	memset(big, 'b', sizeof(big));
	ck_assert_int_eq(put_one(&R, big, 32, 0), SHMQ_OK);
	ck_assert_int_eq(put_one(&R, big, 32, 0), SHMQ_OK);
	ck_assert_int_eq(lease_one(&R, &l[0], 0), SHMQ_OK);
	ck_assert_int_eq(put_one(&R, big, 1, 0), SHMQ_EAGAIN);
	ck_assert_int_eq(ring_ack(&R, &l[0].m, 1, NULL), SHMQ_OK);
	ck_assert_int_eq(put_one(&R, big, 32, 0), SHMQ_OK);
}
END_TEST

/* A put that waits for room on a queue full of leases, for a second:
 * reports its status and the CPU time it used, in microseconds. */
static int kid_put_cpu(struct kctx *c)
{
	struct kres res = { 0 };
	struct rusage ru;

	res.rc = put_one_str(&c->r, "late", 1000);
	CHILD_CHECK(getrusage(RUSAGE_SELF, &ru) == 0);
	res.count = (uint32_t)((ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) *
				       1000000 +
			       ru.ru_utime.tv_usec + ru.ru_stime.tv_usec);
	return write(c->evt, &res, sizeof(res)) == sizeof(res) ? 0
							       : CHILD_FAIL;
}

/* With a capacity that gives waiters a stride (16: a producer waits for
 * room for 4 before it looks), a producer facing a queue whose every
 * message is leased sleeps (counted as blocked) instead of spinning: its
 * quick look must count the leases, as the real one does. */
START_TEST(test_full_of_leases_sleeps)
{
	struct leased l[16];

	acked_create(16, 0, 0, 0);
	put_all(16);
	for (int i = 0; i < 16; i++)
		ck_assert_int_eq(lease_one(&R, &l[i], 0), SHMQ_OK);
	struct kid *k = kid_start(SHMQ_ROLE_PRODUCER, kid_put_cpu, NULL);
	EVENTUALLY(stat_now().put_blocked == 1);
	struct kres res = kid_result(k);
	ck_assert_int_eq(res.rc, SHMQ_ETIMEDOUT);
	/* A second of spinning costs most of a second; a sleep, next to
	 * nothing. */
	ck_assert_msg(res.count < 200000, "the put used %u us of CPU in 1 s",
		      res.count);
}
END_TEST

/* End of stream waits for another holder's lease; a handle's own leases
 * do not delay it. */
START_TEST(test_eos_waits_for_leases)
{
	int go[2];
	struct lop lo = { .op = OP(.n = 1), .then = GO_ACK };
	struct lop waiter = { .op = OP(.n = 1), .then = HOLD };
	struct leased l, none;

	ck_assert_int_eq(pipe(go), 0);
	lo.go = go[0];
	acked_create(8, 0, 0, 0);
	put_all(2);
	ck_assert_int_eq(ring_close(&R, SHMQ_CLOSE_DRAIN, NULL), SHMQ_OK);
	struct kid *k = kid_start(SHMQ_ROLE_CONSUMER, kid_lease, &lo);
	ck_assert_int_eq(kid_report(k).count, 1);
	expect_lease(&l, "m1", 1);
	/* m0 is out with the child: it may come back. */
	ck_assert_int_eq(lease_one(&R, &none, SHMQ_NOWAIT), SHMQ_EAGAIN);
	struct kid *w = kid_start(SHMQ_ROLE_CONSUMER, kid_lease, &waiter);
	EVENTUALLY(entry_wait(w->idx) == SHMQ_WAIT_GET);
	/* The child acks: for us only our own lease is left, so the
	 * stream has ended; the waiter still waits for ours. */
	ck_assert_int_eq(write(go[1], "g", 1), 1);
	ck_assert_int_eq(kid_report(k).rc, SHMQ_OK);
	kid_ok(k);
	ck_assert_int_eq(lease_one(&R, &none, SHMQ_NOWAIT), SHMQ_EOS);
	kid_silent(w);
	ck_assert_int_eq(ring_ack(&R, &l.m, 1, NULL), SHMQ_OK);
	ck_assert_int_eq(kid_report(w).rc, SHMQ_EOS);
	expect_settled(2);
	close(go[0]);
	close(go[1]);
}
END_TEST

/* Dead letters waiting for room in the dead-letter queue are still in
 * this one, unsettled: the end of the stream waits for them too, and a
 * consumer waiting there moves them once there is room (it tries every
 * second, as the sweep does). */
START_TEST(test_eos_waits_for_dead_letters)
{
	struct lop waiter = { .op = OP(.n = 1), .then = HOLD };
	struct leased l;
	char buf[16];
	size_t len;

	acked_create(8, 0, 0, 1);
	ck_assert_int_eq(put_one_str(&DL, "full", 0), SHMQ_OK);
	put_all(1);
	ck_assert_int_eq(ring_close(&R, SHMQ_CLOSE_DRAIN, NULL), SHMQ_OK);
	expect_lease(&l, "m0", 1);
	ck_assert_int_eq(ring_nack(&R, &l.m, SHMQ_NACK_DEAD), SHMQ_OK);
	ck_assert_int_eq(lease_one(&R, &l, SHMQ_NOWAIT), SHMQ_EAGAIN);
	struct kid *w = kid_start(SHMQ_ROLE_CONSUMER, kid_lease, &waiter);
	EVENTUALLY(entry_wait(w->idx) == SHMQ_WAIT_GET);
	kid_silent(w);
	ck_assert_int_eq(get_one(&DL, buf, sizeof(buf), &len, 0), SHMQ_OK);
	ck_assert_int_eq(kid_report(w).rc, SHMQ_EOS);
	ck_assert_int_eq(get_one(&DL, buf, sizeof(buf), &len, 0), SHMQ_OK);
	ck_assert_mem_eq(buf, "m0", 2);
	ck_assert_uint_eq(stat_now().dead_lettered, 1);
	ck_assert_int_eq(lease_one(&R, &l, SHMQ_NOWAIT), SHMQ_EOS);
	expect_settled(0);
}
END_TEST

/* A holder that dies ends the stream too, once its message is taken. */
START_TEST(test_eos_after_holder_dies)
{
	struct lop lo = { .op = OP(.n = 1), .then = HOLD };

	acked_create(8, 0, 0, 0);
	put_all(1);
	ck_assert_int_eq(ring_close(&R, SHMQ_CLOSE_DRAIN, NULL), SHMQ_OK);
	struct kid *k = kid_start(SHMQ_ROLE_CONSUMER, kid_lease, &lo);
	ck_assert_int_eq(kid_report(k).count, 1);
	ck_assert_int_eq(lease_one(&R, &(struct leased){ 0 }, SHMQ_NOWAIT),
			 SHMQ_EAGAIN);
	kill_holder(k);
	take("m0", 2);
	ck_assert_int_eq(lease_one(&R, &(struct leased){ 0 }, SHMQ_NOWAIT),
			 SHMQ_EOS);
	expect_settled(1);
}
END_TEST

static int kid_join(struct kctx *c)
{
	struct kres res = { 0 };

	res.rc = ring_join(&c->r, WAIT_MS * 2);
	return write(c->evt, &res, sizeof(res)) == sizeof(res) ? 0
							       : CHILD_FAIL;
}

START_TEST(test_join)
{
	struct leased l;

	acked_create(8, 0, 0, 0);
	ck_assert_int_eq(ring_join(&R, SHMQ_NOWAIT), SHMQ_OK);
	put_all(2);
	ck_assert_int_eq(ring_join(&R, SHMQ_NOWAIT), SHMQ_EAGAIN);
	ck_assert_int_eq(ring_join(&R, 20), SHMQ_ETIMEDOUT);
	take("m0", 1);
	expect_lease(&l, "m1", 1);
	/* Leased is not settled; nacked is not either. */
	ck_assert_int_eq(ring_join(&R, SHMQ_NOWAIT), SHMQ_EAGAIN);
	struct kid *k = kid_start(0, kid_join, NULL);
	ck_assert_int_eq(ring_nack(&R, &l.m, 0), SHMQ_OK);
	kid_silent(k);
	expect_lease(&l, "m1", 2);
	ck_assert_int_eq(ring_ack(&R, &l.m, 1, NULL), SHMQ_OK);
	ck_assert_int_eq(kid_result(k).rc, SHMQ_OK);
	/* A message put after a join began is not waited for by it; a
	 * join begun after is. */
	put_ok(&R, "m2");
	ck_assert_int_eq(ring_join(&R, SHMQ_NOWAIT), SHMQ_EAGAIN);
	take("m2", 1);
	ck_assert_int_eq(ring_join(&R, SHMQ_NOWAIT), SHMQ_OK);
	/* Dead-lettered, dropped and discarded are settled too. */
	put_all(3);
	expect_lease(&l, "m0", 1);
	ck_assert_int_eq(ring_nack(&R, &l.m, SHMQ_NACK_DEAD), SHMQ_OK);
	ck_assert_uint_eq(stat_now().dropped, 1);
	uint64_t n = 0;
	ck_assert_int_eq(ring_close(&R, SHMQ_CLOSE_NOW, &n), SHMQ_OK);
	ck_assert_uint_eq(n, 2);
	ck_assert_int_eq(ring_join(&R, SHMQ_NOWAIT), SHMQ_OK);
}
END_TEST

/* ================================================================== */
/* Bad leases                                                         */

START_TEST(test_bad_leases)
{
	struct leased l, l2;
	struct shmq_msg forged;

	acked_create(8, 0, 0, 0);
	put_all(3);
	expect_lease(&l, "m0", 1);
	/* Forged: another epoch, index 0 (the +1 is missing), out of
	 * range, every bit set. */
	forged = l.m;
	forged.lease = l.m.lease + (1ull << 32);
	ck_assert_int_eq(ring_ack(&R, &forged, 1, NULL), SHMQ_ELEASE);
	forged.lease = l.m.lease & ~0xffffffffull;
	ck_assert_int_eq(ring_ack(&R, &forged, 1, NULL), SHMQ_ELEASE);
	forged.lease = (l.m.lease & ~0xffffffffull) | 9;
	ck_assert_int_eq(ring_ack(&R, &forged, 1, NULL), SHMQ_ELEASE);
	forged.lease = UINT64_MAX;
	ck_assert_int_eq(ring_nack(&R, &forged, 0), SHMQ_ELEASE);
	ck_assert_int_eq(ring_extend(&R, &forged, 0), SHMQ_ELEASE);
	ck_assert_int_eq(ring_nack(&R, &l.m, 0x2), SHMQ_EINVAL);
	ck_assert_int_eq(ring_extend(&R, &l.m, -1), SHMQ_EINVAL);
	ck_assert_uint_eq(stat_now().leased, 1);
	/* An ackv with one bad lease acks the others. */
	expect_lease(&l2, "m1", 1);
	struct shmq_msg two[3] = { l.m, forged, l2.m };
	size_t done = 0;
	ck_assert_int_eq(ring_ack(&R, two, 3, &done), SHMQ_ELEASE);
	ck_assert_uint_eq(done, 2);
	/* Twice. */
	ck_assert_int_eq(ring_ack(&R, &l.m, 1, NULL), SHMQ_ELEASE);
	ck_assert_int_eq(ring_nack(&R, &l2.m, 0), SHMQ_ELEASE);
	/* Another handle's lease is not ours. */
	struct lop lo = { .op = OP(.n = 1), .then = HOLD };
	struct kid *k = kid_start(SHMQ_ROLE_CONSUMER, kid_lease, &lo);
	ck_assert_int_eq(kid_report(k).count, 1);
	uint32_t slot = UINT32_MAX;
	for (uint32_t i = 0; i < R.capacity; i++)
		if (R.leases[i].state == SHMQ_LEASE_LEASED)
			slot = i;
	ck_assert_uint_ne(slot, UINT32_MAX);
	forged.lease = (uint64_t)R.leases[slot].epoch << 32 | (slot + 1);
	ck_assert_int_eq(ring_ack(&R, &forged, 1, NULL), SHMQ_ELEASE);
	ck_assert_int_eq(ring_extend(&R, &forged, 0), SHMQ_ELEASE);
	kill_holder(k);
	take("m2", 2);
	expect_settled(3);
}
END_TEST

/* ================================================================== */
/* What keeps the table cheap: the order of redelivery, the counts    */

/* Returned messages come back oldest first, whatever order they were
 * returned in and however many there are (more than the header's cache
 * of SHMQ_RET_CACHE holds), while new ones are returned in the middle of
 * a drain, and after a sweep rebuilt the cache. */
START_TEST(test_redelivery_order)
{
	enum { N = 200 };
	static struct leased l[N];
	static uint32_t order[N];
	struct leased x;
	char m[16];

	acked_create(256, 0, 0, 0);
	put_all(N);
	for (int i = 0; i < N; i++) {
		snprintf(m, sizeof(m), "m%d", i);
		expect_lease(&l[i], m, 1);
		order[i] = (uint32_t)i;
	}
	for (int i = N - 1; i > 0; i--) {       /* a shuffled order */
		uint32_t j = (uint32_t)(rnd() % (uint64_t)(i + 1)), t = order[i];
		order[i] = order[j];
		order[j] = t;
	}
	for (int i = 0; i < N; i++)
		ck_assert_int_eq(ring_nack(&R, &l[order[i]].m, 0), SHMQ_OK);
	ck_assert_uint_eq(stat_now().returned, N);
	/* Half back, then the upper half of those nacked again, newest
	 * first: they come before the rest, in order. */
	for (int i = 0; i < N / 2; i++) {
		snprintf(m, sizeof(m), "m%d", i);
		expect_lease(&l[i], m, 2);
	}
	for (int i = N / 2 - 1; i >= N / 4; i--)
		ck_assert_int_eq(ring_nack(&R, &l[i].m, 0), SHMQ_OK);
	/* A sweep in between (a departure) rebuilds the cache. */
	struct lop hold = { .op = OP(.n = 1), .then = HOLD };
	struct kid *k = kid_start(SHMQ_ROLE_CONSUMER, kid_lease, &hold);
	struct kres res = kid_report(k);
	ck_assert_int_eq(res.rc, SHMQ_OK);
	ck_assert_mem_eq(res.data, "m50", 3);
	kill_holder(k);
	for (int i = N / 4; i < N; i++) {
		snprintf(m, sizeof(m), "m%d", i);
		expect_lease(&x, m, i < N / 2 ? (i == N / 4 ? 4 : 3) : 2);
		ck_assert_int_eq(ring_ack(&R, &x.m, 1, NULL), SHMQ_OK);
	}
	for (int i = 0; i < N / 4; i++)
		ck_assert_int_eq(ring_ack(&R, &l[i].m, 1, NULL), SHMQ_OK);
	expect_nothing();
	expect_settled(N);
}
END_TEST

/* Each attachment entry counts the leases it holds; a handle that goes
 * holding none costs the getters nothing (no departure to sweep for),
 * one that goes holding some is noticed. */
START_TEST(test_lease_counts)
{
	struct lop hold = { .op = OP(.n = 3), .then = HOLD };
	struct lop none = { .op = OP(.n = 1, .timeout = 1), .then = HOLD };
	struct leased l;

	acked_create(8, 0, 0, 0);
	put_all(4);
	uint32_t dep = R.hdr->departures;
	struct kid *k = kid_start(SHMQ_ROLE_CONSUMER, kid_lease, &hold);
	ck_assert_int_eq(kid_report(k).count, 3);
	ck_assert_uint_eq(R.clients[k->idx].leases, 3);
	expect_lease(&l, "m3", 1);
	ck_assert_uint_eq(R.self->leases, 1);
	ck_assert_int_eq(ring_nack(&R, &l.m, 0), SHMQ_OK);
	ck_assert_uint_eq(R.self->leases, 0);
	expect_lease(&l, "m3", 2);
	ck_assert_uint_eq(R.self->leases, 1);
	/* A consumer that took nothing (its lease timed out empty-handed)
	 * leaves without a departure. */
	struct kid *w = kid_start(SHMQ_ROLE_CONSUMER, kid_lease, &none);
	ck_assert_int_eq(kid_report(w).rc, SHMQ_ETIMEDOUT);
	kid_ok(w);
	ring_client_remove(&R, w->idx, 1);
	ck_assert_uint_eq(R.hdr->departures, dep);
	/* The holder goes: a departure, and its leases come back. */
	kill_holder(k);
	ck_assert_uint_eq(R.hdr->departures, dep + 1);
	ck_assert_int_eq(ring_ack(&R, &l.m, 1, NULL), SHMQ_OK);
	ck_assert_uint_eq(R.self->leases, 0);
	take("m0", 2);
	take("m1", 2);
	take("m2", 2);
	ck_assert_uint_eq(R.self->leases, 0);
	expect_nothing();
	expect_settled(4);
}
END_TEST

/* ================================================================== */
/* close --now                                                        */

/* A lease batch that has filled a slot when close --now comes (the
 * closer waits for its lock) stops there and commits it: the message is
 * leased, not also discarded, and head never moves back. */
START_TEST(test_close_now_racing_lease)
{
	struct lop lo = { .op = OP(.n = 4, .park = AT(RING_HOOK_LEASE_FILLED),
				   .until_now = 1),
			  .then = HOLD };

	acked_create(8, 0, 0, 0);
	put_all(1);
	struct kid *k = kid_start(SHMQ_ROLE_CONSUMER, kid_lease, &lo);
	kid_expect_parked(k);
	struct kid *closer = kid_start(0, kid_close_now, NULL);
	struct kres res = kid_report(k);
	ck_assert_int_eq(res.rc, SHMQ_OK);
	ck_assert_uint_eq(res.count, 1);
	res = kid_result(closer);
	ck_assert_int_eq(res.rc, SHMQ_OK);
	ck_assert_uint_eq(res.count, 0);
	struct shmq_stat st = stat_now();
	ck_assert_uint_eq(st.leased, 1);
	ck_assert_uint_eq(st.discarded, 0);
	ck_assert_uint_eq(R.hdr->head, 1);
	ck_assert_int_eq(ring_check(&R), SHMQ_OK);
}
END_TEST

/* After close --now nothing is delivered any more, so what only a getter
 * used to settle must be settled anyway: a lease whose holder died
 * (before the close, or after it) is discarded by the next sweep, which a
 * join makes itself, and a dead letter waiting for room is discarded by
 * the close. */
START_TEST(test_close_now_settles)
{
	struct lop hold = { .op = OP(.n = 1), .then = HOLD };
	struct leased l;
	uint64_t n = 0;

	/* The holder dies, then the queue is closed now. */
	acked_create(8, 0, 0, 0);
	put_all(2);
	struct kid *k = kid_start(SHMQ_ROLE_CONSUMER, kid_lease, &hold);
	ck_assert_int_eq(kid_report(k).count, 1);
	kill_holder(k);
	ck_assert_int_eq(ring_close(&R, SHMQ_CLOSE_NOW, &n), SHMQ_OK);
	ck_assert_int_eq(ring_join(&R, WAIT_MS), SHMQ_OK);
	struct shmq_stat st = stat_now();
	ck_assert_uint_eq(st.discarded, 2);
	ck_assert_uint_eq(st.leased, 0);
	ck_assert_uint_eq(st.messages, 0);
	ck_assert_int_eq(lease_one(&R, &l, SHMQ_NOWAIT), SHMQ_EOS);
	acked_teardown();
	ring_setup();

	/* Closed now, then the holder dies: a join waiting meanwhile
	 * returns. */
	acked_create(8, 0, 0, 0);
	put_all(1);
	k = kid_start(SHMQ_ROLE_CONSUMER, kid_lease, &hold);
	ck_assert_int_eq(kid_report(k).count, 1);
	ck_assert_int_eq(ring_close(&R, SHMQ_CLOSE_NOW, &n), SHMQ_OK);
	ck_assert_uint_eq(n, 0);
	struct kid *j = kid_start(0, kid_join, NULL);
	kid_silent(j);
	kill_holder(k);
	ck_assert_int_eq(kid_result(j).rc, SHMQ_OK);
	ck_assert_uint_eq(stat_now().discarded, 1);
	acked_teardown();
	ring_setup();

	/* A dead letter waiting for room: close --now discards it. */
	acked_create(8, 0, 0, 1);
	ck_assert_int_eq(put_one_str(&DL, "full", 0), SHMQ_OK);
	put_all(1);
	expect_lease(&l, "m0", 1);
	ck_assert_int_eq(ring_nack(&R, &l.m, SHMQ_NACK_DEAD), SHMQ_OK);
	ck_assert_uint_eq(stat_now().returned, 1);
	ck_assert_int_eq(ring_join(&R, SHMQ_NOWAIT), SHMQ_EAGAIN);
	ck_assert_int_eq(ring_close(&R, SHMQ_CLOSE_NOW, &n), SHMQ_OK);
	ck_assert_uint_eq(n, 1);
	ck_assert_int_eq(ring_join(&R, SHMQ_NOWAIT), SHMQ_OK);
	st = stat_now();
	ck_assert_uint_eq(st.discarded, 1);
	ck_assert_uint_eq(st.returned, 0);
	ck_assert_uint_eq(st.dead_lettered, 0);
	expect_settled(0);
}
END_TEST

static Suite *acked_crash_suite(void)
{
	Suite *s = suite_create("acked crash");
	TCase *tc = tcase_create("crash");

	tcase_add_checked_fixture(tc, ring_setup, acked_teardown);
	tcase_set_timeout(tc, 30);
	suite_add_tcase(s, tc);
	tcase_add_loop_test(tc, test_crash_in_lease, 0,
			    sizeof(lease_crashes) / sizeof(lease_crashes[0]));
	tcase_add_test(tc, test_crash_holding);
	tcase_add_test(tc, test_crash_in_plain_get);
	tcase_add_test(tc, test_crash_in_ack);
	tcase_add_test(tc, test_crash_after_ack);
	tcase_add_loop_test(tc, test_crash_in_redelivery, 0, 2);
	tcase_add_loop_test(tc, test_crash_dead_lettering, 0,
			    sizeof(dl_crashes) / sizeof(dl_crashes[0]));
	tcase_add_test(tc, test_dead_letter_drop_and_wait);
	tcase_add_test(tc, test_ack_after_deadline);
	tcase_add_test(tc, test_ack_races_deadline);
	tcase_add_test(tc, test_capacity_counts_leases);
	tcase_add_test(tc, test_full_of_leases_sleeps);
	tcase_add_test(tc, test_eos_waits_for_leases);
	tcase_add_test(tc, test_eos_after_holder_dies);
	tcase_add_test(tc, test_eos_waits_for_dead_letters);
	tcase_add_test(tc, test_join);
	tcase_add_test(tc, test_bad_leases);
	tcase_add_test(tc, test_redelivery_order);
	tcase_add_test(tc, test_lease_counts);
	tcase_add_test(tc, test_close_now_racing_lease);
	tcase_add_test(tc, test_close_now_settles);
	return s;
}

int main(void)
{
	return run_suite(acked_crash_suite(), "acked_crash");
}
