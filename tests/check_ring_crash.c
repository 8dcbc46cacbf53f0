/*
 * check_ring_crash.c - the ring (common/ring.c) when a process dies
 * inside a critical section.
 *
 * Owns the crash rules of proto/shmq_layout.h: a producer or consumer
 * parked at a ring_test_hook point while holding a lock (before its
 * copy, after it, after its commit; singly and in batches, large ones
 * that commit as they go; zero copy is check_ring_batch's) is SIGKILLed,
 * and the others carry on with nothing committed lost, nothing
 * duplicated and the queue consistent; an immediate close outwaited by a
 * stalled consumer; and a storm of kills at random instructions.  Which
 * instruction a random kill hits is chance; the verdict never is.
 *
 * Rules of every ring suite (tests/lib/ring_kid.h): processes hand off
 * through pipes and state they publish in the segment, never through
 * timing; every test is bounded (Check's timeout, children's alarm(),
 * timed reads); the segment has no name once formatted, and the fixture
 * reaps every child.  No daemon takes part.
 */
#define _GNU_SOURCE
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "lib/checks.h"
#include "lib/clock.h"
#include "lib/ring_mp.h"
#include "lib/rnd.h"
#include "lib/runner.h"

/* ================================================================== */
/* Crashes inside the critical sections                               */

/* Kills a child parked at `point` inside put, and checks that the queue
 * is whole: earlier messages intact, the dead one's message visible
 * exactly if it had committed, and later puts and gets (in this and in a
 * process that was waiting for the lock) working. */
struct put_crash {
	int point;
	int visible;            /* the dead child's message(s) committed */
	size_t n;               /* messages in the dead child's batch */
};

static const struct put_crash put_crashes[] = {
	{ RING_HOOK_PUT_LOCKED, 0, 1 },
	{ RING_HOOK_PUT_COPIED, 0, 1 },
	{ RING_HOOK_PUT_COMMITTED, 1, 1 },
	{ RING_HOOK_PUT_LOCKED, 0, 3 },
	{ RING_HOOK_PUT_COPIED, 0, 3 },
	{ RING_HOOK_PUT_COMMITTED, 1, 3 },
};

START_TEST(test_crash_in_put)
{
	const struct put_crash *pc = &put_crashes[_i];
	struct ring_config c = seg_config(8, 64, 0, 0);
	struct op dead = OP(.timeout = SHMQ_FOREVER, .park = AT(pc->point),
			    .n = pc->n, .msgs = { "dead0", "dead1", "dead2" });
	struct op waiter = OP(.timeout = WAIT_MS, .n = 1, .msgs = { "w" });
	char buf[64];
	size_t len;

	seg_create(&c);
	put_ok(&R, "m0");
	put_ok(&R, "m1");
	expect_msg(&R, "m0");   /* head and tail both past zero */
	struct kid *k = kid_op(SHMQ_ROLE_PRODUCER, kid_put, &dead);
	kid_expect_parked(k);
	/* It holds put_lock: a try fails, a timed put times out, but the
	 * get side is independent and keeps working. */
	ck_assert_int_eq(put_one_str(&R, "x", SHMQ_NOWAIT), SHMQ_EAGAIN);
	ck_assert_int_eq(put_one_str(&R, "x", 20), SHMQ_ETIMEDOUT);
	ck_assert_uint_eq(stat_now().messages, 1 + (pc->visible ? pc->n : 0));
	expect_msg(&R, "m1");
	/* Another process queues up for the lock behind the parked one. */
	struct kid *w = kid_op(SHMQ_ROLE_PRODUCER, kid_put, &waiter);
	sleep_us(20000);        /* only makes "waiting in the lock" likely */
	kid_kill(k);
	ring_client_remove(&R, k->idx, 1);
	/* The waiter inherits the lock (EOWNERDEAD), repairs, puts. */
	struct kres res = kid_result(w);
	ck_assert_int_eq(res.rc, SHMQ_OK);
	put_ok(&R, "m2");
	if (pc->visible) {
		for (size_t i = 0; i < pc->n; i++)
			expect_msg(&R, dead.msgs[i]);
	}
	expect_msg(&R, "w");
	expect_msg(&R, "m2");
	ck_assert_int_eq(get_one(&R, buf, sizeof(buf), &len, 0), SHMQ_EAGAIN);
	ck_assert_int_eq(ring_check(&R), SHMQ_OK);
	struct shmq_stat st = stat_now();
	ck_assert_uint_eq(st.total_put, 4 + (pc->visible ? pc->n : 0));
	ck_assert_uint_eq(st.total_put, st.total_got);
}
END_TEST

/* The same on the get side: a consumer killed before its commit leaves
 * the message(s) to the next consumer; killed after, they are gone and
 * the next consumer gets the following one. */
struct get_crash {
	int point;
	int consumed;
	size_t n;
};

static const struct get_crash get_crashes[] = {
	{ RING_HOOK_GET_LOCKED, 0, 1 },
	{ RING_HOOK_GET_COPIED, 0, 1 },
	{ RING_HOOK_GET_COMMITTED, 1, 1 },
	{ RING_HOOK_GET_COPIED, 0, 3 },
	{ RING_HOOK_GET_COMMITTED, 1, 3 },
};

START_TEST(test_crash_in_get)
{
	const struct get_crash *gc = &get_crashes[_i];
	struct ring_config c = seg_config(8, 64, 0, 0);
	struct op dead = OP(.timeout = SHMQ_FOREVER, .park = AT(gc->point),
			    .n = gc->n);
	struct op next = OP(.timeout = WAIT_MS);
	static const char *const msgs[] = { "m0", "m1", "m2", "m3", "m4" };
	char buf[64];
	size_t len;

	seg_create(&c);
	for (int i = 0; i < 4; i++)
		put_ok(&R, msgs[i]);
	struct kid *k = kid_op(SHMQ_ROLE_CONSUMER, kid_get, &dead);
	kid_expect_parked(k);
	/* It holds get_lock: other consumers wait, producers do not. */
	ck_assert_int_eq(get_one(&R, buf, sizeof(buf), &len, SHMQ_NOWAIT),
			 SHMQ_EAGAIN);
	ck_assert_int_eq(get_one(&R, buf, sizeof(buf), &len, 20),
			 SHMQ_ETIMEDOUT);
	put_ok(&R, "m4");
	struct kid *g = kid_op(SHMQ_ROLE_CONSUMER, kid_get, &next);
	sleep_us(20000);        /* only makes "waiting in the lock" likely */
	kid_kill(k);
	ring_client_remove(&R, k->idx, 1);
	size_t first = gc->consumed ? gc->n : 0;
	struct kres res = kid_result(g);
	ck_assert_int_eq(res.rc, SHMQ_OK);
	ck_assert_uint_eq(res.len, 2);
	ck_assert_mem_eq(res.data, msgs[first], 2);
	for (size_t i = first + 1; i < 5; i++)
		expect_msg(&R, msgs[i]);
	expect_empty(&R);
	ck_assert_int_eq(ring_check(&R), SHMQ_OK);
	struct shmq_stat st = stat_now();
	ck_assert_uint_eq(st.total_put, 5);
	ck_assert_uint_eq(st.total_got, 5);
}
END_TEST

/* A batch of large messages commits as it goes (every 32 KiB of
 * payload): the first messages of a batch reach consumers while its
 * caller is still copying the rest, and a caller killed mid-batch leaves
 * exactly what it had committed.  Three 20 KiB messages: the commit after
 * the second is the first of the batch. */
#define BIG 20000u

static void big_fill(uint8_t *m, unsigned tag)
{
	for (unsigned i = 0; i < BIG; i++)
		m[i] = (uint8_t)(tag * 31 + i * 7);
}

static int kid_put_big(struct kctx *c)
{
	static uint8_t m[3][BIG];
	struct iovec v[3];
	size_t done = 0;

	for (unsigned i = 0; i < 3; i++) {
		big_fill(m[i], i);
		v[i] = (struct iovec){ m[i], BIG };
	}
	park_arm(c, c->arg);
	CHILD_EQ(ring_put(&c->r, v, 3, &done, SHMQ_FOREVER), SHMQ_OK);
	return 0;
}

static int kid_get_big(struct kctx *c)
{
	static uint8_t buf[4 * BIG];
	struct iovec out[3];
	size_t got = 0;

	park_arm(c, c->arg);
	CHILD_EQ(ring_get(&c->r, buf, sizeof(buf), out, 3, &got,
			  SHMQ_FOREVER), SHMQ_OK);
	return 0;
}

static void expect_big(unsigned tag)
{
	static uint8_t want[BIG], buf[BIG];
	size_t len = 0;

	big_fill(want, tag);
	ck_assert_int_eq(get_one(&R, buf, sizeof(buf), &len, WAIT_MS),
			 SHMQ_OK);
	ck_assert_uint_eq(len, BIG);
	ck_assert_msg(memcmp(buf, want, BIG) == 0, "message %u garbled", tag);
}

/* The same batches run to the end, across their partial commits: the
 * counts add up, every byte arrives, and the producers' hint names the
 * tail afterwards.  A batch larger than the room commits what fits. */
START_TEST(test_large_batch_completes)
{
	static uint8_t m[3][BIG], buf[4 * BIG];
	struct iovec v[3], out[3];
	size_t done = 0, got = 0;

	struct ring_config c = seg_config(8, BIG, 0, 0);
	seg_create(&c);
	for (unsigned i = 0; i < 3; i++) {
		big_fill(m[i], 20 + i);
		v[i] = (struct iovec){ m[i], BIG };
	}
	for (int round = 0; round < 3; round++) {
		ck_assert_int_eq(ring_put(&R, v, 3, &done, SHMQ_NOWAIT),
				 SHMQ_OK);
		ck_assert_uint_eq(done, 3);
		ck_assert_uint_eq(R.hdr->wpos_ticket,
				  R.hdr->tail & SHMQ_TAIL_COUNT);
		ck_assert_int_eq(ring_get(&R, buf, sizeof(buf), out, 3, &got,
					  SHMQ_NOWAIT), SHMQ_OK);
		ck_assert_uint_eq(got, 3);
		for (unsigned i = 0; i < 3; i++) {
			ck_assert_uint_eq(out[i].iov_len, BIG);
			ck_assert(memcmp(out[i].iov_base, m[i], BIG) == 0);
		}
		expect_empty(&R);
		ck_assert_int_eq(ring_check(&R), SHMQ_OK);
	}
	ring_teardown();
	ring_setup();

	/* Room for two: the first two are committed, the third waits. */
	c = seg_config(2, BIG, 0, 0);
	seg_create(&c);
	ck_assert_int_eq(ring_put(&R, v, 3, &done, SHMQ_NOWAIT), SHMQ_EAGAIN);
	ck_assert_uint_eq(done, 2);
	ck_assert_int_eq(ring_get(&R, buf, sizeof(buf), out, 3, &got,
				  SHMQ_NOWAIT), SHMQ_OK);
	ck_assert_uint_eq(got, 2);
	ck_assert(memcmp(out[1].iov_base, m[1], BIG) == 0);
	ck_assert_int_eq(ring_check(&R), SHMQ_OK);
}
END_TEST

START_TEST(test_large_batch_commits_as_it_goes)
{
	struct ring_config c = seg_config(8, BIG, 0, 0);
	struct op at_commit = OP(.park = AT(RING_HOOK_PUT_COMMITTED));
	struct op at_take = OP(.park = AT(RING_HOOK_GET_COMMITTED));
	static uint8_t m[BIG];

	seg_create(&c);
	/* Put side: parked inside the batch, after its first commit. */
	struct kid *k = kid_op(SHMQ_ROLE_PRODUCER, kid_put_big, &at_commit);
	kid_expect_parked(k);
	ck_assert_uint_eq(stat_now().messages, 2);
	expect_big(0);
	expect_big(1);
	kid_kill(k);
	ring_client_remove(&R, k->idx, 1);
	expect_empty(&R);       /* the third was never committed */

	/* Get side: three queued, a consumer parked after taking two. */
	for (unsigned i = 0; i < 3; i++) {
		big_fill(m, 10 + i);
		ck_assert_int_eq(put_one(&R, m, BIG, SHMQ_NOWAIT), SHMQ_OK);
	}
	k = kid_op(SHMQ_ROLE_CONSUMER, kid_get_big, &at_take);
	kid_expect_parked(k);
	ck_assert_uint_eq(stat_now().messages, 1);
	kid_kill(k);
	ring_client_remove(&R, k->idx, 1);
	expect_big(12);
	expect_empty(&R);
	ck_assert_int_eq(ring_check(&R), SHMQ_OK);
	struct shmq_stat st = stat_now();
	ck_assert_uint_eq(st.total_put, 5);
	ck_assert_uint_eq(st.total_got, 5);
}
END_TEST

/* Regression: on a capacity-1 queue every new message lands in the one
 * slot that also records where the previous message ended.  A producer
 * killed after writing it but before committing must not leave the queue
 * unusable for everyone else. */
START_TEST(test_crash_put_capacity_one)
{
	struct ring_config c = seg_config(1, 64, 0, 0);
	struct op dead = OP(.timeout = SHMQ_FOREVER,
			    .park = AT(RING_HOOK_PUT_COPIED), .n = 1,
			    .msgs = { "dead" });

	seg_create(&c);
	put_ok(&R, "a");
	expect_msg(&R, "a");
	struct kid *k = kid_op(SHMQ_ROLE_PRODUCER, kid_put, &dead);
	kid_expect_parked(k);
	kid_kill(k);
	put_ok(&R, "b");
	expect_msg(&R, "b");
	put_ok(&R, "c");
	expect_msg(&R, "c");
	ck_assert_int_eq(ring_check(&R), SHMQ_OK);
}
END_TEST

/* Regression: a batch that fills an empty queue whose capacity is a
 * power of two writes, before its commit, the slot of the last committed
 * message; killed there, the producer must not break later puts. */
START_TEST(test_crash_batch_fills_queue)
{
	struct ring_config c = seg_config(4, 64, 0, 0);
	struct op dead = OP(.timeout = SHMQ_FOREVER,
			    .park = AT(RING_HOOK_PUT_COPIED), .n = 4,
			    .msgs = { "d0", "d1", "d2", "d3" });

	seg_create(&c);
	put_ok(&R, "a");
	expect_msg(&R, "a");
	struct kid *k = kid_op(SHMQ_ROLE_PRODUCER, kid_put, &dead);
	kid_expect_parked(k);
	kid_kill(k);
	put_ok(&R, "b");
	put_ok(&R, "c");
	expect_msg(&R, "b");
	expect_msg(&R, "c");
	expect_empty(&R);
	ck_assert_int_eq(ring_check(&R), SHMQ_OK);
}
END_TEST

/* Regression: producers trust a remembered head (head_hint) for room.  A
 * producer that had to look up the real head, wrote past the remembered
 * one's slot and died before its commit must not leave the next producer
 * reading that overwritten slot as corruption. */
START_TEST(test_crash_batch_stale_hint)
{
	struct ring_config c = seg_config(3, 64, 0, 0);
	struct op dead = OP(.timeout = SHMQ_FOREVER,
			    .park = AT(RING_HOOK_PUT_COPIED), .n = 3,
			    .msgs = { "d0", "d1", "d2" });

	seg_create(&c);
	put_ok(&R, "a");
	put_ok(&R, "b");
	expect_msg(&R, "a");
	expect_msg(&R, "b");
	struct kid *k = kid_op(SHMQ_ROLE_PRODUCER, kid_put, &dead);
	kid_expect_parked(k);
	kid_kill(k);
	put_ok(&R, "c");
	put_ok(&R, "d");
	expect_msg(&R, "c");
	expect_msg(&R, "d");
	expect_empty(&R);
	ck_assert_int_eq(ring_check(&R), SHMQ_OK);
}
END_TEST

/* close --now needs get_lock to count and drop; with the lock held by a
 * stalled consumer it reports EBUSY, and the next holder finishes the
 * discard after the stalled one is killed. */
START_TEST(test_crash_close_now_busy)
{
	struct ring_config c = seg_config(8, 64, 0, 0);
	struct op dead = OP(.timeout = SHMQ_FOREVER,
			    .park = AT(RING_HOOK_GET_COPIED));
	uint64_t disc = 99;
	char buf[64];
	size_t len;

	seg_create(&c);
	put_ok(&R, "a");
	put_ok(&R, "b");
	put_ok(&R, "c");
	struct kid *k = kid_op(SHMQ_ROLE_CONSUMER, kid_get, &dead);
	kid_expect_parked(k);
	ck_assert_int_eq(ring_close(&R, SHMQ_CLOSE_NOW, &disc), SHMQ_EBUSY);
	ck_assert_int_eq(put_one_str(&R, "late", 0), SHMQ_ECLOSED);
	ck_assert_int_eq(stat_now().state, SHMQ_STATE_CLOSED_NOW);
	kid_kill(k);
	ck_assert_int_eq(get_one(&R, buf, sizeof(buf), &len, 0), SHMQ_EOS);
	struct shmq_stat st = stat_now();
	ck_assert_uint_eq(st.messages, 0);
	ck_assert_uint_eq(st.discarded, 3);
	ck_assert_uint_eq(st.total_got, 0);
	ck_assert_int_eq(ring_check(&R), SHMQ_OK);
}
END_TEST

/* A consumer that holds get_lock past close --now's patience, then goes
 * on normally: the close still takes effect at the next get. */
static int go_pipe[2] = { -1, -1 };

static int kid_view_then_leave(struct kctx *c)
{
	const void *data;
	size_t len;
	char ch;

	if (ring_view(&c->r, &data, &len, SHMQ_FOREVER) != SHMQ_OK)
		return CHILD_FAIL;
	if (write(c->evt, "P", 1) != 1 || read(go_pipe[0], &ch, 1) != 1)
		return CHILD_FAIL;
	return ring_release(&c->r, 1) == SHMQ_OK ? 0 : CHILD_FAIL;
}

START_TEST(test_close_now_outwaited)
{
	struct ring_config c = seg_config(8, 64, 0, 0);
	uint64_t disc = 99;
	char buf[64];
	size_t len;

	seg_create(&c);
	put_ok(&R, "a");
	put_ok(&R, "b");
	put_ok(&R, "c");
	ck_assert_int_eq(pipe(go_pipe), 0);
	struct kid *k = kid_start(SHMQ_ROLE_CONSUMER, kid_view_then_leave,
				  NULL);
	kid_expect_parked(k);
	ck_assert_int_eq(ring_close(&R, SHMQ_CLOSE_NOW, &disc), SHMQ_EBUSY);
	ck_assert_int_eq(write(go_pipe[1], "g", 1), 1);
	kid_ok(k);
	/* Nothing more is delivered: the discard happens now. */
	ck_assert_int_eq(get_one(&R, buf, sizeof(buf), &len, 0), SHMQ_EOS);
	struct shmq_stat st = stat_now();
	ck_assert_uint_eq(st.messages, 0);
	ck_assert_uint_eq(st.discarded, 3);
	close(go_pipe[0]);
	close(go_pipe[1]);
}
END_TEST

/* SIGKILL at random instructions.  Producers and consumers run flat out
 * while the parent kills one at random every few hundred microseconds and
 * starts a replacement.  No message may be received twice or torn, each
 * consumer must see each producer in order, and afterwards the queue must
 * be consistent and every survivor must reach end of stream.  Which
 * instruction a kill hits is left to chance; the verdict is not. */
#define STORM_KILLS 60

START_TEST(test_crash_storm)
{
	struct ring_config c = seg_config(8, MP_MSG_MAX, 0, 0);
	static struct mp prod[MP_MAX_PROD];
	struct mp cons;
	struct kid *live[4];
	uint32_t nprod = 0;
	size_t table = (size_t)MP_MAX_PROD * MP_SEQ_MAX;

	seg_create(&c);
	uint8_t *seen = shared_alloc(table);
	cons = (struct mp){ .producers = MP_MAX_PROD, .seen = seen };
	for (int i = 0; i < 4; i++) {
		if (i < 2) {
			prod[nprod] = cons;
			prod[nprod].id = nprod;
			live[i] = kid_start(SHMQ_ROLE_PRODUCER, kid_produce,
					    &prod[nprod]);
			nprod++;
		} else {
			live[i] = kid_start(SHMQ_ROLE_CONSUMER, kid_consume,
					    &cons);
		}
	}
	for (int kill_no = 0; kill_no < STORM_KILLS; kill_no++) {
		sleep_us((long)(rnd() % 3000));
		int i = (int)(rnd() % 4);
		kid_kill(live[i]);
		ring_client_remove(&R, live[i]->idx, 1);
		if (i < 2) {
			ck_assert_uint_lt(nprod, MP_MAX_PROD);
			prod[nprod] = cons;
			prod[nprod].id = nprod;
			live[i] = kid_start(SHMQ_ROLE_PRODUCER, kid_produce,
					    &prod[nprod]);
			nprod++;
		} else {
			live[i] = kid_start(SHMQ_ROLE_CONSUMER, kid_consume,
					    &cons);
		}
	}
	/* The survivors were not harmed: producers stop on close, the
	 * consumers drain to end of stream. */
	ck_assert_int_eq(ring_close(&R, SHMQ_CLOSE_DRAIN, NULL), SHMQ_OK);
	for (int i = 0; i < 4; i++)
		kid_ok(live[i]);
	struct shmq_stat st = stat_now();
	ck_assert_uint_eq(st.messages, 0);
	ck_assert_uint_eq(st.total_got, st.total_put);
	ck_assert_uint_gt(st.total_put, 0);
	ck_assert_int_eq(ring_check(&R), SHMQ_OK);
	size_t dup = receipts_not(seen, table, 2);
	ck_assert_msg(dup == SIZE_MAX, "message %zu/%zu received %u times",
		      dup / MP_SEQ_MAX, dup % MP_SEQ_MAX, (unsigned)seen[dup]);
	uint64_t received = 0;
	for (size_t i = 0; i < table; i++)
		received += seen[i];
	/* Consumers killed between a commit and their record lose only
	 * the record: never more receipts than gets. */
	ck_assert_uint_le(received, st.total_got);
	ck_assert_uint_gt(received, 0);
	munmap((void *)seen, table);
}
END_TEST

/* ================================================================== */

static Suite *ring_crash_suite(void)
{
	Suite *s = suite_create("ring crash");
	TCase *tc;

	tc = ring_tcase(s, "crash", 20);
	tcase_add_loop_test(tc, test_crash_in_put, 0,
			    sizeof(put_crashes) / sizeof(put_crashes[0]));
	tcase_add_loop_test(tc, test_crash_in_get, 0,
			    sizeof(get_crashes) / sizeof(get_crashes[0]));
	tcase_add_test(tc, test_crash_put_capacity_one);
	tcase_add_test(tc, test_crash_batch_fills_queue);
	tcase_add_test(tc, test_crash_batch_stale_hint);
	tcase_add_test(tc, test_large_batch_commits_as_it_goes);
	tcase_add_test(tc, test_large_batch_completes);
	tcase_add_test(tc, test_crash_close_now_busy);
	tcase_add_test(tc, test_close_now_outwaited);
	tcase_add_test(tc, test_crash_storm);
	return s;
}

int main(void)
{
	return run_suite(ring_crash_suite(), "ring_crash");
}
