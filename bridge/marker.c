/*
 * marker.c - the end-of-stream marker, and the message ids.
 *
 * Owns what the two ends of a bridge agree on inside the stream: the id
 * each message is published with (Nats-Msg-Id, which the server uses to
 * drop a publish it already stored) and the marker that says the local
 * queue ended: an empty message with the header
 *
 *     Shmq-End: drained | producer-lost
 *
 * and its own id, so that an out bridge restarted after publishing it
 * publishes it again harmlessly.  It never touches the connection or the
 * local queue.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "bridge.h"

void marker_identity(char *out, size_t size, const struct shmq_stat *st)
{
	snprintf(out, size, "%s@%" PRId64, st->name, st->created_ns);
}

void marker_msg_id(char *out, size_t size, const char *ident, uint64_t seq)
{
	snprintf(out, size, "%s:%" PRIu64, ident, seq);
}

void marker_end_id(char *out, size_t size, const char *ident)
{
	snprintf(out, size, "%s:end", ident);
}

natsMsg *marker_new(const char *subject, int lost)
{
	natsMsg *m = NULL;

	if (natsMsg_Create(&m, subject, NULL, NULL, 0) != NATS_OK)
		return NULL;
	if (natsMsgHeader_Set(m, MARKER_HEADER,
			      lost ? MARKER_LOST : MARKER_DRAINED) != NATS_OK) {
		natsMsg_Destroy(m);
		return NULL;
	}
	return m;
}

int marker_kind(natsMsg *m)
{
	const char *v = NULL;

	if (natsMsgHeader_Get(m, MARKER_HEADER, &v) != NATS_OK || v == NULL)
		return 0;
	return strcmp(v, MARKER_LOST) == 0 ? 2 : 1;
}

int marker_ident_of(natsMsg *m, char *out, size_t size)
{
	const char *id = NULL, *colon;

	if (natsMsgHeader_Get(m, "Nats-Msg-Id", &id) != NATS_OK || id == NULL)
		return -1;
	colon = strrchr(id, ':');
	if (colon == NULL || colon == id || (size_t)(colon - id) >= size)
		return -1;
	memcpy(out, id, (size_t)(colon - id));
	out[colon - id] = '\0';
	return 0;
}
