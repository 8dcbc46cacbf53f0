/*
 * cmd-get.c - qctl get and qctl cat: remove messages and print them, one
 * per line or NUL-terminated.
 *
 * Owns the consumer's side of a pipeline: what was received is printed
 * even when an error ends the command, standard output is flushed before
 * waiting on an empty queue (whoever reads us must not wait for messages
 * we hold), and end of stream is quiet unless a producer was lost.  A cat
 * of several queues waits for all of them in one poll(2) loop on their
 * descriptors (shmq_fd), never in one of them.  On an acked queue a
 * message is acked only once it has been written and flushed, and given
 * back (nacked) if that fails: it must never be acked before it is out
 * of our hands.
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/uio.h>

#include "qctl.h"

#define CAT_BUF     (1u << 20)  /* cat: receive buffer, if max_msg is less */
#define GET_BATCH   4096        /* cat: messages per shmq_getv() */
#define GET_SOME    64          /* get -n: the same; its buffer is small */
#define OUT_BUF     (1u << 17)  /* cat: stdio buffer for standard output */

/* What one call took: the messages, and on an acked queue their leases,
 * to settle once they are printed. */
struct batch {
	struct iovec *v;
	struct shmq_msg *m;     /* room for the leases, if any is acked */
	size_t n;
	int acked;              /* the queue taken from is acked */
};

static int take(shmq_t *q, void *buf, size_t size, struct batch *b,
		size_t want, int timeout)
{
	int rc;

	if (!b->acked)
		return shmq_getv(q, buf, size, b->v, want, &b->n, timeout);
	rc = shmq_leasev(q, buf, size, b->m, want, &b->n, timeout);
	for (size_t i = 0; i < b->n; i++)
		b->v[i] = (struct iovec){ b->m[i].data, b->m[i].len };
	if (rc == SHMQ_EMSGSIZE)
		b->v[0] = (struct iovec){ NULL, b->m[0].len };
	return rc;
}

/* Takes up to n messages.  Before sleeping on an empty queue it flushes
 * standard output: whoever reads us must not wait for messages we hold in
 * a buffer while we wait for more. */
static int receive(shmq_t *q, void *buf, size_t size, struct batch *b,
		   size_t n, int timeout)
{
	int rc;

	do
		rc = take(q, buf, size, b, n, SHMQ_NOWAIT);
	while (rc == SHMQ_EINTR);
	if (rc != SHMQ_EAGAIN || timeout == SHMQ_NOWAIT)
		return rc;
	if (fflush(stdout) == EOF)
		return QCTL_EWRITE;
	do
		rc = take(q, buf, size, b, n, timeout);
	while (rc == SHMQ_EINTR);
	return rc;
}

/* Prints n messages, each after `prefix` and a tab if prefix is not
 * NULL (cat --names). */
static int print_msgs(const struct iovec *v, size_t n, char delim,
		      const char *prefix)
{
	for (size_t i = 0; i < n; i++) {
		size_t len = v[i].iov_len;
		if ((prefix && (fputs(prefix, stdout) == EOF ||
				putc('\t', stdout) == EOF)) ||
		    fwrite(v[i].iov_base, 1, len, stdout) != len ||
		    putc(delim, stdout) == EOF)
			return QCTL_EWRITE;
	}
	return SHMQ_OK;
}

/* Prints a batch taken from queue `name`; on an acked queue flushes it,
 * then acks it, or gives it all back if any of it could not be written
 * (what reached the reader before the failure is delivered again: at
 * least once). */
static int deliver(struct args *a, const char *name, shmq_t *q,
		   const struct batch *b, char delim, const char *prefix)
{
	int rc = print_msgs(b->v, b->n, delim, prefix);
	size_t acked = 0;

	if (!b->acked)
		return rc;
	if (rc == SHMQ_OK && fflush(stdout) == EOF)
		rc = QCTL_EWRITE;
	if (rc != SHMQ_OK) {
		int e = errno;
		for (size_t i = 0; i < b->n; i++)
			shmq_nack(q, &b->m[i], 0);
		errno = e;      /* the write's, for the report */
		return rc;
	}
	if (shmq_ackv(q, b->m, b->n, &acked) == SHMQ_ELEASE) {
		const char *keep = a->name;
		a->name = name;
		report(a, "warning: %zu message(s) printed after their lease "
		       "ended: they will be delivered again", b->n - acked);
		a->name = keep;
	}
	return SHMQ_OK;
}

static int is_acked(shmq_t *q)
{
	struct shmq_stat st;

	return shmq_stat(q, &st) == SHMQ_OK && (st.flags & SHMQ_ACKED);
}

/* Whoever prints messages must detach even when the reader goes away, so
 * EPIPE has to come back as an error instead of SIGPIPE killing us.  Set
 * after shmq_open(): a daemon the library starts must not inherit it. */
static void ignore_sigpipe(void)
{
	signal(SIGPIPE, SIG_IGN);
}

/* End of stream is news only when a producer was lost; the plain end of
 * stream is a status, not an error, and stays silent. */
static int end_of_stream(const struct args *a, int rc, int ok_status)
{
	if (rc == SHMQ_EOS_LOST) {
		report(a, "%s", shmq_strerror(rc));
		return QX_EOS_LOST;
	}
	return ok_status;
}

static int exec_get(struct args *a)
{
	char delim = a->opt[OPT_NUL] ? '\0' : '\n';
	uint64_t count = 1, got = 0;
	struct iovec v[GET_SOME];
	struct shmq_msg m[GET_SOME];
	struct batch b = { .v = v, .m = m };
	shmq_t *q = NULL;
	char *buf = NULL;
	size_t size;
	int status, timeout, rc;

	if ((status = num_opt_size(a, OPT_COUNT, 0, UINT64_MAX, &count)) ||
	    (status = num_opt_timeout(a, &timeout)))
		return status;
	rc = shmq_open(a->name, SHMQ_CONSUMER, &q);
	if (rc != SHMQ_OK)
		return report_fail(a, rc);
	ignore_sigpipe();
	b.acked = is_acked(q);
	size = shmq_max_msg(q);
	buf = malloc(size + 1);
	if (buf == NULL) {
		status = report_fail(a, SHMQ_ENOMEM);
		goto out;
	}
	for (rc = SHMQ_OK; got < count && rc == SHMQ_OK;) {
		uint64_t want = count - got;

		if (want > GET_SOME)
			want = GET_SOME;
		rc = receive(q, buf, size, &b, (size_t)want, timeout);
		if (rc == SHMQ_OK)
			rc = deliver(a, a->name, q, &b, delim, NULL);
		got += b.n;
	}
	if (rc == SHMQ_OK || rc == SHMQ_EOS || rc == SHMQ_EOS_LOST) {
		status = report_flush(a);
		if (status == QX_OK && rc != SHMQ_OK)
			status = end_of_stream(a, rc, QX_EOS);
	} else {
		status = report_fail(a, rc);
		fflush(stdout);         /* what was received is still printed */
	}
out:
	free(buf);
	shmq_detach(q);
	return status;
}

static const struct cmd_opt get_opts[] = {
	{ OPT_COUNT, "count", 'n', "N", NULL,
	  "take N messages (default 1)" },
	{ OPT_NUL, "null", '0', NULL, NULL,
	  "end each message with NUL instead of newline" },
	{ OPT_TIMEOUT, "timeout", 0, "SECONDS", NULL,
	  "fail if no message comes for this long" },
	{ OPT_TIMEOUT, "nonblock", 0, NULL, "0",
	  "fail at once if the queue is empty (--timeout 0)" },
	{ OPT_NONE }
};

const struct cmd_entry cmd_get_entry = {
	.name = "get",
	.usage = "NAME [-n N] [-0] [--timeout SECONDS] [--nonblock]",
	.summary = "remove and print the oldest message (or N)",
	.help =
"Remove the oldest message of queue NAME and print it, followed by a\n"
"newline (with -0, a NUL); with -n, do so for the N oldest.  While the\n"
"queue is empty, get waits.  If the queue is closed and drained before\n"
"N messages came, get prints those it has and exits with status 3, quietly\n"
"(10, with a message, if a producer died without detaching).  On an acked\n"
"queue each message is acked once it has been written out, and given back\n"
"for redelivery if writing it fails.\n",
	.opts = get_opts,
	.min_args = 1,
	.max_args = 1,
	.flags = CMD_QUEUE,
	.exits = X_COMMON | X(QX_EOS) | X(QX_TIMEOUT) | X(QX_NOENT) |
		 X(QX_ACCESS) | X(QX_EOS_LOST) | X(QX_DEADLOCK),
	.exec = exec_get,
};

/* One queue of a cat. */
struct source {
	const char *name;
	shmq_t *q;
	int fd;                 /* its get descriptor (several queues) */
	int rc;                 /* SHMQ_OK while it runs, then how it ended */
	int acked;              /* an acked queue */
};

/* One queue: wait in the library, as a plain consumer does. */
static int cat_one(struct args *a, struct source *s, void *buf, size_t size,
		   struct batch *b, char delim, const char *prefix)
{
	int rc;

	b->acked = s->acked;
	do {
		rc = receive(s->q, buf, size, b, GET_BATCH, SHMQ_FOREVER);
		if (rc == SHMQ_OK)
			rc = deliver(a, s->name, s->q, b, delim, prefix);
	} while (rc == SHMQ_OK);
	s->rc = rc;
	return rc == SHMQ_EOS || rc == SHMQ_EOS_LOST ? SHMQ_OK : rc;
}

/* Several queues: one poll loop over their descriptors until every one
 * has ended (each is detached as soon as it has).  Each round takes one
 * batch from every queue whose descriptor is readable, so a busy queue
 * cannot starve the others (the descriptor stays readable until a get
 * finds the queue empty); output is flushed before the loop sleeps.  Returns SHMQ_OK, or the error that
 * ended it (*failed is then the queue). */
static int cat_many(struct args *a, struct source *src, int n, void *buf,
		    size_t size, struct batch *b, char delim, int names,
		    int *failed)
{
	struct pollfd *pf = calloc((size_t)n, sizeof(*pf));
	int *which = calloc((size_t)n, sizeof(*which));
	int left = n, rc = SHMQ_OK;

	if (pf == NULL || which == NULL) {
		rc = SHMQ_ENOMEM;
		goto out;
	}
	for (int i = 0; i < n; i++) {
		rc = shmq_fd(src[i].q, SHMQ_POLL_GET, &src[i].fd);
		if (rc != SHMQ_OK) {
			*failed = i;
			goto out;
		}
	}
	while (left > 0) {
		int m = 0, ready;
		for (int i = 0; i < n; i++) {
			if (src[i].rc != SHMQ_OK)
				continue;
			pf[m] = (struct pollfd){ .fd = src[i].fd,
						 .events = POLLIN };
			which[m++] = i;
		}
		ready = poll(pf, (nfds_t)m, 0);
		if (ready == 0) {
			if (fflush(stdout) == EOF) {
				rc = QCTL_EWRITE;
				goto out;
			}
			ready = poll(pf, (nfds_t)m, -1);
		}
		if (ready < 0 && errno == EINTR)
			continue;
		if (ready < 0) {
			rc = SHMQ_ESYS;
			goto out;
		}
		for (int k = 0; k < m; k++) {
			struct source *s = &src[which[k]];
			if (!pf[k].revents)
				continue;
			b->acked = s->acked;
			rc = take(s->q, buf, size, b, GET_BATCH, SHMQ_NOWAIT);
			if (rc == SHMQ_OK)
				rc = deliver(a, s->name, s->q, b, delim,
					     names ? s->name : NULL);
			if (rc == SHMQ_OK || rc == SHMQ_EAGAIN) {
				rc = SHMQ_OK;   /* EAGAIN armed it */
				continue;
			}
			if (rc != SHMQ_EOS && rc != SHMQ_EOS_LOST) {
				*failed = which[k];
				goto out;
			}
			/* Ended: let go of it now, not when all have. */
			s->rc = rc;
			shmq_detach(s->q);
			s->q = NULL;
			left--;
			rc = SHMQ_OK;
		}
	}
out:
	free(which);
	free(pf);
	return rc;
}

static int exec_cat(struct args *a)
{
	char delim = a->opt[OPT_NUL] ? '\0' : '\n';
	int names = a->opt[OPT_NAMES] != NULL, n = 1 + a->argc, opened = 0;
	int status = QX_OK, failed = -1, rc;
	const char *first = a->name;
	struct source *src = calloc((size_t)n, sizeof(*src));
	struct batch b = { 0 };
	int acked = 0;
	char *buf = NULL;
	size_t size = CAT_BUF;

	if (src == NULL)
		return report_fail(a, SHMQ_ENOMEM);
	for (int i = 0; i < n; i++) {
		src[i].name = i ? a->argv[i - 1] : a->name;
		if ((rc = shmq_check_name(src[i].name)) != SHMQ_OK) {
			a->name = src[i].name;
			status = report_fail(a, rc);
			goto out;
		}
	}
	for (; opened < n; opened++) {
		rc = shmq_open(src[opened].name, SHMQ_CONSUMER,
			       &src[opened].q);
		if (rc != SHMQ_OK) {
			a->name = src[opened].name;
			status = report_fail(a, rc);
			goto out;
		}
		if (shmq_max_msg(src[opened].q) > size)
			size = shmq_max_msg(src[opened].q);
		src[opened].acked = is_acked(src[opened].q);
		acked |= src[opened].acked;
	}
	ignore_sigpipe();
	/* Full buffering even on a terminal: output is flushed whenever
	 * the queues run dry, so nothing waits in the buffer for long. */
	setvbuf(stdout, NULL, _IOFBF, OUT_BUF);
	buf = malloc(size);
	b.v = malloc(GET_BATCH * sizeof(*b.v));
	if (acked)
		b.m = malloc(GET_BATCH * sizeof(*b.m));
	if (buf == NULL || b.v == NULL || (acked && b.m == NULL)) {
		status = report_fail(a, SHMQ_ENOMEM);
		goto out;
	}
	if (n == 1) {
		rc = cat_one(a, &src[0], buf, size, &b, delim,
			     names ? src[0].name : NULL);
		failed = 0;
	} else {
		rc = cat_many(a, src, n, buf, size, &b, delim, names,
			      &failed);
	}
	if (rc != SHMQ_OK) {
		if (failed >= 0)
			a->name = src[failed].name;
		status = report_fail(a, rc);
		fflush(stdout);         /* what was received is still printed */
		goto out;
	}
	status = report_flush(a);
	/* Every queue that lost a producer is named. */
	for (int i = 0; i < n && status != QX_ERROR; i++)
		if (src[i].rc == SHMQ_EOS_LOST) {
			a->name = src[i].name;
			status = end_of_stream(a, SHMQ_EOS_LOST, QX_OK);
		}
out:
	a->name = first;
	free(b.m);
	free(b.v);
	free(buf);
	for (int i = 0; i < opened; i++)
		shmq_detach(src[i].q);
	free(src);
	return status;
}

static const struct cmd_opt cat_opts[] = {
	{ OPT_NUL, "null", '0', NULL, NULL,
	  "end each message with NUL instead of newline" },
	{ OPT_NAMES, "names", 0, NULL, NULL,
	  "print each message after its queue's name and a tab" },
	{ OPT_NONE }
};

const struct cmd_entry cmd_cat_entry = {
	.name = "cat",
	.usage = "NAME... [-0] [--names]",
	.summary = "print every message until end of stream",
	.help =
"Remove and print every message of queue NAME as it comes, each followed\n"
"by a newline (with -0, a NUL), until the queue is closed and drained.\n"
"With several queues, print the messages of all of them as they come,\n"
"through one poll loop (no queue waits for another), until every one has\n"
"ended; each queue keeps its own order.  --names prefixes each message\n"
"with its queue's name and a tab.  Output is buffered, but flushed\n"
"whenever the queues are empty, so the next command of a pipeline sees\n"
"each message promptly.  With several consumers each message goes to one\n"
"of them.  Status 0 means every producer of every queue finished; 10\n"
"means one died without detaching (each such queue is named), so a\n"
"stream may be incomplete.  On an acked queue each batch is flushed, then\n"
"acked; if writing fails it is given back for redelivery.\n",
	.opts = cat_opts,
	.min_args = 1,
	.max_args = -1,
	.flags = CMD_QUEUE | CMD_TO_END,
	.exits = X_COMMON | X(QX_NOENT) | X(QX_ACCESS) | X(QX_EOS_LOST) |
		 X(QX_DEADLOCK),
	.exec = exec_cat,
};
