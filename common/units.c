/*
 * units.c - sizes, counts and shares on command lines (see units.h).
 */
#include <string.h>

#include "units.h"

static int is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/* Digits, then K, M or G if `suffix`; stops at `end` (exclusive). */
static enum units_error number(const char *s, const char *end, int suffix,
			       uint64_t max, uint64_t *out)
{
	uint64_t v = 0;
	unsigned shift = 0;

	if (s < end && *s == '-')
		return UNITS_NEGATIVE;
	if (s == end || !is_digit(*s))
		return UNITS_SYNTAX;
	for (; s < end && is_digit(*s); s++) {
		unsigned d = (unsigned)(*s - '0');
		if (v > (UINT64_MAX - d) / 10)
			return UNITS_RANGE;
		v = v * 10 + d;
	}
	if (suffix && s < end) {
		switch (*s) {
		case 'K': case 'k': shift = 10; s++; break;
		case 'M': case 'm': shift = 20; s++; break;
		case 'G': case 'g': shift = 30; s++; break;
		}
	}
	if (s != end)
		return UNITS_SYNTAX;
	if (v > UINT64_MAX >> shift || (v << shift) > max)
		return UNITS_RANGE;
	*out = v << shift;
	return UNITS_OK;
}

enum units_error units_seconds(const char *s, uint64_t max_ns, uint64_t *ns)
{
	uint64_t whole = 0, frac = 0, v;
	int digits = 0, fdigits = 0, rest = 0;

	if (*s == '-')
		return UNITS_NEGATIVE;
	for (; is_digit(*s); s++, digits++) {
		whole = whole * 10 + (uint64_t)(*s - '0');
		if (whole > max_ns / 1000000000u)
			return UNITS_RANGE;
	}
	if (*s == '.') {
		for (s++; is_digit(*s); s++, digits++) {
			if (fdigits < 9) {
				frac = frac * 10 + (uint64_t)(*s - '0');
				fdigits++;
			} else if (*s != '0') {
				rest = 1;
			}
		}
	}
	if (digits == 0 || *s != '\0')
		return UNITS_SYNTAX;
	for (; fdigits < 9; fdigits++)
		frac *= 10;
	v = whole * 1000000000u;        /* no overflow: whole <= max / 1e9 */
	if (frac + (uint64_t)rest > max_ns - v)
		return UNITS_RANGE;
	*ns = v + frac + (uint64_t)rest;
	return UNITS_OK;
}

enum units_error units_size(const char *s, uint64_t max, uint64_t *out)
{
	return number(s, s + strlen(s), 1, max, out);
}

int units_is_percent(const char *s)
{
	size_t n = strlen(s);

	return n > 0 && s[n - 1] == '%';
}

enum units_error units_percent(const char *s, uint64_t *pct)
{
	size_t n = strlen(s);
	uint64_t v;
	enum units_error e;

	if (!units_is_percent(s))
		return UNITS_SYNTAX;
	e = number(s, s + n - 1, 0, 100, &v);
	if (e == UNITS_OK && v == 0)
		e = UNITS_RANGE;
	if (e == UNITS_OK)
		*pct = v;
	return e;
}
