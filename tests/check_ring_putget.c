/*
 * check_ring_putget.c - the ring (common/ring.c): format, attach, and one
 * message at a time.
 *
 * Owns what ring.c promises before batches and closes come in, as the
 * README and docs/ describe the operations: configurations planned or
 * refused, a segment formatted and attached (and unformatted memory
 * refused), FIFO order over many laps of the rings, trying and waiting on
 * a full or empty queue (another process waking the sleeper), timeouts,
 * the byte budget, messages too big, binary or empty, and a receive
 * buffer too small.
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
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "lib/checks.h"
#include "lib/clock.h"
#include "lib/ring_kid.h"
#include "lib/runner.h"

/* ================================================================== */
/* Configuration, format and attach                                   */

START_TEST(test_plan_rejects_bad_config)
{
	struct ring_config c = seg_config(8, 64, 0, 0);
	uint64_t size = 0;
	char longname[SHMQ_NAME_MAX + 2];

	ck_assert_int_eq(ring_plan(&c, &size), SHMQ_OK);
	ck_assert_uint_eq(size % 4096, 0);
	ck_assert_uint_gt(size, sizeof(struct shmq_seg_hdr));

	c.capacity = 0;
	ck_assert_int_eq(ring_plan(&c, &size), SHMQ_EINVAL);
	c.capacity = SHMQ_CAPACITY_MAX + 1;
	ck_assert_int_eq(ring_plan(&c, &size), SHMQ_EINVAL);
	c = seg_config(8, SHMQ_MSG_MAX + 1, 0, 0);
	ck_assert_int_eq(ring_plan(&c, &size), SHMQ_EINVAL);
	c = seg_config(8, 64, 0, 0);
	c.clients = 0;
	ck_assert_int_eq(ring_plan(&c, &size), SHMQ_EINVAL);
	/* A budget below one maximal message could never admit it. */
	c = seg_config(8, 64, 63, 0);
	ck_assert_int_eq(ring_plan(&c, &size), SHMQ_EINVAL);

	/* Formatting refuses a short segment and an over-long name. */
	c = seg_config(8, 64, 0, 0);
	ck_assert_int_eq(ring_plan(&c, &size), SHMQ_OK);
	void *mem = calloc(1, size);
	ck_assert_ptr_nonnull(mem);
	ck_assert_int_eq(ring_format(mem, size - 1, &c), SHMQ_EINVAL);
	memset(longname, 'n', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	c.name = longname;
	ck_assert_int_eq(ring_format(mem, size, &c), SHMQ_EINVAL);
	free(mem);
}
END_TEST

START_TEST(test_format_attach_stat)
{
	struct ring_config c = seg_config(5, 100, 1000, SHMQ_CFG_AUTO_CLOSE);
	struct timespec wall;
	struct ring r2;

	clock_gettime(CLOCK_REALTIME, &wall);
	int64_t t0 = (int64_t)wall.tv_sec * 1000000000 + wall.tv_nsec;
	seg_create(&c);
	struct shmq_stat st = stat_now();
	ck_assert_str_eq(st.name, "test-queue");
	ck_assert_uint_eq(st.capacity, 5);
	ck_assert_uint_eq(st.max_msg, 100);
	ck_assert_uint_eq(st.max_bytes, 1000);
	ck_assert_uint_eq(st.mode, 0640);
	ck_assert_uint_eq(st.uid, getuid());
	ck_assert_uint_eq(st.gid, getgid());
	ck_assert_uint_eq(st.flags, SHMQ_AUTO_CLOSE);
	ck_assert_uint_eq(st.messages, 0);
	ck_assert_uint_eq(st.bytes, 0);
	ck_assert_uint_eq(st.total_put, 0);
	ck_assert_uint_eq(st.total_got, 0);
	ck_assert_int_eq(st.state, SHMQ_STATE_OPEN);
	ck_assert_int_eq(st.closed_ns, 0);
	ck_assert_int_ge(st.created_ns, t0 - 1000000000);
	ck_assert_int_le(st.created_ns, t0 + 10 * 1000000000ll);
	ck_assert_int_eq(ring_check(&R), SHMQ_OK);

	/* The mapping must cover the whole segment. */
	ck_assert_int_eq(ring_attach(&r2, S.mem, S.size - 1), SHMQ_ECORRUPT);
	ck_assert_int_eq(ring_attach(&r2, S.mem, 16), SHMQ_ECORRUPT);
	ck_assert_int_eq(ring_attach(&r2, S.mem, S.size), SHMQ_OK);
	ck_assert_uint_eq(r2.capacity, 5);
	ck_assert_uint_eq(r2.max_msg, 100);

	/* Unformatted (zero) memory is not a queue. */
	void *zero = calloc(1, S.size);
	ck_assert_int_eq(ring_attach(&r2, zero, S.size), SHMQ_ECORRUPT);
	free(zero);
}
END_TEST

/* ================================================================== */
/* put and get                                                        */

START_TEST(test_put_get_fifo)
{
	struct ring_config c = seg_config(8, 64, 0, 0);
	char msg[32];

	seg_create(&c);
	/* Many rounds, so the slot and data rings wrap many times. */
	for (int round = 0; round < 200; round++) {
		int n = 1 + round % 8;
		for (int i = 0; i < n; i++) {
			snprintf(msg, sizeof(msg), "r%d-m%d-%.*s", round, i,
				 (round * 7 + i) % 20, "xxxxxxxxxxxxxxxxxxxx");
			put_ok(&R, msg);
		}
		ck_assert_uint_eq(stat_now().messages, (unsigned)n);
		for (int i = 0; i < n; i++) {
			snprintf(msg, sizeof(msg), "r%d-m%d-%.*s", round, i,
				 (round * 7 + i) % 20, "xxxxxxxxxxxxxxxxxxxx");
			expect_msg(&R, msg);
		}
		expect_empty(&R);
	}
	ck_assert_int_eq(ring_check(&R), SHMQ_OK);
}
END_TEST

START_TEST(test_nowait_full_and_empty)
{
	struct ring_config c = seg_config(4, 64, 0, 0);

	seg_create(&c);
	expect_empty(&R);
	for (int i = 0; i < 4; i++)
		put_ok(&R, "fill");
	/* Full: a try fails at once and queues nothing. */
	ck_assert_int_eq(put_one_str(&R, "over", SHMQ_NOWAIT), SHMQ_EAGAIN);
	struct shmq_stat st = stat_now();
	ck_assert_uint_eq(st.messages, 4);
	ck_assert_uint_eq(st.total_put, 4);
	expect_msg(&R, "fill");
	put_ok(&R, "last");
	for (int i = 0; i < 3; i++)
		expect_msg(&R, "fill");
	expect_msg(&R, "last");
	expect_empty(&R);
}
END_TEST

START_TEST(test_timeouts)
{
	struct ring_config c = seg_config(2, 64, 0, 0);
	char buf[64];
	size_t len;

	seg_create(&c);
	uint64_t t0 = mono_ns();
	ck_assert_int_eq(get_one(&R, buf, sizeof(buf), &len, 60),
			 SHMQ_ETIMEDOUT);
	uint64_t dt = mono_ns() - t0;
	ck_assert_uint_ge(dt, 60 * 1000000ull);
	ck_assert_uint_lt(dt, 3000 * 1000000ull);

	put_ok(&R, "a");
	put_ok(&R, "b");
	t0 = mono_ns();
	ck_assert_int_eq(put_one_str(&R, "c", 60), SHMQ_ETIMEDOUT);
	dt = mono_ns() - t0;
	ck_assert_uint_ge(dt, 60 * 1000000ull);
	ck_assert_uint_lt(dt, 3000 * 1000000ull);
	ck_assert_uint_eq(stat_now().messages, 2);
	expect_msg(&R, "a");
	expect_msg(&R, "b");
	expect_empty(&R);
}
END_TEST

/* A full queue blocks put until a consumer makes room. */
START_TEST(test_full_put_blocks)
{
	struct ring_config c = seg_config(2, 64, 0, 0);
	struct op op = OP(.timeout = SHMQ_FOREVER, .n = 1, .msgs = { "k" });

	seg_create(&c);
	put_ok(&R, "a");
	put_ok(&R, "b");
	struct kid *k = kid_op(SHMQ_ROLE_PRODUCER, kid_put, &op);
	/* Asleep in put, and it said so in its entry and the statistics. */
	EVENTUALLY(entry_wait(k->idx) == SHMQ_WAIT_PUT);
	ck_assert_uint_eq(stat_now().put_blocked, 1);
	kid_silent(k);
	ck_assert_uint_eq(stat_now().messages, 2);
	expect_msg(&R, "a");
	struct kres res = kid_result(k);
	ck_assert_int_eq(res.rc, SHMQ_OK);
	ck_assert_uint_eq(res.count, 1);
	ck_assert_uint_eq(stat_now().put_blocked, 0);
	expect_msg(&R, "b");
	expect_msg(&R, "k");
	expect_empty(&R);
}
END_TEST

/* An empty queue blocks get until a producer puts. */
START_TEST(test_empty_get_blocks)
{
	struct ring_config c = seg_config(2, 64, 0, 0);
	struct op op = OP(.timeout = SHMQ_FOREVER);

	seg_create(&c);
	struct kid *k = kid_op(SHMQ_ROLE_CONSUMER, kid_get, &op);
	EVENTUALLY(entry_wait(k->idx) == SHMQ_WAIT_GET);
	ck_assert_uint_eq(stat_now().get_blocked, 1);
	kid_silent(k);
	put_ok(&R, "wake");
	struct kres res = kid_result(k);
	ck_assert_int_eq(res.rc, SHMQ_OK);
	ck_assert_uint_eq(res.len, 4);
	ck_assert_mem_eq(res.data, "wake", 4);
	ck_assert_uint_eq(stat_now().get_blocked, 0);
	expect_empty(&R);
}
END_TEST

START_TEST(test_byte_budget)
{
	char m64[64], m40[40], m36[36];

	struct ring_config c = seg_config(16, 64, 100, 0);
	memset(m64, 'a', sizeof(m64));
	memset(m40, 'b', sizeof(m40));
	memset(m36, 'c', sizeof(m36));
	seg_create(&c);
	ck_assert_int_eq(put_one(&R, m64, 64, SHMQ_NOWAIT), SHMQ_OK);
	/* 64 + 40 > 100 although only 1 of 16 slots is used. */
	ck_assert_int_eq(put_one(&R, m40, 40, SHMQ_NOWAIT), SHMQ_EAGAIN);
	ck_assert_int_eq(put_one(&R, m40, 40, 30), SHMQ_ETIMEDOUT);
	ck_assert_uint_eq(stat_now().bytes, 64);
	ck_assert_int_eq(put_one(&R, m36, 36, SHMQ_NOWAIT), SHMQ_OK);
	/* Exactly at the budget; an empty message adds no bytes. */
	ck_assert_int_eq(put_one(&R, "", 0, SHMQ_NOWAIT), SHMQ_OK);
	ck_assert_int_eq(put_one(&R, "x", 1, SHMQ_NOWAIT), SHMQ_EAGAIN);
	struct shmq_stat st = stat_now();
	ck_assert_uint_eq(st.bytes, 100);
	ck_assert_uint_eq(st.messages, 3);

	char buf[64];
	size_t len;
	ck_assert_int_eq(get_one(&R, buf, sizeof(buf), &len, 0), SHMQ_OK);
	ck_assert_uint_eq(len, 64);
	ck_assert_int_eq(put_one(&R, m40, 40, SHMQ_NOWAIT), SHMQ_OK);
	ck_assert_uint_eq(stat_now().bytes, 76);
}
END_TEST

/* The budget, not the capacity, blocks a producer in another process. */
START_TEST(test_byte_budget_blocks)
{
	struct ring_config c = seg_config(16, 64, 100, 0);
	struct op op = OP(.timeout = SHMQ_FOREVER, .n = 1,
			  .msgs = { "0123456789012345678901234567890123456789" });
	char m64[64];
	char buf[64];
	size_t len;

	memset(m64, 'a', sizeof(m64));
	seg_create(&c);
	ck_assert_int_eq(put_one(&R, m64, 64, SHMQ_NOWAIT), SHMQ_OK);
	struct kid *k = kid_op(SHMQ_ROLE_PRODUCER, kid_put, &op);
	EVENTUALLY(entry_wait(k->idx) == SHMQ_WAIT_PUT);
	kid_silent(k);
	ck_assert_uint_eq(stat_now().messages, 1);
	ck_assert_int_eq(get_one(&R, buf, sizeof(buf), &len, 0), SHMQ_OK);
	struct kres res = kid_result(k);
	ck_assert_int_eq(res.rc, SHMQ_OK);
	expect_msg(&R, op.msgs[0]);
}
END_TEST

START_TEST(test_too_big)
{
	struct ring_config c = seg_config(4, 32, 0, 0);
	char big[33], max[32];

	memset(big, 'B', sizeof(big));
	memset(max, 'M', sizeof(max));
	seg_create(&c);
	ck_assert_int_eq(put_one(&R, big, 33, SHMQ_NOWAIT), SHMQ_E2BIG);
	ck_assert_int_eq(put_one(&R, big, 33, SHMQ_FOREVER), SHMQ_E2BIG);
	struct shmq_stat st = stat_now();
	ck_assert_uint_eq(st.messages, 0);
	ck_assert_uint_eq(st.total_put, 0);
	ck_assert_int_eq(put_one(&R, max, 32, SHMQ_NOWAIT), SHMQ_OK);
	/* Too big wins over full: waiting could never help it. */
	for (int i = 0; i < 3; i++)
		put_ok(&R, "f");
	ck_assert_int_eq(put_one(&R, big, 33, 10000), SHMQ_E2BIG);
	ck_assert_uint_eq(stat_now().messages, 4);

	char buf[64];
	size_t len;
	ck_assert_int_eq(get_one(&R, buf, sizeof(buf), &len, 0), SHMQ_OK);
	ck_assert_uint_eq(len, 32);
	ck_assert_mem_eq(buf, max, 32);
}
END_TEST

/* Includes a regression test: a get into no buffer at all (NULL, size 0,
 * which shmq_get() accepts) used to compute NULL + 0, which only a clang
 * --enable-sanitizers build (UBSan) reports. */
START_TEST(test_binary_and_empty_messages)
{
	struct ring_config c = seg_config(8, 256, 0, 0);
	uint8_t all[256], rev[256], buf[256];
	static const uint8_t nuls[] = { 'a', 0, 'b', 0, 0, 'c', 0 };
	size_t len;

	for (int i = 0; i < 256; i++) {
		all[i] = (uint8_t)i;
		rev[i] = (uint8_t)(255 - i);
	}
	seg_create(&c);
	for (int round = 0; round < 20; round++) {
		ck_assert_int_eq(put_one(&R, "", 0, 0), SHMQ_OK);
		ck_assert_int_eq(put_one(&R, all, 256, 0), SHMQ_OK);
		ck_assert_int_eq(put_one(&R, nuls, sizeof(nuls), 0), SHMQ_OK);
		ck_assert_int_eq(put_one(&R, "", 0, 0), SHMQ_OK);
		ck_assert_int_eq(put_one(&R, rev, 256, 0), SHMQ_OK);
		ck_assert_uint_eq(stat_now().bytes, 512 + sizeof(nuls));

		memset(buf, 0xee, sizeof(buf));
		ck_assert_int_eq(get_one(&R, buf, sizeof(buf), &len, 0), 0);
		ck_assert_uint_eq(len, 0);
		ck_assert_int_eq(get_one(&R, buf, sizeof(buf), &len, 0), 0);
		ck_assert_uint_eq(len, 256);
		ck_assert_mem_eq(buf, all, 256);
		ck_assert_int_eq(get_one(&R, buf, sizeof(buf), &len, 0), 0);
		ck_assert_uint_eq(len, sizeof(nuls));
		ck_assert_mem_eq(buf, nuls, sizeof(nuls));
		/* An empty message fits a zero-sized buffer. */
		ck_assert_int_eq(get_one(&R, buf, 0, &len, 0), 0);
		ck_assert_uint_eq(len, 0);
		ck_assert_int_eq(get_one(&R, buf, sizeof(buf), &len, 0), 0);
		ck_assert_uint_eq(len, 256);
		ck_assert_mem_eq(buf, rev, 256);
		/* ...and no buffer at all. */
		ck_assert_int_eq(put_one(&R, "", 0, 0), SHMQ_OK);
		ck_assert_int_eq(get_one(&R, NULL, 0, &len, 0), SHMQ_OK);
		ck_assert_uint_eq(len, 0);
	}
	expect_empty(&R);
	ck_assert_uint_eq(stat_now().total_got, 120);
}
END_TEST

START_TEST(test_emsgsize_keeps_message)
{
	struct ring_config c = seg_config(4, 200, 0, 0);
	char msg[100], buf[200];
	size_t len = 0;

	memset(msg, 'q', sizeof(msg));
	seg_create(&c);
	ck_assert_int_eq(put_one(&R, msg, 100, 0), SHMQ_OK);
	put_ok(&R, "next");
	ck_assert_int_eq(get_one(&R, buf, 10, &len, 0), SHMQ_EMSGSIZE);
	ck_assert_uint_eq(len, 100);
	ck_assert_int_eq(get_one(&R, buf, 99, &len, WAIT_MS), SHMQ_EMSGSIZE);
	ck_assert_uint_eq(len, 100);
	struct shmq_stat st = stat_now();
	ck_assert_uint_eq(st.messages, 2);
	ck_assert_uint_eq(st.total_got, 0);
	ck_assert_int_eq(get_one(&R, buf, 100, &len, 0), SHMQ_OK);
	ck_assert_uint_eq(len, 100);
	ck_assert_mem_eq(buf, msg, 100);
	expect_msg(&R, "next");
}
END_TEST

/* ================================================================== */

static Suite *ring_putget_suite(void)
{
	Suite *s = suite_create("ring putget");
	TCase *tc;

	tc = ring_tcase(s, "format", 5);
	tcase_add_test(tc, test_plan_rejects_bad_config);
	tcase_add_test(tc, test_format_attach_stat);

	tc = ring_tcase(s, "putget", 10);
	tcase_add_test(tc, test_put_get_fifo);
	tcase_add_test(tc, test_nowait_full_and_empty);
	tcase_add_test(tc, test_timeouts);
	tcase_add_test(tc, test_full_put_blocks);
	tcase_add_test(tc, test_empty_get_blocks);
	tcase_add_test(tc, test_byte_budget);
	tcase_add_test(tc, test_byte_budget_blocks);
	tcase_add_test(tc, test_too_big);
	tcase_add_test(tc, test_binary_and_empty_messages);
	tcase_add_test(tc, test_emsgsize_keeps_message);
	return s;
}

int main(void)
{
	return run_suite(ring_putget_suite(), "ring_putget");
}
