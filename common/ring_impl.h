/*
 * ring_impl.h - what the files of the queue core share with each other.
 *
 * The core is split by what each file owns: segment.c (geometry, format,
 * attach, checks, statistics), ring.c (the data path: put, get, close),
 * wait.c (spinning, sleeping and waking), clients.c (the attachment
 * table).  They share the atomics below, the checked slot reader and the
 * deadline type.  Nothing outside common/ includes this file: the rest of
 * the project uses ring.h.
 */
#ifndef SHMQ_RING_IMPL_H
#define SHMQ_RING_IMPL_H

#include <stdint.h>
#include <time.h>

#include "ring.h"

#define HOOK(point)                                                          \
	do {                                                                 \
		if (__builtin_expect(ring_test_hook != NULL, 0))             \
			ring_test_hook(point);                               \
	} while (0)

/* Single reads of shared memory: the compiler must neither repeat nor
 * tear them, or a value could change between its check and its use. */
#define READ_ONCE(x)      __atomic_load_n(&(x), __ATOMIC_RELAXED)
#define WRITE_ONCE(x, v)  __atomic_store_n(&(x), (v), __ATOMIC_RELAXED)
#define LOAD_ACQ(x)       __atomic_load_n(&(x), __ATOMIC_ACQUIRE)
#define LOAD_SC(x)        __atomic_load_n(&(x), __ATOMIC_SEQ_CST)

/* Internal status: the operation must wait for room or data. */
#define RING_WAIT 100
/* Internal status: return SHMQ_OK with the side's lock still held
 * (zero copy). */
#define RING_HOLD 101

enum side { PUT_SIDE, GET_SIDE };

static inline uint64_t align_up(uint64_t v, uint64_t a)
{
	return (v + a - 1) & ~(a - 1);
}

static inline uint64_t mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ------------------------------------------------------------------ */
/* Deadlines                                                          */

/* A caller's timeout, turned into an absolute CLOCK_MONOTONIC deadline the
 * first time something has to wait, so the fast path never reads a clock. */
struct timeout {
	int ms;                 /* SHMQ_FOREVER, SHMQ_NOWAIT or > 0 */
	int have;
	struct timespec at;
};

static inline void timeout_init(struct timeout *to, int ms)
{
	to->ms = ms < 0 ? SHMQ_FOREVER : ms;
	to->have = 0;
}

static inline void ns_to_ts(uint64_t ns, struct timespec *ts)
{
	ts->tv_sec = (time_t)(ns / 1000000000u);
	ts->tv_nsec = (long)(ns % 1000000000u);
}

static inline int ts_before(const struct timespec *a, const struct timespec *b)
{
	return a->tv_sec < b->tv_sec ||
	       (a->tv_sec == b->tv_sec && a->tv_nsec < b->tv_nsec);
}

/* The deadline for sleeping, or NULL for none. */
static inline const struct timespec *
timeout_deadline(struct timeout *to)
{
	if (to->ms == SHMQ_FOREVER)
		return NULL;
	if (!to->have) {
		ns_to_ts(mono_ns() + (uint64_t)to->ms * 1000000u, &to->at);
		to->have = 1;
	}
	return &to->at;
}

/* ------------------------------------------------------------------ */
/* Slots                                                              */

/* Reads the slot of `ticket` once and checks it.  A slot is trusted only
 * if it names its own ticket and its bytes lie inside the data ring. */
static inline __attribute__((always_inline)) int
read_slot(const struct ring *r, uint64_t ticket, struct shmq_slot *s)
{
	const struct shmq_slot *p = &r->slots[ticket & r->mask];

	s->ticket = READ_ONCE(p->ticket);
	s->off = READ_ONCE(p->off);
	s->bytes = READ_ONCE(p->bytes);
	s->pos = READ_ONCE(p->pos);
	s->len = READ_ONCE(p->len);
	if (s->ticket != ticket || s->len > r->max_msg ||
	    s->pos > r->data_size || s->pos % SHMQ_DATA_ALIGN != 0 ||
	    (s->len > SHMQ_INLINE_MAX && s->len > r->data_size - s->pos))
		return SHMQ_ECORRUPT;
	return SHMQ_OK;
}

/* Bytes a message takes in the data ring: none if it lives in its slot. */
static inline uint64_t ring_bytes(uint64_t len)
{
	return len > SHMQ_INLINE_MAX ? align_up(len, SHMQ_DATA_ALIGN) : 0;
}

/* Where the bytes of a message (checked by read_slot) are. */
static inline const uint8_t *slot_data(const struct ring *r, uint64_t ticket,
				       const struct shmq_slot *s)
{
	return s->len > SHMQ_INLINE_MAX ? r->data + s->pos
					: r->slots[ticket & r->mask].inline_data;
}

/* Could an operation on `side` make progress now?  (ring.c; wait.c asks
 * it before sleeping.) */
int ring_ready(struct ring *r, enum side side, uint64_t len);
/* Sets up the data path's per-handle tuning at attach (ring.c). */
void ring_tune(struct ring *r);

#endif /* SHMQ_RING_IMPL_H */
