/*
 * clock.c - time in the test suites (see clock.h).
 */
#define _GNU_SOURCE
#include <time.h>

#include "clock.h"

int64_t now_real_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}
