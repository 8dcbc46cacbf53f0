/*
 * session.c - connections from clients: requests in, replies out.
 *
 * Owns the client connections and the meaning of every request: who may
 * create, open, close, delete, stat and list what.  Every packet is
 * checked by wire.c before it is looked at; credentials come from the
 * kernel (SO_PEERCRED, SO_PEERGROUPS), never from the client.  A client
 * that misbehaves loses its connection; it never stops the daemon from
 * serving the others.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>

#include "deadlock.h"
#include "log.h"
#include "procs.h"
#include "quota.h"
#include "registry.h"
#include "session.h"
#include "wire.h"

struct session {
	int fd;
	struct event *ev;
	struct event *deadline;         /* a refused one's: closed then */
	struct peer peer;
	LIST_ENTRY(session) link;
	LIST_ENTRY(session) refused;    /* in refused_sessions */
};

static struct event_base *evbase;
static LIST_HEAD(, session) sessions = LIST_HEAD_INITIALIZER(sessions);
static LIST_HEAD(, session) refused_sessions =
	LIST_HEAD_INITIALIZER(refused_sessions);
static size_t nsessions;        /* refused ones included */
static size_t nrefused;         /* refused, waiting to be told so */
static int spare_fd = -1;       /* given up to accept-and-close at EMFILE */

/* A refused connection is kept until its first request, to answer it
 * clearly (the library sends its HELLO right after connecting), but for
 * two seconds at most, at most 4 of each uid and 64 in all: so that neither
 * connecting in a loop nor holding connections that never speak makes
 * the daemon hold descriptors beyond the limits, or keeps the other
 * users from hearing their own refusal.  Past these, a refused
 * connection is closed at once (the client sees the daemon hang up). */
#define REFUSED_PENDING_MAX 64
#define REFUSED_PER_UID     4
#define REFUSED_WAIT_MS     2000

/* Every reply body, for sizing the buffer they are built in. */
union reply {
	struct shmq_wire_status st;
	struct shmq_wire_hello_reply hello;
	struct shmq_wire_open_reply open;
	struct shmq_wire_stat_reply stat;
	struct shmq_wire_list_reply list;
	struct shmq_wire_users_reply users;
	struct shmq_wire_deadlocks_reply deadlocks;
};

static void set_status(union reply *r, int status, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void set_status(union reply *r, int status, const char *fmt, ...)
{
	va_list ap;

	r->st.status = status;
	r->st.pad = 0;
	memset(r->st.detail, 0, sizeof(r->st.detail));
	if (fmt) {
		va_start(ap, fmt);
		vsnprintf(r->st.detail, sizeof(r->st.detail), fmt, ap);
		va_end(ap);
	}
}

/* --- permissions ------------------------------------------------------- */

static int in_group(const struct peer *p, uint32_t gid)
{
	if (p->gid == gid)
		return 1;
	for (int i = 0; i < p->ngroups; i++)
		if (p->groups[i] == gid)
			return 1;
	return 0;
}

/* The file-permission rule: owner bits, else group bits, else the rest;
 * root may do anything. */
static unsigned access_of(const struct peer *p, const struct queue *q)
{
	unsigned bits;

	if (p->uid == 0)
		return SHMQ_ACCESS_READ | SHMQ_ACCESS_WRITE;
	if (p->uid == q->uid)
		bits = q->mode >> 6;
	else if (in_group(p, q->gid))
		bits = q->mode >> 3;
	else
		bits = q->mode;
	return ((bits & 4) ? SHMQ_ACCESS_READ : 0) |
	       ((bits & 2) ? SHMQ_ACCESS_WRITE : 0);
}

/* Finds a queue the peer may use with `need`; sets the reply status if
 * not.  A queue the peer may not even read is reported as missing only if
 * it does not exist: "permission denied" is the truthful answer. */
static struct queue *lookup(const struct peer *p, const char *name,
			    unsigned need, union reply *r)
{
	struct queue *q = registry_find(name);

	if (q == NULL) {
		set_status(r, SHMQ_ENOENT, NULL);
		return NULL;
	}
	if ((access_of(p, q) & need) != need) {
		set_status(r, SHMQ_EACCES, "needs %s%s%s permission",
			   need & SHMQ_ACCESS_READ ? "read" : "",
			   need == (SHMQ_ACCESS_READ | SHMQ_ACCESS_WRITE)
				   ? " and "
				   : "",
			   need & SHMQ_ACCESS_WRITE ? "write" : "");
		return NULL;
	}
	return q;
}

static void read_stat(struct queue *q, void *arg)
{
	ring_stat(&q->ring, arg);
}

static int trusted_stat(struct queue *q, struct shmq_wire_stat *w)
{
	struct shmq_stat s;

	if (registry_access(q, read_stat, &s) != SHMQ_OK)
		return SHMQ_ECORRUPT;
	/* Owner, mode and names from our own record, not the segment. */
	strcpy(s.name, q->name);
	strcpy(s.dead_letter, q->dead_letter);
	s.uid = q->uid;
	s.gid = q->gid;
	s.mode = q->mode;
	wire_stat_pack(w, &s);
	return SHMQ_OK;
}

/* --- requests ---------------------------------------------------------- */

static size_t do_hello(struct peer *p, const struct shmq_wire_hello *h,
		       union reply *r, int *hang_up)
{
	if (h->wire_version != SHMQ_WIRE_VERSION ||
	    h->layout_version != SHMQ_LAYOUT_VERSION) {
		set_status(r, SHMQ_EPROTO,
			   "daemon speaks wire %u, layout %u; client %u, %u",
			   SHMQ_WIRE_VERSION, SHMQ_LAYOUT_VERSION,
			   h->wire_version, h->layout_version);
		*hang_up = 1;
		return sizeof(r->st);
	}
	p->hello = 1;
	set_status(r, SHMQ_OK, NULL);
	r->hello.wire_version = SHMQ_WIRE_VERSION;
	r->hello.layout_version = SHMQ_LAYOUT_VERSION;
	r->hello.daemon_pid = (uint32_t)getpid();
	r->hello.pad = 0;
	return sizeof(r->hello);
}

/* May the user `uid` (with primary group `gid`, and no other groups
 * known) write queue q?  For a dead-letter queue, asked for the owner of
 * the queue whose dead letters go there. */
static int owner_may_write(uint32_t uid, uint32_t gid, const struct queue *q)
{
	struct peer owner = { .uid = uid, .gid = gid };

	return (access_of(&owner, q) & SHMQ_ACCESS_WRITE) != 0;
}

static size_t do_create(struct peer *p, const struct shmq_wire_create *c,
			union reply *r)
{
	static struct log_limit said;
	struct queue *q;
	char detail[SHMQ_WIRE_DETAIL] = "";
	int rc;

	if (c->dead_letter[0]) {
		const struct queue *dl = registry_find(c->dead_letter);
		if (dl == NULL) {
			set_status(r, SHMQ_ENOENT,
				   "dead-letter queue '%.60s' does not exist",
				   c->dead_letter);
			return sizeof(r->st);
		}
		if (!owner_may_write(p->uid, p->gid, dl)) {
			set_status(r, SHMQ_EACCES,
				   "uid %u may not write dead-letter queue "
				   "'%.60s'", p->uid, c->dead_letter);
			return sizeof(r->st);
		}
		if (dl->ring.max_msg < c->max_msg) {
			set_status(r, SHMQ_EINVAL,
				   "dead-letter queue '%.60s' takes messages "
				   "of at most %u bytes, fewer than %u",
				   c->dead_letter, dl->ring.max_msg,
				   c->max_msg);
			return sizeof(r->st);
		}
	}
	rc = registry_create(c, p->uid, p->gid, &q, detail, sizeof(detail));

	if (rc == SHMQ_EEXIST && (c->flags & SHMQ_WIRE_EXIST_OK)) {
		rc = SHMQ_OK;
	} else if (rc == SHMQ_OK) {
		deadlock_take(q);
		log_info("created queue '%s' for uid %u: capacity %u, max-msg "
			 "%u, max-bytes %" PRIu64 ", mode %03o%s%s%s",
			 c->name, p->uid, c->capacity, c->max_msg,
			 c->max_bytes, c->mode,
			 c->config_flags & SHMQ_CFG_AUTO_CLOSE ? ", auto-close"
							       : "",
			 c->config_flags & SHMQ_CFG_ACKED ? ", acked" : "",
			 c->config_flags & SHMQ_CFG_DEADLOCK_FAIL
				 ? ", on-deadlock fail"
				 : "");
	} else if (rc == SHMQ_ELIMIT) {
		log_debug("uid %u cannot create queue '%s': %s", p->uid,
			  c->name, detail);     /* quota.c logs the first */
	} else if (rc != SHMQ_EEXIST)
		log_warn_limited(&said, "uid %u cannot create queue '%s': %s "
				 "(%s)", p->uid, c->name, shmq_strerror(rc),
				 detail);
	set_status(r, rc, "%s", rc == SHMQ_OK ? "" : detail);
	return sizeof(r->st);
}

static size_t grant(struct peer *p, struct queue *q, uint32_t role,
		    union reply *r, int *fd);
static size_t do_open_dead_letter(struct peer *p,
				  const struct shmq_wire_open *o,
				  union reply *r, int *fd);

static size_t do_open(struct peer *p, const struct shmq_wire_open *o,
		      union reply *r, int *fd)
{
	unsigned need = 0;
	struct queue *q;

	if (o->role == SHMQ_WIRE_DEAD_LETTER)
		return do_open_dead_letter(p, o, r, fd);
	if (o->role & SHMQ_ROLE_PRODUCER)
		need |= SHMQ_ACCESS_WRITE;
	if (o->role & SHMQ_ROLE_CONSUMER || o->role == 0)
		need |= SHMQ_ACCESS_READ;
	if ((q = lookup(p, o->name, need, r)) == NULL)
		return sizeof(r->st);
	return grant(p, q, o->role, r, fd);
}

/* The dead-letter queue of `o->name`, for one of its consumers that may
 * write it itself: the handle maps the queue read-write, so it is granted
 * as to a producer (the owner's right to write there, checked at create,
 * says nothing about this peer's).  A consumer refused it leaves its dead
 * letters waiting for one that may. */
static size_t do_open_dead_letter(struct peer *p,
				  const struct shmq_wire_open *o,
				  union reply *r, int *fd)
{
	struct queue *src = lookup(p, o->name, SHMQ_ACCESS_READ, r), *dl;

	if (src == NULL)
		return sizeof(r->st);
	if (src->dead_letter[0] == '\0') {
		set_status(r, SHMQ_ENOENT, "'%.60s' has no dead-letter queue",
			   src->name);
		return sizeof(r->st);
	}
	dl = registry_find(src->dead_letter);
	if (dl == NULL) {
		set_status(r, SHMQ_ENOENT,
			   "dead-letter queue '%.60s' does not exist",
			   src->dead_letter);
		return sizeof(r->st);
	}
	if (!(access_of(p, dl) & SHMQ_ACCESS_WRITE)) {
		set_status(r, SHMQ_EACCES,
			   "uid %u may not write dead-letter queue '%.60s'",
			   p->uid, dl->name);
		return sizeof(r->st);
	}
	return grant(p, dl, SHMQ_ROLE_PRODUCER | SHMQ_ROLE_RELAY, r, fd);
}

/* Attaches the peer to q in `role` and replies with the segment. */
static size_t grant(struct peer *p, struct queue *q, uint32_t role,
		    union reply *r, int *fd)
{
	char why[SHMQ_WIRE_DETAIL] = "";
	uint32_t index, gen;
	int rc;

	*fd = registry_segment_fd(q);
	if (*fd < 0) {
		rc = (errno == EMFILE || errno == ENFILE) ? SHMQ_ELIMIT
							  : SHMQ_ESYS;
		set_status(r, rc, "cannot open the segment: %s",
			   strerror(errno));
		return sizeof(r->st);
	}
	rc = procs_attach(p->pid, p->uid, q, role, &index, &gen, why,
			  sizeof(why));
	if (rc != SHMQ_OK) {
		close(*fd);
		*fd = -1;
		set_status(r, rc, "%s", why);
		return sizeof(r->st);
	}
	log_debug("pid %d opened '%s' as %s%s", p->pid, q->name,
		  (role & 3) == 3 ? "producer+consumer"
		  : (role & 3) == 1 ? "producer"
		  : (role & 3) == 2 ? "consumer" : "observer",
		  role & SHMQ_ROLE_RELAY ? " (relay)" : "");
	set_status(r, SHMQ_OK, NULL);
	r->open.queue_id = q->id;
	r->open.seg_size = q->ring.seg_size;
	r->open.client = index;
	r->open.gen = gen;
	r->open.access = access_of(p, q);
	r->open.uid = q->uid;
	r->open.gid = q->gid;
	r->open.mode = q->mode;
	return sizeof(r->open);
}

static size_t do_detach(struct peer *p, const struct shmq_wire_detach *d,
			union reply *r)
{
	int rc = procs_detach(p->pid, d->queue_id, d->client, d->gen);

	set_status(r, rc, rc == SHMQ_OK ? NULL : "no such attachment");
	return sizeof(r->st);
}

static size_t do_delete(struct peer *p, const struct shmq_wire_name *n,
			union reply *r)
{
	struct queue *q = registry_find(n->name);

	if (q == NULL) {
		set_status(r, SHMQ_ENOENT, NULL);
	} else if (p->uid != 0 && p->uid != q->uid) {
		set_status(r, SHMQ_EACCES, "only the owner may delete");
	} else {
		log_info("uid %u deleted '%s'", p->uid, q->name);
		set_status(r, registry_delete(q), NULL);
	}
	return sizeof(r->st);
}

static size_t do_stat(struct peer *p, const struct shmq_wire_name *n,
		      union reply *r)
{
	struct queue *q = lookup(p, n->name, SHMQ_ACCESS_READ, r);

	if (q == NULL)
		return sizeof(r->st);
	if (trusted_stat(q, &r->stat.stat) != SHMQ_OK) {
		set_status(r, SHMQ_ECORRUPT, "the queue's segment was destroyed");
		return sizeof(r->st);
	}
	set_status(r, SHMQ_OK, NULL);
	return sizeof(r->stat);
}

struct list_walk {
	const struct peer *peer;
	struct shmq_wire_list_reply *rep;
};

static int list_one(struct queue *q, void *arg)
{
	struct list_walk *w = arg;

	if (!(access_of(w->peer, q) & SHMQ_ACCESS_READ))
		return 0;
	if (w->rep->count == SHMQ_WIRE_LIST_PAGE) {
		w->rep->more = 1;
		return 1;
	}
	if (trusted_stat(q, &w->rep->entries[w->rep->count]) == SHMQ_OK)
		w->rep->count++;
	return 0;
}

static size_t do_list(struct peer *p, const struct shmq_wire_list *l,
		      union reply *r)
{
	struct list_walk w = { p, &r->list };

	set_status(r, SHMQ_OK, NULL);
	r->list.count = 0;
	r->list.more = 0;
	registry_walk(l->after, list_one, &w);
	return offsetof(struct shmq_wire_list_reply, entries) +
	       r->list.count * sizeof(struct shmq_wire_stat);
}

static void user_pack(struct shmq_wire_user *w, const struct quota_view *v,
		      uint32_t flags)
{
	memset(w, 0, sizeof(*w));
	w->uid = v->uid;
	w->flags = flags | (v->exempt ? SHMQ_WIRE_USER_EXEMPT : 0);
	w->bytes = v->used[QUOTA_BYTES];
	w->max_bytes = v->limit[QUOTA_BYTES];
	w->queues = v->used[QUOTA_QUEUES];
	w->max_queues = v->limit[QUOTA_QUEUES];
	w->clients = v->used[QUOTA_CLIENTS];
	w->max_clients = v->limit[QUOTA_CLIENTS];
	w->handles = v->used[QUOTA_HANDLES];
	w->max_handles = v->limit[QUOTA_HANDLES];
}

static int users_one(const struct quota_view *v, void *arg)
{
	struct shmq_wire_users_reply *rep = arg;

	if (rep->count == SHMQ_WIRE_USERS_PAGE) {
		rep->more = 1;
		return 1;
	}
	user_pack(&rep->entries[rep->count++], v, 0);
	return 0;
}

/* Root and the daemon's own uid see every user; anybody else only itself
 * (even holding nothing: its limits are worth knowing) and the totals,
 * which say no more than a refusal by a global limit would. */
static size_t do_users(struct peer *p, const struct shmq_wire_users *u,
		       union reply *r)
{
	struct quota_view v;

	set_status(r, SHMQ_OK, NULL);
	r->users.count = 0;
	r->users.more = 0;
	quota_total(&v);
	user_pack(&r->users.total, &v, SHMQ_WIRE_USER_TOTAL);
	if (p->uid == 0 || p->uid == quota_daemon_uid()) {
		quota_walk(u->from, users_one, &r->users);
	} else if (u->from <= p->uid) {
		quota_view(p->uid, &v);
		users_one(&v, &r->users);
	}
	return offsetof(struct shmq_wire_users_reply, entries) +
	       r->users.count * sizeof(struct shmq_wire_user);
}

/* A call on one of the peer's own attachments has been blocked for a
 * while: look at its queue.  Anything else is ignored (no reply says so
 * anyway). */
static size_t do_blocked(struct peer *p, const struct shmq_wire_detach *b,
			 union reply *r)
{
	struct queue *q = procs_attachment(p->pid, b->queue_id, b->client,
					   b->gen);

	if (q)
		deadlock_watch(q);
	set_status(r, q ? SHMQ_OK : SHMQ_ENOENT,
		   q ? NULL : "no such attachment");
	return sizeof(r->st);
}

/* Whether the peer may read the queue of id `id` (root: any). */
static int may_read(const struct peer *p, uint64_t id)
{
	const struct queue *q = registry_find_id(id);

	return p->uid == 0 ||
	       (q != NULL && (access_of(p, q) & SHMQ_ACCESS_READ));
}

/* The deadlocks of the last look: those where the peer may read at least
 * one of the queues (root: all), renumbered from 0.  A wait on a queue
 * it may not read is listed without the queue: no name, no contents, no
 * policy (the processes, pids and command names, are public in /proc
 * anyway). */
static size_t do_deadlocks(struct peer *p, union reply *r)
{
	const struct shmq_wire_dl_wait *all;
	const uint64_t *ids;
	uint32_t more, n = 0;
	size_t count = deadlock_rows(&all, &ids, &more);
	int shown[SHMQ_WIRE_DL_MAX], num[SHMQ_WIRE_DL_MAX], next = 0;

	for (size_t d = 0; d < SHMQ_WIRE_DL_MAX; d++)
		shown[d] = 0, num[d] = -1;
	for (size_t i = 0; i < count; i++)
		if (all[i].deadlock < SHMQ_WIRE_DL_MAX && may_read(p, ids[i]))
			shown[all[i].deadlock] = 1;
	set_status(r, SHMQ_OK, NULL);
	for (size_t i = 0; i < count; i++) {
		uint32_t d = all[i].deadlock;
		if (d >= SHMQ_WIRE_DL_MAX || !shown[d])
			continue;
		if (num[d] < 0)
			num[d] = next++;
		struct shmq_wire_dl_wait *w = &r->deadlocks.rows[n++];
		*w = all[i];
		w->deadlock = (uint32_t)num[d];
		if (!may_read(p, ids[i])) {
			memset(w->queue, 0, sizeof(w->queue));
			w->messages = w->capacity = 0;
			w->bytes = w->max_bytes = 0;
			w->flags &= ~SHMQ_WIRE_DL_FAIL;
		}
	}
	r->deadlocks.count = n;
	r->deadlocks.more = more;
	r->deadlocks.timeout_ms = deadlock_timeout_ms();
	r->deadlocks.pad = 0;
	return offsetof(struct shmq_wire_deadlocks_reply, rows) +
	       n * sizeof(struct shmq_wire_dl_wait);
}

size_t session_handle(struct peer *p, const void *pkt, size_t len, void *out,
		      int *fd, int *hang_up)
{
	static union reply r;
	uint16_t type = 0;
	uint32_t seq = 0;
	const void *body = NULL;
	size_t n;
	int rc;

	*fd = -1;
	*hang_up = 0;
	rc = wire_check_request(pkt, len, &type, &seq, &body);
	if (rc == SHMQ_EPROTO && (len < sizeof(struct shmq_wire_hdr) ||
				  ((const struct shmq_wire_hdr *)pkt)->magic !=
					  SHMQ_WIRE_MAGIC)) {
		/* Not our protocol at all: nothing to answer. */
		return 0;
	}
	if (rc != SHMQ_OK) {
		set_status(&r, rc, "malformed request (type %u, %zu bytes)",
			   type, len);
		*hang_up = rc == SHMQ_EPROTO;
		n = sizeof(r.st);
	} else if (p->refused) {
		set_status(&r, SHMQ_ELIMIT, "%s", p->refused_why);
		*hang_up = 1;
		n = sizeof(r.st);
	} else if (!p->hello && type != SHMQ_MSG_HELLO) {
		set_status(&r, SHMQ_EPROTO, "HELLO must come first");
		*hang_up = 1;
		n = sizeof(r.st);
	} else {
		switch (type) {
		case SHMQ_MSG_HELLO:
			n = do_hello(p, body, &r, hang_up);
			break;
		case SHMQ_MSG_CREATE:
			n = do_create(p, body, &r);
			break;
		case SHMQ_MSG_OPEN:
			n = do_open(p, body, &r, fd);
			break;
		case SHMQ_MSG_DETACH:
		case SHMQ_MSG_DETACH | SHMQ_MSG_NOREPLY:
			n = do_detach(p, body, &r);
			break;
		case SHMQ_MSG_DELETE:
			n = do_delete(p, body, &r);
			break;
		case SHMQ_MSG_STAT:
			n = do_stat(p, body, &r);
			break;
		case SHMQ_MSG_LIST:
			n = do_list(p, body, &r);
			break;
		case SHMQ_MSG_USERS:
			n = do_users(p, body, &r);
			break;
		case SHMQ_MSG_BLOCKED:
		case SHMQ_MSG_BLOCKED | SHMQ_MSG_NOREPLY:
			n = do_blocked(p, body, &r);
			break;
		case SHMQ_MSG_DEADLOCKS:
			n = do_deadlocks(p, &r);
			break;
		default:        /* wire_check_request knows every type */
			set_status(&r, SHMQ_EINVAL, "unknown request");
			n = sizeof(r.st);
			break;
		}
	}
	return wire_pack(out, type | SHMQ_MSG_REPLY, seq, &r, n);
}

/* --- connections ------------------------------------------------------- */

static void session_end(struct session *s)
{
	int pid = s->peer.pid;

	LIST_REMOVE(s, link);
	nsessions--;
	if (s->peer.refused) {
		LIST_REMOVE(s, refused);
		nrefused--;
		event_free(s->deadline);
	} else {
		quota_give(s->peer.uid, QUOTA_CLIENTS, 1);
	}
	event_free(s->ev);
	close(s->fd);
	free(s->peer.groups);
	free(s);
	/* A client that exited is released now, not when its pidfd event
	 * comes round. */
	procs_check(pid);
}

static void drop_fds(struct msghdr *mh)
{
	for (struct cmsghdr *c = CMSG_FIRSTHDR(mh); c; c = CMSG_NXTHDR(mh, c)) {
		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		size_t n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (size_t i = 0; i < n; i++) {
			int fd;
			memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(fd));
			close(fd);
		}
	}
}

static int send_reply(struct session *s, const void *pkt, size_t len, int fd)
{
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} cbuf;
	struct iovec iov = { (void *)pkt, len };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };

	if (fd >= 0) {
		memset(&cbuf, 0, sizeof(cbuf));
		mh.msg_control = cbuf.buf;
		mh.msg_controllen = sizeof(cbuf.buf);
		struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(c), &fd, sizeof(int));
	}
	/* A client that does not read its replies is not waited for. */
	return sendmsg(s->fd, &mh, MSG_DONTWAIT | MSG_NOSIGNAL) ==
	       (ssize_t)len;
}

static void on_readable(evutil_socket_t fd, short what, void *arg)
{
	static char in[SHMQ_WIRE_MAX], out[SHMQ_WIRE_MAX];
	union {
		char buf[CMSG_SPACE(sizeof(int) * 8)];
		struct cmsghdr align;
	} cbuf;
	struct session *s = arg;
	struct iovec iov = { in, sizeof(in) };
	struct msghdr mh = {
		.msg_iov = &iov, .msg_iovlen = 1,
		.msg_control = cbuf.buf, .msg_controllen = sizeof(cbuf.buf),
	};
	int pass_fd, hang_up;
	ssize_t n;
	size_t rlen;

	(void)what;
	n = recvmsg(fd, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC | MSG_TRUNC);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	/* A failed call (ECONNRESET: the client left with a reply unread)
	 * received no descriptors and did not update msg_controllen: cbuf
	 * still holds what an earlier call left there, numbers that are
	 * now other clients' sockets and pidfds. */
	if (n >= 0)
		drop_fds(&mh);
	if (n <= 0) {
		session_end(s);
		return;
	}
	if ((size_t)n > sizeof(in) || (mh.msg_flags & MSG_TRUNC)) {
		static struct log_limit said;
		log_warn_limited(&said, "pid %d sent an oversized packet (%zd "
				 "bytes): disconnected", s->peer.pid, n);
		session_end(s);
		return;
	}
	rlen = session_handle(&s->peer, in, (size_t)n, out, &pass_fd,
			      &hang_up);
	registry_reap();        /* between requests, nobody holds a queue */
	/* A well-formed DETACH or BLOCKED that asked for no reply gets none;
	 * anything else with that bit is malformed and answered as such. */
	const struct shmq_wire_hdr *req = (const void *)in;
	if (rlen > 0 && !hang_up && wire_noreply(req->type) &&
	    (size_t)n == sizeof(*req) + sizeof(struct shmq_wire_detach)) {
		if (pass_fd >= 0)
			close(pass_fd);
		return;
	}
	if (rlen == 0) {
		static struct log_limit said;
		log_warn_limited(&said, "pid %d sent a packet that is not shmq "
				 "protocol: disconnected", s->peer.pid);
		session_end(s);
		return;
	}
	if (!send_reply(s, out, rlen, pass_fd)) {
		if (pass_fd >= 0) {
			/* The client never learnt of its attachment. */
			const struct shmq_wire_open_reply *o =
				(const void *)(out + sizeof(struct shmq_wire_hdr));
			procs_detach(s->peer.pid, o->queue_id, o->client,
				     o->gen);
		}
		hang_up = 1;
	}
	if (pass_fd >= 0)
		close(pass_fd);
	if (hang_up)
		session_end(s);
}

static int read_peer(int fd, struct peer *p)
{
	struct ucred cred;
	socklen_t len = sizeof(cred);

	memset(p, 0, sizeof(*p));
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0)
		return -1;
	p->pid = cred.pid;
	p->uid = cred.uid;
	p->gid = cred.gid;

	/* Supplementary groups, for the group permission bits. */
	len = 0;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, NULL, &len) < 0 &&
	    errno != ERANGE)
		return 0;       /* old kernel: primary group only */
	if (len == 0)
		return 0;
	p->groups = malloc(len);
	if (p->groups == NULL)
		return -1;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, p->groups, &len) < 0) {
		free(p->groups);
		p->groups = NULL;
		return 0;
	}
	p->ngroups = (int)(len / sizeof(gid_t));
	return 0;
}

/* A refused connection that did not speak in time. */
static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
	struct session *s = arg;

	(void)fd;
	(void)what;
	log_debug("pid %d (uid %u) refused and silent: closed", s->peer.pid,
		  s->peer.uid);
	session_end(s);
}

/* Whether another refused connection of `uid` may wait for its answer. */
static int may_wait_refused(uint32_t uid)
{
	unsigned n = 0;
	struct session *s;

	if (nrefused >= REFUSED_PENDING_MAX)
		return 0;
	LIST_FOREACH(s, &refused_sessions, refused)
		n += s->peer.uid == uid;
	return n < REFUSED_PER_UID;
}

static void session_new(int fd)
{
	struct session *s = calloc(1, sizeof(*s));
	struct timeval wait = { REFUSED_WAIT_MS / 1000,
				REFUSED_WAIT_MS % 1000 * 1000 };
	char why[SHMQ_WIRE_DETAIL];

	if (s == NULL || read_peer(fd, &s->peer) < 0) {
		free(s);
		close(fd);
		return;
	}
	/* Over a limit or its user's quota, the connection still gets one
	 * clear answer, to its first request, if it comes soon. */
	if (quota_take(s->peer.uid, QUOTA_CLIENTS, 1, 0, why, sizeof(why)) !=
	    SHMQ_OK) {
		if (!may_wait_refused(s->peer.uid)) {
			log_debug("pid %d (uid %u) refused at once: %s",
				  s->peer.pid, s->peer.uid, why);
			goto fail;
		}
		s->peer.refused = 1;
		strcpy(s->peer.refused_why, why);
		log_debug("pid %d (uid %u) refused: %s", s->peer.pid,
			  s->peer.uid, why);
		s->deadline = evtimer_new(evbase, on_deadline, s);
		if (s->deadline == NULL || evtimer_add(s->deadline, &wait) < 0)
			goto fail;
	}
	s->fd = fd;
	s->ev = event_new(evbase, fd, EV_READ | EV_PERSIST, on_readable, s);
	if (s->ev == NULL || event_add(s->ev, NULL) < 0) {
		if (s->ev)
			event_free(s->ev);
		if (!s->peer.refused)
			quota_give(s->peer.uid, QUOTA_CLIENTS, 1);
		goto fail;
	}
	if (s->peer.refused) {
		LIST_INSERT_HEAD(&refused_sessions, s, refused);
		nrefused++;
	}
	LIST_INSERT_HEAD(&sessions, s, link);
	nsessions++;
	log_debug("pid %d (uid %u) connected", s->peer.pid, s->peer.uid);
	return;
fail:
	if (s->deadline)
		event_free(s->deadline);
	free(s->peer.groups);
	free(s);
	close(fd);
}

void sessions_accept(int lfd)
{
	for (int burst = 0; burst < 64; burst++) {
		int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd >= 0) {
			session_new(fd);
			continue;
		}
		if ((errno == EMFILE || errno == ENFILE) && spare_fd >= 0) {
			/* Out of descriptors: take the pending connection and
			 * close it, or the listener stays readable forever. */
			close(spare_fd);
			fd = accept(lfd, NULL, NULL);
			if (fd >= 0)
				close(fd);
			static struct log_limit said;
			spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
			log_warn_limited(&said, "out of file descriptors: "
					 "refused a client");
		}
		return;
	}
}

void sessions_init(struct event_base *base)
{
	evbase = base;
	spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
}

size_t sessions_count(void)
{
	return nsessions;
}

void sessions_shutdown(void)
{
	while (!LIST_EMPTY(&sessions)) {
		struct session *s = LIST_FIRST(&sessions);
		LIST_REMOVE(s, link);
		if (s->peer.refused) {
			LIST_REMOVE(s, refused);
			event_free(s->deadline);
		} else {
			quota_give(s->peer.uid, QUOTA_CLIENTS, 1);
		}
		event_free(s->ev);
		close(s->fd);
		free(s->peer.groups);
		free(s);
	}
	nsessions = 0;
	nrefused = 0;
	if (spare_fd >= 0)
		close(spare_fd);
	spare_fd = -1;
}
