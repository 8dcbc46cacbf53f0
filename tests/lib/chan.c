/*
 * chan.c - handshakes between a test and its children (see chan.h).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdint.h>
#include <unistd.h>

#include "chan.h"
#include "checks.h"
#include "clock.h"

void chan_init(struct chan *c)
{
	ck_assert_int_eq(pipe2(c->down, O_CLOEXEC), 0);
	ck_assert_int_eq(pipe2(c->up, O_CLOEXEC), 0);
}

void chan_child(struct chan *c)
{
	close(c->down[1]);
	close(c->up[0]);
}

void chan_parent(struct chan *c)
{
	close(c->down[0]);
	close(c->up[1]);
}

void chan_done(struct chan *c)
{
	close(c->down[1]);
	close(c->up[0]);
}

int byte_read(int fd, int ms)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	unsigned char b;
	int r;

	do
		r = poll(&p, 1, ms);
	while (r < 0 && errno == EINTR);
	if (r <= 0)
		return -1;
	return read(fd, &b, 1) == 1 ? b : -1;
}

int byte_write(int fd, int b)
{
	unsigned char c = (unsigned char)b;

	return write(fd, &c, 1) == 1 ? 0 : -1;
}

void chan_expect(struct chan *c, int want)
{
	int got = byte_read(c->up[0], 15000);

	ck_assert_msg(got == want, "child answered %d, want '%c'", got, want);
}

void chan_cmd(struct chan *c, int cmd, int want)
{
	ck_assert_int_eq(byte_write(c->down[1], cmd), 0);
	chan_expect(c, want);
}

void child_say(struct chan *c, int b)
{
	CHILD_CHECK(byte_write(c->up[1], b) == 0);
}

int child_hear(struct chan *c)
{
	int b = byte_read(c->down[0], 20000);

	CHILD_CHECK(b >= 0);
	return b;
}

int read_full(int fd, void *p, size_t len)
{
	uint8_t *b = p;

	while (len) {
		ssize_t n = read(fd, b, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		b += n;
		len -= (size_t)n;
	}
	return 0;
}

int read_timed(int fd, void *p, size_t len)
{
	uint8_t *b = p;

	while (len) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		int rc = poll(&pfd, 1, WAIT_MS);
		if (rc < 0 && errno == EINTR)
			continue;
		if (rc <= 0)
			return -1;
		ssize_t n = read(fd, b, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		b += n;
		len -= (size_t)n;
	}
	return 0;
}
