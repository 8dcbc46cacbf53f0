/*
 * options.c - shmq-bridge's command line: the URL and the options.
 *
 * Owns the grammar of `shmq-bridge out|in ...` and of the URL
 * nats://[USER:PASS@]HOST[:PORT]/STREAM, and the defaults.  It only
 * parses and checks: it never connects anywhere, and anything it refuses
 * is one line on stderr and status 2.
 */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bridge.h"
#include "units.h"

#define DEFAULT_MAX_MSGS 100000
#define DEFAULT_MAX_BYTES (1ll << 30)
#define DEFAULT_DUPE_WINDOW 120
#define DEFAULT_INFLIGHT 256
#define DEFAULT_BATCH 256
#define DEFAULT_ACK_WAIT 30
#define DEFAULT_DURABLE "shmq-bridge"

void opts_usage(FILE *f)
{
	fprintf(f,
"usage: shmq-bridge out LOCAL nats://HOST:PORT/STREAM [--create]\n"
"                   [--max-msgs N] [--max-bytes B] [--dupe-window SECONDS]\n"
"                   [--inflight N]\n"
"       shmq-bridge in nats://HOST:PORT/STREAM LOCAL [--durable NAME]\n"
"                   [--batch N] [--ack-wait SECONDS]\n"
"       shmq-bridge --help | --version\n"
"\n"
"out  consumes the local queue LOCAL and publishes each message to the\n"
"     JetStream stream STREAM (subject STREAM), removing it from LOCAL only\n"
"     once the server has stored it.  Message ids (Nats-Msg-Id) name the\n"
"     queue and the message's position, so a bridge killed and restarted\n"
"     publishes nothing twice within the stream's duplicate window.  At\n"
"     LOCAL's end of stream it publishes an end marker and exits 0, or 10\n"
"     if a producer of LOCAL was lost.\n"
"     --create          create STREAM if missing: a work queue, file\n"
"                       storage, discard new when full, with:\n"
"     --max-msgs N      at most N messages (default %d)\n"
"     --max-bytes B     at most B bytes, K/M/G suffixes (default 1G)\n"
"     --dupe-window S   duplicate window, seconds (default %d)\n"
"     --inflight N      publishes awaiting the server at once (default %d)\n"
"     An existing stream is used as it is, but refused if it could lose\n"
"     messages or differs from a limit given.\n"
"in   fetches from STREAM through the durable pull consumer NAME and puts\n"
"     each message into LOCAL, acknowledging it once the put committed.\n"
"     At the end marker, once everything before it is acknowledged, it\n"
"     closes LOCAL (as with a lost producer if the marker says so) and\n"
"     exits 0 or 10.\n"
"     --durable NAME    the consumer (default %s); several bridges on\n"
"                       one consumer share the work\n"
"     --batch N         unacknowledged messages at most, 2 or more\n"
"                       (default %d)\n"
"     --ack-wait S      a new consumer's ack wait, seconds (default %d)\n"
"     An existing consumer is used as it is, but refused if it could lose\n"
"     messages or differs from a --batch or --ack-wait given.\n"
"\n"
"Exit: 0 end of stream, 1 error, 2 usage, 4 LOCAL closed under the in\n"
"bridge, 6 no such queue or stream, 7 permission denied, 8 shmqd or NATS\n"
"server unreachable, 9 message too big, 10 end of stream, producer lost.\n",
		DEFAULT_MAX_MSGS, DEFAULT_DUPE_WINDOW, DEFAULT_INFLIGHT,
		DEFAULT_DURABLE, DEFAULT_BATCH, DEFAULT_ACK_WAIT);
}

static int usage_error(const char *fmt, ...)
	__attribute__((format(printf, 1, 2)));
static int usage_error(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "shmq-bridge: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, " (shmq-bridge --help)\n");
	return BX_USAGE;
}

/* JetStream stream names become our subject too: no dots, no wildcards,
 * no spaces; we keep to [A-Za-z0-9_-]. */
static int stream_name_ok(const char *s, size_t n)
{
	if (n == 0 || n > BRIDGE_STREAM_MAX)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)s[i]) && s[i] != '_' && s[i] != '-')
			return 0;
	return 1;
}

/*
 * The URL as messages show it: whatever stands before an '@' in the
 * authority (user:password, or a token) becomes "***".  Every message of
 * the bridge, the parser's own included, names the URL this way; the URL
 * as given goes to libnats only.
 */
void opts_redact(const char *url, char *out, size_t size)
{
	const char *auth = strstr(url, "://");
	const char *end, *at = NULL;

	auth = auth ? auth + 3 : url;
	end = auth + strcspn(auth, "/");
	for (const char *p = auth; p < end; p++)
		if (*p == '@')
			at = p;
	if (at == NULL)
		snprintf(out, size, "%s", url);
	else
		snprintf(out, size, "%.*s***%s", (int)(auth - url), url, at);
}

int opts_parse_url(const char *url, struct bridge_opts *o)
{
	char shown[sizeof(o->shown)];
	static const char scheme[] = "nats://";
	const char *auth, *slash, *host, *end, *colon;

	opts_redact(url, shown, sizeof(shown));
	if (strncmp(url, scheme, sizeof(scheme) - 1) != 0)
		return usage_error("%s: not a nats://HOST:PORT/STREAM URL", shown);
	auth = url + sizeof(scheme) - 1;
	slash = strchr(auth, '/');
	if (slash == NULL || slash == auth)
		return usage_error("%s: not a nats://HOST:PORT/STREAM URL", shown);
	if (!stream_name_ok(slash + 1, strlen(slash + 1)))
		return usage_error("%s: the stream name must be 1-64 of "
				   "[A-Za-z0-9_-]", shown);
	/* user:pass@ goes through to libnats as it is. */
	host = auth;
	for (const char *p = auth; p < slash; p++)
		if (*p == '@')
			host = p + 1;
	end = slash;
	size_t hostlen = host < end ? (size_t)(end - host) : 0;
	if (hostlen == 0)
		return usage_error("%s: no host", shown);
	if (*host == '[') {                     /* [IPv6]:port */
		const char *rb = memchr(host, ']', hostlen);
		if (rb == NULL || rb == host + 1)
			return usage_error("%s: bad host", shown);
		colon = rb + 1 < end && rb[1] == ':' ? rb + 1 : NULL;
		if (colon == NULL && rb + 1 != end)
			return usage_error("%s: bad host", shown);
	} else {
		colon = memchr(host, ':', hostlen);
		if (colon == host)
			return usage_error("%s: no host", shown);
	}
	if (colon) {
		const char *p = colon + 1;
		long port = 0;
		if (p == end)
			return usage_error("%s: bad port", shown);
		for (; p < end; p++) {
			if (!isdigit((unsigned char)*p) || port > 65535)
				return usage_error("%s: bad port", shown);
			port = port * 10 + (*p - '0');
		}
		if (port < 1 || port > 65535)
			return usage_error("%s: bad port", shown);
	}
	for (const char *p = auth; p < end; p++)
		if (isspace((unsigned char)*p) || *p == ',')
			return usage_error("%s: bad host", shown);
	if ((size_t)(slash - url) >= sizeof(o->server))
		return usage_error("%s: URL too long", shown);
	memcpy(o->server, url, (size_t)(slash - url));
	o->server[slash - url] = '\0';
	strcpy(o->stream, slash + 1);
	o->url = url;
	memcpy(o->shown, shown, sizeof(o->shown));
	return -1;
}

/* Decimal digits and, if `suffixes`, an optional K, M or G (powers of
 * 1024): common/units.c, as shmqd and qctl parse them. */
static int parse_count(const char *s, int suffixes, int64_t max,
		       int64_t *out)
{
	uint64_t v;

	if (!suffixes && s[strspn(s, "0123456789")] != '\0')
		return -1;
	if (units_size(s, (uint64_t)max, &v) != UNITS_OK)
		return -1;
	*out = (int64_t)v;
	return 0;
}

/* The option at argv[*i] takes the next word as its number. */
static int take_number(int argc, char **argv, int *i, int suffixes,
		       int64_t min, int64_t max, int64_t *out)
{
	const char *name = argv[*i];

	if (*i + 1 >= argc)
		return usage_error("%s needs a value", name);
	(*i)++;
	if (parse_count(argv[*i], suffixes, max, out) != 0 || *out < min)
		return usage_error("%s: bad number '%s'", name, argv[*i]);
	return -1;
}

int opts_parse(int argc, char **argv, struct bridge_opts *o)
{
	const char *pos[2];
	int npos = 0, only_pos = 0, rc;
	int64_t v;

	o->max_msgs = DEFAULT_MAX_MSGS;
	o->max_bytes = DEFAULT_MAX_BYTES;
	o->dupe_window_s = DEFAULT_DUPE_WINDOW;
	o->inflight = DEFAULT_INFLIGHT;
	o->durable = DEFAULT_DURABLE;
	o->batch = DEFAULT_BATCH;
	o->ack_wait_s = DEFAULT_ACK_WAIT;

	for (int i = 0; i < argc; i++) {
		const char *a = argv[i];
		int out_only = 0, in_only = 0;

		if (only_pos || a[0] != '-' || a[1] == '\0') {
			if (npos == 2)
				return usage_error("unexpected argument '%s'", a);
			pos[npos++] = a;
			continue;
		}
		if (strcmp(a, "--") == 0) {
			only_pos = 1;
			continue;
		}
		rc = -1;
		if (strcmp(a, "--create") == 0) {
			o->create = 1;
			out_only = 1;
		} else if (strcmp(a, "--max-msgs") == 0) {
			rc = take_number(argc, argv, &i, 1, 1, INT64_MAX,
					 &o->max_msgs);
			o->given |= GIVEN_MAX_MSGS;
			out_only = 1;
		} else if (strcmp(a, "--max-bytes") == 0) {
			rc = take_number(argc, argv, &i, 1, 1, INT64_MAX,
					 &o->max_bytes);
			o->given |= GIVEN_MAX_BYTES;
			out_only = 1;
		} else if (strcmp(a, "--dupe-window") == 0) {
			rc = take_number(argc, argv, &i, 0, 1, 86400 * 365,
					 &o->dupe_window_s);
			o->given |= GIVEN_DUPE_WINDOW;
			out_only = 1;
		} else if (strcmp(a, "--inflight") == 0) {
			rc = take_number(argc, argv, &i, 0, 1, 65536, &v);
			o->inflight = (int)v;
			out_only = 1;
		} else if (strcmp(a, "--durable") == 0) {
			if (i + 1 >= argc)
				return usage_error("%s needs a value", a);
			o->durable = argv[++i];
			if (!stream_name_ok(o->durable, strlen(o->durable)))
				return usage_error("--durable '%s': 1-64 of "
						   "[A-Za-z0-9_-]", o->durable);
			in_only = 1;
		} else if (strcmp(a, "--batch") == 0) {
			/* 2 at least: the end marker is held unacknowledged
			 * while what may follow it is fetched. */
			rc = take_number(argc, argv, &i, 0, 2, 65536, &v);
			o->batch = (int)v;
			o->given |= GIVEN_BATCH;
			in_only = 1;
		} else if (strcmp(a, "--ack-wait") == 0) {
			rc = take_number(argc, argv, &i, 0, 1, 86400,
					 &o->ack_wait_s);
			o->given |= GIVEN_ACK_WAIT;
			in_only = 1;
		} else {
			return usage_error("unknown option '%s'", a);
		}
		if (rc != -1)
			return rc;
		if ((out_only && !o->out) || (in_only && o->out))
			return usage_error("%s: not an option of this "
					   "direction", a);
	}
	if (npos != 2)
		return usage_error("%s", o->out
			? "out needs LOCAL and nats://HOST:PORT/STREAM"
			: "in needs nats://HOST:PORT/STREAM and LOCAL");
	o->local = o->out ? pos[0] : pos[1];
	if (shmq_check_name(o->local) != SHMQ_OK)
		return usage_error("'%s': a queue name is 1-255 of "
				   "[A-Za-z0-9._-], not starting with '.'",
				   o->local);
	return opts_parse_url(o->out ? pos[1] : pos[0], o);
}
