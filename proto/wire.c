/*
 * wire.c - building and checking control packets (see shmq_wire.h).
 *
 * Every check here is about shape: lengths, terminators, known values.
 * Whether a request is allowed is the daemon's business, not this file's.
 */
#include <string.h>

#include "wire.h"

size_t wire_pack(void *buf, uint16_t type, uint32_t seq, const void *body,
		 size_t body_len)
{
	struct shmq_wire_hdr h = {
		.magic = SHMQ_WIRE_MAGIC,
		.version = SHMQ_WIRE_VERSION,
		.type = type,
		.len = (uint32_t)(sizeof(h) + body_len),
		.seq = seq,
	};
	memcpy(buf, &h, sizeof(h));
	if (body_len)
		memcpy((char *)buf + sizeof(h), body, body_len);
	return sizeof(h) + body_len;
}

int wire_check_name(const char *field, size_t cap, int allow_empty)
{
	const char *end = memchr(field, '\0', cap);
	size_t n;

	if (end == NULL)
		return SHMQ_ENAME;
	n = (size_t)(end - field);
	if (n == 0)
		return allow_empty ? SHMQ_OK : SHMQ_ENAME;
	if (n > SHMQ_NAME_MAX || field[0] == '.')
		return SHMQ_ENAME;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)field[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || c == '.' || c == '_' ||
		      c == '-'))
			return SHMQ_ENAME;
	}
	return SHMQ_OK;
}

static size_t request_size(uint16_t type)
{
	switch (type) {
	case SHMQ_MSG_HELLO:  return sizeof(struct shmq_wire_hello);
	case SHMQ_MSG_CREATE: return sizeof(struct shmq_wire_create);
	case SHMQ_MSG_OPEN:   return sizeof(struct shmq_wire_open);
	case SHMQ_MSG_DETACH: return sizeof(struct shmq_wire_detach);
	case SHMQ_MSG_DELETE: return sizeof(struct shmq_wire_name);
	case SHMQ_MSG_STAT:   return sizeof(struct shmq_wire_name);
	case SHMQ_MSG_LIST:   return sizeof(struct shmq_wire_list);
	case SHMQ_MSG_USERS:  return sizeof(struct shmq_wire_users);
	case SHMQ_MSG_BLOCKED: return sizeof(struct shmq_wire_detach);
	case SHMQ_MSG_DEADLOCKS: return sizeof(struct shmq_wire_deadlocks);
	default:              return 0;
	}
}

static int check_body(uint16_t type, const void *body)
{
	switch (type) {
	case SHMQ_MSG_HELLO:
	case SHMQ_MSG_DETACH:
	case SHMQ_MSG_BLOCKED:
		return SHMQ_OK;
	case SHMQ_MSG_DEADLOCKS: {
		const struct shmq_wire_deadlocks *d = body;
		return d->flags || d->pad ? SHMQ_EINVAL : SHMQ_OK;
	}
	case SHMQ_MSG_CREATE: {
		const struct shmq_wire_create *c = body;
		if (c->mode & ~0777u ||
		    c->config_flags & ~(SHMQ_CFG_AUTO_CLOSE | SHMQ_CFG_ACKED |
					SHMQ_CFG_DEADLOCK_FAIL) ||
		    c->flags & ~SHMQ_WIRE_EXIST_OK || c->pad)
			return SHMQ_EINVAL;
		if (wire_check_name(c->dead_letter, sizeof(c->dead_letter), 1) !=
		    SHMQ_OK)
			return SHMQ_ENAME;
		return wire_check_name(c->name, sizeof(c->name), 0);
	}
	case SHMQ_MSG_OPEN: {
		const struct shmq_wire_open *o = body;
		uint32_t roles = SHMQ_ROLE_PRODUCER | SHMQ_ROLE_CONSUMER |
				 SHMQ_ROLE_RELAY;
		if ((o->role != SHMQ_WIRE_DEAD_LETTER &&
		     ((o->role & ~roles) ||
		      (o->role & (SHMQ_ROLE_PRODUCER | SHMQ_ROLE_RELAY)) ==
			      SHMQ_ROLE_RELAY)) ||
		    o->pad)
			return SHMQ_EINVAL;
		return wire_check_name(o->name, sizeof(o->name), 0);
	}
	case SHMQ_MSG_DELETE:
	case SHMQ_MSG_STAT: {
		const struct shmq_wire_name *n = body;
		return wire_check_name(n->name, sizeof(n->name), 0);
	}
	case SHMQ_MSG_LIST: {
		const struct shmq_wire_list *l = body;
		return wire_check_name(l->after, sizeof(l->after), 1);
	}
	case SHMQ_MSG_USERS: {
		const struct shmq_wire_users *u = body;
		return u->pad ? SHMQ_EINVAL : SHMQ_OK;
	}
	default:
		return SHMQ_EPROTO;
	}
}

int wire_check_request(const void *pkt, size_t len, uint16_t *type,
		       uint32_t *seq, const void **body)
{
	struct shmq_wire_hdr h;

	if (len < sizeof(h))
		return SHMQ_EPROTO;
	memcpy(&h, pkt, sizeof(h));
	if (h.magic != SHMQ_WIRE_MAGIC || h.len != len)
		return SHMQ_EPROTO;
	*type = h.type;
	*seq = h.seq;
	if (h.version != SHMQ_WIRE_VERSION)
		return SHMQ_EPROTO;
	uint16_t base = h.type;
	if (wire_noreply(h.type))
		base = h.type & ~SHMQ_MSG_NOREPLY;
	size_t want = request_size(base);
	if (want == 0 || len - sizeof(h) != want)
		return SHMQ_EINVAL;
	*body = (const char *)pkt + sizeof(h);
	return check_body(base, *body);
}

int wire_noreply(uint16_t type)
{
	return type == (SHMQ_MSG_DETACH | SHMQ_MSG_NOREPLY) ||
	       type == (SHMQ_MSG_BLOCKED | SHMQ_MSG_NOREPLY);
}

static size_t reply_min_size(uint16_t type)
{
	switch (type) {
	case SHMQ_MSG_HELLO:  return sizeof(struct shmq_wire_hello_reply);
	case SHMQ_MSG_OPEN:   return sizeof(struct shmq_wire_open_reply);
	case SHMQ_MSG_STAT:   return sizeof(struct shmq_wire_stat_reply);
	case SHMQ_MSG_LIST:
		return offsetof(struct shmq_wire_list_reply, entries);
	case SHMQ_MSG_USERS:
		return offsetof(struct shmq_wire_users_reply, entries);
	case SHMQ_MSG_DEADLOCKS:
		return offsetof(struct shmq_wire_deadlocks_reply, rows);
	default:              return sizeof(struct shmq_wire_status);
	}
}

int wire_check_reply(const void *pkt, size_t len, uint16_t type,
		     uint32_t seq, const void **body, size_t *body_len)
{
	struct shmq_wire_hdr h;
	struct shmq_wire_status st;

	if (len < sizeof(h) + sizeof(st))
		return SHMQ_EPROTO;
	memcpy(&h, pkt, sizeof(h));
	if (h.magic != SHMQ_WIRE_MAGIC || h.version != SHMQ_WIRE_VERSION ||
	    h.len != len || h.type != (type | SHMQ_MSG_REPLY) || h.seq != seq)
		return SHMQ_EPROTO;
	*body = (const char *)pkt + sizeof(h);
	*body_len = len - sizeof(h);
	memcpy(&st, *body, sizeof(st));
	/* An error reply may be just the status. */
	if (st.status != SHMQ_OK)
		return SHMQ_OK;
	if (*body_len < reply_min_size(type))
		return SHMQ_EPROTO;
	if (type == SHMQ_MSG_LIST) {
		const struct shmq_wire_list_reply *l = *body;
		uint32_t count;
		memcpy(&count, &l->count, sizeof(count));
		if (count > SHMQ_WIRE_LIST_PAGE ||
		    *body_len != offsetof(struct shmq_wire_list_reply, entries) +
					 count * sizeof(struct shmq_wire_stat))
			return SHMQ_EPROTO;
	} else if (type == SHMQ_MSG_USERS) {
		const struct shmq_wire_users_reply *u = *body;
		uint32_t count;
		memcpy(&count, &u->count, sizeof(count));
		if (count > SHMQ_WIRE_USERS_PAGE ||
		    *body_len != offsetof(struct shmq_wire_users_reply,
					  entries) +
					 count * sizeof(struct shmq_wire_user))
			return SHMQ_EPROTO;
	} else if (type == SHMQ_MSG_DEADLOCKS) {
		const struct shmq_wire_deadlocks_reply *d = *body;
		uint32_t count;
		memcpy(&count, &d->count, sizeof(count));
		if (count > SHMQ_WIRE_DL_MAX ||
		    *body_len != offsetof(struct shmq_wire_deadlocks_reply,
					  rows) +
					 count * sizeof(struct shmq_wire_dl_wait))
			return SHMQ_EPROTO;
	} else if (*body_len != reply_min_size(type)) {
		return SHMQ_EPROTO;
	}
	return SHMQ_OK;
}

void wire_stat_pack(struct shmq_wire_stat *w, const struct shmq_stat *s)
{
	memset(w, 0, sizeof(*w));
	memcpy(w->name, s->name, sizeof(w->name));
	w->name[SHMQ_NAME_MAX] = '\0';
	w->capacity = s->capacity;
	w->max_msg = s->max_msg;
	w->max_bytes = s->max_bytes;
	w->mode = s->mode;
	w->uid = s->uid;
	w->gid = s->gid;
	w->flags = s->flags;
	w->messages = s->messages;
	w->bytes = s->bytes;
	w->producers = s->producers;
	w->consumers = s->consumers;
	w->put_blocked = s->put_blocked;
	w->get_blocked = s->get_blocked;
	w->total_put = s->total_put;
	w->total_got = s->total_got;
	w->discarded = s->discarded;
	w->state = (uint32_t)s->state;
	w->auto_closed = (uint32_t)s->auto_closed;
	w->producer_lost = (uint32_t)s->producer_lost;
	w->deadlocked = (uint32_t)s->deadlocked;
	w->created_ns = s->created_ns;
	w->closed_ns = s->closed_ns;
	w->leased = s->leased;
	w->returned = s->returned;
	w->acked = s->acked;
	w->dead_lettered = s->dead_lettered;
	w->dropped = s->dropped;
	w->lease_timeout_ms = s->lease_timeout_ms;
	w->max_deliveries = s->max_deliveries;
	memcpy(w->dead_letter, s->dead_letter, sizeof(w->dead_letter));
	w->dead_letter[SHMQ_NAME_MAX] = '\0';
}

void wire_stat_unpack(struct shmq_stat *s, const struct shmq_wire_stat *w)
{
	memset(s, 0, sizeof(*s));
	memcpy(s->name, w->name, sizeof(s->name));
	s->name[SHMQ_NAME_MAX] = '\0';
	s->capacity = w->capacity;
	s->max_msg = w->max_msg;
	s->max_bytes = w->max_bytes;
	s->mode = w->mode;
	s->uid = w->uid;
	s->gid = w->gid;
	s->flags = w->flags;
	s->messages = w->messages;
	s->bytes = w->bytes;
	s->producers = w->producers;
	s->consumers = w->consumers;
	s->put_blocked = w->put_blocked;
	s->get_blocked = w->get_blocked;
	s->total_put = w->total_put;
	s->total_got = w->total_got;
	s->discarded = w->discarded;
	s->state = (int)w->state;
	s->auto_closed = (int)w->auto_closed;
	s->producer_lost = (int)w->producer_lost;
	s->deadlocked = (int)w->deadlocked;
	s->created_ns = w->created_ns;
	s->closed_ns = w->closed_ns;
	s->leased = w->leased;
	s->returned = w->returned;
	s->acked = w->acked;
	s->dead_lettered = w->dead_lettered;
	s->dropped = w->dropped;
	s->lease_timeout_ms = w->lease_timeout_ms;
	s->max_deliveries = w->max_deliveries;
	memcpy(s->dead_letter, w->dead_letter, sizeof(s->dead_letter));
	s->dead_letter[SHMQ_NAME_MAX] = '\0';
}

void wire_dl_unpack(struct shmq_deadlock_wait *d,
		    const struct shmq_wire_dl_wait *w)
{
	memset(d, 0, sizeof(*d));
	d->deadlock = w->deadlock;
	d->behind = !!(w->flags & SHMQ_WIRE_DL_BEHIND);
	d->pid = w->pid;
	memcpy(d->comm, w->comm, sizeof(d->comm));
	d->comm[sizeof(d->comm) - 1] = '\0';
	d->put = !!(w->flags & SHMQ_WIRE_DL_PUT);
	memcpy(d->queue, w->queue, sizeof(d->queue));
	d->queue[SHMQ_NAME_MAX] = '\0';
	d->messages = w->messages;
	d->capacity = w->capacity;
	d->threads = w->threads;
	d->blocked_ns = w->blocked_ns;
	d->ends_in_ns = w->ends_in_ns > 0 ? w->ends_in_ns : 0;
	d->bytes = w->bytes;
	d->max_bytes = w->max_bytes;
	d->fail = !!(w->flags & SHMQ_WIRE_DL_FAIL);
	d->victim = !!(w->flags & SHMQ_WIRE_DL_VICTIM);
	d->nfreers = w->nfreers;
	uint32_t k = w->nfreers < SHMQ_DEADLOCK_FREERS ? w->nfreers
						       : SHMQ_DEADLOCK_FREERS;
	for (uint32_t i = 0; i < k; i++)
		d->freers[i] = w->freers[i];
}
