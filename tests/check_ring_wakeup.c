/*
 * check_ring_wakeup.c - the ring (common/ring.c): sleepers are woken even
 * when a process dies around a sleep or a wake-up.
 *
 * Owns the wake-up side of the crash rules: a consumer killed asleep in
 * get (its sleeper bit and its sleep count left behind), a process killed
 * between announcing its sleep and sleeping, a woken consumer killed
 * holding the lock, and a producer killed between its commit and its
 * wake-up call: the other sleepers still wake, now and later, and the
 * daemon's removal of the dead entry repairs the statistics.
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
/* Deaths around sleeping and waking                                  */

/* A consumer killed while asleep in get (its "sleeper" bit still set in
 * the futex word, its sleep still counted) must not cost the other
 * sleepers their wake-ups, now or later; the daemon's removal of its
 * entry repairs the statistics. */
START_TEST(test_crash_asleep_in_get)
{
	struct ring_config c = seg_config(4, 64, 0, 0);
	struct op get = OP(.timeout = SHMQ_FOREVER);

	seg_create(&c);
	struct kid *a = kid_op(SHMQ_ROLE_CONSUMER, kid_get, &get);
	struct kid *b = kid_op(SHMQ_ROLE_CONSUMER, kid_get, &get);
	EVENTUALLY(entry_wait(a->idx) == SHMQ_WAIT_GET &&
		   entry_wait(b->idx) == SHMQ_WAIT_GET);
	kid_kill(a);
	ck_assert_uint_eq(stat_now().get_blocked, 2);   /* a's is stale */
	put_ok(&R, "x");
	struct kres res = kid_result(b);
	ck_assert_int_eq(res.rc, SHMQ_OK);
	ck_assert_mem_eq(res.data, "x", 1);
	ck_assert_uint_eq(stat_now().get_blocked, 1);
	ring_client_remove(&R, a->idx, 1);
	ck_assert_uint_eq(stat_now().get_blocked, 0);
	ck_assert_uint_eq(stat_now().consumers, 1);

	/* Later sleepers still wake. */
	struct kid *d = kid_op(SHMQ_ROLE_CONSUMER, kid_get, &get);
	EVENTUALLY(entry_wait(d->idx) == SHMQ_WAIT_GET);
	put_ok(&R, "y");
	res = kid_result(d);
	ck_assert_int_eq(res.rc, SHMQ_OK);
	ck_assert_mem_eq(res.data, "y", 1);
	expect_empty(&R);
}
END_TEST

/* Killed between announcing its sleep and sleeping (RING_HOOK_SLEEP), on
 * each side: the others still wake. */
START_TEST(test_crash_at_sleep_hook)
{
	struct ring_config c = seg_config(2, 64, 0, 0);
	struct op get_dead = OP(.timeout = SHMQ_FOREVER,
				.park = AT(RING_HOOK_SLEEP));
	struct op get = OP(.timeout = SHMQ_FOREVER);
	struct op put_dead = OP(.timeout = SHMQ_FOREVER,
				.park = AT(RING_HOOK_SLEEP), .n = 1,
				.msgs = { "dead" });
	struct op put = OP(.timeout = SHMQ_FOREVER, .n = 1,
			   .msgs = { "live" });

	seg_create(&c);
	struct kid *a = kid_op(SHMQ_ROLE_CONSUMER, kid_get, &get_dead);
	kid_expect_parked(a);
	kid_kill(a);
	ring_client_remove(&R, a->idx, 1);
	struct kid *b = kid_op(SHMQ_ROLE_CONSUMER, kid_get, &get);
	EVENTUALLY(entry_wait(b->idx) == SHMQ_WAIT_GET);
	put_ok(&R, "x");
	ck_assert_mem_eq(kid_result(b).data, "x", 1);

	put_ok(&R, "f1");
	put_ok(&R, "f2");
	a = kid_op(SHMQ_ROLE_PRODUCER, kid_put, &put_dead);
	kid_expect_parked(a);
	kid_kill(a);
	ring_client_remove(&R, a->idx, 1);
	b = kid_op(SHMQ_ROLE_PRODUCER, kid_put, &put);
	EVENTUALLY(entry_wait(b->idx) == SHMQ_WAIT_PUT);
	expect_msg(&R, "f1");
	ck_assert_int_eq(kid_result(b).rc, SHMQ_OK);
	expect_msg(&R, "f2");
	expect_msg(&R, "live");
	expect_empty(&R);
	ck_assert_uint_eq(stat_now().put_blocked, 0);
	ck_assert_uint_eq(stat_now().get_blocked, 0);
}
END_TEST

/* Two consumers asleep; a put wakes both; the first to take the lock is
 * killed holding it.  The other inherits the lock and the message. */
START_TEST(test_crash_woken_getter)
{
	struct ring_config c = seg_config(4, 64, 0, 0);
	struct op dead = OP(.timeout = SHMQ_FOREVER,
			    .park = AT(RING_HOOK_GET_LOCKED), .park_nth = 2);
	struct op get = OP(.timeout = SHMQ_FOREVER);

	seg_create(&c);
	struct kid *a = kid_op(SHMQ_ROLE_CONSUMER, kid_get, &dead);
	EVENTUALLY(entry_wait(a->idx) == SHMQ_WAIT_GET);
	struct kid *b = kid_op(SHMQ_ROLE_CONSUMER, kid_get, &get);
	EVENTUALLY(entry_wait(b->idx) == SHMQ_WAIT_GET);
	put_ok(&R, "only");
	/* a woke and parked with get_lock held, or b already took the
	 * message (a then parks on its next round of the lock). */
	kid_expect_parked(a);
	kid_kill(a);
	ring_client_remove(&R, a->idx, 1);
	struct kres res = kid_result(b);
	ck_assert_int_eq(res.rc, SHMQ_OK);
	ck_assert_mem_eq(res.data, "only", 4);
	expect_empty(&R);
}
END_TEST

/* A producer killed between its commit and its wake-up call must not
 * strand a consumer asleep on an empty queue: sleeps are capped, so the
 * sleeper looks again within about a second. */
START_TEST(test_crash_before_wakeup)
{
	struct ring_config c = seg_config(8, 64, 0, 0);
	struct op sleeper = OP(.timeout = SHMQ_FOREVER);
	struct op dead = OP(.timeout = SHMQ_FOREVER,
			    .park = AT(RING_HOOK_PUT_COMMITTED), .n = 1,
			    .msgs = { "stranded?" });

	seg_create(&c);
	struct kid *g = kid_op(SHMQ_ROLE_CONSUMER, kid_get, &sleeper);
	EVENTUALLY(entry_wait(g->idx) == SHMQ_WAIT_GET);
	struct kid *p = kid_op(SHMQ_ROLE_PRODUCER, kid_put, &dead);
	kid_expect_parked(p);           /* committed, nobody woken */
	kid_kill(p);
	/* No shmqd here to wake anyone on the producer's death. */
	struct kres res = kid_result(g);
	ck_assert_int_eq(res.rc, SHMQ_OK);
	ck_assert_mem_eq(res.data, "stranded?", 9);
}
END_TEST

/* ================================================================== */

static Suite *ring_wakeup_suite(void)
{
	Suite *s = suite_create("ring wakeup");
	TCase *tc;

	tc = ring_tcase(s, "wakeup", 20);
	tcase_add_test(tc, test_crash_asleep_in_get);
	tcase_add_test(tc, test_crash_at_sleep_hook);
	tcase_add_test(tc, test_crash_woken_getter);
	tcase_add_test(tc, test_crash_before_wakeup);
	return s;
}

int main(void)
{
	return run_suite(ring_wakeup_suite(), "ring_wakeup");
}
