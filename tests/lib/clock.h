/*
 * clock.h - time in the test suites: clocks, sleeps, bounded polling.
 *
 * Owns every clock read and every sleep the suites make.  A sleep never
 * decides a verdict: handshakes (tests/lib/chan.h) carry what can be
 * handed off, and WAIT_UNTIL polls, with a bound, what offers no
 * handshake (the daemon noticing a death, a process falling asleep in put
 * or get).  A sleep on its own only ever makes a race likely.
 */
#ifndef SHMQ_TEST_CLOCK_H
#define SHMQ_TEST_CLOCK_H

#include <stdint.h>

/* How long a test waits for an event that should come at once. */
#define WAIT_MS 5000

long now_ms(void);              /* CLOCK_MONOTONIC */
uint64_t now_ns(void);          /* CLOCK_MONOTONIC */
int64_t now_real_ns(void);      /* CLOCK_REALTIME, as created_ns is */
void sleep_ms(long ms);
void sleep_us(long us);

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
