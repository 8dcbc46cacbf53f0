/*
 * xports.c - the table of transports, and what their files share.
 *
 * Owns which transports the bench knows (the table's order is the order
 * they run in, each run; row_order the order of their rows in the report),
 * the small operations several transports use, and chan_create(), which
 * makes one direction of a transport for a case.  What a transport is and
 * does belongs in its own xp_*.c file, never here.
 */
#define _GNU_SOURCE
#include "config.h"

#include <stdio.h>
#include <unistd.h>

#include "bench.h"

/* T_SHMQ_SMALL is shmq with the capacity the POSIX queue was allowed,
 * where that is smaller than SHMQ_CAP, so that shmq meets mq at the same
 * capacity.  T_SHMQ_ZC, the zero-copy calls, runs at that capacity too.
 * T_PIPE_BIG is a pipe whose buffer holds as many bytes as those queues
 * (as far as fs/pipe-max-size allows): the default pipe holds a single
 * 64 KiB message, and this row shows what a larger buffer buys it.
 * T_SHMQ_ACKED is an acked queue, each message leased and acked, next to
 * the plain one it costs more than. */
const struct xport *const xports[NT] = {
	[T_SHMQ] = &xp_shmq,
	[T_PIPE] = &xp_pipe,
	[T_SOCK] = &xp_sock,
	[T_MQ] = &xp_mq,
	[T_SHMQ_SMALL] = &xp_shmq_small,
	[T_SHMQ_ZC] = &xp_shmq_zc,
	[T_PIPE_BIG] = &xp_pipe_big,
	[T_SHMQ_POLL] = &xp_shmq_poll,
	[T_SHMQ_ACKED] = &xp_shmq_acked,
	[T_BOOST] = &xp_boost,
};

const int row_order[NT] = { T_SHMQ, T_SHMQ_POLL, T_SHMQ_ACKED, T_SHMQ_SMALL,
			    T_SHMQ_ZC, T_PIPE, T_PIPE_BIG, T_SOCK, T_MQ,
			    T_BOOST };

#ifndef HAVE_BOOST_IPC
/* Built without Boost.Interprocess: the transport exists (its option is
 * accepted) and runs nothing. */
static int boost_applies(const struct bcase *k, struct agg *a)
{
	(void)k;
	(void)a;
	return 0;
}

const struct xport xp_boost = {
	.name = "Boost", .option = "boost", .applies = boost_applies,
};
const char *const boost_missing = "not built: configure found no "
	"boost/interprocess headers (Debian: libboost-dev; tools/deps.sh "
	"bench installs it), so there is no Boost row";
const int boost_version = 0;
#endif

int fail_errno(struct chan *c, const char *what)
{
	snprintf(c->why, sizeof(c->why), "%s: %s", what, strerror(errno));
	return -1;
}

int fail_shmq(struct chan *c, const char *what, int rc)
{
	snprintf(c->why, sizeof(c->why), "%s: %s", what, shmq_strerror(rc));
	return -1;
}

int no_open(struct chan *c, enum role r)
{
	(void)c;
	(void)r;
	return 0;
}

void no_leave(struct chan *c)
{
	(void)c;
}

void fds_close(struct chan *c)
{
	close(c->fd[0]);
	close(c->fd[1]);
}

/* The capacity transport `t` gets for `size`-byte messages. */
unsigned xport_capacity(int t, size_t size)
{
	return xports[t]->capacity ? xports[t]->capacity(size) : SHMQ_CAP;
}

int chan_create(struct chan *c, int t, const struct bcase *k)
{
	memset(c, 0, sizeof(*c));
	c->x = xports[t];
	c->size = k->size;
	c->capacity = xport_capacity(t, k->size);
	c->batch = k->batch ? k->batch : 1;
	c->timeout_ms = SHMQ_FOREVER;
	c->fd[0] = c->fd[1] = -1;
	c->kind = k->kind;
	return c->x->create(c);
}
