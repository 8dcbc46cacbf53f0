/*
 * rawconn.c - control connections a test drives packet by packet (see
 * rawconn.h).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "checks.h"
#include "control.h"
#include "rawconn.h"

int dropped(int rc)
{
	return rc == RAW_EOF || rc == RAW_RESET;
}

int raw_connect(const char *path)
{
	struct timeval tv = { .tv_sec = 5 };
	int fd;

	if (control_connect(path, 0, &fd) != SHMQ_OK)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	return fd;
}

int raw_send(int fd, const void *pkt, size_t len)
{
	return send(fd, pkt, len, MSG_NOSIGNAL) == (ssize_t)len ? 0 : -1;
}

int raw_request(int fd, uint16_t type, uint32_t seq, const void *body,
		size_t len)
{
	static char pkt[SHMQ_WIRE_MAX];

	return raw_send(fd, pkt, wire_pack(pkt, type, seq, body, len));
}

int raw_reply(int fd, uint16_t type, uint32_t seq, void *body, size_t cap)
{
	static char pkt[SHMQ_WIRE_MAX + 1];
	struct shmq_wire_hdr h;
	struct shmq_wire_status st;
	const void *b;
	size_t blen;
	ssize_t n = recv(fd, pkt, sizeof(pkt), 0);

	if (n < 0 && errno == ECONNRESET)
		return RAW_RESET;
	if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK))
		return RAW_EOF;
	if (n < 0)
		return RAW_TIMEOUT;
	if ((size_t)n < sizeof(h))
		return RAW_GARBLED;
	if (type == 0) {
		/* Any reply: to whatever it says it answers. */
		memcpy(&h, pkt, sizeof(h));
		if (!(h.type & SHMQ_MSG_REPLY))
			return RAW_GARBLED;
		type = (uint16_t)(h.type & ~SHMQ_MSG_REPLY);
		seq = h.seq;
	}
	if (wire_check_reply(pkt, (size_t)n, type, seq, &b, &blen) != SHMQ_OK)
		return RAW_GARBLED;
	/* The library clips the detail; a sound reply terminates it. */
	memcpy(&st, b, sizeof(st));
	if (st.detail[SHMQ_WIRE_DETAIL - 1] != '\0')
		return RAW_GARBLED;
	if (body)
		memcpy(body, b, blen < cap ? blen : cap);
	return st.status;
}

int raw_hello(int fd, pid_t *daemon_pid)
{
	struct shmq_wire_hello h = {
		.wire_version = SHMQ_WIRE_VERSION,
		.layout_version = SHMQ_LAYOUT_VERSION,
	};
	struct shmq_wire_hello_reply r;
	int rc;

	memset(&r, 0, sizeof(r));
	if (raw_request(fd, SHMQ_MSG_HELLO, 1, &h, sizeof(h)) < 0)
		return RAW_EOF;
	rc = raw_reply(fd, SHMQ_MSG_HELLO, 1, &r, sizeof(r));
	if (rc == SHMQ_OK && daemon_pid)
		*daemon_pid = (pid_t)r.daemon_pid;
	return rc;
}

pid_t daemon_pid_of(const char *sock)
{
	pid_t pid = -1;
	int fd = raw_connect(sock);

	if (fd < 0)
		return -1;
	if (raw_hello(fd, &pid) != SHMQ_OK)
		pid = -1;
	close(fd);
	return pid;
}

int listen_at(const char *path, int backlog)
{
	struct sockaddr_un un = { .sun_family = AF_UNIX };
	int fd, e;

	if (strlen(path) >= sizeof(un.sun_path)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	strcpy(un.sun_path, path);
	unlink(path);
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	if (bind(fd, (struct sockaddr *)&un, sizeof(un)) < 0 ||
	    listen(fd, backlog) < 0) {
		e = errno;
		close(fd);
		errno = e;
		return -1;
	}
	return fd;
}

int fake_request(int fd, uint16_t *type, uint32_t *seq)
{
	char pkt[SHMQ_WIRE_MAX];
	const void *body;
	ssize_t n = recv(fd, pkt, sizeof(pkt), 0);

	if (n <= 0 || wire_check_request(pkt, (size_t)n, type, seq, &body) !=
			      SHMQ_OK)
		return -1;
	return 0;
}

int fake_reply(int fd, uint16_t type, uint32_t seq, const void *body,
	       size_t len)
{
	static char pkt[SHMQ_WIRE_MAX];

	return raw_send(fd, pkt, wire_pack(pkt, type | SHMQ_MSG_REPLY, seq,
					  body, len));
}

int fake_accept(int lfd)
{
	struct shmq_wire_hello_reply r = {
		.wire_version = SHMQ_WIRE_VERSION,
		.layout_version = SHMQ_LAYOUT_VERSION,
		.daemon_pid = (uint32_t)getpid(),
	};
	int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	uint16_t type;
	uint32_t seq;

	if (fd < 0)
		return -1;
	if (fake_request(fd, &type, &seq) < 0 || type != SHMQ_MSG_HELLO ||
	    fake_reply(fd, type, seq, &r, sizeof(r)) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

int connect_ok(const char *sock)
{
	int fd = raw_connect(sock);

	ck_assert_msg(fd >= 0, "connect %s: %s", sock, strerror(errno));
	return fd;
}

int connect_hello(const char *sock)
{
	struct timeval tv = { .tv_sec = 5 };
	int fd;

	RC_EQ(control_connect(sock, 1, &fd), SHMQ_OK);
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	return fd;
}

void send_with_fds(int sock, const void *pkt, size_t len, const int *fds,
		   int n)
{
	union {
		char buf[CMSG_SPACE(sizeof(int) * 32)];
		struct cmsghdr align;
	} cbuf;
	struct iovec iov = { (void *)pkt, len };
	struct msghdr mh = {
		.msg_iov = &iov,
		.msg_iovlen = 1,
		.msg_control = cbuf.buf,
		.msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)n),
	};
	struct cmsghdr *c;

	ck_assert_int_le(n, 32);
	memset(&cbuf, 0, sizeof(cbuf));
	c = CMSG_FIRSTHDR(&mh);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)n);
	memcpy(CMSG_DATA(c), fds, sizeof(int) * (size_t)n);
	ck_assert_int_eq(sendmsg(sock, &mh, MSG_NOSIGNAL), (ssize_t)len);
}
