/*
 * module.c - the _shmq module: shmq's statuses and statistics in Python
 * terms, the fork generation, and every live Queue of the process.
 *
 * Owns the exception classes (queue.Empty and queue.Full themselves, the
 * ShutDown family, and one class per error status, each a subclass of
 * shmq.Error and of the built-in a Python programmer already catches),
 * the Status enum, the Stat and User named tuples, the counter that tells
 * a forked child's handles from its parent's, and the list the package
 * walks at exit to detach.
 * It never touches a queue itself: queue.c and ops.c do.
 */
#include "shmqpy.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <string.h>
#include <time.h>

PyObject *pyq_Empty, *pyq_Full, *pyq_ShutDown, *pyq_ProducerLost;
PyObject *pyq_ForkError, *pyq_Status;
PyTypeObject *pyq_QueueType;
PyObject *pyq_on_fork;
static PyObject *pyq_Error;
static PyTypeObject *stat_type, *user_type;

/* Raised by fork() in the child: a handle is its opener's alone (the
 * attachment in the queue names that process). */
volatile unsigned pyq_fork_gen = 1;

static void forked_child(void)
{
	unsigned g = pyq_fork_gen + 1;
	pyq_fork_gen = g == PYQ_GEN_NONE ? g + 1 : g;
}

/* ------------------------------------------------------------------ */
/* Statuses                                                            */

struct status_class {
	int status;
	const char *name;       /* shmq.<name> */
	const char *base;       /* builtins.<base>, or io.<base> */
	int err;                /* errno of an OSError, 0 if none */
	PyObject *cls;
};

static struct status_class status_classes[] = {
	{ SHMQ_EINVAL,    "InvalidArgument",   "ValueError", 0, NULL },
	{ SHMQ_ENAME,     "InvalidName",       "ValueError", 0, NULL },
	{ SHMQ_E2BIG,     "MessageTooBig",     "ValueError", 0, NULL },
	{ SHMQ_ENOENT,    "QueueNotFound",     "FileNotFoundError", ENOENT,
	  NULL },
	{ SHMQ_EEXIST,    "QueueExists",       "FileExistsError", EEXIST,
	  NULL },
	{ SHMQ_EACCES,    "PermissionDenied",  "PermissionError", EACCES,
	  NULL },
	{ SHMQ_ENODAEMON, "DaemonUnreachable", "ConnectionRefusedError",
	  ECONNREFUSED, NULL },
	{ SHMQ_EPROTO,    "ProtocolMismatch",  "ConnectionError", EPROTO,
	  NULL },
	{ SHMQ_ECORRUPT,  "QueueCorrupt",      "OSError", EIO, NULL },
	{ SHMQ_ENOSPC,    "NoSpace",           "OSError", ENOSPC, NULL },
	{ SHMQ_ELIMIT,    "LimitReached",      "OSError", 0, NULL },
	{ SHMQ_EROLE,     "WrongRole",         "io.UnsupportedOperation", 0,
	  NULL },
	{ SHMQ_EINTR,     "Interrupted",       "InterruptedError", EINTR,
	  NULL },
	{ SHMQ_EBUSY,     "QueueBusy",         "OSError", EBUSY, NULL },
	{ SHMQ_ESYS,      "SystemCallFailed",  "OSError", 0, NULL },
	{ SHMQ_ELEASE,    "LeaseExpired",      "TimeoutError", ETIMEDOUT,
	  NULL },
	{ SHMQ_EDEADLK,   "Deadlock",          "OSError", EDEADLK, NULL },
};
#define N_STATUS_CLASSES \
	(sizeof(status_classes) / sizeof(status_classes[0]))

static struct status_class *status_class_of(int rc)
{
	if (rc == SHMQ_EMSGSIZE)        /* a message larger than asked for */
		rc = SHMQ_E2BIG;
	for (size_t i = 0; i < N_STATUS_CLASSES; i++)
		if (status_classes[i].status == rc)
			return &status_classes[i];
	return NULL;
}

/* shmq.Status(rc), or the plain int for a status this binding does not
 * know (a newer libshmq). */
static PyObject *pyq_status(int rc)
{
	PyObject *v = PyLong_FromLong(rc), *st;

	if (v == NULL || pyq_Status == NULL)
		return v;
	st = PyObject_CallOneArg(pyq_Status, v);
	if (st == NULL) {
		PyErr_Clear();
		return v;
	}
	Py_DECREF(v);
	return st;
}

PyObject *pyq_raise_status(int rc, PyObject *name, const char *what)
{
	struct status_class *c;
	const char *detail = shmq_error_detail();
	PyObject *msg = NULL, *args = NULL, *exc = NULL, *cls;
	int err;

	if (rc == PYQ_PYERR)
		return NULL;
	if (rc == SHMQ_ENOMEM)
		return PyErr_NoMemory();
	err = rc == SHMQ_ESYS ? errno : 0;
	c = status_class_of(rc);
	cls = c ? c->cls : pyq_Error;
	if (c && c->err)
		err = c->err;
	if (what == NULL)
		what = shmq_strerror(rc);
	if (detail == NULL)
		detail = "";
	msg = detail[0] ? PyUnicode_FromFormat("%s (%s)", what, detail)
			: PyUnicode_FromString(what);
	if (msg == NULL)
		goto out;
	if (PyObject_IsSubclass(cls, PyExc_OSError) > 0 && err) {
		/* [Errno N] what: 'name', as open() says it. */
		args = name ? Py_BuildValue("(iOO)", err, msg, name)
			    : Py_BuildValue("(iO)", err, msg);
	} else if (PyObject_IsSubclass(cls, PyExc_OSError) > 0) {
		/* No errno: OSError would print "[Errno None]". */
		PyObject *m = name ? PyUnicode_FromFormat("%U: %R", msg, name)
				   : Py_NewRef(msg);
		if (m)
			args = PyTuple_Pack(1, m);
		Py_XDECREF(m);
	} else if (name) {
		PyObject *m = PyUnicode_FromFormat("%U: %U", name, msg);
		if (m)
			args = PyTuple_Pack(1, m);
		Py_XDECREF(m);
	} else {
		args = PyTuple_Pack(1, msg);
	}
	if (args == NULL)
		goto out;
	exc = PyObject_Call(cls, args, NULL);
	if (exc == NULL)
		goto out;
	PyObject *st = pyq_status(rc);
	PyObject *dt = PyUnicode_FromString(detail);
	if (st == NULL || dt == NULL ||
	    PyObject_SetAttrString(exc, "status", st) < 0 ||
	    PyObject_SetAttrString(exc, "detail", dt) < 0 ||
	    PyObject_SetAttrString(exc, "queue", name ? name : Py_None) < 0) {
		Py_XDECREF(st);
		Py_XDECREF(dt);
		goto out;
	}
	Py_DECREF(st);
	Py_DECREF(dt);
	PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
out:
	Py_XDECREF(exc);
	Py_XDECREF(args);
	Py_XDECREF(msg);
	return NULL;
}

/* ------------------------------------------------------------------ */
/* Stat                                                                */

static PyStructSequence_Field stat_fields[] = {
	{ "name", "the queue's name" },
	{ "capacity", "most messages queued at once" },
	{ "max_msg", "largest message, in bytes" },
	{ "max_bytes", "byte budget of the queued messages (0: none)" },
	{ "mode", "permission bits" },
	{ "uid", "owner" },
	{ "gid", "group" },
	{ "auto_close", "closes when its last producer detaches" },
	{ "acked", "an acked queue (gets lease, task_done acks)" },
	{ "messages", "messages queued now (acked: waiting for delivery)" },
	{ "bytes", "bytes queued now" },
	{ "producers", "handles attached as producers" },
	{ "consumers", "handles attached as consumers" },
	{ "blocked_put", "handles asleep in put" },
	{ "blocked_get", "handles asleep in get" },
	{ "total_put", "messages put since creation" },
	{ "total_got", "messages got since creation" },
	{ "discarded", "messages discarded by an immediate shutdown" },
	{ "state", "'open', 'closed' or 'closed-now'" },
	{ "auto_closed", "closed because the last producer left" },
	{ "producer_lost", "a producer died without detaching" },
	{ "created", "creation time, seconds since the epoch" },
	{ "closed", "closing time, or None while open" },
	{ "leased", "acked: delivered, not acked yet" },
	{ "returned", "acked: returned, waiting for redelivery" },
	{ "total_acked", "acked: messages settled by an ack" },
	{ "dead_lettered", "acked: moved to the dead-letter queue" },
	{ "dropped", "acked: dropped after max_deliveries" },
	{ "lease_timeout", "acked: seconds a lease lasts, None = forever" },
	{ "max_deliveries", "acked: deliveries before dead-lettering (0: "
			    "never)" },
	{ "dead_letter", "acked: the dead-letter queue, or None" },
	{ "on_deadlock", "'report', or 'fail': shmqd fails a blocked call "
			 "to break a deadlock" },
	{ "deadlocked", "shmqd found calls blocked on it deadlocked, at its "
			"last look" },
	{ NULL, NULL },
};

static PyStructSequence_Desc stat_desc = {
	"shmq.Stat",
	"A queue's settings and counters, as `qctl stat` shows them.",
	stat_fields,
	33,
};

static const char *state_name(int state)
{
	switch (state) {
	case SHMQ_STATE_OPEN:       return "open";
	case SHMQ_STATE_CLOSED:     return "closed";
	case SHMQ_STATE_CLOSED_NOW: return "closed-now";
	default:                    return "unknown";
	}
}

PyObject *pyq_stat_tuple(const struct shmq_stat *st)
{
	PyObject *t = PyStructSequence_New(stat_type);
	int i = 0;

	if (t == NULL)
		return NULL;
#define SET(v) do {                                            \
		PyObject *v_ = (v);                            \
		if (v_ == NULL) { Py_DECREF(t); return NULL; } \
		PyStructSequence_SET_ITEM(t, i, v_);           \
		i++;                                           \
	} while (0)
	SET(PyUnicode_FromString(st->name));
	SET(PyLong_FromUnsignedLong(st->capacity));
	SET(PyLong_FromUnsignedLong(st->max_msg));
	SET(PyLong_FromUnsignedLongLong(st->max_bytes));
	SET(PyLong_FromUnsignedLong(st->mode));
	SET(PyLong_FromUnsignedLong(st->uid));
	SET(PyLong_FromUnsignedLong(st->gid));
	SET(PyBool_FromLong(st->flags & SHMQ_AUTO_CLOSE));
	SET(PyBool_FromLong(st->flags & SHMQ_ACKED));
	SET(PyLong_FromUnsignedLongLong(st->messages));
	SET(PyLong_FromUnsignedLongLong(st->bytes));
	SET(PyLong_FromUnsignedLong(st->producers));
	SET(PyLong_FromUnsignedLong(st->consumers));
	SET(PyLong_FromUnsignedLong(st->put_blocked));
	SET(PyLong_FromUnsignedLong(st->get_blocked));
	SET(PyLong_FromUnsignedLongLong(st->total_put));
	SET(PyLong_FromUnsignedLongLong(st->total_got));
	SET(PyLong_FromUnsignedLongLong(st->discarded));
	SET(PyUnicode_FromString(state_name(st->state)));
	SET(PyBool_FromLong(st->auto_closed));
	SET(PyBool_FromLong(st->producer_lost));
	SET(PyFloat_FromDouble((double)st->created_ns / 1e9));
	SET(st->closed_ns ? PyFloat_FromDouble((double)st->closed_ns / 1e9)
			  : Py_NewRef(Py_None));
	SET(PyLong_FromUnsignedLong(st->leased));
	SET(PyLong_FromUnsignedLong(st->returned));
	SET(PyLong_FromUnsignedLongLong(st->acked));
	SET(PyLong_FromUnsignedLongLong(st->dead_lettered));
	SET(PyLong_FromUnsignedLongLong(st->dropped));
	SET(st->lease_timeout_ms
		    ? PyFloat_FromDouble(st->lease_timeout_ms / 1000.0)
		    : Py_NewRef(Py_None));
	SET(PyLong_FromUnsignedLong(st->max_deliveries));
	SET(st->dead_letter[0] ? PyUnicode_FromString(st->dead_letter)
			       : Py_NewRef(Py_None));
	SET(PyUnicode_FromString(st->flags & SHMQ_DEADLOCK_FAIL ? "fail"
								: "report"));
	SET(PyBool_FromLong(st->deadlocked));
#undef SET
	return t;
}

/* ------------------------------------------------------------------ */
/* User                                                                */

static PyStructSequence_Field user_fields[] = {
	{ "uid", "the user, or None for everybody together" },
	{ "exempt", "the daemon's own uid: only the daemon's limits bind it" },
	{ "bytes", "shared memory reserved for its queues" },
	{ "max_bytes", "its limit of bytes (None: none)" },
	{ "queues", "queues it owns" },
	{ "max_queues", "its limit of queues (None: none)" },
	{ "clients", "its connections to the daemon" },
	{ "max_clients", "its limit of connections (None: none)" },
	{ "handles", "its open handles" },
	{ "max_handles", "its limit of handles (None: none)" },
	{ NULL, NULL },
};

static PyStructSequence_Desc user_desc = {
	"shmq.User",
	"A user's usage and limits, as `qctl users` shows them.",
	user_fields,
	10,
};

static PyObject *limit_of(uint64_t v)
{
	return v == SHMQ_UNLIMITED ? Py_NewRef(Py_None)
				   : PyLong_FromUnsignedLongLong(v);
}

static PyObject *user_tuple(const struct shmq_user *u)
{
	PyObject *t = PyStructSequence_New(user_type);
	PyObject *v[10];

	if (t == NULL)
		return NULL;
	v[0] = u->uid == UINT32_MAX ? Py_NewRef(Py_None)
				    : PyLong_FromUnsignedLong(u->uid);
	v[1] = PyBool_FromLong(u->flags & SHMQ_USER_EXEMPT);
	v[2] = PyLong_FromUnsignedLongLong(u->bytes);
	v[3] = limit_of(u->max_bytes);
	v[4] = PyLong_FromUnsignedLongLong(u->queues);
	v[5] = limit_of(u->max_queues);
	v[6] = PyLong_FromUnsignedLongLong(u->clients);
	v[7] = limit_of(u->max_clients);
	v[8] = PyLong_FromUnsignedLongLong(u->handles);
	v[9] = limit_of(u->max_handles);
	for (int i = 0; i < 10; i++) {
		if (v[i] == NULL) {
			for (int j = i + 1; j < 10; j++)
				Py_XDECREF(v[j]);
			Py_DECREF(t);
			return NULL;
		}
		PyStructSequence_SET_ITEM(t, i, v[i]);
	}
	return t;
}

/* ------------------------------------------------------------------ */
/* Live Queues                                                         */

static pyq_queue *live_head;

void pyq_live_add(pyq_queue *q)
{
	q->prev = NULL;
	q->next = live_head;
	if (live_head)
		live_head->prev = q;
	live_head = q;
}

void pyq_live_remove(pyq_queue *q)
{
	if (q->prev)
		q->prev->next = q->next;
	else if (live_head == q)
		live_head = q->next;
	if (q->next)
		q->next->prev = q->prev;
	q->prev = q->next = NULL;
}

/* At interpreter exit (atexit) and at a multiprocessing child's end:
 * detach what this process opened, so that its exit is a detach, never
 * a lost producer.  Handles inherited through fork() are the parent's:
 * left alone. */
static PyObject *mod_detach_all(PyObject *mod, PyObject *unused)
{
	PyObject *all = PyList_New(0);

	(void)mod;
	(void)unused;
	if (all == NULL)
		return NULL;
	/* Detaching may release the GIL: hold them all first. */
	for (pyq_queue *q = live_head; q; q = q->next)
		if (q->gen == pyq_fork_gen && q->state == PYQ_OPEN &&
		    PyList_Append(all, (PyObject *)q) < 0) {
			Py_DECREF(all);
			return NULL;
		}
	for (Py_ssize_t i = 0; i < PyList_GET_SIZE(all); i++) {
		pyq_queue *q = (pyq_queue *)PyList_GET_ITEM(all, i);
		if (q->gen == pyq_fork_gen && q->state == PYQ_OPEN)
			queue_detach(q, 1);
	}
	Py_DECREF(all);
	Py_RETURN_NONE;
}

/* Does this process hold a Queue open (one it opened)? */
static PyObject *mod_live(PyObject *mod, PyObject *unused)
{
	(void)mod;
	(void)unused;
	for (pyq_queue *q = live_head; q; q = q->next)
		if (q->gen == pyq_fork_gen && q->state == PYQ_OPEN)
			Py_RETURN_TRUE;
	Py_RETURN_FALSE;
}

/* ------------------------------------------------------------------ */
/* Module functions                                                    */

int pyq_unpack(const char *fname, PyObject *const *args, Py_ssize_t nargs,
	       PyObject *kwnames, const char *const *names, int nreq,
	       int nmax, PyObject **out)
{
	Py_ssize_t nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;

	if (nargs > nmax) {
		PyErr_Format(PyExc_TypeError,
			     "%s() takes at most %d positional arguments "
			     "(%zd given)", fname, nmax, nargs);
		return -1;
	}
	for (int i = 0; i < nmax; i++)
		out[i] = i < nargs ? args[i] : NULL;
	for (Py_ssize_t k = 0; k < nkw; k++) {
		PyObject *key = PyTuple_GET_ITEM(kwnames, k);
		int i;
		for (i = 0; i < nmax; i++)
			if (PyUnicode_CompareWithASCIIString(key, names[i]) ==
			    0)
				break;
		if (i == nmax) {
			PyErr_Format(PyExc_TypeError,
				     "%s() got an unexpected keyword argument "
				     "'%U'", fname, key);
			return -1;
		}
		if (out[i]) {
			PyErr_Format(PyExc_TypeError,
				     "%s() got multiple values for argument "
				     "'%s'", fname, names[i]);
			return -1;
		}
		out[i] = args[nargs + k];
	}
	for (int i = 0; i < nreq; i++)
		if (out[i] == NULL) {
			PyErr_Format(PyExc_TypeError,
				     "%s() missing required argument '%s'",
				     fname, names[i]);
			return -1;
		}
	return 0;
}

static int name_arg(PyObject *obj, const char **name)
{
	if (!PyUnicode_Check(obj)) {
		PyErr_Format(PyExc_TypeError,
			     "a queue name must be str, not %.100s",
			     Py_TYPE(obj)->tp_name);
		return -1;
	}
	*name = PyUnicode_AsUTF8(obj);
	return *name ? 0 : -1;
}

static PyObject *mod_stat(PyObject *mod, PyObject *arg)
{
	struct shmq_stat st;
	const char *name;
	int rc;

	(void)mod;
	if (name_arg(arg, &name) < 0)
		return NULL;
	Py_BEGIN_ALLOW_THREADS
	rc = shmq_stat_name(name, &st);
	Py_END_ALLOW_THREADS
	if (rc != SHMQ_OK)
		return pyq_raise_status(rc, arg, NULL);
	return pyq_stat_tuple(&st);
}

static PyObject *mod_delete(PyObject *mod, PyObject *arg)
{
	const char *name;
	int rc;

	(void)mod;
	if (name_arg(arg, &name) < 0)
		return NULL;
	Py_BEGIN_ALLOW_THREADS
	rc = shmq_delete(name);
	Py_END_ALLOW_THREADS
	if (rc != SHMQ_OK)
		return pyq_raise_status(rc, arg, NULL);
	Py_RETURN_NONE;
}

static PyObject *mod_list(PyObject *mod, PyObject *unused)
{
	struct shmq_stat *all;
	size_t n;
	int rc;

	(void)mod;
	(void)unused;
	Py_BEGIN_ALLOW_THREADS
	rc = shmq_list(&all, &n);
	Py_END_ALLOW_THREADS
	if (rc != SHMQ_OK)
		return pyq_raise_status(rc, NULL, NULL);
	PyObject *list = PyList_New((Py_ssize_t)n);
	for (size_t i = 0; list && i < n; i++) {
		PyObject *t = pyq_stat_tuple(&all[i]);
		if (t == NULL)
			Py_CLEAR(list);
		else
			PyList_SET_ITEM(list, (Py_ssize_t)i, t);
	}
	free(all);
	return list;
}

static PyObject *mod_users(PyObject *mod, PyObject *unused)
{
	struct shmq_user *all, total;
	PyObject *list, *tot, *r;
	size_t n;
	int rc;

	(void)mod;
	(void)unused;
	Py_BEGIN_ALLOW_THREADS
	rc = shmq_users(&all, &n, &total);
	Py_END_ALLOW_THREADS
	if (rc != SHMQ_OK)
		return pyq_raise_status(rc, NULL, NULL);
	list = PyList_New((Py_ssize_t)n);
	for (size_t i = 0; list && i < n; i++) {
		PyObject *t = user_tuple(&all[i]);
		if (t == NULL)
			Py_CLEAR(list);
		else
			PyList_SET_ITEM(list, (Py_ssize_t)i, t);
	}
	free(all);
	tot = list ? user_tuple(&total) : NULL;
	r = tot ? PyTuple_Pack(2, list, tot) : NULL;
	Py_XDECREF(list);
	Py_XDECREF(tot);
	return r;
}

/* One wait of a deadlock, as a dict with the keys of `qctl deadlocks
 * --json` (and "deadlock", its number): times in seconds, a queue the
 * caller may not read as None. */
static PyObject *deadlock_dict(const struct shmq_deadlock_wait *w)
{
	PyObject *freers = PyList_New(0);
	uint32_t nf = w->nfreers < SHMQ_DEADLOCK_FREERS ? w->nfreers
						       : SHMQ_DEADLOCK_FREERS;

	for (uint32_t i = 0; freers && i < nf; i++) {
		PyObject *p = PyLong_FromUnsignedLong(w->freers[i]);
		if (p == NULL || PyList_Append(freers, p) < 0)
			Py_CLEAR(freers);
		Py_XDECREF(p);
	}
	if (freers == NULL)
		return NULL;
	return Py_BuildValue(
		"{s:I,s:I,s:s,s:O,s:s,s:s,s:I,s:I,s:K,s:K,s:I,s:d,s:N,s:s,"
		"s:O,s:N,s:I}",
		"deadlock", w->deadlock, "pid", w->pid, "command", w->comm,
		"behind", w->behind ? Py_True : Py_False,
		"op", w->put ? "put" : "get",
		"queue", w->queue[0] ? w->queue : NULL,
		"messages", w->messages, "capacity", w->capacity,
		"bytes", (unsigned long long)w->bytes,
		"max_bytes", (unsigned long long)w->max_bytes,
		"threads", w->threads,
		"blocked_seconds", (double)w->blocked_ns / 1e9,
		"ends_in_seconds", w->ends_in_ns > 0
			? PyFloat_FromDouble((double)w->ends_in_ns / 1e9)
			: Py_NewRef(Py_None),
		"on_deadlock", w->fail ? "fail" : "report",
		"victim", w->victim ? Py_True : Py_False,
		"freed_by", freers, "freers", w->nfreers);
}

static PyObject *mod_deadlocks(PyObject *mod, PyObject *unused)
{
	struct shmq_deadlock_wait *all = NULL;
	PyObject *list;
	size_t n = 0;
	int rc;

	(void)mod;
	(void)unused;
	Py_BEGIN_ALLOW_THREADS
	rc = shmq_deadlocks(&all, &n);
	Py_END_ALLOW_THREADS
	if (rc != SHMQ_OK)
		return pyq_raise_status(rc, NULL, NULL);
	list = PyList_New((Py_ssize_t)n);
	for (size_t i = 0; list && i < n; i++) {
		PyObject *d = deadlock_dict(&all[i]);
		if (d == NULL)
			Py_CLEAR(list);
		else
			PyList_SET_ITEM(list, (Py_ssize_t)i, d);
	}
	free(all);
	return list;
}

static PyObject *mod_strerror(PyObject *mod, PyObject *arg)
{
	long status = PyLong_AsLong(arg);

	(void)mod;
	if (status == -1 && PyErr_Occurred())
		return NULL;
	if (status < INT_MIN || status > INT_MAX)
		status = INT_MIN;
	return PyUnicode_FromString(shmq_strerror((int)status));
}

static PyObject *mod_set_fork_hook(PyObject *mod, PyObject *arg)
{
	(void)mod;
	if (arg != Py_None && !PyCallable_Check(arg)) {
		PyErr_SetString(PyExc_TypeError, "the hook must be callable");
		return NULL;
	}
	Py_XSETREF(pyq_on_fork, arg == Py_None ? NULL : Py_NewRef(arg));
	Py_RETURN_NONE;
}

static PyMethodDef module_methods[] = {
	{ "stat", mod_stat, METH_O,
	  "stat(name) -> Stat: a queue's numbers, asked of the daemon." },
	{ "delete", mod_delete, METH_O,
	  "delete(name): remove a queue's name; open handles keep working "
	  "until they detach." },
	{ "list_queues", mod_list, METH_NOARGS,
	  "list_queues() -> [Stat]: every queue the caller may read." },
	{ "users", mod_users, METH_NOARGS,
	  "users() -> ([User], User): the users the caller may see (root: "
	  "all; anyone else: itself), with usage and limits, and everybody "
	  "together against the daemon's limits (uid None)." },
	{ "deadlocks", mod_deadlocks, METH_NOARGS,
	  "deadlocks() -> [dict]: the deadlocks shmqd found at its last look, "
	  "one dict per blocked wait (as `qctl deadlocks --json`); [] if none." },
	{ "strerror", mod_strerror, METH_O,
	  "strerror(status) -> str: what a shmq status means." },
	{ "_detach_all", mod_detach_all, METH_NOARGS,
	  "Detach every Queue this process opened (at exit)." },
	{ "_live", mod_live, METH_NOARGS,
	  "Does this process hold a Queue it opened?" },
	{ "_set_fork_hook", mod_set_fork_hook, METH_O,
	  "The package's hook for a Queue first used in a forked child." },
	{ NULL, NULL, 0, NULL },
};

static struct PyModuleDef shmq_module = {
	PyModuleDef_HEAD_INIT,
	.m_name = "shmq._shmq",
	.m_doc = "The C half of shmq.Queue, on libshmq.  Use the shmq "
		 "package.",
	.m_size = -1,
	.m_methods = module_methods,
};

/* ------------------------------------------------------------------ */
/* Initialisation                                                      */

/* "ValueError" from builtins, "io.UnsupportedOperation" from io. */
static PyObject *builtin_class(const char *dotted)
{
	const char *dot = strchr(dotted, '.');
	PyObject *mod, *cls;

	mod = PyImport_ImportModule(dot ? "io" : "builtins");
	if (mod == NULL)
		return NULL;
	cls = PyObject_GetAttrString(mod, dot ? dot + 1 : dotted);
	Py_DECREF(mod);
	return cls;
}

static int add_class(PyObject *m, const char *name, PyObject *bases,
		     const char *doc, PyObject **out)
{
	char full[64];

	PyOS_snprintf(full, sizeof(full), "shmq.%s", name);
	*out = PyErr_NewExceptionWithDoc(full, doc, bases, NULL);
	if (*out == NULL)
		return -1;
	return PyModule_AddObjectRef(m, name, *out);
}

static int init_exceptions(PyObject *m)
{
	PyObject *queue = PyImport_ImportModule("queue");
	PyObject *bases;
	int rc = -1;

	if (queue == NULL)
		return -1;
	pyq_Empty = PyObject_GetAttrString(queue, "Empty");
	pyq_Full = PyObject_GetAttrString(queue, "Full");
	if (pyq_Empty == NULL || pyq_Full == NULL)
		goto out;
	if (PyModule_AddObjectRef(m, "Empty", pyq_Empty) < 0 ||
	    PyModule_AddObjectRef(m, "Full", pyq_Full) < 0)
		goto out;
	/* queue.ShutDown where the interpreter has one (3.13). */
	pyq_ShutDown = PyObject_GetAttrString(queue, "ShutDown");
	if (pyq_ShutDown) {
		if (PyModule_AddObjectRef(m, "ShutDown", pyq_ShutDown) < 0)
			goto out;
	} else {
		PyErr_Clear();
		if (add_class(m, "ShutDown", NULL,
			      "Raised by put() on a closed queue and by get() "
			      "at its end of stream.", &pyq_ShutDown) < 0)
			goto out;
	}
	if (add_class(m, "ProducerLost", pyq_ShutDown,
		      "End of stream, but a producer died without "
		      "detaching: the stream may be incomplete.",
		      &pyq_ProducerLost) < 0)
		goto out;
	if (add_class(m, "Error", NULL,
		      "Base of shmq's errors; .status is the shmq status, "
		      ".detail the daemon's explanation, .queue the name.",
		      &pyq_Error) < 0)
		goto out;
	bases = PyTuple_Pack(2, pyq_Error, PyExc_RuntimeError);
	if (bases == NULL)
		goto out;
	rc = add_class(m, "ForkError", bases,
		       "A Queue opened by another process (inherited through "
		       "fork) was used: open it again by name.",
		       &pyq_ForkError);
	Py_DECREF(bases);
	if (rc < 0)
		goto out;
	rc = -1;
	for (size_t i = 0; i < N_STATUS_CLASSES; i++) {
		struct status_class *c = &status_classes[i];
		PyObject *base = builtin_class(c->base);
		if (base == NULL)
			goto out;
		bases = PyTuple_Pack(2, pyq_Error, base);
		Py_DECREF(base);
		if (bases == NULL)
			goto out;
		int r = add_class(m, c->name, bases, shmq_strerror(c->status),
				  &c->cls);
		Py_DECREF(bases);
		if (r < 0)
			goto out;
	}
	rc = 0;
out:
	Py_DECREF(queue);
	return rc;
}

static int add_statuses(PyObject *m)
{
	static const struct { const char *name; int value; } st[] = {
		{ "OK", SHMQ_OK }, { "EOS", SHMQ_EOS },
		{ "EOS_LOST", SHMQ_EOS_LOST }, { "EINVAL", SHMQ_EINVAL },
		{ "ENAME", SHMQ_ENAME }, { "ECLOSED", SHMQ_ECLOSED },
		{ "ETIMEDOUT", SHMQ_ETIMEDOUT }, { "EAGAIN", SHMQ_EAGAIN },
		{ "E2BIG", SHMQ_E2BIG }, { "EMSGSIZE", SHMQ_EMSGSIZE },
		{ "ENOENT", SHMQ_ENOENT }, { "EEXIST", SHMQ_EEXIST },
		{ "EACCES", SHMQ_EACCES }, { "ENODAEMON", SHMQ_ENODAEMON },
		{ "EPROTO", SHMQ_EPROTO }, { "ECORRUPT", SHMQ_ECORRUPT },
		{ "ENOSPC", SHMQ_ENOSPC }, { "ELIMIT", SHMQ_ELIMIT },
		{ "EROLE", SHMQ_EROLE }, { "EINTR", SHMQ_EINTR },
		{ "EBUSY", SHMQ_EBUSY }, { "ESYS", SHMQ_ESYS },
		{ "ENOMEM", SHMQ_ENOMEM }, { "ELEASE", SHMQ_ELEASE },
		{ "EDEADLK", SHMQ_EDEADLK },
	};
	PyObject *d = PyDict_New(), *mod, *kw = NULL, *args = NULL;
	int rc = -1;

	if (d == NULL)
		return -1;
	for (size_t i = 0; i < sizeof(st) / sizeof(st[0]); i++) {
		PyObject *v = PyLong_FromLong(st[i].value);
		if (v == NULL || PyDict_SetItemString(d, st[i].name, v) < 0) {
			Py_XDECREF(v);
			Py_DECREF(d);
			return -1;
		}
		Py_DECREF(v);
	}
	/* shmq.Status = enum.IntEnum("Status", d), named as the package
	 * shows it (pickles as shmq.Status). */
	mod = PyImport_ImportModule("enum");
	if (mod == NULL)
		goto out;
	kw = Py_BuildValue("{ss}", "module", "shmq");
	args = Py_BuildValue("(sO)", "Status", d);
	PyObject *int_enum = PyObject_GetAttrString(mod, "IntEnum");
	Py_DECREF(mod);
	if (int_enum == NULL || kw == NULL || args == NULL) {
		Py_XDECREF(int_enum);
		goto out;
	}
	pyq_Status = PyObject_Call(int_enum, args, kw);
	Py_DECREF(int_enum);
	if (pyq_Status == NULL)
		goto out;
	PyObject *doc = PyUnicode_FromString(
		"The statuses of libshmq (<shmq.h>): an error's .status is one "
		"of them.");
	if (doc == NULL || PyObject_SetAttrString(pyq_Status, "__doc__",
						  doc) < 0) {
		Py_XDECREF(doc);
		goto out;
	}
	Py_DECREF(doc);
	rc = PyModule_AddObjectRef(m, "Status", pyq_Status);
out:
	Py_XDECREF(kw);
	Py_XDECREF(args);
	Py_DECREF(d);
	return rc;
}

PyMODINIT_FUNC PyInit__shmq(void);

PyMODINIT_FUNC PyInit__shmq(void)
{
	PyObject *m = PyModule_Create(&shmq_module);

	if (m == NULL)
		return NULL;
	if (init_exceptions(m) < 0 || add_statuses(m) < 0)
		goto fail;
	stat_type = PyStructSequence_NewType(&stat_desc);
	if (stat_type == NULL ||
	    PyModule_AddObjectRef(m, "Stat", (PyObject *)stat_type) < 0)
		goto fail;
	user_type = PyStructSequence_NewType(&user_desc);
	if (user_type == NULL ||
	    PyModule_AddObjectRef(m, "User", (PyObject *)user_type) < 0)
		goto fail;
	pyq_QueueType = queue_type_new();
	if (pyq_QueueType == NULL ||
	    PyModule_AddObjectRef(m, "Queue", (PyObject *)pyq_QueueType) < 0)
		goto fail;
	if (PyModule_AddStringConstant(m, "libshmq_version",
				       shmq_version()) < 0 ||
	    PyModule_AddIntConstant(m, "SLICE_MS", PYQ_SLICE_MS) < 0)
		goto fail;
	pthread_atfork(NULL, NULL, forked_child);
	return m;
fail:
	Py_DECREF(m);
	return NULL;
}
