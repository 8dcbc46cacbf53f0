/*
 * control.c - the library's connection to shmqd (see control.h).
 *
 * Requests are synchronous: one packet out, one packet back, under a mutex.
 * A request is re-sent on a fresh connection only if it could not be sent
 * at all (the daemon restarted since our last call); once sent, a lost
 * reply is an error, because the daemon may have acted on it.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "control.h"
#include "paths.h"
#include "wire.h"

#ifndef SHMQD_PATH
#define SHMQD_PATH "shmqd"
#endif

#define REPLY_TIMEOUT_S  10     /* a daemon that does not answer is gone */
#define REPLY_POLL_NS  100000L  /* look without sleeping this long first */
#define START_WAIT_MS  5000     /* how long a started daemon may take */

static pthread_mutex_t conn_lock = PTHREAD_MUTEX_INITIALIZER;
static int conn_fd = -1;
static pid_t conn_pid;          /* process that opened conn_fd */
static uint32_t conn_seq;

static __thread char last_detail[SHMQ_WIRE_DETAIL];

void control_set_detail(const char *detail, size_t size)
{
	size_t n = strnlen(detail, size);
	if (n >= sizeof(last_detail))
		n = sizeof(last_detail) - 1;
	memcpy(last_detail, detail, n);
	last_detail[n] = '\0';
}

const char *control_detail(void)
{
	return last_detail;
}

/* Receives the reply.  It usually comes within tens of microseconds;
 * look for it without sleeping for a little longer than that first,
 * because on a VM a CPU that goes idle to wait takes tens of microseconds
 * more to wake up again. */
static ssize_t wait_reply(int fd, struct msghdr *mh)
{
	struct timespec t0, t;
	ssize_t got;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		got = recvmsg(fd, mh, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
		if (got >= 0 || (errno != EAGAIN && errno != EINTR))
			return got;
		clock_gettime(CLOCK_MONOTONIC, &t);
		if ((t.tv_sec - t0.tv_sec) * 1000000000L +
			    (t.tv_nsec - t0.tv_nsec) > REPLY_POLL_NS)
			break;
	}
	do
		got = recvmsg(fd, mh, MSG_CMSG_CLOEXEC);
	while (got < 0 && errno == EINTR);
	return got;
}

/* One packet out, one packet back (none for a NOREPLY request). */
static int exchange(int fd, uint16_t type, const void *req, size_t req_len,
		    void *reply, size_t cap, size_t *reply_len, int *rfd,
		    int *unsent)
{
	static char pkt[SHMQ_WIRE_MAX];     /* guarded by conn_lock */
	uint32_t seq = ++conn_seq;
	size_t n = wire_pack(pkt, type, seq, req, req_len);
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} cbuf;
	struct iovec iov = { pkt, sizeof(pkt) };
	struct msghdr mh = { 0 };
	ssize_t got;
	const void *body;
	size_t body_len;
	int rc, passed = -1;

	*unsent = 0;
	if (send(fd, pkt, n, MSG_NOSIGNAL) != (ssize_t)n) {
		*unsent = 1;
		return SHMQ_ENODAEMON;
	}
	if (type & SHMQ_MSG_NOREPLY)
		return SHMQ_OK;
	mh.msg_iov = &iov;
	mh.msg_iovlen = 1;
	mh.msg_control = cbuf.buf;
	mh.msg_controllen = sizeof(cbuf.buf);
	got = wait_reply(fd, &mh);
	if (got <= 0)
		return SHMQ_ENODAEMON;

	for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c))
		if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS &&
		    c->cmsg_len == CMSG_LEN(sizeof(int)) && passed < 0)
			memcpy(&passed, CMSG_DATA(c), sizeof(int));
	if (mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) {
		rc = SHMQ_EPROTO;
		goto out;
	}
	rc = wire_check_reply(pkt, (size_t)got, type, seq, &body, &body_len);
	if (rc != SHMQ_OK)
		goto out;
	if (body_len > cap)
		body_len = cap;
	memcpy(reply, body, body_len);
	*reply_len = body_len;
	const struct shmq_wire_status *st = reply;
	rc = st->status;
	if (rc != SHMQ_OK)
		control_set_detail(st->detail, sizeof(st->detail));
	if (rfd && rc == SHMQ_OK) {
		*rfd = passed;
		passed = -1;
	}
out:
	if (passed >= 0)
		close(passed);
	return rc;
}

static int connect_to(const char *path)
{
	struct sockaddr_un un = { .sun_family = AF_UNIX };
	struct timeval tv = { .tv_sec = REPLY_TIMEOUT_S };
	int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -1;
	strncpy(un.sun_path, path, sizeof(un.sun_path) - 1);
	if (connect(fd, (struct sockaddr *)&un, sizeof(un)) < 0) {
		int e = errno;
		close(fd);
		errno = e;
		return -1;
	}
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	return fd;
}

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000 };
	nanosleep(&ts, NULL);
}

/* Starts `shmqd --socket path` the way tmux starts its server.  shmqd
 * forks into the background and its first process exits once the socket
 * listens, so waiting for that process is waiting for the daemon. */
static void start_daemon(const char *path)
{
	const char *bin = getenv("SHMQ_DAEMON");
	char *argv[] = { "shmqd", "--socket", (char *)path, NULL };
	sigset_t all, old;
	pid_t pid;

	if (bin == NULL || *bin == '\0')
		bin = SHMQD_PATH;
	if (paths_make_dir(path, 0700) != SHMQ_OK)
		return;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	pid = fork();
	if (pid == 0) {
		int null = open("/dev/null", O_RDWR);
		if (null >= 0) {
			dup2(null, 0);
			dup2(null, 1);
			dup2(null, 2);
		}
		closefrom(3);
		sigprocmask(SIG_SETMASK, &old, NULL);
		execv(bin, argv);
		_exit(127);
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (pid > 0)
		while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
			;
}

static int hello(int fd)
{
	struct shmq_wire_hello h = {
		.wire_version = SHMQ_WIRE_VERSION,
		.layout_version = SHMQ_LAYOUT_VERSION,
	};
	struct shmq_wire_hello_reply r;
	size_t len;
	int unsent;
	int rc = exchange(fd, SHMQ_MSG_HELLO, &h, sizeof(h), &r, sizeof(r),
			  &len, NULL, &unsent);

	if (rc == SHMQ_OK && (r.wire_version != SHMQ_WIRE_VERSION ||
			      r.layout_version != SHMQ_LAYOUT_VERSION))
		rc = SHMQ_EPROTO;
	return rc;
}

static int open_connection(void)
{
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	int per_user, fd, rc;

	rc = paths_client_socket(path, sizeof(path), &per_user);
	if (rc != SHMQ_OK) {
		static const char why[] = "SHMQ_SOCKET or the default socket "
					  "path is too long";
		control_set_detail(why, sizeof(why));
		return SHMQ_ENODAEMON;
	}
	fd = connect_to(path);
	if (fd < 0 && (errno == ENOENT || errno == ECONNREFUSED) && per_user &&
	    getenv("SHMQ_NO_AUTOSTART") == NULL) {
		start_daemon(path);
		/* Another client may be starting it at the same time; either
		 * way, a daemon answers here soon or not at all. */
		for (int waited = 0; waited < START_WAIT_MS; waited += 10) {
			fd = connect_to(path);
			if (fd >= 0 || (errno != ENOENT && errno != ECONNREFUSED))
				break;
			sleep_ms(10);
		}
	}
	if (fd < 0)
		return errno == EACCES ? SHMQ_EACCES : SHMQ_ENODAEMON;
	rc = hello(fd);
	if (rc != SHMQ_OK) {
		close(fd);
		return rc;
	}
	conn_fd = fd;
	conn_pid = getpid();
	return SHMQ_OK;
}

int control_call(uint16_t type, const void *req, size_t req_len,
		 void *reply, size_t cap, size_t *reply_len, int *fd)
{
	int rc = SHMQ_ENODAEMON, unsent = 1;

	if (fd)
		*fd = -1;
	last_detail[0] = '\0';
	if (cap < sizeof(struct shmq_wire_status))
		return SHMQ_EINVAL;
	pthread_mutex_lock(&conn_lock);
	if (conn_fd >= 0 && conn_pid != getpid()) {
		/* A forked child: the connection belongs to the parent. */
		close(conn_fd);
		conn_fd = -1;
	}
	for (int attempt = 0; attempt < 2 && unsent; attempt++) {
		if (conn_fd < 0) {
			rc = open_connection();
			if (rc != SHMQ_OK)
				break;
		}
		rc = exchange(conn_fd, type, req, req_len, reply, cap,
			      reply_len, fd, &unsent);
		if (rc == SHMQ_ENODAEMON || rc == SHMQ_EPROTO) {
			close(conn_fd);
			conn_fd = -1;
		}
	}
	pthread_mutex_unlock(&conn_lock);
	return rc;
}

int control_connect(const char *path, int greet, int *fd)
{
	int rc = SHMQ_OK;

	*fd = connect_to(path);
	if (*fd < 0)
		return errno == EACCES ? SHMQ_EACCES : SHMQ_ENODAEMON;
	if (greet) {
		/* hello() packs into exchange()'s buffer: take its lock. */
		pthread_mutex_lock(&conn_lock);
		rc = hello(*fd);
		pthread_mutex_unlock(&conn_lock);
		if (rc != SHMQ_OK) {
			close(*fd);
			*fd = -1;
		}
	}
	return rc;
}
