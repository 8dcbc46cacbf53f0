/*
 * privd.c - a private shmqd for the tools (see privd.h).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "clock.h"
#include "privd.h"
#include "wire.h"

#define HELLO_WAIT_MS 5000

int privd_connect(const char *path)
{
	struct sockaddr_un un = { .sun_family = AF_UNIX };
	int fd, e;

	if (strlen(path) >= sizeof(un.sun_path)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	strcpy(un.sun_path, path);
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	if (connect(fd, (struct sockaddr *)&un, sizeof(un)) < 0) {
		e = errno;
		close(fd);
		errno = e;
		return -1;
	}
	return fd;
}

int privd_hello(int fd, uint32_t seq)
{
	struct shmq_wire_hello h = {
		.wire_version = SHMQ_WIRE_VERSION,
		.layout_version = SHMQ_LAYOUT_VERSION,
	};
	struct shmq_wire_hello_reply r;
	char pkt[SHMQ_WIRE_MAX];
	struct pollfd p = { fd, POLLIN, 0 };
	const void *body;
	size_t n = wire_pack(pkt, SHMQ_MSG_HELLO, seq, &h, sizeof(h)), len;
	ssize_t got;
	int rc;

	if (send(fd, pkt, n, MSG_NOSIGNAL) != (ssize_t)n)
		return -1;
	do
		rc = poll(&p, 1, HELLO_WAIT_MS);
	while (rc < 0 && errno == EINTR);
	if (rc == 0)
		errno = ETIMEDOUT;
	if (rc <= 0)
		return -1;
	got = recv(fd, pkt, sizeof(pkt), MSG_DONTWAIT);
	if (got < 0)
		return -1;
	if (wire_check_reply(pkt, (size_t)got, SHMQ_MSG_HELLO, seq, &body,
			     &len) != SHMQ_OK || len != sizeof(r)) {
		errno = EPROTO;
		return -1;
	}
	memcpy(&r, body, sizeof(r));
	if (r.st.status != SHMQ_OK) {
		errno = EPROTO;
		return -1;
	}
	return (int)r.daemon_pid;
}

pid_t privd_start(const char *bin, const char *sock, const char *log,
		  void (*prep)(void))
{
	char *argv[] = { "shmqd", "--foreground", "--socket", (char *)sock,
			 "--log", (char *)log, NULL };
	pid_t pid = fork();

	if (pid != 0)
		return pid;
	if (prep)
		prep();
	execvp(bin, argv);
	_exit(127);
}

enum privd_ready privd_wait_ready(pid_t pid, const char *sock, int ms,
				  volatile sig_atomic_t *stop, int *status,
				  pid_t *other)
{
	uint64_t until = mono_ns() + (uint64_t)ms * 1000000u;

	for (;;) {
		int fd = privd_connect(sock), dpid = -1;

		if (fd >= 0) {
			dpid = privd_hello(fd, 1);
			close(fd);
		}
		if (dpid == pid)
			return PRIVD_READY;
		if (dpid > 0) {
			*other = dpid;
			return PRIVD_OTHER;
		}
		if (waitpid(pid, status, WNOHANG) == pid)
			return PRIVD_EXITED;
		if (stop && *stop)
			return PRIVD_STOPPED;
		if (mono_ns() >= until)
			return PRIVD_TIMEOUT;
		sleep_ms(5);
	}
}
