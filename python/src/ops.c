/*
 * ops.c - the calls of shmq.Queue that move messages or may block: put,
 * get and their variants, batches, iteration, task_done, join, and the
 * waits the async adapters use.
 *
 * Every call first tries without blocking, with the GIL held: while the
 * queue is neither full nor empty that is the whole call, and it costs no
 * more than the shmq call itself (releasing the GIL costs more).  Only a
 * call that has to wait releases the GIL, and then waits in slices of at
 * most PYQ_SLICE_MS against a deadline computed once: between slices it
 * runs signal handlers (so Ctrl-C raises KeyboardInterrupt in a blocked
 * call, having taken or put nothing) and notices a detach from another
 * thread.  libshmq returns SHMQ_EINTR when a signal handler ran during
 * its sleep, which ends a slice early.
 *
 * It must never hold a queue's lock while waiting for the GIL (no zero-
 * copy view or reservation spans a GIL release), and a wait that must not
 * take anything (_wait) never takes anything.
 */
#include "shmqpy.h"

#include <math.h>
#include <string.h>
#include <time.h>

#define GETV_BUF_MAX (1u << 20)         /* receive buffer of get_many */
#define ALIGN16(n)   (((n) + 15) & ~(size_t)15)

/* ------------------------------------------------------------------ */
/* Deadlines and slices                                                */

int ops_parse_wait(PyObject *block, PyObject *timeout, struct pyq_wait *w)
{
	double s;

	w->block = 1;
	w->forever = 1;
	w->deadline_ns = 0;
	if (block && (w->block = PyObject_IsTrue(block)) < 0)
		return -1;
	/* block=False ignores the timeout, as queue.Queue does. */
	if (!w->block || timeout == NULL || timeout == Py_None)
		return 0;
	s = PyFloat_AsDouble(timeout);
	if (s == -1.0 && PyErr_Occurred())
		return -1;
	if (isnan(s) || s < 0) {
		PyErr_SetString(PyExc_ValueError,
				"'timeout' must be a non-negative number");
		return -1;
	}
	if (s > 1e9)            /* decades: forever */
		return 0;
	w->forever = 0;
	w->deadline_ns = pyq_now_ns() + (int64_t)ceil(s * 1e9);
	return 0;
}

/* The next slice in ms, rounded up; 0 once the deadline has passed. */
static int slice_ms(const struct pyq_wait *w)
{
	int64_t left;

	if (w->forever)
		return PYQ_SLICE_MS;
	left = w->deadline_ns - pyq_now_ns();
	if (left <= 0)
		return 0;
	left = (left + 999999) / 1000000;
	return left > PYQ_SLICE_MS ? PYQ_SLICE_MS : (int)left;
}

typedef int (*slice_fn)(void *ctx, int ms);

/* Calls fn(ctx, ms) without the GIL, a slice at a time, until it returns
 * anything but a timeout or an interruption, or the deadline passes
 * (SHMQ_ETIMEDOUT).  PYQ_PYERR if a signal handler raised or the Queue
 * was detached meanwhile. */
static int in_slices(pyq_queue *q, const struct pyq_wait *w, slice_fn fn,
		     void *ctx)
{
	for (;;) {
		int ms = slice_ms(w), rc;

		if (ms == 0)
			return SHMQ_ETIMEDOUT;
		if (queue_enter(q) < 0)
			return PYQ_PYERR;
		Py_BEGIN_ALLOW_THREADS
		rc = fn(ctx, ms);
		queue_leave(q);
		Py_END_ALLOW_THREADS
		if (rc != SHMQ_ETIMEDOUT && rc != SHMQ_EINTR)
			return rc;
		if (PyErr_CheckSignals() < 0)
			return PYQ_PYERR;
	}
}

/* A receive buffer of `size` bytes that stays this call's while the GIL
 * is released: the Queue's own if no other call holds it, else one of
 * the call's own. */
static char *buf_claim(pyq_queue *q, size_t size, int *own)
{
	char *p;

	*own = q->scratch_busy;
	if (*own) {
		p = PyMem_RawMalloc(size ? size : 1);
		if (p == NULL)
			PyErr_NoMemory();
		return p;
	}
	p = queue_scratch(q, size ? size : 1);
	if (p)
		q->scratch_busy = 1;
	return p;
}

static void buf_release(pyq_queue *q, char *p, int own)
{
	if (own)
		PyMem_RawFree(p);
	else if (p)
		q->scratch_busy = 0;
}

/* ------------------------------------------------------------------ */
/* Errors                                                              */

static PyObject *put_error(pyq_queue *q, int rc, size_t len)
{
	char what[160];

	switch (rc) {
	case SHMQ_EAGAIN:
	case SHMQ_ETIMEDOUT:
		PyErr_SetNone(pyq_Full);
		return NULL;
	case SHMQ_ECLOSED:
		PyErr_SetNone(pyq_ShutDown);
		return NULL;
	case SHMQ_E2BIG:
		PyOS_snprintf(what, sizeof(what),
			      "a message of %zu bytes is larger than the "
			      "queue's max_msg (%zu)", len, q->max_msg);
		return pyq_raise_status(rc, q->name, what);
	default:
		return pyq_raise_status(rc, q->name, NULL);
	}
}

static PyObject *get_error(pyq_queue *q, int rc)
{
	switch (rc) {
	case SHMQ_EAGAIN:
	case SHMQ_ETIMEDOUT:
		PyErr_SetNone(pyq_Empty);
		return NULL;
	case SHMQ_EOS:
		PyErr_SetNone(pyq_ShutDown);
		return NULL;
	case SHMQ_EOS_LOST:
		PyErr_Format(pyq_ProducerLost,
			     "end of stream of %R, but a producer died "
			     "without detaching: the stream may be "
			     "incomplete", q->name);
		return NULL;
	default:
		return pyq_raise_status(rc, q->name, NULL);
	}
}

/* Sets .count (how many items a batch call moved) on the exception. */
static void set_count(Py_ssize_t n)
{
	PyObject *type, *value, *tb;

	PyErr_Fetch(&type, &value, &tb);
	PyErr_NormalizeException(&type, &value, &tb);
	if (value) {
		PyObject *c = PyLong_FromSsize_t(n);
		if (c == NULL || PyObject_SetAttrString(value, "count", c) < 0)
			PyErr_Clear();
		Py_XDECREF(c);
	}
	PyErr_Restore(type, value, tb);
}

/* ------------------------------------------------------------------ */
/* put                                                                 */

struct put_ctx {
	shmq_t *h;
	const struct iovec *iov;
	size_t n, done;
};

static int put_slice(void *c, int ms)
{
	struct put_ctx *x = c;
	size_t nput = 0;
	int rc;

	if (x->n == 1)
		return shmq_put(x->h, x->iov->iov_base, x->iov->iov_len, ms);
	rc = shmq_putv(x->h, x->iov + x->done, x->n - x->done, &nput, ms);
	x->done += nput;
	return rc;
}

/* Puts one encoded item; the status. */
static int put_item(pyq_queue *q, const struct pyq_item *it,
		    const struct pyq_wait *w)
{
	int rc = shmq_put(q->wh, it->p, it->n, SHMQ_NOWAIT);

	if (rc == SHMQ_EAGAIN && w->block) {
		struct iovec iov = { (void *)it->p, it->n };
		struct put_ctx x = { q->wh, &iov, 1, 0 };
		rc = in_slices(q, w, put_slice, &x);
	}
	return rc;
}

static PyObject *put_common(pyq_queue *q, PyObject *item,
			    const struct pyq_wait *w)
{
	struct pyq_item it;
	int rc;

	if (queue_check(q) < 0)
		return NULL;
	if (q->wh == NULL && queue_want(q, SHMQ_PRODUCER) < 0)
		return NULL;
	if (items_encode(q, item, &it) < 0)
		return NULL;
	rc = put_item(q, &it, w);
	items_release(&it);
	if (rc == SHMQ_OK)
		Py_RETURN_NONE;
	return put_error(q, rc, it.n);
}

static const char *const put_names[] = { "item", "block", "timeout" };

static PyObject *ops_put(PyObject *self, PyObject *const *args,
			 Py_ssize_t nargs, PyObject *kwnames)
{
	PyObject *a[3] = { NULL, NULL, NULL };
	struct pyq_wait w;

	if (nargs == 1 && kwnames == NULL)
		a[0] = args[0];
	else if (pyq_unpack("put", args, nargs, kwnames, put_names, 1, 3, a) <
		 0)
		return NULL;
	if (ops_parse_wait(a[1], a[2], &w) < 0)
		return NULL;
	return put_common((pyq_queue *)self, a[0], &w);
}

static PyObject *ops_put_nowait(PyObject *self, PyObject *item)
{
	struct pyq_wait w = { .block = 0 };

	return put_common((pyq_queue *)self, item, &w);
}

/* _try_put(item) -> None if put, else the encoded length (the queue has
 * no room for it now): for the async adapters, which wait for room for
 * that many bytes and try again. */
static PyObject *ops_try_put(PyObject *self, PyObject *item)
{
	pyq_queue *q = (pyq_queue *)self;
	struct pyq_wait w = { .block = 0 };
	struct pyq_item it;
	int rc;

	if (queue_check(q) < 0)
		return NULL;
	if (q->wh == NULL && queue_want(q, SHMQ_PRODUCER) < 0)
		return NULL;
	if (items_encode(q, item, &it) < 0)
		return NULL;
	rc = put_item(q, &it, &w);
	items_release(&it);
	if (rc == SHMQ_OK)
		Py_RETURN_NONE;
	if (rc == SHMQ_EAGAIN)
		return PyLong_FromSize_t(it.n);
	return put_error(q, rc, it.n);
}

static PyObject *ops_put_many(PyObject *self, PyObject *const *args,
			      Py_ssize_t nargs, PyObject *kwnames)
{
	static const char *const names[] = { "items", "block", "timeout" };
	pyq_queue *q = (pyq_queue *)self;
	PyObject *a[3], *seq = NULL;
	struct pyq_item *its = NULL;
	struct iovec *iov = NULL;
	struct pyq_wait w;
	Py_ssize_t n, enc = 0;
	size_t done = 0;
	int rc = PYQ_PYERR;

	if (pyq_unpack("put_many", args, nargs, kwnames, names, 1, 3, a) < 0 ||
	    ops_parse_wait(a[1], a[2], &w) < 0 || queue_check(q) < 0)
		return NULL;
	if (q->wh == NULL && queue_want(q, SHMQ_PRODUCER) < 0)
		return NULL;
	seq = PySequence_Fast(a[0], "put_many() takes an iterable of items");
	if (seq == NULL)
		return NULL;
	n = PySequence_Fast_GET_SIZE(seq);
	if (n == 0)
		goto out;
	its = PyMem_Malloc((size_t)n * sizeof(*its));
	iov = PyMem_Malloc((size_t)n * sizeof(*iov));
	if (its == NULL || iov == NULL) {
		PyErr_NoMemory();
		goto out;
	}
	for (; enc < n; enc++) {
		if (items_encode(q, PySequence_Fast_GET_ITEM(seq, enc),
				 &its[enc]) < 0)
			goto out;
		iov[enc].iov_base = (void *)its[enc].p;
		iov[enc].iov_len = its[enc].n;
	}
	rc = shmq_putv(q->wh, iov, (size_t)n, &done, SHMQ_NOWAIT);
	if (rc == SHMQ_EAGAIN && w.block) {
		struct put_ctx x = { q->wh, iov, (size_t)n, done };
		rc = in_slices(q, &w, put_slice, &x);
		done = x.done;
	}
out:
	if (rc != SHMQ_OK && rc != PYQ_PYERR && done < (size_t)n)
		put_error(q, rc, iov ? iov[done].iov_len : 0);
	if (PyErr_Occurred())
		set_count((Py_ssize_t)done);
	for (Py_ssize_t i = 0; i < enc; i++)
		items_release(&its[i]);
	PyMem_Free(its);
	PyMem_Free(iov);
	Py_DECREF(seq);
	if (PyErr_Occurred())
		return NULL;
	Py_RETURN_NONE;
}

/* ------------------------------------------------------------------ */
/* get                                                                 */

struct get_ctx {
	shmq_t *h;
	int acked;
	char *buf;
	size_t size;
	/* one message */
	size_t len;
	struct shmq_msg m;
	/* a batch */
	struct iovec *iov;
	struct shmq_msg *msgs;
	size_t n, got;
};

static int get_slice(void *c, int ms)
{
	struct get_ctx *x = c;
	int rc;

	if (x->n) {
		if (x->acked)
			return shmq_leasev(x->h, x->buf, x->size, x->msgs,
					   x->n, &x->got, ms);
		return shmq_getv(x->h, x->buf, x->size, x->iov, x->n, &x->got,
				 ms);
	}
	if (!x->acked)
		return shmq_get(x->h, x->buf, x->size, &x->len, ms);
	rc = shmq_lease(x->h, x->buf, x->size, &x->m, ms);
	x->len = x->m.len;
	return rc;
}

/* After a get: record the lease (acked) or the task to be done. */
static int got(pyq_queue *q, struct get_ctx *x, size_t n)
{
	if (!q->acked) {
		q->unfinished += (Py_ssize_t)n;
		return 0;
	}
	return queue_lease_push(q, x->n ? x->msgs : &x->m, n);
}

/* Items that cannot be decoded: on an acked queue they go back (nack),
 * for another consumer or the dead-letter queue; a plain queue's are
 * gone, as any message a consumer took and failed on.  They were the
 * last `n` got. */
static void ungot(pyq_queue *q, struct shmq_msg *m, size_t n)
{
	if (!q->acked) {
		q->unfinished -= (Py_ssize_t)n;
		return;
	}
	for (size_t i = 0; i < n; i++)
		shmq_nack(q->rh, &m[i], 0);
	q->lease_n -= n;
}

/* Gets one item; `dflt` (borrowed) is returned instead of raising Empty
 * when not NULL; `stop` returns NULL without an exception at a clean end
 * of stream (iteration). */
static PyObject *get_common(pyq_queue *q, const struct pyq_wait *w,
			    PyObject *dflt, int stop)
{
	struct get_ctx x = { 0 };
	PyObject *item = NULL;
	int own, rc;

	if (queue_check(q) < 0)
		return NULL;
	if (q->rh == NULL && queue_want(q, SHMQ_CONSUMER) < 0)
		return NULL;
	x.h = q->rh;
	x.acked = q->acked;
	x.size = q->max_msg;
	x.buf = buf_claim(q, x.size, &own);
	if (x.buf == NULL)
		return NULL;
	rc = get_slice(&x, SHMQ_NOWAIT);
	if (rc == SHMQ_EAGAIN && w->block)
		rc = in_slices(q, w, get_slice, &x);
	if (rc == SHMQ_OK) {
		if (got(q, &x, 1) == 0) {
			item = items_decode(q, x.buf, x.len);
			if (item == NULL)
				ungot(q, &x.m, 1);
		}
	} else if (dflt && (rc == SHMQ_EAGAIN || rc == SHMQ_ETIMEDOUT)) {
		item = Py_NewRef(dflt);
	} else if (!(stop && rc == SHMQ_EOS)) {
		get_error(q, rc);
	}
	buf_release(q, x.buf, own);
	return item;
}

static const char *const get_names[] = { "block", "timeout" };

static PyObject *ops_get(PyObject *self, PyObject *const *args,
			 Py_ssize_t nargs, PyObject *kwnames)
{
	PyObject *a[2] = { NULL, NULL };
	struct pyq_wait w;

	if ((nargs || kwnames) &&
	    pyq_unpack("get", args, nargs, kwnames, get_names, 0, 2, a) < 0)
		return NULL;
	if (ops_parse_wait(a[0], a[1], &w) < 0)
		return NULL;
	return get_common((pyq_queue *)self, &w, NULL, 0);
}

static PyObject *ops_get_nowait(PyObject *self, PyObject *unused)
{
	struct pyq_wait w = { .block = 0 };

	(void)unused;
	return get_common((pyq_queue *)self, &w, NULL, 0);
}

/* _try_get(default) -> an item, or default if none is there now. */
static PyObject *ops_try_get(PyObject *self, PyObject *dflt)
{
	struct pyq_wait w = { .block = 0 };

	return get_common((pyq_queue *)self, &w, dflt, 0);
}

PyObject *ops_next(PyObject *self)
{
	struct pyq_wait w = { .block = 1, .forever = 1 };

	return get_common((pyq_queue *)self, &w, NULL, 1);
}

static PyObject *ops_get_many(PyObject *self, PyObject *const *args,
			      Py_ssize_t nargs, PyObject *kwnames)
{
	static const char *const names[] = { "max_items", "block",
					     "timeout" };
	pyq_queue *q = (pyq_queue *)self;
	PyObject *a[3], *list = NULL;
	struct get_ctx x = { 0 };
	struct pyq_wait w;
	Py_ssize_t max = 64;
	int own = 0, rc;

	if (pyq_unpack("get_many", args, nargs, kwnames, names, 0, 3, a) < 0 ||
	    ops_parse_wait(a[1], a[2], &w) < 0)
		return NULL;
	if (a[0] && (max = PyLong_AsSsize_t(a[0])) == -1 && PyErr_Occurred())
		return NULL;
	if (max < 1 || max > 1 << 20) {
		PyErr_SetString(PyExc_ValueError,
				"max_items must be between 1 and 1048576");
		return NULL;
	}
	if (queue_check(q) < 0)
		return NULL;
	if (q->rh == NULL && queue_want(q, SHMQ_CONSUMER) < 0)
		return NULL;
	x.h = q->rh;
	x.acked = q->acked;
	x.n = (size_t)max;
	/* Room for max_items of the largest message, within reason: one
	 * call takes what fits, the next the rest. */
	x.size = ALIGN16(q->max_msg) * x.n;
	if (x.size > GETV_BUF_MAX)
		x.size = GETV_BUF_MAX;
	if (x.size < ALIGN16(q->max_msg))
		x.size = ALIGN16(q->max_msg);
	if (x.acked)
		x.msgs = PyMem_Malloc(x.n * sizeof(*x.msgs));
	else
		x.iov = PyMem_Malloc(x.n * sizeof(*x.iov));
	if (x.msgs == NULL && x.iov == NULL) {
		PyErr_NoMemory();
		return NULL;
	}
	x.buf = buf_claim(q, x.size, &own);
	if (x.buf == NULL)
		goto out;
	rc = get_slice(&x, SHMQ_NOWAIT);
	if (rc == SHMQ_EAGAIN && w.block)
		rc = in_slices(q, &w, get_slice, &x);
	if (rc != SHMQ_OK || x.got == 0) {
		get_error(q, rc == SHMQ_OK ? SHMQ_EAGAIN : rc);
		goto out;
	}
	if (got(q, &x, x.got) < 0)
		goto out;
	list = PyList_New((Py_ssize_t)x.got);
	for (size_t i = 0; list && i < x.got; i++) {
		PyObject *item = x.acked
			? items_decode(q, x.msgs[i].data, x.msgs[i].len)
			: items_decode(q, x.iov[i].iov_base,
				       x.iov[i].iov_len);
		if (item == NULL)
			Py_CLEAR(list);
		else
			PyList_SET_ITEM(list, (Py_ssize_t)i, item);
	}
	if (list == NULL)
		ungot(q, x.msgs, x.got);
out:
	buf_release(q, x.buf, own);
	PyMem_Free(x.msgs);
	PyMem_Free(x.iov);
	return list;
}

/* ------------------------------------------------------------------ */
/* task_done, join                                                     */

struct ack_ctx {
	shmq_t *h;
	struct shmq_msg m;
};

static int ack_slice(void *c, int ms)
{
	struct ack_ctx *x = c;

	(void)ms;               /* an ack waits only for the lock */
	return shmq_ack(x->h, &x->m);
}

static PyObject *ops_task_done(PyObject *self, PyObject *unused)
{
	pyq_queue *q = (pyq_queue *)self;
	struct pyq_wait w = { .block = 1, .forever = 1 };
	struct ack_ctx x;
	int rc;

	(void)unused;
	if (queue_check(q) < 0)
		return NULL;
	if (!q->acked) {
		if (q->unfinished <= 0) {
			PyErr_SetString(PyExc_ValueError,
					"task_done() called too many times");
			return NULL;
		}
		q->unfinished--;
		Py_RETURN_NONE;
	}
	if (q->lease_n == 0) {
		PyErr_SetString(PyExc_ValueError,
				"task_done() called too many times");
		return NULL;
	}
	x.h = q->rh;
	x.m = q->leases[q->lease_head];
	q->lease_head = (q->lease_head + 1) % q->lease_cap;
	q->lease_n--;
	rc = in_slices(q, &w, ack_slice, &x);
	if (rc == SHMQ_OK)
		Py_RETURN_NONE;
	if (rc == SHMQ_ELEASE)
		return pyq_raise_status(rc, q->name,
			"the lease ended before task_done() (its lease "
			"timeout passed): the message was delivered again");
	return pyq_raise_status(rc, q->name, NULL);
}

/* Joins on the first handle, which a first put or get may replace
 * between two slices (never during one): read it in each. */
static int join_slice(void *c, int ms)
{
	return shmq_join(((pyq_queue *)c)->h, ms);
}

static PyObject *ops_join(PyObject *self, PyObject *const *args,
			  Py_ssize_t nargs, PyObject *kwnames)
{
	static const char *const names[] = { "timeout" };
	pyq_queue *q = (pyq_queue *)self;
	PyObject *a[1];
	struct pyq_wait w;
	int rc;

	if (pyq_unpack("join", args, nargs, kwnames, names, 0, 1, a) < 0 ||
	    ops_parse_wait(NULL, a[0], &w) < 0 || queue_check(q) < 0)
		return NULL;
	rc = shmq_join(q->h, SHMQ_NOWAIT);
	if (rc == SHMQ_EAGAIN)
		rc = in_slices(q, &w, join_slice, q);
	if (rc == SHMQ_OK)
		Py_RETURN_NONE;
	if (rc == SHMQ_ETIMEDOUT) {
		PyErr_Format(PyExc_TimeoutError,
			     "join() on %R timed out", q->name);
		return NULL;
	}
	return pyq_raise_status(rc, q->name, NULL);
}

/* ------------------------------------------------------------------ */
/* Waiting without taking (the async adapters)                         */

struct wait_ctx {
	pyq_queue *q;
	shmq_t *h;
	size_t len;
	int64_t start_ns;
};

/* Plain queue, get side: a view waits like a get and takes nothing. */
static int wait_get_slice(void *c, int ms)
{
	struct wait_ctx *x = c;
	const void *data;
	size_t len;
	int rc = shmq_get_view(x->h, &data, &len, ms);

	if (rc == SHMQ_OK)
		shmq_get_leave(x->h);
	return rc == SHMQ_EOS || rc == SHMQ_EOS_LOST ? SHMQ_OK : rc;
}

/* Put side: a reservation waits like a put and puts nothing. */
static int wait_put_slice(void *c, int ms)
{
	struct wait_ctx *x = c;
	void *data;
	int rc = shmq_put_reserve(x->h, x->len, &data, ms);

	if (rc == SHMQ_OK)
		shmq_put_cancel(x->h);
	return rc == SHMQ_ECLOSED || rc == SHMQ_E2BIG ? SHMQ_OK : rc;
}

/* Acked queue, get side: a view would be a lease, so look at the numbers
 * now and then.  A lease that timed out is returned by the next getter,
 * so with leases out and a lease timeout, say "maybe" every 250 ms. */
static int wait_acked_slice(void *c, int ms)
{
	struct wait_ctx *x = c;
	int64_t end = pyq_now_ns() + (int64_t)ms * 1000000;
	int64_t nap = 100000;   /* 0.1 ms, doubling to 20 ms */

	for (;;) {
		struct shmq_stat st;
		int rc = shmq_stat(x->q->h, &st);    /* see join_slice */
		int64_t now = pyq_now_ns();

		if (rc != SHMQ_OK)
			return rc;
		if (st.messages || st.state != SHMQ_STATE_OPEN ||
		    (st.leased && st.lease_timeout_ms &&
		     now - x->start_ns >= 250000000))
			return SHMQ_OK;
		if (now >= end)
			return SHMQ_ETIMEDOUT;
		if (nap > end - now)
			nap = end - now;
		struct timespec ts = { nap / 1000000000, nap % 1000000000 };
		if (nanosleep(&ts, NULL) < 0)
			return SHMQ_EINTR;
		if (nap < 20000000)
			nap *= 2;
	}
}

/* _wait(direction, timeout=None, length=0) -> bool: waits until a get
 * ('get') or a put of `length` bytes ('put') would not block, without
 * taking or putting anything; False if the timeout passed first.  Any
 * other error says "ready": the call that follows reports it. */
static PyObject *ops_wait(PyObject *self, PyObject *const *args,
			  Py_ssize_t nargs, PyObject *kwnames)
{
	static const char *const names[] = { "direction", "timeout",
					     "length" };
	pyq_queue *q = (pyq_queue *)self;
	PyObject *a[3];
	struct pyq_wait w;
	struct wait_ctx x = { .q = q };
	slice_fn fn;
	int rc, put;

	if (pyq_unpack("_wait", args, nargs, kwnames, names, 1, 3, a) < 0 ||
	    ops_parse_wait(NULL, a[1], &w) < 0 || queue_check(q) < 0)
		return NULL;
	if (PyUnicode_Check(a[0]) &&
	    PyUnicode_CompareWithASCIIString(a[0], "put") == 0)
		put = 1;
	else if (PyUnicode_Check(a[0]) &&
		 PyUnicode_CompareWithASCIIString(a[0], "get") == 0)
		put = 0;
	else {
		PyErr_SetString(PyExc_ValueError,
				"direction must be 'get' or 'put'");
		return NULL;
	}
	if (a[2] && (x.len = PyLong_AsSize_t(a[2])) == (size_t)-1 &&
	    PyErr_Occurred())
		return NULL;
	if (put) {
		if (q->wait_w == NULL) {
			if (q->role && !(q->role & SHMQ_PRODUCER))
				return pyq_raise_status(SHMQ_EROLE, q->name,
					"this Queue was opened with role='r': "
					"it cannot put");
			const char *name = PyUnicode_AsUTF8(q->name);
			if (name == NULL)
				return NULL;
			shmq_t *h;
			Py_BEGIN_ALLOW_THREADS
			rc = shmq_open(name, SHMQ_PRODUCER, &h);
			Py_END_ALLOW_THREADS
			if (rc != SHMQ_OK)
				return pyq_raise_status(rc, q->name, NULL);
			if (q->wait_w || queue_check(q) < 0)
				shmq_detach(h);
			else
				q->wait_w = h;
			if (PyErr_Occurred())
				return NULL;
		}
		x.h = q->wait_w;
		fn = wait_put_slice;
	} else if (q->acked) {
		fn = wait_acked_slice;
	} else {
		if (q->wait_r == NULL) {
			if (q->role && !(q->role & SHMQ_CONSUMER))
				return pyq_raise_status(SHMQ_EROLE, q->name,
					"this Queue was opened with role='w': "
					"it cannot get");
			const char *name = PyUnicode_AsUTF8(q->name);
			if (name == NULL)
				return NULL;
			shmq_t *h;
			Py_BEGIN_ALLOW_THREADS
			rc = shmq_open(name, SHMQ_CONSUMER, &h);
			Py_END_ALLOW_THREADS
			if (rc != SHMQ_OK)
				return pyq_raise_status(rc, q->name, NULL);
			if (q->wait_r || queue_check(q) < 0)
				shmq_detach(h);
			else
				q->wait_r = h;
			if (PyErr_Occurred())
				return NULL;
		}
		x.h = q->wait_r;
		fn = wait_get_slice;
	}
	x.start_ns = pyq_now_ns();
	rc = in_slices(q, &w, fn, &x);
	if (rc == SHMQ_ETIMEDOUT)
		Py_RETURN_FALSE;
	if (rc == PYQ_PYERR)
		return NULL;
	Py_RETURN_TRUE;
}

/* ------------------------------------------------------------------ */

#define FASTKW(f) ((PyCFunction)(void (*)(void))(f))

PyMethodDef pyq_ops_methods[] = {
	{ "put", FASTKW(ops_put), METH_FASTCALL | METH_KEYWORDS,
	  "put(item, block=True, timeout=None)\n\n"
	  "Put an item into the queue.  While it is full, block (forever, "
	  "or at most timeout seconds, then raise queue.Full); block=False "
	  "raises queue.Full at once.  Raises ShutDown if the queue is "
	  "closed, MessageTooBig (a ValueError) if the item is larger than "
	  "max_msg." },
	{ "put_nowait", ops_put_nowait, METH_O,
	  "put_nowait(item): put(item, block=False)." },
	{ "get", FASTKW(ops_get), METH_FASTCALL | METH_KEYWORDS,
	  "get(block=True, timeout=None)\n\n"
	  "Remove and return the oldest item.  While the queue is empty, "
	  "block (forever, or at most timeout seconds, then raise "
	  "queue.Empty); block=False raises queue.Empty at once.  At the end "
	  "of the stream (closed and drained) raises ShutDown, or "
	  "ProducerLost if a producer died without detaching.  On an acked "
	  "queue the item is leased until task_done()." },
	{ "get_nowait", ops_get_nowait, METH_NOARGS,
	  "get_nowait(): get(block=False)." },
	{ "put_many", FASTKW(ops_put_many), METH_FASTCALL | METH_KEYWORDS,
	  "put_many(items, block=True, timeout=None)\n\n"
	  "Put every item, in order, in as few lock round trips as they "
	  "fit; blocks while the queue is full as put() does.  An exception "
	  "has .count: how many of the items were queued." },
	{ "get_many", FASTKW(ops_get_many), METH_FASTCALL | METH_KEYWORDS,
	  "get_many(max_items=64, block=True, timeout=None) -> list\n\n"
	  "Wait as get() does until at least one item is there, then take "
	  "up to max_items in one lock round trip." },
	{ "task_done", ops_task_done, METH_NOARGS,
	  "task_done()\n\n"
	  "Acked queue: ack the oldest lease this Queue holds (the item "
	  "leaves the queue for good; join() counts it done).  Plain queue: "
	  "count one item got by this Queue as done.  ValueError if there "
	  "is none." },
	{ "join", FASTKW(ops_join), METH_FASTCALL | METH_KEYWORDS,
	  "join(timeout=None)\n\n"
	  "Block until every item put before the call is settled: acked "
	  "(acked queue) or taken by a consumer (plain queue).  Raises "
	  "TimeoutError if timeout seconds pass first." },
	{ "_wait", FASTKW(ops_wait), METH_FASTCALL | METH_KEYWORDS,
	  "_wait(direction, timeout=None, length=0) -> bool\n\n"
	  "Wait until a get ('get') or a put of length bytes ('put') would "
	  "not block, taking nothing.  For the async adapters." },
	{ "_try_put", ops_try_put, METH_O,
	  "_try_put(item) -> None if put, else the encoded length." },
	{ "_try_get", ops_try_get, METH_O,
	  "_try_get(default) -> an item, or default if none is there." },
	{ NULL, NULL, 0, NULL },
};
