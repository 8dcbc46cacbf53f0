/*
 * check_ring_producers.c - the ring (common/ring.c): attachments,
 * statistics and the end of a stream when producers leave.
 *
 * Owns the bookkeeping ring.c keeps for the daemon: message and byte
 * counts, the attachment table (entries, generations, tokens that stop
 * binding once freed, counts rebuilt after damage), auto-close when the
 * last producer leaves (never when a consumer does, nor without the
 * flag), and the "producer lost" end of stream when one dies attached.
 * The test plays the daemon's part (ring_client_add/remove) itself.
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
/* Producers, consumers and stat                                      */

START_TEST(test_stat_counts)
{
	struct ring_config c = seg_config(8, 64, 0, 0);
	uint32_t ip, ic, ipc, gen;

	seg_create(&c);
	put_ok(&R, "aaaa");
	put_ok(&R, "bbbbbbbb");
	put_ok(&R, "");
	struct shmq_stat st = stat_now();
	ck_assert_uint_eq(st.messages, 3);
	ck_assert_uint_eq(st.bytes, 12);
	ck_assert_uint_eq(st.total_put, 3);
	ck_assert_uint_eq(st.total_got, 0);
	expect_msg(&R, "aaaa");
	st = stat_now();
	ck_assert_uint_eq(st.messages, 2);
	ck_assert_uint_eq(st.bytes, 8);
	ck_assert_uint_eq(st.total_got, 1);

	ck_assert_int_eq(ring_client_add(&R, 1001, 5, SHMQ_ROLE_PRODUCER, &ip,
					 &gen), SHMQ_OK);
	ck_assert_int_eq(ring_client_add(&R, 1002, 5, SHMQ_ROLE_CONSUMER, &ic,
					 &gen), SHMQ_OK);
	ck_assert_int_eq(ring_client_add(&R, 1003, 5, SHMQ_ROLE_PRODUCER |
					 SHMQ_ROLE_CONSUMER, &ipc, &gen),
			 SHMQ_OK);
	st = stat_now();
	ck_assert_uint_eq(st.producers, 2);
	ck_assert_uint_eq(st.consumers, 2);
	ring_client_remove(&R, ip, 0);
	ring_client_remove(&R, ic, 0);
	st = stat_now();
	ck_assert_uint_eq(st.producers, 1);
	ck_assert_uint_eq(st.consumers, 1);
	ck_assert_int_eq(st.state, SHMQ_STATE_OPEN);
	ck_assert_int_eq(st.producer_lost, 0);
	/* The counts can be rebuilt from the table after damage. */
	R.hdr->producers = 77;
	R.hdr->consumers = 0;
	ring_client_recount(&R);
	st = stat_now();
	ck_assert_uint_eq(st.producers, 1);
	ck_assert_uint_eq(st.consumers, 1);
}
END_TEST

START_TEST(test_client_table)
{
	struct ring_config c = seg_config(4, 64, 0, 0);
	uint32_t idx[5], gen[5], i2, g2;

	c.clients = 4;
	seg_create(&c);
	for (int i = 0; i < 4; i++) {
		ck_assert_int_eq(ring_client_add(&R, 2000 + (uint32_t)i, 0,
						 SHMQ_ROLE_CONSUMER, &idx[i],
						 &gen[i]), SHMQ_OK);
		ck_assert_uint_lt(idx[i], 4);
		ck_assert_uint_ne(gen[i], 0);
		for (int j = 0; j < i; j++) {
			ck_assert_uint_ne(idx[i], idx[j]);
			ck_assert_uint_ne(gen[i], gen[j]);
		}
	}
	ck_assert_int_eq(ring_client_add(&R, 3000, 0, SHMQ_ROLE_CONSUMER,
					 &idx[4], &gen[4]), SHMQ_ELIMIT);
	ck_assert_int_eq(ring_client_add(&R, 0, 0, SHMQ_ROLE_CONSUMER,
					 &idx[4], &gen[4]), SHMQ_EINVAL);

	struct ring mine = R;
	ck_assert_int_eq(ring_client_bind(&mine, idx[1], gen[1]), SHMQ_OK);
	ck_assert_ptr_eq(mine.self, &R.clients[idx[1]]);
	ck_assert_int_eq(ring_client_bind(&mine, 4, gen[1]), SHMQ_ECORRUPT);
	ck_assert_int_eq(ring_client_bind(&mine, UINT32_MAX, 1),
			 SHMQ_ECORRUPT);
	ck_assert_int_eq(ring_client_bind(&mine, idx[1], gen[2]),
			 SHMQ_ECORRUPT);
	ck_assert_int_eq(ring_client_bind(&mine, idx[1], 0), SHMQ_ECORRUPT);

	/* A freed entry is reused under a new generation: the old token
	 * no longer binds. */
	ring_client_remove(&R, idx[1], 0);
	ck_assert_uint_eq(stat_now().consumers, 3);
	ring_client_remove(&R, 99, 0);          /* out of range: ignored */
	ring_client_remove(&R, UINT32_MAX, 1);
	ck_assert_uint_eq(stat_now().consumers, 3);
	ck_assert_int_eq(ring_client_add(&R, 3001, 0, SHMQ_ROLE_CONSUMER, &i2,
					 &g2), SHMQ_OK);
	ck_assert_uint_eq(i2, idx[1]);
	ck_assert_uint_ne(g2, gen[1]);
	ck_assert_int_eq(ring_client_bind(&mine, idx[1], gen[1]),
			 SHMQ_ECORRUPT);
	ck_assert_int_eq(ring_client_bind(&mine, i2, g2), SHMQ_OK);
}
END_TEST

START_TEST(test_auto_close)
{
	struct ring_config c = seg_config(8, 64, 0, SHMQ_CFG_AUTO_CLOSE);
	struct op get = OP(.timeout = SHMQ_FOREVER);
	uint32_t p1, p2, ic, gen;
	char buf[64];
	size_t len;

	seg_create(&c);
	ck_assert_int_eq(ring_client_add(&R, 11, 0, SHMQ_ROLE_PRODUCER, &p1,
					 &gen), SHMQ_OK);
	ck_assert_int_eq(ring_client_add(&R, 12, 0, SHMQ_ROLE_PRODUCER, &p2,
					 &gen), SHMQ_OK);
	ck_assert_int_eq(ring_client_add(&R, 13, 0, SHMQ_ROLE_CONSUMER, &ic,
					 &gen), SHMQ_OK);
	put_ok(&R, "x");
	ring_client_remove(&R, p1, 0);
	ck_assert_int_eq(stat_now().state, SHMQ_STATE_OPEN);
	/* A consumer leaving never closes. */
	ring_client_remove(&R, ic, 0);
	ck_assert_int_eq(stat_now().state, SHMQ_STATE_OPEN);
	expect_msg(&R, "x");

	/* The last producer leaves while a consumer sleeps elsewhere. */
	struct kid *g = kid_op(SHMQ_ROLE_CONSUMER, kid_get, &get);
	EVENTUALLY(entry_wait(g->idx) == SHMQ_WAIT_GET);
	ring_client_remove(&R, p2, 0);
	struct shmq_stat st = stat_now();
	ck_assert_int_eq(st.state, SHMQ_STATE_CLOSED);
	ck_assert_int_eq(st.auto_closed, 1);
	ck_assert_int_eq(st.producer_lost, 0);
	ck_assert_int_gt(st.closed_ns, 0);
	ck_assert_uint_eq(st.producers, 0);
	ck_assert_int_eq(kid_result(g).rc, SHMQ_EOS);
	ck_assert_int_eq(put_one_str(&R, "late", 0), SHMQ_ECLOSED);
	ck_assert_int_eq(get_one(&R, buf, sizeof(buf), &len, 0), SHMQ_EOS);
}
END_TEST

START_TEST(test_no_auto_close_without_flag)
{
	struct ring_config c = seg_config(8, 64, 0, 0);
	uint32_t p, gen;

	seg_create(&c);
	ck_assert_int_eq(ring_client_add(&R, 11, 0, SHMQ_ROLE_PRODUCER, &p,
					 &gen), SHMQ_OK);
	ring_client_remove(&R, p, 0);
	ck_assert_int_eq(stat_now().state, SHMQ_STATE_OPEN);
	ck_assert_int_eq(stat_now().auto_closed, 0);
	put_ok(&R, "still open");

	/* On an auto-close queue closed by hand first, the last producer
	 * leaving does not claim the close. */
	c = seg_config(8, 64, 0, SHMQ_CFG_AUTO_CLOSE);
	seg_reformat(&c);
	ck_assert_int_eq(ring_client_add(&R, 11, 0, SHMQ_ROLE_PRODUCER, &p,
					 &gen), SHMQ_OK);
	ring_close(&R, SHMQ_CLOSE_DRAIN, NULL);
	ring_client_remove(&R, p, 0);
	ck_assert_int_eq(stat_now().state, SHMQ_STATE_CLOSED);
	ck_assert_int_eq(stat_now().auto_closed, 0);
}
END_TEST

/* Body of a producer that puts two messages and exits without
 * detaching: the "daemon" (the parent) notices and removes it. */
static int kid_put_two_and_vanish(struct kctx *c)
{
	CHILD_EQ(put_one_str(&c->r, "p1", 0), SHMQ_OK);
	CHILD_EQ(put_one_str(&c->r, "p2", 0), SHMQ_OK);
	return 0;
}

START_TEST(test_producer_died_eos_lost)
{
	struct ring_config c = seg_config(8, 64, 0, SHMQ_CFG_AUTO_CLOSE);
	struct op get = OP(.timeout = SHMQ_FOREVER);
	uint32_t ok, gen;
	char buf[64];
	size_t len;

	seg_create(&c);
	/* A producer that detaches cleanly... */
	ck_assert_int_eq(ring_client_add(&R, 11, 0, SHMQ_ROLE_PRODUCER, &ok,
					 &gen), SHMQ_OK);
	struct kid *p = kid_start(SHMQ_ROLE_PRODUCER, kid_put_two_and_vanish,
				  NULL);
	kid_ok(p);
	ring_client_remove(&R, ok, 0);
	ck_assert_int_eq(stat_now().state, SHMQ_STATE_OPEN);
	/* ...and one that died: the queue closes, marked lost. */
	ring_client_remove(&R, p->idx, 1);
	struct shmq_stat st = stat_now();
	ck_assert_int_eq(st.state, SHMQ_STATE_CLOSED);
	ck_assert_int_eq(st.producer_lost, 1);
	ck_assert_int_eq(st.auto_closed, 1);
	/* A consumer elsewhere drains, then learns the stream is cut. */
	struct kid *g = kid_op(SHMQ_ROLE_CONSUMER, kid_get, &get);
	struct kres res = kid_result(g);
	ck_assert_int_eq(res.rc, SHMQ_OK);
	ck_assert_mem_eq(res.data, "p1", 2);
	expect_msg(&R, "p2");
	ck_assert_int_eq(get_one(&R, buf, sizeof(buf), &len, 0),
			 SHMQ_EOS_LOST);
	g = kid_op(SHMQ_ROLE_CONSUMER, kid_get, &get);
	ck_assert_int_eq(kid_result(g).rc, SHMQ_EOS_LOST);

	/* Without auto-close the queue stays open until closed by hand. */
	c = seg_config(8, 64, 0, 0);
	seg_reformat(&c);
	ck_assert_int_eq(ring_client_add(&R, 11, 0, SHMQ_ROLE_PRODUCER, &ok,
					 &gen), SHMQ_OK);
	put_ok(&R, "m");
	ring_client_remove(&R, ok, 1);
	ck_assert_int_eq(stat_now().state, SHMQ_STATE_OPEN);
	ck_assert_int_eq(stat_now().producer_lost, 1);
	expect_msg(&R, "m");
	expect_empty(&R);
	ring_close(&R, SHMQ_CLOSE_DRAIN, NULL);
	ck_assert_int_eq(get_one(&R, buf, sizeof(buf), &len, 0),
			 SHMQ_EOS_LOST);
}
END_TEST

/* ================================================================== */

static Suite *ring_producers_suite(void)
{
	Suite *s = suite_create("ring producers");
	TCase *tc;

	tc = ring_tcase(s, "producers", 10);
	tcase_add_test(tc, test_stat_counts);
	tcase_add_test(tc, test_client_table);
	tcase_add_test(tc, test_auto_close);
	tcase_add_test(tc, test_no_auto_close_without_flag);
	tcase_add_test(tc, test_producer_died_eos_lost);
	return s;
}

int main(void)
{
	return run_suite(ring_producers_suite(), "ring_producers");
}
