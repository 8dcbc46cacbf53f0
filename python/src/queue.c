/*
 * queue.c - a shmq.Queue's handles and lifetime.
 *
 * Owns construction (create, open), the lazy roles (a Queue attaches as
 * a producer at its first put and as a consumer at its first get, unless
 * role= says up front), detaching (explicitly, by `with`, when collected,
 * at exit), the fork guard, what a Queue delivered (leases, tasks) or
 * took and keeps for its next get, and the calls that only look at the
 * queue (qsize, empty, full, stat) or close it (shutdown).
 *
 * It must never detach a handle that another thread is using without the
 * GIL (queue_enter/queue_leave count those), nor one inherited through
 * fork(): that attachment is the parent's, and detaching it from the child
 * would end the parent's use of the queue.
 */
#include "shmqpy.h"

#include <structmember.h>

#include <limits.h>
#include <math.h>
#include <string.h>
#include <unistd.h>

#define LOAD(p)     __atomic_load_n((p), __ATOMIC_SEQ_CST)
#define STORE(p, v) __atomic_store_n((p), (v), __ATOMIC_SEQ_CST)

/* ------------------------------------------------------------------ */
/* Threads and the handles                                             */

int queue_enter(pyq_queue *q)
{
	if (queue_check(q) < 0)
		return -1;
	__atomic_add_fetch(&q->inflight, 1, __ATOMIC_SEQ_CST);
	return 0;
}

void queue_leave(pyq_queue *q)
{
	__atomic_sub_fetch(&q->inflight, 1, __ATOMIC_SEQ_CST);
	/* Detached at exit: the interpreter is going away, and this thread
	 * must not come back to a handle that is gone, nor raise in a
	 * daemon thread.  It sleeps until the process ends. */
	if (LOAD(&q->exiting))
		for (;;)
			pause();
}

int queue_still_open(pyq_queue *q)
{
	if (q->state == PYQ_OPEN)
		return 0;
	if (q->state == PYQ_NEW)
		PyErr_SetString(PyExc_ValueError,
				"the Queue was not initialised");
	else
		PyErr_Format(PyExc_ValueError, "Queue %R is detached",
			     q->name);
	return -1;
}

int queue_check_slow(pyq_queue *q)
{
	if (queue_still_open(q) < 0)
		return -1;
	if (q->gen == pyq_fork_gen)
		return 0;
	/* A forked child.  The package reopens it in a multiprocessing
	 * child, and raises ForkError otherwise. */
	if (pyq_on_fork) {
		PyObject *r = PyObject_CallOneArg(pyq_on_fork, (PyObject *)q);
		if (r == NULL)
			return -1;
		Py_DECREF(r);
		if (q->state == PYQ_OPEN && q->gen == pyq_fork_gen)
			return 0;
	}
	PyErr_Format(pyq_ForkError,
		     "Queue %R was opened by process %d and this is its "
		     "forked child %d: a handle cannot cross fork(); open the "
		     "queue again by name here (shmq.Queue(%R)), or pass it "
		     "to a multiprocessing.Process, which does",
		     q->name, (int)q->pid, (int)getpid(), q->name);
	return -1;
}

/* Forgets what was kept for the next get (decoding may run code). */
static void kept_clear(pyq_queue *q)
{
	struct pyq_kept *kept = q->kept;
	size_t head = q->kept_head, n = q->kept_n;

	q->kept = NULL;
	q->kept_head = q->kept_n = q->kept_cap = 0;
	for (size_t i = head; i < head + n; i++) {
		Py_XDECREF(kept[i].raw);
		Py_XDECREF(kept[i].exc);
	}
	PyMem_Free(kept);
}

/* Forgets every handle: detaching each if they are this process's.  A
 * detach may take a round trip to the daemon (a reconnection after it
 * restarted): it runs without the GIL, once the Queue holds none of its
 * handles any more (no other thread can pick one up meanwhile). */
static void drop_handles(pyq_queue *q, int detach)
{
	shmq_t *hs[3] = { q->rh, q->wh, q->h };

	/* Inherited handles are leaked on purpose: freeing one means
	 * detaching it, and the attachment is the parent's. */
	q->h = q->rh = q->wh = NULL;
	q->h_flags = 0;
	q->lease_head = q->lease_n = 0;
	q->unfinished = 0;
	/* h may be rh or wh, and rh may be wh (role='rw'): once each. */
	if (hs[1] == hs[0])
		hs[1] = NULL;
	if (hs[2] == hs[0] || hs[2] == hs[1])
		hs[2] = NULL;
	if (detach && (hs[0] || hs[1] || hs[2])) {
		Py_BEGIN_ALLOW_THREADS
		for (int i = 0; i < 3; i++)
			if (hs[i])
				shmq_detach(hs[i]);
		Py_END_ALLOW_THREADS
	}
	kept_clear(q);
}

void queue_detach(pyq_queue *q, int at_exit)
{
	unsigned gen = q->gen;

	if (q->state != PYQ_OPEN)
		return;
	q->state = PYQ_DETACHING;
	q->gen = PYQ_GEN_NONE;
	if (at_exit)
		STORE(&q->exiting, 1);
	if (LOAD(&q->inflight)) {
		/* Calls blocked in another thread notice within a slice. */
		Py_BEGIN_ALLOW_THREADS
		while (LOAD(&q->inflight))
			usleep(1000);
		Py_END_ALLOW_THREADS
	}
	drop_handles(q, gen == pyq_fork_gen);
	q->state = PYQ_DETACHED;
}

char *queue_scratch(pyq_queue *q, size_t size)
{
	if (q->scratch_size < size) {
		char *p = PyMem_Realloc(q->scratch, size);
		if (p == NULL) {
			PyErr_NoMemory();
			return NULL;
		}
		q->scratch = p;
		q->scratch_size = size;
	}
	return q->scratch;
}

static int lease_push(pyq_queue *q, const struct shmq_msg *m)
{
	if (q->lease_n == q->lease_cap) {
		size_t cap = q->lease_cap ? q->lease_cap * 2 : 16;
		struct shmq_msg *grown = PyMem_Malloc(cap * sizeof(*grown));
		if (grown == NULL) {
			PyErr_NoMemory();
			return -1;
		}
		for (size_t i = 0; i < q->lease_n; i++)
			grown[i] = q->leases[(q->lease_head + i) %
					     q->lease_cap];
		PyMem_Free(q->leases);
		q->leases = grown;
		q->lease_cap = cap;
		q->lease_head = 0;
	}
	struct shmq_msg *e =
		&q->leases[(q->lease_head + q->lease_n) % q->lease_cap];
	*e = *m;
	e->data = NULL;         /* points into a reused buffer */
	q->lease_n++;
	return 0;
}

int queue_delivered(pyq_queue *q, shmq_t *h, const struct shmq_msg *m)
{
	/* Detached (or reopened) by code that decoding ran: the lease ended
	 * with the handle that took it. */
	if (q->state != PYQ_OPEN || q->rh != h)
		return 0;
	if (!q->acked) {
		q->unfinished++;
		return 0;
	}
	return lease_push(q, m);
}

int queue_keep_first(pyq_queue *q, PyObject *raw, PyObject *exc,
		     const struct shmq_msg *m)
{
	if (q->kept_head == 0) {
		/* Room at the front: grow if full, and move the rest up. */
		size_t cap = q->kept_n == q->kept_cap
			     ? (q->kept_cap ? q->kept_cap * 2 : 8) : q->kept_cap;
		struct pyq_kept *to = q->kept;
		if (cap != q->kept_cap) {
			to = PyMem_Malloc(cap * sizeof(*to));
			if (to == NULL) {
				Py_XDECREF(raw);
				Py_XDECREF(exc);
				PyErr_NoMemory();
				return -1;
			}
		}
		size_t room = cap - q->kept_n;
		if (q->kept_n)
			memmove(to + room, q->kept, q->kept_n * sizeof(*to));
		if (to != q->kept) {
			PyMem_Free(q->kept);
			q->kept = to;
			q->kept_cap = cap;
		}
		q->kept_head = room;
	}
	struct pyq_kept *e = &q->kept[--q->kept_head];
	q->kept_n++;
	e->raw = raw;
	e->exc = exc;
	e->m = *m;
	e->m.data = NULL;
	return 0;
}

void queue_give_back(pyq_queue *q, shmq_t *h, const struct shmq_msg *m)
{
	/* Detached meanwhile (by code that decoding ran): the lease ended
	 * with the handle. */
	if (!q->acked || m->lease == 0 || q->state != PYQ_OPEN ||
	    q->gen != pyq_fork_gen || q->rh != h)
		return;
	/* A nack waits for the consumers' lock, without a limit. */
	__atomic_add_fetch(&q->inflight, 1, __ATOMIC_SEQ_CST);
	Py_BEGIN_ALLOW_THREADS
	shmq_nack(h, m, 0);
	queue_leave(q);
	Py_END_ALLOW_THREADS
}

/* Opens a handle with the GIL released; -1 with an exception set. */
static int open_handle(pyq_queue *q, unsigned flags, shmq_t **hp)
{
	const char *name = PyUnicode_AsUTF8(q->name);
	int rc;

	if (name == NULL)
		return -1;
	Py_BEGIN_ALLOW_THREADS
	rc = shmq_open(name, flags, hp);
	Py_END_ALLOW_THREADS
	if (rc != SHMQ_OK) {
		pyq_raise_status(rc, q->name, NULL);
		return -1;
	}
	return 0;
}

int queue_want(pyq_queue *q, unsigned flag)
{
	shmq_t *nh = NULL;

	if (q->role) {
		pyq_raise_status(SHMQ_EROLE, q->name,
				 flag == SHMQ_PRODUCER
				 ? "this Queue was opened with role='r': it "
				   "cannot put"
				 : "this Queue was opened with role='w': it "
				   "cannot get");
		return -1;
	}
	if (open_handle(q, flag, &nh) < 0)
		return -1;
	/* Another thread may have detached the Queue or opened the same
	 * role while the GIL was released. */
	if (q->state != PYQ_OPEN || q->gen != pyq_fork_gen ||
	    (flag == SHMQ_PRODUCER ? q->wh : q->rh) != NULL) {
		Py_BEGIN_ALLOW_THREADS
		shmq_detach(nh);
		Py_END_ALLOW_THREADS
		return q->state == PYQ_OPEN ? 0 : queue_still_open(q);
	}
	if (flag == SHMQ_PRODUCER)
		q->wh = nh;
	else
		q->rh = nh;
	/* The first handle, opened with no role, is not needed any more
	 * once a role handle exists (unless a call is using it now: no
	 * call picks it up once it is no longer q->h). */
	if (q->h_flags == 0 && LOAD(&q->inflight) == 0) {
		shmq_t *old = q->h;
		q->h = nh;
		q->h_flags = flag;
		Py_BEGIN_ALLOW_THREADS
		shmq_detach(old);
		Py_END_ALLOW_THREADS
	}
	return 0;
}

/* ------------------------------------------------------------------ */
/* Construction                                                        */

static int u64_arg(PyObject *obj, const char *what, uint64_t max,
		   uint64_t *out)
{
	unsigned long long v;
	long long s;
	int overflow, too_big = 0;

	if (obj == NULL)
		return 0;
	if (!PyLong_Check(obj)) {
		PyErr_Format(PyExc_TypeError, "%s must be an int, not %.100s",
			     what, Py_TYPE(obj)->tp_name);
		return -1;
	}
	s = PyLong_AsLongLongAndOverflow(obj, &overflow);
	if (s == -1 && PyErr_Occurred())
		return -1;
	if (overflow > 0) {
		v = PyLong_AsUnsignedLongLong(obj);
		if (v == (unsigned long long)-1 && PyErr_Occurred()) {
			PyErr_Clear();          /* beyond 64 bits */
			too_big = 1;
		}
	} else {
		v = (unsigned long long)s;
	}
	if (too_big || overflow < 0 || (!overflow && s < 0) || v > max) {
		PyErr_Format(PyExc_ValueError,
			     "%s must be between 0 and %llu", what,
			     (unsigned long long)max);
		return -1;
	}
	*out = v;
	return 0;
}

static int role_arg(PyObject *obj, unsigned *role)
{
	*role = 0;
	if (obj == NULL || obj == Py_None)
		return 0;
	if (PyUnicode_Check(obj)) {
		const char *s = PyUnicode_AsUTF8(obj);
		if (s == NULL)
			return -1;
		if (!strcmp(s, "r"))
			*role = SHMQ_CONSUMER;
		else if (!strcmp(s, "w"))
			*role = SHMQ_PRODUCER;
		else if (!strcmp(s, "rw") || !strcmp(s, "wr"))
			*role = SHMQ_PRODUCER | SHMQ_CONSUMER;
		if (*role)
			return 0;
	}
	PyErr_Format(PyExc_ValueError,
		     "role must be None, 'r', 'w' or 'rw', not %R", obj);
	return -1;
}

static int lease_timeout_arg(PyObject *obj, uint32_t *ms)
{
	double s;

	*ms = 0;
	if (obj == NULL || obj == Py_None)
		return 0;
	s = PyFloat_AsDouble(obj);
	if (s == -1.0 && PyErr_Occurred())
		return -1;
	if (!(s > 0) || s * 1000.0 > (double)UINT32_MAX) {
		PyErr_Format(PyExc_ValueError,
			     "lease_timeout must be None or between 0.001 and "
			     "%u seconds", UINT32_MAX / 1000);
		return -1;
	}
	*ms = (uint32_t)ceil(s * 1000.0);
	return 0;
}

static int learn_queue(pyq_queue *q)
{
	struct shmq_stat st;
	int rc = shmq_stat(q->h, &st);

	if (rc != SHMQ_OK) {
		pyq_raise_status(rc, q->name, NULL);
		return -1;
	}
	q->capacity = st.capacity;
	q->max_bytes = st.max_bytes;
	q->max_msg = shmq_max_msg(q->h);
	q->acked = (st.flags & SHMQ_ACKED) != 0;
	return 0;
}

/* Opens this Queue's first handle, with role= flags, and learns the
 * queue's geometry. */
static int attach(pyq_queue *q)
{
	if (open_handle(q, q->role, &q->h) < 0)
		return -1;
	q->h_flags = q->role;
	if (q->role & SHMQ_CONSUMER)
		q->rh = q->h;
	if (q->role & SHMQ_PRODUCER)
		q->wh = q->h;
	if (learn_queue(q) < 0) {
		drop_handles(q, 1);
		return -1;
	}
	q->pid = getpid();
	q->gen = pyq_fork_gen;
	q->state = PYQ_OPEN;
	return 0;
}

static int queue_init(PyObject *self, PyObject *args, PyObject *kwds)
{
	static char *kwlist[] = {
		"name", "create", "exist_ok", "capacity", "max_msg",
		"max_bytes", "mode", "auto_close", "acked", "lease_timeout",
		"max_deliveries", "dead_letter", "role", "encoding", "errors",
		"serializer", "on_deadlock", NULL,
	};
	pyq_queue *q = (pyq_queue *)self;
	PyObject *name, *capacity = NULL, *max_msg = NULL, *max_bytes = NULL;
	PyObject *mode = NULL, *lease_timeout = NULL, *max_deliveries = NULL;
	PyObject *dead_letter = Py_None, *role = Py_None;
	PyObject *encoding = Py_None, *errors = Py_None;
	PyObject *serializer = Py_None;
	const char *on_deadlock = "report";
	int create = 0, exist_ok = 1, auto_close = 0, acked = 0;
	struct shmq_attr attr;
	uint64_t v;
	int rc;

	if (!PyArg_ParseTupleAndKeywords(
		    args, kwds, "U|$ppOOOOppOOOOOOOs:Queue", kwlist, &name,
		    &create, &exist_ok, &capacity, &max_msg, &max_bytes, &mode,
		    &auto_close, &acked, &lease_timeout, &max_deliveries,
		    &dead_letter, &role, &encoding, &errors, &serializer,
		    &on_deadlock))
		return -1;
	if (q->state != PYQ_NEW) {
		PyErr_SetString(PyExc_RuntimeError,
				"a Queue is initialised once");
		return -1;
	}
	shmq_attr_init(&attr);
	if (u64_arg(capacity, "capacity", UINT32_MAX, &v) < 0)
		return -1;
	attr.capacity = capacity ? (uint32_t)v : attr.capacity;
	if (u64_arg(max_msg, "max_msg", UINT32_MAX, &v) < 0)
		return -1;
	attr.max_msg = max_msg ? (uint32_t)v : attr.max_msg;
	if (u64_arg(max_bytes, "max_bytes", UINT64_MAX, &attr.max_bytes) < 0)
		return -1;
	if (u64_arg(mode, "mode", 0777, &v) < 0)
		return -1;
	attr.mode = mode ? (uint32_t)v : attr.mode;
	if (u64_arg(max_deliveries, "max_deliveries", UINT32_MAX, &v) < 0)
		return -1;
	attr.max_deliveries = max_deliveries ? (uint32_t)v : 0;
	if (lease_timeout_arg(lease_timeout, &attr.lease_timeout_ms) < 0)
		return -1;
	attr.flags = (auto_close ? SHMQ_AUTO_CLOSE : 0) |
		     (acked ? SHMQ_ACKED : 0);
	if (strcmp(on_deadlock, "fail") == 0) {
		attr.flags |= SHMQ_DEADLOCK_FAIL;
	} else if (strcmp(on_deadlock, "report") != 0) {
		PyErr_Format(PyExc_ValueError, "on_deadlock must be 'report' "
			     "or 'fail', not '%s'", on_deadlock);
		return -1;
	}
	if (dead_letter != Py_None) {
		if (!PyUnicode_Check(dead_letter)) {
			PyErr_SetString(PyExc_TypeError,
					"dead_letter must be a queue name");
			return -1;
		}
		attr.dead_letter = PyUnicode_AsUTF8(dead_letter);
		if (attr.dead_letter == NULL)
			return -1;
	}
	if (role_arg(role, &q->role) < 0)
		return -1;
	if (items_setup(q, encoding, errors, serializer) < 0)
		return -1;
	const char *cname = PyUnicode_AsUTF8(name);
	if (cname == NULL)
		return -1;
	Py_XSETREF(q->name, Py_NewRef(name));
	if (create) {
		Py_BEGIN_ALLOW_THREADS
		rc = shmq_create(cname, &attr, exist_ok ? SHMQ_EXIST_OK : 0);
		Py_END_ALLOW_THREADS
		if (rc != SHMQ_OK) {
			pyq_raise_status(rc, name, NULL);
			return -1;
		}
	}
	if (attach(q) < 0)
		return -1;
	pyq_live_add(q);
	return 0;
}

/* ------------------------------------------------------------------ */
/* Looking, closing, detaching                                         */

static int stat_of(pyq_queue *q, struct shmq_stat *st)
{
	int rc;

	if (queue_check(q) < 0)
		return -1;
	rc = shmq_stat(q->h, st);
	if (rc != SHMQ_OK) {
		pyq_raise_status(rc, q->name, NULL);
		return -1;
	}
	return 0;
}

/* Items a get would return now: the queue's, and those this Queue took
 * and keeps for its next get. */
static PyObject *queue_qsize(PyObject *self, PyObject *unused)
{
	struct shmq_stat st;

	(void)unused;
	if (stat_of((pyq_queue *)self, &st) < 0)
		return NULL;
	return PyLong_FromUnsignedLongLong(st.messages +
					   ((pyq_queue *)self)->kept_n);
}

static PyObject *queue_empty(PyObject *self, PyObject *unused)
{
	struct shmq_stat st;

	(void)unused;
	if (stat_of((pyq_queue *)self, &st) < 0)
		return NULL;
	return PyBool_FromLong(st.messages == 0 &&
			       ((pyq_queue *)self)->kept_n == 0);
}

static PyObject *queue_full(PyObject *self, PyObject *unused)
{
	struct shmq_stat st;

	(void)unused;
	if (stat_of((pyq_queue *)self, &st) < 0)
		return NULL;
	return PyBool_FromLong(st.messages + st.leased >= st.capacity ||
			       (st.max_bytes && st.bytes >= st.max_bytes));
}

static PyObject *queue_stat(PyObject *self, PyObject *unused)
{
	struct shmq_stat st;

	(void)unused;
	if (stat_of((pyq_queue *)self, &st) < 0)
		return NULL;
	return pyq_stat_tuple(&st);
}

static PyObject *queue_shutdown(PyObject *self, PyObject *const *args,
				Py_ssize_t nargs, PyObject *kwnames)
{
	static const char *const names[] = { "immediate" };
	pyq_queue *q = (pyq_queue *)self;
	PyObject *a[1];
	int immediate = 0, rc;

	if (pyq_unpack("shutdown", args, nargs, kwnames, names, 0, 1, a) < 0)
		return NULL;
	if (a[0] && (immediate = PyObject_IsTrue(a[0])) < 0)
		return NULL;
	if (queue_enter(q) < 0)
		return NULL;
	/* An immediate close waits up to a second for a stalled consumer. */
	Py_BEGIN_ALLOW_THREADS
	rc = shmq_close(q->h, immediate ? SHMQ_CLOSE_NOW : SHMQ_CLOSE_DRAIN,
			NULL);
	queue_leave(q);
	Py_END_ALLOW_THREADS
	/* EBUSY: closed all the same; the next get discards the rest. */
	if (rc != SHMQ_OK && rc != SHMQ_EBUSY)
		return pyq_raise_status(rc, q->name, NULL);
	Py_RETURN_NONE;
}

static PyObject *queue_detach_m(PyObject *self, PyObject *unused)
{
	pyq_queue *q = (pyq_queue *)self;

	(void)unused;
	queue_detach(q, 0);
	Py_RETURN_NONE;
}

static PyObject *queue_exit(PyObject *self, PyObject *args)
{
	(void)args;
	queue_detach((pyq_queue *)self, 0);
	Py_RETURN_FALSE;
}

static PyObject *queue_enter_m(PyObject *self, PyObject *unused)
{
	(void)unused;
	if (queue_check((pyq_queue *)self) < 0)
		return NULL;
	return Py_NewRef(self);
}

/* Called by the package's fork hook in a multiprocessing child: the
 * inherited handles are the parent's (left as they are), this Queue opens
 * its own, with the same role. */
static PyObject *queue_reopen(PyObject *self, PyObject *unused)
{
	pyq_queue *q = (pyq_queue *)self;

	(void)unused;
	if (queue_still_open(q) < 0)
		return NULL;
	if (q->gen == pyq_fork_gen)
		Py_RETURN_NONE;
	drop_handles(q, 0);
	q->inflight = 0;        /* the threads that used them are gone */
	q->exiting = 0;
	q->scratch_busy = 0;
	q->gen = PYQ_GEN_NONE;
	if (attach(q) < 0) {
		q->state = PYQ_DETACHED;
		return NULL;
	}
	Py_RETURN_NONE;
}

static PyObject *queue_iter(PyObject *self)
{
	if (queue_check((pyq_queue *)self) < 0)
		return NULL;
	return Py_NewRef(self);
}

/* ------------------------------------------------------------------ */
/* Attributes                                                          */

static PyObject *get_name(PyObject *self, void *c)
{
	(void)c;
	return Py_NewRef(((pyq_queue *)self)->name ?
			 ((pyq_queue *)self)->name : Py_None);
}

static PyObject *get_maxsize(PyObject *self, void *c)
{
	(void)c;
	return PyLong_FromUnsignedLong(((pyq_queue *)self)->capacity);
}

static PyObject *get_max_msg(PyObject *self, void *c)
{
	(void)c;
	return PyLong_FromSize_t(((pyq_queue *)self)->max_msg);
}

static PyObject *get_acked(PyObject *self, void *c)
{
	(void)c;
	return PyBool_FromLong(((pyq_queue *)self)->acked);
}

static PyObject *get_detached(PyObject *self, void *c)
{
	(void)c;
	return PyBool_FromLong(((pyq_queue *)self)->state != PYQ_OPEN);
}

static PyObject *get_role(PyObject *self, void *c)
{
	static const char *const names[] = { NULL, "w", "r", "rw" };
	unsigned role = ((pyq_queue *)self)->role & 3u;

	(void)c;
	if (names[role] == NULL)
		Py_RETURN_NONE;
	return PyUnicode_FromString(names[role]);
}

static PyObject *get_attached(PyObject *self, void *c)
{
	pyq_queue *q = (pyq_queue *)self;
	const char *s = q->rh && q->wh ? "rw" : q->rh ? "r" : q->wh ? "w" : "";

	(void)c;
	return PyUnicode_FromString(s);
}

static PyObject *get_is_shutdown(PyObject *self, void *c)
{
	struct shmq_stat st;

	(void)c;
	if (stat_of((pyq_queue *)self, &st) < 0)
		return NULL;
	return PyBool_FromLong(st.state != SHMQ_STATE_OPEN);
}

static PyObject *get_opt(PyObject *v)
{
	return Py_NewRef(v ? v : Py_None);
}

static PyObject *get_encoding(PyObject *self, void *c)
{
	(void)c;
	return get_opt(((pyq_queue *)self)->encoding);
}

static PyObject *get_errors(PyObject *self, void *c)
{
	(void)c;
	return get_opt(((pyq_queue *)self)->errors);
}

static PyObject *get_serializer(PyObject *self, void *c)
{
	(void)c;
	return get_opt(((pyq_queue *)self)->serializer);
}

static PyObject *get_pid(PyObject *self, void *c)
{
	(void)c;
	return PyLong_FromLong((long)((pyq_queue *)self)->pid);
}

static PyGetSetDef queue_getset[] = {
	{ "name", get_name, NULL, "The queue's name.", NULL },
	{ "maxsize", get_maxsize, NULL,
	  "The queue's capacity, in messages (queue.Queue's maxsize).",
	  NULL },
	{ "max_msg", get_max_msg, NULL,
	  "The largest message the queue takes, in bytes.", NULL },
	{ "acked", get_acked, NULL,
	  "True for an acked queue: get() leases, task_done() acks.", NULL },
	{ "detached", get_detached, NULL,
	  "True once detach() (or the end of a with block) ran.", NULL },
	{ "role", get_role, NULL,
	  "role= as given: None (attach on first use), 'r', 'w' or 'rw'.",
	  NULL },
	{ "attached", get_attached, NULL,
	  "The roles this Queue holds now: '', 'r', 'w' or 'rw'.", NULL },
	{ "is_shutdown", get_is_shutdown, NULL,
	  "True once the queue is closed (by anyone).", NULL },
	{ "encoding", get_encoding, NULL, "encoding= as given.", NULL },
	{ "errors", get_errors, NULL, "errors= as given.", NULL },
	{ "serializer", get_serializer, NULL, "serializer= as given.", NULL },
	{ "pid", get_pid, NULL, "The process that opened the handles.",
	  NULL },
	{ NULL, NULL, NULL, NULL, NULL },
};

static PyMethodDef queue_methods[] = {
	{ "qsize", queue_qsize, METH_NOARGS,
	  "qsize() -> int: messages queued now (acked queues: waiting for "
	  "delivery), and those this Queue took and keeps for its next get "
	  "(see get_many).  Approximate, as queue.Queue's." },
	{ "empty", queue_empty, METH_NOARGS,
	  "empty() -> bool: qsize() == 0." },
	{ "full", queue_full, METH_NOARGS,
	  "full() -> bool: no room for another message (capacity, or the "
	  "byte budget spent)." },
	{ "stat", queue_stat, METH_NOARGS,
	  "stat() -> Stat: the numbers `qctl stat` shows." },
	{ "shutdown", (PyCFunction)(void (*)(void))queue_shutdown,
	  METH_FASTCALL | METH_KEYWORDS,
	  "shutdown(immediate=False): close the queue, for every process.  "
	  "put() then raises ShutDown; get() returns what is queued, then "
	  "raises ShutDown (immediate: at once, what was queued is "
	  "discarded).  Wakes every blocked put() and get()." },
	{ "detach", queue_detach_m, METH_NOARGS,
	  "detach(): release this process's handles (the queue stays).  On "
	  "an auto_close queue, the last producer's detach closes it." },
	{ "close", queue_detach_m, METH_NOARGS,
	  "close(): detach() (as multiprocessing.Queue.close(): this "
	  "process is done with the queue; see shutdown() to close it)." },
	{ "__enter__", queue_enter_m, METH_NOARGS, NULL },
	{ "__exit__", queue_exit, METH_VARARGS, NULL },
	{ "_reopen", queue_reopen, METH_NOARGS,
	  "Open this Queue's own handles in a forked child." },
	{ NULL, NULL, 0, NULL },
};

/* ------------------------------------------------------------------ */
/* The type                                                            */

static PyObject *queue_new(PyTypeObject *type, PyObject *args,
			   PyObject *kwds)
{
	pyq_queue *q = (pyq_queue *)type->tp_alloc(type, 0);

	(void)args;
	(void)kwds;
	if (q == NULL)
		return NULL;
	q->gen = PYQ_GEN_NONE;
	q->state = PYQ_NEW;
	return (PyObject *)q;
}

static int queue_traverse(PyObject *self, visitproc visit, void *arg)
{
	pyq_queue *q = (pyq_queue *)self;

	Py_VISIT(Py_TYPE(self));
	Py_VISIT(q->serializer);
	Py_VISIT(q->dumps);
	Py_VISIT(q->loads);
	for (size_t i = 0; i < q->kept_n; i++)
		Py_VISIT(q->kept[q->kept_head + i].exc);
	return 0;
}

static int queue_clear(PyObject *self)
{
	pyq_queue *q = (pyq_queue *)self;

	/* The codec stays: items.c refuses to run without dumps/loads. */
	Py_CLEAR(q->serializer);
	Py_CLEAR(q->dumps);
	Py_CLEAR(q->loads);
	kept_clear(q);
	return 0;
}

static void queue_dealloc(PyObject *self)
{
	pyq_queue *q = (pyq_queue *)self;
	PyTypeObject *tp = Py_TYPE(self);

	PyObject_GC_UnTrack(self);
	if (q->weakrefs)
		PyObject_ClearWeakRefs(self);
	/* Out of the list first: detaching releases the GIL, and the exit
	 * must not find a Queue that is going away. */
	if (q->state != PYQ_NEW)
		pyq_live_remove(q);
	/* No call can be running (each holds a reference): detach now,
	 * unless the handles are a parent's. */
	if (q->state == PYQ_OPEN)
		drop_handles(q, q->gen == pyq_fork_gen);
	q->state = PYQ_DETACHED;
	kept_clear(q);
	queue_clear(self);
	Py_CLEAR(q->name);
	Py_CLEAR(q->encoding);
	Py_CLEAR(q->errors);
	PyMem_Free(q->scratch);
	PyMem_Free(q->leases);
	tp->tp_free(self);
	Py_DECREF(tp);
}

static PyMemberDef queue_members[] = {
	{ "__weaklistoffset__", T_PYSSIZET,
	  offsetof(pyq_queue, weakrefs), READONLY, NULL },
	{ NULL, 0, 0, 0, NULL },
};

PyDoc_STRVAR(queue_doc,
"Queue(name, *, create=False, exist_ok=True, capacity=1024, max_msg=4096,\n"
"      max_bytes=0, mode=0o600, auto_close=False, acked=False,\n"
"      lease_timeout=None, max_deliveries=0, dead_letter=None, role=None,\n"
"      encoding=None, errors=None, serializer=None, on_deadlock='report')\n"
"--\n\n"
"A named, bounded shmq queue, with queue.Queue's methods, shared by\n"
"processes.  The C half; use shmq.Queue.");

/* queue_methods, then ops.c's: filled by queue_type_new(). */
static PyMethodDef all_methods[32];

static PyType_Slot queue_slots[] = {
	{ Py_tp_doc, (void *)queue_doc },
	{ Py_tp_new, queue_new },
	{ Py_tp_init, queue_init },
	{ Py_tp_dealloc, queue_dealloc },
	{ Py_tp_traverse, queue_traverse },
	{ Py_tp_clear, queue_clear },
	{ Py_tp_methods, all_methods },
	{ Py_tp_getset, queue_getset },
	{ Py_tp_members, queue_members },
	{ Py_tp_iter, queue_iter },
	{ Py_tp_iternext, ops_next },
	{ 0, NULL },
};

static PyType_Spec queue_spec = {
	.name = "shmq._shmq.Queue",
	.basicsize = sizeof(pyq_queue),
	.flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
	.slots = queue_slots,
};

PyTypeObject *queue_type_new(void)
{
	size_t n = 0;

	for (const PyMethodDef *m = queue_methods; m->ml_name; m++)
		all_methods[n++] = *m;
	for (const PyMethodDef *m = pyq_ops_methods; m->ml_name; m++) {
		if (n + 1 >= sizeof(all_methods) / sizeof(all_methods[0])) {
			PyErr_SetString(PyExc_SystemError,
					"too many Queue methods");
			return NULL;
		}
		all_methods[n++] = *m;
	}
	return (PyTypeObject *)PyType_FromSpec(&queue_spec);
}
