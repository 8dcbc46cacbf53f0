/*
 * link.c - the NATS side of a bridge: one connection and its JetStream
 * context, the stream, the consumer, and what an error from them means.
 *
 * Owns connecting (a server that does not answer at start is status 8,
 * one line), reconnecting forever with a capped exponential back-off,
 * and saying so: one line when the connection is lost and one when it
 * is back, never a line per attempt.  It never touches the local queue
 * and never decides what to do with a message: out.c and in.c do.
 *
 * libnats calls the connection callbacks from its own threads; they only
 * print and flip `down`.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bridge.h"

#define CONNECT_TIMEOUT_MS 2000
#define PING_INTERVAL_MS 5000   /* a silent server is noticed in ~15 s */
#define API_WAIT_MS 5000
#define RECONNECT_MIN_MS 50
#define RECONNECT_MAX_MS 2000

void backoff_reset(struct backoff *b)
{
	b->ms = 0;
}

void backoff_wait(struct backoff *b)
{
	b->ms = b->ms ? b->ms * 2 : 10;
	if (b->ms > 2000)
		b->ms = 2000;
	bridge_nap(b->ms);
}

/* Called by libnats after it tried every server once more. */
static int64_t reconnect_delay(natsConnection *nc, int attempts, void *arg)
{
	int64_t ms = RECONNECT_MIN_MS;

	(void)nc;
	(void)arg;
	for (int i = 1; i < attempts && ms < RECONNECT_MAX_MS; i++)
		ms *= 2;
	if (ms > RECONNECT_MAX_MS)
		ms = RECONNECT_MAX_MS;
	return ms + rand() % (ms / 4 + 1);      /* jitter: no herd */
}

/*
 * What the connection callbacks use lives here, not in the caller's
 * struct link: libnats may run a callback after the connection is closed
 * (the close itself reports a disconnect), when that struct is gone.
 * One connection per process.
 */
static char cb_url[BRIDGE_SERVER_MAX + BRIDGE_STREAM_MAX + 2];
static volatile int cb_down;            /* a loss was said, no return yet */
static volatile int cb_closing;         /* we close: nothing to say */

static void on_disconnected(natsConnection *nc, void *arg)
{
	(void)nc;
	(void)arg;
	if (cb_closing || cb_down || bridge_stop)
		return;
	cb_down = 1;
	bridge_say("%s: lost the connection to the NATS server; "
		   "reconnecting", cb_url);
}

static void on_reconnected(natsConnection *nc, void *arg)
{
	(void)nc;
	(void)arg;
	if (cb_closing || !cb_down)
		return;
	cb_down = 0;
	bridge_say("%s: reconnected", cb_url);
}

int link_open(struct link *l, const struct bridge_opts *o,
	      jsPubAckHandler on_ack, void *closure)
{
	natsOptions *no = NULL;
	jsOptions jo;
	natsStatus s;

	memset(l, 0, sizeof(*l));
	l->o = o;
	snprintf(cb_url, sizeof(cb_url), "%s", o->shown);
	srand((unsigned)time(NULL) ^ (unsigned)getpid());
	s = natsOptions_Create(&no);
	if (s == NATS_OK)
		s = natsOptions_SetURL(no, o->server);
	if (s == NATS_OK)
		s = natsOptions_SetName(no, o->out ? "shmq-bridge out"
						   : "shmq-bridge in");
	if (s == NATS_OK)
		s = natsOptions_SetTimeout(no, CONNECT_TIMEOUT_MS);
	if (s == NATS_OK)
		s = natsOptions_SetMaxReconnect(no, -1);     /* forever */
	if (s == NATS_OK)
		s = natsOptions_SetCustomReconnectDelay(no, reconnect_delay,
							NULL);
	if (s == NATS_OK)
		s = natsOptions_SetPingInterval(no, PING_INTERVAL_MS);
	if (s == NATS_OK)
		s = natsOptions_SetMaxPingsOut(no, 2);
	if (s == NATS_OK)
		s = natsOptions_SetDisconnectedCB(no, on_disconnected, NULL);
	if (s == NATS_OK)
		s = natsOptions_SetReconnectedCB(no, on_reconnected, NULL);
	if (s == NATS_OK)
		s = natsConnection_Connect(&l->nc, no);
	natsOptions_Destroy(no);
	if (s != NATS_OK) {
		if (s == NATS_CONNECTION_AUTH_FAILED ||
		    s == NATS_NOT_PERMITTED) {
			bridge_say("%s: the NATS server refused us: %s",
				   o->shown, natsStatus_GetText(s));
			return BX_ACCES;
		}
		bridge_say("%s: no NATS server answers (%s)", o->shown,
			   natsStatus_GetText(s));
		return BX_UNREACH;
	}
	jsOptions_Init(&jo);
	jo.Wait = API_WAIT_MS;
	jo.PublishAsync.AckHandler = on_ack;
	jo.PublishAsync.AckHandlerClosure = closure;
	s = natsConnection_JetStream(&l->js, l->nc, &jo);
	if (s != NATS_OK) {
		bridge_say("%s: %s", o->shown, natsStatus_GetText(s));
		link_close(l);
		return BX_ERROR;
	}
	return -1;
}

void link_close(struct link *l)
{
	cb_closing = 1;         /* the close is no disconnect to report */
	if (l->js)
		jsCtx_Destroy(l->js);
	l->js = NULL;
	if (l->nc) {
		natsConnection_Close(l->nc);
		natsConnection_Destroy(l->nc);
	}
	l->nc = NULL;
}

int link_connected(struct link *l)
{
	return natsConnection_Status(l->nc) == NATS_CONN_STATUS_CONNECTED;
}

int link_wait_up(struct link *l)
{
	struct backoff b = { 0 };

	while (!link_connected(l)) {
		if (bridge_stop)
			return -1;
		backoff_wait(&b);
	}
	return bridge_stop ? -1 : 0;
}

int link_transient(natsStatus s)
{
	switch (s) {
	case NATS_TIMEOUT:
	case NATS_NO_RESPONDERS:        /* JetStream not up yet */
	case NATS_CONNECTION_CLOSED:
	case NATS_CONNECTION_DISCONNECTED:
	case NATS_IO_ERROR:
	case NATS_STALE_CONNECTION:
	case NATS_INSUFFICIENT_BUFFER:  /* the reconnect buffer is full */
	case NATS_NOT_YET_CONNECTED:
	case NATS_NO_SERVER:
		return 1;
	default:
		return 0;
	}
}

int link_stream_full(natsStatus s, jsErrCode jerr, const char *text)
{
	if (s != NATS_ERR)
		return 0;
	if (jerr == JSStreamStoreFailedErr ||
	    jerr == JSInsufficientResourcesErr ||
	    jerr == JSStorageResourcesExceededErr ||
	    jerr == JSMemoryResourcesExceededErr ||
	    jerr == JSAccountResourcesExceededErr)
		return 1;
	return text && strstr(text, "maximum") && strstr(text, "exceeded");
}

int link_too_big(natsStatus s, jsErrCode jerr)
{
	return s == NATS_MAX_PAYLOAD || jerr == JSStreamMessageExceedsMaximumErr;
}

/* One line for a JetStream API failure; the exit status it means. */
static int api_failure(struct link *l, const char *what, natsStatus s,
		       jsErrCode jerr)
{
	const char *detail = nats_GetLastError(NULL);

	if (s == NATS_NO_RESPONDERS) {
		bridge_say("%s: %s: JetStream is not enabled on the server",
			   l->o->shown, what);
		return BX_ERROR;
	}
	bridge_say("%s: %s: %s%s%s (code %d)", l->o->shown, what,
		   natsStatus_GetText(s), detail && *detail ? ": " : "",
		   detail ? detail : "", (int)jerr);
	return s == NATS_NOT_PERMITTED ? BX_ACCES
	       : link_transient(s) ? BX_UNREACH : BX_ERROR;
}

static void fill_room(const jsStreamInfo *si, struct stream_room *room)
{
	room->max_msgs = si->Config->MaxMsgs;
	room->max_bytes = si->Config->MaxBytes;
	room->msgs = (int64_t)si->State.Msgs;
	room->bytes = (int64_t)si->State.Bytes;
	room->discard_new = si->Config->Discard == js_DiscardNew;
}

/*
 * An existing stream is used as it is, but only if it keeps what we
 * promise: nothing lost (no interest retention, which drops a message no
 * consumer is interested in yet; no discarding of old messages when
 * full) and the limits the command line asked for, if it asked.  A
 * mismatch is one line and status 1: the stream is the operator's to
 * change, not ours.
 */
/* "N things", or "no limit" for the -1 (or 0) the server means by none. */
static const char *limit_text(char *buf, size_t size, int64_t v,
			      const char *unit)
{
	if (v <= 0)
		snprintf(buf, size, "no limit of %s", unit);
	else
		snprintf(buf, size, "at most %" PRId64 " %s", v, unit);
	return buf;
}

static int stream_fits(struct link *l, const jsStreamConfig *c)
{
	const struct bridge_opts *o = l->o;
	const char *why = NULL;
	char buf[200], a[64];

	if (c->Retention == js_InterestPolicy)
		why = "its retention is 'interest': a message no consumer is "
		      "interested in yet is dropped (use work-queue retention)";
	else if (c->Retention != js_WorkQueuePolicy)
		why = "its retention is 'limits': acknowledged messages stay, so "
		      "it fills up for good or grows without bound (use "
		      "work-queue retention)";
	else if (c->Discard != js_DiscardNew &&
		 (c->MaxMsgs > 0 || c->MaxBytes > 0))
		why = "it discards old messages when full: they would be lost "
		      "(use discard new)";
	else if (c->MaxMsgsPerSubject > 0 && !c->DiscardNewPerSubject)
		why = "it keeps a number of messages per subject and discards "
		      "the old ones beyond it: they would be lost";
	else if (c->MaxAge > 0)
		why = "its messages expire (max age): one not consumed in time "
		      "would be lost";
	else if (c->Storage == js_MemoryStorage)
		why = "it is kept in memory: a server restart would lose what "
		      "it holds (use file storage)";
	else if ((o->given & GIVEN_MAX_MSGS) && c->MaxMsgs != o->max_msgs) {
		snprintf(buf, sizeof(buf), "it has %s, not --max-msgs %" PRId64,
			 limit_text(a, sizeof(a), c->MaxMsgs, "messages"),
			 o->max_msgs);
		why = buf;
	} else if ((o->given & GIVEN_MAX_BYTES) &&
		   c->MaxBytes != o->max_bytes) {
		snprintf(buf, sizeof(buf), "it has %s, not --max-bytes %" PRId64,
			 limit_text(a, sizeof(a), c->MaxBytes, "bytes"),
			 o->max_bytes);
		why = buf;
	} else if ((o->given & GIVEN_DUPE_WINDOW) &&
		   c->Duplicates != o->dupe_window_s * 1000000000ll) {
		snprintf(buf, sizeof(buf), "its duplicate window is %g s, not "
			 "--dupe-window %" PRId64, (double)c->Duplicates / 1e9,
			 o->dupe_window_s);
		why = buf;
	}
	if (why == NULL)
		return -1;
	bridge_say("%s: the stream exists, but %s", o->shown, why);
	return BX_ERROR;
}

/* A create the server refused, kept (its text too: the lookup that
 * follows, in case another bridge created it meanwhile, replaces libnats's
 * last error) to be said if that lookup fails as well. */
struct refusal {
	natsStatus s;
	jsErrCode jerr;
	char why[256];
};

static void refusal_keep(struct refusal *r, natsStatus s, jsErrCode jerr)
{
	const char *d = nats_GetLastError(NULL);

	r->s = s;
	r->jerr = jerr;
	snprintf(r->why, sizeof(r->why), "%s", d ? d : "");
}

/* One line; the exit status it means. */
static int refusal_say(struct link *l, const struct refusal *r,
		       const char *what, const char *name)
{
	bridge_say("%s: creating %s '%s': %s%s%s (code %d)", l->o->shown, what,
		   name, natsStatus_GetText(r->s), r->why[0] ? ": " : "",
		   r->why, (int)r->jerr);
	return r->s == NATS_NOT_PERMITTED ? BX_ACCES
	       : link_transient(r->s) ? BX_UNREACH : BX_ERROR;
}

static int stream_missing(natsStatus s, jsErrCode jerr)
{
	return s == NATS_NOT_FOUND || jerr == JSStreamNotFoundErr;
}

int link_stream(struct link *l, int create, struct stream_room *room)
{
	const struct bridge_opts *o = l->o;
	jsStreamInfo *si = NULL;
	jsErrCode jerr = 0;
	natsStatus s = js_GetStreamInfo(&si, l->js, o->stream, NULL, &jerr);

	if (stream_missing(s, jerr) && create) {
		jsStreamConfig cfg;

		jsStreamConfig_Init(&cfg);
		cfg.Name = o->stream;           /* subject: the name */
		cfg.Retention = js_WorkQueuePolicy;
		cfg.Discard = js_DiscardNew;
		cfg.Storage = js_FileStorage;
		cfg.MaxMsgs = o->max_msgs;
		cfg.MaxBytes = o->max_bytes;
		cfg.Duplicates = o->dupe_window_s * 1000000000ll;
		jerr = 0;
		s = js_AddStream(&si, l->js, &cfg, NULL, &jerr);
		if (s != NATS_OK) {
			/* Another bridge may have created it meanwhile; if
			 * not, the server's refusal is what to say. */
			struct refusal r;

			refusal_keep(&r, s, jerr);
			jerr = 0;
			s = js_GetStreamInfo(&si, l->js, o->stream, NULL,
					     &jerr);
			if (s != NATS_OK)
				return refusal_say(l, &r, "stream", o->stream);
		}
	}
	if (stream_missing(s, jerr)) {
		bridge_say("%s: no such stream%s", o->shown,
			   o->out ? " (out --create creates it)" : "");
		return BX_NOENT;
	}
	if (s != NATS_OK)
		return api_failure(l, "stream", s, jerr);
	if (o->out) {
		/* We publish to the subject named after the stream. */
		int takes = si->Config->SubjectsLen == 0;
		for (int i = 0; i < si->Config->SubjectsLen; i++)
			if (strcmp(si->Config->Subjects[i], o->stream) == 0)
				takes = 1;
		if (!takes) {
			bridge_say("%s: the stream does not take subject '%s', "
				   "the one shmq-bridge publishes to",
				   o->shown, o->stream);
			jsStreamInfo_Destroy(si);
			return BX_ERROR;
		}
		int rc = stream_fits(l, si->Config);
		if (rc != -1) {
			jsStreamInfo_Destroy(si);
			return rc;
		}
	}
	if (room)
		fill_room(si, room);
	jsStreamInfo_Destroy(si);
	return -1;
}

int link_room(struct link *l, struct stream_room *room)
{
	jsStreamInfo *si = NULL;
	jsErrCode jerr = 0;
	natsStatus s = js_GetStreamInfo(&si, l->js, l->o->stream, NULL,
					&jerr);

	if (s != NATS_OK)
		return -1;
	fill_room(si, room);
	jsStreamInfo_Destroy(si);
	return 0;
}

/* The same for an existing consumer: a pull consumer with explicit acks
 * that never gives up on a message, with the settings asked for. */
static int consumer_fits(struct link *l, const jsConsumerConfig *c)
{
	const struct bridge_opts *o = l->o;
	const char *why = NULL;
	char buf[160];

	if (c->AckPolicy != js_AckExplicit || c->DeliverSubject != NULL)
		why = "is not a pull consumer with explicit acks";
	else if (c->MaxDeliver > 0) {
		snprintf(buf, sizeof(buf), "gives up on a message after %" PRId64
			 " deliveries (MaxDeliver): it would be lost",
			 c->MaxDeliver);
		why = buf;
	} else if (c->FilterSubject && *c->FilterSubject &&
		   strcmp(c->FilterSubject, o->stream) != 0) {
		snprintf(buf, sizeof(buf), "takes only subject '%.64s', not "
			 "'%s'", c->FilterSubject, o->stream);
		why = buf;
	} else if (c->MaxAckPending == 1) {
		why = "lets one message only be unacknowledged: the bridge "
		      "holds the end marker unacknowledged while it fetches "
		      "what may follow it, and needs 2";
	} else if ((o->given & GIVEN_BATCH) && c->MaxAckPending != o->batch) {
		char a[64];
		if (c->MaxAckPending > 0)
			snprintf(a, sizeof(a), "%" PRId64, c->MaxAckPending);
		snprintf(buf, sizeof(buf), "lets %s messages be "
			 "unacknowledged, not --batch %d",
			 c->MaxAckPending > 0 ? a : "any number of", o->batch);
		why = buf;
	} else if ((o->given & GIVEN_ACK_WAIT) &&
		   c->AckWait != o->ack_wait_s * 1000000000ll) {
		snprintf(buf, sizeof(buf), "has an ack wait of %g s, not "
			 "--ack-wait %" PRId64, (double)c->AckWait / 1e9,
			 o->ack_wait_s);
		why = buf;
	}
	if (why == NULL)
		return -1;
	bridge_say("%s: consumer '%s' exists, but %s", o->shown, o->durable,
		   why);
	return BX_ERROR;
}

int link_consumer(struct link *l, natsSubscription **sub,
		  struct consumer_limits *lim)
{
	const struct bridge_opts *o = l->o;
	jsConsumerInfo *ci = NULL;
	jsSubOptions so;
	jsErrCode jerr = 0;
	int rc;
	natsStatus s = js_GetConsumerInfo(&ci, l->js, o->stream, o->durable,
					  NULL, &jerr);

	if (s == NATS_NOT_FOUND || jerr == JSConsumerNotFoundErr) {
		jsConsumerConfig cc;

		/* Created here, not by js_PullSubscribe: a consumer that
		 * call creates is deleted when the subscription ends. */
		jsConsumerConfig_Init(&cc);
		cc.Durable = o->durable;
		cc.AckPolicy = js_AckExplicit;
		cc.DeliverPolicy = js_DeliverAll;
		cc.AckWait = o->ack_wait_s * 1000000000ll;
		cc.MaxAckPending = o->batch;
		cc.MaxDeliver = -1;
		jerr = 0;
		s = js_AddConsumer(&ci, l->js, o->stream, &cc, NULL, &jerr);
		if (s != NATS_OK) {
			/* Another bridge may have created it meanwhile; if
			 * not, the refusal of the add is what to say (a work
			 * queue takes one consumer without a filter). */
			struct refusal r;

			refusal_keep(&r, s, jerr);
			jerr = 0;
			s = js_GetConsumerInfo(&ci, l->js, o->stream,
					       o->durable, NULL, &jerr);
			if (s != NATS_OK)
				return refusal_say(l, &r, "consumer",
						   o->durable);
		}
	}
	if (s != NATS_OK)
		return api_failure(l, "consumer", s, jerr);
	rc = consumer_fits(l, ci->Config);
	if (rc != -1) {
		jsConsumerInfo_Destroy(ci);
		return rc;
	}
	lim->ack_wait_ms = ci->Config->AckWait / 1000000;
	if (lim->ack_wait_ms <= 0)
		lim->ack_wait_ms = 30000;
	lim->max_ack = ci->Config->MaxAckPending;
	lim->max_fetch = ci->Config->MaxRequestBatch;
	lim->max_expires_ms = ci->Config->MaxRequestExpires / 1000000;
	jsConsumerInfo_Destroy(ci);

	jsSubOptions_Init(&so);
	so.Stream = o->stream;
	so.Consumer = o->durable;
	jerr = 0;
	s = js_PullSubscribe(sub, l->js, NULL, o->durable, NULL, &so, &jerr);
	if (s != NATS_OK)
		return api_failure(l, "subscribe", s, jerr);
	return -1;
}

int link_consumer_state(struct link *l, int64_t *ack_pending,
			uint64_t *pending)
{
	jsConsumerInfo *ci = NULL;
	jsErrCode jerr = 0;
	natsStatus s = js_GetConsumerInfo(&ci, l->js, l->o->stream,
					  l->o->durable, NULL, &jerr);

	if (s != NATS_OK)
		return -1;
	*ack_pending = ci->NumAckPending;
	*pending = ci->NumPending;
	jsConsumerInfo_Destroy(ci);
	return 0;
}
