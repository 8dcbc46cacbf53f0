/*
 * clock.h - the one monotonic clock and the one sleep of the project.
 *
 * Used by the queue core, the library, shmqd, the tools and the test
 * suites alike, so that every deadline in the project is measured on the
 * same clock (CLOCK_MONOTONIC: a wall-clock step must never stretch or cut
 * a wait) and every sleep behaves the same way across signals.  Inline:
 * the data path reads the clock inside its spin loops, and the tools that
 * use it link libshmq, which exports nothing of the core.  Nothing here
 * may block except the sleeps, or read anything but the clock.
 */
#ifndef SHMQ_CLOCK_H
#define SHMQ_CLOCK_H

#include <errno.h>
#include <stdint.h>
#include <time.h>

/* CLOCK_MONOTONIC in nanoseconds. */
static inline uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* CLOCK_MONOTONIC in milliseconds, for deadlines counted in them. */
static inline int64_t mono_ms(void)
{
	return (int64_t)(mono_ns() / 1000000u);
}

/* CLOCK_MONOTONIC in seconds, for reports and progress lines. */
static inline double mono_s(void)
{
	return (double)mono_ns() / 1e9;
}

/* Sleeps `ns` nanoseconds in all: a signal handler that runs meanwhile
 * does not cut the sleep short (callers that must notice a signal look at
 * their flag between sleeps). */
static inline void sleep_ns(uint64_t ns)
{
	struct timespec ts = { (time_t)(ns / 1000000000u),
			       (long)(ns % 1000000000u) };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

static inline void sleep_ms(long ms)
{
	if (ms > 0)
		sleep_ns((uint64_t)ms * 1000000u);
}

static inline void sleep_us(long us)
{
	if (us > 0)
		sleep_ns((uint64_t)us * 1000u);
}

#endif /* SHMQ_CLOCK_H */
