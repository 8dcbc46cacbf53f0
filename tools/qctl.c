/*
 * qctl.c - the shmq command-line tool.
 *
 * Owns qctl's command table, its option parsing, its help text and its exit
 * statuses.  SPEC.md fixes the spellings and the statuses: scripts depend on
 * them, so change neither without changing the contract.
 *
 * Each command is one table entry (name, usage, summary, long help, options,
 * handler), as in tmux's cmd-*.c; the parser and every help screen are
 * generated from the entries.  qctl is a plain client of <shmq.h>: it must
 * never reach into the segment layout or the wire protocol.
 */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "shmq.h"

#ifndef SHMQD_PATH
#define SHMQD_PATH "shmqd"
#endif

#define READ_CHUNK  (1u << 20)  /* put: bytes read(2) may return at once */
#define PUT_BATCH   4096        /* put: messages per shmq_putv() */
#define CAT_BUF     (1u << 20)  /* cat: receive buffer, if max_msg is less */
#define GET_BATCH   4096        /* cat: messages per shmq_getv() */
#define GET_SOME    64          /* get -n: the same; its buffer is small */
#define OUT_BUF     (1u << 17)  /* cat: stdio buffer for standard output */
#define CLEAN_MAX   80          /* longest user text quoted in a message */

/* qctl's own failures, beside the library's statuses, so that one report
 * path serves both.  Far below every SHMQ_E*. */
#define QCTL_EWRITE (-1000)     /* writing standard output failed */
#define QCTL_EREAD  (-1001)     /* reading standard input failed */

/* Exit statuses: fixed by SPEC.md. */
enum {
	QX_OK       = 0,
	QX_ERROR    = 1,
	QX_USAGE    = 2,
	QX_EOS      = 3,
	QX_CLOSED   = 4,
	QX_TIMEOUT  = 5,
	QX_NOENT    = 6,
	QX_ACCESS   = 7,
	QX_NODAEMON = 8,
	QX_TOOBIG   = 9,
	QX_EOS_LOST = 10,
	QX_EXISTS   = 11,
};

static const struct {
	int status;
	const char *meaning;
} exit_table[] = {
	{ QX_OK,       "success (cat: reached end of stream after every "
		       "producer finished)" },
	{ QX_ERROR,    "any other error" },
	{ QX_USAGE,    "bad usage (unknown flag, bad name, bad number)" },
	{ QX_EOS,      "end of stream: get found the queue closed and drained" },
	{ QX_CLOSED,   "closed: put refused because the queue is closed" },
	{ QX_TIMEOUT,  "timed out, or would block with --nonblock" },
	{ QX_NOENT,    "no such queue" },
	{ QX_ACCESS,   "permission denied" },
	{ QX_NODAEMON, "daemon unreachable" },
	{ QX_TOOBIG,   "message too big" },
	{ QX_EOS_LOST, "end of stream, but a producer died without detaching "
		       "(get, cat)" },
	{ QX_EXISTS,   "queue already exists (create without --exist-ok)" },
};

#define X(status) (1u << (status))
/* Statuses every command that talks to the daemon may end with. */
#define X_COMMON (X(QX_OK) | X(QX_ERROR) | X(QX_USAGE) | X(QX_NODAEMON))

/* ------------------------------------------------------------------ */
/* The command table's types                                          */

enum opt_id {
	OPT_NONE,
	OPT_HELP,
	OPT_NUL,
	OPT_COUNT,
	OPT_CAPACITY,
	OPT_MAX_MSG,
	OPT_MAX_BYTES,
	OPT_MODE,
	OPT_AUTO_CLOSE,
	OPT_EXIST_OK,
	OPT_CLOSE,
	OPT_TIMEOUT,
	OPT_NOW,
	OPT_JSON,
	OPT_LAST
};

struct cmd_opt {
	enum opt_id id;
	const char *name;       /* long name */
	char letter;            /* short name, or 0 */
	const char *arg;        /* the argument's name; NULL for a flag */
	const char *value;      /* a flag standing for "id = value" */
	const char *help;
};

struct cmd_entry;

/* A parsed command line. */
struct args {
	const struct cmd_entry *cmd;
	const char *name;       /* the queue, once checked */
	int argc;               /* arguments after the queue name */
	char **argv;
	/* Per option: its argument ("" for a flag), or NULL if not given.
	 * The last occurrence wins, so --nonblock and --timeout override
	 * each other in command-line order. */
	const char *opt[OPT_LAST];
	const struct cmd_opt *src[OPT_LAST];    /* which one, for messages */
};

#define CMD_QUEUE 0x1u          /* the first argument is a queue name */

struct cmd_entry {
	const char *name;
	const char *alias;
	const char *usage;      /* what follows "qctl NAME " */
	const char *summary;
	const char *help;       /* paragraphs between usage and options */
	const struct cmd_opt *opts;
	int min_args;           /* counting the queue name */
	int max_args;           /* -1: no limit */
	unsigned flags;         /* CMD_* */
	unsigned exits;         /* X() of the statuses its help lists */
	int (*exec)(struct args *);
};

static const struct cmd_entry *cmd_find(const char *name);
static void cmd_help(const struct cmd_entry *cmd, FILE *f);
static void main_help(FILE *f);

/* ------------------------------------------------------------------ */
/* Reporting                                                          */

/* User text quoted in a message: control bytes escaped and length capped,
 * so that an error stays one line whatever was typed. */
static const char *clean(const char *s, char *buf, size_t size)
{
	size_t n = 0;

	for (; *s && n + 5 < size; s++) {
		unsigned char c = (unsigned char)*s;
		if (c < 0x20 || c == 0x7f)
			n += (size_t)snprintf(buf + n, size - n, "\\x%02x", c);
		else
			buf[n++] = (char)c;
	}
	if (*s && size > 4)
		strcpy(buf + (n < size - 4 ? n : size - 4), "...");
	else
		buf[n] = '\0';
	return buf;
}

/* The one line of an error: "qctl: COMMAND NAME: cause". */
__attribute__((format(printf, 2, 3)))
static void report(const struct args *a, const char *fmt, ...)
{
	char buf[CLEAN_MAX];
	va_list ap;

	fprintf(stderr, "qctl: %s", a->cmd->name);
	if (a->name)
		fprintf(stderr, " %s", clean(a->name, buf, sizeof(buf)));
	fputs(": ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

/* The one mapping from a status to an exit status.  qctl hands the library
 * only what its command line said, so an argument the library or daemon
 * refuses (SHMQ_EINVAL) is bad usage, like a bad name. */
static int exit_status(int rc)
{
	switch (rc) {
	case SHMQ_OK:        return QX_OK;
	case SHMQ_EOS:       return QX_EOS;
	case SHMQ_EOS_LOST:  return QX_EOS_LOST;
	case SHMQ_ECLOSED:   return QX_CLOSED;
	case SHMQ_ETIMEDOUT:
	case SHMQ_EAGAIN:    return QX_TIMEOUT;
	case SHMQ_ENOENT:    return QX_NOENT;
	case SHMQ_EACCES:    return QX_ACCESS;
	case SHMQ_ENODAEMON: return QX_NODAEMON;
	case SHMQ_E2BIG:     return QX_TOOBIG;
	case SHMQ_EEXIST:    return QX_EXISTS;
	case SHMQ_ENAME:
	case SHMQ_EINVAL:    return QX_USAGE;
	default:             return QX_ERROR;
	}
}

/* The daemon's word on why it refused (which limit, which permission), if
 * it said more than the status does. */
static const char *daemon_detail(int rc)
{
	const char *d = shmq_error_detail();

	if (d == NULL || *d == '\0' || rc == SHMQ_EEXIST)
		return "";
	return d;
}

/* Reports a failed status and returns the exit status for it.  errno and
 * the daemon's detail must still be the failing call's: report before
 * cleaning up. */
static int fail(const struct args *a, int rc)
{
	const char *d = daemon_detail(rc);
	int e = errno;

	switch (rc) {
	case QCTL_EWRITE:
		report(a, "write error: %s", strerror(e));
		break;
	case QCTL_EREAD:
		report(a, "reading standard input: %s", strerror(e));
		break;
	case SHMQ_ESYS:
		/* With the daemon's detail, the failed call was the daemon's
		 * and our errno says nothing about it. */
		if (*d)
			report(a, "%s (%s)", shmq_strerror(rc), d);
		else
			report(a, "%s: %s", shmq_strerror(rc), strerror(e));
		break;
	default:
		report(a, "%s%s%s%s", shmq_strerror(rc), *d ? " (" : "", d,
		       *d ? ")" : "");
	}
	return exit_status(rc);
}

/* Bad usage: one line, pointing at the help. */
__attribute__((format(printf, 2, 3)))
static int usage_error(const struct args *a, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "qctl: %s: ", a->cmd->name);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, " (try 'qctl %s --help')\n", a->cmd->name);
	return QX_USAGE;
}

/* Flushes standard output, for commands that print; a full disk or a
 * closed pipe is an error, not a silent truncation. */
static int finish_output(const struct args *a)
{
	if (fflush(stdout) == EOF || ferror(stdout))
		return fail(a, QCTL_EWRITE);
	return QX_OK;
}

/* ------------------------------------------------------------------ */
/* Numbers                                                            */

enum num_error { NUM_OK, NUM_SYNTAX, NUM_NEGATIVE, NUM_RANGE };

static int is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/* Decimal digits, then an optional K, M or G (powers of 1024).  strtoull
 * is not used: it skips blanks and quietly negates "-1". */
static enum num_error parse_size(const char *s, uint64_t *out)
{
	uint64_t v = 0;
	unsigned shift = 0;

	if (*s == '-')
		return NUM_NEGATIVE;
	if (!is_digit(*s))
		return NUM_SYNTAX;
	for (; is_digit(*s); s++) {
		unsigned d = (unsigned)(*s - '0');
		if (v > (UINT64_MAX - d) / 10)
			return NUM_RANGE;
		v = v * 10 + d;
	}
	switch (*s) {
	case 'K': case 'k': shift = 10; s++; break;
	case 'M': case 'm': shift = 20; s++; break;
	case 'G': case 'g': shift = 30; s++; break;
	}
	if (*s != '\0')
		return NUM_SYNTAX;
	if (v > UINT64_MAX >> shift)
		return NUM_RANGE;
	*out = v << shift;
	return NUM_OK;
}

/* Seconds with an optional fraction, to milliseconds rounded up: a wait the
 * user asked for must never become "do not wait" (0.0001 is 1 ms).  By
 * hand rather than strtod, which takes "inf", "nan", hex and exponents. */
static enum num_error parse_seconds(const char *s, int *ms)
{
	uint64_t whole = 0, frac = 0;
	int digits = 0, fdigits = 0, rest = 0;

	if (*s == '-')
		return NUM_NEGATIVE;
	for (; is_digit(*s); s++, digits++) {
		whole = whole * 10 + (uint64_t)(*s - '0');
		if (whole > INT_MAX / 1000)
			return NUM_RANGE;
	}
	if (*s == '.') {
		for (s++; is_digit(*s); s++, digits++) {
			if (fdigits < 3) {
				frac = frac * 10 + (uint64_t)(*s - '0');
				fdigits++;
			} else if (*s != '0') {
				rest = 1;
			}
		}
	}
	if (digits == 0 || *s != '\0')
		return NUM_SYNTAX;
	for (; fdigits < 3; fdigits++)
		frac *= 10;
	whole = whole * 1000 + frac + (uint64_t)rest;
	if (whole > INT_MAX)
		return NUM_RANGE;
	*ms = (int)whole;
	return NUM_OK;
}

/* Octal permission bits, at most 0777. */
static enum num_error parse_mode(const char *s, uint32_t *mode)
{
	uint32_t v = 0;

	if (*s == '\0')
		return NUM_SYNTAX;
	for (; *s; s++) {
		if (*s < '0' || *s > '7')
			return NUM_SYNTAX;
		v = v * 8 + (uint32_t)(*s - '0');
		if (v > 0777)
			return NUM_RANGE;
	}
	*mode = v;
	return NUM_OK;
}

static int bad_number(const struct args *a, enum opt_id id, const char *why)
{
	const struct cmd_opt *o = a->src[id];
	char buf[CLEAN_MAX];

	if (o->letter)
		report(a, "invalid -%c '%s': %s", o->letter,
		       clean(a->opt[id], buf, sizeof(buf)), why);
	else
		report(a, "invalid --%s '%s': %s", o->name,
		       clean(a->opt[id], buf, sizeof(buf)), why);
	return QX_USAGE;
}

/* A size option within [min, max]; *v is left alone if it is absent. */
static int opt_size(const struct args *a, enum opt_id id, uint64_t min,
		    uint64_t max, uint64_t *v)
{
	char why[64];
	uint64_t n = 0;
	enum num_error e;

	if (a->opt[id] == NULL)
		return QX_OK;
	e = parse_size(a->opt[id], &n);
	if (e == NUM_NEGATIVE)
		return bad_number(a, id, "must not be negative");
	if (e == NUM_SYNTAX)
		return bad_number(a, id, "expected a number, optionally "
				  "with K, M or G");
	if (e == NUM_RANGE || n > max) {
		snprintf(why, sizeof(why), "too large (at most %" PRIu64 ")",
			 max);
		return bad_number(a, id, why);
	}
	if (n < min) {
		snprintf(why, sizeof(why), "must be at least %" PRIu64, min);
		return bad_number(a, id, why);
	}
	*v = n;
	return QX_OK;
}

static int opt_u32(const struct args *a, enum opt_id id, uint32_t min,
		   uint32_t *v)
{
	uint64_t n = *v;
	int status = opt_size(a, id, min, UINT32_MAX, &n);

	*v = (uint32_t)n;
	return status;
}

/* --timeout/--nonblock in milliseconds; SHMQ_FOREVER if neither. */
static int opt_timeout(const struct args *a, int *ms)
{
	*ms = SHMQ_FOREVER;
	if (a->opt[OPT_TIMEOUT] == NULL)
		return QX_OK;
	switch (parse_seconds(a->opt[OPT_TIMEOUT], ms)) {
	case NUM_OK:
		return QX_OK;
	case NUM_NEGATIVE:
		return bad_number(a, OPT_TIMEOUT, "must not be negative");
	case NUM_SYNTAX:
		return bad_number(a, OPT_TIMEOUT, "expected seconds, "
				  "e.g. 2 or 0.25");
	default:
		return bad_number(a, OPT_TIMEOUT, "too large (at most "
				  "2147483 seconds)");
	}
}

/* ------------------------------------------------------------------ */
/* Receiving and printing messages                                    */

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

/* ------------------------------------------------------------------ */
/* create                                                             */

static int exec_create(struct args *a)
{
	struct shmq_attr attr;
	uint64_t max_bytes;
	int rc;

	shmq_attr_init(&attr);
	max_bytes = attr.max_bytes;
	if (opt_u32(a, OPT_CAPACITY, 1, &attr.capacity) ||
	    opt_u32(a, OPT_MAX_MSG, 0, &attr.max_msg) ||
	    opt_size(a, OPT_MAX_BYTES, 0, UINT64_MAX, &max_bytes))
		return QX_USAGE;
	attr.max_bytes = max_bytes;
	if (a->opt[OPT_MODE] &&
	    parse_mode(a->opt[OPT_MODE], &attr.mode) != NUM_OK)
		return bad_number(a, OPT_MODE, "expected octal permission "
				  "bits, e.g. 0640");
	if (a->opt[OPT_AUTO_CLOSE])
		attr.flags |= SHMQ_AUTO_CLOSE;
	rc = shmq_create(a->name, &attr,
			 a->opt[OPT_EXIST_OK] ? SHMQ_EXIST_OK : 0);
	if (rc != SHMQ_OK)
		return fail(a, rc);
	return QX_OK;
}

static const struct cmd_opt create_opts[] = {
	{ OPT_CAPACITY, "capacity", 0, "N", NULL,
	  "hold at most N messages (default 1024)" },
	{ OPT_MAX_MSG, "max-msg", 0, "BYTES", NULL,
	  "largest message (default 4096)" },
	{ OPT_MAX_BYTES, "max-bytes", 0, "BYTES", NULL,
	  "hold at most BYTES of messages (default 0: no limit)" },
	{ OPT_MODE, "mode", 0, "OCTAL", NULL,
	  "permission bits (default 0600: owner only)" },
	{ OPT_AUTO_CLOSE, "auto-close", 0, NULL, NULL,
	  "close the queue when its last producer detaches" },
	{ OPT_EXIST_OK, "exist-ok", 0, NULL, NULL,
	  "an existing queue NAME is not an error" },
	{ OPT_NONE }
};

static const struct cmd_entry cmd_create_entry = {
	.name = "create",
	.usage = "NAME [--capacity N] [--max-msg BYTES] [--max-bytes BYTES] "
		 "[--mode OCTAL] [--auto-close] [--exist-ok]",
	.summary = "create a queue",
	.help =
"Create queue NAME.  It holds at most N messages of at most --max-msg bytes\n"
"each and, with --max-bytes, at most that many bytes of messages in all;\n"
"while it is full, put waits.  The mode works as for files: producers need\n"
"write permission, consumers read permission.  With --auto-close the queue\n"
"closes when its last producer detaches (or dies), so consumers see end of\n"
"stream without anyone running 'qctl close'.\n",
	.opts = create_opts,
	.min_args = 1,
	.max_args = 1,
	.flags = CMD_QUEUE,
	.exits = X_COMMON | X(QX_ACCESS) | X(QX_EXISTS),
	.exec = exec_create,
};

/* ------------------------------------------------------------------ */
/* put                                                                */

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
		return fail(p->a, rc);
	}
	return QX_OK;
}

static int put_args(struct putter *p, int argc, char **argv)
{
	struct iovec *v = calloc((size_t)argc, sizeof(*v));
	int status;

	if (v == NULL)
		return fail(p->a, SHMQ_ENOMEM);
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
		status = fail(p->a, SHMQ_ENOMEM);
		goto out;
	}
	for (;;) {
		ssize_t r = read(fd, buf + have, size - have);
		size_t scan = have, start = 0, nv = 0;
		char *d;

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			status = fail(p->a, QCTL_EREAD);
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

	if ((status = opt_timeout(a, &p.timeout)) != QX_OK)
		return status;
	rc = shmq_open(a->name, SHMQ_PRODUCER, &p.q);
	if (rc != SHMQ_OK)
		return fail(a, rc);
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
			status = fail(a, rc);
	}
	/* A producer that fails to detach looks dead to the daemon, and its
	 * consumers would hear of a lost producer: worth an error. */
	rc = shmq_detach(p.q);
	if (rc != SHMQ_OK && status == QX_OK) {
		report(a, "detach: %s", shmq_strerror(rc));
		status = exit_status(rc);
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

static const struct cmd_entry cmd_put_entry = {
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
		 X(QX_ACCESS) | X(QX_TOOBIG),
	.exec = exec_put,
};

/* ------------------------------------------------------------------ */
/* get                                                                */

static int exec_get(struct args *a)
{
	char delim = a->opt[OPT_NUL] ? '\0' : '\n';
	uint64_t count = 1, got = 0;
	struct iovec v[GET_SOME];
	shmq_t *q = NULL;
	char *buf = NULL;
	size_t size;
	int status, timeout, rc;

	if ((status = opt_size(a, OPT_COUNT, 0, UINT64_MAX, &count)) ||
	    (status = opt_timeout(a, &timeout)))
		return status;
	rc = shmq_open(a->name, SHMQ_CONSUMER, &q);
	if (rc != SHMQ_OK)
		return fail(a, rc);
	ignore_sigpipe();
	size = shmq_max_msg(q);
	buf = malloc(size + 1);
	if (buf == NULL) {
		status = fail(a, SHMQ_ENOMEM);
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
		status = finish_output(a);
		if (status == QX_OK && rc != SHMQ_OK)
			status = end_of_stream(a, rc, QX_EOS);
	} else {
		status = fail(a, rc);
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

static const struct cmd_entry cmd_get_entry = {
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

/* ------------------------------------------------------------------ */
/* cat                                                                */

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
		return fail(a, rc);
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
		status = fail(a, SHMQ_ENOMEM);
		goto out;
	}
	do {
		rc = receive(q, buf, size, v, GET_BATCH, &n, SHMQ_FOREVER);
		if (rc == SHMQ_OK)
			rc = print_msgs(v, n, delim);
	} while (rc == SHMQ_OK);
	if (rc == SHMQ_EOS || rc == SHMQ_EOS_LOST) {
		status = finish_output(a);
		if (status == QX_OK)
			status = end_of_stream(a, rc, QX_OK);
	} else {
		status = fail(a, rc);
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

static const struct cmd_entry cmd_cat_entry = {
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

/* ------------------------------------------------------------------ */
/* close                                                              */

static int exec_close(struct args *a)
{
	unsigned how = a->opt[OPT_NOW] ? SHMQ_CLOSE_NOW : SHMQ_CLOSE_DRAIN;
	uint64_t discarded = 0;
	int rc;

	rc = shmq_close_name(a->name, how, &discarded);
	if (rc != SHMQ_OK)
		return fail(a, rc);
	if (how == SHMQ_CLOSE_NOW) {
		printf("%" PRIu64 "\n", discarded);
		return finish_output(a);
	}
	return QX_OK;
}

static const struct cmd_opt close_opts[] = {
	{ OPT_NOW, "now", 0, NULL, NULL,
	  "discard queued messages; print how many" },
	{ OPT_NONE }
};

static const struct cmd_entry cmd_close_entry = {
	.name = "close",
	.usage = "NAME [--now]",
	.summary = "close a queue (drain, or discard with --now)",
	.help =
"Close queue NAME: from now on put fails with status 4, while consumers\n"
"still receive what is queued, then end of stream.  With --now, queued\n"
"messages are discarded instead, consumers see end of stream at once, and\n"
"the number discarded is printed.  Closing a closed queue is no error.\n",
	.opts = close_opts,
	.min_args = 1,
	.max_args = 1,
	.flags = CMD_QUEUE,
	.exits = X_COMMON | X(QX_NOENT) | X(QX_ACCESS),
	.exec = exec_close,
};

/* ------------------------------------------------------------------ */
/* stat and ls: one set of fields, as "key: value" lines or JSON      */

struct fields {
	int json;
	int n;                  /* fields written so far */
};

static void json_string(const char *s)
{
	putchar('"');
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\')
			printf("\\%c", c);
		else if (c < 0x20 || c >= 0x7f)
			printf("\\u%04x", c);   /* valid JSON for any byte */
		else
			putchar(c);
	}
	putchar('"');
}

static void field_key(struct fields *f, const char *key)
{
	size_t len = strlen(key);

	if (f->json) {
		fputs(f->n ? "," : "{", stdout);
		json_string(key);
		putchar(':');
	} else {
		printf("%s:%*s", key, len < 14 ? (int)(14 - len) : 1, "");
	}
	f->n++;
}

static void field_end(const struct fields *f)
{
	if (!f->json)
		putchar('\n');
}

static void field_str(struct fields *f, const char *key, const char *val)
{
	field_key(f, key);
	if (f->json)
		json_string(val);
	else
		fputs(val, stdout);
	field_end(f);
}

static void field_u64(struct fields *f, const char *key, uint64_t val)
{
	field_key(f, key);
	printf("%" PRIu64, val);
	field_end(f);
}

static void field_bool(struct fields *f, const char *key, int val)
{
	field_key(f, key);
	if (f->json)
		fputs(val ? "true" : "false", stdout);
	else
		fputs(val ? "yes" : "no", stdout);
	field_end(f);
}

/* UTC, ISO 8601, milliseconds; 0 is "never": null in JSON. */
static void field_time(struct fields *f, const char *key, int64_t ns)
{
	char buf[64];
	struct tm tm;
	time_t s = (time_t)(ns / 1000000000);
	size_t n;

	if (ns <= 0) {
		field_key(f, key);
		fputs(f->json ? "null" : "-", stdout);
		field_end(f);
		return;
	}
	n = gmtime_r(&s, &tm) ? strftime(buf, sizeof(buf),
					  "%Y-%m-%dT%H:%M:%S", &tm) : 0;
	if (n == 0)
		snprintf(buf, sizeof(buf), "@%" PRId64, ns);
	else
		snprintf(buf + n, sizeof(buf) - n, ".%03dZ",
			 (int)(ns % 1000000000 / 1000000));
	field_str(f, key, buf);
}

static const char *state_name(int state)
{
	switch (state) {
	case SHMQ_STATE_OPEN:       return "open";
	case SHMQ_STATE_CLOSED:     return "closed";
	case SHMQ_STATE_CLOSED_NOW: return "closed-now";
	default:                    return "unknown";
	}
}

static const char *state_notes(const struct shmq_stat *st)
{
	if (st->auto_closed && st->producer_lost)
		return " (auto, producer lost)";
	if (st->auto_closed)
		return " (auto)";
	return st->producer_lost ? " (producer lost)" : "";
}

static void show_stat(const struct shmq_stat *st, int json)
{
	struct fields f = { .json = json };
	char buf[64];

	field_str(&f, "name", st->name);
	field_u64(&f, "capacity", st->capacity);
	field_u64(&f, "max_msg", st->max_msg);
	field_u64(&f, "max_bytes", st->max_bytes);
	snprintf(buf, sizeof(buf), "%04o", (unsigned)st->mode);
	field_str(&f, "mode", buf);
	field_u64(&f, "uid", st->uid);
	field_u64(&f, "gid", st->gid);
	field_bool(&f, "auto_close", !!(st->flags & SHMQ_AUTO_CLOSE));
	field_u64(&f, "messages", st->messages);
	field_u64(&f, "bytes", st->bytes);
	field_u64(&f, "producers", st->producers);
	field_u64(&f, "consumers", st->consumers);
	field_u64(&f, "blocked_put", st->put_blocked);
	field_u64(&f, "blocked_get", st->get_blocked);
	field_u64(&f, "total_put", st->total_put);
	field_u64(&f, "total_got", st->total_got);
	field_u64(&f, "discarded", st->discarded);
	if (json) {
		field_str(&f, "state", state_name(st->state));
		field_bool(&f, "auto_closed", st->auto_closed);
		field_bool(&f, "producer_lost", st->producer_lost);
	} else {
		snprintf(buf, sizeof(buf), "%s%s", state_name(st->state),
			 state_notes(st));
		field_str(&f, "state", buf);
	}
	field_time(&f, "created", st->created_ns);
	field_time(&f, "closed", st->closed_ns);
	if (json)
		putchar('}');
}

static int exec_stat(struct args *a)
{
	struct shmq_stat st;
	int rc = shmq_stat_name(a->name, &st);

	if (rc != SHMQ_OK)
		return fail(a, rc);
	show_stat(&st, a->opt[OPT_JSON] != NULL);
	if (a->opt[OPT_JSON])
		putchar('\n');
	return finish_output(a);
}

static const struct cmd_opt json_opts[] = {
	{ OPT_JSON, "json", 0, NULL, NULL, "print JSON" },
	{ OPT_NONE }
};

static const struct cmd_entry cmd_stat_entry = {
	.name = "stat",
	.usage = "NAME [--json]",
	.summary = "show a queue's settings and counters",
	.help =
"Show queue NAME, one \"key: value\" per line, or one JSON object with\n"
"--json.  Keys: name, capacity, max_msg, max_bytes (0: no limit), mode,\n"
"uid, gid, auto_close, messages, bytes (queued now), producers, consumers,\n"
"blocked_put, blocked_get (processes waiting), total_put, total_got,\n"
"discarded (by close --now), state (open, closed or closed-now; JSON adds\n"
"auto_closed and producer_lost, the text adds them in parentheses),\n"
"created and closed (UTC, ISO 8601; '-' or null while open).\n",
	.opts = json_opts,
	.min_args = 1,
	.max_args = 1,
	.flags = CMD_QUEUE,
	.exits = X_COMMON | X(QX_NOENT) | X(QX_ACCESS),
	.exec = exec_stat,
};

/* ------------------------------------------------------------------ */
/* ls                                                                 */

static void show_list_json(const struct shmq_stat *list, size_t n)
{
	putchar('[');
	for (size_t i = 0; i < n; i++) {
		fputs(i ? ",\n" : "\n", stdout);
		show_stat(&list[i], 1);
	}
	fputs(n ? "\n]\n" : "]\n", stdout);
}

static void show_list_table(const struct shmq_stat *list, size_t n)
{
	int width = 4;
	char len[48], state[48];

	for (size_t i = 0; i < n; i++)
		if ((int)strlen(list[i].name) > width)
			width = (int)strlen(list[i].name);
	printf("%-*s  %-15s  %-17s  %9s  %9s\n", width, "NAME",
	       "LENGTH/CAPACITY", "STATE", "PRODUCERS", "CONSUMERS");
	for (size_t i = 0; i < n; i++) {
		const struct shmq_stat *st = &list[i];
		snprintf(len, sizeof(len), "%" PRIu64 "/%" PRIu32,
			 st->messages, st->capacity);
		snprintf(state, sizeof(state), "%s%s%s", state_name(st->state),
			 st->auto_closed ? ",auto" : "",
			 st->producer_lost ? ",lost" : "");
		printf("%-*s  %-15s  %-17s  %9" PRIu32 "  %9" PRIu32 "\n",
		       width, st->name, len, state, st->producers,
		       st->consumers);
	}
}

static int exec_ls(struct args *a)
{
	struct shmq_stat *list;
	size_t n;
	int rc = shmq_list(&list, &n);

	if (rc != SHMQ_OK)
		return fail(a, rc);
	if (a->opt[OPT_JSON])
		show_list_json(list, n);
	else
		show_list_table(list, n);
	free(list);
	return finish_output(a);
}

static const struct cmd_entry cmd_ls_entry = {
	.name = "ls",
	.alias = "list",
	.usage = "[--json]",
	.summary = "list queues",
	.help =
"List the queues you may read, by name: NAME, LENGTH/CAPACITY (messages\n"
"queued, and the most it holds), STATE (open, closed or closed-now, plus\n"
"',auto' if the last producer's leaving closed it and ',lost' if a producer\n"
"died without detaching), PRODUCERS and CONSUMERS attached.  --json prints\n"
"a JSON array of the objects 'qctl stat --json' prints.\n",
	.opts = json_opts,
	.min_args = 0,
	.max_args = 0,
	.exits = X_COMMON,
	.exec = exec_ls,
};

/* ------------------------------------------------------------------ */
/* rm                                                                 */

static int exec_rm(struct args *a)
{
	int rc = shmq_delete(a->name);

	if (rc != SHMQ_OK)
		return fail(a, rc);
	return QX_OK;
}

static const struct cmd_entry cmd_rm_entry = {
	.name = "rm",
	.alias = "delete",
	.usage = "NAME",
	.summary = "delete a queue",
	.help =
"Delete queue NAME.  As with unlinking a file, the name goes at once, while\n"
"processes that have the queue open keep using it until they detach.\n",
	.opts = NULL,
	.min_args = 1,
	.max_args = 1,
	.flags = CMD_QUEUE,
	.exits = X_COMMON | X(QX_NOENT) | X(QX_ACCESS),
	.exec = exec_rm,
};

/* ------------------------------------------------------------------ */
/* help                                                               */

static int exec_help(struct args *a)
{
	const struct cmd_entry *cmd;
	char buf[CLEAN_MAX];

	if (a->argc == 0) {
		main_help(stdout);
		return QX_OK;
	}
	cmd = cmd_find(a->argv[0]);
	if (cmd == NULL)
		return usage_error(a, "unknown command '%s'",
				   clean(a->argv[0], buf, sizeof(buf)));
	cmd_help(cmd, stdout);
	return QX_OK;
}

static const struct cmd_entry cmd_help_entry = {
	.name = "help",
	.usage = "[COMMAND]",
	.summary = "show qctl's help, or a command's",
	.help = "Same as 'qctl --help' or 'qctl COMMAND --help'.\n",
	.opts = NULL,
	.min_args = 0,
	.max_args = 1,
	.exits = X(QX_OK) | X(QX_USAGE),
	.exec = exec_help,
};

/* ------------------------------------------------------------------ */
/* The table, and what is generated from it                          */

static const struct cmd_entry *const cmd_table[] = {
	&cmd_create_entry,
	&cmd_put_entry,
	&cmd_get_entry,
	&cmd_cat_entry,
	&cmd_close_entry,
	&cmd_stat_entry,
	&cmd_ls_entry,
	&cmd_rm_entry,
	&cmd_help_entry,
};

#define N_CMDS (sizeof(cmd_table) / sizeof(cmd_table[0]))
#define N_OPTS 16               /* most options of one command, with --help */

static const struct cmd_opt help_opt = {
	OPT_HELP, "help", 'h', NULL, NULL, "show this help"
};

static const struct cmd_entry *cmd_find(const char *name)
{
	for (size_t i = 0; i < N_CMDS; i++)
		if (strcmp(cmd_table[i]->name, name) == 0 ||
		    (cmd_table[i]->alias &&
		     strcmp(cmd_table[i]->alias, name) == 0))
			return cmd_table[i];
	return NULL;
}

/* The command's options followed by --help, at most N_OPTS. */
static size_t cmd_opts(const struct cmd_entry *cmd,
		       const struct cmd_opt *out[N_OPTS])
{
	size_t n = 0;

	for (const struct cmd_opt *o = cmd->opts; o && o->id; o++)
		if (n < N_OPTS - 1)
			out[n++] = o;
	out[n++] = &help_opt;
	return n;
}

static void opt_help(const struct cmd_opt *o, FILE *f)
{
	char spec[64];
	int n;

	if (o->letter)
		n = snprintf(spec, sizeof(spec), "-%c, --%s", o->letter,
			     o->name);
	else
		n = snprintf(spec, sizeof(spec), "    --%s", o->name);
	if (o->arg && n >= 0 && (size_t)n < sizeof(spec))
		snprintf(spec + n, sizeof(spec) - (size_t)n, " %s", o->arg);
	if (strlen(spec) > 20)
		fprintf(f, "  %s\n  %-20s  %s\n", spec, "", o->help);
	else
		fprintf(f, "  %-20s  %s\n", spec, o->help);
}

static void exits_help(unsigned mask, FILE *f)
{
	fputs("Exit status:\n", f);
	for (size_t i = 0; i < sizeof(exit_table) / sizeof(exit_table[0]); i++)
		if (mask & X(exit_table[i].status))
			fprintf(f, "  %2d  %s\n", exit_table[i].status,
				exit_table[i].meaning);
}

static void cmd_help(const struct cmd_entry *cmd, FILE *f)
{
	const struct cmd_opt *opts[N_OPTS];
	size_t n = cmd_opts(cmd, opts);

	fprintf(f, "usage: qctl %s %s\n\n", cmd->name, cmd->usage);
	fprintf(f, "qctl %s: %s.", cmd->name, cmd->summary);
	if (cmd->alias)
		fprintf(f, "  (Also spelt '%s'.)", cmd->alias);
	fprintf(f, "\n\n%s\nOptions:\n", cmd->help);
	for (size_t i = 0; i < n; i++)
		opt_help(opts[i], f);
	fputc('\n', f);
	exits_help(cmd->exits, f);
}

static void main_help(FILE *f)
{
	fputs("usage: qctl COMMAND [ARGS...]\n"
	      "       qctl COMMAND --help\n"
	      "       qctl --help | --version\n"
	      "\n"
	      "Named, bounded message queues in shared memory (shmq).  Queues are\n"
	      "served by the shmqd daemon; 'producer | qctl put --close q' and\n"
	      "'qctl cat q | consumer' work as the two ends of a pipe, with\n"
	      "message boundaries, many producers and consumers, and a bounded\n"
	      "buffer.\n"
	      "\n"
	      "Commands:\n", f);
	for (size_t i = 0; i < N_CMDS; i++)
		fprintf(f, "  %-7s %s\n", cmd_table[i]->name,
			cmd_table[i]->summary);
	fputs("\n"
	      "Options may come before or after NAME; '--' ends them.  A queue\n"
	      "name is 1-255 bytes of A-Z a-z 0-9 . _ -, not starting with '.'.\n"
	      "Sizes and counts take an optional K, M or G (powers of 1024).\n"
	      "SECONDS may have a fraction (0.25); it is rounded up to whole\n"
	      "milliseconds, and 0 means do not wait.  Without --timeout, put and\n"
	      "get wait as long as it takes.  Errors are one line on standard\n"
	      "error: 'qctl: COMMAND NAME: cause'.\n"
	      "\n", f);
	exits_help(~0u, f);
	fputs("\n"
	      "Environment:\n"
	      "  SHMQ_SOCKET        the daemon's control socket (default: the\n"
	      "                     system daemon's /run/shmq/shmqd.sock if it\n"
	      "                     exists, else $XDG_RUNTIME_DIR/shmq/shmqd.sock\n"
	      "                     or /tmp/shmq-UID/shmqd.sock)\n"
	      "  SHMQ_NO_AUTOSTART  if set, never start a per-user daemon; without\n"
	      "                     it, one is started when none answers\n"
	      "  SHMQ_DAEMON        the shmqd binary to start (default:\n"
	      "                     " SHMQD_PATH ")\n", f);
}

/* ------------------------------------------------------------------ */
/* Parsing a command line                                             */

/* getopt's val for an option: its letter, or a code above every char. */
static int opt_val(const struct cmd_opt *o, size_t index)
{
	return o->letter ? (unsigned char)o->letter : 0x100 + (int)index;
}

/* getopt tables from the command's entry: shortopts starts with "-", so
 * that operands come back in order as 1 (options may follow NAME whatever
 * POSIXLY_CORRECT says), and ":", so that qctl words every error itself. */
static void build_getopt(const struct cmd_opt *const *opts, size_t n,
			 struct option *lo, char *so)
{
	*so++ = '-';
	*so++ = ':';
	for (size_t i = 0; i < n; i++) {
		lo[i].name = opts[i]->name;
		lo[i].has_arg = opts[i]->arg ? required_argument : no_argument;
		lo[i].flag = NULL;
		lo[i].val = opt_val(opts[i], i);
		if (opts[i]->letter) {
			*so++ = opts[i]->letter;
			if (opts[i]->arg)
				*so++ = ':';
		}
	}
	memset(&lo[n], 0, sizeof(lo[n]));
	*so = '\0';
}

/* How many long options `word` (without its "--") abbreviates. */
static int opt_prefixes(const struct option *lo, const char *word,
			size_t len)
{
	int n = 0;

	for (; lo->name; lo++)
		if (strncmp(lo->name, word, len) == 0)
			n++;
	return n;
}

static int short_error(const struct args *a, int c)
{
	if (!(optopt > 0x20 && optopt < 0x7f))
		return usage_error(a, "unknown option");
	if (c == ':')
		return usage_error(a, "option '-%c' needs an argument",
				   optopt);
	return usage_error(a, "unknown option '-%c'", optopt);
}

/* Words a getopt error.  `el` is the argument being parsed: operands come
 * back in order, so nothing was permuted and argv[optind before the call]
 * is it.  A long option is named without any "=value". */
static int option_error(const struct args *a, const struct option *lo,
			int c, const char *el)
{
	char buf[CLEAN_MAX], word[CLEAN_MAX];
	size_t len;

	if (strncmp(el, "--", 2) != 0)
		return short_error(a, c);
	len = strcspn(el + 2, "=");
	snprintf(word, sizeof(word), "--%.*s", (int)len, el + 2);
	clean(word, buf, sizeof(buf));
	if (c == ':')
		return usage_error(a, "option '%s' needs an argument", buf);
	if (optopt)
		return usage_error(a, "option '%s' takes no argument", buf);
	if (opt_prefixes(lo, el + 2, len) > 1)
		return usage_error(a, "ambiguous option '%s'", buf);
	return usage_error(a, "unknown option '%s'", buf);
}

static int check_operands(struct args *a, char **pos, int npos)
{
	const struct cmd_entry *cmd = a->cmd;
	char buf[CLEAN_MAX];
	int rc;

	if (npos < cmd->min_args)
		return usage_error(a, (cmd->flags & CMD_QUEUE) && npos == 0
					      ? "missing queue NAME"
					      : "missing argument");
	if (cmd->max_args >= 0 && npos > cmd->max_args)
		return usage_error(a, "unexpected argument '%s'",
				   clean(pos[cmd->max_args], buf,
					 sizeof(buf)));
	a->argv = pos;
	a->argc = npos;
	if (cmd->flags & CMD_QUEUE) {
		a->name = pos[0];
		a->argv++;
		a->argc--;
		if ((rc = shmq_check_name(a->name)) != SHMQ_OK)
			return fail(a, rc);
	}
	return -1;
}

/* Parses argv (argv[0] is the command's name) into *a.  Returns -1 to go
 * on, or the exit status to leave with (after --help or an error). */
static int parse_args(const struct cmd_entry *cmd, int argc, char **argv,
		      struct args *a, char **pos)
{
	const struct cmd_opt *opts[N_OPTS];
	struct option lo[N_OPTS + 1];
	char so[3 + 2 * N_OPTS + 1];
	size_t n = cmd_opts(cmd, opts);
	int npos = 0, c;

	memset(a, 0, sizeof(*a));
	a->cmd = cmd;
	build_getopt(opts, n, lo, so);
	opterr = 0;
	optind = 1;
	for (;;) {
		int at = optind;
		const struct cmd_opt *o = NULL;

		c = getopt_long(argc, argv, so, lo, NULL);
		if (c == -1)
			break;
		if (c == 1) {
			pos[npos++] = optarg;
			continue;
		}
		if (c == '?' || c == ':')
			return option_error(a, lo, c,
					    at < argc ? argv[at] : "");
		for (size_t i = 0; i < n && o == NULL; i++)
			if (opt_val(opts[i], i) == c)
				o = opts[i];
		if (o == NULL)
			return usage_error(a, "unknown option");
		if (o->id == OPT_HELP) {
			cmd_help(cmd, stdout);
			return QX_OK;
		}
		a->opt[o->id] = o->value ? o->value : o->arg ? optarg : "";
		a->src[o->id] = o;
	}
	while (optind < argc)
		pos[npos++] = argv[optind++];
	return check_operands(a, pos, npos);
}

int main(int argc, char **argv)
{
	const struct cmd_entry *cmd;
	struct args a;
	char buf[CLEAN_MAX];
	char **pos;
	int status;

	if (argc < 2) {
		fputs("qctl: missing command (try 'qctl --help')\n", stderr);
		return QX_USAGE;
	}
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
		main_help(stdout);
		return QX_OK;
	}
	if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "-V") == 0) {
		printf("qctl (shmq) %s\n", shmq_version());
		return QX_OK;
	}
	cmd = cmd_find(argv[1]);
	if (cmd == NULL) {
		fprintf(stderr, "qctl: unknown %s '%s' (try 'qctl --help')\n",
			argv[1][0] == '-' ? "option" : "command",
			clean(argv[1], buf, sizeof(buf)));
		return QX_USAGE;
	}
	pos = calloc((size_t)argc, sizeof(*pos));
	if (pos == NULL) {
		fputs("qctl: out of memory\n", stderr);
		return QX_ERROR;
	}
	status = parse_args(cmd, argc - 1, argv + 1, &a, pos);
	if (status < 0)
		status = cmd->exec(&a);
	free(pos);
	return status;
}
