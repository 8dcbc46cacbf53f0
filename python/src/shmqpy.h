/*
 * shmqpy.h - what the files of the _shmq extension share.
 *
 * The extension is shmq.Queue's C half: module.c (exceptions, statuses
 * in Python terms, the fork generation, detaching everything at exit),
 * queue.c (a Queue's handles and lifetime), ops.c (put, get and every
 * other call that may block) and items.c (items to bytes and back).
 * It uses libshmq's public API only (<shmq.h>).
 *
 * Threads: every field below is guarded by the GIL, except `inflight`
 * and `exiting`, which calls running without the GIL touch (atomics).
 * A handle is used without the GIL only between queue_enter() and
 * queue_leave(), so that detaching can wait until no thread uses it.
 */
#ifndef SHMQPY_H
#define SHMQPY_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdint.h>
#include <sys/types.h>

#include "shmq.h"

/* A blocking call waits at most this long without the GIL at a time:
 * then it looks for signals a spinning wait may have missed and for a
 * detach from another thread, and waits again for what is left. */
#define PYQ_SLICE_MS 200

/* "A Python exception is set": a status no shmq call returns. */
#define PYQ_PYERR INT32_MIN

/* queue->gen of a Queue that holds no handle (never opened, detached). */
#define PYQ_GEN_NONE 0u

enum pyq_state { PYQ_NEW, PYQ_OPEN, PYQ_DETACHING, PYQ_DETACHED };

enum pyq_codec {
	PYQ_BYTES,      /* any buffer in, bytes out */
	PYQ_UTF8,       /* str, UTF-8, strict: the fast path */
	PYQ_TEXT,       /* str, any codec and error handler */
	PYQ_SERIAL,     /* serializer.dumps / serializer.loads */
};

/* An item taken from the queue but not delivered yet: get_many() keeps
 * what follows an item that could not be decoded for the next get (or
 * that item's error, to raise at the next get). */
struct pyq_kept {
	PyObject *raw;          /* bytes, or NULL */
	PyObject *exc;          /* the decoding error to raise, or NULL */
	struct shmq_msg m;      /* its lease (acked queues) */
};

typedef struct pyq_queue {
	PyObject_HEAD
	/* Equals pyq_fork_gen while the handles are this process's; the
	 * one comparison the hot path makes (PYQ_GEN_NONE once detached). */
	unsigned gen;
	int state;
	shmq_t *h;              /* opened first: stat, close, join */
	unsigned h_flags;       /* its SHMQ_PRODUCER | SHMQ_CONSUMER */
	shmq_t *rh, *wh;        /* the consumer and producer handles, once
				   this Queue gets or puts (may be h) */
	unsigned role;          /* role=: fixed flags, 0 = attach lazily */
	int acked;
	uint32_t capacity;
	uint64_t max_bytes;
	size_t max_msg;
	pid_t pid;              /* that opened the handles */
	int inflight;           /* calls using a handle without the GIL */
	int exiting;            /* detached at exit: such calls never return */
	/* Receive buffer for calls made with the GIL held; a blocking call
	 * borrows it while it is free (scratch_busy). */
	char *scratch;
	size_t scratch_size;
	int scratch_busy;
	/* Acked queues: the leases of the items this Queue delivered, oldest
	 * first (a ring of lease_cap entries); an item enters it once
	 * decoded.  Plain queues: items delivered, not yet task_done. */
	struct shmq_msg *leases;
	size_t lease_head, lease_n, lease_cap;
	Py_ssize_t unfinished;
	/* Items taken but not delivered yet, in order: kept[kept_head ..
	 * kept_n). */
	struct pyq_kept *kept;
	size_t kept_head, kept_n, kept_cap;
	/* Items. */
	int codec;
	PyObject *encoding, *errors;    /* str or NULL */
	PyObject *serializer, *dumps, *loads;
	PyObject *name;         /* str */
	/* Every live Queue of the process, for detaching at exit. */
	struct pyq_queue *prev, *next;
	PyObject *weakrefs;
} pyq_queue;

/* --- module.c -------------------------------------------------------- */
extern PyObject *pyq_Empty, *pyq_Full, *pyq_ShutDown, *pyq_ProducerLost;
extern PyObject *pyq_ForkError, *pyq_Status;
extern volatile unsigned pyq_fork_gen;
extern PyTypeObject *pyq_QueueType;
extern PyObject *pyq_on_fork;   /* the package's hook, or NULL */

/* Raises the exception for status `rc` about queue `name` (may be NULL),
 * described by `what` (NULL: shmq_strerror) and the daemon's detail;
 * returns NULL.  Empty/Full/ShutDown are the callers' to raise. */
PyObject *pyq_raise_status(int rc, PyObject *name, const char *what);
PyObject *pyq_stat_tuple(const struct shmq_stat *st);
void pyq_live_add(pyq_queue *q);
void pyq_live_remove(pyq_queue *q);

/* --- queue.c --------------------------------------------------------- */
PyTypeObject *queue_type_new(void);
/* 0 if the Queue may be used now; else -1 with an exception set, after
 * the package's fork hook had its say. */
int queue_check_slow(pyq_queue *q);
static inline int queue_check(pyq_queue *q)
{
	return q->gen == pyq_fork_gen ? 0 : queue_check_slow(q);
}
/* Opens the handle for `flag` (SHMQ_PRODUCER or SHMQ_CONSUMER) if this
 * Queue has none yet.  0, or -1 with an exception set. */
int queue_want(pyq_queue *q, unsigned flag);
/* Brackets a use of the handles without the GIL: queue_enter (with the
 * GIL) fails with an exception set once the Queue is detaching;
 * queue_leave (without it) never returns if it was detached at exit. */
int queue_enter(pyq_queue *q);
void queue_leave(pyq_queue *q);
/* -1 with an exception set unless the Queue is open (not necessarily in
 * this process: see queue_check). */
int queue_still_open(pyq_queue *q);
/* Detaches every handle; at_exit: calls still blocked never return. */
void queue_detach(pyq_queue *q, int at_exit);
/* A receive buffer of at least `size` bytes usable with the GIL held. */
char *queue_scratch(pyq_queue *q, size_t size);
/* Records an item taken by handle h and delivered: its lease (acked) or
 * a task to be done; nothing if h is no longer this Queue's. */
int queue_delivered(pyq_queue *q, shmq_t *h, const struct shmq_msg *m);
/* Keeps a taken item (raw: its bytes, or exc: its error) to be the next
 * get's, before those kept already; steals the references.  0, or -1
 * with an exception set (and the item forgotten). */
int queue_keep_first(pyq_queue *q, PyObject *raw, PyObject *exc,
		     const struct shmq_msg *m);
/* Gives back a lease taken by handle h whose item cannot be delivered
 * (nack, without the GIL), if h is still this Queue's. */
void queue_give_back(pyq_queue *q, shmq_t *h, const struct shmq_msg *m);

/* --- ops.c ----------------------------------------------------------- */
struct pyq_wait {
	int block;
	int forever;
	int64_t deadline_ns;
};
/* block and timeout as queue.Queue takes them (either may be NULL). */
int ops_parse_wait(PyObject *block, PyObject *timeout, struct pyq_wait *w);
extern PyMethodDef pyq_ops_methods[];
PyObject *ops_next(PyObject *self);

/* --- items.c --------------------------------------------------------- */
struct pyq_item {
	const char *p;
	size_t n;
	Py_buffer view;
	int has_view;
	PyObject *tmp;
};
/* Options of the constructor: 0, or -1 with an exception set. */
int items_setup(pyq_queue *q, PyObject *encoding, PyObject *errors,
		PyObject *serializer);
/* An item as bytes, valid without the GIL until items_release.  Runs
 * Python code (dumps, codecs) that may change anything, the Queue too. */
int items_encode(pyq_queue *q, PyObject *obj, struct pyq_item *it);
void items_release(struct pyq_item *it);
PyObject *items_decode(pyq_queue *q, const char *p, size_t n);

/* Argument unpacking for METH_FASTCALL | METH_KEYWORDS: fills out[] by
 * position or keyword (names[]), leaving absent optional ones NULL. */
int pyq_unpack(const char *fname, PyObject *const *args, Py_ssize_t nargs,
	       PyObject *kwnames, const char *const *names, int nreq,
	       int nmax, PyObject **out);

#endif /* SHMQPY_H */
