/*
 * log.h - one line per event on stderr.
 *
 * Under systemd (JOURNAL_STREAM set) each line carries a <N> syslog
 * priority prefix so that journald files it at the right level.
 */
#ifndef SHMQD_LOG_H
#define SHMQD_LOG_H

/* verbose: 1 adds debug lines, 0 is normal, -1 silences everything. */
void log_init(int verbose);
/* Redirects stderr to `path` (appending); NULL keeps it. */
int log_open(const char *path);
void log_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif /* SHMQD_LOG_H */
