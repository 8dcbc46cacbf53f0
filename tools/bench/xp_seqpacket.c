/*
 * xp_seqpacket.c - the AF_UNIX SOCK_SEQPACKET transport: a socket pair
 * that keeps message boundaries; batches go through sendmmsg/recvmmsg.
 *
 * Owns one row, with the default socket buffers.
 */
#define _GNU_SOURCE
#include "config.h"

#include <stdlib.h>
#include <sys/socket.h>

#include "bench.h"

static int sock_create(struct chan *c)
{
	if (socketpair(AF_UNIX, SOCK_SEQPACKET, 0, c->fd) < 0)
		return fail_errno(c, "socketpair");
	return 0;
}

static int sock_open(struct chan *c, enum role r)
{
	(void)r;
	c->mm = calloc(MAX_BATCH, sizeof(*c->mm));
	c->mio = calloc(MAX_BATCH, sizeof(*c->mio));
	if (c->mm == NULL || c->mio == NULL)
		return fail_errno(c, "calloc");
	return 0;
}

static int sock_send(struct chan *c, const void *m)
{
	ssize_t w;

	do
		w = send(c->fd[0], m, c->size, MSG_NOSIGNAL);
	while (w < 0 && errno == EINTR);
	return w == (ssize_t)c->size ? 0 : fail_errno(c, "send");
}

static int sock_recv(struct chan *c, void *buf, size_t *len)
{
	ssize_t r;

	do
		r = recv(c->fd[1], buf, c->size, 0);
	while (r < 0 && errno == EINTR);
	if (r < 0)
		return fail_errno(c, "recv");
	*len = (size_t)r;
	return 0;
}

static int sock_sendv(struct chan *c, const struct iovec *v, unsigned n)
{
	unsigned done = 0;

	for (unsigned i = 0; i < n; i++) {
		c->mio[i] = v[i];
		c->mm[i].msg_hdr = (struct msghdr){ .msg_iov = &c->mio[i],
						    .msg_iovlen = 1 };
	}
	while (done < n) {
		int w = sendmmsg(c->fd[0], c->mm + done, n - done,
				 MSG_NOSIGNAL);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return fail_errno(c, "sendmmsg");
		}
		done += (unsigned)w;
	}
	return 0;
}

static int sock_recvv(struct chan *c, void *buf, struct iovec *v, unsigned n,
		      unsigned *got)
{
	int r;

	for (unsigned i = 0; i < n; i++) {
		c->mio[i].iov_base = (uint8_t *)buf + i * c->size;
		c->mio[i].iov_len = c->size;
		c->mm[i].msg_hdr = (struct msghdr){ .msg_iov = &c->mio[i],
						    .msg_iovlen = 1 };
	}
	do
		r = recvmmsg(c->fd[1], c->mm, n, MSG_WAITFORONE, NULL);
	while (r < 0 && errno == EINTR);
	if (r <= 0)
		return fail_errno(c, "recvmmsg");
	for (int i = 0; i < r; i++) {
		v[i].iov_base = c->mio[i].iov_base;
		v[i].iov_len = c->mm[i].msg_len;
	}
	*got = (unsigned)r;
	return 0;
}

static void sock_leave(struct chan *c)
{
	free(c->mm);
	free(c->mio);
}

const struct xport xp_sock = {
	.name = "seqpacket", .option = "seqpacket",
	.batch_how = "sendmmsg / recvmmsg",
	.create = sock_create, .open = sock_open, .send = sock_send,
	.recv = sock_recv, .sendv = sock_sendv, .recvv = sock_recvv,
	.leave = sock_leave, .destroy = fds_close,
};
