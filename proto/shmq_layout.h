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
 *   struct shmq_lease[capacity]  lease table (acked queues only)
 *   uint8_t data[data_size]      data ring, message bytes
 *   uint8_t lease_data[]         one copy of each leased message, capacity x
 *                                lease_stride bytes (acked queues only)
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
 *  - On an acked queue a get moves the message out of the ring into a free
 *    lease slot (its bytes into that slot's lease_data), then advances
 *    `head`: that store is still the commit, and a lease slot counts only
 *    if its ticket is below head.  Every change of a lease slot is made
 *    under get_lock; the lease counters are derived from the slots and
 *    recounted after EOWNERDEAD.  shmqd never writes a lease slot: when it
 *    removes an attachment that holds leases (by its entry's count, which
 *    may overstate but never understates) it bumps `departures`, and the
 *    next get_lock holder returns the leases whose holder is gone.
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
#define SHMQ_LAYOUT_VERSION 14u

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
#define SHMQ_CFG_ACKED      0x2u  /* gets lease; messages leave on ack */
#define SHMQ_CFG_DEADLOCK_FAIL 0x4u /* shmqd breaks a deadlock by failing a
				       call blocked here (else it reports) */

/* `state_flags`: set by shmqd (and close), never cleared. */
#define SHMQ_ST_AUTO_CLOSED   0x1u  /* closed because producers went to zero */
#define SHMQ_ST_PRODUCER_LOST 0x2u  /* a producer died without detaching */
#define SHMQ_ST_DELETED       0x4u  /* deleted: its name is free (or
				       another queue's); handles still
				       attached see it here */

/* Returned slots an acked queue's header remembers, oldest first. */
#define SHMQ_RET_CACHE      64u

/* Futex words: bit 0 says "somebody sleeps here", bit 1 "somebody polls
 * here" (an attachment entry of this direction is armed, see struct
 * shmq_client), bit 2 "every sleeper here sleeps briefly and may be left
 * asleep for a while" (SHMQ_WAIT_BATCH, below), the rest is an epoch.
 *
 * SHMQ_WAIT_BATCH: set only with SHMQ_WAIT_SLEEPER, by the first sleeper
 * of an epoch, cleared by any sleeper that does not promise it.  Its
 * sleepers shared a CPU with the other side, and sleep at most
 * SHMQ_BATCH_SLEEP_NS at a time; a committer running on the CPU they last
 * ran on (put_cpu / get_cpu) may commit up to half the capacity before it
 * wakes them, and wakes them before it waits itself.  A hint like the
 * CPUs: a committer that ignores it only wakes them sooner. */
#define SHMQ_WAIT_SLEEPER   0x1u
#define SHMQ_WAIT_POLLER    0x2u
#define SHMQ_WAIT_BATCH     0x4u
#define SHMQ_WAIT_EPOCH     0x8u
#define SHMQ_BATCH_SLEEP_NS 200000u

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
	/* Where the other side runs: the CPU (+ 1; 0 unknown) of the last
	 * put and of the last get, written after a commit when it changed.
	 * A waiter spins only while the side it waits for may be running on
	 * another CPU; if that side last ran on the waiter's own CPU, it
	 * cannot run until the waiter gives the CPU up.  A hint: any value
	 * only changes how a waiter waits.  Each sits on the line its
	 * writers read at every commit anyway (wait_notify). */
	uint32_t put_cpu;
	_Alignas(SHMQ_CACHELINE) uint32_t space_futex;  /* producers sleep here */
	uint32_t get_cpu;

	/* --- bookkeeping: shmqd and rare events ----------------------------- */
	_Alignas(SHMQ_CACHELINE) uint32_t state_flags;  /* SHMQ_ST_* */
	uint32_t producers;         /* attached producers (shmqd writes) */
	uint32_t consumers;         /* attached consumers (shmqd writes) */
	uint32_t client_gen;        /* generation counter for client entries */
	/* 1 + the highest attachment index that ever armed a descriptor (it
	 * only grows): a wake-up looks at no entry beyond it. */
	uint32_t poll_hi;
	/* The last arming value handed out (see struct shmq_client): every
	 * arming on the queue takes the next one, so that no two armings a
	 * waker could confuse share one. */
	uint32_t arm_seq;
	int64_t  closed_ns;         /* CLOCK_REALTIME of the first close, or 0 */
	/* The network namespace shmqd runs in (the inode of its
	 * /proc/self/ns/net), written at creation and adoption, or 0 if it
	 * could not tell.  Its wake-ups cannot reach a descriptor bound in
	 * another namespace, so shmq_fd refuses to make one there. */
	uint64_t daemon_netns;

	/* --- acked queues: configuration, written once by shmqd ----------- */
	_Alignas(SHMQ_CACHELINE) uint32_t lease_timeout_ms; /* 0 = none */
	uint32_t max_deliveries;    /* 0 = unlimited */
	uint64_t leases_off;        /* struct shmq_lease[capacity], or 0 */
	uint64_t lease_data_off;    /* capacity x lease_stride bytes, or 0 */
	uint32_t lease_stride;      /* bytes kept per lease slot */
	uint32_t dlq_len;
	/* The dead-letter queue's name ("" = none).  Informational: shmqd
	 * decides where dead letters go from its own record. */
	char     dlq[SHMQ_NAME_MAX + 1];

	/* --- acked queues: what producers read (get_lock holders write) ---- */
	_Alignas(SHMQ_CACHELINE) uint32_t leased;  /* lease slots in use */
	uint32_t pad3;
	uint64_t lease_bytes;       /* bytes of the messages they hold */

	/* --- acked queues: consumers' bookkeeping, under get_lock ---------- */
	_Alignas(SHMQ_CACHELINE) uint32_t returned; /* slots waiting for
						       redelivery */
	uint32_t departures_seen;   /* `departures` at the last sweep */
	int64_t  next_deadline;     /* earliest lease deadline (CLOCK_MONOTONIC
				       ns), INT64_MAX for none */
	uint32_t free_hint;         /* where to look for a free slot first */
	uint32_t dead;              /* slots waiting for the dead-letter queue
				       (a hint: may overstate) */
	uint64_t acked;             /* totals: settled by an ack, */
	uint64_t dead_lettered;     /* moved to the dead-letter queue, */
	uint64_t dropped;           /* dropped after max_deliveries */
	uint64_t lease_discarded;   /* returned (or waiting for the
				       dead-letter queue), then dropped by
				       close --now */

	/* --- acked queues: the next returned slots, under get_lock -------- */
	/* ret_slot[ret_pos..ret_n) are lease slots, oldest ticket first,
	 * and every returned slot whose ticket is below ret_bound is among
	 * them: a redelivery takes the next one instead of looking at every
	 * slot for the oldest.  A hint, checked before use and rebuilt by
	 * every sweep; ret_n 0 means "look". */
	_Alignas(SHMQ_CACHELINE) uint32_t ret_n;
	uint32_t ret_pos;
	uint64_t ret_bound;
	uint32_t ret_slot[SHMQ_RET_CACHE];

	/* --- written by shmqd without a lock ------------------------------- */
	/* Bumped whenever an attachment entry that holds leases (its
	 * `leases` is not 0) is removed or marks itself detached: those
	 * leases are returned by the next get. */
	_Alignas(SHMQ_CACHELINE) uint32_t departures;
	uint32_t pad5;
	/* Deadlock detection (see "Wait records" below).  dl_report_ms: the
	 * report period, in ms (half shmqd's deadlock timeout; 0: shmqd
	 * looks for no deadlocks): a call that has slept that long tells
	 * shmqd that it is blocked, unless shmqd has seen its wait already
	 * and still watches the queue, and until then sleeps no longer at a
	 * time.  deadlocked: SHMQ_DL_*, set while shmqd finds waiters on
	 * this queue deadlocked, cleared when it no longer does.
	 * dl_watch_ns: CLOCK_MONOTONIC ns until which shmqd samples this
	 * queue's wait records anyway.  dl_seen_ns: when it last did: a wait
	 * that began well before then (half a period) was seen. */
	uint32_t dl_report_ms;
	uint32_t deadlocked;
	int64_t  dl_watch_ns;
	int64_t  dl_seen_ns;
};

#define SHMQ_DL_WAITERS     0x1u  /* some waiter here is deadlocked */

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
 * `wait`, which the handle's own process sets while it sleeps, the poll
 * fields and wait records below, and on an acked queue `leases` and
 * `tally`, which get_lock holders keep.  The "blocked in put/get"
 * statistics count the `wait` marks, so an entry that shmqd removes for a
 * dead process can never leave a count behind.
 *
 * Pollable descriptors.  A handle that asked for one (shmq_fd) owns, per
 * direction, an AF_UNIX datagram socket bound in the abstract namespace
 * under a name derived from the queue's id (the handle's own copy, from
 * the daemon), the entry's index and gen, the direction's `poll_nonce`
 * (32 random bits of its own, so that one socket's name, which anybody
 * can read in /proc/net/unix, says nothing of the other's) and the
 * direction (see common/poll.c).  A non-blocking call that finds nothing to do
 * arms it: it writes the next nonzero value of the header's `arm_seq` to
 * armed[direction] (0 put, 1 get), then sets SHMQ_WAIT_POLLER in that
 * direction's futex word, always bumping the epoch, then looks again.
 * Whoever wakes that direction and finds the bit set sends one datagram
 * to each armed entry's socket and clears each entry's armed value that
 * has not changed since it read it, then clears the bit, unless the word
 * changed meanwhile (somebody armed) or a send failed for want of a
 * socket: the bit then stays, and the next waker sends.  Send first,
 * clear after: a waker stopped or killed at any point leaves the entry
 * armed and the bit set.  Arming values are unique per queue (until
 * arm_seq wraps), so a waker that read an entry's value and was delayed
 * can never clear the arming of a later handle on the same entry.  A wake-up that every
 * sleeper must see (close, a death, adoption) sends to every armed entry
 * whatever the bit says.  Since the name is computed, never read, a
 * damaged entry can only direct wake-ups at sockets of this queue's
 * prefix.
 *
 * Wait records, one per direction ([0] put, [1] get), for shmqd's
 * deadlock detection.  A blocking call that goes to sleep for the first
 * time (a wait) raises `since` to the CLOCK_MONOTONIC time it began
 * sleeping, takes the next number of `seq` (seq + 1: its own, never 0,
 * never reused on this entry), if it has a timeout counts itself in
 * `timed`, and then adds 1 to `threads` (a handle may be shared by
 * threads); when the call returns, however it returns, it takes its 1
 * back, then its count in `timed`, so the record covers its later spins
 * and sleeps alike.  A call a binding makes of slices (shmq_wait_continue:
 * several calls with short timeouts) is one wait: each slice raises
 * `since` to the call's start, counts the call's deadline (or none) in
 * `timed`, and keeps the call's number while `seq` still holds it (the
 * same wait, so a victim word naming it still means it); between slices
 * it is not counted, as a call that returned.  No field means anything
 * new: shmqd reads a sliced call as one long call.  `since` is thus the start of the most recent wait,
 * and `seq` its number: every thread counted has waited at least since
 * then.  `timed`: the number of counted waits with a timeout (low 16
 * bits; 0xffff: too many to count, and then as if they ended at once)
 * and the earliest of their deadlines (CLOCK_MONOTONIC ns, rounded down
 * to a multiple of 2^16, in the rest; it only falls while any is
 * counted, so it is never later than the earliest).  A thread cannot die
 * alone: when its process dies, shmqd removes the entry, records and
 * all.  `nested`: a wait made by a thread already counted in a wait (a
 * blocking call from a signal handler that interrupted one) counts
 * itself there too (before `threads`, and leaves it after): while any
 * does, the counts of threads do not add up, and shmqd takes the process
 * for running.  `victim`: shmqd writes there the number of the wait it chose to
 * fail (policy SHMQ_CFG_DEADLOCK_FAIL); only the thread whose own wait
 * has that number claims it, with a CAS to 0, and returns SHMQ_EDEADLK.
 * A wait that ends otherwise clears a victim word naming it, and shmqd
 * takes back (CAS to 0) a victim nobody claimed within a look: a stale
 * value can never match another wait. */
#define SHMQ_ROLE_PRODUCER  0x1u
#define SHMQ_ROLE_CONSUMER  0x2u
/* With SHMQ_ROLE_PRODUCER: a relay (SHMQ_RELAY, and the dead-letter
 * handles).  Not counted in `producers`: its detach or death neither
 * auto-closes the queue nor marks a producer lost. */
#define SHMQ_ROLE_RELAY     0x4u
#define SHMQ_WAIT_NONE      0u
#define SHMQ_WAIT_PUT       1u
#define SHMQ_WAIT_GET       2u

/* `detached`: set by the handle's process when it detaches, before it
 * tells shmqd, so that a daemon that only learns of it later (it was down,
 * or the process exited right after) releases the entry as detached, not
 * as a producer lost. */
#define SHMQ_CLIENT_DETACHED 1u

#define SHMQ_TIMED_COUNT    UINT64_C(0xffff)
#define SHMQ_TIMED_SHIFT    16

struct shmq_wait_rec {
	uint32_t threads;           /* threads blocked in this direction */
	uint32_t nested;            /* of them, waits of a thread that was
				       counted already (a call from a signal
				       handler that interrupted another) */
	int64_t  since;             /* CLOCK_MONOTONIC ns: latest wait's start */
	uint64_t seq;               /* the latest wait's number */
	uint64_t victim;            /* shmqd: fail the wait of this number */
	uint64_t timed;             /* deadline >> 16 << 16 | timed waits */
};

struct shmq_client {
	uint32_t pid;               /* 0 = free entry */
	uint32_t role;              /* SHMQ_ROLE_* */
	uint32_t gen;               /* matches the handle's token */
	uint32_t wait;              /* SHMQ_WAIT_* */
	uint64_t start_time;        /* process start time, guards pid reuse */
	uint32_t detached;          /* SHMQ_CLIENT_DETACHED, set by the handle */
	/* Acked queues: lease slots this entry holds, written under
	 * get_lock (raised before a slot is leased to it, lowered after it
	 * is freed or returned: it may overstate, never understate) and
	 * recounted by every sweep; 0 from shmqd at add.  A departure
	 * matters to the getters only if it is not 0. */
	uint32_t leases;
	uint32_t poll_nonce[2];     /* [0] put, [1] get: the random part of
				       that socket's name, 0 before one */
	uint32_t armed[2];          /* [0] put, [1] get: 0, or an arming */
	struct shmq_wait_rec waits[2];  /* [0] put, [1] get */
	uint32_t tally;             /* a sweep's count, under get_lock */
	uint32_t pad;
};

/*
 * One lease slot of an acked queue, one cache line.  `state` and `epoch`
 * change together under get_lock; the epoch names one lease, so that an
 * ack from a holder whose lease ended (and the slot then went to someone
 * else) is refused instead of removing the wrong message.  A slot is in
 * use only if its ticket is below head: a getter killed before its commit
 * leaves a slot that the next get_lock holder frees (see repair).
 * `state` and `deliveries` are one aligned 8-byte word, written by one
 * store: a redelivery commits its count with its state, so a getter
 * killed just before that store leaves the count as it was, and one
 * killed just after leaves it raised.
 */
#define SHMQ_LEASE_FREE     0u
#define SHMQ_LEASE_LEASED   1u  /* held by `holder` until the deadline */
#define SHMQ_LEASE_RETURNED 2u  /* waiting for redelivery */
#define SHMQ_LEASE_DEAD     3u  /* waiting for the dead-letter queue;
				   deadline = its next try */
#define SHMQ_NO_DEADLINE    INT64_MAX

struct shmq_lease {
	uint32_t state;             /* SHMQ_LEASE_* */
	uint32_t deliveries;        /* 1 the first time; stored with state */
	uint64_t ticket;            /* the message's position in the stream */
	uint32_t holder;            /* attachment index of the holder */
	uint32_t holder_gen;        /* that entry's generation when leased */
	uint32_t len;               /* message bytes, in lease_data */
	uint32_t epoch;             /* bumped at every change of state */
	int64_t  deadline;          /* CLOCK_MONOTONIC ns, or SHMQ_NO_DEADLINE */
	int64_t  since;             /* CLOCK_MONOTONIC ns of this delivery */
	uint8_t  pad[16];
};

static_assert(sizeof(pthread_mutex_t) <= SHMQ_CACHELINE,
	      "pthread_mutex_t must fit one cache line");
static_assert(sizeof(union shmq_lock) == SHMQ_CACHELINE, "lock padding");
static_assert(sizeof(struct shmq_slot) == SHMQ_CACHELINE, "slot size");
static_assert(sizeof(struct shmq_wait_rec) == 40, "wait record size");
static_assert(sizeof(struct shmq_client) == 136, "client entry size");
static_assert(offsetof(struct shmq_seg_hdr, name) == 116, "name offset");
static_assert(offsetof(struct shmq_seg_hdr, put_lock) == 384, "put side");
static_assert(offsetof(struct shmq_seg_hdr, tail) == 448, "tail");
static_assert(offsetof(struct shmq_seg_hdr, get_lock) == 576, "get side");
static_assert(offsetof(struct shmq_seg_hdr, head) == 640, "head");
static_assert(offsetof(struct shmq_seg_hdr, data_futex) == 768, "futexes");
static_assert(offsetof(struct shmq_seg_hdr, state_flags) == 896, "state");
static_assert(sizeof(struct shmq_lease) == SHMQ_CACHELINE, "lease size");
static_assert(offsetof(struct shmq_lease, state) == 0 &&
	      offsetof(struct shmq_lease, deliveries) == 4,
	      "a lease's state and deliveries form one 8-byte word");
static_assert(offsetof(struct shmq_seg_hdr, lease_timeout_ms) == 960,
	      "acked configuration");
static_assert(offsetof(struct shmq_seg_hdr, leased) == 1280, "leased");
static_assert(offsetof(struct shmq_seg_hdr, ret_n) == 1408, "returned cache");
static_assert(sizeof(struct shmq_seg_hdr) == 1792, "header size");

#endif /* SHMQ_LAYOUT_H */
