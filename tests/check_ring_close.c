/*
 * check_ring_close.c - the ring (common/ring.c): closing a queue.
 *
 * Owns what closing promises: a drained close delivers what was queued
 * and then end of stream to every kind of call, every time; an immediate
 * close discards and counts the rest; closes repeat harmlessly and may be
 * made immediate later; and a close wakes putters (they fail "closed")
 * and getters (end of stream) asleep in other processes.
 *
 * Rules of every ring suite (tests/lib/ring_kid.h): processes hand off
 * through pipes and state they publish in the segment, never through
 * timing; every test is bounded (Check's timeout, children's alarm(),
 * timed reads); the segment has no name once formatted, and the fixture
 * reaps every child.  No daemon takes part.
 */
#define _GNU_SOURCE
#include <check.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "lib/checks.h"
#include "lib/clock.h"
#include "lib/ring_kid.h"
#include "lib/runner.h"

/* ================================================================== */
/* close                                                              */

START_TEST(test_close_drain_then_eos)
{
	struct ring_config c = seg_config(8, 32, 0, 0);
	char buf[64];
	size_t len, got;
	struct iovec out[4];
	uint64_t disc = 99;
	int rc, n = 0;

	ck_assert_int_gt(SHMQ_EOS, 0);
	ck_assert_int_gt(SHMQ_EOS_LOST, 0);
	ck_assert_int_ne(SHMQ_EOS, SHMQ_EOS_LOST);
	seg_create(&c);
	put_ok(&R, "one");
	put_ok(&R, "two");
	put_ok(&R, "three");
	put_ok(&R, "four");
	ck_assert_int_eq(ring_close(&R, SHMQ_CLOSE_DRAIN, &disc), SHMQ_OK);
	ck_assert_uint_eq(disc, 0);
	ck_assert_int_eq(put_one_str(&R, "late", SHMQ_FOREVER), SHMQ_ECLOSED);
	ck_assert_int_eq(put_one_str(&R, "late", 0), SHMQ_ECLOSED);
	struct shmq_stat st = stat_now();
	ck_assert_int_eq(st.state, SHMQ_STATE_CLOSED);
	ck_assert_int_gt(st.closed_ns, 0);
	ck_assert_uint_eq(st.messages, 4);

	/* Drain: the remaining messages, one and then a batch... */
	expect_msg(&R, "one");
	ck_assert_int_eq(ring_get(&R, buf, sizeof(buf), out, 4, &got, 0), 0);
	ck_assert_uint_eq(got, 3);
	ck_assert_mem_eq(out[2].iov_base, "four", 4);
	/* ...then end of stream, for every kind of call, every time. */
	ck_assert_int_eq(get_one(&R, buf, sizeof(buf), &len, SHMQ_FOREVER),
			 SHMQ_EOS);
	ck_assert_int_eq(get_one(&R, buf, sizeof(buf), &len, 0), SHMQ_EOS);
	ck_assert_int_eq(ring_get(&R, buf, sizeof(buf), out, 4, &got, 50),
			 SHMQ_EOS);
	ck_assert_uint_eq(got, 0);

	/* The iterate idiom stops on end of stream, not on an error. */
	seg_reformat(&c);
	for (int i = 0; i < 5; i++)
		put_ok(&R, "it");
	ring_close(&R, SHMQ_CLOSE_DRAIN, NULL);
	while ((rc = get_one(&R, buf, sizeof(buf), &len, WAIT_MS)) == SHMQ_OK)
		n++;
	ck_assert_int_eq(rc, SHMQ_EOS);
	ck_assert_int_eq(n, 5);
	st = stat_now();
	ck_assert_uint_eq(st.total_put, 5);
	ck_assert_uint_eq(st.total_got, 5);
	ck_assert_uint_eq(st.discarded, 0);
}
END_TEST

START_TEST(test_close_now_discards)
{
	struct ring_config c = seg_config(8, 32, 0, 0);
	uint64_t disc = 99;
	char buf[32];
	size_t len;

	seg_create(&c);
	put_ok(&R, "m0");
	put_ok(&R, "m1");
	put_ok(&R, "m2");
	put_ok(&R, "m3");
	put_ok(&R, "m4");
	expect_msg(&R, "m0");
	ck_assert_int_eq(ring_close(&R, SHMQ_CLOSE_NOW, &disc), SHMQ_OK);
	ck_assert_uint_eq(disc, 4);
	/* End of stream at once, even for a call that would wait. */
	ck_assert_int_eq(get_one(&R, buf, sizeof(buf), &len, SHMQ_FOREVER),
			 SHMQ_EOS);
	ck_assert_int_eq(put_one_str(&R, "late", 0), SHMQ_ECLOSED);
	struct shmq_stat st = stat_now();
	ck_assert_int_eq(st.state, SHMQ_STATE_CLOSED_NOW);
	ck_assert_uint_eq(st.discarded, 4);
	ck_assert_uint_eq(st.total_put, 5);
	ck_assert_uint_eq(st.total_got, 1);
	ck_assert_uint_eq(st.messages, 0);
	ck_assert_uint_eq(st.bytes, 0);
	ck_assert_int_eq(ring_check(&R), SHMQ_OK);
}
END_TEST

START_TEST(test_close_idempotent)
{
	struct ring_config c = seg_config(8, 32, 0, 0);
	uint64_t disc = 99;
	char buf[32];
	size_t len;

	seg_create(&c);
	put_ok(&R, "a");
	put_ok(&R, "b");
	put_ok(&R, "c");
	ck_assert_int_eq(ring_close(&R, SHMQ_CLOSE_DRAIN, &disc), SHMQ_OK);
	int64_t first = stat_now().closed_ns;
	ck_assert_int_gt(first, 0);
	ck_assert_int_eq(ring_close(&R, SHMQ_CLOSE_DRAIN, &disc), SHMQ_OK);
	ck_assert_uint_eq(disc, 0);
	ck_assert_int_eq(stat_now().closed_ns, first);
	ck_assert_int_eq(stat_now().state, SHMQ_STATE_CLOSED);
	ck_assert_uint_eq(stat_now().messages, 3);
	expect_msg(&R, "a");
	/* A drained close may still be made immediate: the rest goes. */
	ck_assert_int_eq(ring_close(&R, SHMQ_CLOSE_NOW, &disc), SHMQ_OK);
	ck_assert_uint_eq(disc, 2);
	ck_assert_int_eq(ring_close(&R, SHMQ_CLOSE_NOW, &disc), SHMQ_OK);
	ck_assert_uint_eq(disc, 0);
	ck_assert_int_eq(ring_close(&R, SHMQ_CLOSE_DRAIN, &disc), SHMQ_OK);
	ck_assert_int_eq(ring_close(&R, 7, &disc), SHMQ_EINVAL);
	struct shmq_stat st = stat_now();
	ck_assert_int_eq(st.state, SHMQ_STATE_CLOSED_NOW);
	ck_assert_uint_eq(st.discarded, 2);
	ck_assert_int_eq(st.closed_ns, first);
	ck_assert_int_eq(get_one(&R, buf, sizeof(buf), &len, 0), SHMQ_EOS);
}
END_TEST

/* Close wakes putters asleep in other processes; they fail "closed" and
 * the queue keeps exactly what it had. */
START_TEST(test_close_wakes_putters)
{
	struct ring_config c = seg_config(2, 32, 0, 0);
	struct op op = OP(.timeout = SHMQ_FOREVER, .n = 1, .msgs = { "x" });

	seg_create(&c);
	put_ok(&R, "a");
	put_ok(&R, "b");
	struct kid *k1 = kid_op(SHMQ_ROLE_PRODUCER, kid_put, &op);
	struct kid *k2 = kid_op(SHMQ_ROLE_PRODUCER, kid_put, &op);
	EVENTUALLY(entry_wait(k1->idx) == SHMQ_WAIT_PUT &&
		   entry_wait(k2->idx) == SHMQ_WAIT_PUT);
	ck_assert_uint_eq(stat_now().put_blocked, 2);
	ck_assert_int_eq(ring_close(&R, SHMQ_CLOSE_DRAIN, NULL), SHMQ_OK);
	ck_assert_int_eq(kid_result(k1).rc, SHMQ_ECLOSED);
	ck_assert_int_eq(kid_result(k2).rc, SHMQ_ECLOSED);
	ck_assert_uint_eq(stat_now().put_blocked, 0);
	expect_msg(&R, "a");
	expect_msg(&R, "b");
	char buf[8];
	size_t len;
	ck_assert_int_eq(get_one(&R, buf, sizeof(buf), &len, 0), SHMQ_EOS);
}
END_TEST

START_TEST(test_close_wakes_getters)
{
	struct ring_config c = seg_config(2, 32, 0, 0);
	struct op op = OP(.timeout = SHMQ_FOREVER);
	struct op batch = OP(.timeout = SHMQ_FOREVER, .n = 4);

	seg_create(&c);
	struct kid *k1 = kid_op(SHMQ_ROLE_CONSUMER, kid_get, &op);
	struct kid *k2 = kid_op(SHMQ_ROLE_CONSUMER, kid_get, &batch);
	EVENTUALLY(entry_wait(k1->idx) == SHMQ_WAIT_GET &&
		   entry_wait(k2->idx) == SHMQ_WAIT_GET);
	ck_assert_uint_eq(stat_now().get_blocked, 2);
	ck_assert_int_eq(ring_close(&R, SHMQ_CLOSE_DRAIN, NULL), SHMQ_OK);
	struct kres r1 = kid_result(k1), r2 = kid_result(k2);
	ck_assert_int_eq(r1.rc, SHMQ_EOS);
	ck_assert_int_eq(r2.rc, SHMQ_EOS);
	ck_assert_uint_eq(r1.count + r2.count, 0);
	ck_assert_uint_eq(stat_now().get_blocked, 0);
}
END_TEST

/* close --now wakes a putter on a full queue, reports the discarded
 * messages, and a consumer in another process sees end of stream. */
START_TEST(test_close_now_wakes_everyone)
{
	struct ring_config c = seg_config(3, 32, 0, 0);
	struct op put = OP(.timeout = SHMQ_FOREVER, .n = 1, .msgs = { "x" });
	struct op get = OP(.timeout = SHMQ_FOREVER);
	uint64_t disc = 0;

	seg_create(&c);
	put_ok(&R, "a");
	put_ok(&R, "b");
	put_ok(&R, "c");
	struct kid *p = kid_op(SHMQ_ROLE_PRODUCER, kid_put, &put);
	EVENTUALLY(entry_wait(p->idx) == SHMQ_WAIT_PUT);
	ck_assert_int_eq(ring_close(&R, SHMQ_CLOSE_NOW, &disc), SHMQ_OK);
	ck_assert_uint_eq(disc, 3);
	ck_assert_int_eq(kid_result(p).rc, SHMQ_ECLOSED);
	struct kid *g = kid_op(SHMQ_ROLE_CONSUMER, kid_get, &get);
	ck_assert_int_eq(kid_result(g).rc, SHMQ_EOS);
	ck_assert_uint_eq(stat_now().discarded, 3);

	/* And an immediate close of an empty queue wakes a sleeper. */
	seg_reformat(&c);
	g = kid_op(SHMQ_ROLE_CONSUMER, kid_get, &get);
	EVENTUALLY(entry_wait(g->idx) == SHMQ_WAIT_GET);
	ck_assert_int_eq(ring_close(&R, SHMQ_CLOSE_NOW, &disc), SHMQ_OK);
	ck_assert_uint_eq(disc, 0);
	ck_assert_int_eq(kid_result(g).rc, SHMQ_EOS);
}
END_TEST

/* A batch that has taken messages since its last commit when close
 * --now comes (the closer waits for its lock) stops there and commits
 * them: they count as taken, never also as discarded, and head never
 * moves back.  The batch commits as it goes once it has moved 32 KiB:
 * it parks at that first commit, the queue is closed meanwhile, then it
 * takes the next message and looks at `tail` (SHMQ_NOWAIT: at once). */
START_TEST(test_close_now_racing_batch)
{
	struct ring_config c = seg_config(8, 40000, 0, 0);
	static char big[33000];

	seg_create(&c);
	memset(big, 'x', sizeof(big));
	ck_assert_int_eq(put_one(&R, big, sizeof(big), 0), SHMQ_OK);
	put_ok(&R, "b");
	struct op get = OP(.n = 4, .timeout = SHMQ_NOWAIT,
			   .park = AT(RING_HOOK_GET_COPIED), .until_now = 1);
	struct kid *g = kid_op(SHMQ_ROLE_CONSUMER, kid_get, &get);
	kid_expect_parked(g);
	struct kid *closer = kid_start(0, kid_close_now, NULL);
	struct kres res = kid_result(g);
	ck_assert_int_eq(res.rc, SHMQ_OK);
	ck_assert_uint_eq(res.count, 2);
	res = kid_result(closer);
	ck_assert_int_eq(res.rc, SHMQ_OK);
	ck_assert_uint_eq(res.count, 0);
	struct shmq_stat st = stat_now();
	ck_assert_int_eq(st.state, SHMQ_STATE_CLOSED_NOW);
	ck_assert_uint_eq(st.total_got, 2);
	ck_assert_uint_eq(st.discarded, 0);
	ck_assert_uint_eq(R.hdr->head, 2);
	ck_assert_int_eq(ring_check(&R), SHMQ_OK);
}
END_TEST

/* ================================================================== */

static Suite *ring_close_suite(void)
{
	Suite *s = suite_create("ring close");
	TCase *tc;

	tc = ring_tcase(s, "close", 10);
	tcase_add_test(tc, test_close_drain_then_eos);
	tcase_add_test(tc, test_close_now_discards);
	tcase_add_test(tc, test_close_idempotent);
	tcase_add_test(tc, test_close_wakes_putters);
	tcase_add_test(tc, test_close_wakes_getters);
	tcase_add_test(tc, test_close_now_wakes_everyone);
	tcase_add_test(tc, test_close_now_racing_batch);
	return s;
}

int main(void)
{
	return run_suite(ring_close_suite(), "ring_close");
}
