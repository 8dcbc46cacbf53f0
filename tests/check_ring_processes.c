/*
 * check_ring_processes.c - the ring (common/ring.c) between many
 * processes.
 *
 * Owns the exactly-once and in-order promises under load: producers and
 * consumers in their own processes, through their own mappings, with
 * batches and too-small buffers mixed in; every message received by
 * exactly one consumer, each producer's messages in order (consecutive
 * for a lone consumer), and hand-offs on a queue of one that must never
 * lose a wake-up.
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
#include <sys/mman.h>

#include "lib/checks.h"
#include "lib/clock.h"
#include "lib/ring_mp.h"
#include "lib/runner.h"

/* ================================================================== */
/* Many processes                                                     */

/* Runs `np` producers and `nc` consumers over one auto-close queue: the
 * parent plays the daemon, removing each producer as it exits, so the
 * queue closes after the last one and the consumers drain to EOS. */
static void run_producers_consumers(uint32_t np, uint32_t nc, uint32_t per,
				    uint32_t capacity, int nospin)
{
	struct ring_config c = seg_config(capacity, MP_MSG_MAX, 0,
					  SHMQ_CFG_AUTO_CLOSE);
	struct mp prod[MP_MAX_PROD], cons;
	struct kid *pk[MP_MAX_PROD], *ckids[16];
	size_t table = (size_t)np * MP_SEQ_MAX;

	ck_assert_uint_le(per, MP_SEQ_MAX);
	ck_assert_uint_le(nc, 16);
	seg_create(&c);
	uint8_t *seen = shared_alloc(table);
	cons = (struct mp){ .producers = np, .per_producer = per,
			    .strict = nc == 1, .nospin = nospin, .seen = seen };
	for (uint32_t i = 0; i < nc; i++)
		ckids[i] = kid_start(SHMQ_ROLE_CONSUMER, kid_consume, &cons);
	for (uint32_t i = 0; i < np; i++) {
		prod[i] = cons;
		prod[i].id = i;
		pk[i] = kid_start(SHMQ_ROLE_PRODUCER, kid_produce, &prod[i]);
	}
	for (uint32_t i = 0; i < np; i++) {
		kid_ok(pk[i]);
		ring_client_remove(&R, pk[i]->idx, 0);
	}
	ck_assert_int_eq(stat_now().state, SHMQ_STATE_CLOSED);
	for (uint32_t i = 0; i < nc; i++)
		kid_ok(ckids[i]);

	/* Exactly once: every message received by exactly one consumer. */
	for (uint32_t id = 0; id < np; id++) {
		size_t bad = receipts_not(seen + (size_t)id * MP_SEQ_MAX, per, 1);
		ck_assert_msg(bad == SIZE_MAX, "message %u/%zu received %u "
			      "times", id, bad,
			      (unsigned)seen[(size_t)id * MP_SEQ_MAX + bad]);
	}
	struct shmq_stat st = stat_now();
	ck_assert_uint_eq(st.total_put, (uint64_t)np * per);
	ck_assert_uint_eq(st.total_got, (uint64_t)np * per);
	ck_assert_uint_eq(st.messages, 0);
	ck_assert_int_eq(st.producer_lost, 0);
	ck_assert_int_eq(ring_check(&R), SHMQ_OK);
	munmap((void *)seen, table);
}

/* One consumer sees each producer's messages consecutively, in order. */
START_TEST(test_fifo_per_producer)
{
	run_producers_consumers(3, 1, 4000, 16, 0);
}
END_TEST

/* Several of each: every message is received exactly once, and each
 * consumer still sees each producer's messages in increasing order. */
START_TEST(test_many_producers_consumers)
{
	run_producers_consumers(3, 3, 5000, 32, 0);
}
END_TEST

/* Capacity 1, one producer, one consumer, no spinning: every message is
 * a hand-off in which one side goes to sleep and the other must wake it,
 * with no further traffic to cover for a lost wake-up (which would show
 * as a timeout in a child).  Which interleavings occur is chance; each
 * run tries many. */
START_TEST(test_ping_pong)
{
	run_producers_consumers(1, 1, 20000, 1, 1);
}
END_TEST

/* ================================================================== */

static Suite *ring_processes_suite(void)
{
	Suite *s = suite_create("ring processes");
	TCase *tc;

	tc = ring_tcase(s, "multiproc", 30);
	tcase_add_test(tc, test_fifo_per_producer);
	tcase_add_test(tc, test_many_producers_consumers);
	tcase_add_test(tc, test_ping_pong);
	return s;
}

int main(void)
{
	return run_suite(ring_processes_suite(), "ring_processes");
}
