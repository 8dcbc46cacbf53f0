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
	const char *id = NULL, *at, *colon;
	size_t n;

	if (natsMsgHeader_Get(m, "Nats-Msg-Id", &id) != NATS_OK || id == NULL)
		return -1;
	at = strchr(id, '@');
	colon = at ? strchr(at, ':') : NULL;
	if (colon == NULL || (n = (size_t)(colon - id)) >= size ||
	    colon == at + 1 || at[strspn(at + 1, "0123456789") + 1] != ':')
		return -1;
	/* The name: what shmq accepts as a queue name. */
	char name[SHMQ_NAME_MAX_LEN + 1];
	if ((size_t)(at - id) > SHMQ_NAME_MAX_LEN)
		return -1;
	memcpy(name, id, (size_t)(at - id));
	name[at - id] = '\0';
	if (shmq_check_name(name) != SHMQ_OK)
		return -1;
	/* The position: digits, or "end". */
	const char *pos = colon + 1;
	if (strcmp(pos, "end") != 0 &&
	    (*pos == '\0' || pos[strspn(pos, "0123456789")] != '\0'))
		return -1;
	memcpy(out, id, n);
	out[n] = '\0';
	return 0;
}

uint64_t marker_stream_seq(natsMsg *m)
{
	jsMsgMetaData *md = NULL;
	uint64_t seq = 0;

	if (natsMsg_GetMetaData(&md, m) == NATS_OK && md) {
		seq = md->Sequence.Stream;
		jsMsgMetaData_Destroy(md);
	}
	return seq;
}
