/*
 * units.h - the sizes, counts and times that command lines take (shmqd's
 * options, qctl's, shmq-bridge's): decimal digits with an optional K, M or G, N% where an
 * option allows a share, and seconds with an optional fraction.
 *
 * One parser for every program, so that "64K" or "0.5" means the same to
 * each.  Parsed by hand, never with strtoull or strtod: they skip blanks,
 * quietly negate "-1" and take hex, "inf" and exponents, none of which an
 * option should accept.
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

/* Seconds: digits, optionally '.' and more digits (at least one digit in
 * all), in nanoseconds, at most `max_ns`.  Digits past the ninth decimal
 * round up: a wait that was asked for never becomes none. */
enum units_error units_seconds(const char *s, uint64_t max_ns, uint64_t *ns);

#endif /* SHMQ_UNITS_H */
