/*
 * number.c - the numbers qctl's options take: sizes and counts (with K, M
 * or G) and seconds (with a fraction), both common/units.c's, which
 * shmqd's options share; octal modes.
 *
 * Owns the syntax of modes, and the words of every number's errors.
 * Parsed by hand, never with strtoull or strtod: those skip blanks,
 * quietly negate "-1" and take "inf", hex and exponents, none of which an
 * option should accept.
 */
#include "config.h"

#include <inttypes.h>
#include <limits.h>
#include <stdio.h>

#include "qctl.h"
#include "units.h"

enum num_error { NUM_OK, NUM_SYNTAX, NUM_NEGATIVE, NUM_RANGE };

/* Seconds with an optional fraction (units.h), to milliseconds rounded
 * up: a wait the user asked for must never become "do not wait" (0.0001
 * is 1 ms). */
static enum units_error parse_seconds(const char *s, int *ms)
{
	uint64_t ns;
	enum units_error e = units_seconds(s, (uint64_t)INT_MAX * 1000000u,
					   &ns);

	if (e == UNITS_OK)
		*ms = (int)((ns + 999999u) / 1000000u);
	return e;
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

int num_bad(const struct args *a, enum opt_id id, const char *why)
{
	const struct cmd_opt *o = a->src[id];
	char buf[CLEAN_MAX];

	if (o->letter)
		report(a, "invalid -%c '%s': %s", o->letter,
		       report_clean(a->opt[id], buf, sizeof(buf)), why);
	else
		report(a, "invalid --%s '%s': %s", o->name,
		       report_clean(a->opt[id], buf, sizeof(buf)), why);
	return QX_USAGE;
}

int num_opt_size(const struct args *a, enum opt_id id, uint64_t min,
		 uint64_t max, uint64_t *v)
{
	char why[64];
	uint64_t n = 0;
	enum units_error e;

	if (a->opt[id] == NULL)
		return QX_OK;
	e = units_size(a->opt[id], max, &n);
	if (e == UNITS_NEGATIVE)
		return num_bad(a, id, "must not be negative");
	if (e == UNITS_SYNTAX)
		return num_bad(a, id, "expected a number, optionally "
			       "with K, M or G");
	if (e == UNITS_RANGE) {
		snprintf(why, sizeof(why), "too large (at most %" PRIu64 ")",
			 max);
		return num_bad(a, id, why);
	}
	if (n < min) {
		snprintf(why, sizeof(why), "must be at least %" PRIu64, min);
		return num_bad(a, id, why);
	}
	*v = n;
	return QX_OK;
}

int num_opt_u32(const struct args *a, enum opt_id id, uint32_t min,
		uint32_t *v)
{
	uint64_t n = *v;
	int status = num_opt_size(a, id, min, UINT32_MAX, &n);

	*v = (uint32_t)n;
	return status;
}

int num_opt_seconds(const struct args *a, enum opt_id id, int *ms)
{
	if (a->opt[id] == NULL)
		return QX_OK;
	switch (parse_seconds(a->opt[id], ms)) {
	case UNITS_OK:
		return QX_OK;
	case UNITS_NEGATIVE:
		return num_bad(a, id, "must not be negative");
	case UNITS_SYNTAX:
		return num_bad(a, id, "expected seconds, e.g. 2 or 0.25");
	default:
		return num_bad(a, id, "too large (at most 2147483 seconds)");
	}
}

int num_opt_timeout(const struct args *a, int *ms)
{
	*ms = SHMQ_FOREVER;
	return num_opt_seconds(a, OPT_TIMEOUT, ms);
}

int num_opt_mode(const struct args *a, enum opt_id id, uint32_t *mode)
{
	if (a->opt[id] && parse_mode(a->opt[id], mode) != NUM_OK)
		return num_bad(a, id, "expected octal permission bits, "
			       "e.g. 0640");
	return QX_OK;
}
