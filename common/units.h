/*
 * units.h - the sizes and counts that command lines take (shmqd's options,
 * qctl's): decimal digits with an optional K, M or G, and N% where an
 * option allows a share.
 *
 * One parser for both programs, so that "64K" means the same to each.
 * Parsed by hand, never with strtoull: it skips blanks, quietly negates
 * "-1" and takes hex with base 0, none of which an option should accept.
 * Nothing here allocates or prints: callers word their own errors.
 */
#ifndef SHMQ_UNITS_H
#define SHMQ_UNITS_H

#include <stdint.h>

enum units_error {
	UNITS_OK,
	UNITS_SYNTAX,           /* not digits with an optional suffix */
	UNITS_NEGATIVE,         /* begins with '-' */
	UNITS_RANGE,            /* above the maximum asked for */
};

/* Decimal digits, then an optional K, M or G (powers of 1024), at most
 * `max`.  *out is set on UNITS_OK only. */
enum units_error units_size(const char *s, uint64_t max, uint64_t *out);

/* Whether `s` asks for a share: it ends in '%'. */
int units_is_percent(const char *s);
/* A share: decimal digits then '%', 1-100.  *pct is set on UNITS_OK. */
enum units_error units_percent(const char *s, uint64_t *pct);

#endif /* SHMQ_UNITS_H */
