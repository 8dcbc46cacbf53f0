/*
 * report.c - qctl's errors: the one line on standard error, and the exit
 * status that goes with it.
 *
 * Owns the mapping from a status to an exit status and the words of the
 * exit-status table (docs/exit-status.md): scripts depend on both, so
 * change neither without changing the contract.  Every error is one line,
 * "qctl: COMMAND NAME: cause", whatever the user typed: nothing here may
 * print user text without report_clean().
 */
#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "qctl.h"

static const struct {
	int status;
	const char *meaning;
} exit_table[] = {
	{ QX_OK,       "success" },
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
	{ QX_DEADLOCK, "deadlock: a blocked call was chosen to break a "
		       "deadlock (--on-deadlock fail); deadlocks found one" },
};

void report_exits_help(unsigned mask, const char *to_end, FILE *f)
{
	fputs("Exit status:\n", f);
	for (size_t i = 0; i < sizeof(exit_table) / sizeof(exit_table[0]); i++) {
		if (!(mask & X(exit_table[i].status)))
			continue;
		fprintf(f, "  %2d  %s", exit_table[i].status,
			exit_table[i].meaning);
		if (exit_table[i].status == QX_OK && to_end)
			fprintf(f, " (%s: reached end of stream after every "
				"producer finished)", to_end);
		fputc('\n', f);
	}
}

const char *report_clean(const char *s, char *buf, size_t size)
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

void report(const struct args *a, const char *fmt, ...)
{
	char buf[CLEAN_MAX];
	va_list ap;

	fprintf(stderr, "qctl: %s", a->cmd->name);
	if (a->name)
		fprintf(stderr, " %s", report_clean(a->name, buf, sizeof(buf)));
	fputs(": ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

/* qctl hands the library only what its command line said, so an argument
 * the library or daemon refuses (SHMQ_EINVAL) is bad usage, like a bad
 * name. */
int report_exit_status(int rc)
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
	case SHMQ_EDEADLK:   return QX_DEADLOCK;
	case SHMQ_ENAME:
	case SHMQ_EINVAL:    return QX_USAGE;
	default:             return QX_ERROR;
	}
}

/* The library's word on why (which limit or permission the daemon
 * refused on, or why the daemon could not be reached), if it said more
 * than the status does.  Cleaned: it names paths the user chose. */
static const char *detail(int rc, char *buf, size_t size)
{
	const char *d = shmq_error_detail();

	if (d == NULL || *d == '\0' || rc == SHMQ_EEXIST)
		return "";
	return report_clean(d, buf, size);
}

int report_fail(const struct args *a, int rc)
{
	int e = errno;
	char buf[512];
	const char *d = detail(rc, buf, sizeof(buf));

	switch (rc) {
	case QCTL_EWRITE:
		report(a, "write error: %s", strerror(e));
		break;
	case QCTL_EREAD:
		report(a, "reading standard input: %s", strerror(e));
		break;
	case SHMQ_ENODAEMON:
		/* The detail is the cause itself: which socket, what
		 * connect(2) said, what became of the autostart. */
		report(a, "%s%s%s", shmq_strerror(rc), *d ? ": " : "", d);
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
	return report_exit_status(rc);
}

int report_usage(const struct args *a, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "qctl: %s: ", a->cmd->name);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, " (try 'qctl %s --help')\n", a->cmd->name);
	return QX_USAGE;
}

int report_flush(const struct args *a)
{
	if (fflush(stdout) == EOF || ferror(stdout))
		return report_fail(a, QCTL_EWRITE);
	return QX_OK;
}
