/*
 * fields.c - one set of fields on standard output, either as aligned
 * "key: value" lines or as one JSON object, and the words for a queue's
 * state.
 *
 * Owns qctl's JSON: whatever bytes a value holds, the output stays valid
 * JSON (every byte outside printable ASCII is escaped).  It never decides
 * which fields a command shows: the commands do.
 */
#include "config.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "qctl.h"

void fields_json_string(const char *s)
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

static void key(struct fields *f, const char *k)
{
	size_t len = strlen(k);

	if (f->json) {
		fputs(f->n ? "," : "{", stdout);
		fields_json_string(k);
		putchar(':');
	} else {
		printf("%s:%*s", k, len < 16 ? (int)(16 - len) : 1, "");
	}
	f->n++;
}

static void line_end(const struct fields *f)
{
	if (!f->json)
		putchar('\n');
}

void fields_str(struct fields *f, const char *k, const char *val)
{
	key(f, k);
	if (f->json)
		fields_json_string(val);
	else
		fputs(val, stdout);
	line_end(f);
}

void fields_str_or_none(struct fields *f, const char *k, const char *val)
{
	if (val && *val) {
		fields_str(f, k, val);
		return;
	}
	key(f, k);
	fputs(f->json ? "null" : "-", stdout);
	line_end(f);
}

void fields_u64(struct fields *f, const char *k, uint64_t val)
{
	key(f, k);
	printf("%" PRIu64, val);
	line_end(f);
}

void fields_limit(struct fields *f, const char *k, uint64_t val)
{
	if (val != SHMQ_UNLIMITED) {
		fields_u64(f, k, val);
		return;
	}
	key(f, k);
	fputs(f->json ? "null" : "unlimited", stdout);
	line_end(f);
}

void fields_bool(struct fields *f, const char *k, int val)
{
	key(f, k);
	if (f->json)
		fputs(val ? "true" : "false", stdout);
	else
		fputs(val ? "yes" : "no", stdout);
	line_end(f);
}

void fields_time(struct fields *f, const char *k, int64_t ns)
{
	char buf[64];
	struct tm tm;
	time_t s = (time_t)(ns / 1000000000);
	size_t n;

	if (ns <= 0) {
		key(f, k);
		fputs(f->json ? "null" : "-", stdout);
		line_end(f);
		return;
	}
	n = gmtime_r(&s, &tm) ? strftime(buf, sizeof(buf),
					  "%Y-%m-%dT%H:%M:%S", &tm) : 0;
	if (n == 0)
		snprintf(buf, sizeof(buf), "@%" PRId64, ns);
	else
		snprintf(buf + n, sizeof(buf) - n, ".%03dZ",
			 (int)(ns % 1000000000 / 1000000));
	fields_str(f, k, buf);
}

void fields_end(const struct fields *f)
{
	if (f->json)
		putchar('}');
}

const char *fields_state_name(int state)
{
	switch (state) {
	case SHMQ_STATE_OPEN:       return "open";
	case SHMQ_STATE_CLOSED:     return "closed";
	case SHMQ_STATE_CLOSED_NOW: return "closed-now";
	default:                    return "unknown";
	}
}
