/*
 * log.h - one line per event on stderr, and the limit on warnings that
 * clients can cause.
 *
 * Under systemd (JOURNAL_STREAM set) each line carries a <N> syslog
 * priority prefix so that journald files it at the right level.
 */
#ifndef SHMQD_LOG_H
#define SHMQD_LOG_H

#include <stdint.h>

/* verbose: 1 adds debug lines, 0 is normal, -1 silences everything. */
void log_init(int verbose);
/* Redirects stderr to `path` (appending); NULL keeps it. */
int log_open(const char *path);
void log_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* A warning a client can cause at will (a refusal, a bad packet) is
 * logged at most once a minute per `struct log_limit` (one for each kind
 * of event, kept where it is raised; zeroed to start), so that a client
 * retrying in a loop cannot flood the log; the next line logged says how
 * many were left out meanwhile. */
#define LOG_LIMIT_SECONDS 60
struct log_limit {
	uint64_t last_ns;       /* mono_ns() of the last line */
	unsigned long dropped;  /* left out since */
	int said;               /* a line was logged */
};
void log_warn_limited(struct log_limit *l, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Whether a line went through `l` less than LOG_LIMIT_SECONDS ago. */
int log_limit_recent(const struct log_limit *l);

#endif /* SHMQD_LOG_H */
