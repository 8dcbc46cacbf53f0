/*
 * ring.h - operations on one mapped queue segment (proto/shmq_layout.h).
 *
 * The queue core, linked into both libshmq and shmqd: formatting a new
 * segment and checking one that was handed to us (segment.c), put, get
 * and close (ring.c, the data path), waiting and waking (wait.c), the
 * attachment table and its wait records (clients.c), the acked queues'
 * leases (lease.c) and the pollable descriptors (poll.c).  None of it
 * talks to the daemon (a blocked call's notice goes through the
 * library's callback) or allocates memory: the caller maps the segment
 * and keeps the struct ring (poll.c's descriptors are the only resource
 * it creates, closed by ring_poll_close()).
 *
 * All functions return SHMQ_OK, SHMQ_EOS/SHMQ_EOS_LOST or a negative
 * SHMQ_E* status from <shmq.h>.
 */
#ifndef SHMQ_RING_H
#define SHMQ_RING_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "shmq.h"
#include "shmq_layout.h"

/* What a new segment is created with. */
struct ring_config {
	uint32_t capacity;
	uint32_t max_msg;
	uint64_t max_bytes;     /* 0 = no byte budget */
	uint32_t clients;       /* attachment table entries */
	uint32_t mode, uid, gid;
	uint32_t config_flags;  /* SHMQ_CFG_* */
	uint64_t queue_id;
	const char *name;
	/* Acked queues (SHMQ_CFG_ACKED): */
	uint32_t lease_timeout_ms;      /* 0 = leases never time out */
	uint32_t max_deliveries;        /* 0 = unlimited */
	const char *dead_letter;        /* queue name, or NULL */
};

/* Moves one message to the dead-letter queue, for the lease code, which
 * calls it under get_lock: the library's handle knows how to reach that
 * queue, the core does not.  SHMQ_OK once it is committed there; anything
 * else leaves the message where it is.  `ctx` is the ring's
 * dead_letter_ctx, which ring_set_dead_letter() changes. */
typedef int (*ring_dead_letter_fn)(void *ctx, const void *msg, size_t len);

/* A handle's pollable descriptor for one direction (common/poll.c). */
struct ring_poller {
	int open;               /* the fields below are valid */
	int fd;                 /* what the caller watches: an epoll set of */
	int sock;               /* the bound datagram socket, and */
	int timer;              /* a timer: lock retries, lease deadlines */
	int timer_set;          /* the timer may be running or have fired */
	uint32_t retry_ms;      /* the last retry delay, 0 after a lock */
	uint32_t nonce;         /* the random part of the socket's name */
};

/* Tells shmqd that a call on this handle has been blocked for a while
 * (`side`: 0 put, 1 get), for the waiting code, which calls it before it
 * sleeps, outside every lock, at most once per dl_report_ms per call (see
 * "Wait records" in shmq_layout.h): the library's handle knows how to
 * reach the daemon, the core does not.  It must never block. */
typedef void (*ring_blocked_fn)(void *ctx, int side);

/* The private, checked view of a mapped segment.  The configuration is
 * copied out of the header once, when attaching, and trusted from then on;
 * the shared copy is never read again. */
struct ring {
	struct shmq_seg_hdr *hdr;
	struct shmq_slot *slots;
	struct shmq_client *clients;
	uint8_t *data;
	uint64_t seg_size;
	uint64_t data_size;
	uint64_t max_bytes;
	uint64_t queue_id;
	uint32_t capacity;
	uint32_t mask;          /* ring_slots - 1 */
	uint32_t max_msg;
	uint32_t nclients;
	uint32_t config_flags;
	struct shmq_client *self;   /* our attachment entry, or NULL */
	uint32_t self_index;        /* its index, and the generation it */
	uint32_t self_gen;          /* was bound with */
	/* Acked queues (lease.c); leases == NULL for a plain queue. */
	struct shmq_lease *leases;  /* capacity entries */
	uint8_t *lease_data;        /* capacity x lease_stride bytes */
	uint32_t lease_stride;
	uint32_t lease_timeout_ms;
	uint32_t max_deliveries;
	int has_dead_letter;        /* a dead-letter queue is configured */
	ring_dead_letter_fn dead_letter;
	void *dead_letter_ctx;
	ring_blocked_fn blocked;    /* or NULL: nobody to tell */
	void *blocked_ctx;
	uint32_t spin_ns;           /* adaptive spin window before sleeping;
				       0: never spin nor yield (tests) */
	uint64_t handoff_after;     /* no hand-off yields before then (mono
				       ns): they ran a third process */
	uint64_t handoff_off_ns;    /* how long they were left off last */
	uint32_t shared_waits;      /* waits with the other side on our CPU */
	/* Wake-ups left for later (wait.c, SHMQ_WAIT_BATCH), indexed by the
	 * sleepers' side: the futex word they were left at, and how many
	 * commits left them; and each side's count of messages (tail, head)
	 * at its last sleep. */
	uint32_t defer_word[2];
	uint32_t defer_n[2];
	uint64_t sleep_mark[2];
	int prefetchw;              /* put asks for slots ahead (ring.c) */
	uint32_t amax;              /* ring bytes of the largest message */
	uint32_t stride;            /* messages a waiter lets the other side
				       get ahead while both stream, or 0 */
	uint32_t stride_skip[2];    /* waits left without a stride: [0] put,
				       [1] get */
	/* Pollable descriptors, [0] put, [1] get. */
	struct ring_poller poll[2];
	/* A zero-copy operation in progress holds a side's lock: */
	int held;                   /* 0, or 1 + the side (put 0, get 1) */
	pthread_t held_by;          /* the thread that holds it: a robust
				       mutex unlocks only in its owner */
	uint64_t held_tw;           /* put: tail word when reserved */
	uint64_t held_head;         /* put: head hint; get: the head viewed */
	uint64_t held_off, held_bytes, held_pos;   /* put: the next wpos */
};

/* Checks `cfg` and computes the size of its segment. */
int ring_plan(const struct ring_config *cfg, uint64_t *seg_size);
/* Initialises a zero-filled segment of ring_plan()'s size. */
int ring_format(void *mem, uint64_t size, const struct ring_config *cfg);
/* Checks a mapped segment of `size` bytes and fills `r`. */
int ring_attach(struct ring *r, void *mem, uint64_t size);
/* Full consistency check of the shared state (slow; for adoption). */
int ring_check(struct ring *r);

/* Puts msgs[0..n) in order; *done says how many were queued. */
int ring_put(struct ring *r, const struct iovec *msgs, size_t n,
	     size_t *done, int timeout_ms);
/* Takes up to n messages into buf; out[i] points at message i.  If the
 * first message does not fit, returns SHMQ_EMSGSIZE with out[0].iov_len
 * set to its length. */
int ring_get(struct ring *r, void *buf, size_t size, struct iovec *out,
	     size_t n, size_t *got, int timeout_ms);
/* Zero copy.  ring_reserve places a message of `len` bytes and returns
 * where to write it, keeping put_lock; ring_commit makes it visible (or,
 * with cancel, drops it) and unlocks.  ring_view returns the oldest
 * message in place, keeping get_lock; ring_release takes it (or, with
 * leave, leaves it queued) and unlocks. */
int ring_reserve(struct ring *r, size_t len, void **data, int timeout_ms);
int ring_commit(struct ring *r, int cancel);
int ring_view(struct ring *r, const void **data, size_t *len, int timeout_ms);
int ring_release(struct ring *r, int leave);
int ring_viewed_seq(const struct ring *r, uint64_t *seq);
int ring_close(struct ring *r, unsigned how, uint64_t *discarded);

/* Acked queues (lease.c); see "Acked queues" in shmq.h.  ring_lease
 * leases up to n messages (view: one, pointing into the queue's memory);
 * on a plain queue it is ring_get.  ring_ack acks msgs[0..n), *done says
 * how many (SHMQ_ELEASE if any lease had ended).  ring_join waits until
 * every message put before the call is settled.  ring_pending fills at
 * most `cap` entries and returns how many leases exist. */
int ring_lease(struct ring *r, void *buf, size_t size, struct shmq_msg *msgs,
	       size_t n, size_t *got, int timeout_ms, int view);
int ring_ack(struct ring *r, const struct shmq_msg *msgs, size_t n,
	     size_t *done);
int ring_nack(struct ring *r, const struct shmq_msg *m, unsigned flags);
int ring_extend(struct ring *r, const struct shmq_msg *m, int ms);
int ring_join(struct ring *r, int timeout_ms);
/* Makes `ctx` the dead-letter callback's context, under get_lock (waited
 * for without a timeout): once it returns, no callback of this ring uses
 * the old one, which goes to *old.  With a new context, the dead letters
 * waiting are tried at the next sweep, without waiting for their second
 * to pass. */
int ring_set_dead_letter(struct ring *r, void *ctx, void **old);
size_t ring_pending(const struct ring *r, struct shmq_lease_info *out,
		    size_t cap);
void ring_stat(const struct ring *r, struct shmq_stat *st);
/* Wakes every sleeper and every armed poller so that each re-checks the
 * queue. */
void ring_wake_all(struct ring *r);

/* Event loops (poll.c); see "Event loops" in shmq.h.  ring_poll_fd
 * returns the handle's descriptor for `dir` (SHMQ_POLL_GET or
 * SHMQ_POLL_PUT), creating it the first time: the caller serialises
 * calls for one ring.  ring_poll_close closes them (at detach).
 * ring_wait waits until ring_ready says a get (a put of `len` bytes) may
 * proceed, taking nothing; with timeout 0 it arms the descriptor. */
int ring_poll_fd(struct ring *r, unsigned dir, int *fd);
void ring_poll_close(struct ring *r);
int ring_wait(struct ring *r, unsigned dir, uint64_t len, int timeout_ms);

/* Attachment table.  Entries are added and removed by shmqd only. */
int ring_client_add(struct ring *r, uint32_t pid, uint64_t start_time,
		    uint32_t role, uint32_t *index, uint32_t *gen);
/* Binds r->self to entry `index` after checking that `gen` owns it. */
int ring_client_bind(struct ring *r, uint32_t index, uint32_t gen);
/* Marks our own entry detached (before telling shmqd, see shmq_layout.h). */
void ring_client_mark_detached(struct ring *r);
/* shmq_wait_continue(): this thread's next waits, until it is called
 * again with since 0, are slices of one call that began at `since`
 * (CLOCK_MONOTONIC ns) with deadline `deadline` (0: none): each is
 * counted in its record as that call's wait (from `since`, with that
 * deadline, under the call's number while the record still holds it),
 * and tells shmqd that it is blocked by the call's age. */
void ring_client_wait_continue(int64_t since, int64_t deadline);
/* Removes an entry; `died` marks a producer as lost, unless the entry
 * was marked detached by its own process.  Applies auto-close
 * and repairs the sleep statistics the entry still held. */
void ring_client_remove(struct ring *r, uint32_t index, int died);
/* Clears an entry that shmqd never handed out (a client wrote it): no
 * count changes, since it was never counted. */
void ring_client_forget(struct ring *r, uint32_t index);
/* Recomputes producer and consumer counts from the table. */
void ring_client_recount(struct ring *r);

/* Deadlock detection, shmqd's side (see "Wait records" in
 * shmq_layout.h).  Everything read is untrusted and only ever used to
 * decide that nothing is wrong or to be displayed. */
struct ring_waiter {
	uint32_t pid;               /* 0: a free entry */
	uint32_t gen;
	uint32_t role;              /* SHMQ_ROLE_* */
	uint64_t start_time;
	uint32_t threads[2];        /* [0] put, [1] get */
	uint32_t nested[2];         /* of them, a counted thread's again */
	int64_t  since[2];          /* the latest wait's start */
	uint64_t seq[2];            /* and its number */
	uint64_t victim[2];         /* the number of the wait to fail, or 0 */
	uint32_t timed[2];          /* waits with a timeout (SHMQ_TIMED_COUNT:
				       too many to count) */
	int64_t  deadline[2];       /* the earliest of their deadlines (or
				       earlier), if timed */
};
/* Reads entry `index` (< r->nclients). */
void ring_client_look(const struct ring *r, uint32_t index,
		      struct ring_waiter *w);
/* Fails the wait numbered `seq` on `side` of entry `index`, if the entry
 * still has generation `gen`, that wait is still its latest, some wait
 * is still counted, and the victim word still holds `old`: 1 if it was
 * marked.  Wakes every sleeper of the queue, so that the victim sees it.
 * ring_client_unfail_wait takes such a mark back if nobody claimed it:
 * 1 if it did (the wait was not failed). */
int ring_client_fail_wait(struct ring *r, uint32_t index, uint32_t gen,
			  int side, uint64_t seq, uint64_t old);
int ring_client_unfail_wait(struct ring *r, uint32_t index, uint32_t gen,
			    int side, uint64_t seq);

/* Calls fn(index, gen) for the holder entry of every lease held on an
 * acked queue (nothing for a plain one), as the lease table says: shmqd
 * checks them against the entries it handed out. */
void ring_lease_holders(const struct ring *r,
			void (*fn)(uint32_t index, uint32_t gen, void *arg),
			void *arg);

/* How far a queue has got: what a put, get, ack, nack, return or close
 * changes, and what says whether a blocked call could be blocked. */
struct ring_progress {
	uint64_t tail_word;         /* count | CLOSED | NOW */
	uint64_t head;
	uint64_t acked, dead_lettered, dropped, discarded;
	uint64_t bytes;             /* of the queued messages, if known */
	uint32_t leased, returned;
	int64_t  next_deadline;     /* earliest lease deadline */
};
void ring_progress(const struct ring *r, struct ring_progress *p);
/* shmqd writes its network namespace in each segment it creates or
 * adopts: pollable descriptors work only in that namespace (poll.c). */
void ring_set_daemon_netns(struct ring *r);
/* shmqd's words to the waiters: the report period (ms, 0: no detection),
 * the SHMQ_DL_* state, until when it samples the queue anyway, and when
 * it last did. */
void ring_dl_set_period(struct ring *r, uint32_t report_ms);
uint32_t ring_dl_state(const struct ring *r);
void ring_dl_set_state(struct ring *r, uint32_t state);
void ring_dl_set_watch(struct ring *r, int64_t until_ns, int64_t seen_ns);

/* Test hook: called, when set, at the named points inside the critical
 * sections, so that tests can park or kill a process there. */
enum ring_hook_point {
	RING_HOOK_PUT_LOCKED,
	RING_HOOK_PUT_COPIED,       /* data written, not yet committed */
	RING_HOOK_PUT_COMMITTED,    /* committed, lock still held */
	RING_HOOK_GET_LOCKED,
	RING_HOOK_GET_COPIED,       /* data copied out, not yet committed */
	RING_HOOK_GET_COMMITTED,
	RING_HOOK_SLEEP,            /* about to sleep on a futex */
	RING_HOOK_LEASE_FILLED,     /* acked: lease slot written, head not
				       yet advanced */
	RING_HOOK_LEASE_ACKING,     /* acked: inside an ack, slot not freed */
	RING_HOOK_LEASE_DEAD_LETTERED,  /* committed to the dead-letter
					   queue, slot not yet freed */
	RING_HOOK_WAKE,             /* a waker cleared the sleep and poll
				       bits, has woken nobody yet */
	RING_HOOK_LEASE_REDELIVERING,   /* a returned slot's fields written
					   for its next holder, state not */
	RING_HOOK_LEASE_REDELIVERED,    /* that redelivery committed, lock
					   still held */
	RING_HOOK_LEASE_DEAD_LETTERING, /* about to put a dead letter in
					   the dead-letter queue */
	RING_HOOK_POLL_ARM,         /* a poller emptied its descriptor, has
				       not yet marked its entry armed */
	RING_HOOK_POLL_SEND,        /* a waker read an armed entry, has not
				       yet sent to it nor cleared it */
};
extern void (*ring_test_hook)(enum ring_hook_point point);

#endif /* SHMQ_RING_H */
