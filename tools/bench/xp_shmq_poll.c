/*
 * xp_shmq_poll.c - shmq driven by an event loop (epoll), as a transport.
 *
 * Owns the rows that measure what a pollable descriptor (shmq_fd) costs:
 * in 1->1 throughput the consumer polls (non-blocking gets until
 * SHMQ_EAGAIN, then epoll_wait on its descriptor) against a producer
 * that blocks as usual, beside shmq's own row, where the consumer
 * blocks; in the ping-pong both sides poll both of their handles.  The
 * epoll set is a child's own, made in open and closed in leave.
 */
#define _GNU_SOURCE
#include "config.h"

#include <stdio.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "bench.h"

/* c->fd[0]: the epoll set of a receiving side, c->fd[1]: of a sending
 * side that polls. */
static int poll_create(struct chan *c)
{
	static unsigned serial;
	struct shmq_attr a;
	int rc;

	shmq_attr_init(&a);
	a.capacity = c->capacity;
	a.max_msg = (uint32_t)c->size;
	snprintf(c->name, sizeof(c->name), "bench.poll.%u", serial++);
	if ((rc = shmq_create(c->name, &a, 0)) != SHMQ_OK)
		return fail_shmq(c, "shmq_create", rc);
	if ((rc = shmq_open(c->name, SHMQ_PRODUCER, &c->q)) != SHMQ_OK) {
		shmq_delete(c->name);
		return fail_shmq(c, "shmq_open", rc);
	}
	return 0;
}

static int poll_open(struct chan *c, enum role r)
{
	unsigned dir = r == TX ? SHMQ_POLL_PUT : SHMQ_POLL_GET;
	int rc = shmq_open(c->name, (r == TX ? SHMQ_PRODUCER : SHMQ_CONSUMER) |
					    SHMQ_PREFAULT, &c->q);
	int fd;

	if (rc != SHMQ_OK)
		return fail_shmq(c, "shmq_open", rc);
	/* A throughput producer blocks as in shmq's own row. */
	if (r == TX && c->kind != PING)
		return 0;
	if ((rc = shmq_fd(c->q, dir, &fd)) != SHMQ_OK)
		return fail_shmq(c, "shmq_fd", rc);
	int ep = epoll_create1(EPOLL_CLOEXEC);
	struct epoll_event ev = { .events = EPOLLIN };
	if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0)
		return fail_errno(c, "epoll");
	c->fd[r == TX] = ep;
	return 0;
}

/* The descriptor is armed (the call returned SHMQ_EAGAIN): wait for it. */
static int poll_wait(struct chan *c, int ep)
{
	struct epoll_event ev;
	int timeout = c->timeout_ms;

	for (;;) {
		int n = epoll_wait(ep, &ev, 1, timeout);
		if (n > 0)
			return 0;
		if (n == 0)
			return fail_shmq(c, "epoll_wait", SHMQ_ETIMEDOUT);
		if (errno != EINTR)
			return fail_errno(c, "epoll_wait");
	}
}

static int poll_send(struct chan *c, const void *m)
{
	int rc;

	if (c->fd[1] < 0) {
		rc = shmq_put(c->q, m, c->size, c->timeout_ms);
		return rc == SHMQ_OK ? 0 : fail_shmq(c, "shmq_put", rc);
	}
	while ((rc = shmq_put(c->q, m, c->size, SHMQ_NOWAIT)) == SHMQ_EAGAIN)
		if (poll_wait(c, c->fd[1]))
			return -1;
	return rc == SHMQ_OK ? 0 : fail_shmq(c, "shmq_put", rc);
}

static int poll_recv(struct chan *c, void *buf, size_t *len)
{
	int rc;

	while ((rc = shmq_get(c->q, buf, c->size, len, SHMQ_NOWAIT)) ==
	       SHMQ_EAGAIN)
		if (poll_wait(c, c->fd[0]))
			return -1;
	return rc == SHMQ_OK ? 0 : fail_shmq(c, "shmq_get", rc);
}

static void poll_leave(struct chan *c)
{
	for (int i = 0; i < 2; i++)
		if (c->fd[i] >= 0)
			close(c->fd[i]);
	shmq_detach(c->q);
}

static void poll_destroy(struct chan *c)
{
	shmq_detach(c->q);
	shmq_delete(c->name);
}

static int poll_applies(const struct bcase *k, struct agg *a)
{
	(void)a;
	return k->kind == PING ||
	       (k->producers == 1 && k->consumers == 1 && !k->batch &&
		(k->size == 16 || k->size == 4096));
}

static int poll_label(char *b, size_t n, const struct bcase *k,
		      const struct agg *a)
{
	(void)a;
	snprintf(b, n, k->kind == PING ? "shmq, both sides poll (epoll)"
				       : "shmq, consumer polls (epoll)");
	return 1;
}

const struct xport xp_shmq_poll = {
	.name = "shmq epoll", .option = "shmq-epoll", .shmq = 1,
	.batch_how = "",
	.applies = poll_applies, .label = poll_label,
	.create = poll_create, .open = poll_open,
	.send = poll_send, .recv = poll_recv,
	.leave = poll_leave, .destroy = poll_destroy,
};
