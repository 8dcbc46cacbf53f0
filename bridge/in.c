/*
 * in.c - the in direction: a JetStream stream into a local queue, each
 * message at least once.
 *
 * Owns the rule that makes a bridge killed at any instant lose nothing: a
 * message is acknowledged to the server only after its put into the local
 * queue committed, so a message the bridge held when it died is
 * redelivered (after the consumer's ack wait) and put again.  The one
 * place a message can arrive twice is therefore a bridge that dies (or
 * loses its connection, or stalls past the ack wait) after the put
 * committed and before the server received the ack: at most one fetched
 * batch per such event.
 *
 * Backpressure: a fetch asks for at most --batch messages, and the
 * consumer lets no more than that be unacknowledged; while the local
 * queue is full the bridge does not fetch, and tells the server it is
 * still working on what it holds (in-progress acks, every third of the
 * ack wait), so that nothing is redelivered elsewhere meanwhile.
 *
 * The end: the marker (marker.c) is held, unacknowledged, while the
 * bridge goes on fetching (redeliveries of messages other bridges held
 * may still come), until the consumer says nothing but the marker is
 * outstanding.  Then it closes the local queue (as with a lost producer
 * if the marker says so), acknowledges the marker and exits.  Other in
 * bridges on the same consumer never see that marker; they notice the
 * local queue closed with the stream finished, and exit the same way.
 *
 * It never acknowledges a message it has not put, and never closes the
 * local queue before the consumer has nothing but the marker left.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

#include "bridge.h"
#include "clock.h"

#define IN_FETCH_MS 1000        /* one fetch waits at most this */
#define IN_GRAB_MS 10           /* a no-wait fetch, bounded anyway */
#define IN_END_FETCH_MS 200     /* while holding the marker */
#define IN_SLICE_MAX_MS 1000    /* a blocked put looks up this often */
#define IN_SAY_AFTER 5          /* fetch failures in a row, connected,
				   before one line says so */

struct in {
	const struct bridge_opts *o;
	shmq_t *q;
	struct link link;
	natsSubscription *sub;
	struct consumer_limits lim;
	int64_t ack_wait_ms;
	int batch;
	natsMsg *marker;                /* held until the end, or NULL */
	char marker_ident[BRIDGE_ID_MAX];       /* whose end it is ("" if
						   its id says not) */
	uint64_t marker_seq;            /* its stream sequence (0: unknown) */
	int lost;                       /* what the marker says */
	int64_t marker_touched;         /* last in-progress for it */
	int finished;                   /* closed the queue, acked it */
	struct iovec *iov;
};

static void progress_ack(struct in *w, natsMsg **msgs, size_t n)
{
	for (size_t i = 0; i < n; i++)
		natsMsg_InProgress(msgs[i], NULL);
	if (w->marker)
		natsMsg_InProgress(w->marker, NULL);
	w->marker_touched = mono_ms();
}

/* Back to the stream, at once, for another bridge or a later run. */
static void give_back(natsMsg **msgs, size_t n)
{
	for (size_t i = 0; i < n; i++)
		natsMsg_Nak(msgs[i], NULL);
}

/* The local queue was closed by someone else: fine if the stream is
 * done (another in bridge closed it at the marker), else status 4. */
static int closed_under_us(struct in *w, const struct shmq_stat *st)
{
	int64_t ackp = -1;
	uint64_t pending = 1;

	struct backoff b = { 0 };
	int asked = -1;

	/* The server must answer: an unanswered question is no answer. */
	for (int i = 0; i < 20 && asked != 0 && !bridge_stop; i++) {
		if (link_wait_up(&w->link) != 0)
			break;
		asked = link_consumer_state(&w->link, &ackp, &pending);
		if (asked != 0)
			backoff_wait(&b);
	}
	/* The bridge that closed it may not have acked the marker yet: it
	 * closes only when the marker is all that is left. */
	if (asked == 0 && ackp <= 1 && pending == 0)
		return st->producer_lost ? BX_LOST : BX_OK;
	bridge_say("%s: closed while the stream still holds messages for it",
		   w->o->local);
	return BX_CLOSED;
}

static int local_closed(struct in *w, struct shmq_stat *st)
{
	return shmq_stat(w->q, st) == SHMQ_OK && st->state != SHMQ_STATE_OPEN;
}

/* Puts msgs[0..n) in order, acking each once committed.  -1 when all are
 * in; else the exit status (said), after giving back what is not. */
static int put_all(struct in *w, natsMsg **msgs, size_t n)
{
	int64_t slice = w->ack_wait_ms / 3;
	size_t done = 0;

	if (slice > IN_SLICE_MAX_MS)
		slice = IN_SLICE_MAX_MS;
	if (slice < 1)
		slice = 1;
	for (size_t i = 0; i < n; i++) {
		w->iov[i].iov_base = (void *)natsMsg_GetData(msgs[i]);
		w->iov[i].iov_len = (size_t)natsMsg_GetDataLength(msgs[i]);
	}
	while (done < n) {
		size_t k = 0;
		int rc = shmq_putv(w->q, w->iov + done, n - done, &k,
				   (int)slice);

		for (size_t i = done; i < done + k; i++)
			natsMsg_Ack(msgs[i], NULL);
		done += k;
		if (rc == SHMQ_OK)
			break;
		if (rc == SHMQ_ETIMEDOUT || rc == SHMQ_EINTR) {
			if (bridge_stop) {
				give_back(msgs + done, n - done);
				return BX_OK;
			}
			/* Full: keep what we hold ours. */
			progress_ack(w, msgs + done, n - done);
			continue;
		}
		give_back(msgs + done, n - done);
		if (rc == SHMQ_ECLOSED) {
			struct shmq_stat st;
			if (shmq_stat(w->q, &st) == SHMQ_OK)
				return closed_under_us(w, &st);
		}
		if (rc == SHMQ_E2BIG)
			bridge_say("%s: a %zu-byte message from the stream is "
				   "larger than the queue's maximum (%zu)",
				   w->o->local, w->iov[done].iov_len,
				   shmq_max_msg(w->q));
		else
			bridge_say("%s: %s", w->o->local, shmq_strerror(rc));
		return bridge_shmq_exit(rc);
	}
	return -1;
}

/* Holding the marker: done once the consumer has nothing outstanding but
 * it.  -1 while not yet; else the exit status. */
static int try_finish(struct in *w)
{
	int64_t ackp;
	uint64_t pending;
	jsErrCode jerr = 0;

	if (mono_ms() - w->marker_touched >= w->ack_wait_ms / 3)
		progress_ack(w, NULL, 0);
	if (link_consumer_state(&w->link, &ackp, &pending) != 0 ||
	    ackp > 1 || pending > 0)
		return -1;
	/* Everything before the marker is in the local queue and acked. */
	int rc = shmq_close(w->q, SHMQ_CLOSE_DRAIN |
			    (w->lost ? SHMQ_CLOSE_LOST : 0), NULL);
	if (rc != SHMQ_OK) {
		bridge_say("%s: close: %s", w->o->local, shmq_strerror(rc));
		return bridge_shmq_exit(rc);
	}
	/* If this ack is lost, the marker comes back to a bridge that
	 * finds the queue closed already and acks it then. */
	natsMsg_AckSync(w->marker, NULL, &jerr);
	w->finished = 1;
	return w->lost ? BX_LOST : BX_OK;
}

/* A marker that is not the end (`m`, held or just fetched): acknowledged
 * (gone from the stream; synchronously, so that it does not come back
 * because an ack was lost), said once, destroyed. */
static void drop_stale(struct in *w, natsMsg *m, const char *whose,
		       uint64_t seq, const char *why)
{
	bridge_say("%s: ignored a stale end marker (queue %s, stream "
		   "sequence %" PRIu64 "): %s", w->o->shown,
		   whose[0] ? whose : "unknown", seq, why);
	natsMsg_AckSync(m, NULL, NULL);
	natsMsg_Destroy(m);
}

static void hold_marker(struct in *w, natsMsg *m, int kind, const char *ident,
			uint64_t seq)
{
	w->marker = m;
	w->lost = kind == 2;
	w->marker_touched = mono_ms();
	w->marker_seq = seq;
	snprintf(w->marker_ident, sizeof(w->marker_ident), "%s", ident);
}

/*
 * Takes the marker out of the batch and holds it.  Messages come in
 * delivery order, which is not the stream's (a redelivery comes late), so
 * "after" means a higher stream sequence.  Every message of ours names
 * its queue (marker_ident_of): a marker with a message of another queue
 * after it in the stream is stale (an earlier run's end that no in bridge
 * took, the queue then created again and bridged into the same stream),
 * and so is a marker of another queue before the one held; a marker of
 * the same queue as the one held is a copy (an out bridge restarted after
 * its end).  Stale markers and copies are acknowledged and forgotten;
 * another publisher's messages (no id of ours) change nothing.  Returns
 * the data messages, compacted in order.
 */
static size_t take_markers(struct in *w, natsMsgList *list)
{
	char ident[BRIDGE_ID_MAX];
	size_t k = 0;

	for (int i = 0; i < list->Count; i++) {
		natsMsg *m = list->Msgs[i];
		int kind = marker_kind(m);
		int known = marker_ident_of(m, ident, sizeof(ident)) == 0;
		uint64_t seq = marker_stream_seq(m);
		int other = known && w->marker && w->marker_ident[0] &&
			    strcmp(ident, w->marker_ident) != 0;

		if (!known)
			ident[0] = '\0';
		if (kind == 0) {
			if (other && seq > w->marker_seq) {
				drop_stale(w, w->marker, w->marker_ident,
					   w->marker_seq, "messages of a later "
					   "queue follow it");
				w->marker = NULL;
			}
			list->Msgs[k++] = m;
			continue;
		}
		if (w->marker == NULL) {
			hold_marker(w, m, kind, ident, seq);
		} else if (seq == w->marker_seq) {
			/* The held one again (its ack wait ran out): the
			 * new delivery is the one to acknowledge. */
			natsMsg_Destroy(w->marker);
			w->marker = m;
		} else if (!other) {
			natsMsg_Ack(m, NULL);           /* a copy */
			natsMsg_Destroy(m);
		} else if (seq < w->marker_seq) {
			drop_stale(w, m, ident, seq, "a later queue's end "
				   "follows it");
		} else {
			drop_stale(w, w->marker, w->marker_ident,
				   w->marker_seq, "a later queue's end "
				   "follows it");
			hold_marker(w, m, kind, ident, seq);
		}
	}
	for (int i = (int)k; i < list->Count; i++)
		list->Msgs[i] = NULL;           /* not ours to destroy now */
	return k;
}

/*
 * A batch: first what the server has now (no wait), else wait for one.
 * Never a wait for a whole batch: with several bridges on one consumer,
 * each would hold part of the unacknowledged allowance while waiting for
 * the rest, which only the others' acks could free, and none would ack
 * before its fetch returns.
 */
static natsStatus fetch(struct in *w, natsMsgList *list, int want)
{
	jsFetchRequest req;
	natsStatus s;

	int64_t expires = w->marker ? IN_END_FETCH_MS : IN_FETCH_MS;

	/* Within the consumer's limits on a pull request, if it has any. */
	if (w->lim.max_fetch > 0 && want > w->lim.max_fetch)
		want = (int)w->lim.max_fetch;
	if (w->lim.max_expires_ms > 0 && expires > w->lim.max_expires_ms)
		expires = w->lim.max_expires_ms;
	jsFetchRequest_Init(&req);
	req.Batch = want;
	req.NoWait = true;
	req.Expires = (expires < IN_GRAB_MS ? expires : IN_GRAB_MS) * 1000000ll;
	s = natsSubscription_FetchRequest(list, w->sub, &req);
	if (s != NATS_TIMEOUT && s != NATS_NOT_FOUND)
		return s;
	jsFetchRequest_Init(&req);
	req.Batch = 1;
	req.Expires = expires * 1000000ll;
	return natsSubscription_FetchRequest(list, w->sub, &req);
}

static int run(struct in *w)
{
	struct backoff b = { 0 };
	struct shmq_stat st;
	int failures = 0;

	for (;;) {
		natsMsgList list;
		natsStatus s;
		int rc, want;

		if (bridge_stop)
			return BX_OK;
		if (w->marker) {
			rc = try_finish(w);
			if (rc != -1)
				return rc;
		} else if (local_closed(w, &st)) {
			return closed_under_us(w, &st);
		}
		if (link_wait_up(&w->link) != 0)
			return BX_OK;
		want = w->batch - (w->marker != NULL);
		if (want < 1)
			want = 1;
		s = fetch(w, &list, want);
		if (s == NATS_TIMEOUT || s == NATS_NOT_FOUND)
			continue;
		if (s != NATS_OK) {
			/* A server going away answers a pull with an error
			 * status before the connection drops: that is the
			 * connection's loss, said by link.c.  Only an error
			 * that persists while connected is worth a line. */
			if (link_transient(s) || !link_connected(&w->link))
				failures = 0;
			else if (++failures == IN_SAY_AFTER) {
				const char *d = nats_GetLastError(NULL);
				bridge_say("%s: fetch: %s%s%s; retrying",
					   w->o->shown, natsStatus_GetText(s),
					   d && *d ? ": " : "", d ? d : "");
			}
			backoff_wait(&b);
			continue;
		}
		backoff_reset(&b);
		failures = 0;
		size_t n = take_markers(w, &list);
		rc = put_all(w, list.Msgs, n);
		natsMsgList_Destroy(&list);
		if (rc != -1)
			return rc;
	}
}

int in_run(const struct bridge_opts *o)
{
	struct in w = { .o = o };
	int rc;

	/* A relay: not counted among the queue's producers, so a killed
	 * bridge is no "producer lost" and never auto-closes the queue; only
	 * the marker says how the far end ended. */
	rc = shmq_open(o->local, SHMQ_PRODUCER | SHMQ_RELAY, &w.q);
	if (rc != SHMQ_OK) {
		bridge_say("%s: %s", o->local, shmq_strerror(rc));
		return bridge_shmq_exit(rc);
	}
	rc = link_open(&w.link, o, NULL, NULL);
	if (rc == -1)
		rc = link_stream(&w.link, 0, NULL);
	if (rc == -1)
		rc = link_consumer(&w.link, &w.sub, &w.lim);
	if (rc == -1) {
		w.ack_wait_ms = w.lim.ack_wait_ms;
		w.batch = o->batch;
		if (w.lim.max_ack > 0 && w.lim.max_ack < w.batch)
			w.batch = (int)w.lim.max_ack;
		w.iov = calloc((size_t)w.batch, sizeof(*w.iov));
		if (w.iov == NULL) {
			bridge_say("out of memory");
			rc = BX_ERROR;
		} else {
			rc = run(&w);
		}
	}
	if (w.marker) {
		/* Stopped before the end: the marker goes back. */
		if (!w.finished)
			natsMsg_Nak(w.marker, NULL);
		natsMsg_Destroy(w.marker);
	}
	if (w.link.nc)
		natsConnection_FlushTimeout(w.link.nc, 2000);
	if (w.sub)
		natsSubscription_Destroy(w.sub);
	link_close(&w.link);
	free(w.iov);
	shmq_detach(w.q);
	return rc;
}
