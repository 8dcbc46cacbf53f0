/*
 * quota.c - who may take how much of the daemon: the global limits and
 * each user's share of them (see quota.h).
 *
 * Owns the usage counts, per uid and in total, and the words of every
 * refusal.  It only counts: it never allocates or frees what it counts,
 * never refuses what is charged with QUOTA_FORCE (what exists already
 * must be counted, even over a quota), and never logs a quota's hit
 * again until that usage has fallen clearly below the limit, nor more
 * than one line a minute per uid and quota (log.h), so that a client
 * retrying in a loop, or going up and down at its limit, cannot flood
 * the log.
 */
#define _GNU_SOURCE
#include <inttypes.h>
#include <search.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "quota.h"
#include "shmq.h"

struct usage {
	uint32_t uid;
	unsigned hit;                   /* bit per kind: refused, and not
					   yet fallen clearly below */
	uint64_t rearm[QUOTA_KINDS];    /* a hit is forgotten at this usage */
	struct log_limit said[QUOTA_KINDS];
	uint64_t used[QUOTA_KINDS];
};

static struct quota_limits limits;
static uint32_t daemon_uid;
static struct usage total;
static void *by_uid;                    /* tsearch root of struct usage */

/* How each quota is named in refusals and logs. */
static const struct {
	const char *one;                /* "queue quota" */
	const char *many;               /* "limit of 16 queues" */
	const char *opt;                /* --max-X and --user-max-X */
} names[QUOTA_KINDS] = {
	[QUOTA_BYTES]   = { "byte",       "bytes",   "bytes" },
	[QUOTA_QUEUES]  = { "queue",      "queues",  "queues" },
	[QUOTA_CLIENTS] = { "connection", "clients", "clients" },
	[QUOTA_HANDLES] = { "handle",     "handles", "handles" },
};

static int cmp_uid(const void *a, const void *b)
{
	uint32_t x = ((const struct usage *)a)->uid;
	uint32_t y = ((const struct usage *)b)->uid;
	return x < y ? -1 : x > y;
}

void quota_init(const struct quota_limits *lim, uint32_t uid)
{
	limits = *lim;
	daemon_uid = uid;
	memset(&total, 0, sizeof(total));
	total.uid = UINT32_MAX;
}

uint32_t quota_daemon_uid(void)
{
	return daemon_uid;
}

static struct usage *find(uint32_t uid)
{
	struct usage key = { .uid = uid };
	void *node = tfind(&key, &by_uid, cmp_uid);
	return node ? *(struct usage **)node : NULL;
}

static struct usage *find_or_add(uint32_t uid)
{
	struct usage *u = find(uid), **node;

	if (u)
		return u;
	u = calloc(1, sizeof(*u));
	if (u == NULL)
		return NULL;
	u->uid = uid;
	node = tsearch(u, &by_uid, cmp_uid);
	if (node == NULL || *node != u) {
		free(u);
		return NULL;
	}
	return u;
}

/* A uid that holds nothing and whose refusals are forgotten (none
 * pending, none logged in the last minute) is dropped, so that the table
 * grows with the users of the moment, not with every uid that ever
 * connected. */
static void drop_if_idle(struct usage *u)
{
	for (int k = 0; k < QUOTA_KINDS; k++)
		if (u->used[k] || log_limit_recent(&u->said[k]))
			return;
	if (u->hit)
		return;
	tdelete(u, &by_uid, cmp_uid);
	free(u);
}

static uint64_t user_limit(uint32_t uid, enum quota_kind k)
{
	return uid == daemon_uid ? QUOTA_UNLIMITED : limits.user[k];
}

static int exceeds(uint64_t used, uint64_t n, uint64_t limit)
{
	return limit != QUOTA_UNLIMITED && (n > limit || used > limit - n);
}

/* The refusal, in words: which quota, the usage, the limit. */
static void describe(char *buf, size_t size, uint32_t uid, int global,
		     enum quota_kind k, uint64_t used, uint64_t n,
		     uint64_t limit)
{
	if (k == QUOTA_BYTES && global)
		snprintf(buf, size,
			 "daemon byte limit (--max-bytes): %" PRIu64
			 " reserved + %" PRIu64 " asked > %" PRIu64,
			 used, n, limit);
	else if (k == QUOTA_BYTES)
		snprintf(buf, size,
			 "uid %u over its byte quota (--user-max-bytes): "
			 "%" PRIu64 " reserved + %" PRIu64 " asked > %" PRIu64,
			 uid, used, n, limit);
	else if (global)
		snprintf(buf, size, "limit of %" PRIu64 " %s reached "
			 "(--max-%s)", limit, names[k].many, names[k].opt);
	else
		snprintf(buf, size,
			 "uid %u at its %s quota (--user-max-%s): %" PRIu64
			 " of %" PRIu64 " in use", uid, names[k].one,
			 names[k].opt, used, limit);
}

/* A refusal of `n` by `limit`.  It is logged if the last hit of this
 * quota was forgotten, and at most once a minute; a hit is forgotten
 * when the usage falls clearly below the limit: to where what was
 * refused would fit, and to 90 % of the limit at most.  A client
 * connecting and closing at its limit in a loop is thus one line. */
static void note_hit(struct usage *u, enum quota_kind k, uint64_t n,
		     uint64_t limit, const char *what)
{
	uint64_t fits = n > limit ? 0 : limit - n;
	uint64_t clearly = limit - limit / 10;

	u->rearm[k] = fits < clearly ? fits : clearly;
	if (u->hit & (1u << k))
		return;
	u->hit |= 1u << k;
	log_warn_limited(&u->said[k], "%s (not logged again until this usage "
			 "falls clearly below the limit, nor more than once a "
			 "minute)", what);
}

/* What `u` gave back may have taken it clearly below a limit it hit. */
static void maybe_rearm(struct usage *u, enum quota_kind k)
{
	if ((u->hit & (1u << k)) && u->used[k] <= u->rearm[k])
		u->hit &= ~(1u << k);
}

int quota_take(uint32_t uid, enum quota_kind k, uint64_t n, unsigned flags,
	       char *detail, size_t detail_size)
{
	struct usage *u = find_or_add(uid);
	uint64_t ulim = user_limit(uid, k), glim = limits.global[k];
	char why[192];

	if (u == NULL) {
		snprintf(detail, detail_size, "out of memory");
		return SHMQ_ENOMEM;
	}
	/* The user's own quota first: it is the one the user can act on. */
	if (!(flags & QUOTA_FORCE) && exceeds(u->used[k], n, ulim)) {
		describe(why, sizeof(why), uid, 0, k, u->used[k], n, ulim);
		snprintf(detail, detail_size, "%s", why);
		note_hit(u, k, n, ulim, why);
		return SHMQ_ELIMIT;
	}
	if (!(flags & QUOTA_FORCE) && exceeds(total.used[k], n, glim)) {
		describe(why, sizeof(why), uid, 1, k, total.used[k], n, glim);
		snprintf(detail, detail_size, "%s", why);
		note_hit(&total, k, n, glim, why);
		drop_if_idle(u);
		return SHMQ_ELIMIT;
	}
	u->used[k] += n;
	total.used[k] += n;
	if ((flags & QUOTA_FORCE) && ulim != QUOTA_UNLIMITED &&
	    u->used[k] > ulim) {
		snprintf(why, sizeof(why),
			 "uid %u holds more than its %s quota (--user-max-%s): "
			 "%" PRIu64 " > %" PRIu64 "; it gets no more until "
			 "below", uid, names[k].one, names[k].opt, u->used[k],
			 ulim);
		note_hit(u, k, 0, ulim, why);
	}
	return SHMQ_OK;
}

void quota_give(uint32_t uid, enum quota_kind k, uint64_t n)
{
	struct usage *u = find(uid);

	if (u == NULL || u->used[k] < n || total.used[k] < n) {
		log_error("quota: uid %u gives back %" PRIu64 " %s it was "
			  "never charged", uid, n, names[k].many);
		return;
	}
	u->used[k] -= n;
	total.used[k] -= n;
	maybe_rearm(u, k);
	maybe_rearm(&total, k);
	drop_if_idle(u);
}

static uint64_t smaller(uint64_t a, uint64_t b)
{
	return a < b ? a : b;
}

static void fill_view(struct quota_view *v, uint32_t uid,
		      const struct usage *u)
{
	memset(v, 0, sizeof(*v));
	v->uid = uid;
	v->exempt = uid == daemon_uid;
	for (int k = 0; k < QUOTA_KINDS; k++) {
		v->used[k] = u ? u->used[k] : 0;
		v->limit[k] = smaller(user_limit(uid, (enum quota_kind)k),
				      limits.global[k]);
	}
}

void quota_view(uint32_t uid, struct quota_view *v)
{
	fill_view(v, uid, find(uid));
}

void quota_total(struct quota_view *v)
{
	memset(v, 0, sizeof(*v));
	v->uid = UINT32_MAX;
	for (int k = 0; k < QUOTA_KINDS; k++) {
		v->used[k] = total.used[k];
		v->limit[k] = limits.global[k];
	}
}

struct walk {
	uint32_t from;
	int (*fn)(const struct quota_view *, void *);
	void *arg;
	int stopped;
};

static void walk_node(const void *node, VISIT which, void *closure)
{
	struct walk *w = closure;
	const struct usage *u = *(struct usage *const *)node;
	struct quota_view v;
	int holds = 0;

	if (w->stopped || (which != postorder && which != leaf) ||
	    u->uid < w->from)
		return;
	for (int k = 0; k < QUOTA_KINDS; k++)
		holds |= u->used[k] != 0;
	if (!holds)
		return;
	fill_view(&v, u->uid, u);
	w->stopped = w->fn(&v, w->arg);
}

void quota_walk(uint32_t from, int (*fn)(const struct quota_view *, void *),
		void *arg)
{
	struct walk w = { from, fn, arg, 0 };
	twalk_r(by_uid, walk_node, &w);
}

void quota_shutdown(void)
{
	tdestroy(by_uid, free);
	by_uid = NULL;
	memset(&total, 0, sizeof(total));
	total.uid = UINT32_MAX;
}
