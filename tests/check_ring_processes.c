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

#include "lib/checks.h"
#include "lib/clock.h"
#include "lib/ring_mp.h"
#include "lib/runner.h"

/* ================================================================== */
/* Many processes                                                     */

/* One consumer sees each producer's messages consecutively, in order. */
START_TEST(test_fifo_per_producer)
{
	mp_run(3, 1, 4000, 16, 0);
}
END_TEST

/* Several of each: every message is received exactly once, and each
 * consumer still sees each producer's messages in increasing order. */
START_TEST(test_many_producers_consumers)
{
	mp_run(3, 3, 5000, 32, 0);
}
END_TEST

/* Capacity 1, one producer, one consumer, no spinning: every message is
 * a hand-off in which one side goes to sleep and the other must wake it,
 * with no further traffic to cover for a lost wake-up (which would show
 * as a timeout in a child).  Which interleavings occur is chance; each
 * run tries many. */
START_TEST(test_ping_pong)
{
	mp_run(1, 1, 20000, 1, 1);
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
