/*
 * bridge.h - shmq-bridge: a local queue carried over NATS JetStream.
 *
 * Which file owns what:
 *   main.c    the command line: dispatch, --help, exit statuses, signals
 *   options.c the URL (nats://HOST:PORT/STREAM) and the options
 *   link.c    the NATS connection: connect, reconnect with back-off (said
 *             once on stderr), the JetStream context, the stream and the
 *             consumer, what a NATS error means for us
 *   out.c     the out direction: local queue -> stream, exactly once
 *   in.c      the in direction: stream -> local queue, at least once
 *   marker.c  the end-of-stream marker and the message ids
 *
 * None of them copies data it does not have to: out publishes from the
 * lease buffer (or the zero-copy view), in puts from the fetched messages.
 */
#ifndef SHMQ_BRIDGE_H
#define SHMQ_BRIDGE_H

#include <signal.h>
#include <stdio.h>
#include <stddef.h>
#include <stdint.h>

#include <nats/nats.h>
#include <shmq.h>

/* Exit statuses: qctl's table (README), so that scripts and systemd can
 * treat both alike. */
enum bridge_exit {
	BX_OK = 0,         /* end of stream reached (or stopped by a signal) */
	BX_ERROR = 1,
	BX_USAGE = 2,      /* bad usage, bad URL, bad number */
	BX_CLOSED = 4,     /* in: the local queue was closed under us */
	BX_NOENT = 6,      /* no such local queue, or no such stream */
	BX_ACCES = 7,      /* permission denied (local queue or server) */
	BX_UNREACH = 8,    /* shmqd or the NATS server unreachable at start */
	BX_2BIG = 9,       /* a message too big for the other side */
	BX_LOST = 10,      /* end of stream, a producer was lost */
};

#define BRIDGE_STREAM_MAX 64    /* stream names we accept (and subjects) */
#define BRIDGE_SERVER_MAX 512

struct bridge_opts {
	int out;                        /* 1 = out, 0 = in */
	const char *local;              /* the local queue */
	const char *url;                /* as given: never printed */
	char shown[BRIDGE_SERVER_MAX + BRIDGE_STREAM_MAX + 2];
					/* the URL for messages: a user,
					   password or token shown as *** */
	char server[BRIDGE_SERVER_MAX]; /* nats://[user:pass@]HOST:PORT */
	char stream[BRIDGE_STREAM_MAX + 1];
	/* out */
	int create;
	int64_t max_msgs;               /* --create: stream limits */
	int64_t max_bytes;
	int64_t dupe_window_s;
	int inflight;                   /* publishes in flight at most */
	/* in */
	const char *durable;
	int batch;                      /* MaxAckPending and fetch size */
	int64_t ack_wait_s;
	unsigned given;                 /* GIVEN_*: options on the command
					   line, checked against an existing
					   stream or consumer */
};
#define GIVEN_MAX_MSGS 1u
#define GIVEN_MAX_BYTES 2u
#define GIVEN_DUPE_WINDOW 4u
#define GIVEN_BATCH 8u
#define GIVEN_ACK_WAIT 16u

/* options.c */
int opts_parse_url(const char *url, struct bridge_opts *o);
/* The URL with any user, password or token shown as ***. */
void opts_redact(const char *url, char *out, size_t size);
/* Parses argv (after the direction word); returns -1 when the bridge
 * should run, else the status to exit with (usage errors are said). */
int opts_parse(int argc, char **argv, struct bridge_opts *o);
void opts_usage(FILE *f);

/* main.c: set by SIGINT/SIGTERM; every wait of the bridge looks at it. */
extern volatile sig_atomic_t bridge_stop;
/* One line on stderr: "shmq-bridge: " + the text. */
void bridge_say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* The exit status for a shmq status (qctl's mapping). */
int bridge_shmq_exit(int rc);
/* Sleeps `ms` (less if a stop was asked).  (The clock is
 * common/clock.h's mono_ms.) */
void bridge_nap(int64_t ms);

/* link.c: one NATS connection with its JetStream context. */
struct link {
	natsConnection *nc;
	jsCtx *js;
	const struct bridge_opts *o;
};
/* Connects (exit status on failure, after saying why), with reconnects
 * forever and the back-off of link.c.  `pub` wires js's async publish
 * handler (out) or not (in). */
int link_open(struct link *l, const struct bridge_opts *o,
	      jsPubAckHandler on_ack, void *closure);
void link_close(struct link *l);
int link_connected(struct link *l);
/* Waits (with back-off, until a stop) for the connection to be up.
 * Returns 0 when up, -1 on stop. */
int link_wait_up(struct link *l);
/* The stream: looked up, or created (out --create).  *info gets its
 * config's limits.  Returns -1 or the exit status after saying why. */
struct stream_room {
	int64_t max_msgs, max_bytes;    /* -1 = unlimited */
	int64_t msgs, bytes;            /* stored now */
	int discard_new;
};
int link_stream(struct link *l, int create, struct stream_room *room);
int link_room(struct link *l, struct stream_room *room);
/* The durable pull consumer (created if missing) and a subscription
 * bound to it; *c gets the settings the in bridge works within. */
struct consumer_limits {
	int64_t ack_wait_ms;
	int64_t max_ack;                /* MaxAckPending, <= 0: none */
	int64_t max_fetch;              /* MaxRequestBatch, <= 0: none */
	int64_t max_expires_ms;         /* MaxRequestExpires, <= 0: none */
};
int link_consumer(struct link *l, natsSubscription **sub,
		  struct consumer_limits *c);
/* Consumer's counters, for the end-of-stream rule of in.c. */
int link_consumer_state(struct link *l, int64_t *ack_pending,
			uint64_t *pending);
/* Is this NATS status (with its JetStream code) a server/connection
 * trouble worth waiting out, as opposed to a definite refusal? */
int link_transient(natsStatus s);
/* Does the stream refuse this publish because it is full? */
int link_stream_full(natsStatus s, jsErrCode jerr, const char *text);
int link_too_big(natsStatus s, jsErrCode jerr);
/* A back-off: 10 ms doubling to 2 s; reset on progress. */
struct backoff {
	int64_t ms;
};
void backoff_reset(struct backoff *b);
void backoff_wait(struct backoff *b);

/* marker.c */
#define MARKER_HEADER "Shmq-End"
#define MARKER_DRAINED "drained"
#define MARKER_LOST "producer-lost"
#define BRIDGE_ID_MAX (SHMQ_NAME_MAX_LEN + 48)
/* The queue's identity: its name and its creation time, which together
 * name one queue for its whole life (a queue re-created under the same
 * name is another queue). */
void marker_identity(char *out, size_t size, const struct shmq_stat *st);
/* Nats-Msg-Id of the message at `seq` of that queue, and of its end. */
void marker_msg_id(char *out, size_t size, const char *ident, uint64_t seq);
void marker_end_id(char *out, size_t size, const char *ident);
/* The message's sequence number in the stream (0 if unknown). */
uint64_t marker_stream_seq(natsMsg *m);
/* A new marker message on `subject`; NULL on out of memory. */
natsMsg *marker_new(const char *subject, int lost);
/* 0: not a marker; 1: drained; 2: producer lost. */
int marker_kind(natsMsg *m);
/* The identity of the queue a message (or marker) comes from, read back
 * from its Nats-Msg-Id; -1 if that is not one of ours, exactly
 * NAME@DIGITS:DIGITS or NAME@DIGITS:end (another publisher's). */
int marker_ident_of(natsMsg *m, char *out, size_t size);

/* out.c, in.c: run a direction; return the exit status. */
int out_run(const struct bridge_opts *o);
int in_run(const struct bridge_opts *o);

#endif /* SHMQ_BRIDGE_H */
