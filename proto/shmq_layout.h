/*
 * shmq_layout.h - the shared-memory layout of one queue segment.
 *
 * This is one of the two contracts between shmqd and libshmq (the other is
 * shmq_wire.h).  shmqd creates a segment and initialises it; every client
 * that opens the queue maps the same bytes and operates on them directly.
 * Bump SHMQ_LAYOUT_VERSION on any change to a structure, a constant or the
 * meaning of a field below; a segment of another version is refused.
 *
 * A segment is laid out as:
 *
 *   struct shmq_seg_hdr          header: identity, config, lock words, state
 *   struct shmq_slot[ring_slots] index ring, one entry per queued message
 *   struct shmq_client[clients]  attachment table, one entry per open handle
 *   uint8_t data[data_size]      data ring, message bytes
 *
 * Every offset and size is fixed at creation and repeated in the header so
 * that a reader can check it against the size of its mapping.
 *
 * How the queue stays consistent when a process dies at any instruction:
 *
 *  - Producers serialise on put_lock, consumers on get_lock (both robust,
 *    process-shared mutexes), so a producer and a consumer never wait for
 *    each other.  The put side owns `tail` and the entries and data it
 *    writes; the get side owns `head` and `discarded`.
 *  - A message is written (data, then its slot) before `tail` is advanced
 *    by a single atomic compare-and-swap: that store is the commit.  A
 *    producer that dies before it leaves an invisible, half-written message
 *    that the next producer overwrites.  (Each slot's `published` mark,
 *    written after the commit, is a hint for consumers, never the commit.)
 *  - A consumer copies a message out before it advances `head` with a
 *    single store: that store is the commit.  A consumer that dies before it
 *    leaves the message queued for the next consumer.
 *  - Everything else (queued bytes, free data space, totals) is derived from
 *    head, tail and the slots, so there is no second field to get out of
 *    step.  After EOWNERDEAD the next holder only has to validate.
 *  - close sets a bit in `tail` with one atomic OR: a producer's commit CAS
 *    fails once it is set, so nothing is committed after a close.
 *
 * Everything in a segment is untrusted: any process with the queue open can
 * write any byte.  Readers copy the immutable configuration once at attach
 * (after checking it against the mapping size) and check every index,
 * position and length they read afterwards before using it.
 */
#ifndef SHMQ_LAYOUT_H
#define SHMQ_LAYOUT_H

#include <assert.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#define SHMQ_LAYOUT_MAGIC   UINT64_C(0x31474553514d4853) /* "SHMQSEG1" */
#define SHMQ_LAYOUT_VERSION 6u

#define SHMQ_NAME_MAX       255u            /* bytes, no terminator counted */
#define SHMQ_CACHELINE      64u
#define SHMQ_DATA_ALIGN     16u             /* messages start 16-aligned */

/* Limits of the layout itself; the daemon may impose smaller ones. */
#define SHMQ_CAPACITY_MAX   (UINT32_C(1) << 24)
#define SHMQ_MSG_MAX        (UINT32_C(1) << 30)
#define SHMQ_CLIENTS_MAX    UINT32_C(65536)

/* `tail` word: low 62 bits count every message ever committed. */
#define SHMQ_TAIL_CLOSED    (UINT64_C(1) << 63)  /* no more puts */
#define SHMQ_TAIL_NOW       (UINT64_C(1) << 62)  /* closed immediately */
#define SHMQ_TAIL_COUNT     (SHMQ_TAIL_NOW - 1)
#define SHMQ_NO_DISCARD     UINT64_MAX

/* `config_flags`: fixed at creation. */
#define SHMQ_CFG_AUTO_CLOSE 0x1u  /* close when the last producer detaches */

/* `state_flags`: set by shmqd (and close), never cleared. */
#define SHMQ_ST_AUTO_CLOSED   0x1u  /* closed because producers went to zero */
#define SHMQ_ST_PRODUCER_LOST 0x2u  /* a producer died without detaching */

/* Futex words: bit 0 says "somebody sleeps here", the rest is an epoch. */
#define SHMQ_WAIT_SLEEPER   0x1u
#define SHMQ_WAIT_EPOCH     0x2u

/* A pthread mutex padded to its own cache line. */
union shmq_lock {
	pthread_mutex_t mutex;
	uint8_t pad[SHMQ_CACHELINE];
};

struct shmq_seg_hdr {
	/* --- identity and configuration: written once by shmqd ---------- */
	uint64_t magic;
	uint32_t version;
	uint32_t hdr_size;          /* sizeof(struct shmq_seg_hdr) */
	uint64_t seg_size;          /* bytes in the whole segment */
	uint64_t queue_id;          /* unique per daemon, names the segment */

	uint32_t capacity;          /* max queued messages, >= 1 */
	uint32_t ring_slots;        /* power of two >= capacity */
	uint32_t max_msg;           /* max message bytes */
	uint32_t clients;           /* entries in the attachment table */
	uint64_t max_bytes;         /* byte budget; 0 = none */
	uint64_t data_size;         /* bytes in the data ring */
	uint64_t slots_off;         /* offset of struct shmq_slot[ring_slots] */
	uint64_t clients_off;       /* offset of struct shmq_client[clients] */
	uint64_t data_off;          /* offset of the data ring */

	uint32_t config_flags;      /* SHMQ_CFG_* */
	uint32_t mode;              /* permission bits, 0777 mask */
	uint32_t uid;               /* owner */
	uint32_t gid;
	int64_t  created_ns;        /* CLOCK_REALTIME at creation */
	uint32_t name_len;
	char     name[SHMQ_NAME_MAX + 1];   /* NUL-terminated */

	/* --- put side: producers, under put_lock --------------------------- */
	_Alignas(SHMQ_CACHELINE) union shmq_lock put_lock;
	_Alignas(SHMQ_CACHELINE) uint64_t tail;   /* count | CLOSED | NOW */
	/* Producer-private hints (under put_lock), on their own line.
	 * head_hint: a head value seen earlier; it can only lag the real head,
	 * so it is safe to trust for "room".  wpos_*: where the message of
	 * ticket wpos_ticket goes (its slot's off, bytes and pos), written
	 * after each commit, so that a put need not read the slot before its
	 * own, a line consumers are reading.  Trusted only while wpos_ticket
	 * is the tail, never after a producer died holding put_lock. */
	_Alignas(SHMQ_CACHELINE) uint64_t head_hint;
	uint64_t wpos_ticket;
	uint64_t wpos_off;
	uint64_t wpos_bytes;
	uint64_t wpos_pos;

	/* --- get side: consumers, under get_lock --------------------------- */
	_Alignas(SHMQ_CACHELINE) union shmq_lock get_lock;
	_Alignas(SHMQ_CACHELINE) uint64_t head;   /* next ticket to take */
	/* head at the moment close --now discarded the rest, or
	 * SHMQ_NO_DISCARD: tail - discard_from messages were dropped. */
	uint64_t discard_from;
	/* Set by close --now before it sets its bit in `tail`, on the line
	 * consumers read anyway: a consumer that sees it looks at `tail` and
	 * finishes the discard itself, even if the closer died or gave up
	 * waiting for get_lock. */
	uint32_t now_pending;
	uint32_t pad2;
	/* Consumer-private hint (under get_lock): a tail count seen earlier. */
	_Alignas(SHMQ_CACHELINE) uint64_t tail_hint;

	/* --- wake-ups: each on its own line, written only around sleeping - */
	_Alignas(SHMQ_CACHELINE) uint32_t data_futex;   /* consumers sleep here */
	_Alignas(SHMQ_CACHELINE) uint32_t space_futex;  /* producers sleep here */

	/* --- bookkeeping: shmqd and rare events ----------------------------- */
	_Alignas(SHMQ_CACHELINE) uint32_t state_flags;  /* SHMQ_ST_* */
	uint32_t producers;         /* attached producers (shmqd writes) */
	uint32_t consumers;         /* attached consumers (shmqd writes) */
	uint32_t client_gen;        /* generation counter for client entries */
	uint32_t pad;
	int64_t  closed_ns;         /* CLOCK_REALTIME of the first close, or 0 */
};

/*
 * One queued message, one cache line.  `ticket` is the message's position
 * in the stream (its tail count); a slot whose ticket does not match the
 * index a reader expects is corrupt.  `off` is where the data ring stood
 * for it in the endless byte stream (wrap padding included), `pos` the
 * same modulo data_size; `bytes` is the sum of the lengths of all earlier
 * messages.  A message of at most SHMQ_INLINE_MAX bytes lives in `inline`
 * and takes no room in the data ring; a longer one lives at `pos`.
 *
 * `published` is set to the ticket after the commit.  It is only a hint:
 * a consumer that finds it equal to the ticket it wants knows the message
 * is committed without reading `tail`, so `tail` stays in the producer's
 * cache.  A producer killed between commit and publish leaves the hint
 * unset, and consumers then learn of the message from `tail` as always.
 */
#define SHMQ_INLINE_MAX     24u
#define SHMQ_UNPUBLISHED    UINT64_MAX

struct shmq_slot {
	uint64_t ticket;
	uint64_t published;
	uint64_t off;
	uint64_t bytes;
	uint32_t pos;
	uint32_t len;
	uint8_t  inline_data[SHMQ_INLINE_MAX];
};

/* Attachment table entry: one per open handle, written by shmqd except
 * `wait`, which the handle's own process sets while it sleeps.  The
 * "blocked in put/get" statistics count these marks, so an entry that
 * shmqd removes for a dead process can never leave a count behind. */
#define SHMQ_ROLE_PRODUCER  0x1u
#define SHMQ_ROLE_CONSUMER  0x2u
#define SHMQ_WAIT_NONE      0u
#define SHMQ_WAIT_PUT       1u
#define SHMQ_WAIT_GET       2u

/* `detached`: set by the handle's process when it detaches, before it
 * tells shmqd, so that a daemon that only learns of it later (it was down,
 * or the process exited right after) releases the entry as detached, not
 * as a producer lost. */
#define SHMQ_CLIENT_DETACHED 1u

struct shmq_client {
	uint32_t pid;               /* 0 = free entry */
	uint32_t role;              /* SHMQ_ROLE_* */
	uint32_t gen;               /* matches the handle's token */
	uint32_t wait;              /* SHMQ_WAIT_* */
	uint64_t start_time;        /* process start time, guards pid reuse */
	uint32_t detached;          /* SHMQ_CLIENT_DETACHED, set by the handle */
	uint32_t pad;
};

static_assert(sizeof(pthread_mutex_t) <= SHMQ_CACHELINE,
	      "pthread_mutex_t must fit one cache line");
static_assert(sizeof(union shmq_lock) == SHMQ_CACHELINE, "lock padding");
static_assert(sizeof(struct shmq_slot) == SHMQ_CACHELINE, "slot size");
static_assert(sizeof(struct shmq_client) == 32, "client entry size");
static_assert(offsetof(struct shmq_seg_hdr, name) == 116, "name offset");
static_assert(offsetof(struct shmq_seg_hdr, put_lock) == 384, "put side");
static_assert(offsetof(struct shmq_seg_hdr, tail) == 448, "tail");
static_assert(offsetof(struct shmq_seg_hdr, get_lock) == 576, "get side");
static_assert(offsetof(struct shmq_seg_hdr, head) == 640, "head");
static_assert(offsetof(struct shmq_seg_hdr, data_futex) == 768, "futexes");
static_assert(offsetof(struct shmq_seg_hdr, state_flags) == 896, "state");
static_assert(sizeof(struct shmq_seg_hdr) == 960, "header size");

#endif /* SHMQ_LAYOUT_H */
