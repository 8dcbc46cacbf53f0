/*
 * cmd-put.c - qctl put: append messages, from the command line or from
 * standard input, one per line or NUL-terminated record.
 *
 * Owns turning a byte stream into messages.  It must never queue part of a
 * message, nor close the queue after input that was not all queued: end of
 * stream would tell consumers a lie.
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "qctl.h"

#define READ_CHUNK  (1u << 20)  /* bytes read(2) may return at once */
#define PUT_BATCH   4096        /* messages per shmq_putv() */

struct putter {
	const struct args *a;
	shmq_t *q;
	int timeout;
	size_t max;             /* the queue's largest message */
	uint64_t queued;        /* messages queued so far, to name a bad one */
};

static int too_big(const struct putter *p, size_t len)
{
	report(p->a, "%s: message %" PRIu64 " is %zu bytes, the queue's "
	       "maximum is %zu", shmq_strerror(SHMQ_E2BIG), p->queued + 1,
	       len, p->max);
	return QX_TOOBIG;
}

/* Queues v[0..n) in order.  A timeout bounds a wait without progress, not
 * the whole batch: a putv that queued some messages before it timed out is
 * simply called again for the rest. */
static int put_batch(struct putter *p, struct iovec *v, size_t n)
{
	while (n > 0) {
		size_t done = 0;
		int rc = shmq_putv(p->q, v, n, &done, p->timeout);

		p->queued += done;
		v += done;
		n -= done;
		if (rc == SHMQ_OK || rc == SHMQ_EINTR)
			continue;
		if ((rc == SHMQ_ETIMEDOUT || rc == SHMQ_EAGAIN) && done > 0)
			continue;
		if (rc == SHMQ_E2BIG && n > 0)
			return too_big(p, v[0].iov_len);
		return report_fail(p->a, rc);
	}
	return QX_OK;
}

static int put_args(struct putter *p, int argc, char **argv)
{
	struct iovec *v = calloc((size_t)argc, sizeof(*v));
	int status;

	if (v == NULL)
		return report_fail(p->a, SHMQ_ENOMEM);
	for (int i = 0; i < argc; i++) {
		v[i].iov_base = argv[i];
		v[i].iov_len = strlen(argv[i]);
	}
	status = put_batch(p, v, (size_t)argc);
	free(v);
	return status;
}

/* Reads fd to its end and queues each delim-terminated message (the last
 * may lack its delim).  Whatever one read(2) returns is queued before the
 * next read, in batches: a fast producer fills big batches by itself, and a
 * slow one has each message queued as soon as it is written. */
static int put_stream(struct putter *p, int fd, char delim)
{
	size_t size = p->max + READ_CHUNK;
	struct iovec *v = malloc(PUT_BATCH * sizeof(*v));
	char *buf = NULL;
	size_t have = 0;        /* bytes in buf: one partial message */
	int status = QX_OK;

	/* The partial message is at most max bytes, so every read has
	 * READ_CHUNK bytes of room. */
	if (p->max < SIZE_MAX - READ_CHUNK)
		buf = malloc(size);
	if (v == NULL || buf == NULL) {
		status = report_fail(p->a, SHMQ_ENOMEM);
		goto out;
	}
	for (;;) {
		ssize_t r = read(fd, buf + have, size - have);
		size_t scan = have, start = 0, nv = 0;
		char *d;

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			status = report_fail(p->a, QCTL_EREAD);
			goto out;
		}
		if (r == 0)
			break;
		have += (size_t)r;
		while ((d = memchr(buf + scan, delim, have - scan)) != NULL) {
			v[nv].iov_base = buf + start;
			v[nv].iov_len = (size_t)(d - (buf + start));
			start = scan = (size_t)(d - buf) + 1;
			if (++nv == PUT_BATCH) {
				if ((status = put_batch(p, v, nv)) != QX_OK)
					goto out;
				nv = 0;
			}
		}
		if (nv > 0 && (status = put_batch(p, v, nv)) != QX_OK)
			goto out;
		have -= start;
		if (have > p->max) {
			/* Its end is still unread, so name no length. */
			report(p->a, "%s: message %" PRIu64 " is longer than "
			       "the queue's maximum of %zu bytes",
			       shmq_strerror(SHMQ_E2BIG), p->queued + 1,
			       p->max);
			status = QX_TOOBIG;
			goto out;
		}
		memmove(buf, buf + start, have);
	}
	if (have > 0) {
		v[0].iov_base = buf;
		v[0].iov_len = have;
		status = put_batch(p, v, 1);
	}
out:
	free(buf);
	free(v);
	return status;
}

static int exec_put(struct args *a)
{
	struct putter p = { .a = a };
	int status, rc;

	if ((status = num_opt_timeout(a, &p.timeout)) != QX_OK)
		return status;
	rc = shmq_open(a->name, SHMQ_PRODUCER, &p.q);
	if (rc != SHMQ_OK)
		return report_fail(a, rc);
	p.max = shmq_max_msg(p.q);
	if (a->argc > 0)
		status = put_args(&p, a->argc, a->argv);
	else
		status = put_stream(&p, STDIN_FILENO,
				    a->opt[OPT_NUL] ? '\0' : '\n');
	/* Only a complete input closes the queue: after a failure, end of
	 * stream would tell consumers a lie. */
	if (status == QX_OK && a->opt[OPT_CLOSE]) {
		rc = shmq_close(p.q, SHMQ_CLOSE_DRAIN, NULL);
		if (rc != SHMQ_OK)
			status = report_fail(a, rc);
	}
	/* A producer that fails to detach looks dead to the daemon, and its
	 * consumers would hear of a lost producer: worth an error. */
	rc = shmq_detach(p.q);
	if (rc != SHMQ_OK && status == QX_OK) {
		report(a, "detach: %s", shmq_strerror(rc));
		status = report_exit_status(rc);
	}
	return status;
}

static const struct cmd_opt put_opts[] = {
	{ OPT_NUL, "null", '0', NULL, NULL,
	  "read NUL-terminated messages instead of lines" },
	{ OPT_CLOSE, "close", 0, NULL, NULL,
	  "close the queue (drain) once all input is queued" },
	{ OPT_TIMEOUT, "timeout", 0, "SECONDS", NULL,
	  "fail if the queue stays full this long" },
	{ OPT_TIMEOUT, "nonblock", 0, NULL, "0",
	  "fail at once if the queue is full (--timeout 0)" },
	{ OPT_NONE }
};

const struct cmd_entry cmd_put_entry = {
	.name = "put",
	.usage = "NAME [MSG...] [-0] [--close] [--timeout SECONDS] "
		 "[--nonblock]",
	.summary = "append messages to a queue",
	.help =
"Append each MSG to queue NAME, in order.  Without MSG arguments, read\n"
"standard input to its end: one message per line, newline removed (with -0,\n"
"per NUL-terminated record); a last line without its newline counts too.\n"
"Messages are queued as soon as they are read, many per call when input is\n"
"fast.  While the queue is full, put waits: that is the backpressure.\n"
"\n"
"A message longer than the queue's maximum stops put with status 9; the\n"
"messages before it stay queued.  --close closes the queue only if all\n"
"input was queued, so a failed put never looks like a finished stream.\n"
"Use -- before a MSG that starts with '-'.\n",
	.opts = put_opts,
	.min_args = 1,
	.max_args = -1,
	.flags = CMD_QUEUE,
	.exits = X_COMMON | X(QX_CLOSED) | X(QX_TIMEOUT) | X(QX_NOENT) |
		 X(QX_ACCESS) | X(QX_TOOBIG) | X(QX_DEADLOCK),
	.exec = exec_put,
};
