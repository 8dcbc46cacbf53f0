/*
 * shmq.h - named, bounded message queues in shared memory.
 *
 * A queue holds at most `capacity` messages (and, optionally, at most
 * `max_bytes` bytes of them).  put() blocks while it is full, get() blocks
 * while it is empty: that is the backpressure.  Closing a queue makes put()
 * fail and lets get() drain what is left, then report end of stream.
 * A call that has to wait spins first, for at most 50 µs (the window adapts
 * to how often spinning pays; no spinning on a one-CPU machine), then
 * sleeps in the kernel: a hand-off between running processes makes no
 * system call, and a caller blocked for longer uses no CPU.
 *
 * Queues are created and handed out by the shmqd daemon; put and get run in
 * shared memory under process-shared robust mutexes and never talk to the
 * daemon.  If no daemon answers, the library starts a private one for the
 * current user (unless SHMQ_NO_AUTOSTART is set).
 *
 *   shmq_t *q;
 *   shmq_create("jobs", NULL, SHMQ_EXIST_OK);
 *   shmq_open("jobs", SHMQ_PRODUCER, &q);
 *   shmq_put(q, "hello", 5, SHMQ_FOREVER);
 *   shmq_close(q, SHMQ_CLOSE_DRAIN, NULL);
 *   shmq_detach(q);
 *
 * and in another process:
 *
 *   char buf[4096]; size_t len; int rc;
 *   shmq_open("jobs", SHMQ_CONSUMER, &q);
 *   SHMQ_FOREACH(q, buf, sizeof buf, len, rc)
 *           handle(buf, len);
 *   if (rc != SHMQ_EOS) report(shmq_strerror(rc));
 *   shmq_detach(q);
 *
 * Every function returns SHMQ_OK (0), a positive end-of-stream status, or a
 * negative SHMQ_E* error; shmq_strerror() describes each.  A blocking call
 * interrupted by a signal handler returns SHMQ_EINTR (nothing was put or
 * taken by the interrupted wait), so that a program can react to the
 * signal; call again to go on waiting.  Functions are
 * thread-safe; a handle may be shared by the threads of one process but not
 * across fork(): a child opens its own handles.
 *
 * Environment:
 *   SHMQ_SOCKET         control socket of the daemon to use
 *   SHMQ_NO_AUTOSTART   if set, never start a daemon
 *   SHMQ_DAEMON         shmqd binary to start (default: the installed one)
 */
#ifndef SHMQ_H
#define SHMQ_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SHMQ_VERSION_STRING "0.1.0"

/* Statuses.  End of stream is positive so that `== SHMQ_OK` loops stop on
 * it and `< 0` tests catch only errors. */
enum shmq_status {
	SHMQ_OK        =   0,
	SHMQ_EOS       =   1,  /* closed and drained: no more messages */
	SHMQ_EOS_LOST  =   2,  /* end of stream, and a producer died without
				  detaching: the stream may be incomplete */
	SHMQ_EINVAL    =  -1,  /* invalid argument */
	SHMQ_ENAME     =  -2,  /* invalid queue name */
	SHMQ_ECLOSED   =  -3,  /* put on a closed queue */
	SHMQ_ETIMEDOUT =  -4,  /* the timeout expired */
	SHMQ_EAGAIN    =  -5,  /* would block (timeout 0) */
	SHMQ_E2BIG     =  -6,  /* message larger than the queue's maximum */
	SHMQ_EMSGSIZE  =  -7,  /* receive buffer too small; message kept */
	SHMQ_ENOENT    =  -8,  /* no such queue */
	SHMQ_EEXIST    =  -9,  /* queue already exists */
	SHMQ_EACCES    = -10,  /* permission denied */
	SHMQ_ENODAEMON = -11,  /* daemon unreachable */
	SHMQ_EPROTO    = -12,  /* protocol error or version mismatch */
	SHMQ_ECORRUPT  = -13,  /* queue memory is corrupt */
	SHMQ_ENOSPC    = -14,  /* out of shared memory */
	SHMQ_ELIMIT    = -15,  /* a daemon limit was reached */
	SHMQ_EROLE     = -16,  /* handle not opened for this operation */
	SHMQ_EINTR     = -17,  /* interrupted by a signal handler */
	SHMQ_EBUSY     = -18,  /* queue lock held by a stalled process */
	SHMQ_ESYS      = -19,  /* system call failed; see errno */
	SHMQ_ENOMEM    = -20,  /* out of memory */
	SHMQ_ELEASE    = -21,  /* the lease ended before this call (timed
				  out, returned, or its handle detached):
				  the message is no longer this caller's */
};

/* Timeouts, in milliseconds, for every blocking call. */
#define SHMQ_FOREVER  (-1)
#define SHMQ_NOWAIT   0

/* Limits. */
#define SHMQ_NAME_MAX_LEN 255

typedef struct shmq shmq_t;

/* Creation attributes; shmq_attr_init() fills the defaults. */
struct shmq_attr {
	uint32_t capacity;      /* max queued messages (default 1024) */
	uint32_t max_msg;       /* max message size in bytes (default 4096) */
	uint64_t max_bytes;     /* byte budget, 0 = none (default) */
	uint32_t mode;          /* permission bits (default 0600) */
	uint32_t flags;         /* SHMQ_AUTO_CLOSE, SHMQ_ACKED */
	/* Acked queues only (see "Acked queues" below): */
	uint32_t lease_timeout_ms;  /* a lease not acked within this is
				       returned; 0 = never (default) */
	uint32_t max_deliveries;    /* after this many deliveries without an
				       ack, dead-letter; 0 = never (default) */
	const char *dead_letter;    /* where dead letters go: an existing
				       queue the owner may write; NULL =
				       drop them (counted) */
};
#define SHMQ_DEFAULT_CAPACITY 1024u
#define SHMQ_DEFAULT_MAX_MSG  4096u
#define SHMQ_DEFAULT_MODE     0600u

#define SHMQ_AUTO_CLOSE 0x1u    /* attr.flags: close when the last producer
				   detaches or dies */
#define SHMQ_ACKED      0x2u    /* attr.flags: gets lease messages, which
				   leave the queue only when acked */
#define SHMQ_EXIST_OK   0x1u    /* shmq_create: an existing queue is fine */

void shmq_attr_init(struct shmq_attr *attr);
int shmq_create(const char *name, const struct shmq_attr *attr,
		unsigned flags);

/* Open flags: a producer may put and close, a consumer may get; a handle
 * with neither may only stat and close.  Producers need write permission,
 * consumers read permission. */
#define SHMQ_PRODUCER 0x1u
#define SHMQ_CONSUMER 0x2u
/* Map every page of the queue at open, so that no put or get ever stops
 * for a page fault (a fresh queue otherwise faults in its pages during
 * its first lap).  Costs time at open in proportion to the queue's size:
 * for long-running, latency-sensitive users. */
#define SHMQ_PREFAULT 0x4u

int shmq_open(const char *name, unsigned flags, shmq_t **q);
/* Releases the handle and frees it, whatever it returns.  The handle is
 * marked detached in the queue itself first, so if the daemon cannot be
 * told now (it is being restarted), it releases the handle as detached,
 * not as a lost producer, once it learns of it; that is not an error.
 * It does not wait for the daemon's answer: for the moment the daemon
 * takes to read the detach, shmq_stat() may still count the handle, and
 * an auto-close queue may still be open. */
int shmq_detach(shmq_t *q);

/* put: SHMQ_OK, SHMQ_ECLOSED, SHMQ_E2BIG, SHMQ_ETIMEDOUT, SHMQ_EAGAIN... */
int shmq_put(shmq_t *q, const void *msg, size_t len, int timeout_ms);
/* get: SHMQ_OK with *len set, SHMQ_EOS / SHMQ_EOS_LOST, or an error.  If
 * the message does not fit in `size`, returns SHMQ_EMSGSIZE, sets *len to
 * its length and leaves it queued. */
int shmq_get(shmq_t *q, void *buf, size_t size, size_t *len, int timeout_ms);

/* Batches: one lock round trip for many messages.  putv puts msgs[0..n)
 * in order, blocking until all are queued; on an error *nput says how many
 * were.  getv waits until at least one message is there, then takes as
 * many as fit in msgs[] and buf, setting msgs[i] to point into buf; each
 * message starts at a multiple of 16 bytes from buf.  */
int shmq_putv(shmq_t *q, const struct iovec *msgs, size_t n, size_t *nput,
	      int timeout_ms);
int shmq_getv(shmq_t *q, void *buf, size_t size, struct iovec *msgs,
	      size_t n, size_t *ngot, int timeout_ms);

/* Zero copy, for large messages.  shmq_put_reserve() waits for room for
 * a message of `len` bytes (like shmq_put) and points *data at it, in the
 * queue's memory: write it there, then shmq_put_commit() makes it visible
 * (shmq_put_cancel() drops it).  shmq_get_view() waits for a message (like
 * shmq_get) and points *data at it without taking it: read it there, then
 * shmq_get_take() removes it (shmq_get_leave() leaves it for the next
 * consumer).  In between, the handle holds the queue's producer (consumer)
 * lock, so other producers (consumers) wait: keep it short, call nothing
 * else on this handle, and do not share it with other threads meanwhile.
 * A process that dies in between changes nothing: the reserved message
 * never appears, the viewed one stays queued.  The memory is shared with
 * every process that has the queue open: copy what you must trust.
 * commit on a queue closed meanwhile returns SHMQ_ECLOSED (dropped). */
int shmq_put_reserve(shmq_t *q, size_t len, void **data, int timeout_ms);
int shmq_put_commit(shmq_t *q);
int shmq_put_cancel(shmq_t *q);
int shmq_get_view(shmq_t *q, const void **data, size_t *len,
		  int timeout_ms);
int shmq_get_take(shmq_t *q);
int shmq_get_leave(shmq_t *q);

/* Iterate until end of stream:
 *   SHMQ_FOREACH(q, buf, sizeof buf, len, rc) { use(buf, len); }
 * afterwards rc is SHMQ_EOS, SHMQ_EOS_LOST or an error. */
#define SHMQ_FOREACH(q, buf, size, len, rc)                                   \
	while (((rc) = shmq_get((q), (buf), (size), &(len), SHMQ_FOREVER)) ==  \
	       SHMQ_OK)

/* close: SHMQ_CLOSE_DRAIN lets consumers receive what is queued;
 * SHMQ_CLOSE_NOW discards it (*discarded, if not NULL, says how many).
 * Idempotent; wakes every blocked putter and getter.  If a stalled
 * consumer holds the consumers' lock for over a second, SHMQ_CLOSE_NOW
 * returns SHMQ_EBUSY: the queue is closed all the same, and the next get
 * discards what is left (stat's `discarded` then counts it). */
#define SHMQ_CLOSE_DRAIN 0u
#define SHMQ_CLOSE_NOW   1u
int shmq_close(shmq_t *q, unsigned how, uint64_t *discarded);

enum shmq_state {
	SHMQ_STATE_OPEN = 0,
	SHMQ_STATE_CLOSED = 1,      /* closed, draining */
	SHMQ_STATE_CLOSED_NOW = 2,  /* closed immediately */
};

struct shmq_stat {
	char     name[SHMQ_NAME_MAX_LEN + 1];
	uint32_t capacity;
	uint32_t max_msg;
	uint64_t max_bytes;
	uint32_t mode;
	uint32_t uid;
	uint32_t gid;
	uint32_t flags;          /* SHMQ_AUTO_CLOSE */
	uint64_t messages;       /* queued now */
	uint64_t bytes;          /* bytes queued now */
	uint32_t producers;
	uint32_t consumers;
	uint32_t put_blocked;    /* handles asleep in put */
	uint32_t get_blocked;    /* handles asleep in get */
	uint64_t total_put;
	uint64_t total_got;
	uint64_t discarded;      /* dropped by SHMQ_CLOSE_NOW */
	int      state;          /* enum shmq_state */
	int      auto_closed;    /* closed because the last producer left */
	int      producer_lost;  /* a producer died without detaching */
	int64_t  created_ns;     /* CLOCK_REALTIME, nanoseconds */
	int64_t  closed_ns;      /* 0 while open */
	/* Acked queues (flags & SHMQ_ACKED); 0 otherwise.  `messages` and
	 * `bytes` count what waits for delivery, returned messages
	 * included; the queue is full when messages + leased reaches the
	 * capacity. */
	uint32_t leased;         /* delivered, not yet acked */
	uint32_t returned;       /* returned, waiting for redelivery */
	uint64_t acked;          /* settled by an ack (or a plain get) */
	uint64_t dead_lettered;  /* moved to the dead-letter queue */
	uint64_t dropped;        /* dropped after max_deliveries */
	uint32_t lease_timeout_ms;
	uint32_t max_deliveries;
	char     dead_letter[SHMQ_NAME_MAX_LEN + 1];    /* "" = none */
};

/*
 * Acked queues: work that survives its worker.
 *
 * On a queue created with SHMQ_ACKED, shmq_lease() hands the oldest
 * message to the calling handle without removing it: the message still
 * counts against the capacity and the byte budget until the handle acks
 * it (shmq_ack: done, it leaves the queue) or nacks it (shmq_nack: it is
 * delivered again, before every message that was never delivered).  A
 * lease also ends without an ack when its holder process dies or
 * detaches, or when the queue's lease timeout passes (shmq_extend pushes
 * it back): the message is then returned as by a nack.  Each delivery
 * carries its count, 1 the first time; a message delivered max_deliveries
 * times without an ack goes to the dead-letter queue (or, without one, is
 * dropped and counted).  Returned messages keep their order.
 *
 *   struct shmq_msg m;
 *   while ((rc = shmq_lease(q, buf, sizeof buf, &m, SHMQ_FOREVER)) ==
 *          SHMQ_OK) {
 *           if (work(m.data, m.len) == 0)
 *                   shmq_ack(q, &m);
 *           else
 *                   shmq_nack(q, &m, 0);
 *   }
 *
 * The end of stream of an acked queue comes once it is closed, nothing is
 * queued or returned, and no other handle holds a lease (a leased message
 * may still come back).  shmq_get() on an acked queue takes and acks in
 * one step; shmq_lease() on a plain queue is a shmq_get() (m.lease is 0,
 * and acking it does nothing).  A process killed at any instruction loses
 * nothing: the only message delivered twice is one whose holder died
 * before its ack, and it comes back with its count raised.
 */
struct shmq_msg {
	void    *data;          /* the message: in the caller's buffer, or
				   (shmq_lease_view) in the queue's memory */
	size_t   len;
	uint64_t lease;         /* names this delivery for ack/nack/extend;
				   0 = nothing to ack (a plain queue) */
	uint64_t seq;           /* the message's position in the queue's
				   stream: 0, 1, 2... in put order */
	uint32_t deliveries;    /* 1 the first time */
};

int shmq_lease(shmq_t *q, void *buf, size_t size, struct shmq_msg *m,
	       int timeout_ms);
int shmq_leasev(shmq_t *q, void *buf, size_t size, struct shmq_msg *msgs,
		size_t n, size_t *ngot, int timeout_ms);
int shmq_lease_view(shmq_t *q, struct shmq_msg *m, int timeout_ms);
int shmq_ack(shmq_t *q, const struct shmq_msg *m);
int shmq_ackv(shmq_t *q, const struct shmq_msg *msgs, size_t n,
	      size_t *nacked);
#define SHMQ_NACK_DEAD 0x1u     /* shmq_nack: dead-letter it now */
int shmq_nack(shmq_t *q, const struct shmq_msg *m, unsigned flags);
int shmq_extend(shmq_t *q, const struct shmq_msg *m, int ms);
int shmq_join(shmq_t *q, int timeout_ms);

enum shmq_lease_state {
	SHMQ_LEASE_HELD = 1,        /* delivered, not acked */
	SHMQ_LEASE_WAITING = 2,     /* returned, waiting for redelivery */
	SHMQ_LEASE_DEAD_LETTER = 3, /* waiting for room in the dead-letter
				       queue */
};
struct shmq_lease_info {
	uint64_t seq;           /* the message's position in the stream */
	uint32_t pid;           /* holder (SHMQ_LEASE_HELD), else 0 */
	uint32_t deliveries;
	uint32_t len;
	int      state;         /* enum shmq_lease_state */
	int64_t  age_ns;        /* since this delivery */
	int64_t  left_ns;       /* until the lease times out; -1 = never */
};
int shmq_pending(shmq_t *q, struct shmq_lease_info **list, size_t *n);

int shmq_stat(shmq_t *q, struct shmq_stat *st);
size_t shmq_max_msg(const shmq_t *q);
const char *shmq_name(const shmq_t *q);

/* By name, through the daemon.  shmq_close_name opens a handle, closes
 * and detaches: it needs read and write permission. */
int shmq_stat_name(const char *name, struct shmq_stat *st);
int shmq_close_name(const char *name, unsigned how, uint64_t *discarded);
/* Removes the name; open handles keep working until they detach. */
int shmq_delete(const char *name);
/* Every queue the caller may read, sorted by name; free with free(). */
int shmq_list(struct shmq_stat **list, size_t *n);

/* SHMQ_OK if `name` is 1-255 bytes of [A-Za-z0-9._-] not starting with
 * '.', SHMQ_ENAME otherwise. */
int shmq_check_name(const char *name);
const char *shmq_strerror(int status);
/* The daemon's own explanation of the last error it returned to this
 * thread (e.g. which limit was hit), or "" if there is none. */
const char *shmq_error_detail(void);
const char *shmq_version(void);

#ifdef __cplusplus
}
#endif
#endif /* SHMQ_H */
