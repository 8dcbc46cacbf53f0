/*
 * cmd-get.c - qctl get and qctl cat: remove messages and print them, one
 * per line or NUL-terminated.
 *
 * Owns the consumer's side of a pipeline: what was received is printed
 * even when an error ends the command, standard output is flushed before
 * waiting on an empty queue (whoever reads us must not wait for messages
 * we hold), and end of stream is quiet unless a producer was lost.
 */
#include "config.h"

#include <inttypes.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/uio.h>

#include "qctl.h"

#define CAT_BUF     (1u << 20)  /* cat: receive buffer, if max_msg is less */
#define GET_BATCH   4096        /* cat: messages per shmq_getv() */
#define GET_SOME    64          /* get -n: the same; its buffer is small */
#define OUT_BUF     (1u << 17)  /* cat: stdio buffer for standard output */

/* Takes up to n messages.  Before sleeping on an empty queue it flushes
 * standard output: whoever reads us must not wait for messages we hold in
 * a buffer while we wait for more. */
static int receive(shmq_t *q, void *buf, size_t size, struct iovec *v,
		   size_t n, size_t *got, int timeout)
{
	int rc;

	do
		rc = shmq_getv(q, buf, size, v, n, got, SHMQ_NOWAIT);
	while (rc == SHMQ_EINTR);
	if (rc != SHMQ_EAGAIN || timeout == SHMQ_NOWAIT)
		return rc;
	if (fflush(stdout) == EOF)
		return QCTL_EWRITE;
	do
		rc = shmq_getv(q, buf, size, v, n, got, timeout);
	while (rc == SHMQ_EINTR);
	return rc;
}

static int print_msgs(const struct iovec *v, size_t n, char delim)
{
	for (size_t i = 0; i < n; i++) {
		size_t len = v[i].iov_len;
		if (fwrite(v[i].iov_base, 1, len, stdout) != len ||
		    putc(delim, stdout) == EOF)
			return QCTL_EWRITE;
	}
	return SHMQ_OK;
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
	size = shmq_max_msg(q);
	buf = malloc(size + 1);
	if (buf == NULL) {
		status = report_fail(a, SHMQ_ENOMEM);
		goto out;
	}
	for (rc = SHMQ_OK; got < count && rc == SHMQ_OK;) {
		uint64_t want = count - got;
		size_t n = 0;

		if (want > GET_SOME)
			want = GET_SOME;
		rc = receive(q, buf, size, v, (size_t)want, &n, timeout);
		if (rc == SHMQ_OK)
			rc = print_msgs(v, n, delim);
		got += n;
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
"(10, with a message, if a producer died without detaching).\n",
	.opts = get_opts,
	.min_args = 1,
	.max_args = 1,
	.flags = CMD_QUEUE,
	.exits = X_COMMON | X(QX_EOS) | X(QX_TIMEOUT) | X(QX_NOENT) |
		 X(QX_ACCESS) | X(QX_EOS_LOST),
	.exec = exec_get,
};

static int exec_cat(struct args *a)
{
	char delim = a->opt[OPT_NUL] ? '\0' : '\n';
	struct iovec *v = NULL;
	shmq_t *q = NULL;
	char *buf = NULL;
	size_t size, n = 0;
	int status, rc;

	rc = shmq_open(a->name, SHMQ_CONSUMER, &q);
	if (rc != SHMQ_OK)
		return report_fail(a, rc);
	ignore_sigpipe();
	/* Full buffering even on a terminal: receive() flushes whenever the
	 * queue runs dry, so nothing waits in the buffer for long. */
	setvbuf(stdout, NULL, _IOFBF, OUT_BUF);
	size = shmq_max_msg(q);
	if (size < CAT_BUF)
		size = CAT_BUF;
	buf = malloc(size);
	v = malloc(GET_BATCH * sizeof(*v));
	if (buf == NULL || v == NULL) {
		status = report_fail(a, SHMQ_ENOMEM);
		goto out;
	}
	do {
		rc = receive(q, buf, size, v, GET_BATCH, &n, SHMQ_FOREVER);
		if (rc == SHMQ_OK)
			rc = print_msgs(v, n, delim);
	} while (rc == SHMQ_OK);
	if (rc == SHMQ_EOS || rc == SHMQ_EOS_LOST) {
		status = report_flush(a);
		if (status == QX_OK)
			status = end_of_stream(a, rc, QX_OK);
	} else {
		status = report_fail(a, rc);
	}
out:
	free(v);
	free(buf);
	shmq_detach(q);
	return status;
}

static const struct cmd_opt cat_opts[] = {
	{ OPT_NUL, "null", '0', NULL, NULL,
	  "end each message with NUL instead of newline" },
	{ OPT_NONE }
};

const struct cmd_entry cmd_cat_entry = {
	.name = "cat",
	.usage = "NAME [-0]",
	.summary = "print every message until end of stream",
	.help =
"Remove and print every message of queue NAME as it comes, each followed\n"
"by a newline (with -0, a NUL), until the queue is closed and drained.\n"
"Output is buffered, but flushed whenever the queue is empty, so the next\n"
"command of a pipeline sees each message promptly.  With several consumers\n"
"each message goes to one of them.  Status 0 means every producer finished;\n"
"10 means one died without detaching, so the stream may be incomplete.\n",
	.opts = cat_opts,
	.min_args = 1,
	.max_args = 1,
	.flags = CMD_QUEUE,
	.exits = X_COMMON | X(QX_NOENT) | X(QX_ACCESS) | X(QX_EOS_LOST),
	.exec = exec_cat,
};
