/*
 * xp_pipe.c - the pipe transport: a byte stream, so whole messages are read
 * in a loop.
 *
 * Owns two rows: the pipe as the system makes it, and (for 64 KiB messages,
 * for reference) a pipe grown with F_SETPIPE_SZ to the queues' capacity in
 * bytes.  Its batch mode is writev() of the batch and one large read().
 */
#define _GNU_SOURCE
#include "config.h"

#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

#include "bench.h"

static int pipe_create(struct chan *c)
{
	return pipe(c->fd) < 0 ? fail_errno(c, "pipe") : 0;
}

/* The pipe's buffer grown to the queues' capacity in bytes, as far as
 * fs/pipe-max-size lets an unprivileged process (1 MiB by default). */
size_t pipe_big_size(size_t msg, unsigned capacity)
{
	long max = read_long("/proc/sys/fs/pipe-max-size");
	size_t want = msg * capacity;

	if (max > 0 && want > (size_t)max)
		want = (size_t)max;
	return want;
}

static int pipe_big_create(struct chan *c)
{
	if (pipe_create(c))
		return -1;
	if (fcntl(c->fd[1], F_SETPIPE_SZ,
		  (int)pipe_big_size(c->size, c->capacity)) < 0) {
		fail_errno(c, "fcntl F_SETPIPE_SZ");
		close(c->fd[0]);
		close(c->fd[1]);
		c->fd[0] = c->fd[1] = -1;
		return -1;
	}
	return 0;
}

static int write_full(struct chan *c, int fd, const void *p, size_t n)
{
	while (n) {
		ssize_t w = write(fd, p, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return fail_errno(c, "write");
		}
		p = (const uint8_t *)p + w;
		n -= (size_t)w;
	}
	return 0;
}

static int read_full(struct chan *c, int fd, void *p, size_t n)
{
	while (n) {
		ssize_t r = read(fd, p, n);
		if (r <= 0) {
			if (r < 0 && errno == EINTR)
				continue;
			return r ? fail_errno(c, "read")
				 : (snprintf(c->why, sizeof(c->why),
					     "read: end of file"), -1);
		}
		p = (uint8_t *)p + r;
		n -= (size_t)r;
	}
	return 0;
}

static int pipe_send(struct chan *c, const void *m)
{
	return write_full(c, c->fd[1], m, c->size);
}

static int pipe_recv(struct chan *c, void *buf, size_t *len)
{
	*len = c->size;
	return read_full(c, c->fd[0], buf, c->size);
}

/* writev() of the whole batch; a pipe may take it in parts. */
static int pipe_sendv(struct chan *c, const struct iovec *v, unsigned n)
{
	struct iovec iov[MAX_BATCH];
	struct iovec *p = iov;

	memcpy(iov, v, n * sizeof(*v));
	while (n) {
		ssize_t w = writev(c->fd[1], p, (int)n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return fail_errno(c, "writev");
		}
		while (n && (size_t)w >= p->iov_len) {
			w -= (ssize_t)p->iov_len;
			p++;
			n--;
		}
		if (n) {
			p->iov_base = (uint8_t *)p->iov_base + w;
			p->iov_len -= (size_t)w;
		}
	}
	return 0;
}

/* One large read; a message cut at its end is completed by reading the
 * rest of it, which its writer is writing.  Writes of whole messages of at
 * most PIPE_BUF bytes are atomic, so with several readers (4->4) every read
 * of a multiple of the message size returns whole messages. */
static int pipe_recvv(struct chan *c, void *buf, struct iovec *v, unsigned n,
		      unsigned *got)
{
	ssize_t r;

	do
		r = read(c->fd[0], buf, c->size * n);
	while (r < 0 && errno == EINTR);
	if (r <= 0)
		return r ? fail_errno(c, "read")
			 : (snprintf(c->why, sizeof(c->why), "read: end of file"),
			    -1);
	size_t rem = (size_t)r % c->size;
	if (rem && read_full(c, c->fd[0], (uint8_t *)buf + r, c->size - rem))
		return -1;
	*got = (unsigned)(((size_t)r + c->size - 1) / c->size);
	for (unsigned i = 0; i < *got; i++) {
		v[i].iov_base = (uint8_t *)buf + i * c->size;
		v[i].iov_len = c->size;
	}
	return 0;
}

const struct xport xp_pipe = {
	.name = "pipe", .option = "pipe",
	.batch_how = "writev / one large read",
	.create = pipe_create, .open = no_open, .send = pipe_send,
	.recv = pipe_recv, .sendv = pipe_sendv, .recvv = pipe_recvv,
	.leave = no_leave, .destroy = fds_close,
};

/* The default pipe holds a single 64 KiB message: this row shows what a
 * larger buffer buys it, so it runs only there. */
static int pipe_big_applies(const struct bcase *k, struct agg *a)
{
	(void)a;
	return k->kind == TPUT && k->producers == 1 && !k->batch &&
	       k->size >= 65536;
}

static int pipe_big_label(char *b, size_t n, const struct bcase *k,
			  const struct agg *a)
{
	snprintf(b, n, "pipe, %zu KiB buffer (F_SETPIPE_SZ; for "
		 "reference)", pipe_big_size(k->size, a->capacity) >> 10);
	return 1;
}

/* As many bytes as the queues of its case hold (mq's capacity where
 * that is below shmq's). */
const struct xport xp_pipe_big = {
	.name = "pipe, grown", .option = "pipe",
	.batch_how = "writev / one large read",
	.capacity = mq_cap_below, .applies = pipe_big_applies,
	.label = pipe_big_label,
	.create = pipe_big_create, .open = no_open, .send = pipe_send,
	.recv = pipe_recv, .sendv = pipe_sendv, .recvv = pipe_recvv,
	.leave = no_leave, .destroy = fds_close,
};
