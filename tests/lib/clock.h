/*
 * clock.h - time in the test suites: clocks, sleeps, bounded polling.
 *
 * Owns every clock read and every sleep the suites make, on the project's
 * one clock (common/clock.h: mono_ns, sleep_ms, sleep_us, which sleep the
 * whole time across signals).  A sleep never decides a verdict:
 * handshakes (tests/lib/chan.h) carry what can be handed off, and
 * WAIT_UNTIL polls, with a bound, what offers no handshake (the daemon
 * noticing a death, a process falling asleep in put or get).  A sleep on
 * its own only ever makes a race likely.
 */
#ifndef SHMQ_TEST_CLOCK_H
#define SHMQ_TEST_CLOCK_H

#include <stdint.h>

/* The project's clock, by its path: "clock.h" names this file here. */
#include "../../common/clock.h"

/* How long a test waits for an event that should come at once. */
#define WAIT_MS 5000

/* CLOCK_MONOTONIC in milliseconds. */
static inline long now_ms(void)
{
	return (long)(mono_ns() / 1000000u);
}

int64_t now_real_ns(void);      /* CLOCK_REALTIME, as created_ns is */

/* Polls `cond` every millisecond for at most `ms`.  Evaluates to whether
 * `cond` came true.  No assertion: children may use it. */
#define WAIT_UNTIL(cond, ms)                                                 \
	({                                                                   \
		long until_ = now_ms() + (ms);                               \
		int ok_;                                                     \
		while (!(ok_ = !!(cond)) && now_ms() < until_)               \
			sleep_ms(1);                                         \
		ok_;                                                         \
	})

#endif /* SHMQ_TEST_CLOCK_H */
