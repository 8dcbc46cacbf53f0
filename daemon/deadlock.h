/*
 * deadlock.h - deadlocks of blocked processes: finding, naming, breaking.
 *
 * A blocking call records its wait in its attachment entry (see "Wait
 * records" in shmq_layout.h) and, once it has waited half the deadlock
 * timeout, tells shmqd (BLOCKED).  shmqd then looks at the wait records of
 * the queues it heard of every half timeout, for as long as any call there
 * is blocked, and works out who waits for whom (see "Deadlocks" in
 * shmq.h for the model).  Nothing runs while no call is blocked.
 */
#ifndef SHMQD_DEADLOCK_H
#define SHMQD_DEADLOCK_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "registry.h"
#include "shmq_wire.h"

struct event_base;

/* Detection with this timeout (ns; 0 = none: nothing is ever watched and
 * waiters never report). */
void deadlock_init(struct event_base *base, int64_t timeout_ns);
void deadlock_shutdown(void);
/* shmqd --deadlock-timeout, in ms (0 = off). */
uint32_t deadlock_timeout_ms(void);

/* A queue just created or adopted: tells its waiters how often to report,
 * forgets what an earlier daemon marked, and (adopted) watches it at once
 * if calls are blocked in it already: they may have told a daemon that is
 * gone. */
void deadlock_take(struct queue *q);
/* A call on q says it has been blocked for a report period. */
void deadlock_watch(struct queue *q);
/* Process `pid` is gone: the deadlocks it was in are over. */
void deadlock_gone(pid_t pid);

/* The deadlocks found at the last look: *rows (n of them, valid until the
 * next event), one per wait of a process in a deadlock, grouped by
 * `deadlock` (0, 1, ...) with the cycle's rows first, and (*queues)[i]
 * the id of the queue of row i, for who may see its name.  *more: rows
 * left off beyond SHMQ_WIRE_DL_MAX. */
size_t deadlock_rows(const struct shmq_wire_dl_wait **rows,
		     const uint64_t **queues, uint32_t *more);

#endif /* SHMQD_DEADLOCK_H */
