/*
 * futex.h - the two futex operations shmq sleeps and wakes with.
 *
 * Queue futexes live in shared memory and are used by several processes,
 * so these are never FUTEX_PRIVATE.  Waits take an absolute CLOCK_MONOTONIC
 * deadline (FUTEX_WAIT_BITSET), so a loop that re-waits after a spurious
 * wake-up does not stretch the caller's timeout.
 */
#ifndef SHMQ_FUTEX_H
#define SHMQ_FUTEX_H

#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

/* Sleeps while *word == expect.  Returns 0 when woken (or the value had
 * already changed), else ETIMEDOUT or EINTR. */
static inline int futex_wait(uint32_t *word, uint32_t expect,
			     const struct timespec *deadline)
{
	long rc = syscall(SYS_futex, word, FUTEX_WAIT_BITSET, expect,
			  deadline, NULL, FUTEX_BITSET_MATCH_ANY);
	if (rc == 0)
		return 0;
	if (errno == ETIMEDOUT || errno == EINTR)
		return errno;
	return 0;   /* EAGAIN: the value changed before we slept */
}

static inline void futex_wake_all(uint32_t *word)
{
	syscall(SYS_futex, word, FUTEX_WAKE, INT_MAX, NULL, NULL, 0);
}

#endif /* SHMQ_FUTEX_H */
