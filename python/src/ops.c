/*
 * ops.c - the calls of shmq.Queue that move messages or may block: put,
 * get and their variants, batches, iteration, task_done, join, and the
 * descriptors the async adapters wait on.
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
 * copy view or reservation spans a GIL release), never use a handle that
 * Python code it ran (dumps, loads, a codec, a signal handler) may have
 * detached, and never record an item as delivered before it decoded.
 */
#include "shmqpy.h"

#include "clock.h"

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
	w->deadline_ns = (int64_t)mono_ns() + (int64_t)ceil(s * 1e9);
	return 0;
}

/* The next slice in ms, rounded up; 0 once the deadline has passed. */
static int slice_ms(const struct pyq_wait *w)
{
	int64_t left;

	if (w->forever)
		return PYQ_SLICE_MS;
	left = w->deadline_ns - (int64_t)mono_ns();
	if (left <= 0)
		return 0;
	left = (left + 999999) / 1000000;
	return left > PYQ_SLICE_MS ? PYQ_SLICE_MS : (int)left;
}

typedef int (*slice_fn)(void *ctx, int ms);

/* Calls fn(ctx, ms) without the GIL, a slice at a time, until it returns
 * anything but a timeout or an interruption, or the deadline passes
 * (SHMQ_ETIMEDOUT).  PYQ_PYERR if a signal handler raised or the Queue
 * was detached meanwhile.  For deadlock detection the slices are one
 * wait (shmq_wait_continue): from the first slice, with the call's own
 * deadline or none, so that shmqd sees a call blocked for good as stuck,
 * and a slice chosen to fail it returns SHMQ_EDEADLK.  Set for the slice
 * only: what runs between slices (a signal handler's own calls) is not
 * this call. */
static int in_slices(pyq_queue *q, const struct pyq_wait *w, slice_fn fn,
		     void *ctx)
{
	int64_t since = (int64_t)mono_ns();
	int64_t deadline = w->forever ? 0 : w->deadline_ns;

	for (;;) {
		int ms = slice_ms(w), rc;

		if (ms == 0)
			return SHMQ_ETIMEDOUT;
		if (queue_enter(q) < 0)
			return PYQ_PYERR;
		Py_BEGIN_ALLOW_THREADS
		shmq_wait_continue(since, deadline > 0 ? deadline : 0);
		rc = fn(ctx, ms);
		shmq_wait_continue(0, 0);
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
/* Roles                                                               */

/* The handle for `flag` (SHMQ_PRODUCER, SHMQ_CONSUMER), opened if this
 * Queue has none yet; NULL with an exception set.  Called again after
 * Python code ran (dumps, a codec), which may have detached the Queue. */
static shmq_t *want(pyq_queue *q, unsigned flag)
{
	shmq_t **hp = flag == SHMQ_PRODUCER ? &q->wh : &q->rh;

	/* Another thread may detach, or open the role, while queue_want()
	 * waits for the daemon: look again. */
	for (;;) {
		if (queue_check(q) < 0)
			return NULL;
		if (*hp)
			return *hp;
		if (queue_want(q, flag) < 0)
			return NULL;
	}
}

static inline shmq_t *want_fast(pyq_queue *q, unsigned flag)
{
	shmq_t *h = flag == SHMQ_PRODUCER ? q->wh : q->rh;

	return q->gen == pyq_fork_gen && h ? h : want(q, flag);
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

/* Puts one encoded item with handle h; the status. */
static int put_item(pyq_queue *q, shmq_t *h, const struct pyq_item *it,
		    const struct pyq_wait *w)
{
	int rc = shmq_put(h, it->p, it->n, SHMQ_NOWAIT);

	if (rc == SHMQ_EAGAIN && w->block) {
		struct iovec iov = { (void *)it->p, it->n };
		struct put_ctx x = { h, &iov, 1, 0 };
		rc = in_slices(q, w, put_slice, &x);
	}
	return rc;
}

/* put, put_nowait, _try_put: the status of the put (PYQ_PYERR: an
 * exception is set), *len the encoded length. */
static int put_one(pyq_queue *q, PyObject *item, const struct pyq_wait *w,
		   size_t *len)
{
	struct pyq_item it;
	shmq_t *h;
	int rc;

	*len = 0;
	if (want_fast(q, SHMQ_PRODUCER) == NULL)
		return PYQ_PYERR;
	if (items_encode(q, item, &it) < 0)
		return PYQ_PYERR;
	/* Encoding ran Python code: the Queue may be detached by now. */
	h = want_fast(q, SHMQ_PRODUCER);
	rc = h ? put_item(q, h, &it, w) : PYQ_PYERR;
	*len = it.n;
	items_release(&it);
	return rc;
}

static PyObject *put_common(pyq_queue *q, PyObject *item,
			    const struct pyq_wait *w)
{
	size_t len;
	int rc = put_one(q, item, w, &len);

	if (rc == SHMQ_OK)
		Py_RETURN_NONE;
	return put_error(q, rc, len);
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
 * no room for it now, and the producer descriptor is armed): for the
 * async adapters, which wait for the descriptor and try again. */
static PyObject *ops_try_put(PyObject *self, PyObject *item)
{
	pyq_queue *q = (pyq_queue *)self;
	struct pyq_wait w = { .block = 0 };
	size_t len;
	int rc = put_one(q, item, &w, &len);

	if (rc == SHMQ_OK)
		Py_RETURN_NONE;
	if (rc == SHMQ_EAGAIN)
		return PyLong_FromSize_t(len);
	return put_error(q, rc, len);
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
	shmq_t *h;
	int rc = PYQ_PYERR;

	if (pyq_unpack("put_many", args, nargs, kwnames, names, 1, 3, a) < 0 ||
	    ops_parse_wait(a[1], a[2], &w) < 0 ||
	    want_fast(q, SHMQ_PRODUCER) == NULL)
		return NULL;
	/* A tuple: its items stay while dumps() or a codec runs, whatever
	 * that code does to the caller's list. */
	if (PyTuple_CheckExact(a[0]))
		seq = Py_NewRef(a[0]);
	else if (PyList_CheckExact(a[0]))
		seq = PyList_AsTuple(a[0]);
	else if ((seq = PySequence_Tuple(a[0])) == NULL &&
		 PyErr_ExceptionMatches(PyExc_TypeError)) {
		PyErr_Clear();
		PyErr_SetString(PyExc_TypeError,
				"put_many() takes an iterable of items");
	}
	if (seq == NULL)
		return NULL;
	n = PyTuple_GET_SIZE(seq);
	if (n == 0)
		goto out;
	its = PyMem_Malloc((size_t)n * sizeof(*its));
	iov = PyMem_Malloc((size_t)n * sizeof(*iov));
	if (its == NULL || iov == NULL) {
		PyErr_NoMemory();
		goto out;
	}
	for (; enc < n; enc++) {
		if (items_encode(q, PyTuple_GET_ITEM(seq, enc), &its[enc]) < 0)
			goto out;
		iov[enc].iov_base = (void *)its[enc].p;
		iov[enc].iov_len = its[enc].n;
	}
	/* Encoding ran Python code: the Queue may be detached by now. */
	if ((h = want_fast(q, SHMQ_PRODUCER)) == NULL)
		goto out;
	rc = shmq_putv(h, iov, (size_t)n, &done, SHMQ_NOWAIT);
	if (rc == SHMQ_EAGAIN && w.block) {
		struct put_ctx x = { h, iov, (size_t)n, done };
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
/*
 * An item is taken (a get, or a lease) with the GIL held or just after
 * it is taken back, and decoded with the GIL held: decoding runs Python
 * code (loads, a codec) that may use this Queue from this thread or let
 * others run.  Only an item that decoded is recorded as delivered (its
 * lease in the Queue's list, or a task to be done), so task_done() never
 * acks an item that nobody received.  One that did not decode is given
 * back (nacked: only it, on an acked queue); one that a batch took after
 * it is kept for the next get, in order.
 */

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

/* The i-th message a batch took: its bytes and lease. */
static void batch_msg(const struct get_ctx *x, size_t i, const char **p,
		      size_t *n, struct shmq_msg *m)
{
	static const struct shmq_msg none;

	if (x->acked) {
		*m = x->msgs[i];
		*p = x->msgs[i].data;
		*n = x->msgs[i].len;
	} else {
		*m = none;
		*p = x->iov[i].iov_base;
		*n = x->iov[i].iov_len;
	}
}

/* Decodes an item handle h took; a new reference, or NULL with an
 * exception set and the item given back. */
static PyObject *deliver(pyq_queue *q, shmq_t *h, const char *p, size_t n,
			 const struct shmq_msg *m)
{
	PyObject *item = items_decode(q, p, n);

	if (item && queue_delivered(q, h, m) < 0)
		Py_CLEAR(item);
	if (item == NULL)
		queue_give_back(q, h, m);
	return item;
}

/* The next item kept by an earlier get_many; NULL with an exception set
 * (its own error, kept for this call, or the decoding's). */
static PyObject *kept_next(pyq_queue *q)
{
	struct pyq_kept k = q->kept[q->kept_head];
	PyObject *item;

	q->kept_head++;
	q->kept_n--;
	if (k.exc) {
		PyErr_SetObject((PyObject *)Py_TYPE(k.exc), k.exc);
		Py_DECREF(k.exc);
		return NULL;
	}
	item = deliver(q, q->rh, PyBytes_AS_STRING(k.raw),
		       (size_t)PyBytes_GET_SIZE(k.raw), &k.m);
	Py_DECREF(k.raw);
	return item;
}

/* After items were delivered into `list` and the next one raised: keeps
 * that error for the next get, and returns the list. */
static PyObject *keep_error(pyq_queue *q, PyObject *list)
{
	static const struct shmq_msg none;
	PyObject *type, *value, *tb;

	PyErr_Fetch(&type, &value, &tb);
	PyErr_NormalizeException(&type, &value, &tb);
	if (value == NULL) {            /* cannot happen: an error is set */
		Py_XDECREF(type);
		Py_XDECREF(tb);
		return list;
	}
	if (tb)
		PyException_SetTraceback(value, tb);
	Py_XDECREF(type);
	Py_XDECREF(tb);
	if (queue_keep_first(q, NULL, value, &none) < 0)
		PyErr_Clear();          /* the error is lost, not an item */
	return list;
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

	if ((x.h = want_fast(q, SHMQ_CONSUMER)) == NULL)
		return NULL;
	if (q->kept_n)
		return kept_next(q);
	x.acked = q->acked;
	x.size = q->max_msg;
	x.buf = buf_claim(q, x.size, &own);
	if (x.buf == NULL)
		return NULL;
	rc = get_slice(&x, SHMQ_NOWAIT);
	if (rc == SHMQ_EAGAIN && w->block)
		rc = in_slices(q, w, get_slice, &x);
	if (rc == SHMQ_OK)
		item = deliver(q, x.h, x.buf, x.len, &x.m);
	else if (dflt && (rc == SHMQ_EAGAIN || rc == SHMQ_ETIMEDOUT))
		item = Py_NewRef(dflt);
	else if (!(stop && rc == SHMQ_EOS))
		get_error(q, rc);
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

/* _try_get(default) -> an item, or default if none is there now (and
 * the consumer descriptor is armed). */
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

/* get_many's share of what an earlier get_many kept: up to max items,
 * stopping before a kept error unless it comes first. */
static PyObject *get_many_kept(pyq_queue *q, Py_ssize_t max)
{
	PyObject *list = PyList_New(0);

	while (list && q->kept_n && PyList_GET_SIZE(list) < max) {
		if (q->kept[q->kept_head].exc && PyList_GET_SIZE(list))
			break;
		PyObject *item = kept_next(q);
		if (item == NULL) {
			if (PyList_GET_SIZE(list) == 0)
				Py_CLEAR(list);
			else
				list = keep_error(q, list);
			break;
		}
		if (PyList_Append(list, item) < 0)
			Py_CLEAR(list);         /* the item is lost: no memory */
		Py_DECREF(item);
	}
	return list;
}

/* Delivers what a batch took, in order, into a list.  If one item does
 * not decode, the items before it are returned, its error is kept for
 * the next get and the items after it for the gets after that; if it is
 * the first, its error is raised now. */
static PyObject *get_many_deliver(pyq_queue *q, const struct get_ctx *x)
{
	PyObject *all = PyList_New((Py_ssize_t)x->got), *list = NULL;
	PyObject *type, *value, *tb;
	size_t i = 0;

	for (; all && i < x->got; i++) {
		const char *p;
		size_t n;
		struct shmq_msg m;
		batch_msg(x, i, &p, &n, &m);
		PyObject *item = deliver(q, x->h, p, n, &m);
		if (item == NULL)
			break;
		PyList_SET_ITEM(all, (Py_ssize_t)i, item);
	}
	if (all && i == x->got)
		return all;
	/* Item i failed (or there was no memory for the list): keep the
	 * ones after it, in front of anything kept meanwhile by code that
	 * decoding ran. */
	PyErr_Fetch(&type, &value, &tb);
	for (size_t j = x->got; j-- > i + (all != NULL);) {
		const char *p;
		size_t n;
		struct shmq_msg m;
		batch_msg(x, j, &p, &n, &m);
		PyObject *raw = PyBytes_FromStringAndSize(p, (Py_ssize_t)n);
		if (raw == NULL || queue_keep_first(q, raw, NULL, &m) < 0) {
			PyErr_Clear();
			queue_give_back(q, x->h, &m);
		}
	}
	if (all && i > 0)
		list = PyList_GetSlice(all, 0, (Py_ssize_t)i);
	Py_XDECREF(all);
	if (list == NULL) {
		PyErr_Restore(type, value, tb);
		return NULL;
	}
	PyErr_Restore(type, value, tb);
	return keep_error(q, list);
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
	if ((x.h = want_fast(q, SHMQ_CONSUMER)) == NULL)
		return NULL;
	if (q->kept_n)
		return get_many_kept(q, max);
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
	if (rc != SHMQ_OK || x.got == 0)
		get_error(q, rc == SHMQ_OK ? SHMQ_EAGAIN : rc);
	else
		list = get_many_deliver(q, &x);
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

/* An ack waits only for the consumers' lock (held for a copy), but
 * without a limit: libshmq has no timed ack, so this "slice" is the whole
 * wait, without the GIL, and a signal is handled once it returns. */
static int ack_slice(void *c, int ms)
{
	struct ack_ctx *x = c;

	(void)ms;
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
/* The event loops' descriptors (the async adapters)                   */

/* _fd(direction) -> int: the descriptor of this Queue's consumer ('get')
 * or producer ('put') handle, readable when a get or a put may proceed
 * (libshmq's shmq_fd(); armed by _try_get / _try_put finding nothing to
 * do).  Attaches the role first if needed.  It is the handle's: closed
 * when the Queue detaches. */
static PyObject *ops_fd(PyObject *self, PyObject *arg)
{
	pyq_queue *q = (pyq_queue *)self;
	unsigned flag, dir;
	shmq_t *h;
	int fd, rc;

	if (PyUnicode_Check(arg) &&
	    PyUnicode_CompareWithASCIIString(arg, "put") == 0) {
		flag = SHMQ_PRODUCER;
		dir = SHMQ_POLL_PUT;
	} else if (PyUnicode_Check(arg) &&
		   PyUnicode_CompareWithASCIIString(arg, "get") == 0) {
		flag = SHMQ_CONSUMER;
		dir = SHMQ_POLL_GET;
	} else {
		PyErr_SetString(PyExc_ValueError,
				"direction must be 'get' or 'put'");
		return NULL;
	}
	if ((h = want_fast(q, flag)) == NULL)
		return NULL;
	rc = shmq_fd(h, dir, &fd);      /* never blocks */
	if (rc != SHMQ_OK)
		return pyq_raise_status(rc, q->name, NULL);
	return PyLong_FromLong(fd);
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
	{ "_fd", ops_fd, METH_O,
	  "_fd(direction) -> int: the descriptor that becomes readable when "
	  "a get ('get') or a put ('put') may proceed.  For the async "
	  "adapters." },
	{ "_try_put", ops_try_put, METH_O,
	  "_try_put(item) -> None if put, else the encoded length." },
	{ "_try_get", ops_try_get, METH_O,
	  "_try_get(default) -> an item, or default if none is there." },
	{ NULL, NULL, 0, NULL },
};
