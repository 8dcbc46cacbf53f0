/*
 * shmq.h - named, bounded message queues in shared memory.
 *
 * A queue holds at most `capacity` messages (and, optionally, at most
 * `max_bytes` bytes of them).  put() blocks while it is full, get() blocks
 * while it is empty: that is the backpressure.  Closing a queue makes put()
 * fail and lets get() drain what is left, then report end of stream.
 * A call that has to wait spins briefly (at most 50 µs, adaptively) only
 * while the other side may be running on another CPU, then sleeps in the
 * kernel; a process limited to one CPU (affinity or cgroup CPU quota)
 * never spins, and a CPU-bound neighbour gets its share: libshmq(3),
 * "Timeouts and signals", says how.  A hand-off between running
 * processes makes no system call; a caller blocked for longer uses no CPU.
 *
 * Queues are created and handed out by the shmqd daemon; put and get run in
 * shared memory under process-shared robust mutexes and never talk to the
 * daemon.  If no daemon answers, the library starts a private one for the
 * current user (unless SHMQ_NO_AUTOSTART is set) and waits for that pid
 * alone, at most 5 s; ignoring SIGCHLD or reaping in a handler is fine.
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
 * negative SHMQ_E* error; shmq_strerror() describes each.  Functions are
 * thread-safe; a handle may be shared by the threads of one process but not
 * across fork().
 *
 * Environment:
 *   SHMQ_SOCKET         control socket of the daemon to use
 *   SHMQ_NO_AUTOSTART   if set, never start a daemon
 *   SHMQ_DAEMON         shmqd binary to start (default: the installed one)
 *
 * The contract of each function follows its declaration: what it does,
 * every status it returns and when, whether and how long it blocks, and
 * who owns what it hands back.  What holds for whole groups of functions
 * is said once, here:
 *
 * Calls to the daemon.  shmq_create, shmq_open, shmq_detach,
 * shmq_stat_name, shmq_close_name, shmq_delete, shmq_list, shmq_users and
 * shmq_deadlocks send a request to shmqd over a Unix socket (the list
 * calls one per page) and, all but shmq_detach, wait for its reply,
 * normally tens of microseconds.  A process has one connection, opened by
 * its first such call (again after fork() or a daemon restart) and kept
 * until it exits, so shmqd --user-max-clients bounds how many processes
 * of one user can use shmq at once.  The calls take turns on a
 * process-wide lock; then one deadline of 10 s covers connecting, the
 * HELLO, the request and its reply (a re-send after a daemon restart
 * included).  If nothing listens on the per-user socket and autostart is
 * on, each but shmq_detach starts shmqd, which adds at most 5 s: a
 * daemon that never answers is given up after 10 s, or 15 s when the
 * call started one (SHMQ_ENODAEMON).  Signals neither cut these calls
 * short nor restart their wait: they never return SHMQ_EINTR.  Besides
 * its own statuses, each may return the control errors:
 *   SHMQ_ENODAEMON  no daemon answered: nothing listens on the socket and
 *                   autostart is off or failed, or no reply came in time;
 *                   shmq_error_detail() names the socket tried, the binary
 *                   autostart tried to run and the system error (or says
 *                   that autostart is off)
 *   SHMQ_EACCES     the socket's permissions refuse this user
 *   SHMQ_EPROTO     the daemon speaks another protocol or layout version,
 *                   or sent a malformed reply
 *   SHMQ_ELIMIT     the daemon has its most clients (shmqd --max-clients),
 *                   or the caller's uid its most connections (shmqd
 *                   --user-max-clients; see shmq_users())
 * An error the daemon replied with comes with its explanation in
 * shmq_error_detail().
 *
 * Calls on a handle.  put, get, their batch and zero-copy forms, close,
 * stat and the accessors work in the queue's shared memory and never wait
 * for the daemon; they make no system call unless they sleep, wake a
 * sleeper or a poller, or arm their handle's descriptor ("Event loops").
 * The exceptions are told where they arise: an acked queue's consumer
 * re-opening its dead-letter queue ("Acked queues") and the one notice a
 * long wait sends shmqd ("Deadlocks").  Each returns SHMQ_EINVAL for a
 * NULL handle, and SHMQ_ECORRUPT when what it reads from the queue fails
 * a check or its lock word is damaged: the queue is then unusable, but
 * nothing outside the mapping is ever read or written.
 *
 * Timeouts.  Every call that can wait for room or for a message takes
 * timeout_ms: SHMQ_FOREVER (or any negative value), SHMQ_NOWAIT (0), or
 * milliseconds.  One deadline covers the whole call: waiting for the queue
 * and for the side's lock (producers share one, consumers another, each
 * held for one copy).  With SHMQ_NOWAIT the call still waits up to 10 ms
 * for a lock another process holds (a handle with a descriptor for that
 * direction, in an event loop, a few microseconds at most), then returns
 * SHMQ_EAGAIN.  With SHMQ_FOREVER it waits for the lock as long as the
 * holder keeps it: a stopped holder (SIGSTOP, a debugger) stalls its
 * side; one that dies frees it, and the next holder checks the queue and
 * carries on.  Expiry is SHMQ_ETIMEDOUT, or SHMQ_EAGAIN for SHMQ_NOWAIT.
 *
 * Signals.  SHMQ_EINTR means a signal handler ran while the call slept in
 * the kernel (whatever SA_RESTART says); one that runs while the call
 * spins or waits for a lock does not interrupt it.  Threads: a handle may
 * be used by several threads at once, except around zero-copy calls;
 * shmq_error_detail() is per thread.
 *
 * fork().  A child must neither use nor detach the handles it inherited
 * (detaching one would mark its parent's handle detached); it opens its
 * own.  Queue memory is mapped with MADV_DONTFORK, so an inherited handle
 * faults (SIGSEGV) if used.  The child re-opens the daemon connection by
 * itself.
 * As with any library that takes locks, a child of a multi-threaded
 * process may call shmq only if no other thread was inside a call to the
 * daemon at the moment of fork().
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
	SHMQ_EDEADLK   = -22,  /* the call's wait was part of a deadlock and
				  shmqd failed it to break the deadlock
				  (the queue's policy is SHMQ_DEADLOCK_FAIL) */
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
	uint32_t flags;         /* SHMQ_AUTO_CLOSE, SHMQ_ACKED,
				   SHMQ_DEADLOCK_FAIL */
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
#define SHMQ_DEADLOCK_FAIL 0x4u /* attr.flags: when shmqd finds calls
				   blocked on this queue deadlocked, it fails
				   one of them with SHMQ_EDEADLK (default:
				   it only reports; see "Deadlocks") */
#define SHMQ_EXIST_OK   0x1u    /* shmq_create: an existing queue is fine */

/* shmq_attr_init - fill *attr (not NULL) with the defaults: capacity
 * 1024, max_msg 4096, no byte budget, mode 0600, no flags.  Never fails. */
void shmq_attr_init(struct shmq_attr *attr);

/*
 * shmq_create - create queue `name` with the attributes in *attr (NULL:
 * the defaults), owned by the caller's user and group (from the socket's
 * credentials).  The daemon reserves all of the queue's memory now, so a
 * queue never runs out of room in the middle of a put.  Messages are 0 to
 * max_msg bytes.  With SHMQ_ACKED it is an acked queue ("Acked queues"),
 * which also takes lease_timeout_ms, max_deliveries and dead_letter, and
 * reserves capacity x max_msg more bytes (each rounded up to 64) for the
 * copies of leased messages, whatever its byte budget.
 *
 * Returns:
 *   SHMQ_OK      created; with SHMQ_EXIST_OK, also when a queue `name`
 *                exists already (its attributes are not compared with
 *                *attr, and nothing is implied about opening it)
 *   SHMQ_ENAME   `name` (or attr->dead_letter) is not a valid queue name
 *   SHMQ_EINVAL  flags other than SHMQ_EXIST_OK, attr->flags other than
 *                SHMQ_AUTO_CLOSE, SHMQ_ACKED and SHMQ_DEADLOCK_FAIL, or
 *                mode above 0777; or,
 *                from the daemon, capacity 0 or above 16777216 (2^24),
 *                max_msg above 2^30, max_bytes not 0 but below max_msg or
 *                above 2^48, a data area of 4 GiB or more ((capacity + 1)
 *                x max_msg, or about max_bytes + 16 x capacity with a byte
 *                budget), a lease timeout, max deliveries or dead-letter
 *                queue without SHMQ_ACKED, or a dead-letter queue whose
 *                max_msg is smaller than this queue's
 *   SHMQ_ENOENT  the dead-letter queue does not exist
 *   SHMQ_EACCES  the caller may not write the dead-letter queue
 *   SHMQ_EEXIST  a queue `name` exists (without SHMQ_EXIST_OK)
 *   SHMQ_ELIMIT  the daemon holds its most queues (shmqd --max-queues)
 *                or bytes (--max-bytes), the caller's uid its most
 *                queues or bytes (--user-max-queues, --user-max-bytes;
 *                see shmq_users()), the segment would exceed shmqd
 *                --max-segment, or the daemon is out of file
 *                descriptors; shmq_error_detail() names which, with the
 *                usage and the limit (and, for an acked queue whose
 *                lease copies are what does not fit, says so)
 *   SHMQ_ENOSPC  /dev/shm cannot hold the queue's memory
 *   SHMQ_ESYS, SHMQ_ENOMEM
 *                a system call of the daemon failed, or it ran out of
 *                memory (shmq_error_detail() says which)
 *   or a control error (see "Calls to the daemon" above).
 *
 * Blocks for one round trip to the daemon.
 */
int shmq_create(const char *name, const struct shmq_attr *attr,
		unsigned flags);

/* Open flags: a producer may put and close, a consumer may get; a handle
 * with neither may only stat and close.  Producers need write permission,
 * consumers read permission. */
#define SHMQ_PRODUCER 0x1u
#define SHMQ_CONSUMER 0x2u
/* Map every page of the queue at open, so that no put or get ever stops
 * for a page fault; costs time at open in proportion to the queue's size. */
#define SHMQ_PREFAULT 0x4u
/* With SHMQ_PRODUCER: a relay, a producer whose messages come from
 * somewhere that gives them again if it dies before passing them on (the
 * dead-letter handles of acked queues, shmq-bridge's in side).  It is not
 * counted in stat's `producers`: its detach or death neither counts
 * toward auto-close nor marks the queue "producer lost" (a queue whose
 * only producers are relays never auto-closes).  It still takes an
 * attachment and one of its user's handles. */
#define SHMQ_RELAY    0x8u

/*
 * shmq_open - open queue `name` and set *q to a new handle.  flags:
 * SHMQ_PRODUCER, SHMQ_CONSUMER (both may be given), SHMQ_PREFAULT,
 * SHMQ_RELAY (with SHMQ_PRODUCER).  The
 * permission rule is the one of files: the owner's bits if the caller's
 * uid owns the queue, else the group's if the caller is in its group
 * (supplementary groups count), else the others'; root may do anything.
 * A producer needs write permission, a consumer or a handle with neither
 * role read permission.  Closing, through any handle, needs write
 * permission.  A handle opened as producer (not a relay) counts in stat's
 * `producers` until it detaches or its process dies (see
 * SHMQ_AUTO_CLOSE).
 *
 * Returns:
 *   SHMQ_OK       *q is the handle; it belongs to the caller until
 *                 shmq_detach(*q)
 *   SHMQ_EINVAL   q is NULL, unknown flags, or SHMQ_RELAY without
 *                 SHMQ_PRODUCER
 *   SHMQ_ENAME    `name` is not a valid queue name
 *   SHMQ_ENOENT   no queue `name`
 *   SHMQ_EACCES   the queue's mode refuses the access the flags need (or
 *                 the control socket refuses this user)
 *   SHMQ_ELIMIT   every handle the queue can have is in use (shmqd
 *                 --max-attach), or every one it may give this user (a
 *                 uid other than the owner's, root's and the daemon's
 *                 may hold a quarter, such uids together three
 *                 quarters); the caller's uid has its most open handles
 *                 (--user-max-handles; see shmq_users()); or the daemon
 *                 is out of file descriptors
 *   SHMQ_ECORRUPT the queue's memory fails the checks made at open, or
 *                 its segment was destroyed (truncated by a client)
 *   SHMQ_EPROTO   the segment has another layout version
 *   SHMQ_ESYS, SHMQ_ENOMEM
 *                 mapping the queue failed, or a system call of the daemon
 *                 did (shmq_error_detail() says so)
 *   or a control error.  On any error *q is NULL (if q is not NULL).
 *
 * Blocks for one round trip to the daemon (two for a consumer of an
 * acked queue with a dead-letter queue, which opens that too: see "Acked
 * queues"), and with SHMQ_PREFAULT for the time it takes to map every
 * page of the queue.  A failure after the daemon granted the handle
 * (mapping it, or checking the segment) costs a second round trip, to
 * give the handle back.
 */
int shmq_open(const char *name, unsigned flags, shmq_t **q);
/*
 * shmq_detach - releases the handle and frees it, whatever it returns;
 * q must not be used afterwards.  The handle is marked detached in the
 * queue first, so a daemon that cannot be told now (being restarted)
 * releases it as detached, not as a lost producer, once it learns of it.
 * It does not wait for the daemon's answer: for a moment shmq_stat() may
 * still count the handle, and an auto-close queue may still be open.  A
 * reserved zero-copy put is cancelled, a viewed message left queued; on
 * an acked queue every lease the handle holds is returned for redelivery
 * at once, and its dead-letter queue handle is detached too.
 *
 * Returns:
 *   SHMQ_OK       detached; also when q is NULL (nothing to do) and when
 *                 no daemon can be reached (see above)
 *   SHMQ_EACCES, SHMQ_EPROTO, SHMQ_ELIMIT
 *                 the connection to the daemon had to be opened again and
 *                 was refused: the handle is released all the same, and
 *                 the daemon releases its attachment, as detached, when
 *                 this process exits (an auto-close queue closes then)
 *
 * It never starts a daemon: with none running, the mark in the queue
 * says it all.  Blocks only to send one packet (at most 10 s, should the
 * daemon read nothing), plus a round trip within the same 10 s if the
 * connection must be opened again (after a daemon restart).
 */
int shmq_detach(shmq_t *q);

/*
 * shmq_put - append the message msg[0..len) (copied; msg stays the
 * caller's).  While the queue is full - capacity messages queued, or the
 * byte budget would be exceeded - waits until there is room, the timeout
 * expires or the queue is closed.  A message is visible to consumers from
 * the moment shmq_put returns SHMQ_OK, and no process crash loses it
 * after.  Each producer's messages keep their order.
 *
 * Returns:
 *   SHMQ_OK        queued
 *   SHMQ_ECLOSED   the queue is closed, or was closed while waiting;
 *                  nothing queued
 *   SHMQ_E2BIG     len is above the queue's max_msg; nothing queued
 *   SHMQ_ETIMEDOUT no room before the timeout
 *   SHMQ_EAGAIN    timeout SHMQ_NOWAIT and no room (or the producers'
 *                  lock held for over 10 ms; with a descriptor, held
 *                  longer than a copy: see "Timeouts")
 *   SHMQ_EINTR     a signal handler ran while waiting; nothing queued
 *   SHMQ_EDEADLK   the wait was part of a deadlock and shmqd failed it to
 *                  break the deadlock (the queue has SHMQ_DEADLOCK_FAIL;
 *                  see "Deadlocks"); nothing queued
 *   SHMQ_EROLE     the handle was not opened with SHMQ_PRODUCER
 *   SHMQ_EINVAL    q is NULL, msg is NULL with len > 0, or a zero-copy
 *                  call is in progress on this handle
 *   SHMQ_ECORRUPT  the queue's memory is damaged
 *
 * Blocks as the timeout allows (see "Timeouts" above); never waits for
 * the daemon (see "Deadlocks" for the one notice a long wait sends it).
 */
int shmq_put(shmq_t *q, const void *msg, size_t len, int timeout_ms);

/*
 * shmq_get - take the oldest message, copying it into buf[0..size) and
 * setting *len to its length.  While the queue is empty, waits until a
 * message comes, the timeout expires or the queue is closed.  On a closed
 * queue it goes on returning what is queued, then end of stream.  Each
 * message goes to exactly one consumer; a message taken is gone from the
 * queue even if the caller dies before using it.  buf may be NULL if size
 * is 0.  On an acked queue a get leases and acks in one step: messages that
 * came back are taken first, and end of stream waits until no other
 * handle holds a lease (see shmq_lease()).
 *
 * Returns:
 *   SHMQ_OK        a message is in buf, *len bytes
 *   SHMQ_EOS       the queue is closed and drained (or was closed with
 *                  SHMQ_CLOSE_NOW): there will be no more messages
 *   SHMQ_EOS_LOST  the same, and some producer of this queue died
 *                  without detaching since it was created: the stream may
 *                  lack what that producer would have put
 *   SHMQ_EMSGSIZE  the oldest message is longer than size: *len is set to
 *                  its length and it stays queued
 *   SHMQ_ETIMEDOUT no message before the timeout
 *   SHMQ_EAGAIN    timeout SHMQ_NOWAIT and the queue is empty (or the
 *                  consumers' lock held for over 10 ms; with a
 *                  descriptor, held longer than a copy: see "Timeouts")
 *   SHMQ_EINTR     a signal handler ran while waiting; nothing taken
 *   SHMQ_EDEADLK   shmqd failed the wait to break a deadlock (see
 *                  "Deadlocks"); nothing taken
 *   SHMQ_EROLE     the handle was not opened with SHMQ_CONSUMER
 *   SHMQ_EINVAL    q or len is NULL, buf is NULL with size > 0, or a
 *                  zero-copy call is in progress on this handle
 *   SHMQ_ECORRUPT  the queue's memory is damaged
 *
 * Blocks as the timeout allows; never waits for the daemon (on an acked
 * queue with a dead-letter queue, except for one round trip in the case
 * "Dead letters" under "Acked queues" describes, never with
 * SHMQ_NOWAIT).
 */
int shmq_get(shmq_t *q, void *buf, size_t size, size_t *len, int timeout_ms);

/*
 * shmq_putv - put msgs[0..n) in order, as n calls of shmq_put would, with
 * one deadline for the whole batch.  It is not atomic: consumers may take
 * the first messages before the last are queued (a batch commits every
 * 32 KiB of payload), and while it waits for room other producers'
 * messages may come between its own.  *nput (nput may be NULL) is set on
 * every return to how many of msgs were queued: msgs[0..*nput).  n 0
 * returns SHMQ_OK at once.
 *
 * Returns SHMQ_OK when all n are queued; otherwise the status of
 * msgs[*nput], which was not queued, with the meanings of shmq_put:
 * SHMQ_ECLOSED, SHMQ_E2BIG (that message is too big; those before it are
 * queued), SHMQ_ETIMEDOUT, SHMQ_EAGAIN, SHMQ_EINTR, SHMQ_EDEADLK,
 * SHMQ_EROLE, SHMQ_EINVAL (q is NULL, msgs is NULL with n > 0, or a
 * zero-copy call is in progress) or SHMQ_ECORRUPT.
 *
 * Blocks as the timeout allows; never waits for the daemon.
 */
int shmq_putv(shmq_t *q, const struct iovec *msgs, size_t n, size_t *nput,
	      int timeout_ms);

/*
 * shmq_getv - wait until a message is queued (as shmq_get does), then take
 * the oldest messages, as many as are queued now and fit, up to n: each is
 * copied into buf, starting at a multiple of 16 bytes from buf, and
 * msgs[i] is set to point at message i and give its length.  It does not
 * wait for more than one.  A message that does not fit stays queued for
 * the next call.  *ngot (ngot may be NULL) is set on every return to the
 * number taken.  The pointers in msgs point into the caller's buf.
 *
 * Returns:
 *   SHMQ_OK        *ngot >= 1 messages taken
 *   SHMQ_EOS, SHMQ_EOS_LOST
 *                  end of stream, as for shmq_get; *ngot is 0
 *   SHMQ_EMSGSIZE  the oldest message is longer than size: nothing taken,
 *                  msgs[0].iov_len is its length, msgs[0].iov_base NULL
 *   SHMQ_ETIMEDOUT, SHMQ_EAGAIN, SHMQ_EINTR, SHMQ_EDEADLK, SHMQ_EROLE,
 *   SHMQ_ECORRUPT  as for shmq_get
 *   SHMQ_EINVAL    q or msgs is NULL, n is 0, buf is NULL with size > 0,
 *                  or a zero-copy call is in progress on this handle
 *
 * Blocks as the timeout allows; never waits for the daemon.
 */
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
 * commit on a queue closed meanwhile returns SHMQ_ECLOSED (dropped).
 *
 * On an acked queue, shmq_get_view() is a lease instead (as
 * shmq_lease_view()): no lock is held, take acks it and leave nacks it,
 * and either may return SHMQ_ELEASE if the lease ended in between (its
 * timeout passed); the rest of this paragraph is about plain queues.
 *
 * The lock belongs to the calling thread: commit or cancel (take or leave)
 * must be called by the thread that reserved (viewed); from another thread
 * the lock would never be released, and every producer (consumer) of the
 * queue would wait until that thread exits.  In between, put, get and the
 * batch and zero-copy calls on the handle return SHMQ_EINVAL, and
 * shmq_close() with SHMQ_CLOSE_NOW would wait a second for the lock the
 * handle holds itself (SHMQ_EBUSY); shmq_stat() and shmq_detach() are
 * fine.  The pointer handed out is valid until the commit, cancel, take,
 * leave or detach that ends the operation.
 */

/*
 * shmq_put_reserve - wait for room for a message of len bytes, as shmq_put
 * does, and set *data to where its bytes go (for len 0, a pointer not to
 * be written through).  Write exactly [*data, *data + len).
 *
 * Returns SHMQ_OK (the producers' lock is held until commit or cancel),
 * or, with nothing reserved, as shmq_put: SHMQ_ECLOSED, SHMQ_E2BIG,
 * SHMQ_ETIMEDOUT, SHMQ_EAGAIN, SHMQ_EINTR, SHMQ_EDEADLK, SHMQ_EROLE,
 * SHMQ_ECORRUPT, or
 * SHMQ_EINVAL (q or data is NULL, or a zero-copy call is already in
 * progress on this handle).
 */
int shmq_put_reserve(shmq_t *q, size_t len, void **data, int timeout_ms);
/*
 * shmq_put_commit - make the reserved message visible, and release the
 * producers' lock.  Never blocks.
 *
 * Returns SHMQ_OK (queued), SHMQ_ECLOSED (the queue was closed since the
 * reserve: the message is dropped), SHMQ_ECORRUPT (dropped), or
 * SHMQ_EINVAL (q is NULL, or nothing is reserved on it).  The reservation
 * ends whatever it returns.
 */
int shmq_put_commit(shmq_t *q);
/*
 * shmq_put_cancel - drop the reserved message and release the producers'
 * lock.  Never blocks.  Returns SHMQ_OK, or SHMQ_EINVAL (q is NULL, or
 * nothing is reserved on it).
 */
int shmq_put_cancel(shmq_t *q);
/*
 * shmq_get_view - wait for a message, as shmq_get does, and set *data and
 * *len to the oldest one, in place, without taking it.  *data is
 * read-only.  There is no buffer, so no SHMQ_EMSGSIZE.
 *
 * Returns SHMQ_OK (the consumers' lock is held until take or leave), or,
 * with nothing held, as shmq_get: SHMQ_EOS, SHMQ_EOS_LOST, SHMQ_ETIMEDOUT,
 * SHMQ_EAGAIN, SHMQ_EINTR, SHMQ_EDEADLK, SHMQ_EROLE, SHMQ_ECORRUPT, or
 * SHMQ_EINVAL (q, data or len is NULL, or a zero-copy call is already in
 * progress on this handle).
 */
int shmq_get_view(shmq_t *q, const void **data, size_t *len,
		  int timeout_ms);
/*
 * shmq_get_take - remove the viewed message and release the consumers'
 * lock.  shmq_get_leave - leave it queued (for this or another consumer)
 * and release the lock.  Neither blocks.  Both return SHMQ_OK, or
 * SHMQ_EINVAL (q is NULL, or no message is viewed on it).  On an acked
 * queue they are shmq_ack() and shmq_nack(): they may also return
 * SHMQ_ELEASE, and wait for the consumers' lock.
 */
int shmq_get_take(shmq_t *q);
int shmq_get_leave(shmq_t *q);
/* While this handle holds a view (shmq_get_view, shmq_lease_view), sets
 * *seq to the viewed message's position in the queue's stream (0, 1,
 * 2... in put order; the `seq` of struct shmq_msg below): a view left
 * and viewed again, or viewed again after its viewer died, has the same
 * seq.  SHMQ_EINVAL if no view is held.  Never blocks; same thread rules
 * as the view itself. */
int shmq_view_seq(const shmq_t *q, uint64_t *seq);

/* Iterate until end of stream:
 *   SHMQ_FOREACH(q, buf, sizeof buf, len, rc) { use(buf, len); }
 * afterwards rc is SHMQ_EOS, SHMQ_EOS_LOST or an error.
 *
 * It is shmq_get() with SHMQ_FOREVER in a while loop: `len` is a size_t
 * variable, `rc` an int.  Any status but SHMQ_OK ends the loop, including
 * SHMQ_EMSGSIZE (a message longer than size, left queued) and SHMQ_EINTR
 * (a signal handler ran: run the loop again to go on). */
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
/* SHMQ_CLOSE_LOST, or'ed into `how`: mark the queue "producer lost"
 * first (consumers end with SHMQ_EOS_LOST), as shmqd does when a producer
 * dies attached: for a relay that learns that the stream it carries
 * ended so (shmq-bridge).  Set even on a queue already closed. */
#define SHMQ_CLOSE_LOST  2u
/*
 * shmq_close - close the queue, for every process that has it open.  From
 * then on every put fails with SHMQ_ECLOSED (puts waiting for room wake
 * and fail); with SHMQ_CLOSE_DRAIN consumers still take what is queued,
 * then get SHMQ_EOS; with SHMQ_CLOSE_NOW what is queued is discarded and
 * consumers get SHMQ_EOS at once.  Closing is final: a queue never opens
 * again (delete it and create it anew).  Closing a closed queue is no
 * error; SHMQ_CLOSE_NOW after SHMQ_CLOSE_DRAIN discards what is left,
 * SHMQ_CLOSE_DRAIN after SHMQ_CLOSE_NOW changes nothing.  Any handle may
 * close, whatever its role, if its opener has write permission.  On an
 * acked queue, SHMQ_CLOSE_NOW also discards the messages waiting for
 * redelivery and the dead letters waiting for room in the dead-letter
 * queue, and each leased message when it comes back (nack, timeout,
 * holder gone: whichever consumer or joiner takes the consumers' lock next
 * discards it); acks go on working.
 * *discarded (discarded may be NULL) is set on every return: the number of
 * messages this call discarded, 0 for SHMQ_CLOSE_DRAIN.
 *
 * Returns:
 *   SHMQ_OK        closed
 *   SHMQ_EBUSY     SHMQ_CLOSE_NOW only: a stalled process held the
 *                  consumers' lock for over a second; the queue is closed
 *                  now all the same, and the next consumer to take the
 *                  lock discards what is left; *discarded is 0
 *   SHMQ_EACCES    the handle's opener has no write permission
 *   SHMQ_EINVAL    q is NULL, or `how` is neither SHMQ_CLOSE_DRAIN nor
 *                  SHMQ_CLOSE_NOW (either or'ed with SHMQ_CLOSE_LOST)
 *   SHMQ_ECORRUPT  SHMQ_CLOSE_NOW: the consumers' lock or the queue's
 *                  memory is damaged; the queue is closed all the same
 *
 * SHMQ_CLOSE_DRAIN never blocks; SHMQ_CLOSE_NOW waits up to one second
 * for the consumers' lock (no signal interrupts it).  Never talks to the
 * daemon.
 */
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
	uint32_t flags;          /* SHMQ_AUTO_CLOSE, SHMQ_ACKED,
				    SHMQ_DEADLOCK_FAIL */
	uint64_t messages;       /* queued now */
	uint64_t bytes;          /* bytes queued now */
	uint32_t producers;      /* not counting relays (SHMQ_RELAY) */
	uint32_t consumers;
	uint32_t put_blocked;    /* handles asleep in put */
	uint32_t get_blocked;    /* handles asleep in get */
	uint64_t total_put;
	uint64_t total_got;
	uint64_t discarded;      /* dropped by SHMQ_CLOSE_NOW */
	int      state;          /* enum shmq_state */
	int      auto_closed;    /* closed because the last producer left */
	int      producer_lost;  /* a producer died without detaching */
	int      deadlocked;     /* shmqd found calls blocked on this queue
				    deadlocked, at its last look (see
				    shmq_deadlocks) */
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
 * queued or returned, no other handle holds a lease (a leased message may
 * still come back), and no dead letter waits for room in the dead-letter
 * queue.  shmq_get() on an acked queue takes and acks in one step; shmq_lease() on a plain queue is a shmq_get() (m.lease is 0,
 * and acking it does nothing).  A process killed at any instruction loses
 * nothing: the only message delivered twice is one whose holder died
 * before its ack, and it comes back with its count raised.  A delivery is
 * counted if and only if it took effect: a consumer killed before its
 * lease (or redelivery) was committed leaves the count as it was.
 *
 * What else holds for the calls below:
 *  - A lease belongs to the handle that took it: only that handle can
 *    ack, nack or extend it (any of its threads).  When the lease has
 *    ended - acked, nacked, timed out (its deadline passed, even if nobody
 *    has noticed yet), or its handle detached - those calls return
 *    SHMQ_ELEASE and change nothing: the message may be another
 *    consumer's by now.  A lease of 0 (from a plain queue) names nothing:
 *    ack, nack and extend accept it and do nothing.
 *  - An ended lease is returned by the next consumer that takes the
 *    consumers' lock.  ack, nack and extend take that lock for a moment,
 *    waiting for it without a timeout; they never sleep for a message.
 *  - Dead letters: shmq_open() of a consumer handle of a queue with a
 *    dead-letter queue also opens that queue, as a relay producer
 *    (SHMQ_RELAY): one more round trip, attachment and handle per
 *    consumer handle, granted only if the caller may write the
 *    dead-letter queue itself; refused, shmq_open() succeeds without it.
 *    A dead letter is put there without waiting: while that queue is
 *    full or closed, or this handle has none, it stays here (stat's
 *    `returned`; shmq_pending: SHMQ_LEASE_DEAD_LETTER) and is tried
 *    again every second by whichever consumer takes the lock.  A handle
 *    without one tries to open it again at most once a second, in
 *    shmq_nack() and in calls with a timeout other than SHMQ_NOWAIT,
 *    never starting a daemon: one round trip (up to 10 s if the daemon
 *    does not answer).  docs/queues.md, "Acked queues", has the rest.
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

/*
 * shmq_lease - wait for a message, as shmq_get() does, copy it into
 * buf[0..size) and fill *m: m->data (in buf), m->len, m->lease (this
 * delivery), m->seq and m->deliveries.  Messages that came back are
 * delivered first, oldest first, then the oldest never delivered.  The
 * message stays in the queue, held by this handle, until it is acked or
 * the lease ends.  On a plain queue it is shmq_get(): the message is
 * taken, m->lease is 0 and m->deliveries 1.  buf may be NULL if size is 0.
 *
 * Returns:
 *   SHMQ_OK        *m is filled
 *   SHMQ_EOS, SHMQ_EOS_LOST
 *                  the queue is closed, nothing is queued or waiting for
 *                  redelivery or for the dead-letter queue, and no other
 *                  handle holds a lease (one might come back); this
 *                  handle's own leases do not delay it.  After
 *                  SHMQ_CLOSE_NOW, at once.
 *   SHMQ_EMSGSIZE  the message is longer than size: nothing is leased,
 *                  m->len is its length (on an acked queue the rest of *m
 *                  is zeroed)
 *   SHMQ_ETIMEDOUT, SHMQ_EAGAIN, SHMQ_EINTR, SHMQ_EDEADLK, SHMQ_ECORRUPT
 *                  as for shmq_get()
 *   SHMQ_EROLE     the handle was not opened with SHMQ_CONSUMER
 *   SHMQ_EINVAL    q or m is NULL, buf is NULL with size > 0, or a
 *                  zero-copy call is in progress on this handle
 *
 * Blocks as the timeout allows; with a timeout other than SHMQ_NOWAIT
 * it may also make the dead-letter queue's round trip (see "Dead
 * letters" above).
 */
int shmq_lease(shmq_t *q, void *buf, size_t size, struct shmq_msg *m,
	       int timeout_ms);
/*
 * shmq_leasev - shmq_lease() for up to n messages at once, as shmq_getv()
 * is to shmq_get(): it waits for one, then leases as many as are there and
 * fit, each copied into buf at a multiple of 16 bytes from buf, msgs[i]
 * filled for message i.  *ngot (ngot may be NULL) is set on every return
 * to the number leased.
 *
 * On a plain queue more than 16 messages are taken 16 at a time, and
 * another consumer may take messages between two such chunks.
 *
 * Returns SHMQ_OK (*ngot >= 1), or as shmq_lease() with nothing leased;
 * SHMQ_EINVAL also if msgs is NULL or n is 0.
 */
int shmq_leasev(shmq_t *q, void *buf, size_t size, struct shmq_msg *msgs,
		size_t n, size_t *ngot, int timeout_ms);
/*
 * shmq_lease_view - shmq_lease() without the copy: m->data points at the
 * message's copy in the queue's memory, read-only, valid until the lease
 * ends (ack, nack, timeout, detach; then the memory may hold another
 * message).  No lock is held meanwhile.  Acked queues only.
 *
 * Returns as shmq_lease() (without SHMQ_EMSGSIZE); SHMQ_EINVAL also on a
 * plain queue (use shmq_get_view()).
 */
int shmq_lease_view(shmq_t *q, struct shmq_msg *m, int timeout_ms);
/*
 * shmq_ack - the work is done: the leased message leaves the queue, and
 * its room is free for producers.
 *
 * Returns SHMQ_OK (also for lease 0), SHMQ_ELEASE (the lease had ended;
 * nothing done), SHMQ_EINVAL (q or m is NULL), or SHMQ_ECORRUPT.  Waits
 * for the consumers' lock, without a timeout.
 */
int shmq_ack(shmq_t *q, const struct shmq_msg *m);
/*
 * shmq_ackv - shmq_ack() for msgs[0..n), under one lock.  *nacked (nacked
 * may be NULL) is set to how many were acked (n 0: SHMQ_OK at once).
 *
 * Returns SHMQ_OK when all were; SHMQ_ELEASE if any lease had ended (the
 * others are acked all the same); SHMQ_EINVAL (q is NULL, or msgs is NULL
 * with n > 0); SHMQ_ECORRUPT.
 */
int shmq_ackv(shmq_t *q, const struct shmq_msg *msgs, size_t n,
	      size_t *nacked);
#define SHMQ_NACK_DEAD 0x1u     /* shmq_nack: dead-letter it now */
/*
 * shmq_nack - give the message back: it is delivered again, before every
 * message never delivered.  With SHMQ_NACK_DEAD, or once it has been
 * delivered max_deliveries times, it goes to the dead-letter queue instead
 * (without one, it is dropped and counted in stat's `dropped`).  On a
 * queue closed with SHMQ_CLOSE_NOW it is discarded.
 *
 * Returns SHMQ_OK (also for lease 0: a plain queue's message is gone
 * already), SHMQ_ELEASE (the lease had ended; nothing done), SHMQ_EINVAL
 * (q or m is NULL, or flags other than SHMQ_NACK_DEAD), or SHMQ_ECORRUPT.
 * Waits for the consumers' lock, without a timeout, and for a dead letter
 * up to 10 ms for the dead-letter queue's producers' lock; may first make
 * the dead-letter queue's round trip (see "Dead letters" above).
 */
int shmq_nack(shmq_t *q, const struct shmq_msg *m, unsigned flags);
/*
 * shmq_extend - set the lease's deadline to `ms` milliseconds from now;
 * ms 0: the queue's lease timeout from now (never, if it has none).  It
 * may shorten the lease (a deadline sooner than the one it had), and it
 * gives a deadline to a lease of a queue without a lease timeout; the
 * lease then ends as a timed-out one does.
 *
 * Returns SHMQ_OK (also for lease 0), SHMQ_ELEASE (the lease had ended,
 * its deadline included: extend before it passes), SHMQ_EINVAL (q or m is
 * NULL, or ms < 0), or SHMQ_ECORRUPT.  Waits for the consumers' lock,
 * without a timeout.
 */
int shmq_extend(shmq_t *q, const struct shmq_msg *m, int ms);
/*
 * shmq_join - wait until every message put before the call is settled:
 * taken by a get, acked, dead-lettered, dropped or discarded.  On a plain
 * queue, until consumers have taken them all.  Any handle may join,
 * whatever its role; leases held by the caller's own handle count too, so
 * ack them first.
 *
 * What needs no consumer to be settled, a join settles itself: after
 * SHMQ_CLOSE_NOW, the messages the closer could not discard and the
 * leases whose holder died (or whose deadline passed); and dead letters
 * due for another try (if this handle has a dead-letter queue).  It takes
 * the consumers' lock for that, waiting for it at most 10 ms.
 *
 * Returns SHMQ_OK, SHMQ_ETIMEDOUT, SHMQ_EAGAIN (SHMQ_NOWAIT, not settled
 * yet), SHMQ_EINTR, or SHMQ_EINVAL (q is NULL).  Sleeps at once (no
 * spinning), looking again at least every second; never talks to the
 * daemon.
 */
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
/*
 * shmq_pending - set *list to a malloc()ed array of *n entries, one per
 * message that is leased, waiting for redelivery, or waiting for room in
 * the dead-letter queue; the caller frees it with free().  With none (and
 * on a plain queue), *list is NULL and *n 0.  Read from the queue's memory
 * without a lock: each entry is current when read.  A lease that has
 * ended (its holder gone, its deadline passed) but that no consumer has
 * returned yet is listed as SHMQ_LEASE_WAITING, and counted so by
 * shmq_stat() (`returned`, not `leased`).
 *
 * Returns SHMQ_OK, SHMQ_EINVAL (q, list or n is NULL) or SHMQ_ENOMEM
 * (then *list is NULL and *n 0).  Never blocks, never talks to the daemon.
 */
int shmq_pending(shmq_t *q, struct shmq_lease_info **list, size_t *n);

/*
 * Event loops: a descriptor to poll, and a wait that takes nothing.
 *
 * shmq_fd() gives a handle's descriptor for one direction, to watch for
 * readability with poll, epoll, libevent, GLib or asyncio alongside
 * sockets and timers: SHMQ_POLL_GET (a consumer handle) says a get may
 * proceed, SHMQ_POLL_PUT (a producer handle) that a put may.  It is made
 * by the first call and returned again after that; it belongs to the
 * handle and is closed by shmq_detach() (take it out of your loop
 * first).  Never read, write or close it.  On each wake-up:
 *
 *   while ((rc = shmq_get(q, buf, sizeof buf, &len,
 *                         SHMQ_NOWAIT)) == SHMQ_OK)
 *           handle(buf, len);
 *   if (rc != SHMQ_EAGAIN)            end of stream or an error:
 *           stop_watching(fd);        else wait for the next wake-up
 *
 * The contract.  A call in the descriptor's direction made with
 * SHMQ_NOWAIT that returns SHMQ_EAGAIN because there was nothing to do
 * arms it (get side: shmq_get, shmq_getv, shmq_get_view, shmq_lease,
 * shmq_leasev, shmq_lease_view; put side: shmq_put, shmq_putv,
 * shmq_put_reserve; either: shmq_wait with SHMQ_NOWAIT).  Arming empties
 * it; once armed it becomes readable as soon as a call in its direction
 * may proceed (get side: a message was put, a lease came back, the queue
 * was closed; put side: a message was taken or acked, the queue was
 * closed).  No wake-up is lost, not even when the process that made the
 * change is killed right after it: shmqd then wakes every armed
 * descriptor of the queue.  A wake-up may be spurious, so call until
 * SHMQ_EAGAIN (which arms it again) or the end.  When another handle
 * holds the side's lock longer than a copy takes, the call returns
 * SHMQ_EAGAIN at once and the descriptor fires again after 1 ms, then
 * after delays doubling up to 32 ms.  Blocking calls neither arm nor
 * disarm it.  A new descriptor starts readable.  Level-triggered loops may
 * take one message per wake-up; edge-triggered ones (EPOLLET, EV_ET) must
 * call until SHMQ_EAGAIN.  On an acked queue the get descriptor also fires
 * when a lease another handle holds may have timed out.  shmq_join and
 * acks are not pollable.
 *
 * Cost: nothing per message while no handle of the queue is armed; one
 * or two system calls per arming; one datagram per armed handle at the
 * first commit after it, nothing for the commits that follow.
 *
 * Network namespaces: wake-ups are datagrams to an abstract AF_UNIX
 * socket, so every process that changes the queue, and shmqd, must share
 * the poller's network namespace; shmq_fd refuses (SHMQ_ESYS, errno
 * EXDEV) when shmqd's differs.  Blocking calls and shmq_wait() work
 * across namespaces.  libshmq(3), "Event loops", and
 * docs/examples/evloop.c (a libevent program) give the whole story.
 *
 * shmq_fd: SHMQ_OK with *fd set (never blocks), SHMQ_EINVAL (bad `dir`,
 * fd NULL), SHMQ_EROLE (the handle lacks the role), SHMQ_ELIMIT (out of
 * descriptors), SHMQ_ENOMEM, SHMQ_ESYS (see errno; EXDEV: shmqd runs in
 * another network namespace, see above).  Thread-safe.
 */
#define SHMQ_POLL_GET 0x1u
#define SHMQ_POLL_PUT 0x2u
int shmq_fd(shmq_t *q, unsigned dir, int *fd);

/*
 * shmq_wait: waits until a call in direction `dir` would not block, and
 * takes nothing.  SHMQ_POLL_GET: until a message, a returned lease or the
 * end of stream is there (`len` is ignored); SHMQ_POLL_PUT: until there is
 * room for a message of `len` bytes, or the queue is closed.  It waits as
 * a blocking get or put does (spins, then sleeps; the same timeouts), but
 * never takes the queue's lock or a message, so a caller may abandon it
 * at any moment (a cancelled await in a language binding) and nothing is
 * lost.  Returns SHMQ_OK when the call may proceed: it may still have to
 * wait, or find nothing with SHMQ_NOWAIT, if another handle got there
 * first; and it returns what that call returns (end of stream,
 * SHMQ_ECLOSED).  SHMQ_EAGAIN with SHMQ_NOWAIT (and the descriptor, if
 * the handle has one, is armed), SHMQ_ETIMEDOUT, SHMQ_EINTR (a signal
 * handler ran), SHMQ_EDEADLK (its wait counts as the put's or get's for
 * deadlock detection, and shmqd failed it to break a deadlock; see
 * "Deadlocks"), SHMQ_EINVAL, SHMQ_EROLE, SHMQ_E2BIG (`len` above the
 * queue's maximum).  Thread-safe.
 */
int shmq_wait(shmq_t *q, unsigned dir, size_t len, int timeout_ms);

/*
 * shmq_stat - fill *st with the queue's settings and counters, read from
 * its shared memory without a lock: each field is current when read, but
 * under load the fields are not one snapshot (messages and the totals may
 * disagree by what moved meanwhile).  `deadlocked` is shmqd's word, as of
 * its last look.  name, uid, gid and mode are the daemon's record; the
 * counters are what the processes sharing the queue wrote (a scribbler
 * can make them say anything: they are only ever displayed).  put_blocked and get_blocked count the
 * handles asleep in the kernel, not those spinning for a moment.  On an
 * acked queue, `messages` and `bytes` include the messages waiting for
 * redelivery, `discarded` those dropped after SHMQ_CLOSE_NOW, and the
 * fields below closed_ns are filled.
 *
 * Returns SHMQ_OK, or SHMQ_EINVAL (q or st is NULL).  Never blocks, never
 * talks to the daemon.
 */
int shmq_stat(shmq_t *q, struct shmq_stat *st);
/* shmq_max_msg - the queue's max_msg, or 0 if q is NULL.  Never blocks. */
size_t shmq_max_msg(const shmq_t *q);
/* shmq_name - the queue's name, or NULL if q is NULL; it belongs to the
 * handle, valid until shmq_detach(q).  Never blocks. */
const char *shmq_name(const shmq_t *q);

/*
 * shmq_stat_name - shmq_stat() without a handle: the daemon reads the
 * queue's memory and sends the numbers.  Needs read permission.
 *
 * Returns SHMQ_OK; SHMQ_EINVAL (st is NULL); SHMQ_ENAME; SHMQ_ENOENT;
 * SHMQ_EACCES (no read permission); SHMQ_ECORRUPT (the queue's segment was
 * destroyed); or a control error.  Blocks for one round trip.
 */
int shmq_stat_name(const char *name, struct shmq_stat *st);
/*
 * shmq_close_name - shmq_open(name, 0), shmq_close(how), shmq_detach().
 *
 * Returns what shmq_open() or shmq_close() returned: among them
 * SHMQ_ENOENT, SHMQ_EACCES (no read permission to open, or no write
 * permission to close), SHMQ_EBUSY, SHMQ_EINVAL (`how` unknown; checked
 * first), SHMQ_ENAME, SHMQ_ELIMIT and the control errors.  *discarded as
 * for shmq_close().  Blocks for one round trip, plus up to a second for
 * SHMQ_CLOSE_NOW, plus sending the detach.
 */
int shmq_close_name(const char *name, unsigned how, uint64_t *discarded);
/*
 * shmq_delete - remove the name; open handles keep working until they
 * detach.  As with unlinking a file, the name is free at once (a new
 * queue may be created under it) while the handles already open keep the
 * old queue, its messages and its memory until the last one detaches or
 * its process exits; then the daemon frees it.  Only the queue's owner, or
 * root, may delete it, whatever its mode.
 *
 * Returns SHMQ_OK; SHMQ_ENAME; SHMQ_ENOENT; SHMQ_EACCES (not the owner);
 * or a control error.  Blocks for one round trip.
 */
int shmq_delete(const char *name);
/*
 * shmq_list - every queue the caller may read, sorted by name; free with
 * free().  Sets *list to a malloc()ed array of *n entries, one per queue
 * the caller has read permission on, each filled as by shmq_stat_name().
 * With no queue, *list is NULL and *n 0.  The daemon sends 64 queues per
 * round trip, so a long list is not one snapshot: a queue created or
 * deleted meanwhile may be missing or still listed.
 *
 * Returns SHMQ_OK; SHMQ_EINVAL (list or n is NULL); SHMQ_ENOMEM; or a
 * control error.  On error *list is NULL and *n 0.  Blocks for one round
 * trip per 64 queues.
 */
int shmq_list(struct shmq_stat **list, size_t *n);

/*
 * Users and their quotas.  shmqd counts, per uid, the shared memory its
 * queues reserve in /dev/shm (whole pages, from create until the memory
 * is freed), its queues, its connections and its open handles.  Every uid
 * but the daemon's own has a quota of each (shmqd --user-max-bytes,
 * --user-max-queues, --user-max-clients, --user-max-handles), and all
 * users together are bound by the daemon's limits.  What would go over
 * one is refused with SHMQ_ELIMIT, and shmq_error_detail() names the
 * quota, the usage and the limit.  shmqd(8) gives the defaults.
 */
#define SHMQ_UNLIMITED    UINT64_MAX  /* a limit that is not there */
#define SHMQ_USER_EXEMPT  0x1u        /* the daemon's own uid: only the
					 daemon's limits bind it */
struct shmq_user {
	uint32_t uid;
	uint32_t flags;         /* SHMQ_USER_EXEMPT */
	uint64_t bytes;         /* shared memory reserved for its queues */
	uint64_t max_bytes;     /* each max_*: the smaller of the uid's
				   quota and the daemon's limit, or
				   SHMQ_UNLIMITED */
	uint64_t queues, max_queues;
	uint64_t clients, max_clients;   /* connections */
	uint64_t handles, max_handles;   /* open handles */
};
/*
 * shmq_users - the users the caller may see, with their usage and
 * limits.  Sets *list to a malloc()ed array of *n entries in uid order
 * (free it with free()) and, if `total` is not NULL, fills *total with
 * everybody's usage against the daemon's limits (uid UINT32_MAX;
 * max_handles is SHMQ_UNLIMITED: there is no global handle limit).  Root
 * and the daemon's own uid see every uid that holds anything; any other
 * caller sees one entry, its own, even when it holds nothing (its limits
 * are worth knowing).  The caller's connection, used for the call,
 * counts among its clients.  The daemon sends 256 users per round trip,
 * so a long list is not one snapshot.
 *
 * Returns SHMQ_OK; SHMQ_EINVAL (list or n is NULL); SHMQ_ENOMEM; or a
 * control error.  On error *list is NULL and *n 0 (*total is left
 * alone).  Blocks for one round trip per 256 users.
 */
int shmq_users(struct shmq_user **list, size_t *n, struct shmq_user *total);

/*
 * Deadlocks.  Bounded queues in a cycle (A -> B -> C -> A) can deadlock:
 * every process waits in put for a queue that only another waiting
 * process would drain.  shmqd finds such deadlocks across processes and
 * names them (in its log, and here); with SHMQ_DEADLOCK_FAIL it also
 * breaks them.  The model:
 *
 *  - A process is stuck when every one of its threads is blocked in a
 *    put or a get of shmq (a zero-copy or lease call, or shmq_wait(),
 *    counts as one), each for longer than shmqd's --deadlock-timeout
 *    (default 1 s), the process is not stopped (SIGSTOP, a debugger, the
 *    cgroup freezer), and two looks at the queues it waits on, half a
 *    timeout apart, show no message put, taken, acked or returned, and
 *    no close.
 *  - A put on Q can be ended by any consumer of Q (a get makes room), a
 *    get by any producer (a put), on an acked queue also by a lease
 *    holder (an ack, nack or return), and any wait on Q by any process
 *    that has Q open (it could close Q).
 *  - Deadlocked are the stuck processes whose every wait only other
 *    deadlocked processes could end: a set that nobody outside it can
 *    free.  Among them, those that wait for each other in a cycle are the
 *    deadlock proper; the others are blocked behind it.  A wait that no
 *    process with the queue open could end (no consumer of a full queue,
 *    say, between two runs of `qctl get`) is not a deadlock: a process
 *    that opens the queue later may end it.
 *
 * So a slow consumer, a producer busy or asleep outside shmq, another
 * thread still running, or a stopped process on the path never make a
 * deadlock.  What shmq cannot see it cannot count: a wait that goes
 * through a pipe, a socket, a lock or shmq_join() is not found.  A call
 * whose timeout ends before shmqd's next look is never part of one (nor
 * failed); one with a longer timeout counts, and its row says when it
 * ends (ends_in_ns).  Waits are timed on the client's CLOCK_MONOTONIC.
 * A deadlock is found within twice the timeout.  docs/queues.md,
 * "Deadlocks", gives the corner cases (signal handlers, time namespaces,
 * changes shmq cannot see).
 */
#define SHMQ_DEADLOCK_FREERS 8
/* One wait of one process in a deadlock. */
struct shmq_deadlock_wait {
	unsigned deadlock;      /* which deadlock: rows with the same number
				   are one, numbered from 0 */
	int      behind;        /* 1: the process is blocked behind the
				   deadlock (it waits for it), not in it */
	uint32_t pid;
	char     comm[16];      /* its command name (/proc/PID/comm) */
	int      put;           /* 1: blocked in put (full); 0: in get */
	/* queue "": one the caller may not read (messages, capacity,
	 * bytes, max_bytes and fail are then 0) */
	char     queue[SHMQ_NAME_MAX_LEN + 1];
	uint32_t messages;      /* queued (and leased) when shmqd looked */
	uint32_t capacity;
	uint64_t bytes;         /* their bytes, if known */
	uint64_t max_bytes;     /* byte budget (0: none): a put blocked
				   below capacity waits for room in it */
	uint32_t threads;       /* threads of the process blocked in it */
	int64_t  blocked_ns;    /* how long the latest of them had waited */
	int64_t  ends_in_ns;    /* > 0: the (earliest) call returns by
				   itself this long after the look unless
				   freed first; 0: no timeout */
	int      fail;          /* the queue has SHMQ_DEADLOCK_FAIL */
	int      victim;        /* shmqd chose this wait to fail with
				   SHMQ_EDEADLK */
	uint32_t nfreers;       /* processes that could end the wait, all
				   deadlocked too; freers: the first 8 */
	uint32_t freers[SHMQ_DEADLOCK_FREERS];
};
/*
 * shmq_deadlocks - the deadlocks shmqd found at its last look (it looks
 * every half deadlock timeout while some call is blocked): sets *list to a
 * malloc()ed array of *n rows, one per wait of a process in a deadlock,
 * the rows of one deadlock together (its cycle first, then the processes
 * behind it); the caller frees it with free().  With none, *list is NULL
 * and *n 0; also when shmqd runs with --deadlock-timeout 0 (it looks for
 * none).  At most 128 rows: the rest of a larger picture is left off.
 * Only deadlocks involving a queue the caller may read are listed (root:
 * all); a deadlock spans users, and its pids and command names are public
 * in /proc anyway, but a queue's name never is: a wait on a queue the
 * caller may not read is listed with queue "" (and nothing of what the
 * queue holds).
 *
 * Returns SHMQ_OK; SHMQ_EINVAL (list or n is NULL); SHMQ_ENOMEM; or a
 * control error.  On error *list is NULL and *n 0.  Blocks for one round
 * trip.
 */
int shmq_deadlocks(struct shmq_deadlock_wait **list, size_t *n);
/*
 * shmq_wait_continue - for a binding that makes one blocking call out of
 * several libshmq calls with short timeouts (slices, with its signal
 * handlers run in between, as the Python binding does): until this thread
 * calls it with since_ns 0, its blocking puts, gets and shmq_wait()s are,
 * for deadlock detection, slices of one call that began at since_ns
 * (CLOCK_MONOTONIC ns) and ends at deadline_ns (0: none), counted and
 * failed as one (a slice ending by timeout or SHMQ_EINTR after shmqd chose
 * the call returns SHMQ_EDEADLK).  Set it just before each slice, clear
 * it just after; make no blocking call from a C signal handler meanwhile.
 * Limits: docs/queues.md, Deadlocks.  SHMQ_OK, or SHMQ_EINVAL (a negative
 * time).  Thread-local; never blocks.
 */
int shmq_wait_continue(int64_t since_ns, int64_t deadline_ns);

/* SHMQ_OK if `name` is 1-255 bytes of [A-Za-z0-9._-] not starting with
 * '.', SHMQ_ENAME otherwise (NULL too).  Never blocks, never talks to the
 * daemon. */
int shmq_check_name(const char *name);
/*
 * shmq_strerror - a constant English phrase for any status ("unknown
 * status" for a number that is none), never NULL.  Never blocks.
 */
const char *shmq_strerror(int status);
/*
 * shmq_error_detail - why this thread's last call to the daemon failed, in
 * words, or "" if there is nothing to add to the status: the explanation
 * that came with the error of this thread's last call to the daemon (see
 * "Calls to the daemon"), e.g. which limit was hit.  When the daemon could
 * not be reached (SHMQ_ENODAEMON, or SHMQ_EACCES from connect(2)), the
 * cause: the socket tried and what connect(2) said, that autostart is off
 * (and why), or which binary autostart ran and what became of it (its
 * exec error, its exit status, or that nothing answered in time); also a
 * reply that timed out, a lost connection, a daemon of another wire
 * version.  One line of at most a few hundred bytes.  Calls on a handle
 * (put, get, close, ...) leave it alone.  Never NULL.  The string is the
 * thread's own: valid until this thread's next call to the daemon or its
 * exit; copy it to keep it.
 */
const char *shmq_error_detail(void);
/*
 * shmq_version - the version of the library linked at run time, as
 * "MAJOR.MINOR.PATCH" (SHMQ_VERSION_STRING is the header's).  A constant
 * string.
 */
const char *shmq_version(void);

#ifdef __cplusplus
}
#endif
#endif /* SHMQ_H */
