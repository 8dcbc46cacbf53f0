/*
 * shmq.c - the public API of libshmq (<shmq.h>).
 *
 * Handles, argument checks and the calls to the daemon live here; the
 * queue operations themselves are ring.c's.  Nothing on the put/get path
 * here may do more than check the handle and call into the ring.
 */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "control.h"
#include "ring.h"
#include "shmq.h"
#include "wire.h"

struct shmq {
	struct ring ring;
	void *map;
	size_t map_size;
	uint64_t queue_id;
	uint32_t client;
	uint32_t gen;
	unsigned flags;         /* SHMQ_PRODUCER | SHMQ_CONSUMER */
	unsigned access;        /* SHMQ_ACCESS_* granted by the daemon */
	uint32_t uid, gid, mode;        /* the daemon's word, not the segment's */
	char name[SHMQ_NAME_MAX + 1];
	/* Acked queues: the dead-letter queue of a consumer handle, opened
	 * with it (see want_dead_letter).  dlq_lock serialises opening,
	 * replacing and detaching it (round trips to the daemon: never
	 * taken under the queue's own lock); dlq and dlq_retry_ns are
	 * under it.  The dead-letter callback reaches the handle through
	 * the ring's dead_letter_ctx, which changes under the consumers'
	 * lock (ring_set_dead_letter): never through dlq.  dlq_want, set
	 * when there is none or its queue was deleted, says a new one is
	 * wanted (atomic: the calls look at it without the lock).  A
	 * dead-letter handle's `parent` is the consumer handle. */
	pthread_mutex_t dlq_lock;
	struct shmq *dlq, *parent;
	int64_t dlq_retry_ns;
	int dlq_want;
	/* The lease behind shmq_get_view(). */
	struct shmq_msg viewed;
	int viewing;
	/* Serialises the creation of the pollable descriptors. */
	pthread_mutex_t poll_lock;
};

const char *shmq_version(void)
{
	return SHMQ_VERSION_STRING;
}

const char *shmq_error_detail(void)
{
	return control_detail();
}

int shmq_check_name(const char *name)
{
	if (name == NULL)
		return SHMQ_ENAME;
	size_t n = strnlen(name, SHMQ_NAME_MAX + 1);
	if (n > SHMQ_NAME_MAX)
		return SHMQ_ENAME;
	return wire_check_name(name, n + 1, 0);
}

/* Copies a checked name into a wire field. */
static int put_name(char field[SHMQ_WIRE_NAME], const char *name)
{
	int rc = shmq_check_name(name);
	if (rc == SHMQ_OK)
		strcpy(field, name);
	return rc;
}

void shmq_attr_init(struct shmq_attr *attr)
{
	memset(attr, 0, sizeof(*attr));
	attr->capacity = SHMQ_DEFAULT_CAPACITY;
	attr->max_msg = SHMQ_DEFAULT_MAX_MSG;
	attr->mode = SHMQ_DEFAULT_MODE;
}

int shmq_create(const char *name, const struct shmq_attr *attr,
		unsigned flags)
{
	struct shmq_wire_create req = { 0 };
	struct shmq_wire_status rep;
	struct shmq_attr def;
	size_t len;
	int rc;

	if ((rc = put_name(req.name, name)) != SHMQ_OK)
		return rc;
	if (attr == NULL) {
		shmq_attr_init(&def);
		attr = &def;
	}
	if (flags & ~SHMQ_EXIST_OK ||
	    attr->flags & ~(SHMQ_AUTO_CLOSE | SHMQ_ACKED |
			    SHMQ_DEADLOCK_FAIL) ||
	    attr->mode & ~0777u)
		return SHMQ_EINVAL;
	req.capacity = attr->capacity;
	req.max_msg = attr->max_msg;
	req.max_bytes = attr->max_bytes;
	req.mode = attr->mode;
	req.config_flags =
		((attr->flags & SHMQ_AUTO_CLOSE) ? SHMQ_CFG_AUTO_CLOSE : 0) |
		((attr->flags & SHMQ_ACKED) ? SHMQ_CFG_ACKED : 0) |
		((attr->flags & SHMQ_DEADLOCK_FAIL) ? SHMQ_CFG_DEADLOCK_FAIL
						    : 0);
	req.lease_timeout_ms = attr->lease_timeout_ms;
	req.max_deliveries = attr->max_deliveries;
	if (attr->dead_letter && attr->dead_letter[0] &&
	    (rc = put_name(req.dead_letter, attr->dead_letter)) != SHMQ_OK)
		return rc;
	req.flags = (flags & SHMQ_EXIST_OK) ? SHMQ_WIRE_EXIST_OK : 0;
	return control_call(SHMQ_MSG_CREATE, &req, sizeof(req), &rep,
			    sizeof(rep), &len, NULL);
}

static void release(const struct shmq *q)
{
	struct shmq_wire_detach req = {
		.queue_id = q->queue_id,
		.client = q->client,
		.gen = q->gen,
	};
	struct shmq_wire_status rep;
	size_t len;

	control_call(SHMQ_MSG_DETACH, &req, sizeof(req), &rep, sizeof(rep),
		     &len, NULL);
}

static int dead_letter(void *ctx, const void *msg, size_t len);
static void blocked(void *ctx, int side);

/* Opens a handle: `role` is what the daemon is asked for (SHMQ_ROLE_* or
 * SHMQ_WIRE_DEAD_LETTER), `flags` the caller's SHMQ_* open flags; `quiet`
 * starts no daemon (control_call_quiet). */
static int open_handle(const char *name, uint32_t role, unsigned flags,
		       int quiet, shmq_t **qp)
{
	struct shmq_wire_open req = { 0 };
	struct shmq_wire_open_reply rep;
	struct shmq *q = NULL;
	struct stat st;
	size_t len;
	int fd = -1, rc;

	*qp = NULL;
	if ((rc = put_name(req.name, name)) != SHMQ_OK)
		return rc;
	req.role = role;

	q = calloc(1, sizeof(*q));
	if (q == NULL)
		return SHMQ_ENOMEM;
	q->map = MAP_FAILED;
	rc = (quiet ? control_call_quiet : control_call)(
		SHMQ_MSG_OPEN, &req, sizeof(req), &rep, sizeof(rep), &len, &fd);
	if (rc != SHMQ_OK)
		goto fail;
	q->queue_id = rep.queue_id;
	q->client = rep.client;
	q->gen = rep.gen;
	q->access = rep.access;
	q->uid = rep.uid;
	q->gid = rep.gid;
	q->mode = rep.mode;
	q->flags = flags & (SHMQ_PRODUCER | SHMQ_CONSUMER);
	strcpy(q->name, name);
	q->viewed.lease = 0;
	if (fd < 0) {
		rc = SHMQ_EPROTO;
		goto fail_attached;
	}
	/* The segment's own size, not the daemon's word, bounds the mapping. */
	if (fstat(fd, &st) < 0 || st.st_size <= 0 ||
	    (uint64_t)st.st_size < rep.seg_size) {
		rc = SHMQ_ECORRUPT;
		goto fail_attached;
	}
	q->map_size = (size_t)st.st_size;
	q->map = mmap(NULL, q->map_size, PROT_READ | PROT_WRITE,
		      MAP_SHARED | (flags & SHMQ_PREFAULT ? MAP_POPULATE : 0),
		      fd, 0);
	if (q->map == MAP_FAILED) {
		rc = errno == ENOMEM ? SHMQ_ENOMEM : SHMQ_ESYS;
		goto fail_attached;
	}
	close(fd);
	fd = -1;
	/* A child of fork() may not use the handle (see shmq.h), so it gets
	 * no copy of the mapping: one it kept would hold the queue's memory
	 * past the queue's delete, where the daemon no longer counts it. */
	(void)madvise(q->map, q->map_size, MADV_DONTFORK);
	rc = ring_attach(&q->ring, q->map, q->map_size);
	if (rc == SHMQ_OK && q->ring.queue_id != q->queue_id)
		rc = SHMQ_ECORRUPT;
	if (rc == SHMQ_OK)
		rc = ring_client_bind(&q->ring, q->client, q->gen);
	if (rc != SHMQ_OK)
		goto fail_attached;
	q->ring.dead_letter = dead_letter;
	q->ring.dead_letter_ctx = NULL;
	pthread_mutex_init(&q->poll_lock, NULL);
	pthread_mutex_init(&q->dlq_lock, NULL);
	q->ring.blocked = blocked;
	q->ring.blocked_ctx = q;
	*qp = q;
	return SHMQ_OK;

fail_attached:
	release(q);
fail:
	if (fd >= 0)
		close(fd);
	if (q->map != MAP_FAILED)
		munmap(q->map, q->map_size);
	free(q);
	return rc;
}

/* --- dead-letter queues -------------------------------------------------- */

/*
 * A consumer handle of an acked queue with a dead-letter queue opens that
 * queue too (a relay producer, through the daemon), at shmq_open: the
 * consumers' lock must never wait for a round trip.  When that open failed
 * (no such queue, no write permission there, no daemon), or the
 * dead-letter queue was deleted since (its segment says so: a queue made
 * again under that name is another), dead letters wait in the acked queue
 * and a new handle is wanted.  Only calls that may talk to the daemon try
 * again, at most once a second and without starting a daemon: shmq_nack()
 * when it may make a dead letter or some wait, and the calls that may
 * block (timeout not SHMQ_NOWAIT) when some wait.
 */
#define DLQ_RETRY_NS 1000000000

enum dlq_when { DLQ_AT_OPEN, DLQ_LATER };

/* Under dlq_lock: is a new dead-letter handle wanted? */
static int dlq_stale(const struct shmq *q)
{
	return q->dlq == NULL ||
	       (__atomic_load_n(&q->dlq->ring.hdr->state_flags,
				__ATOMIC_ACQUIRE) & SHMQ_ST_DELETED);
}

/* Under dlq_lock: opens the dead-letter queue for consumer handle q and
 * hands it to the ring, in place of the one it had. */
static void dlq_open(struct shmq *q, enum dlq_when when)
{
	char keep[SHMQ_WIRE_DETAIL];
	struct shmq *d = NULL;
	void *old = NULL;
	int rc;

	strncpy(keep, shmq_error_detail(), sizeof(keep) - 1);
	keep[sizeof(keep) - 1] = '\0';
	rc = open_handle(q->name, SHMQ_WIRE_DEAD_LETTER, SHMQ_PRODUCER,
			 when != DLQ_AT_OPEN, &d);
	if (rc == SHMQ_OK) {
		d->parent = q;
		/* At open nothing of q's can be running a callback yet: no
		 * need to wait for the consumers' lock (a stalled holder
		 * would stall the open). */
		if (when == DLQ_AT_OPEN)
			q->ring.dead_letter_ctx = d;
		else
			rc = ring_set_dead_letter(&q->ring, d, &old);
		if (rc != SHMQ_OK)
			shmq_detach(d);
	}
	/* The calling function's own error, if it has one, is not about
	 * this. */
	control_set_detail(keep, sizeof(keep));
	if (rc != SHMQ_OK) {
		q->dlq_retry_ns = (int64_t)mono_ns() + DLQ_RETRY_NS;
		__atomic_store_n(&q->dlq_want, 1, __ATOMIC_RELEASE);
		return;
	}
	__atomic_store_n(&q->dlq_want, 0, __ATOMIC_RELEASE);
	q->dlq = d;
	if (old)                /* no callback uses it any more */
		shmq_detach(old);
}

static void want_dead_letter(struct shmq *q, enum dlq_when when)
{
	pthread_mutex_lock(&q->dlq_lock);
	if (dlq_stale(q) &&
	    (when == DLQ_AT_OPEN || (int64_t)mono_ns() >= q->dlq_retry_ns))
		dlq_open(q, when);
	pthread_mutex_unlock(&q->dlq_lock);
}

static int has_dlq(const struct shmq *q)
{
	return q->ring.has_dead_letter && (q->flags & SHMQ_CONSUMER);
}

/* Dead letters are waiting, and no way to them: worth a round trip. */
static int dlq_wanted(const struct shmq *q)
{
	return __atomic_load_n(&q->dlq_want, __ATOMIC_ACQUIRE) &&
	       __atomic_load_n(&q->ring.hdr->dead, __ATOMIC_RELAXED) != 0;
}

/* Before a get, view or lease that may block (never one that may not). */
static inline void dlq_before_wait(struct shmq *q, int timeout_ms)
{
	if (__builtin_expect(has_dlq(q), 0) && timeout_ms != SHMQ_NOWAIT &&
	    dlq_wanted(q))
		want_dead_letter(q, DLQ_LATER);
}

/* Before a nack: if it may make a dead letter, its queue must not be a
 * deleted one. */
static void dlq_before_nack(struct shmq *q, const struct shmq_msg *m,
			    unsigned flags)
{
	if (!has_dlq(q) || m->lease == 0)
		return;
	if ((flags & SHMQ_NACK_DEAD) ||
	    (q->ring.max_deliveries &&
	     m->deliveries >= q->ring.max_deliveries) ||
	    dlq_wanted(q))
		want_dead_letter(q, DLQ_LATER);
}

/* ring_dead_letter_fn: called under the consumers' lock of the parent
 * handle; ctx is its dead-letter handle, or NULL. */
static int dead_letter(void *ctx, const void *msg, size_t len)
{
	struct shmq *d = ctx;

	if (d == NULL)
		return SHMQ_ENOENT;
	if (__atomic_load_n(&d->ring.hdr->state_flags, __ATOMIC_ACQUIRE) &
	    SHMQ_ST_DELETED) {
		/* Nobody will ever read it there: the letter waits. */
		__atomic_store_n(&d->parent->dlq_want, 1, __ATOMIC_RELEASE);
		return SHMQ_ENOENT;
	}
	return shmq_put(d, msg, len, SHMQ_NOWAIT);
}

int shmq_open(const char *name, unsigned flags, shmq_t **qp)
{
	int rc;

	if (qp == NULL)
		return SHMQ_EINVAL;
	*qp = NULL;
	if (flags & ~(SHMQ_PRODUCER | SHMQ_CONSUMER | SHMQ_PREFAULT |
		      SHMQ_RELAY) ||
	    (flags & (SHMQ_PRODUCER | SHMQ_RELAY)) == SHMQ_RELAY)
		return SHMQ_EINVAL;
	rc = open_handle(name,
			 ((flags & SHMQ_PRODUCER) ? SHMQ_ROLE_PRODUCER : 0) |
			 ((flags & SHMQ_CONSUMER) ? SHMQ_ROLE_CONSUMER : 0) |
			 ((flags & SHMQ_RELAY) ? SHMQ_ROLE_RELAY : 0),
			 flags, 0, qp);
	if (rc == SHMQ_OK && has_dlq(*qp))
		want_dead_letter(*qp, DLQ_AT_OPEN);
	return rc;
}

/* ring_blocked_fn: a call on q has been blocked for a report period.
 * shmqd then samples the queue's wait records (deadlock detection). */
static void blocked(void *ctx, int side)
{
	const struct shmq *q = ctx;
	struct shmq_wire_detach req = {
		.queue_id = q->queue_id,
		.client = q->client,
		.gen = q->gen,
	};

	(void)side;
	control_notify(SHMQ_MSG_BLOCKED, &req, sizeof(req));
}

int shmq_detach(shmq_t *q)
{
	struct shmq_wire_detach req;
	struct shmq_wire_status rep;
	size_t len;
	int rc;

	if (q == NULL)
		return SHMQ_OK;
	/* A zero-copy operation left open ends here: nothing committed (a
	 * viewed lease is returned with the handle's other leases). */
	ring_commit(&q->ring, 1);
	ring_release(&q->ring, 1);
	if (q->dlq)
		shmq_detach(q->dlq);
	ring_poll_close(&q->ring);
	pthread_mutex_destroy(&q->poll_lock);
	pthread_mutex_destroy(&q->dlq_lock);
	/* Say so in the segment first: a daemon that is down now, or that
	 * hears of us only when we exit, still releases us as detached. */
	ring_client_mark_detached(&q->ring);
	req.queue_id = q->queue_id;
	req.client = q->client;
	req.gen = q->gen;
	rc = control_call(SHMQ_MSG_DETACH | SHMQ_MSG_NOREPLY, &req,
			  sizeof(req), &rep, sizeof(rep), &len, NULL);
	munmap(q->map, q->map_size);
	free(q);
	/* Unreachable, the daemon will learn of it from the mark. */
	return rc == SHMQ_ENODAEMON ? SHMQ_OK : rc;
}

int shmq_put(shmq_t *q, const void *msg, size_t len, int timeout_ms)
{
	struct iovec iov = { (void *)msg, len };

	if (q == NULL || (msg == NULL && len))
		return SHMQ_EINVAL;
	if (!(q->flags & SHMQ_PRODUCER))
		return SHMQ_EROLE;
	if (q->ring.held)       /* would wait for our own lock */
		return SHMQ_EINVAL;
	return ring_put(&q->ring, &iov, 1, NULL, timeout_ms);
}

int shmq_putv(shmq_t *q, const struct iovec *msgs, size_t n, size_t *nput,
	      int timeout_ms)
{
	if (nput)
		*nput = 0;
	if (q == NULL || (msgs == NULL && n))
		return SHMQ_EINVAL;
	if (!(q->flags & SHMQ_PRODUCER))
		return SHMQ_EROLE;
	if (q->ring.held)
		return SHMQ_EINVAL;
	return ring_put(&q->ring, msgs, n, nput, timeout_ms);
}

int shmq_get(shmq_t *q, void *buf, size_t size, size_t *len, int timeout_ms)
{
	struct iovec out;
	int rc;

	if (q == NULL || len == NULL || (buf == NULL && size))
		return SHMQ_EINVAL;
	if (!(q->flags & SHMQ_CONSUMER))
		return SHMQ_EROLE;
	if (q->ring.held || q->viewing)
		return SHMQ_EINVAL;
	dlq_before_wait(q, timeout_ms);
	rc = ring_get(&q->ring, buf, size, &out, 1, NULL, timeout_ms);
	if (rc == SHMQ_OK || rc == SHMQ_EMSGSIZE)
		*len = out.iov_len;
	return rc;
}

int shmq_getv(shmq_t *q, void *buf, size_t size, struct iovec *msgs,
	      size_t n, size_t *ngot, int timeout_ms)
{
	if (ngot)
		*ngot = 0;
	if (q == NULL || msgs == NULL || n == 0 || (buf == NULL && size))
		return SHMQ_EINVAL;
	if (!(q->flags & SHMQ_CONSUMER))
		return SHMQ_EROLE;
	if (q->ring.held || q->viewing)
		return SHMQ_EINVAL;
	dlq_before_wait(q, timeout_ms);
	return ring_get(&q->ring, buf, size, msgs, n, ngot, timeout_ms);
}

int shmq_put_reserve(shmq_t *q, size_t len, void **data, int timeout_ms)
{
	if (q == NULL || data == NULL)
		return SHMQ_EINVAL;
	if (!(q->flags & SHMQ_PRODUCER))
		return SHMQ_EROLE;
	if (len > q->ring.max_msg)
		return SHMQ_E2BIG;
	return ring_reserve(&q->ring, len, data, timeout_ms);
}

int shmq_put_commit(shmq_t *q)
{
	return q ? ring_commit(&q->ring, 0) : SHMQ_EINVAL;
}

int shmq_put_cancel(shmq_t *q)
{
	return q ? ring_commit(&q->ring, 1) : SHMQ_EINVAL;
}

/* On an acked queue the zero-copy get is a lease: the view points at the
 * lease slot's copy, take acks it, leave nacks it, and no lock is held in
 * between. */
int shmq_get_view(shmq_t *q, const void **data, size_t *len, int timeout_ms)
{
	int rc;

	if (q == NULL || data == NULL || len == NULL)
		return SHMQ_EINVAL;
	if (!(q->flags & SHMQ_CONSUMER))
		return SHMQ_EROLE;
	if (q->ring.leases == NULL)
		return ring_view(&q->ring, data, len, timeout_ms);
	if (q->viewing || q->ring.held)
		return SHMQ_EINVAL;
	dlq_before_wait(q, timeout_ms);
	rc = ring_lease(&q->ring, NULL, 0, &q->viewed, 1, NULL, timeout_ms, 1);
	if (rc == SHMQ_OK) {
		q->viewing = 1;
		*data = q->viewed.data;
		*len = q->viewed.len;
	}
	return rc;
}

int shmq_get_take(shmq_t *q)
{
	if (q == NULL)
		return SHMQ_EINVAL;
	if (!q->viewing)
		return ring_release(&q->ring, 0);
	q->viewing = 0;
	return ring_ack(&q->ring, &q->viewed, 1, NULL);
}

int shmq_view_seq(const shmq_t *q, uint64_t *seq)
{
	if (q == NULL || seq == NULL)
		return SHMQ_EINVAL;
	if (q->viewing) {
		*seq = q->viewed.seq;
		return SHMQ_OK;
	}
	return ring_viewed_seq(&q->ring, seq);
}

int shmq_get_leave(shmq_t *q)
{
	if (q == NULL)
		return SHMQ_EINVAL;
	if (!q->viewing)
		return ring_release(&q->ring, 1);
	q->viewing = 0;
	dlq_before_nack(q, &q->viewed, 0);
	return ring_nack(&q->ring, &q->viewed, 0);
}

/* --- event loops -------------------------------------------------------- */

/* The role a direction needs. */
static int poll_role(const struct shmq *q, unsigned dir)
{
	if (q == NULL || (dir != SHMQ_POLL_GET && dir != SHMQ_POLL_PUT))
		return SHMQ_EINVAL;
	if (!(q->flags & (dir == SHMQ_POLL_GET ? SHMQ_CONSUMER : SHMQ_PRODUCER)))
		return SHMQ_EROLE;
	return SHMQ_OK;
}

int shmq_fd(shmq_t *q, unsigned dir, int *fd)
{
	int rc = poll_role(q, dir);

	if (fd == NULL)
		return SHMQ_EINVAL;
	*fd = -1;
	if (rc != SHMQ_OK)
		return rc;
	pthread_mutex_lock(&q->poll_lock);
	rc = ring_poll_fd(&q->ring, dir, fd);
	pthread_mutex_unlock(&q->poll_lock);
	if (rc == SHMQ_ESYS && errno == EXDEV) {
		static const char why[] =
			"shmqd runs in another network namespace: its "
			"wake-ups could not reach a descriptor made here "
			"(blocking calls and shmq_wait work)";
		control_set_detail(why, sizeof(why));
		errno = EXDEV;
	}
	return rc;
}

int shmq_wait_continue(int64_t since_ns, int64_t deadline_ns)
{
	if (since_ns < 0 || deadline_ns < 0)
		return SHMQ_EINVAL;
	ring_client_wait_continue(since_ns, deadline_ns);
	return SHMQ_OK;
}

int shmq_wait(shmq_t *q, unsigned dir, size_t len, int timeout_ms)
{
	int rc = poll_role(q, dir);

	if (rc != SHMQ_OK)
		return rc;
	return ring_wait(&q->ring, dir, len, timeout_ms);
}

/* --- acked queues ------------------------------------------------------ */

static int lease_check(const struct shmq *q)
{
	if (q == NULL)
		return SHMQ_EINVAL;
	if (!(q->flags & SHMQ_CONSUMER))
		return SHMQ_EROLE;
	if (q->ring.held || q->viewing)
		return SHMQ_EINVAL;
	return SHMQ_OK;
}

int shmq_lease(shmq_t *q, void *buf, size_t size, struct shmq_msg *m,
	       int timeout_ms)
{
	int rc = lease_check(q);

	if (rc != SHMQ_OK)
		return rc;
	if (m == NULL || (buf == NULL && size))
		return SHMQ_EINVAL;
	dlq_before_wait(q, timeout_ms);
	return ring_lease(&q->ring, buf, size, m, 1, NULL, timeout_ms, 0);
}

int shmq_leasev(shmq_t *q, void *buf, size_t size, struct shmq_msg *msgs,
		size_t n, size_t *ngot, int timeout_ms)
{
	int rc = lease_check(q);

	if (ngot)
		*ngot = 0;
	if (rc != SHMQ_OK)
		return rc;
	if (msgs == NULL || n == 0 || (buf == NULL && size))
		return SHMQ_EINVAL;
	dlq_before_wait(q, timeout_ms);
	return ring_lease(&q->ring, buf, size, msgs, n, ngot, timeout_ms, 0);
}

int shmq_lease_view(shmq_t *q, struct shmq_msg *m, int timeout_ms)
{
	int rc = lease_check(q);

	if (rc != SHMQ_OK)
		return rc;
	if (m == NULL)
		return SHMQ_EINVAL;
	if (q->ring.leases == NULL)
		return SHMQ_EINVAL;     /* plain queues: shmq_get_view */
	dlq_before_wait(q, timeout_ms);
	return ring_lease(&q->ring, NULL, 0, m, 1, NULL, timeout_ms, 1);
}

int shmq_ack(shmq_t *q, const struct shmq_msg *m)
{
	if (q == NULL || m == NULL)
		return SHMQ_EINVAL;
	return ring_ack(&q->ring, m, 1, NULL);
}

int shmq_ackv(shmq_t *q, const struct shmq_msg *msgs, size_t n,
	      size_t *nacked)
{
	if (nacked)
		*nacked = 0;
	if (q == NULL || (msgs == NULL && n))
		return SHMQ_EINVAL;
	return ring_ack(&q->ring, msgs, n, nacked);
}

int shmq_nack(shmq_t *q, const struct shmq_msg *m, unsigned flags)
{
	if (q == NULL || m == NULL)
		return SHMQ_EINVAL;
	dlq_before_nack(q, m, flags);
	return ring_nack(&q->ring, m, flags);
}

int shmq_extend(shmq_t *q, const struct shmq_msg *m, int ms)
{
	if (q == NULL || m == NULL)
		return SHMQ_EINVAL;
	return ring_extend(&q->ring, m, ms);
}

int shmq_join(shmq_t *q, int timeout_ms)
{
	return q ? ring_join(&q->ring, timeout_ms) : SHMQ_EINVAL;
}

int shmq_pending(shmq_t *q, struct shmq_lease_info **list, size_t *n)
{
	struct shmq_lease_info *all = NULL;
	size_t cap = 0, have;

	if (q == NULL || list == NULL || n == NULL)
		return SHMQ_EINVAL;
	*list = NULL;
	*n = 0;
	/* The table changes while we read it: grow until it fits. */
	for (;;) {
		have = ring_pending(&q->ring, all, cap);
		if (have <= cap)
			break;
		cap = have + 16;
		struct shmq_lease_info *grown = realloc(all, cap * sizeof(*all));
		if (grown == NULL) {
			free(all);
			return SHMQ_ENOMEM;
		}
		all = grown;
	}
	*list = all;
	*n = have;
	return SHMQ_OK;
}

int shmq_close(shmq_t *q, unsigned how, uint64_t *discarded)
{
	if (discarded)
		*discarded = 0;
	if (q == NULL || (how & ~SHMQ_CLOSE_LOST) > SHMQ_CLOSE_NOW)
		return SHMQ_EINVAL;
	if (!(q->access & SHMQ_ACCESS_WRITE))
		return SHMQ_EACCES;
	return ring_close(&q->ring, how, discarded);
}

int shmq_stat(shmq_t *q, struct shmq_stat *st)
{
	if (q == NULL || st == NULL)
		return SHMQ_EINVAL;
	ring_stat(&q->ring, st);
	/* Identity from the daemon: any attached process can write the
	 * segment's copy. */
	strcpy(st->name, q->name);
	st->uid = q->uid;
	st->gid = q->gid;
	st->mode = q->mode;
	return SHMQ_OK;
}

size_t shmq_max_msg(const shmq_t *q)
{
	return q ? q->ring.max_msg : 0;
}

const char *shmq_name(const shmq_t *q)
{
	return q ? q->name : NULL;
}

int shmq_stat_name(const char *name, struct shmq_stat *st)
{
	struct shmq_wire_name req = { 0 };
	struct shmq_wire_stat_reply rep;
	size_t len;
	int rc;

	if (st == NULL)
		return SHMQ_EINVAL;
	if ((rc = put_name(req.name, name)) != SHMQ_OK)
		return rc;
	rc = control_call(SHMQ_MSG_STAT, &req, sizeof(req), &rep, sizeof(rep),
			  &len, NULL);
	if (rc == SHMQ_OK)
		wire_stat_unpack(st, &rep.stat);
	return rc;
}

/* Closing by name is closing through a handle: the daemon grants the
 * handle (checking write permission below) but never touches the queue's
 * locks itself. */
int shmq_close_name(const char *name, unsigned how, uint64_t *discarded)
{
	shmq_t *q;
	int rc;

	if (discarded)
		*discarded = 0;
	if ((how & ~SHMQ_CLOSE_LOST) > SHMQ_CLOSE_NOW)
		return SHMQ_EINVAL;
	rc = shmq_open(name, 0, &q);
	if (rc != SHMQ_OK)
		return rc;
	rc = shmq_close(q, how, discarded);
	shmq_detach(q);
	return rc;
}

int shmq_delete(const char *name)
{
	struct shmq_wire_name req = { 0 };
	struct shmq_wire_status rep;
	size_t len;
	int rc;

	if ((rc = put_name(req.name, name)) != SHMQ_OK)
		return rc;
	return control_call(SHMQ_MSG_DELETE, &req, sizeof(req), &rep,
			    sizeof(rep), &len, NULL);
}

int shmq_list(struct shmq_stat **list, size_t *n)
{
	struct shmq_wire_list req = { 0 };
	struct shmq_wire_list_reply *rep;
	struct shmq_stat *all = NULL;
	size_t count = 0, len;
	int rc;

	if (list == NULL || n == NULL)
		return SHMQ_EINVAL;
	*list = NULL;
	*n = 0;
	rep = malloc(sizeof(*rep));
	if (rep == NULL)
		return SHMQ_ENOMEM;
	for (;;) {
		rc = control_call(SHMQ_MSG_LIST, &req, sizeof(req), rep,
				  sizeof(*rep), &len, NULL);
		if (rc != SHMQ_OK)
			break;
		if (rep->count) {
			struct shmq_stat *grown = realloc(
				all, (count + rep->count) * sizeof(*all));
			if (grown == NULL) {
				rc = SHMQ_ENOMEM;
				break;
			}
			all = grown;
			for (uint32_t i = 0; i < rep->count; i++)
				wire_stat_unpack(&all[count + i],
						 &rep->entries[i]);
			count += rep->count;
			memcpy(req.after, all[count - 1].name, sizeof(req.after));
		}
		if (!rep->more || rep->count == 0)
			break;
	}
	free(rep);
	if (rc != SHMQ_OK) {
		free(all);
		return rc;
	}
	*list = all;
	*n = count;
	return SHMQ_OK;
}

static void user_unpack(struct shmq_user *u, const struct shmq_wire_user *w)
{
	memset(u, 0, sizeof(*u));
	u->uid = w->uid;
	u->flags = w->flags & SHMQ_WIRE_USER_EXEMPT ? SHMQ_USER_EXEMPT : 0;
	u->bytes = w->bytes;
	u->max_bytes = w->max_bytes;
	u->queues = w->queues;
	u->max_queues = w->max_queues;
	u->clients = w->clients;
	u->max_clients = w->max_clients;
	u->handles = w->handles;
	u->max_handles = w->max_handles;
}

int shmq_users(struct shmq_user **list, size_t *n, struct shmq_user *total)
{
	struct shmq_wire_users req = { 0 };
	struct shmq_wire_users_reply *rep;
	struct shmq_user *all = NULL, sum = { 0 };
	size_t count = 0, len;
	int rc;

	if (list == NULL || n == NULL)
		return SHMQ_EINVAL;
	*list = NULL;
	*n = 0;
	rep = malloc(sizeof(*rep));
	if (rep == NULL)
		return SHMQ_ENOMEM;
	for (;;) {
		rc = control_call(SHMQ_MSG_USERS, &req, sizeof(req), rep,
				  sizeof(*rep), &len, NULL);
		if (rc != SHMQ_OK)
			break;
		/* The last page's: the freshest.  The caller's only once
		 * every page came. */
		user_unpack(&sum, &rep->total);
		if (rep->count) {
			struct shmq_user *grown = realloc(
				all, (count + rep->count) * sizeof(*all));
			if (grown == NULL) {
				rc = SHMQ_ENOMEM;
				break;
			}
			all = grown;
			for (uint32_t i = 0; i < rep->count; i++)
				user_unpack(&all[count + i], &rep->entries[i]);
			count += rep->count;
		}
		/* Pages go up in uid: a page that does not is not ours. */
		if (!rep->more || rep->count == 0 ||
		    all[count - 1].uid == UINT32_MAX ||
		    all[count - 1].uid < req.from)
			break;
		req.from = all[count - 1].uid + 1;
	}
	free(rep);
	if (rc != SHMQ_OK) {
		free(all);
		return rc;
	}
	*list = all;
	*n = count;
	if (total)
		*total = sum;
	return SHMQ_OK;
}

int shmq_deadlocks(struct shmq_deadlock_wait **list, size_t *n)
{
	struct shmq_wire_deadlocks req = { 0 };
	struct shmq_wire_deadlocks_reply *rep;
	size_t len;
	int rc;

	if (list == NULL || n == NULL)
		return SHMQ_EINVAL;
	*list = NULL;
	*n = 0;
	rep = malloc(sizeof(*rep));
	if (rep == NULL)
		return SHMQ_ENOMEM;
	rc = control_call(SHMQ_MSG_DEADLOCKS, &req, sizeof(req), rep,
			  sizeof(*rep), &len, NULL);
	if (rc == SHMQ_OK && rep->count > 0) {
		struct shmq_deadlock_wait *all = calloc(rep->count,
							sizeof(*all));
		if (all == NULL) {
			rc = SHMQ_ENOMEM;
		} else {
			for (uint32_t i = 0; i < rep->count; i++)
				wire_dl_unpack(&all[i], &rep->rows[i]);
			*list = all;
			*n = rep->count;
		}
	}
	free(rep);
	return rc;
}
