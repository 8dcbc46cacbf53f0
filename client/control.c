/*
 * control.c - the library's connection to shmqd (see control.h).
 *
 * Requests are synchronous: one packet out, one packet back, under a mutex.
 * A request is re-sent on a fresh connection only if it could not be sent
 * at all (the daemon restarted since our last call); once sent, a lost
 * reply is an error, because the daemon may have acted on it.
 *
 * Every failure leaves its cause in the calling thread's detail
 * (shmq_error_detail()): the daemon's own words when it refused, else
 * which socket was tried, what connect(2) said, whether a daemon was
 * started and what became of it.  "daemon unreachable" alone tells a user
 * nothing they can act on.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "control.h"
#include "paths.h"
#include "wire.h"

#ifndef SHMQD_PATH
#define SHMQD_PATH "shmqd"
#endif

/* What a call gives the daemon in all: to connect, to take the HELLO and
 * the request, and to answer them (a re-send on a fresh connection
 * included).  One deadline, so that no signal and no retry can make a
 * call longer: shmq.h promises this bound. */
#define CALL_TIMEOUT_MS  10000
#define REPLY_POLL_NS  100000L  /* look without sleeping this long first */
#define START_WAIT_MS  5000     /* what starting a daemon adds to a call */
/* How long to wait for another client's daemon once ours failed: if ours
 * lost the race for the socket's lock, the winner holds it already and
 * listens within microseconds. */
#define START_LOST_MS  1000
/* Room for two socket paths and a binary's: a transport failure's detail
 * names them.  Not on the wire: the daemon's own detail is shorter. */
#define DETAIL_MAX     512
#define QUIET_REPLY_MS   100    /* connect and HELLO of one for a notice */

static pthread_mutex_t conn_lock = PTHREAD_MUTEX_INITIALIZER;
static int conn_fd = -1;
static pid_t conn_pid;          /* process that opened conn_fd */
static uint32_t conn_seq;
static char conn_path[sizeof(((struct sockaddr_un *)0)->sun_path)];

static __thread char last_detail[DETAIL_MAX];

/* A call's deadline, and how long it was given in all (for the detail). */
struct bound {
	uint64_t at;            /* mono_ns() */
	int s;
};

static void bound_init(struct bound *b, int ms)
{
	b->at = mono_ns() + (uint64_t)ms * 1000000u;
	b->s = ms / 1000;
}

static void bound_extend(struct bound *b, int ms)
{
	b->at += (uint64_t)ms * 1000000u;
	b->s += ms / 1000;
}

/* Milliseconds left before the deadline, rounded up; 0 once it passed. */
static int bound_left_ms(const struct bound *b)
{
	uint64_t now = mono_ns();

	if (now >= b->at)
		return 0;
	return (int)((b->at - now + 999999u) / 1000000u);
}

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

__attribute__((format(printf, 1, 2)))
static void set_detailf(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(last_detail, sizeof(last_detail), fmt, ap);
	va_end(ap);
}

/* Appends to the detail, after "; ". */
__attribute__((format(printf, 1, 2)))
static void add_detailf(const char *fmt, ...)
{
	size_t n = strlen(last_detail);
	va_list ap;

	if (n + 2 >= sizeof(last_detail))
		return;
	if (n > 0) {
		memcpy(last_detail + n, "; ", 3);
		n += 2;
	}
	va_start(ap, fmt);
	vsnprintf(last_detail + n, sizeof(last_detail) - n, fmt, ap);
	va_end(ap);
}

/* Why a reply did not come (recvmsg returned `got`, errno as it left). */
static void reply_lost(ssize_t got, const struct bound *b)
{
	if (got == 0)
		set_detailf("the daemon on %s hung up", conn_path);
	else if (errno == ETIMEDOUT)
		set_detailf("no reply from the daemon on %s within %d s",
			    conn_path, b->s);
	else
		set_detailf("lost the daemon on %s (recvmsg: %s)", conn_path,
			    strerror(errno));
}

/* Why a reply was refused: a daemon of another wire version, or a packet
 * that does not parse. */
static void reply_bad(const void *pkt, size_t len)
{
	struct shmq_wire_hdr h;

	if (len >= sizeof(h)) {
		memcpy(&h, pkt, sizeof(h));
		if (h.magic == SHMQ_WIRE_MAGIC &&
		    h.version != SHMQ_WIRE_VERSION) {
			set_detailf("the daemon on %s speaks wire version %u, "
				    "this library %u", conn_path,
				    (unsigned)h.version, SHMQ_WIRE_VERSION);
			return;
		}
	}
	set_detailf("malformed reply from the daemon on %s", conn_path);
}

/* Receives the reply before the deadline (else -1, errno ETIMEDOUT).  It
 * usually comes within tens of microseconds; look for it without sleeping
 * for a little longer than that first, because on a VM a CPU that goes
 * idle to wait takes tens of microseconds more to wake up again.  Then
 * poll(2) with what is left of the call's time: a signal ends a poll
 * early, and the next one gets only what is left, never a fresh wait. */
static ssize_t wait_reply(int fd, struct msghdr *mh, const struct bound *b)
{
	uint64_t t0 = mono_ns();
	ssize_t got;

	for (;;) {
		got = recvmsg(fd, mh, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
		if (got >= 0 || (errno != EAGAIN && errno != EINTR))
			return got;
		if (mono_ns() - t0 > REPLY_POLL_NS)
			break;
	}
	for (;;) {
		struct pollfd p = { fd, POLLIN, 0 };
		int ms = bound_left_ms(b);

		if (ms == 0) {
			errno = ETIMEDOUT;
			return -1;
		}
		if (poll(&p, 1, ms) < 0 && errno != EINTR)
			return -1;
		got = recvmsg(fd, mh, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
		if (got >= 0 || (errno != EAGAIN && errno != EINTR))
			return got;
	}
}

/* Sends one packet before the deadline (else -1, errno ETIMEDOUT).  A
 * daemon that reads nothing lets its socket's queue fill, and a blocking
 * send(2) would then wait for as long as it does: never longer than the
 * call may take, and a signal does not start the wait afresh. */
static int send_packet(int fd, const void *pkt, size_t n,
		       const struct bound *b)
{
	for (;;) {
		ssize_t sent = send(fd, pkt, n, MSG_NOSIGNAL | MSG_DONTWAIT);
		struct pollfd p = { fd, POLLOUT, 0 };
		int ms;

		if (sent == (ssize_t)n)
			return 0;
		if (sent >= 0) {        /* a packet goes whole or not at all */
			errno = EMSGSIZE;
			return -1;
		}
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK)
			return -1;
		if ((ms = bound_left_ms(b)) == 0) {
			errno = ETIMEDOUT;
			return -1;
		}
		if (poll(&p, 1, ms) < 0 && errno != EINTR)
			return -1;
	}
}

/* One packet out, one packet back (none for a NOREPLY request). */
static int exchange(int fd, uint16_t type, const void *req, size_t req_len,
		    void *reply, size_t cap, size_t *reply_len, int *rfd,
		    int *unsent, const struct bound *b)
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
	if (send_packet(fd, pkt, n, b) < 0) {
		if (errno == ETIMEDOUT)
			set_detailf("the daemon on %s took no request within "
				    "%d s (send: its socket's queue stayed "
				    "full)", conn_path, b->s);
		else
			set_detailf("lost the daemon on %s (send: %s)",
				    conn_path, strerror(errno));
		*unsent = 1;
		return SHMQ_ENODAEMON;
	}
	if (type & SHMQ_MSG_NOREPLY)
		return SHMQ_OK;
	mh.msg_iov = &iov;
	mh.msg_iovlen = 1;
	mh.msg_control = cbuf.buf;
	mh.msg_controllen = sizeof(cbuf.buf);
	got = wait_reply(fd, &mh, b);
	if (got <= 0) {
		reply_lost(got, b);
		return SHMQ_ENODAEMON;
	}

	for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c))
		if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS &&
		    c->cmsg_len == CMSG_LEN(sizeof(int)) && passed < 0)
			memcpy(&passed, CMSG_DATA(c), sizeof(int));
	if (mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) {
		set_detailf("oversized reply from the daemon on %s",
			    conn_path);
		rc = SHMQ_EPROTO;
		goto out;
	}
	rc = wire_check_reply(pkt, (size_t)got, type, seq, &body, &body_len);
	if (rc != SHMQ_OK) {
		reply_bad(pkt, (size_t)got);
		goto out;
	}
	if (body_len > cap)
		body_len = cap;
	memcpy(reply, body, body_len);
	*reply_len = body_len;
	const struct shmq_wire_status *st = reply;
	rc = st->status;
	/* A call re-sent after a lost connection has an answer now. */
	last_detail[0] = '\0';
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

/* Connects before the deadline (else -1, errno ETIMEDOUT).  A connect(2)
 * to a daemon whose listen backlog is full waits for room, as long as
 * SO_SNDTIMEO lets it; a signal ends that wait with EINTR (a socket wait
 * with a timeout is never restarted), and the next try gets only what is
 * left of the call's time. */
static int connect_to(const char *path, const struct bound *b)
{
	struct sockaddr_un un = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0), rc, e;

	if (fd < 0)
		return -1;
	memcpy(un.sun_path, path, strnlen(path, sizeof(un.sun_path) - 1));
	for (;;) {
		int ms = bound_left_ms(b);
		struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };

		if (ms == 0) {
			rc = -1;
			errno = ETIMEDOUT;
			break;
		}
		setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
		rc = connect(fd, (struct sockaddr *)&un, sizeof(un));
		if (rc == 0 || errno != EINTR)
			break;
	}
	if (rc < 0 && errno == EISCONN)    /* an interrupted try got there */
		rc = 0;
	if (rc < 0) {
		e = errno == EAGAIN ? ETIMEDOUT : errno;
		close(fd);
		errno = e;
		return -1;
	}
	return fd;
}

/* Waits for our child `pid` until `until` (mono_ns): 1 and *status once
 * it exited, 0 if it still runs then, -1 if it is gone without a status
 * for us (ECHILD: the program ignores SIGCHLD, so the kernel reaped it,
 * or its own handler reaped it first).  Polls: a blocking waitpid(2) has
 * no timeout, and with SIGCHLD ignored it would wait for every child. */
static int wait_child(pid_t pid, uint64_t until, int *status)
{
	for (;;) {
		pid_t w = waitpid(pid, status, WNOHANG);

		if (w == pid)
			return 1;
		if (w < 0 && errno != EINTR)
			return -1;
		if (mono_ns() >= until)
			return 0;
		sleep_ms(1);
	}
}

/* Appends " (see PATH.log)" to `why` if shmqd got as far as its log. */
static void see_log(const char *path, char *why, size_t size)
{
	char log[sizeof(conn_path) + 8];
	size_t n = strlen(why);
	struct stat st;

	snprintf(log, sizeof(log), "%s.log", path);
	if (n < size && stat(log, &st) == 0)
		snprintf(why + n, size - n, " (see %s)", log);
}

/* Starts `shmqd --socket path` the way tmux starts its server.  shmqd
 * forks into the background and its first process exits once the socket
 * listens (1 if it could not), so waiting for that process is waiting for
 * the daemon.  The child reports a failed exec through a close-on-exec
 * pipe: nothing on it means the exec happened.  The whole start ends by
 * `until`: a binary that has not listened by then is killed (and reaped),
 * so that no call waits for it longer than it promised.
 *
 * Returns until when (mono_ns) the socket is worth trying: 0 if nothing
 * was started or what was started is gone for good, less than `until` if
 * ours failed (another client's may be the reason), `until` if ours
 * listens or nobody can tell (its status was reaped elsewhere).  `why`
 * gets what became of it, for the detail should nothing answer. */
static uint64_t start_daemon(const char *path, uint64_t until, char *why,
			     size_t size)
{
	const char *bin = getenv("SHMQ_DAEMON");
	char *argv[] = { "shmqd", "--socket", (char *)path, NULL };
	sigset_t all, old;
	int p[2], status = 0, err = 0, rc, left;
	ssize_t n = 0;
	pid_t pid;
	uint64_t lost;

	if (bin == NULL || *bin == '\0')
		bin = SHMQD_PATH;
	rc = paths_make_dir(path, 0700);
	if (rc == SHMQ_EACCES) {
		snprintf(why, size, "not starting a daemon in the directory of "
			 "%s: another user owns it or may write in it", path);
		return 0;
	}
	if (rc != SHMQ_OK) {
		snprintf(why, size, "cannot create the directory of %s: %s",
			 path, strerror(errno));
		return 0;
	}
	if (pipe2(p, O_CLOEXEC) < 0) {
		snprintf(why, size, "cannot start %s (pipe: %s)", bin,
			 strerror(errno));
		return 0;
	}
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	pid = fork();
	if (pid == 0) {
		/* Only async-signal-safe calls from here: we may have been
		 * forked from a threaded process.  The pipe's write end
		 * becomes fd 3, still close-on-exec, whatever fds 0-2 were. */
		int w = p[1] < 3 ? fcntl(p[1], F_DUPFD_CLOEXEC, 3) : p[1];
		int null = open("/dev/null", O_RDWR);
		if (null >= 0) {
			dup2(null, 0);
			dup2(null, 1);
			dup2(null, 2);
		}
		if (w != 3 && w >= 0) {
			dup2(w, 3);
			fcntl(3, F_SETFD, FD_CLOEXEC);
		}
		closefrom(4);
		sigprocmask(SIG_SETMASK, &old, NULL);
		execv(bin, argv);
		err = errno;
		/* Exit 127 either way; if the write failed, the parent hears
		 * of the exec error as "exited with status 127". */
		if (w >= 0 && write(3, &err, sizeof(err)) < 0)
			_exit(127);
		_exit(127);
	}
	if (pid < 0)
		err = errno;
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	close(p[1]);
	if (pid < 0) {
		close(p[0]);
		snprintf(why, size, "cannot start %s (fork: %s)", bin,
			 strerror(err));
		return 0;
	}
	/* The pipe closes at the exec, or carries its error. */
	for (;;) {
		struct pollfd pf = { p[0], POLLIN, 0 };
		uint64_t now = mono_ns();

		left = now < until ? (int)((until - now) / 1000000u) + 1 : 0;
		if (left == 0 || poll(&pf, 1, left) == 0) {
			n = -1;
			break;
		}
		n = read(p[0], &err, sizeof(err));
		if (n >= 0 || errno != EINTR)
			break;
	}
	close(p[0]);
	if (n == (ssize_t)sizeof(err)) {
		wait_child(pid, mono_ns() + 1000000000u, &status);
		snprintf(why, size, "cannot start %s (exec: %s)", bin,
			 strerror(err));
		return 0;
	}
	switch (n < 0 ? 0 : wait_child(pid, until, &status)) {
	case 0:
		kill(pid, SIGKILL);
		wait_child(pid, mono_ns() + 1000000000u, &status);
		snprintf(why, size, "started %s, which did not listen within "
			 "%d s: killed it", bin, START_WAIT_MS / 1000);
		see_log(path, why, size);
		return 0;
	case -1:
		snprintf(why, size, "started %s, whose exit status is unknown "
			 "(this program ignores SIGCHLD or reaped it), and "
			 "nothing answered within %d s", bin,
			 START_WAIT_MS / 1000);
		see_log(path, why, size);
		return until;
	}
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
		snprintf(why, size, "started %s, but nothing answered within "
			 "%d s", bin, START_WAIT_MS / 1000);
		return until;
	}
	if (WIFSIGNALED(status))
		snprintf(why, size, "started %s, which was killed by signal %d",
			 bin, WTERMSIG(status));
	else
		snprintf(why, size, "started %s, which exited with status %d",
			 bin, WEXITSTATUS(status));
	/* What shmqd could say once it had opened its log is there. */
	see_log(path, why, size);
	lost = mono_ns() + START_LOST_MS * 1000000ull;
	return lost < until ? lost : until;
}

static int hello(int fd, const struct bound *b)
{
	struct shmq_wire_hello h = {
		.wire_version = SHMQ_WIRE_VERSION,
		.layout_version = SHMQ_LAYOUT_VERSION,
	};
	struct shmq_wire_hello_reply r;
	size_t len;
	int unsent;
	int rc = exchange(fd, SHMQ_MSG_HELLO, &h, sizeof(h), &r, sizeof(r),
			  &len, NULL, &unsent, b);

	if (rc == SHMQ_OK && (r.wire_version != SHMQ_WIRE_VERSION ||
			      r.layout_version != SHMQ_LAYOUT_VERSION))
		rc = SHMQ_EPROTO;
	return rc;
}

/* Why connect(2) failed, in words, beginning the detail. */
static void connect_failed(const char *path, int err, const struct bound *b)
{
	if (err == ETIMEDOUT)
		set_detailf("the daemon on %s accepted no connection within "
			    "%d s (connect: its listen backlog stayed full)",
			    path, b->s);
	else if (err == ENOENT)
		set_detailf("no daemon on %s (connect: %s)", path,
			    strerror(err));
	else if (err == ECONNREFUSED)
		set_detailf("no daemon listens on %s (connect: %s)", path,
			    strerror(err));
	else
		set_detailf("connect to %s: %s", path, strerror(err));
}

/* Connects, starting a per-user daemon if none answers and that is
 * allowed.  The detail says why not, if not. */
/* The per-user default socket is in a directory anybody could have made
 * first (/tmp/shmq-UID without XDG_RUNTIME_DIR): the daemon answering
 * there must be the user's own (or root's), or it could pose as shmqd.
 * An explicit SHMQ_SOCKET, and the system socket, are trusted as named. */
static int check_daemon_user(int fd, const char *path)
{
	struct ucred cred;
	socklen_t len = sizeof(cred);

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0) {
		set_detailf("cannot tell who listens on %s (SO_PEERCRED: %s)",
			    path, strerror(errno));
		return SHMQ_EACCES;
	}
	if (cred.uid != getuid() && cred.uid != geteuid() && cred.uid != 0) {
		set_detailf("the daemon on %s runs as uid %u, not as you: "
			    "refusing it", path, (unsigned)cred.uid);
		return SHMQ_EACCES;
	}
	return SHMQ_OK;
}

/* Connects the shared connection.  A request that wants no reply (a
 * detach, a notice from a blocked call) never starts a daemon: with none
 * running, there is nobody to tell, and the segment already says it.  Nor
 * does a quiet call (!autostart: control_call_quiet), made on the side of
 * a call on a handle, which must not depend on a daemon.  `b`
 * bounds the connect and the HELLO: a blocked call's notice
 * (control_notify) gives them only QUIET_REPLY_MS, since the call may be
 * able to go on meanwhile. */
static int per_user_default(const char *env)
{
	return env == NULL || *env == '\0';
}

static int open_connection(uint16_t type, struct bound *b, int autostart)
{
	char why[DETAIL_MAX];
	int per_user, fd, err, rc;
	uint64_t until;
	const char *env = getenv("SHMQ_SOCKET");
	int by_default = per_user_default(env);

	rc = paths_client_socket(conn_path, sizeof(conn_path), &per_user);
	if (rc != SHMQ_OK) {
		set_detailf("SHMQ_SOCKET or the default socket path is too "
			    "long");
		return SHMQ_ENODAEMON;
	}
	fd = connect_to(conn_path, b);
	err = errno;
	if (fd < 0 && (err == ENOENT || err == ECONNREFUSED)) {
		connect_failed(conn_path, err, b);
		if (!per_user) {
			add_detailf("autostart is off (not a per-user socket)");
			return SHMQ_ENODAEMON;
		}
		if (getenv("SHMQ_NO_AUTOSTART") != NULL) {
			add_detailf("autostart is off (SHMQ_NO_AUTOSTART)");
			return SHMQ_ENODAEMON;
		}
		if ((type & SHMQ_MSG_NOREPLY) || !autostart) {
			if (!autostart)
				add_detailf("autostart is off for this call");
			return SHMQ_ENODAEMON;
		}
		/* Starting one adds to what the call may take; the start
		 * itself, waiting for it to answer included, ends by then. */
		bound_extend(b, START_WAIT_MS);
		until = start_daemon(conn_path, mono_ns() + START_WAIT_MS *
				     1000000ull, why, sizeof(why));
		/* Another client may be starting one at the same time; either
		 * way, a daemon answers here soon or not at all. */
		while (mono_ns() < until) {
			fd = connect_to(conn_path, b);
			err = errno;
			if (fd >= 0 || (err != ENOENT && err != ECONNREFUSED))
				break;
			sleep_ms(10);
		}
		if (fd < 0 && (err == ENOENT || err == ECONNREFUSED)) {
			add_detailf("%s", why);
			return SHMQ_ENODAEMON;
		}
	}
	if (fd < 0) {
		connect_failed(conn_path, err, b);
		return err == EACCES ? SHMQ_EACCES : SHMQ_ENODAEMON;
	}
	rc = SHMQ_OK;
	if (per_user && by_default)
		rc = check_daemon_user(fd, conn_path);
	if (rc == SHMQ_OK)
		rc = hello(fd, b);
	if (rc != SHMQ_OK) {
		close(fd);
		return rc;
	}
	conn_fd = fd;
	conn_pid = getpid();
	return SHMQ_OK;
}

static int call(uint16_t type, const void *req, size_t req_len,
		void *reply, size_t cap, size_t *reply_len, int *fd,
		int autostart)
{
	int rc = SHMQ_ENODAEMON, unsent = 1;
	struct bound b;

	if (fd)
		*fd = -1;
	last_detail[0] = '\0';
	if (cap < sizeof(struct shmq_wire_status))
		return SHMQ_EINVAL;
	pthread_mutex_lock(&conn_lock);
	/* The call's time starts once it is this thread's turn. */
	bound_init(&b, CALL_TIMEOUT_MS);
	if (conn_fd >= 0 && conn_pid != getpid()) {
		/* A forked child: the connection belongs to the parent. */
		close(conn_fd);
		conn_fd = -1;
	}
	/* A request that could not be sent goes again on a fresh
	 * connection (the daemon restarted), if the call has time left. */
	for (int attempt = 0; attempt < 2 && unsent; attempt++) {
		if (attempt > 0 && bound_left_ms(&b) == 0)
			break;
		if (conn_fd < 0) {
			rc = open_connection(type, &b, autostart);
			if (rc != SHMQ_OK)
				break;
		}
		rc = exchange(conn_fd, type, req, req_len, reply, cap,
			      reply_len, fd, &unsent, &b);
		if (rc == SHMQ_ENODAEMON || rc == SHMQ_EPROTO) {
			close(conn_fd);
			conn_fd = -1;
		}
	}
	pthread_mutex_unlock(&conn_lock);
	return rc;
}

int control_call(uint16_t type, const void *req, size_t req_len,
		 void *reply, size_t cap, size_t *reply_len, int *fd)
{
	return call(type, req, req_len, reply, cap, reply_len, fd, 1);
}

int control_call_quiet(uint16_t type, const void *req, size_t req_len,
		       void *reply, size_t cap, size_t *reply_len, int *fd)
{
	return call(type, req, req_len, reply, cap, reply_len, fd, 0);
}

int control_connect(const char *path, int greet, int *fd)
{
	int rc = SHMQ_OK;
	struct bound b;

	bound_init(&b, CALL_TIMEOUT_MS);
	*fd = connect_to(path, &b);
	if (*fd < 0)
		return errno == EACCES ? SHMQ_EACCES : SHMQ_ENODAEMON;
	if (greet) {
		/* hello() packs into exchange()'s buffer: take its lock. */
		pthread_mutex_lock(&conn_lock);
		rc = hello(*fd, &b);
		pthread_mutex_unlock(&conn_lock);
		if (rc != SHMQ_OK) {
			close(*fd);
			*fd = -1;
		}
	}
	return rc;
}

int control_notify(uint16_t type, const void *req, size_t req_len)
{
	static char pkt[SHMQ_WIRE_MAX];     /* guarded by conn_lock */
	char keep[sizeof(last_detail)];
	int rc = SHMQ_EAGAIN;
	struct bound b;

	type |= SHMQ_MSG_NOREPLY;
	if (pthread_mutex_trylock(&conn_lock) != 0)
		return SHMQ_EAGAIN;     /* a request is under way: next time */
	/* The caller is in the middle of another call, whose error detail
	 * this one must not replace. */
	memcpy(keep, last_detail, sizeof(keep));
	bound_init(&b, QUIET_REPLY_MS);
	if (conn_fd >= 0 && conn_pid != getpid()) {
		close(conn_fd);
		conn_fd = -1;
	}
	size_t n = wire_pack(pkt, type, ++conn_seq, req, req_len);
	/* The connection may have died with a daemon that was restarted
	 * since: then once more on a new one. */
	for (int attempt = 0; attempt < 2; attempt++) {
		if (conn_fd < 0 && open_connection(type, &b, 0) != SHMQ_OK) {
			rc = SHMQ_ENODAEMON;
			break;
		}
		if (send(conn_fd, pkt, n, MSG_NOSIGNAL | MSG_DONTWAIT) ==
		    (ssize_t)n) {
			rc = SHMQ_OK;
			break;
		}
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			break;          /* the daemon is busy: next time */
		close(conn_fd);
		conn_fd = -1;
		rc = SHMQ_ENODAEMON;
	}
	memcpy(last_detail, keep, sizeof(keep));
	pthread_mutex_unlock(&conn_lock);
	return rc;
}
