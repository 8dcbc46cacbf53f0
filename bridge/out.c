/*
 * out.c - the out direction: a local queue into a JetStream stream,
 * each message exactly once.
 *
 * Owns the rule that makes a bridge killed at any instant lose nothing
 * and publish nothing twice: a message leaves the local queue only after
 * the server acknowledged storing it, and it is published with the id
 * "<queue name>@<queue creation ns>:<position in the queue>", which the
 * same message keeps when it comes back to a restarted bridge.  The
 * server drops a second publish of an id it stored within the stream's
 * duplicate window.
 *
 *   acked queue: lease a batch (shmq_leasev), publish it asynchronously,
 *     wait for the server's acks, ack locally what was stored.  Leases a
 *     killed bridge held come back to the queue with their positions.
 *   plain queue: view the oldest message (shmq_get_view; its position
 *     from shmq_view_seq), publish it, take it once stored.  The view
 *     holds the queue's consumer lock in between: the bridge should be
 *     the queue's only consumer, and there is one message in flight.
 *
 * A full stream (discard new) is backpressure: before publishing we make
 * sure the stream has room for what we send (its limits minus what it
 * holds, asked again only when our count runs out), so that a batch is
 * never half refused and the stream keeps the queue's order; a refusal
 * all the same (another publisher took the room) is waited out with
 * back-off, and meanwhile the local queue fills and its producers block.
 *
 * It never decides how to reach the server (link.c) and never acks a
 * message locally before the server acknowledged it.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "bridge.h"

#define OUT_IDLE_MS 500                 /* a lease waits this, then we look
					   at the stop flag again */
#define OUT_PUB_WAIT_MS 5000            /* a publish unanswered this long
					   counts as failed (retried) */
#define OUT_BUF_MAX (16u << 20)         /* lease buffer cap */
#define OUT_OVERHEAD 96                 /* stored bytes beyond the payload
					   we count per message (estimate) */
#define OUT_STOP (-2)

enum item_state { IT_TODO, IT_SENT, IT_STORED, IT_FAILED };

struct item {
	struct shmq_msg m;
	const void *data;
	size_t len;
	int marker;                     /* 0, or 1 drained / 2 lost */
	char id[BRIDGE_ID_MAX];
	enum item_state state;
	int duplicate;                  /* the server had it already */
	int counted;                    /* taken off our room count */
	natsStatus err;
	jsErrCode jerr;
	char text[160];
};

struct out {
	const struct bridge_opts *o;
	shmq_t *q;
	int acked;
	size_t max_msg;
	char ident[BRIDGE_ID_MAX];
	struct link link;
	struct stream_room room;
	int64_t credit_msgs, credit_bytes;      /* room we know is free */
	struct item *items;
	size_t n, cap, hint;
	struct shmq_msg *msgs;
	void *buf;
	size_t bufsize;
	pthread_mutex_t mu;
	natsStatus said;                /* last odd error said, once */
};

/* ------------------------------------------------------------------ */
/* The server's answers (libnats's thread)                             */

static struct item *find_item(struct out *w, const char *id)
{
	for (size_t k = 0; k < w->n; k++) {
		size_t i = (w->hint + k) % w->n;
		if (strcmp(w->items[i].id, id) == 0) {
			w->hint = i + 1;
			return &w->items[i];
		}
	}
	return NULL;
}

static void on_ack(jsCtx *js, natsMsg *msg, jsPubAck *pa, jsPubAckErr *pae,
		   void *closure)
{
	struct out *w = closure;
	const char *id = NULL;

	(void)js;
	natsMsgHeader_Get(msg, "Nats-Msg-Id", &id);
	pthread_mutex_lock(&w->mu);
	struct item *it = id ? find_item(w, id) : NULL;
	/* An answer to an earlier try of an item that is stored already
	 * changes nothing; one for an item of an earlier batch finds none. */
	if (it && it->state == IT_SENT) {
		if (pa) {
			it->state = IT_STORED;
			it->duplicate = pa->Duplicate;
		} else {
			it->state = IT_FAILED;
			it->err = pae ? pae->Err : NATS_ERR;
			it->jerr = pae ? pae->ErrCode : 0;
			snprintf(it->text, sizeof(it->text), "%s",
				 pae && pae->ErrText ? pae->ErrText : "");
		}
	}
	pthread_mutex_unlock(&w->mu);
	natsMsg_Destroy(msg);
}

/* ------------------------------------------------------------------ */
/* Room in the stream                                                   */

static int64_t item_bytes(const struct out *w, const struct item *it)
{
	return (int64_t)(it->len + strlen(it->id) + strlen(w->o->stream)) +
	       OUT_OVERHEAD;
}

static void credit_from_room(struct out *w)
{
	const struct stream_room *r = &w->room;

	w->credit_msgs = r->max_msgs > 0 ? r->max_msgs - r->msgs : INT64_MAX;
	w->credit_bytes = r->max_bytes > 0 ? r->max_bytes - r->bytes
					   : INT64_MAX;
	if (!r->discard_new)
		w->credit_msgs = w->credit_bytes = INT64_MAX;
}

/* How many of the items from `first` on (those not stored, in order) fit
 * in the room we know of. */
static size_t fitting(struct out *w, size_t first)
{
	int64_t m = w->credit_msgs, b = w->credit_bytes;
	size_t k = 0;

	for (size_t i = first; i < w->n; i++) {
		if (w->items[i].state == IT_STORED)
			continue;
		int64_t need = item_bytes(w, &w->items[i]);
		if (m < 1 || b < need)
			break;
		m--;
		b -= need;
		k++;
	}
	return k;
}

/* ------------------------------------------------------------------ */
/* Publishing                                                          */

static natsMsg *item_msg(struct out *w, const struct item *it)
{
	natsMsg *m = NULL;

	if (it->marker)
		return marker_new(w->o->stream, it->marker == 2);
	if (natsMsg_Create(&m, w->o->stream, NULL, (const char *)it->data,
			   (int)it->len) != NATS_OK)
		return NULL;
	return m;
}

/* Sends up to `k` items not yet stored, in order; stops at the first that
 * cannot be sent (it and those after it wait for the next round). */
static size_t send_round(struct out *w, size_t first, size_t k)
{
	size_t sent = 0;

	for (size_t i = first; i < w->n && sent < k; i++) {
		struct item *it = &w->items[i];
		jsPubOptions po;
		natsStatus s;

		if (it->state == IT_STORED)
			continue;
		if (!link_connected(&w->link))
			break;          /* no reordering through libnats's
					   reconnect buffer */
		natsMsg *m = item_msg(w, it);
		if (m == NULL) {
			it->state = IT_FAILED;
			it->err = NATS_NO_MEMORY;
			break;
		}
		jsPubOptions_Init(&po);
		po.MsgId = it->id;
		po.MaxWait = OUT_PUB_WAIT_MS;
		pthread_mutex_lock(&w->mu);
		it->state = IT_SENT;
		pthread_mutex_unlock(&w->mu);
		s = js_PublishMsgAsync(w->link.js, &m, &po);
		if (s != NATS_OK) {
			natsMsg_Destroy(m);
			pthread_mutex_lock(&w->mu);
			it->state = IT_FAILED;
			it->err = s;
			it->jerr = 0;
			it->text[0] = '\0';
			pthread_mutex_unlock(&w->mu);
			break;
		}
		sent++;
	}
	return sent;
}

/* Waits for the answers to a round; what got none is failed. */
static void await_round(struct out *w)
{
	jsPubOptions po;
	natsMsgList left;

	jsPubOptions_Init(&po);
	po.MaxWait = 3 * OUT_PUB_WAIT_MS;
	if (js_PublishAsyncComplete(w->link.js, &po) == NATS_TIMEOUT &&
	    js_PublishAsyncGetPendingList(&left, w->link.js) == NATS_OK)
		natsMsgList_Destroy(&left);
	pthread_mutex_lock(&w->mu);
	for (size_t i = 0; i < w->n; i++)
		if (w->items[i].state == IT_SENT) {
			w->items[i].state = IT_FAILED;
			w->items[i].err = NATS_TIMEOUT;
		}
	pthread_mutex_unlock(&w->mu);
}

/* Every item into the stream.  -1 when all are stored; OUT_STOP on a
 * stop; else the exit status (said). */
static int publish_all(struct out *w)
{
	struct backoff b = { 0 };

	for (;;) {
		size_t first = 0, k;
		int full = 0, progress = 0, alone = 0;

		while (first < w->n && w->items[first].state == IT_STORED)
			first++;
		if (first == w->n)
			return -1;
		if (bridge_stop || link_wait_up(&w->link) != 0)
			return OUT_STOP;
		k = fitting(w, first);
		if (k == 0) {
			/* Out of known room: ask the stream; an empty
			 * stream takes one whatever our estimate says. */
			if (link_room(&w->link, &w->room) == 0) {
				credit_from_room(w);
				k = fitting(w, first);
				if (k == 0 && w->room.msgs == 0)
					k = alone = 1;
			}
			if (k == 0) {
				backoff_wait(&b);
				continue;
			}
		}
		if (send_round(w, first, k) > 0)
			/* Out now: libnats would hold small writes for up
			 * to 1 ms, a long time for a round of one. */
			natsConnection_FlushTimeout(w->link.nc,
						    OUT_PUB_WAIT_MS);
		await_round(w);
		for (size_t i = first; i < w->n; i++) {
			struct item *it = &w->items[i];
			if (it->state == IT_STORED) {
				if (!it->duplicate && !it->counted) {
					w->credit_msgs--;
					w->credit_bytes -= item_bytes(w, it);
				}
				it->counted = 1;
				progress = 1;
				continue;
			}
			if (it->state != IT_FAILED)
				continue;
			it->state = IT_TODO;
			if (link_too_big(it->err, it->jerr)) {
				bridge_say("%s: message %" PRIu64 " (%zu bytes) "
					   "is too big for the stream: %s",
					   w->o->local, it->m.seq, it->len,
					   it->text[0] ? it->text
					   : natsStatus_GetText(it->err));
				return BX_2BIG;
			}
			if (link_stream_full(it->err, it->jerr, it->text)) {
				full = 1;
			} else if (!link_transient(it->err) &&
				   w->said != it->err) {
				w->said = it->err;
				bridge_say("%s: publish refused (%s%s%s); "
					   "retrying", w->o->shown,
					   natsStatus_GetText(it->err),
					   it->text[0] ? ": " : "", it->text);
			}
		}
		if (full) {
			w->credit_msgs = 0;     /* ask the stream next */
			/* Sent alone into an empty stream, refused as full,
			 * and the stream still empty: the message is bigger
			 * than all its room, and always will be. */
			struct stream_room r;
			if (alone && link_room(&w->link, &r) == 0 &&
			    r.msgs == 0) {
				struct item *it = &w->items[first];
				bridge_say("%s: message %" PRIu64 " (%zu bytes) "
					   "is too big for the stream, which "
					   "holds at most %" PRId64 " bytes",
					   w->o->local, it->m.seq, it->len,
					   r.max_bytes);
				return BX_2BIG;
			}
		}
		if (progress)
			backoff_reset(&b);
		else
			backoff_wait(&b);
	}
}

/* ------------------------------------------------------------------ */
/* The local queue                                                      */

static void set_item(struct out *w, size_t i, const void *data, size_t len,
		     uint64_t seq)
{
	struct item *it = &w->items[i];

	memset(it, 0, sizeof(*it));
	it->data = data;
	it->len = len;
	it->m.seq = seq;
	marker_msg_id(it->id, sizeof(it->id), w->ident, seq);
	it->state = IT_TODO;
}

/* Settles what publish_all stored: out of the local queue.  An ack that
 * comes after its lease ended (a lease timeout) is refused; the message
 * then comes back, and its second publish is a duplicate the server
 * drops. */
static int settle(struct out *w)
{
	if (!w->acked)
		return shmq_get_take(w->q);
	for (size_t done = 0; done < w->n;) {
		size_t k = 0;
		int rc = shmq_ackv(w->q, w->msgs + done, w->n - done, &k);
		done += k;
		if (rc == SHMQ_OK)
			break;
		if (rc != SHMQ_ELEASE)
			return rc;
		done++;                 /* that one comes back */
	}
	return SHMQ_OK;
}

static void settle_stored(struct out *w)
{
	if (!w->acked) {
		if (w->items[0].state == IT_STORED)
			shmq_get_take(w->q);
		else
			shmq_get_leave(w->q);
		return;
	}
	for (size_t i = 0; i < w->n; i++)
		if (w->items[i].state == IT_STORED)
			shmq_ack(w->q, &w->msgs[i]);
}

/* Publishes the end marker; the status to exit with. */
static int end_of_stream(struct out *w, int rc)
{
	int lost = rc == SHMQ_EOS_LOST;
	struct item *it = &w->items[0];

	w->n = 1;
	memset(it, 0, sizeof(*it));
	it->marker = lost ? 2 : 1;
	marker_end_id(it->id, sizeof(it->id), w->ident);
	int prc = publish_all(w);
	if (prc == OUT_STOP)
		return BX_OK;
	if (prc != -1)
		return prc;
	return lost ? BX_LOST : BX_OK;
}

static int next_batch(struct out *w)
{
	int rc;

	if (w->acked) {
		size_t n = 0;
		rc = shmq_leasev(w->q, w->buf, w->bufsize, w->msgs, w->cap,
				 &n, OUT_IDLE_MS);
		for (size_t i = 0; i < n; i++)
			set_item(w, i, w->msgs[i].data, w->msgs[i].len,
				 w->msgs[i].seq);
		w->n = n;
		return rc;
	}
	const void *data;
	size_t len;
	uint64_t seq;
	rc = shmq_get_view(w->q, &data, &len, OUT_IDLE_MS);
	if (rc != SHMQ_OK)
		return rc;
	if (shmq_view_seq(w->q, &seq) != SHMQ_OK) {
		shmq_get_leave(w->q);
		return SHMQ_EINVAL;
	}
	set_item(w, 0, data, len, seq);
	w->n = 1;
	return SHMQ_OK;
}

static int run(struct out *w)
{
	for (;;) {
		int rc;

		if (bridge_stop)
			return BX_OK;
		rc = next_batch(w);
		if (rc == SHMQ_ETIMEDOUT || rc == SHMQ_EINTR)
			continue;
		if (rc == SHMQ_EOS || rc == SHMQ_EOS_LOST)
			return end_of_stream(w, rc);
		if (rc != SHMQ_OK) {
			bridge_say("%s: %s", w->o->local, shmq_strerror(rc));
			return bridge_shmq_exit(rc);
		}
		rc = publish_all(w);
		if (rc != -1) {
			/* Stopped or failed: what is stored leaves the queue,
			 * the rest stays (a plain view is left; leases return
			 * when we detach). */
			settle_stored(w);
			return rc == OUT_STOP ? BX_OK : rc;
		}
		rc = settle(w);
		if (rc != SHMQ_OK) {
			bridge_say("%s: %s", w->o->local, shmq_strerror(rc));
			return bridge_shmq_exit(rc);
		}
	}
}

int out_run(const struct bridge_opts *o)
{
	/* Static: libnats's publish-ack callback gets its address, and
	 * libnats's threads end only in nats_CloseAndWait (main.c). */
	static struct out w;
	struct shmq_stat st;
	int rc;

	w.o = o;
	pthread_mutex_init(&w.mu, NULL);
	rc = shmq_open(o->local, SHMQ_CONSUMER, &w.q);
	if (rc == SHMQ_OK)
		rc = shmq_stat(w.q, &st);
	if (rc != SHMQ_OK) {
		bridge_say("%s: %s", o->local, shmq_strerror(rc));
		if (w.q)
			shmq_detach(w.q);
		return bridge_shmq_exit(rc);
	}
	w.acked = (st.flags & SHMQ_ACKED) != 0;
	w.max_msg = shmq_max_msg(w.q);
	marker_identity(w.ident, sizeof(w.ident), &st);
	w.cap = w.acked ? (size_t)o->inflight : 1;
	w.bufsize = w.cap * ((w.max_msg + 15) & ~(size_t)15);
	if (w.bufsize > OUT_BUF_MAX)
		w.bufsize = OUT_BUF_MAX;
	if (w.bufsize < w.max_msg + 16)
		w.bufsize = w.max_msg + 16;
	w.items = calloc(w.cap, sizeof(*w.items));
	w.msgs = calloc(w.cap, sizeof(*w.msgs));
	w.buf = w.acked ? malloc(w.bufsize) : NULL;
	if (w.items == NULL || w.msgs == NULL || (w.acked && w.buf == NULL)) {
		bridge_say("out of memory");
		rc = BX_ERROR;
		goto out;
	}
	rc = link_open(&w.link, o, on_ack, &w);
	if (rc != -1)
		goto out;
	rc = link_stream(&w.link, o->create, &w.room);
	if (rc == -1) {
		credit_from_room(&w);
		rc = run(&w);
	}
	link_close(&w.link);
out:
	shmq_detach(w.q);
	free(w.items);
	free(w.msgs);
	free(w.buf);
	w.items = NULL;         /* a late callback finds nothing */
	w.n = 0;
	return rc;
}
