/*
 * log.c - one line per event on stderr, and the limit on warnings that
 * clients can cause (see log.h).
 *
 * Owns the shape of a line: time, pid and tag, or the journal's priority,
 * then the message.  A message may carry what clients chose (a command
 * name, a file name in /dev/shm), so it must never let one become two
 * lines, a forged priority or a terminal escape: every byte outside
 * printable ASCII, and the backslash, is written as \xNN (\\).
 */
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "log.h"

static int log_verbose;
static int log_journal;

void log_init(int verbose)
{
	log_verbose = verbose;
	log_journal = getenv("JOURNAL_STREAM") != NULL;
}

int log_open(const char *path)
{
	int fd;

	if (path == NULL)
		return 0;
	fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	if (fd < 0)
		return -1;
	dup2(fd, STDERR_FILENO);
	close(fd);
	log_journal = 0;
	return 0;
}

static void vlog(int prio, const char *tag, const char *fmt, va_list ap)
	__attribute__((format(printf, 3, 0)));

/* Appends msg to line[n..size-1) escaped; returns the new length. */
static size_t put_escaped(char *line, size_t n, size_t size, const char *msg)
{
	static const char hex[] = "0123456789abcdef";

	for (const unsigned char *p = (const unsigned char *)msg; *p; p++) {
		if (*p >= 0x20 && *p < 0x7f && *p != '\\') {
			if (n + 1 >= size)
				break;
			line[n++] = (char)*p;
		} else if (*p == '\\') {
			if (n + 2 >= size)
				break;
			line[n++] = '\\';
			line[n++] = '\\';
		} else {
			if (n + 4 >= size)
				break;
			line[n++] = '\\';
			line[n++] = 'x';
			line[n++] = hex[*p >> 4];
			line[n++] = hex[*p & 0xf];
		}
	}
	return n;
}

static void vlog(int prio, const char *tag, const char *fmt, va_list ap)
{
	char line[4096 + 64];   /* a deadlock names many processes */
	char msg[4096];
	int n = 0;

	if (log_journal) {
		n = snprintf(line, sizeof(line), "<%d>", prio);
	} else {
		struct timeval tv;
		struct tm tm;
		gettimeofday(&tv, NULL);
		localtime_r(&tv.tv_sec, &tm);
		n = (int)strftime(line, sizeof(line), "%Y-%m-%d %H:%M:%S", &tm);
		n += snprintf(line + n, sizeof(line) - (size_t)n,
			      ".%03ld shmqd[%ld]: %s", (long)tv.tv_usec / 1000,
			      (long)getpid(), tag);
	}
	if (n < 0 || (size_t)n >= sizeof(line))
		n = 0;
	vsnprintf(msg, sizeof(msg), fmt, ap);
	/* One write per line keeps lines whole when several processes
	 * share the stream. */
	size_t len = put_escaped(line, (size_t)n, sizeof(line) - 1, msg);
	line[len++] = '\n';
	if (write(STDERR_FILENO, line, len) < 0) {
		/* Nowhere left to report it. */
	}
}

#define DEFINE_LOG(fn, prio, tag, cond)                                      \
	void fn(const char *fmt, ...)                                        \
	{                                                                    \
		va_list ap;                                                  \
		if (!(cond) || log_verbose < 0)                              \
			return;                                              \
		va_start(ap, fmt);                                           \
		vlog(prio, tag, fmt, ap);                                    \
		va_end(ap);                                                  \
	}

DEFINE_LOG(log_error, 3, "error: ", 1)
DEFINE_LOG(log_warn, 4, "warning: ", 1)
DEFINE_LOG(log_info, 6, "", 1)
DEFINE_LOG(log_debug, 7, "debug: ", log_verbose)

int log_limit_recent(const struct log_limit *l)
{
	return l->said &&
	       mono_ns() - l->last_ns < LOG_LIMIT_SECONDS * 1000000000ull;
}

void log_warn_limited(struct log_limit *l, const char *fmt, ...)
{
	char msg[900];
	va_list ap;

	if (log_limit_recent(l)) {
		l->dropped++;
		return;
	}
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (l->dropped)
		log_warn("%s (and %lu more like it not logged since the last)",
			 msg, l->dropped);
	else
		log_warn("%s", msg);
	l->said = 1;
	l->last_ns = mono_ns();
	l->dropped = 0;
}
