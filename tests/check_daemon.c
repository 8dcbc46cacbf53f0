/*
 * check_daemon.c - integration tests of shmqd and libshmq together.
 *
 * Owns the end-to-end behaviour that SPEC.md promises from the daemon:
 * the queue lifecycle through the control socket, process tracking
 * (auto-close, producers that die), restarts that lose nothing,
 * permissions decided from the peer's credentials, hostile protocol
 * input, resource limits, systemd readiness and socket activation, and
 * autostart.  Every test runs the real built shmqd (tests/harness.c) and
 * real client processes on real shared memory; nothing is mocked.  The
 * ring's own semantics belong to tests/check_ring.c and appear here only
 * where the daemon takes part.
 *
 * Rules every test keeps: it is bounded in time (Check timeouts, and a
 * timeout on every blocking call); it never relies on a sleep for
 * correctness (pipes carry handshakes; where the only observable is a
 * counter in shared memory, WAIT_UNTIL polls it with a bound); and it
 * leaves nothing behind (daemon_cleanup() in the test, harness_sweep()
 * after a test that died).  Child processes never call ck_assert: they
 * print what failed and exit non-zero, and the parent's CHILD_OK turns
 * that into the test's failure.
 */
#define _GNU_SOURCE
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "paths.h"
#include "shmq.h"
#include "shmq_wire.h"

#define NOBODY ((uid_t)65534)

/* --- time ---------------------------------------------------------------- */

static long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

static int64_t now_real_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* Polls `cond` every millisecond for at most `ms`: only for events that
 * offer no handshake (the daemon noticing a death, a process falling
 * asleep in put or get).  Evaluates to whether `cond` came true. */
#define WAIT_UNTIL(cond, ms)                                                 \
	({                                                                   \
		long until_ = now_ms() + (ms);                               \
		int ok_;                                                     \
		while (!(ok_ = !!(cond)) && now_ms() < until_)               \
			sleep_ms(1);                                         \
		ok_;                                                         \
	})

/* --- assertions -------------------------------------------------------- */

#define RC_EQ(expr, want)                                                    \
	do {                                                                 \
		int rc_ = (expr), want_ = (want);                            \
		ck_assert_msg(rc_ == want_, "%s = %d (%s), want %d (%s)",    \
			      #expr, rc_, shmq_strerror(rc_), want_,         \
			      shmq_strerror(want_));                         \
	} while (0)

/* In a child process: report and exit 1 instead of asserting. */
#define CHILD_CHECK(cond)                                                    \
	do {                                                                 \
		if (!(cond)) {                                               \
			fprintf(stderr, "%s:%d: child %ld: failed: %s\n",    \
				__FILE__, __LINE__, (long)getpid(), #cond);  \
			_exit(1);                                            \
		}                                                            \
	} while (0)

#define CHILD_RC(expr, want)                                                 \
	do {                                                                 \
		int rc_ = (expr), want_ = (want);                            \
		if (rc_ != want_) {                                          \
			fprintf(stderr,                                      \
				"%s:%d: child %ld: %s = %d (%s), want %d "   \
				"(%s)\n",                                    \
				__FILE__, __LINE__, (long)getpid(), #expr,   \
				rc_, shmq_strerror(rc_), want_,              \
				shmq_strerror(want_));                       \
			_exit(1);                                            \
		}                                                            \
	} while (0)

static const char *describe(int status)
{
	static char buf[64];

	if (status == -1)
		snprintf(buf, sizeof(buf), "did not finish in time");
	else if (WIFEXITED(status))
		snprintf(buf, sizeof(buf), "exit status %d",
			 WEXITSTATUS(status));
	else if (WIFSIGNALED(status))
		snprintf(buf, sizeof(buf), "killed by signal %d",
			 WTERMSIG(status));
	else
		snprintf(buf, sizeof(buf), "wait status %#x", status);
	return buf;
}

/* Reaps a child (killing it after 20 s) and fails unless it exited 0. */
#define CHILD_OK(pid)                                                        \
	do {                                                                 \
		pid_t p_ = (pid);                                            \
		int st_ = harness_wait(p_, 20000);                           \
		ck_assert_msg(st_ != -1 && WIFEXITED(st_) &&                 \
				      WEXITSTATUS(st_) == 0,                 \
			      "child %ld: %s", (long)p_, describe(st_));     \
	} while (0)

static int exited_with(int status, int code)
{
	return status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == code;
}

/* --- channels: the handshakes between a test and its children ---------- */

struct chan {
	int down[2];    /* parent -> child: commands */
	int up[2];      /* child -> parent: answers */
};

static void chan_init(struct chan *c)
{
	ck_assert_int_eq(pipe2(c->down, O_CLOEXEC), 0);
	ck_assert_int_eq(pipe2(c->up, O_CLOEXEC), 0);
}

static void chan_child(struct chan *c)
{
	close(c->down[1]);
	close(c->up[0]);
}

static void chan_parent(struct chan *c)
{
	close(c->down[0]);
	close(c->up[1]);
}

static void chan_done(struct chan *c)
{
	close(c->down[1]);
	close(c->up[0]);
}

/* One byte from `fd` within `ms`, or -1 (timeout or end of file). */
static int byte_read(int fd, int ms)
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

static int byte_write(int fd, int b)
{
	unsigned char c = (unsigned char)b;

	return write(fd, &c, 1) == 1 ? 0 : -1;
}

static void chan_expect(struct chan *c, int want)
{
	int got = byte_read(c->up[0], 15000);

	ck_assert_msg(got == want, "child answered %d, want '%c'", got, want);
}

/* Sends a command and waits for its answer. */
static void chan_cmd(struct chan *c, int cmd, int want)
{
	ck_assert_int_eq(byte_write(c->down[1], cmd), 0);
	chan_expect(c, want);
}

static void child_say(struct chan *c, int b)
{
	CHILD_CHECK(byte_write(c->up[1], b) == 0);
}

static int child_hear(struct chan *c)
{
	int b = byte_read(c->down[0], 20000);

	CHILD_CHECK(b >= 0);
	return b;
}

/* --- queues -------------------------------------------------------------- */

static struct shmq_attr attr_of(uint32_t capacity, uint32_t max_msg,
				uint32_t mode, uint32_t flags)
{
	struct shmq_attr a;

	shmq_attr_init(&a);
	a.capacity = capacity;
	a.max_msg = max_msg;
	a.mode = mode;
	a.flags = flags;
	return a;
}

static void create_q(const char *name, uint32_t capacity, uint32_t max_msg,
		     uint32_t mode, uint32_t flags)
{
	struct shmq_attr a = attr_of(capacity, max_msg, mode, flags);

	RC_EQ(shmq_create(name, &a, 0), SHMQ_OK);
}

static shmq_t *open_q(const char *name, unsigned flags)
{
	shmq_t *q = NULL;

	RC_EQ(shmq_open(name, flags, &q), SHMQ_OK);
	ck_assert_ptr_nonnull(q);
	return q;
}

static struct shmq_stat stat_name(const char *name)
{
	struct shmq_stat st;

	RC_EQ(shmq_stat_name(name, &st), SHMQ_OK);
	return st;
}

static struct shmq_stat stat_q(shmq_t *q)
{
	struct shmq_stat st;

	RC_EQ(shmq_stat(q, &st), SHMQ_OK);
	return st;
}

static void put_str(shmq_t *q, const char *s)
{
	RC_EQ(shmq_put(q, s, strlen(s), 5000), SHMQ_OK);
}

static void get_str(shmq_t *q, const char *want)
{
	char buf[4096];
	size_t len = 0;

	RC_EQ(shmq_get(q, buf, sizeof(buf), &len, 5000), SHMQ_OK);
	ck_assert_msg(len == strlen(want) && memcmp(buf, want, len) == 0,
		      "got '%.*s', want '%s'", (int)len, buf, want);
}

/* Messages "<tag><6 digits>": one tag per producer, so that a consumer
 * can check each producer's order and that nothing is lost or repeated. */
#define SEQ_LEN 7

static void seq_msg(char *buf, char tag, unsigned seq)
{
	snprintf(buf, SEQ_LEN + 1, "%c%06u", tag, seq % 1000000u);
}

static int seq_parse(const char *buf, size_t len, unsigned char *tag,
		     unsigned *seq)
{
	unsigned v = 0;

	if (len != SEQ_LEN)
		return -1;
	for (size_t i = 1; i < SEQ_LEN; i++) {
		if (buf[i] < '0' || buf[i] > '9')
			return -1;
		v = v * 10 + (unsigned)(buf[i] - '0');
	}
	*tag = (unsigned char)buf[0];
	*seq = v;
	return 0;
}

struct seqs {
	unsigned next[256];
	unsigned count;
};

/* Takes one message: it must be the next one of its producer. */
static void seqs_take(struct seqs *s, const char *buf, size_t len)
{
	unsigned char tag;
	unsigned seq;

	ck_assert_msg(seq_parse(buf, len, &tag, &seq) == 0,
		      "unexpected message '%.*s'", (int)len, buf);
	ck_assert_msg(seq == s->next[tag], "producer '%c': got %u, want %u",
		      tag, seq, s->next[tag]);
	s->next[tag]++;
	s->count++;
}

/* Gets until the stream ends (or a get fails); returns how it ended. */
static int drain(shmq_t *q, struct seqs *s)
{
	char buf[64];
	size_t len;
	int rc;

	while ((rc = shmq_get(q, buf, sizeof(buf), &len, 5000)) == SHMQ_OK)
		seqs_take(s, buf, len);
	return rc;
}

/* --- producer processes -------------------------------------------------- */

/* A producer in its own process, driven over a channel so that the test
 * decides exactly when it acts.  It answers 'r' once its handle is open;
 * then, per command:
 *   'p'  puts the next `batch` messages "<tag><seq>", answers 'k'
 *   'd'  detaches, answers 'k', exits 0
 *   'x'  exits 0 at once without detaching
 * and otherwise waits, attached, until it is killed. */
struct producer {
	pid_t pid;
	struct chan ch;
};

static void producer_start(struct producer *p, const char *queue, char tag,
			   unsigned batch)
{
	chan_init(&p->ch);
	p->pid = harness_fork();
	ck_assert_int_ge(p->pid, 0);
	if (p->pid == 0) {
		char msg[SEQ_LEN + 1];
		unsigned seq = 0;
		shmq_t *q;

		chan_child(&p->ch);
		CHILD_RC(shmq_open(queue, SHMQ_PRODUCER, &q), SHMQ_OK);
		child_say(&p->ch, 'r');
		for (;;) {
			int cmd = child_hear(&p->ch);
			if (cmd == 'p') {
				for (unsigned i = 0; i < batch; i++, seq++) {
					seq_msg(msg, tag, seq);
					CHILD_RC(shmq_put(q, msg, SEQ_LEN,
							  10000),
						 SHMQ_OK);
				}
				child_say(&p->ch, 'k');
			} else if (cmd == 'd') {
				CHILD_RC(shmq_detach(q), SHMQ_OK);
				child_say(&p->ch, 'k');
				_exit(0);
			} else if (cmd == 'x') {
				_exit(0);
			} else {
				CHILD_CHECK(cmd == 'p' || cmd == 'd');
			}
		}
	}
	chan_parent(&p->ch);
	chan_expect(&p->ch, 'r');
}

static void producer_end(struct producer *p)
{
	CHILD_OK(p->pid);
	chan_done(&p->ch);
}

/* --- raw control connections -------------------------------------------- */

/* What raw_reply() saw instead of a reply's status. */
#define RAW_EOF     1000        /* the daemon hung up */
#define RAW_TIMEOUT 1001        /* nothing within 5 s */
#define RAW_GARBLED 1002        /* something that is not a sound reply */
#define RAW_RESET   1003        /* ECONNRESET: the daemon hung up on
				   requests it had not read; replies it sent
				   before may still follow */

static int dropped(int rc)
{
	return rc == RAW_EOF || rc == RAW_RESET;
}

/* No assertions below this point up to the next section: children use
 * these too. */
static int raw_connect(const char *path)
{
	struct sockaddr_un un = { .sun_family = AF_UNIX };
	struct timeval tv = { .tv_sec = 5 };
	int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -1;
	snprintf(un.sun_path, sizeof(un.sun_path), "%s", path);
	if (connect(fd, (struct sockaddr *)&un, sizeof(un)) < 0) {
		int e = errno;
		close(fd);
		errno = e;
		return -1;
	}
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	return fd;
}

static size_t raw_pack(void *buf, uint16_t type, uint32_t seq,
		       const void *body, size_t len)
{
	struct shmq_wire_hdr h = {
		.magic = SHMQ_WIRE_MAGIC,
		.version = SHMQ_WIRE_VERSION,
		.type = type,
		.len = (uint32_t)(sizeof(h) + len),
		.seq = seq,
	};

	memcpy(buf, &h, sizeof(h));
	if (len)
		memcpy((char *)buf + sizeof(h), body, len);
	return sizeof(h) + len;
}

static int raw_send(int fd, const void *pkt, size_t len)
{
	return send(fd, pkt, len, MSG_NOSIGNAL) == (ssize_t)len ? 0 : -1;
}

/* A request with a sound header. */
static int raw_request(int fd, uint16_t type, uint32_t seq, const void *body,
		       size_t len)
{
	static char pkt[SHMQ_WIRE_MAX];

	return raw_send(fd, pkt, raw_pack(pkt, type, seq, body, len));
}

/* Reads one packet and returns the reply's status, or RAW_*.  With
 * `type` non-zero the reply must echo type and seq.  The body (from the
 * status on) goes to `body`, at most `cap` bytes. */
static int raw_reply(int fd, uint16_t type, uint32_t seq, void *body,
		     size_t cap)
{
	static char pkt[SHMQ_WIRE_MAX + 1];
	struct shmq_wire_hdr h;
	struct shmq_wire_status st;
	ssize_t n = recv(fd, pkt, sizeof(pkt), 0);

	if (n < 0 && errno == ECONNRESET)
		return RAW_RESET;
	if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK))
		return RAW_EOF;
	if (n < 0)
		return RAW_TIMEOUT;
	if ((size_t)n < sizeof(h) + sizeof(st))
		return RAW_GARBLED;
	memcpy(&h, pkt, sizeof(h));
	memcpy(&st, pkt + sizeof(h), sizeof(st));
	if (h.magic != SHMQ_WIRE_MAGIC || h.version != SHMQ_WIRE_VERSION ||
	    h.len != (uint32_t)n || !(h.type & SHMQ_MSG_REPLY) ||
	    st.detail[SHMQ_WIRE_DETAIL - 1] != '\0')
		return RAW_GARBLED;
	if (type && (h.type != (type | SHMQ_MSG_REPLY) || h.seq != seq))
		return RAW_GARBLED;
	if (body) {
		size_t m = (size_t)n - sizeof(h);
		memcpy(body, pkt + sizeof(h), m < cap ? m : cap);
	}
	return st.status;
}

static int raw_hello(int fd, pid_t *daemon_pid)
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

/* The pid of the daemon answering on `sock`, or -1. */
static pid_t daemon_pid_of(const char *sock)
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

/* --- processes that are not ours --------------------------------------- */

/* Counts the processes that hold `sock`.lock open (the daemon's lock);
 * *holder is one of them. */
static int lock_holders(const char *sock, pid_t *holder)
{
	char lock[PATH_MAX], path[PATH_MAX], target[PATH_MAX];
	DIR *proc = opendir("/proc");
	struct dirent *e;
	int n = 0;

	snprintf(lock, sizeof(lock), "%s.lock", sock);
	while (proc && (e = readdir(proc)) != NULL) {
		if (e->d_name[0] < '1' || e->d_name[0] > '9')
			continue;
		snprintf(path, sizeof(path), "/proc/%s/fd", e->d_name);
		DIR *fds = opendir(path);
		struct dirent *f;
		while (fds && (f = readdir(fds)) != NULL) {
			char link[PATH_MAX];
			snprintf(link, sizeof(link), "/proc/%s/fd/%s",
				 e->d_name, f->d_name);
			ssize_t m = readlink(link, target, sizeof(target) - 1);
			if (m <= 0)
				continue;
			target[m] = '\0';
			if (strcmp(target, lock) == 0) {
				n++;
				if (holder)
					*holder = (pid_t)atol(e->d_name);
				break;
			}
		}
		if (fds)
			closedir(fds);
	}
	if (proc)
		closedir(proc);
	return n;
}

static int is_shmqd(pid_t pid)
{
	char exe[64], target[PATH_MAX];
	ssize_t n;

	snprintf(exe, sizeof(exe), "/proc/%ld/exe", (long)pid);
	n = readlink(exe, target, sizeof(target) - 1);
	if (n <= 0)
		return 0;
	target[n] = '\0';
	return strstr(target, "shmqd") != NULL;
}

/* Every shmqd running with `--socket sock`, whether or not it got the
 * lock: autostarted daemons are not our children. */
static int daemons_on(const char *sock, pid_t *pids, int max)
{
	DIR *proc = opendir("/proc");
	struct dirent *e;
	int n = 0;

	while (proc && (e = readdir(proc)) != NULL) {
		char path[300], args[4096];
		ssize_t len;
		int fd;

		if (e->d_name[0] < '1' || e->d_name[0] > '9')
			continue;
		snprintf(path, sizeof(path), "/proc/%s/cmdline", e->d_name);
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			continue;
		len = read(fd, args, sizeof(args) - 1);
		close(fd);
		if (len <= 0)
			continue;
		args[len] = '\0';
		/* NUL-separated: look for "--socket" followed by sock. */
		for (char *a = args; a < args + len; a += strlen(a) + 1) {
			char *next = a + strlen(a) + 1;
			if (strcmp(a, "--socket") == 0 && next < args + len &&
			    strcmp(next, sock) == 0 &&
			    is_shmqd((pid_t)atol(e->d_name))) {
				if (n < max)
					pids[n] = (pid_t)atol(e->d_name);
				n++;
				break;
			}
		}
	}
	if (proc)
		closedir(proc);
	return n;
}

/* Daemons the harness did not start (autostart) go into the harness's
 * list of pids, so that harness_sweep() kills them if this test dies.
 * Call it before asserting anything about them.  Returns how many. */
static int remember_daemons(const struct daemon *d)
{
	char path[sizeof(d->dir) + 8];
	pid_t pids[16];
	char *slash;
	FILE *f;
	int n = daemons_on(d->sock, pids, 16);

	snprintf(path, sizeof(path), "%s", d->dir);
	slash = strrchr(path, '/');
	ck_assert_ptr_nonnull(slash);
	strcpy(slash, "/pids");
	f = fopen(path, "a");
	ck_assert_ptr_nonnull(f);
	for (int i = 0; i < n && i < 16; i++)
		fprintf(f, "%ld\n", (long)pids[i]);
	fclose(f);
	return n;
}

/* Records the daemons on d's socket for the sweep, then waits until one
 * is left and returns it: racers that lost the lock exit by themselves,
 * which with sanitizers (a leak check at exit) takes a moment. */
static pid_t sole_daemon(const struct daemon *d)
{
	pid_t pids[16] = { 0 };
	int n = remember_daemons(d);

	ck_assert_msg(WAIT_UNTIL((n = daemons_on(d->sock, pids, 16)) == 1,
				 10000),
		      "%d daemons serve %s", n, d->sock);
	return pids[0];
}

/* Stops a process that is not our child: SIGTERM, and waits for its exit
 * through a pidfd (SIGKILL after 10 s).  1 if it exited on SIGTERM. */
static int stop_foreign(pid_t pid)
{
	int pfd = (int)syscall(SYS_pidfd_open, pid, 0);
	struct pollfd p;
	int r;

	if (pfd < 0)
		return 0;
	p.fd = pfd;
	p.events = POLLIN;
	kill(pid, SIGTERM);
	r = poll(&p, 1, 10000);
	if (r <= 0) {
		kill(pid, SIGKILL);
		poll(&p, 1, 5000);
	}
	close(pfd);
	return r > 0;
}

static int file_contains(const char *path, const char *needle)
{
	static char buf[1 << 16];
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return 0;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n < 0)
		return 0;
	buf[n] = '\0';
	return strstr(buf, needle) != NULL;
}

/* Starts a daemon only to have the harness own a directory and a socket
 * path, then stops it cleanly so that the path is free: for daemons this
 * suite starts in other ways (socket activation, autostart), which the
 * harness then still cleans up after. */
static void borrow_dir(struct daemon *d)
{
	int st;

	ck_assert_int_eq(daemon_start(d, NULL), 0);
	st = daemon_stop(d, SIGTERM);
	ck_assert_msg(exited_with(st, 0), "shmqd on SIGTERM: %s",
		      describe(st));
	ck_assert_int_ne(access(d->sock, F_OK), 0);
}

/* Maps the segment (not the .meta record) of daemon `d`'s only queue,
 * as its owner may: for playing a client that scribbles on it. */
static struct shmq_seg_hdr *map_only_segment(const struct daemon *d,
					     size_t *size)
{
	DIR *dir = opendir("/dev/shm");
	struct dirent *e;
	struct stat sb;
	char path[300] = "";
	void *map;
	int n = 0, fd;

	ck_assert_ptr_nonnull(dir);
	while ((e = readdir(dir)) != NULL) {
		size_t len = strlen(e->d_name);
		if (strncmp(e->d_name, d->prefix, strlen(d->prefix)) != 0 ||
		    (len > 5 && strcmp(e->d_name + len - 5, ".meta") == 0))
			continue;
		snprintf(path, sizeof(path), "/dev/shm/%s", e->d_name);
		n++;
	}
	closedir(dir);
	ck_assert_int_eq(n, 1);
	fd = open(path, O_RDWR | O_CLOEXEC);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(fstat(fd, &sb), 0);
	*size = (size_t)sb.st_size;
	map = mmap(NULL, *size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	close(fd);
	ck_assert(map != MAP_FAILED);
	return map;
}

/* What the attachment entry of process `pid` says it waits for
 * (SHMQ_WAIT_*), read from a mapped segment; UINT32_MAX if it has none. */
static uint32_t wait_mark_of(const struct shmq_seg_hdr *h, size_t size,
			     pid_t pid)
{
	uint64_t off = h->clients_off;
	uint32_t n = h->clients;
	const struct shmq_client *c;

	ck_assert(off <= size && n <= (size - off) / sizeof(*c));
	c = (const struct shmq_client *)((const char *)h + off);
	for (uint32_t i = 0; i < n; i++)
		if (__atomic_load_n(&c[i].pid, __ATOMIC_ACQUIRE) == (uint32_t)pid)
			return __atomic_load_n(&c[i].wait, __ATOMIC_ACQUIRE);
	return UINT32_MAX;
}

/* ======================================================================= */
/* 1. The API through the daemon                                           */

START_TEST(test_create)
{
	struct daemon d;
	struct shmq_attr a;
	struct shmq_stat st;
	int64_t before, after;

	ck_assert_int_eq(daemon_start(&d, NULL), 0);

	before = now_real_ns();
	RC_EQ(shmq_create("plain", NULL, 0), SHMQ_OK);
	after = now_real_ns();
	st = stat_name("plain");
	ck_assert_str_eq(st.name, "plain");
	ck_assert_uint_eq(st.capacity, SHMQ_DEFAULT_CAPACITY);
	ck_assert_uint_eq(st.max_msg, SHMQ_DEFAULT_MAX_MSG);
	ck_assert_uint_eq(st.max_bytes, 0);
	ck_assert_uint_eq(st.mode, SHMQ_DEFAULT_MODE);
	ck_assert_uint_eq(st.uid, getuid());
	ck_assert_uint_eq(st.gid, getgid());
	ck_assert_uint_eq(st.flags, 0);
	ck_assert_uint_eq(st.messages, 0);
	ck_assert_uint_eq(st.bytes, 0);
	ck_assert_uint_eq(st.producers, 0);
	ck_assert_uint_eq(st.consumers, 0);
	ck_assert_uint_eq(st.total_put, 0);
	ck_assert_uint_eq(st.total_got, 0);
	ck_assert_int_eq(st.state, SHMQ_STATE_OPEN);
	ck_assert_int_eq(st.auto_closed, 0);
	ck_assert_int_eq(st.producer_lost, 0);
	ck_assert_int_eq(st.closed_ns, 0);
	ck_assert_msg(st.created_ns >= before && st.created_ns <= after,
		      "created_ns %lld not in [%lld, %lld]",
		      (long long)st.created_ns, (long long)before,
		      (long long)after);

	a = attr_of(7, 100, 0640, SHMQ_AUTO_CLOSE);
	a.max_bytes = 300;
	RC_EQ(shmq_create("tuned", &a, 0), SHMQ_OK);
	st = stat_name("tuned");
	ck_assert_uint_eq(st.capacity, 7);
	ck_assert_uint_eq(st.max_msg, 100);
	ck_assert_uint_eq(st.max_bytes, 300);
	ck_assert_uint_eq(st.mode, 0640);
	ck_assert_uint_eq(st.flags, SHMQ_AUTO_CLOSE);
	ck_assert_int_eq(st.state, SHMQ_STATE_OPEN);

	/* A second create fails; with SHMQ_EXIST_OK it succeeds and
	 * leaves the existing queue as it was. */
	RC_EQ(shmq_create("plain", &a, 0), SHMQ_EEXIST);
	RC_EQ(shmq_create("plain", NULL, 0), SHMQ_EEXIST);
	RC_EQ(shmq_create("plain", &a, SHMQ_EXIST_OK), SHMQ_OK);
	st = stat_name("plain");
	ck_assert_uint_eq(st.capacity, SHMQ_DEFAULT_CAPACITY);
	ck_assert_uint_eq(st.mode, SHMQ_DEFAULT_MODE);
	RC_EQ(shmq_create("fresh", &a, SHMQ_EXIST_OK), SHMQ_OK);
	ck_assert_uint_eq(stat_name("fresh").capacity, 7);

	/* Unknown flags and mode bits are refused, not ignored. */
	RC_EQ(shmq_create("flags", NULL, 0x80), SHMQ_EINVAL);
	a = attr_of(4, 16, 0600, 0x10);
	RC_EQ(shmq_create("flags", &a, 0), SHMQ_EINVAL);
	a = attr_of(4, 16, 01600, 0);
	RC_EQ(shmq_create("flags", &a, 0), SHMQ_EINVAL);
	RC_EQ(shmq_stat_name("flags", &st), SHMQ_ENOENT);

	RC_EQ(shmq_stat_name("missing", &st), SHMQ_ENOENT);
	/* Two shared-memory objects per queue: segment and record. */
	ck_assert_int_eq(daemon_segments(&d), 2 * 3);
	ck_assert_int_eq(daemon_cleanup(&d), 0);
}
END_TEST

START_TEST(test_names)
{
	static const char *const fixed_bad[] = {
		"", ".", "..", ".hidden", "a/b", "/abs", "dir/", "a b", " x",
		"x ", "tab\tx", "nl\nx", "caf\xc3\xa9", "\xff", "semi;colon",
		"st*r", "q\"uote", "back\\slash", "pct%s", "a:b",
	};
	static const char *const fixed_good[] = {
		"a", "Z", "0", "Z-9_x.y", "x.", "-lead", "_lead", "a..b",
	};
	char over[SHMQ_NAME_MAX + 2], huge[1024], max[SHMQ_NAME_MAX + 1];
	const char *bad[32], *good[16];
	size_t nbad = 0, ngood = 0, n;
	struct shmq_stat st, *list;
	struct daemon d;
	shmq_t *q;

	memset(over, 'o', sizeof(over) - 1);
	over[sizeof(over) - 1] = '\0';          /* 256 bytes */
	memset(huge, 'h', sizeof(huge) - 1);
	huge[sizeof(huge) - 1] = '\0';
	memset(max, 'm', sizeof(max) - 1);
	max[sizeof(max) - 1] = '\0';            /* 255 bytes: the longest */
	for (size_t i = 0; i < sizeof(fixed_bad) / sizeof(*fixed_bad); i++)
		bad[nbad++] = fixed_bad[i];
	bad[nbad++] = over;
	bad[nbad++] = huge;
	for (size_t i = 0; i < sizeof(fixed_good) / sizeof(*fixed_good); i++)
		good[ngood++] = fixed_good[i];
	good[ngood++] = max;

	ck_assert_int_eq(daemon_start(&d, NULL), 0);
	RC_EQ(shmq_check_name(NULL), SHMQ_ENAME);
	for (size_t i = 0; i < nbad; i++) {
		q = (shmq_t *)&q;       /* poisoned: a refusal must clear it */
		ck_assert_msg(shmq_check_name(bad[i]) == SHMQ_ENAME,
			      "name #%zu accepted", i);
		RC_EQ(shmq_create(bad[i], NULL, 0), SHMQ_ENAME);
		RC_EQ(shmq_create(bad[i], NULL, SHMQ_EXIST_OK), SHMQ_ENAME);
		RC_EQ(shmq_open(bad[i], SHMQ_PRODUCER, &q), SHMQ_ENAME);
		ck_assert_ptr_null(q);
		RC_EQ(shmq_stat_name(bad[i], &st), SHMQ_ENAME);
		RC_EQ(shmq_close_name(bad[i], SHMQ_CLOSE_DRAIN, NULL),
		      SHMQ_ENAME);
		RC_EQ(shmq_delete(bad[i]), SHMQ_ENAME);
	}
	for (size_t i = 0; i < ngood; i++) {
		RC_EQ(shmq_check_name(good[i]), SHMQ_OK);
		create_q(good[i], 2, 16, 0600, 0);
		ck_assert_str_eq(stat_name(good[i]).name, good[i]);
	}
	/* Nothing but the good names got through. */
	RC_EQ(shmq_list(&list, &n), SHMQ_OK);
	ck_assert_uint_eq(n, ngood);
	for (size_t i = 0; i < n; i++) {
		int found = 0;
		for (size_t j = 0; j < ngood; j++)
			found |= strcmp(list[i].name, good[j]) == 0;
		ck_assert_msg(found, "unexpected queue '%s'", list[i].name);
	}
	free(list);
	ck_assert_int_eq(daemon_segments(&d), (int)(2 * ngood));
	ck_assert_int_eq(daemon_cleanup(&d), 0);
}
END_TEST

START_TEST(test_bad_attrs)
{
	struct daemon d;
	struct shmq_attr a;
	struct shmq_stat st;
	shmq_t *q;
	char big[64];

	ck_assert_int_eq(daemon_start(&d, NULL), 0);

	a = attr_of(0, 64, 0600, 0);
	RC_EQ(shmq_create("x", &a, 0), SHMQ_EINVAL);
	ck_assert_msg(shmq_error_detail()[0] != '\0',
		      "no detail for capacity 0");
	a = attr_of(SHMQ_CAPACITY_MAX + 1, 64, 0600, 0);
	RC_EQ(shmq_create("x", &a, 0), SHMQ_EINVAL);
	a = attr_of(4, SHMQ_MSG_MAX + 1, 0600, 0);
	RC_EQ(shmq_create("x", &a, 0), SHMQ_EINVAL);
	/* A byte budget below one message could never admit it. */
	a = attr_of(4, 64, 0600, 0);
	a.max_bytes = 63;
	RC_EQ(shmq_create("x", &a, 0), SHMQ_EINVAL);
	ck_assert_msg(shmq_error_detail()[0] != '\0',
		      "no detail for max_bytes < max_msg");
	/* Refusals create nothing. */
	RC_EQ(shmq_stat_name("x", &st), SHMQ_ENOENT);
	ck_assert_int_eq(daemon_segments(&d), 0);

	/* The smallest budget that admits a message: exactly one. */
	a.max_bytes = 64;
	RC_EQ(shmq_create("x", &a, 0), SHMQ_OK);
	q = open_q("x", SHMQ_PRODUCER);
	memset(big, 'b', sizeof(big));
	RC_EQ(shmq_put(q, big, sizeof(big), SHMQ_NOWAIT), SHMQ_OK);
	RC_EQ(shmq_put(q, big, 1, SHMQ_NOWAIT), SHMQ_EAGAIN);
	ck_assert_uint_eq(stat_name("x").bytes, 64);
	RC_EQ(shmq_detach(q), SHMQ_OK);
	ck_assert_int_eq(daemon_cleanup(&d), 0);
}
END_TEST

START_TEST(test_roles_and_io)
{
	static const unsigned char binary[] = { 'a', 0, 'b', 0xff, 0, 0 };
	unsigned char pattern[256], buf[512];
	struct iovec iov[3], got[4];
	struct seqs s = { { 0 }, 0 };
	struct shmq_stat st;
	struct daemon d;
	shmq_t *p, *c, *o, *q;
	size_t len, n;
	pid_t pid;

	for (size_t i = 0; i < sizeof(pattern); i++)
		pattern[i] = (unsigned char)(i * 7 + 3);
	ck_assert_int_eq(daemon_start(&d, NULL), 0);
	create_q("io", 16, 256, 0600, 0);

	p = open_q("io", SHMQ_PRODUCER);
	c = open_q("io", SHMQ_CONSUMER);
	o = open_q("io", 0);
	ck_assert_str_eq(shmq_name(p), "io");
	ck_assert_uint_eq(shmq_max_msg(c), 256);
	RC_EQ(shmq_get(p, buf, sizeof(buf), &len, SHMQ_NOWAIT), SHMQ_EROLE);
	RC_EQ(shmq_put(c, "x", 1, SHMQ_NOWAIT), SHMQ_EROLE);
	RC_EQ(shmq_put(o, "x", 1, SHMQ_NOWAIT), SHMQ_EROLE);
	RC_EQ(shmq_get(o, buf, sizeof(buf), &len, SHMQ_NOWAIT), SHMQ_EROLE);
	RC_EQ(shmq_open("io", 0x8, &q), SHMQ_EINVAL);
	/* Prefaulting changes nothing but when the pages are mapped. */
	RC_EQ(shmq_open("io", SHMQ_CONSUMER | SHMQ_PREFAULT, &q), SHMQ_OK);
	RC_EQ(shmq_put(q, "x", 1, SHMQ_NOWAIT), SHMQ_EROLE);
	RC_EQ(shmq_get(q, buf, sizeof(buf), &len, SHMQ_NOWAIT), SHMQ_EAGAIN);
	RC_EQ(shmq_detach(q), SHMQ_OK);
	q = NULL;
	RC_EQ(shmq_open("nope", SHMQ_CONSUMER, &q), SHMQ_ENOENT);
	ck_assert_ptr_null(q);
	st = stat_q(o);
	ck_assert_uint_eq(st.producers, 1);
	ck_assert_uint_eq(st.consumers, 1);

	/* Another process produces; this one consumes.  Messages are
	 * binary-safe, may be empty or exactly max_msg, and a larger one is
	 * refused without queueing anything. */
	pid = harness_fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		char msg[SEQ_LEN + 1];
		shmq_t *cq;

		CHILD_RC(shmq_open("io", SHMQ_PRODUCER, &cq), SHMQ_OK);
		CHILD_RC(shmq_put(cq, binary, sizeof(binary), 5000), SHMQ_OK);
		CHILD_RC(shmq_put(cq, NULL, 0, 5000), SHMQ_OK);
		CHILD_RC(shmq_put(cq, pattern, 256, 5000), SHMQ_OK);
		CHILD_RC(shmq_put(cq, pattern, 257, 5000), SHMQ_E2BIG);
		for (unsigned i = 0; i < 100; i++) {
			seq_msg(msg, 's', i);
			CHILD_RC(shmq_put(cq, msg, SEQ_LEN, 10000), SHMQ_OK);
		}
		CHILD_RC(shmq_detach(cq), SHMQ_OK);
		_exit(0);
	}
	RC_EQ(shmq_get(c, buf, sizeof(buf), &len, 5000), SHMQ_OK);
	ck_assert_uint_eq(len, sizeof(binary));
	ck_assert_int_eq(memcmp(buf, binary, len), 0);
	RC_EQ(shmq_get(c, buf, sizeof(buf), &len, 5000), SHMQ_OK);
	ck_assert_uint_eq(len, 0);
	RC_EQ(shmq_get(c, buf, sizeof(buf), &len, 5000), SHMQ_OK);
	ck_assert_uint_eq(len, 256);
	ck_assert_int_eq(memcmp(buf, pattern, 256), 0);
	for (int i = 0; i < 100; i++) {
		RC_EQ(shmq_get(c, buf, sizeof(buf), &len, 5000), SHMQ_OK);
		seqs_take(&s, (char *)buf, len);
	}
	CHILD_OK(pid);
	RC_EQ(shmq_get(c, buf, sizeof(buf), &len, SHMQ_NOWAIT), SHMQ_EAGAIN);
	st = stat_name("io");
	ck_assert_uint_eq(st.total_put, 103);
	ck_assert_uint_eq(st.total_got, 103);
	ck_assert_uint_eq(st.producers, 1);     /* the child detached */

	/* Too small a buffer: the size is reported, the message kept. */
	RC_EQ(shmq_put(p, pattern, 200, 5000), SHMQ_OK);
	RC_EQ(shmq_get(c, buf, 10, &len, SHMQ_NOWAIT), SHMQ_EMSGSIZE);
	ck_assert_uint_eq(len, 200);
	RC_EQ(shmq_get(c, buf, sizeof(buf), &len, SHMQ_NOWAIT), SHMQ_OK);
	ck_assert_uint_eq(len, 200);

	/* Batches through the same handles. */
	iov[0] = (struct iovec){ "one", 3 };
	iov[1] = (struct iovec){ "", 0 };
	iov[2] = (struct iovec){ "three", 5 };
	RC_EQ(shmq_putv(p, iov, 3, &n, 5000), SHMQ_OK);
	ck_assert_uint_eq(n, 3);
	RC_EQ(shmq_getv(c, buf, sizeof(buf), got, 4, &n, 5000), SHMQ_OK);
	ck_assert_uint_eq(n, 3);
	ck_assert_uint_eq(got[0].iov_len, 3);
	ck_assert_int_eq(memcmp(got[0].iov_base, "one", 3), 0);
	ck_assert_uint_eq(got[1].iov_len, 0);
	ck_assert_uint_eq(got[2].iov_len, 5);
	ck_assert_int_eq(memcmp(got[2].iov_base, "three", 5), 0);

	RC_EQ(shmq_detach(p), SHMQ_OK);
	RC_EQ(shmq_detach(c), SHMQ_OK);
	RC_EQ(shmq_detach(o), SHMQ_OK);
	st = stat_name("io");
	ck_assert_uint_eq(st.producers, 0);
	ck_assert_uint_eq(st.consumers, 0);
	ck_assert_int_eq(daemon_cleanup(&d), 0);
}
END_TEST

START_TEST(test_stat_counts)
{
	struct chan a, b, w;
	struct shmq_stat st;
	struct daemon d;
	shmq_t *p, *c;
	pid_t pa, pb, pw;

	ck_assert_int_eq(daemon_start(&d, NULL), 0);
	create_q("cnt", 2, 64, 0600, 0);
	p = open_q("cnt", SHMQ_PRODUCER);
	c = open_q("cnt", SHMQ_CONSUMER);

	/* Child A: one producer+consumer handle and one producer handle. */
	chan_init(&a);
	pa = harness_fork();
	ck_assert_int_ge(pa, 0);
	if (pa == 0) {
		shmq_t *both, *prod;

		chan_child(&a);
		CHILD_RC(shmq_open("cnt", SHMQ_PRODUCER | SHMQ_CONSUMER, &both),
			 SHMQ_OK);
		CHILD_RC(shmq_open("cnt", SHMQ_PRODUCER, &prod), SHMQ_OK);
		child_say(&a, 'r');
		CHILD_CHECK(child_hear(&a) == 'd');
		CHILD_RC(shmq_detach(both), SHMQ_OK);
		CHILD_RC(shmq_detach(prod), SHMQ_OK);
		child_say(&a, 'k');
		_exit(0);
	}
	chan_parent(&a);
	chan_expect(&a, 'r');
	st = stat_name("cnt");
	ck_assert_uint_eq(st.producers, 3);
	ck_assert_uint_eq(st.consumers, 2);
	st = stat_q(c);
	ck_assert_uint_eq(st.producers, 3);
	ck_assert_uint_eq(st.consumers, 2);
	ck_assert_uint_eq(st.get_blocked, 0);

	/* Child B sleeps in get on the empty queue. */
	chan_init(&b);
	pb = harness_fork();
	ck_assert_int_ge(pb, 0);
	if (pb == 0) {
		char buf[64];
		size_t len;
		shmq_t *q;

		chan_child(&b);
		CHILD_RC(shmq_open("cnt", SHMQ_CONSUMER, &q), SHMQ_OK);
		child_say(&b, 'r');
		CHILD_RC(shmq_get(q, buf, sizeof(buf), &len, 15000), SHMQ_OK);
		CHILD_CHECK(len == 4 && memcmp(buf, "wake", 4) == 0);
		CHILD_RC(shmq_detach(q), SHMQ_OK);
		child_say(&b, 'k');
		_exit(0);
	}
	chan_parent(&b);
	chan_expect(&b, 'r');
	ck_assert_msg(WAIT_UNTIL(stat_q(c).get_blocked == 1, 5000),
		      "get_blocked never became 1");
	st = stat_name("cnt");
	ck_assert_uint_eq(st.get_blocked, 1);
	ck_assert_uint_eq(st.put_blocked, 0);
	ck_assert_uint_eq(st.consumers, 3);
	put_str(p, "wake");
	chan_expect(&b, 'k');
	CHILD_OK(pb);
	st = stat_name("cnt");
	ck_assert_uint_eq(st.get_blocked, 0);
	ck_assert_uint_eq(st.consumers, 2);

	/* Child W sleeps in put on the full queue. */
	put_str(p, "f1");
	put_str(p, "f2");
	chan_init(&w);
	pw = harness_fork();
	ck_assert_int_ge(pw, 0);
	if (pw == 0) {
		shmq_t *q;

		chan_child(&w);
		CHILD_RC(shmq_open("cnt", SHMQ_PRODUCER, &q), SHMQ_OK);
		child_say(&w, 'r');
		CHILD_RC(shmq_put(q, "f3", 2, 15000), SHMQ_OK);
		CHILD_RC(shmq_detach(q), SHMQ_OK);
		child_say(&w, 'k');
		_exit(0);
	}
	chan_parent(&w);
	chan_expect(&w, 'r');
	ck_assert_msg(WAIT_UNTIL(stat_q(c).put_blocked == 1, 5000),
		      "put_blocked never became 1");
	st = stat_name("cnt");
	ck_assert_uint_eq(st.put_blocked, 1);
	ck_assert_uint_eq(st.messages, 2);
	ck_assert_uint_eq(st.bytes, 4);
	ck_assert_uint_eq(st.producers, 4);
	get_str(c, "f1");
	chan_expect(&w, 'k');
	CHILD_OK(pw);
	get_str(c, "f2");
	get_str(c, "f3");
	st = stat_name("cnt");
	ck_assert_uint_eq(st.put_blocked, 0);
	ck_assert_uint_eq(st.producers, 3);
	ck_assert_uint_eq(st.total_put, 4);
	ck_assert_uint_eq(st.total_got, 4);

	chan_cmd(&a, 'd', 'k');
	CHILD_OK(pa);
	ck_assert(WAIT_UNTIL(stat_name("cnt").producers == 1, 5000));
	st = stat_name("cnt");
	ck_assert_uint_eq(st.consumers, 1);
	chan_done(&a);
	chan_done(&b);
	chan_done(&w);
	RC_EQ(shmq_detach(p), SHMQ_OK);
	RC_EQ(shmq_detach(c), SHMQ_OK);
	ck_assert_int_eq(daemon_cleanup(&d), 0);
}
END_TEST

START_TEST(test_list)
{
	enum { N = 300 };       /* more than two pages of 128 */
	static const char *const odd[] = { "Zeta", "_under", "0digit", "q-" };
	char want[N + 4][16], name[16];
	uint32_t cap[N];
	struct shmq_stat *list;
	struct daemon d;
	size_t n, nwant = 0;
	shmq_t *p;

	ck_assert_int_eq(daemon_start(&d, NULL), 0);
	/* Created out of order: the listing must sort by name (bytes). */
	for (unsigned k = 0; k < N; k++) {
		cap[(k * 97) % N] = 1 + k % 3;
		snprintf(name, sizeof(name), "q%03u", (k * 97) % N);
		create_q(name, cap[(k * 97) % N], 16, 0600, 0);
	}
	for (size_t i = 0; i < sizeof(odd) / sizeof(*odd); i++)
		create_q(odd[i], 1, 16, 0600, 0);
	for (unsigned i = 0; i < N; i++)
		snprintf(want[nwant++], sizeof(want[0]), "q%03u", i);
	for (size_t i = 0; i < sizeof(odd) / sizeof(*odd); i++)
		snprintf(want[nwant++], sizeof(want[0]), "%s", odd[i]);
	qsort(want, nwant, sizeof(want[0]),
	      (int (*)(const void *, const void *))strcmp);

	p = open_q("q150", SHMQ_PRODUCER);
	put_str(p, "m");

	RC_EQ(shmq_list(&list, &n), SHMQ_OK);
	ck_assert_uint_eq(n, nwant);
	for (size_t i = 0; i < n; i++) {
		ck_assert_str_eq(list[i].name, want[i]);
		if (strcmp(list[i].name, "q150") == 0) {
			ck_assert_uint_eq(list[i].messages, 1);
			ck_assert_uint_eq(list[i].producers, 1);
		} else {
			ck_assert_uint_eq(list[i].messages, 0);
		}
	}
	for (size_t i = 0; i < n; i++) {
		unsigned k;
		if (sscanf(list[i].name, "q%u", &k) == 1 && k < N)
			ck_assert_uint_eq(list[i].capacity, cap[k]);
	}
	free(list);

	/* Deleted queues leave the listing. */
	for (unsigned i = 0; i < 100; i++) {
		snprintf(name, sizeof(name), "q%03u", i);
		RC_EQ(shmq_delete(name), SHMQ_OK);
	}
	RC_EQ(shmq_list(&list, &n), SHMQ_OK);
	ck_assert_uint_eq(n, nwant - 100);
	for (size_t i = 1; i < n; i++)
		ck_assert_int_lt(strcmp(list[i - 1].name, list[i].name), 0);
	free(list);
	RC_EQ(shmq_detach(p), SHMQ_OK);
	ck_assert_int_eq(daemon_cleanup(&d), 0);
}
END_TEST

START_TEST(test_delete_open)
{
	struct shmq_stat st, *list;
	struct daemon d;
	shmq_t *p, *c, *p2, *c2, *q;
	char buf[16];
	size_t len, n;

	ck_assert_int_eq(daemon_start(&d, NULL), 0);
	create_q("del", 8, 64, 0600, 0);
	p = open_q("del", SHMQ_PRODUCER);
	c = open_q("del", SHMQ_CONSUMER);
	put_str(p, "one");
	ck_assert_int_eq(daemon_segments(&d), 2);

	RC_EQ(shmq_delete("del"), SHMQ_OK);
	/* The name is gone at once, as with unlink(2)... */
	ck_assert_int_eq(daemon_segments(&d), 0);
	RC_EQ(shmq_stat_name("del", &st), SHMQ_ENOENT);
	RC_EQ(shmq_open("del", SHMQ_CONSUMER, &q), SHMQ_ENOENT);
	RC_EQ(shmq_close_name("del", SHMQ_CLOSE_DRAIN, NULL), SHMQ_ENOENT);
	RC_EQ(shmq_delete("del"), SHMQ_ENOENT);
	RC_EQ(shmq_list(&list, &n), SHMQ_OK);
	ck_assert_uint_eq(n, 0);
	free(list);
	/* ...while the open handles keep working. */
	put_str(p, "two");
	get_str(c, "one");
	get_str(c, "two");
	st = stat_q(c);
	ck_assert_uint_eq(st.total_put, 2);
	ck_assert_uint_eq(st.producers, 1);

	/* The same name again is a new, empty queue. */
	create_q("del", 4, 64, 0600, 0);
	st = stat_name("del");
	ck_assert_uint_eq(st.capacity, 4);
	ck_assert_uint_eq(st.total_put, 0);
	ck_assert_uint_eq(st.producers, 0);
	p2 = open_q("del", SHMQ_PRODUCER);
	c2 = open_q("del", SHMQ_CONSUMER);
	put_str(p2, "new");
	RC_EQ(shmq_get(c, buf, sizeof(buf), &len, SHMQ_NOWAIT), SHMQ_EAGAIN);
	put_str(p, "old");
	get_str(c2, "new");
	RC_EQ(shmq_get(c2, buf, sizeof(buf), &len, SHMQ_NOWAIT), SHMQ_EAGAIN);
	get_str(c, "old");
	/* Closing the old queue does not touch the new one. */
	RC_EQ(shmq_close(p, SHMQ_CLOSE_DRAIN, NULL), SHMQ_OK);
	ck_assert_int_eq(stat_name("del").state, SHMQ_STATE_OPEN);
	RC_EQ(shmq_get(c, buf, sizeof(buf), &len, SHMQ_NOWAIT), SHMQ_EOS);

	RC_EQ(shmq_detach(p), SHMQ_OK);
	RC_EQ(shmq_detach(c), SHMQ_OK);
	RC_EQ(shmq_detach(p2), SHMQ_OK);
	RC_EQ(shmq_detach(c2), SHMQ_OK);
	ck_assert_int_eq(daemon_segments(&d), 2);
	ck_assert_int_eq(daemon_cleanup(&d), 0);
}
END_TEST

START_TEST(test_close)
{
	struct shmq_stat st;
	struct daemon d;
	shmq_t *p, *c, *pn, *cn, *pw;
	uint64_t discarded = 99;
	pid_t putter, getter;
	char buf[16];
	size_t len;

	ck_assert_int_eq(daemon_start(&d, NULL), 0);

	/* Drain: what was queued is still delivered, then end of stream. */
	create_q("drain", 4, 64, 0600, 0);
	p = open_q("drain", SHMQ_PRODUCER);
	c = open_q("drain", SHMQ_CONSUMER);
	put_str(p, "a");
	put_str(p, "b");
	put_str(p, "c");
	RC_EQ(shmq_close(p, SHMQ_CLOSE_DRAIN, &discarded), SHMQ_OK);
	ck_assert_uint_eq(discarded, 0);
	RC_EQ(shmq_put(p, "d", 1, 1000), SHMQ_ECLOSED);
	st = stat_name("drain");
	ck_assert_int_eq(st.state, SHMQ_STATE_CLOSED);
	ck_assert_uint_eq(st.messages, 3);
	ck_assert_int_gt(st.closed_ns, 0);
	ck_assert_int_eq(st.auto_closed, 0);
	get_str(c, "a");
	get_str(c, "b");
	get_str(c, "c");
	RC_EQ(shmq_get(c, buf, sizeof(buf), &len, 1000), SHMQ_EOS);
	RC_EQ(shmq_get(c, buf, sizeof(buf), &len, SHMQ_NOWAIT), SHMQ_EOS);
	RC_EQ(shmq_close_name("drain", SHMQ_CLOSE_DRAIN, NULL), SHMQ_OK);
	RC_EQ(shmq_close(p, SHMQ_CLOSE_DRAIN, NULL), SHMQ_OK);

	/* Now, by name through the daemon: the rest is discarded and
	 * counted. */
	create_q("now", 4, 64, 0600, 0);
	pn = open_q("now", SHMQ_PRODUCER);
	cn = open_q("now", SHMQ_CONSUMER);
	put_str(pn, "1");
	put_str(pn, "2");
	put_str(pn, "3");
	put_str(pn, "4");
	get_str(cn, "1");
	RC_EQ(shmq_close_name("now", SHMQ_CLOSE_NOW, &discarded), SHMQ_OK);
	ck_assert_uint_eq(discarded, 3);
	RC_EQ(shmq_get(cn, buf, sizeof(buf), &len, SHMQ_NOWAIT), SHMQ_EOS);
	RC_EQ(shmq_put(pn, "5", 1, SHMQ_NOWAIT), SHMQ_ECLOSED);
	st = stat_name("now");
	ck_assert_int_eq(st.state, SHMQ_STATE_CLOSED_NOW);
	ck_assert_uint_eq(st.discarded, 3);
	ck_assert_uint_eq(st.total_put, 4);
	ck_assert_uint_eq(st.total_got, 1);
	ck_assert_uint_eq(st.messages, 0);
	RC_EQ(shmq_close_name("now", SHMQ_CLOSE_NOW, &discarded), SHMQ_OK);
	ck_assert_uint_eq(discarded, 0);
	RC_EQ(shmq_close_name("now", 7, &discarded), SHMQ_EINVAL);
	RC_EQ(shmq_close_name("missing", SHMQ_CLOSE_DRAIN, NULL), SHMQ_ENOENT);

	/* A close through the daemon wakes a putter asleep on a full queue
	 * (it fails with closed) and a getter asleep on an empty one (end
	 * of stream), both in other processes. */
	create_q("full", 1, 64, 0600, 0);
	create_q("empty", 1, 64, 0600, 0);
	pw = open_q("full", SHMQ_PRODUCER);
	put_str(pw, "x");
	putter = harness_fork();
	ck_assert_int_ge(putter, 0);
	if (putter == 0) {
		shmq_t *q;
		CHILD_RC(shmq_open("full", SHMQ_PRODUCER, &q), SHMQ_OK);
		CHILD_RC(shmq_put(q, "y", 1, 15000), SHMQ_ECLOSED);
		_exit(0);
	}
	getter = harness_fork();
	ck_assert_int_ge(getter, 0);
	if (getter == 0) {
		shmq_t *q;
		CHILD_RC(shmq_open("empty", SHMQ_CONSUMER, &q), SHMQ_OK);
		CHILD_RC(shmq_get(q, buf, sizeof(buf), &len, 15000), SHMQ_EOS);
		_exit(0);
	}
	ck_assert(WAIT_UNTIL(stat_q(pw).put_blocked == 1, 5000));
	ck_assert(WAIT_UNTIL(stat_name("empty").get_blocked == 1, 5000));
	RC_EQ(shmq_close_name("full", SHMQ_CLOSE_DRAIN, NULL), SHMQ_OK);
	RC_EQ(shmq_close_name("empty", SHMQ_CLOSE_DRAIN, NULL), SHMQ_OK);
	CHILD_OK(putter);
	CHILD_OK(getter);
	st = stat_name("full");
	ck_assert_uint_eq(st.messages, 1);      /* "x" survives the close */
	ck_assert_uint_eq(st.put_blocked, 0);

	RC_EQ(shmq_detach(p), SHMQ_OK);
	RC_EQ(shmq_detach(c), SHMQ_OK);
	RC_EQ(shmq_detach(pn), SHMQ_OK);
	RC_EQ(shmq_detach(cn), SHMQ_OK);
	RC_EQ(shmq_detach(pw), SHMQ_OK);
	ck_assert_int_eq(daemon_cleanup(&d), 0);
}
END_TEST

/* ======================================================================= */
/* 2. Auto-close with producers in several processes                        */

struct consumer {
	pid_t pid;
	struct chan ch;
	int rec[2];             /* (tag, seq) records of what it got */
};

/* A consumer process: answers 'r' once open, gets until the stream ends,
 * checks each producer's order, and sends every message it got to the
 * test as an 8-byte record.  Exits 0 on SHMQ_EOS, 2 on SHMQ_EOS_LOST. */
static void consumer_start(struct consumer *k, const char *queue)
{
	chan_init(&k->ch);
	ck_assert_int_eq(pipe2(k->rec, O_CLOEXEC), 0);
	k->pid = harness_fork();
	ck_assert_int_ge(k->pid, 0);
	if (k->pid == 0) {
		unsigned next[256] = { 0 };
		char buf[64];
		size_t len;
		shmq_t *q;
		int rc;

		chan_child(&k->ch);
		close(k->rec[0]);
		CHILD_RC(shmq_open(queue, SHMQ_CONSUMER, &q), SHMQ_OK);
		child_say(&k->ch, 'r');
		while ((rc = shmq_get(q, buf, sizeof(buf), &len, 15000)) ==
		       SHMQ_OK) {
			uint32_t r[2];
			unsigned char tag;
			unsigned seq;
			CHILD_CHECK(seq_parse(buf, len, &tag, &seq) == 0);
			/* Several consumers: increasing, not contiguous. */
			CHILD_CHECK(seq >= next[tag]);
			next[tag] = seq + 1;
			r[0] = tag;
			r[1] = seq;
			CHILD_CHECK(write(k->rec[1], r, sizeof(r)) ==
				    (ssize_t)sizeof(r));
		}
		CHILD_CHECK(rc == SHMQ_EOS || rc == SHMQ_EOS_LOST);
		CHILD_RC(shmq_detach(q), SHMQ_OK);
		_exit(rc == SHMQ_EOS ? 0 : 2);
	}
	chan_parent(&k->ch);
	close(k->rec[1]);
	chan_expect(&k->ch, 'r');
}

START_TEST(test_auto_close)
{
	enum { NP = 3, NC = 2, BATCH = 300 };
	static unsigned char seen[NP][BATCH];
	struct producer prod[NP];
	struct consumer cons[NC];
	struct shmq_stat st;
	struct daemon d;
	shmq_t *m;

	ck_assert_int_eq(daemon_start(&d, NULL), 0);
	create_q("auto", 16, 64, 0600, SHMQ_AUTO_CLOSE);
	for (int i = 0; i < NC; i++)
		consumer_start(&cons[i], "auto");
	for (int i = 0; i < NP; i++)
		producer_start(&prod[i], "auto", (char)('a' + i), BATCH);
	st = stat_name("auto");
	ck_assert_uint_eq(st.producers, NP);
	ck_assert_uint_eq(st.consumers, NC);
	for (int i = 0; i < NP; i++)
		chan_cmd(&prod[i].ch, 'p', 'k');

	/* Each detach but the last leaves the queue open.  (shmq_detach
	 * does not wait for shmqd to read it: counts settle just after.) */
	for (int i = 0; i < NP; i++) {
		chan_cmd(&prod[i].ch, 'd', 'k');
		producer_end(&prod[i]);
		ck_assert(WAIT_UNTIL(stat_name("auto").producers ==
					     (uint32_t)(NP - 1 - i), 5000));
		ck_assert(WAIT_UNTIL(i < NP - 1 || stat_name("auto").state ==
						   SHMQ_STATE_CLOSED, 5000));
		st = stat_name("auto");
		ck_assert_uint_eq(st.producers, NP - 1 - i);
		if (i < NP - 1) {
			ck_assert_int_eq(st.state, SHMQ_STATE_OPEN);
			ck_assert_int_eq(st.auto_closed, 0);
		}
	}
	ck_assert_int_eq(st.state, SHMQ_STATE_CLOSED);
	ck_assert_int_eq(st.auto_closed, 1);
	ck_assert_int_eq(st.producer_lost, 0);

	/* The consumers drain and see a clean end of stream; between them
	 * every message arrived exactly once. */
	memset(seen, 0, sizeof(seen));
	for (int i = 0; i < NC; i++) {
		uint32_t r[2];
		CHILD_OK(cons[i].pid);
		while (read(cons[i].rec[0], r, sizeof(r)) == (ssize_t)sizeof(r)) {
			ck_assert(r[0] >= 'a' && r[0] < 'a' + NP);
			ck_assert_uint_lt(r[1], BATCH);
			ck_assert_msg(!seen[r[0] - 'a'][r[1]],
				      "message %c%u delivered twice",
				      (char)r[0], r[1]);
			seen[r[0] - 'a'][r[1]] = 1;
		}
		close(cons[i].rec[0]);
		chan_done(&cons[i].ch);
	}
	for (int i = 0; i < NP; i++)
		for (int j = 0; j < BATCH; j++)
			ck_assert_msg(seen[i][j], "message %c%d lost",
				      'a' + i, j);
	st = stat_name("auto");
	ck_assert_uint_eq(st.total_put, NP * BATCH);
	ck_assert_uint_eq(st.total_got, NP * BATCH);
	ck_assert_uint_eq(st.consumers, 0);

	/* Without auto-close, the last producer leaving closes nothing. */
	create_q("manual", 4, 64, 0600, 0);
	m = open_q("manual", SHMQ_PRODUCER);
	RC_EQ(shmq_detach(m), SHMQ_OK);
	st = stat_name("manual");
	ck_assert_int_eq(st.state, SHMQ_STATE_OPEN);
	ck_assert_uint_eq(st.producers, 0);
	ck_assert_int_eq(daemon_cleanup(&d), 0);
}
END_TEST

/* ======================================================================= */
/* 3. A producer killed without detaching                                   */

/* Killed while streaming: whatever it committed arrives, in order, then
 * SHMQ_EOS_LOST. */
START_TEST(test_producer_killed_streaming)
{
	struct seqs s = { { 0 }, 0 };
	struct shmq_stat st;
	struct daemon d;
	struct chan ch;
	shmq_t *c;
	char buf[64];
	size_t len;
	pid_t pid;
	int rc, status;

	ck_assert_int_eq(daemon_start(&d, NULL), 0);
	create_q("stream", 32, 64, 0600, SHMQ_AUTO_CLOSE);
	c = open_q("stream", SHMQ_CONSUMER);
	chan_init(&ch);
	pid = harness_fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		char msg[SEQ_LEN + 1];
		shmq_t *q;

		chan_child(&ch);
		CHILD_RC(shmq_open("stream", SHMQ_PRODUCER, &q), SHMQ_OK);
		child_say(&ch, 'r');
		for (unsigned i = 0;; i++) {
			seq_msg(msg, 'p', i);
			CHILD_RC(shmq_put(q, msg, SEQ_LEN, 15000), SHMQ_OK);
		}
	}
	chan_parent(&ch);
	chan_expect(&ch, 'r');
	/* Take some while it is going full speed, then kill it wherever
	 * it is: in put, holding the lock, or between messages. */
	while (s.count < 2000) {
		RC_EQ(shmq_get(c, buf, sizeof(buf), &len, 5000), SHMQ_OK);
		seqs_take(&s, buf, len);
	}
	ck_assert_int_eq(kill(pid, SIGKILL), 0);
	status = harness_wait(pid, 10000);
	ck_assert(status != -1 && WIFSIGNALED(status));

	rc = drain(c, &s);
	RC_EQ(rc, SHMQ_EOS_LOST);
	st = stat_q(c);
	ck_assert_uint_eq(s.count, st.total_put);
	ck_assert_uint_eq(st.total_got, st.total_put);
	ck_assert_int_eq(st.producer_lost, 1);
	ck_assert_int_eq(st.auto_closed, 1);
	ck_assert_int_eq(st.state, SHMQ_STATE_CLOSED);
	ck_assert_uint_eq(st.producers, 0);
	ck_assert_uint_eq(st.put_blocked, 0);
	st = stat_name("stream");
	ck_assert_int_eq(st.producer_lost, 1);
	/* The end stays the end. */
	RC_EQ(shmq_get(c, buf, sizeof(buf), &len, SHMQ_NOWAIT), SHMQ_EOS_LOST);
	chan_done(&ch);
	RC_EQ(shmq_detach(c), SHMQ_OK);
	ck_assert_int_eq(daemon_cleanup(&d), 0);
}
END_TEST

/* Killed while asleep in put on a full queue: the daemon also repairs
 * the sleep statistics the dead process still held. */
START_TEST(test_producer_killed_blocked)
{
	struct seqs s = { { 0 }, 0 };
	struct shmq_seg_hdr *hdr;
	size_t size;
	struct shmq_stat st;
	struct producer p;
	struct daemon d;
	shmq_t *c;
	int status;

	ck_assert_int_eq(daemon_start(&d, NULL), 0);
	create_q("blocked", 4, 64, 0600, SHMQ_AUTO_CLOSE);
	c = open_q("blocked", SHMQ_CONSUMER);
	producer_start(&p, "blocked", 'b', 5);
	/* 'p' puts five messages into a queue of four: the fifth sleeps.
	 * Its entry is marked waiting only after the counter went up, and
	 * it is the mark that lets the daemon repair the counter: wait for
	 * both, or a kill in between would test nothing. */
	hdr = map_only_segment(&d, &size);
	ck_assert_int_eq(byte_write(p.ch.down[1], 'p'), 0);
	ck_assert_msg(WAIT_UNTIL(stat_q(c).put_blocked == 1 &&
					 wait_mark_of(hdr, size, p.pid) ==
						 SHMQ_WAIT_PUT,
				 5000),
		      "producer never slept in put");
	munmap(hdr, size);
	ck_assert_uint_eq(stat_q(c).messages, 4);
	kill(p.pid, SIGKILL);
	status = harness_wait(p.pid, 10000);
	ck_assert(status != -1 && WIFSIGNALED(status));
	chan_done(&p.ch);

	RC_EQ(drain(c, &s), SHMQ_EOS_LOST);
	ck_assert_uint_eq(s.count, 4);
	st = stat_name("blocked");
	ck_assert_uint_eq(st.put_blocked, 0);
	ck_assert_uint_eq(st.producers, 0);
	ck_assert_int_eq(st.producer_lost, 1);
	ck_assert_int_eq(st.auto_closed, 1);
	RC_EQ(shmq_detach(c), SHMQ_OK);
	ck_assert_int_eq(daemon_cleanup(&d), 0);
}
END_TEST

/* Killed while idle, with a consumer asleep in get in another process:
 * the daemon's close wakes it with SHMQ_EOS_LOST; a second producer that
 * detached cleanly earlier does not hide the loss. */
START_TEST(test_producer_killed_idle)
{
	struct producer p, clean;
	struct consumer k;
	struct shmq_stat st;
	struct daemon d;
	uint32_t r[2];
	int n = 0, status;

	ck_assert_int_eq(daemon_start(&d, NULL), 0);
	create_q("idle", 8, 64, 0600, SHMQ_AUTO_CLOSE);
	consumer_start(&k, "idle");
	producer_start(&clean, "idle", 'c', 2);
	producer_start(&p, "idle", 'i', 3);
	chan_cmd(&clean.ch, 'p', 'k');
	chan_cmd(&clean.ch, 'd', 'k');
	producer_end(&clean);
	chan_cmd(&p.ch, 'p', 'k');
	ck_assert_int_eq(stat_name("idle").state, SHMQ_STATE_OPEN);
	ck_assert(WAIT_UNTIL(stat_name("idle").get_blocked == 1, 5000));
	kill(p.pid, SIGKILL);
	ck_assert(harness_wait(p.pid, 10000) != -1);
	chan_done(&p.ch);

	status = harness_wait(k.pid, 20000);
	ck_assert_msg(exited_with(status, 2), "consumer: %s (want exit 2, "
		      "end of stream with a lost producer)", describe(status));
	while (read(k.rec[0], r, sizeof(r)) == (ssize_t)sizeof(r))
		n++;
	ck_assert_int_eq(n, 5);
	close(k.rec[0]);
	chan_done(&k.ch);
	st = stat_name("idle");
	ck_assert_int_eq(st.producer_lost, 1);
	ck_assert_uint_eq(st.get_blocked, 0);
	ck_assert_int_eq(daemon_cleanup(&d), 0);
}
END_TEST

/* A consumer killed asleep in get: the daemon takes back its sleep count;
 * a consumer is not a producer, so nothing is lost and nothing closes. */
START_TEST(test_consumer_killed_blocked)
{
	struct shmq_seg_hdr *hdr;
	struct shmq_stat st;
	struct daemon d;
	shmq_t *p, *c;
	size_t size;
	pid_t pid;

	ck_assert_int_eq(daemon_start(&d, NULL), 0);
	create_q("sleepy", 4, 64, 0600, SHMQ_AUTO_CLOSE);
	p = open_q("sleepy", SHMQ_PRODUCER);
	hdr = map_only_segment(&d, &size);
	pid = harness_fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		char buf[16];
		size_t len;
		shmq_t *q;

		CHILD_RC(shmq_open("sleepy", SHMQ_CONSUMER, &q), SHMQ_OK);
		shmq_get(q, buf, sizeof(buf), &len, 20000);
		_exit(1);
	}
	ck_assert_msg(WAIT_UNTIL(stat_q(p).get_blocked == 1 &&
					 wait_mark_of(hdr, size, pid) ==
						 SHMQ_WAIT_GET,
				 5000),
		      "consumer never slept in get");
	munmap(hdr, size);
	kill(pid, SIGKILL);
	ck_assert(harness_wait(pid, 10000) != -1);
	ck_assert_msg(WAIT_UNTIL(stat_q(p).consumers == 0, 5000),
		      "the dead consumer was never released");
	st = stat_name("sleepy");
	ck_assert_uint_eq(st.get_blocked, 0);
	ck_assert_uint_eq(st.producers, 1);
	ck_assert_int_eq(st.producer_lost, 0);
	ck_assert_int_eq(st.state, SHMQ_STATE_OPEN);
	/* Nobody took anything: the next consumer gets it all. */
	put_str(p, "still");
	c = open_q("sleepy", SHMQ_CONSUMER);
	get_str(c, "still");
	RC_EQ(shmq_detach(c), SHMQ_OK);
	RC_EQ(shmq_detach(p), SHMQ_OK);
	ck_assert_int_eq(daemon_cleanup(&d), 0);
}
END_TEST

/* ======================================================================= */
/* 4. Restarts                                                              */

/* A producer that detaches while no daemon runs, and lives on: the
 * daemon that comes back honours the detach (it is marked in the
 * segment), so the auto-close queue ends cleanly, not "producer lost". */
START_TEST(test_detach_while_down)
{
	struct shmq_attr a = attr_of(8, 64, 0600, SHMQ_AUTO_CLOSE);
	struct daemon d;
	int ready[2], go[2], done[2];
	char ch, buf[64];
	size_t len;
	shmq_t *c, *p;

	ck_assert_int_eq(daemon_start(&d, NULL), 0);
	RC_EQ(shmq_create("dd", &a, 0), SHMQ_OK);
	RC_EQ(shmq_open("dd", SHMQ_CONSUMER, &c), SHMQ_OK);
	ck_assert_int_eq(pipe(ready), 0);
	ck_assert_int_eq(pipe(go), 0);
	ck_assert_int_eq(pipe(done), 0);
	pid_t kid = harness_fork();
	if (kid == 0) {
		CHILD_RC(shmq_open("dd", SHMQ_PRODUCER, &p), SHMQ_OK);
		CHILD_RC(shmq_put(p, "x", 1, 1000), SHMQ_OK);
		CHILD_CHECK(write(ready[1], "r", 1) == 1);
		CHILD_CHECK(read(go[0], &ch, 1) == 1);
		/* The daemon is down: still a successful detach. */
		CHILD_RC(shmq_detach(p), SHMQ_OK);
		CHILD_CHECK(write(done[1], "d", 1) == 1);
		CHILD_CHECK(read(go[0], &ch, 1) == 1);   /* alive until told */
		_exit(0);
	}
	ck_assert_int_eq(read(ready[0], &ch, 1), 1);
	daemon_stop(&d, SIGKILL);
	ck_assert_int_eq(write(go[1], "g", 1), 1);
	ck_assert_int_eq(read(done[0], &ch, 1), 1);
	ck_assert_int_eq(daemon_restart(&d), 0);

	RC_EQ(shmq_get(c, buf, sizeof(buf), &len, 5000), SHMQ_OK);
	RC_EQ(shmq_get(c, buf, sizeof(buf), &len, 5000), SHMQ_EOS);
	struct shmq_stat st = stat_q(c);
	ck_assert_uint_eq(st.producers, 0);
	ck_assert_int_eq(st.producer_lost, 0);
	ck_assert_int_eq(st.auto_closed, 1);
	ck_assert_int_eq(write(go[1], "g", 1), 1);
	ck_assert_int_eq(harness_wait(kid, 5000), 0);
	shmq_detach(c);
	ck_assert_int_eq(daemon_cleanup(&d), 0);
}
END_TEST

START_TEST(test_restart_kill9)
{
	struct producer pf, po, pk;
	struct seqs s = { { 0 }, 0 };
	struct shmq_stat st;
	struct daemon d;
	shmq_t *cf, *co, *cw, *tp, *q;
	char buf[64], msg[SEQ_LEN + 1];
	size_t len;
	int status;

	ck_assert_int_eq(daemon_start(&d, NULL), 0);
	create_q("flow", 64, 64, 0600, SHMQ_AUTO_CLOSE);
	create_q("orphan", 8, 64, 0600, SHMQ_AUTO_CLOSE);
	create_q("watched", 8, 64, 0600, SHMQ_AUTO_CLOSE);
	cf = open_q("flow", SHMQ_CONSUMER);
	co = open_q("orphan", SHMQ_CONSUMER);
	cw = open_q("watched", SHMQ_CONSUMER);
	producer_start(&pf, "flow", 'P', 10);
	producer_start(&po, "orphan", 'O', 3);
	producer_start(&pk, "watched", 'K', 2);
	chan_cmd(&pf.ch, 'p', 'k');
	chan_cmd(&po.ch, 'p', 'k');
	chan_cmd(&pk.ch, 'p', 'k');
	for (int i = 0; i < 5; i++) {
		RC_EQ(shmq_get(cf, buf, sizeof(buf), &len, 5000), SHMQ_OK);
		seqs_take(&s, buf, len);
	}
	st = stat_name("flow");
	ck_assert_uint_eq(st.producers, 1);
	ck_assert_uint_eq(st.consumers, 1);

	status = daemon_stop(&d, SIGKILL);
	ck_assert(status != -1 && WIFSIGNALED(status));

	/* The daemon is down: open handles keep working, in both
	 * directions, in several processes; asking the daemon fails. */
	RC_EQ(shmq_stat_name("flow", &st), SHMQ_ENODAEMON);
	RC_EQ(shmq_open("flow", SHMQ_CONSUMER, &q), SHMQ_ENODAEMON);
	chan_cmd(&pf.ch, 'p', 'k');
	for (int i = 0; i < 10; i++) {
		RC_EQ(shmq_get(cf, buf, sizeof(buf), &len, 5000), SHMQ_OK);
		seqs_take(&s, buf, len);
	}
	/* This producer exits while nobody watches. */
	ck_assert_int_eq(byte_write(po.ch.down[1], 'x'), 0);
	producer_end(&po);
	st = stat_q(co);
	ck_assert_uint_eq(st.producers, 1);     /* nobody noticed yet */
	ck_assert_int_eq(st.state, SHMQ_STATE_OPEN);

	ck_assert_int_eq(daemon_restart(&d), 0);

	/* Adopted: queued messages, attachments and their counts. */
	st = stat_name("flow");
	ck_assert_uint_eq(st.producers, 1);
	ck_assert_uint_eq(st.consumers, 1);
	ck_assert_uint_eq(st.messages, 5);
	ck_assert_uint_eq(st.total_put, 20);
	ck_assert_int_eq(st.state, SHMQ_STATE_OPEN);
	ck_assert_int_eq(st.producer_lost, 0);
	/* The producer that exited while the daemon was down was released
	 * at adoption, as a loss, and auto-close applied. */
	st = stat_name("orphan");
	ck_assert_uint_eq(st.producers, 0);
	ck_assert_uint_eq(st.consumers, 1);
	ck_assert_int_eq(st.state, SHMQ_STATE_CLOSED);
	ck_assert_int_eq(st.auto_closed, 1);
	ck_assert_int_eq(st.producer_lost, 1);
	get_str(co, "O000000");
	get_str(co, "O000001");
	get_str(co, "O000002");
	RC_EQ(shmq_get(co, buf, sizeof(buf), &len, 5000), SHMQ_EOS_LOST);

	/* A process adopted from the previous daemon is watched by this
	 * one: its death is noticed. */
	st = stat_name("watched");
	ck_assert_uint_eq(st.producers, 1);
	kill(pk.pid, SIGKILL);
	ck_assert(harness_wait(pk.pid, 10000) != -1);
	chan_done(&pk.ch);
	get_str(cw, "K000000");
	get_str(cw, "K000001");
	RC_EQ(shmq_get(cw, buf, sizeof(buf), &len, 5000), SHMQ_EOS_LOST);

	/* New opens work; old and new producers feed the same stream. */
	tp = open_q("flow", SHMQ_PRODUCER);
	for (unsigned i = 0; i < 5; i++) {
		seq_msg(msg, 'T', i);
		RC_EQ(shmq_put(tp, msg, SEQ_LEN, 5000), SHMQ_OK);
	}
	chan_cmd(&pf.ch, 'p', 'k');
	chan_cmd(&pf.ch, 'd', 'k');
	producer_end(&pf);
	ck_assert(WAIT_UNTIL(stat_name("flow").producers == 1, 5000));
	st = stat_name("flow");
	ck_assert_int_eq(st.state, SHMQ_STATE_OPEN);
	RC_EQ(shmq_detach(tp), SHMQ_OK);        /* the last producer */
	st = stat_name("flow");
	ck_assert_int_eq(st.state, SHMQ_STATE_CLOSED);
	ck_assert_int_eq(st.auto_closed, 1);
	ck_assert_int_eq(st.producer_lost, 0);

	/* Nothing lost or repeated across the crash. */
	RC_EQ(drain(cf, &s), SHMQ_EOS);
	ck_assert_uint_eq(s.next['P'], 30);
	ck_assert_uint_eq(s.next['T'], 5);
	st = stat_name("flow");
	ck_assert_uint_eq(st.total_put, 35);
	ck_assert_uint_eq(st.total_got, 35);

	/* Handles opened under the dead daemon detach through the new
	 * one, which knows their attachments. */
	RC_EQ(shmq_detach(cf), SHMQ_OK);
	RC_EQ(shmq_detach(co), SHMQ_OK);
	RC_EQ(shmq_detach(cw), SHMQ_OK);
	ck_assert_uint_eq(stat_name("flow").consumers, 0);
	ck_assert_int_eq(daemon_cleanup(&d), 0);
}
END_TEST

START_TEST(test_restart_sigterm)
{
	struct shmq_seg_hdr *hdr;
	struct shmq_stat st;
	struct daemon d;
	shmq_t *p, *c;
	size_t size;
	int status;

	ck_assert_int_eq(daemon_start(&d, NULL), 0);
	create_q("keep", 8, 64, 0640, 0);
	p = open_q("keep", SHMQ_PRODUCER);
	c = open_q("keep", SHMQ_CONSUMER);
	put_str(p, "a");
	put_str(p, "b");
	put_str(p, "c");

	status = daemon_stop(&d, SIGTERM);
	ck_assert_msg(exited_with(status, 0), "SIGTERM: %s", describe(status));
	/* A clean exit takes its socket away and leaves the queues. */
	ck_assert_int_ne(access(d.sock, F_OK), 0);
	ck_assert_int_eq(daemon_segments(&d), 2);
	put_str(p, "d");
	get_str(c, "a");

	/* Meanwhile a client forges the segment's bookkeeping and identity.
	 * The next daemon must count attachments from the attachment table
	 * and take owner, mode and name from its own record. */
	hdr = map_only_segment(&d, &size);
	__atomic_store_n(&hdr->producers, 77, __ATOMIC_SEQ_CST);
	__atomic_store_n(&hdr->consumers, 88, __ATOMIC_SEQ_CST);
	hdr->uid = 12345;
	hdr->gid = 12345;
	hdr->mode = 0777;
	hdr->name_len = 4;
	memcpy(hdr->name, "evil", 5);
	munmap(hdr, size);

	ck_assert_int_eq(daemon_restart(&d), 0);
	st = stat_name("keep");
	ck_assert_str_eq(st.name, "keep");
	ck_assert_uint_eq(st.uid, getuid());
	ck_assert_uint_eq(st.gid, getgid());
	ck_assert_uint_eq(st.messages, 3);
	ck_assert_uint_eq(st.capacity, 8);
	ck_assert_uint_eq(st.mode, 0640);
	ck_assert_uint_eq(st.producers, 1);
	ck_assert_uint_eq(st.consumers, 1);
	ck_assert_int_eq(st.state, SHMQ_STATE_OPEN);
	ck_assert(file_contains(d.log, "adopted queue 'keep'"));
	get_str(c, "b");
	get_str(c, "c");
	get_str(c, "d");
	RC_EQ(shmq_detach(p), SHMQ_OK);
	RC_EQ(shmq_detach(c), SHMQ_OK);
	st = stat_name("keep");
	ck_assert_uint_eq(st.producers, 0);
	ck_assert_uint_eq(st.consumers, 0);

	status = daemon_stop(&d, SIGTERM);
	ck_assert_msg(exited_with(status, 0), "SIGTERM: %s", describe(status));
	ck_assert_int_eq(daemon_cleanup(&d), 0);
}
END_TEST

/* ======================================================================= */
/* 5. Permissions                                                           */

/* Lets uid 65534 reach the daemon: its directories are 0700 and its
 * socket 0600, since a per-user daemon serves only its user. */
static void share_socket(const struct daemon *d)
{
	char scratch[sizeof(d->dir)];
	char *slash;

	snprintf(scratch, sizeof(scratch), "%s", d->dir);
	slash = strrchr(scratch, '/');
	ck_assert_ptr_nonnull(slash);
	*slash = '\0';
	ck_assert_int_eq(chmod(scratch, 0711), 0);
	ck_assert_int_eq(chmod(d->dir, 0711), 0);
	ck_assert_int_eq(chmod(d->sock, 0666), 0);
}

/* In a child: becomes uid/gid 65534 with the given supplementary groups.
 * Changing credentials clears the parent-death signal, so it is armed
 * again: the child must still die with the test.  The library connects
 * lazily, so the daemon sees these credentials. */
static void become_nobody(const gid_t *groups, size_t ngroups)
{
	pid_t parent = getppid();

	CHILD_CHECK(setgroups(ngroups, groups) == 0);
	CHILD_CHECK(setresgid(NOBODY, NOBODY, NOBODY) == 0);
	CHILD_CHECK(setresuid(NOBODY, NOBODY, NOBODY) == 0);
	CHILD_CHECK(prctl(PR_SET_PDEATHSIG, SIGKILL) == 0);
	CHILD_CHECK(getppid() == parent);
}

/* The /dev/shm objects of daemon `d`, each checked with `fn`; returns
 * how many there were. */
static int each_segment(const struct daemon *d, int (*fn)(const char *))
{
	DIR *dir = opendir("/dev/shm");
	struct dirent *e;
	int n = 0;

	while (dir && (e = readdir(dir)) != NULL) {
		char path[300];
		if (strncmp(e->d_name, d->prefix, strlen(d->prefix)) != 0)
			continue;
		snprintf(path, sizeof(path), "/dev/shm/%s", e->d_name);
		if (fn(path) != 0)
			n = -1000;
		n++;
	}
	if (dir)
		closedir(dir);
	return n;
}

static int refused_to_others(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd >= 0) {
		close(fd);
		fprintf(stderr, "uid %u could open %s\n", getuid(), path);
		return -1;
	}
	return errno == EACCES ? 0 : -1;
}

static int private_to_daemon(const char *path)
{
	struct stat st;

	if (stat(path, &st) < 0 || !S_ISREG(st.st_mode) ||
	    (st.st_mode & 07777) != 0600 || st.st_uid != geteuid()) {
		fprintf(stderr, "%s: not a 0600 file of uid %u\n", path,
			geteuid());
		return -1;
	}
	return 0;
}

START_TEST(test_permissions)
{
	static const char *const queues[] = { "priv", "ro", "rw", "grp" };
	static const uint32_t modes[] = { 0600, 0644, 0666, 0640 };
	struct shmq_stat st, *list;
	struct daemon d;
	shmq_t *q;
	size_t n;
	pid_t pid;

	ck_assert_int_eq(daemon_start(&d, NULL), 0);
	share_socket(&d);
	for (int i = 0; i < 4; i++) {
		create_q(queues[i], 8, 64, modes[i], 0);
		q = open_q(queues[i], SHMQ_PRODUCER);
		put_str(q, "m");
		RC_EQ(shmq_detach(q), SHMQ_OK);
	}

	/* Another user, in no group of ours. */
	pid = harness_fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		char buf[16];
		size_t len;
		shmq_t *h;

		become_nobody(NULL, 0);
		CHILD_CHECK(access(d.sock, R_OK | W_OK) == 0);

		/* 0600 of root: nothing at all. */
		CHILD_RC(shmq_open("priv", SHMQ_PRODUCER, &h), SHMQ_EACCES);
		CHILD_RC(shmq_open("priv", SHMQ_CONSUMER, &h), SHMQ_EACCES);
		CHILD_RC(shmq_open("priv", 0, &h), SHMQ_EACCES);
		CHILD_RC(shmq_stat_name("priv", &st), SHMQ_EACCES);
		CHILD_RC(shmq_close_name("priv", SHMQ_CLOSE_NOW, NULL),
			 SHMQ_EACCES);
		CHILD_RC(shmq_delete("priv"), SHMQ_EACCES);

		/* 0644: read (consume, observe, stat), not write. */
		CHILD_RC(shmq_stat_name("ro", &st), SHMQ_OK);
		CHILD_CHECK(st.messages == 1 && st.uid == 0);
		CHILD_RC(shmq_open("ro", 0, &h), SHMQ_OK);
		CHILD_RC(shmq_close(h, SHMQ_CLOSE_DRAIN, NULL), SHMQ_EACCES);
		CHILD_RC(shmq_detach(h), SHMQ_OK);
		CHILD_RC(shmq_open("ro", SHMQ_CONSUMER, &h), SHMQ_OK);
		CHILD_RC(shmq_detach(h), SHMQ_OK);
		CHILD_RC(shmq_open("ro", SHMQ_PRODUCER, &h), SHMQ_EACCES);
		CHILD_RC(shmq_open("ro", SHMQ_PRODUCER | SHMQ_CONSUMER, &h),
			 SHMQ_EACCES);
		CHILD_RC(shmq_close_name("ro", SHMQ_CLOSE_DRAIN, NULL),
			 SHMQ_EACCES);
		CHILD_RC(shmq_delete("ro"), SHMQ_EACCES);

		/* 0640 with root's group: others get nothing. */
		CHILD_RC(shmq_open("grp", SHMQ_CONSUMER, &h), SHMQ_EACCES);

		/* 0666: produce and consume; close too; delete is the
		 * owner's alone. */
		CHILD_RC(shmq_open("rw", SHMQ_PRODUCER | SHMQ_CONSUMER, &h),
			 SHMQ_OK);
		CHILD_RC(shmq_put(h, "n", 1, 5000), SHMQ_OK);
		CHILD_RC(shmq_get(h, buf, sizeof(buf), &len, 5000), SHMQ_OK);
		CHILD_CHECK(len == 1 && buf[0] == 'm');
		CHILD_RC(shmq_detach(h), SHMQ_OK);
		CHILD_RC(shmq_delete("rw"), SHMQ_EACCES);
		CHILD_RC(shmq_close_name("rw", SHMQ_CLOSE_DRAIN, NULL),
			 SHMQ_OK);

		/* What this user creates is its own. */
		CHILD_RC(shmq_create("mine", NULL, 0), SHMQ_OK);
		CHILD_RC(shmq_stat_name("mine", &st), SHMQ_OK);
		CHILD_CHECK(st.uid == NOBODY && st.gid == NOBODY);
		CHILD_CHECK(st.mode == 0600);
		CHILD_RC(shmq_create("mine2", NULL, 0), SHMQ_OK);
		CHILD_RC(shmq_delete("mine2"), SHMQ_OK);

		/* The listing shows only what this user may read. */
		CHILD_RC(shmq_list(&list, &n), SHMQ_OK);
		CHILD_CHECK(n == 3);
		CHILD_CHECK(strcmp(list[0].name, "mine") == 0);
		CHILD_CHECK(strcmp(list[1].name, "ro") == 0);
		CHILD_CHECK(strcmp(list[2].name, "rw") == 0);
		free(list);

		/* The segments themselves are out of reach: access goes
		 * through the daemon. */
		CHILD_CHECK(each_segment(&d, refused_to_others) >= 8);
		_exit(0);
	}
	CHILD_OK(pid);

	/* Another user in root's group (supplementary): group bits. */
	pid = harness_fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		static const gid_t root_group[] = { 0 };
		shmq_t *h;

		become_nobody(root_group, 1);
		CHILD_RC(shmq_open("grp", SHMQ_CONSUMER, &h), SHMQ_OK);
		CHILD_RC(shmq_detach(h), SHMQ_OK);
		CHILD_RC(shmq_open("grp", SHMQ_PRODUCER, &h), SHMQ_EACCES);
		CHILD_RC(shmq_open("priv", SHMQ_CONSUMER, &h), SHMQ_EACCES);
		CHILD_RC(shmq_list(&list, &n), SHMQ_OK);
		CHILD_CHECK(n == 4);    /* grp, mine, ro, rw */
		free(list);
		_exit(0);
	}
	CHILD_OK(pid);

	/* Nothing the other user was refused happened anyway. */
	st = stat_name("priv");
	ck_assert_uint_eq(st.messages, 1);
	ck_assert_int_eq(st.state, SHMQ_STATE_OPEN);
	st = stat_name("ro");
	ck_assert_uint_eq(st.messages, 1);
	ck_assert_int_eq(st.state, SHMQ_STATE_OPEN);
	st = stat_name("rw");
	ck_assert_uint_eq(st.messages, 1);
	ck_assert_int_eq(st.state, SHMQ_STATE_CLOSED);
	st = stat_name("mine");
	ck_assert_uint_eq(st.uid, NOBODY);
	ck_assert_uint_eq(st.gid, NOBODY);
	RC_EQ(shmq_stat_name("mine2", &st), SHMQ_ENOENT);
	/* Root may use and delete anybody's queue. */
	q = open_q("mine", SHMQ_PRODUCER | SHMQ_CONSUMER);
	RC_EQ(shmq_detach(q), SHMQ_OK);
	RC_EQ(shmq_list(&list, &n), SHMQ_OK);
	ck_assert_uint_eq(n, 5);
	free(list);
	ck_assert_int_eq(each_segment(&d, private_to_daemon), 10);
	RC_EQ(shmq_delete("mine"), SHMQ_OK);
	ck_assert_int_eq(daemon_cleanup(&d), 0);
}
END_TEST

/* ======================================================================= */
/* 6. Bad input on the control socket                                       */

/* A client that keeps working while others misbehave: a child that puts,
 * gets and asks the daemon for a stat in a loop, and the test's own
 * round trips. */
struct live {
	pid_t pid;
	struct chan ch;
	shmq_t *ping;           /* the test's own queue */
	unsigned rounds;
};

static void live_start(struct live *l)
{
	create_q("live", 8, 64, 0600, 0);
	create_q("ping", 8, 64, 0600, 0);
	l->ping = open_q("ping", SHMQ_PRODUCER | SHMQ_CONSUMER);
	l->rounds = 0;
	chan_init(&l->ch);
	l->pid = harness_fork();
	ck_assert_int_ge(l->pid, 0);
	if (l->pid == 0) {
		struct shmq_stat st;
		struct pollfd pf;
		char buf[16];
		size_t len;
		shmq_t *q;

		chan_child(&l->ch);
		CHILD_RC(shmq_open("live", SHMQ_PRODUCER | SHMQ_CONSUMER, &q),
			 SHMQ_OK);
		child_say(&l->ch, 'r');
		pf.fd = l->ch.down[0];
		pf.events = POLLIN;
		for (unsigned i = 0; poll(&pf, 1, 0) == 0; i++) {
			CHILD_RC(shmq_put(q, &i, sizeof(i), 5000), SHMQ_OK);
			CHILD_RC(shmq_get(q, buf, sizeof(buf), &len, 5000),
				 SHMQ_OK);
			CHILD_CHECK(len == sizeof(i) &&
				    memcmp(buf, &i, len) == 0);
			CHILD_RC(shmq_stat_name("live", &st), SHMQ_OK);
		}
		CHILD_CHECK(child_hear(&l->ch) == 's');
		_exit(0);
	}
	chan_parent(&l->ch);
	chan_expect(&l->ch, 'r');
}

/* The daemon serves: the child makes progress (each of its rounds asks
 * the daemon once), and a round trip of our own works. */
static void live_check(struct live *l)
{
	uint64_t before = stat_name("live").total_put;
	char msg[16];

	ck_assert_msg(WAIT_UNTIL(stat_name("live").total_put > before + 2,
				 5000),
		      "the other client stopped making progress");
	snprintf(msg, sizeof(msg), "ping%u", l->rounds++);
	put_str(l->ping, msg);
	get_str(l->ping, msg);
	ck_assert_int_eq(waitpid(l->pid, NULL, WNOHANG), 0);
}

static void live_stop(struct live *l, const struct daemon *d)
{
	live_check(l);
	ck_assert_int_eq(byte_write(l->ch.down[1], 's'), 0);
	CHILD_OK(l->pid);
	chan_done(&l->ch);
	RC_EQ(shmq_detach(l->ping), SHMQ_OK);
	/* And the daemon is still the one we started. */
	ck_assert_int_eq(waitpid(d->pid, NULL, WNOHANG), 0);
	ck_assert_int_eq(daemon_pid_of(d->sock), d->pid);
}

static int connect_ok(const char *sock)
{
	int fd = raw_connect(sock);

	ck_assert_msg(fd >= 0, "connect %s: %s", sock, strerror(errno));
	return fd;
}

static int connect_hello(const char *sock)
{
	int fd = connect_ok(sock);

	RC_EQ(raw_hello(fd, NULL), SHMQ_OK);
	return fd;
}

/* On a fresh connection: `pkt` must be answered by `status` (or, for
 * RAW_EOF, by nothing) and then the connection must be dropped. */
static void expect_fatal(const char *sock, const void *pkt, size_t len,
			 int status)
{
	int fd = connect_ok(sock);
	int rc;

	ck_assert_int_eq(raw_send(fd, pkt, len), 0);
	rc = raw_reply(fd, 0, 0, NULL, 0);
	if (status == RAW_EOF)
		ck_assert_msg(dropped(rc), "answer %d, want a hang-up", rc);
	else
		ck_assert_msg(rc == status, "answer %d, want %d", rc, status);
	if (status != RAW_EOF) {
		rc = raw_reply(fd, 0, 0, NULL, 0);
		ck_assert_msg(dropped(rc), "not dropped: %d", rc);
	}
	close(fd);
}

/* On an established connection: one request answered by `status`, after
 * which the connection must still serve a good request. */
static void expect_error(int fd, uint16_t type, const void *body, size_t len,
			 int status)
{
	static uint32_t seq = 100;
	struct shmq_wire_status st;
	struct shmq_wire_name name;
	int rc;

	ck_assert_int_eq(raw_request(fd, type, ++seq, body, len), 0);
	memset(&st, 0, sizeof(st));
	rc = raw_reply(fd, type, seq, &st, sizeof(st));
	ck_assert_msg(rc == status, "type %u: answer %d (%s), want %d (%s)",
		      type, rc, st.detail, status, shmq_strerror(status));
	memset(&name, 0, sizeof(name));
	strcpy(name.name, "live");
	ck_assert_int_eq(raw_request(fd, SHMQ_MSG_STAT, ++seq, &name,
				     sizeof(name)), 0);
	rc = raw_reply(fd, SHMQ_MSG_STAT, seq, NULL, 0);
	ck_assert_msg(rc == SHMQ_OK, "after type %u: stat answered %d", type,
		      rc);
}

START_TEST(test_proto_framing)
{
	struct shmq_wire_hello hello = {
		.wire_version = SHMQ_WIRE_VERSION,
		.layout_version = SHMQ_LAYOUT_VERSION,
	};
	static char pkt[SHMQ_WIRE_MAX + 8192];
	struct shmq_wire_hdr h;
	struct shmq_wire_name name;
	struct daemon d;
	struct live l;
	size_t n;
	int fd;

	ck_assert_int_eq(daemon_start(&d, NULL), 0);
	live_start(&l);

	/* Not our protocol at all: dropped without a word. */
	n = (size_t)snprintf(pkt, sizeof(pkt), "GET / HTTP/1.0\r\n\r\n");
	expect_fatal(d.sock, pkt, n, RAW_EOF);
	live_check(&l);
	memset(pkt, 0xa5, 64);
	expect_fatal(d.sock, pkt, 64, RAW_EOF);
	live_check(&l);

	/* A truncated header, even one that starts right. */
	n = raw_pack(pkt, SHMQ_MSG_HELLO, 1, &hello, sizeof(hello));
	expect_fatal(d.sock, pkt, 10, RAW_EOF);
	expect_fatal(d.sock, pkt, 1, RAW_EOF);
	live_check(&l);

	/* The right magic with a length that is not the packet's: the
	 * header cannot be trusted, so an error and a hang-up. */
	n = raw_pack(pkt, SHMQ_MSG_HELLO, 1, &hello, sizeof(hello));
	memcpy(&h, pkt, sizeof(h));
	h.len = 4096;
	memcpy(pkt, &h, sizeof(h));
	expect_fatal(d.sock, pkt, n, SHMQ_EPROTO);
	h.len = sizeof(h);
	memcpy(pkt, &h, sizeof(h));
	expect_fatal(d.sock, pkt, n, SHMQ_EPROTO);
	live_check(&l);

	/* Another protocol version. */
	n = raw_pack(pkt, SHMQ_MSG_HELLO, 1, &hello, sizeof(hello));
	memcpy(&h, pkt, sizeof(h));
	h.version = SHMQ_WIRE_VERSION + 1;
	memcpy(pkt, &h, sizeof(h));
	expect_fatal(d.sock, pkt, n, SHMQ_EPROTO);
	/* A HELLO that announces other versions in its body. */
	hello.wire_version = SHMQ_WIRE_VERSION + 1;
	n = raw_pack(pkt, SHMQ_MSG_HELLO, 1, &hello, sizeof(hello));
	expect_fatal(d.sock, pkt, n, SHMQ_EPROTO);
	hello.wire_version = SHMQ_WIRE_VERSION;
	hello.layout_version = SHMQ_LAYOUT_VERSION + 1;
	n = raw_pack(pkt, SHMQ_MSG_HELLO, 1, &hello, sizeof(hello));
	expect_fatal(d.sock, pkt, n, SHMQ_EPROTO);
	hello.layout_version = SHMQ_LAYOUT_VERSION;
	live_check(&l);

	/* Any request before HELLO. */
	memset(&name, 0, sizeof(name));
	strcpy(name.name, "live");
	n = raw_pack(pkt, SHMQ_MSG_STAT, 7, &name, sizeof(name));
	expect_fatal(d.sock, pkt, n, SHMQ_EPROTO);
	live_check(&l);

	/* Bigger than any packet may be: dropped. */
	memset(pkt, 'z', sizeof(pkt));
	n = raw_pack(pkt, SHMQ_MSG_HELLO, 1, &hello, sizeof(hello));
	memcpy(&h, pkt, sizeof(h));
	h.len = SHMQ_WIRE_MAX + 4096;
	memcpy(pkt, &h, sizeof(h));
	expect_fatal(d.sock, pkt, SHMQ_WIRE_MAX + 4096, RAW_EOF);
	/* Also after a good HELLO, and exactly one byte too big. */
	fd = connect_hello(d.sock);
	h.len = SHMQ_WIRE_MAX + 1;
	memcpy(pkt, &h, sizeof(h));
	ck_assert_int_eq(raw_send(fd, pkt, SHMQ_WIRE_MAX + 1), 0);
	ck_assert(dropped(raw_reply(fd, 0, 0, NULL, 0)));
	close(fd);
	live_check(&l);

	/* An empty packet. */
	fd = connect_hello(d.sock);
	ck_assert_int_eq(send(fd, pkt, 0, MSG_NOSIGNAL), 0);
	n = (size_t)raw_reply(fd, 0, 0, NULL, 0);
	ck_assert_msg(dropped((int)n) || (int)n < 0,
		      "empty packet answered %d", (int)n);
	close(fd);
	live_check(&l);

	/* Connecting and leaving without a word, many times. */
	for (int i = 0; i < 50; i++)
		close(connect_ok(d.sock));
	live_stop(&l, &d);
	ck_assert_int_eq(daemon_cleanup(&d), 0);
}
END_TEST

static void create_body(struct shmq_wire_create *c, const char *name)
{
	memset(c, 0, sizeof(*c));
	snprintf(c->name, sizeof(c->name), "%s", name);
	c->capacity = 4;
	c->max_msg = 16;
	c->mode = 0600;
}

START_TEST(test_proto_bodies)
{
	static const char *const bad_names[] = {
		"a b", ".dot", "", "caf\xc3\xa9", "a/b", "x\x7f",
	};
	struct shmq_wire_hello hello = {
		.wire_version = SHMQ_WIRE_VERSION,
		.layout_version = SHMQ_LAYOUT_VERSION,
	};
	struct shmq_wire_create c;
	struct shmq_wire_open o;
	struct shmq_wire_name nm;
	struct shmq_wire_list ls;
	struct shmq_wire_detach dt;
	struct shmq_attr a;
	char big[sizeof(c) + 8];
	struct daemon d;
	struct live l;
	int fd, segs;

	ck_assert_int_eq(daemon_start(&d, NULL), 0);
	live_start(&l);
	segs = daemon_segments(&d);
	fd = connect_hello(d.sock);

	/* Types nobody defined, a reply type sent as a request, and known
	 * types with a body of the wrong size. */
	memset(&nm, 0, sizeof(nm));
	strcpy(nm.name, "live");
	expect_error(fd, 999, NULL, 0, SHMQ_EINVAL);
	expect_error(fd, 0, NULL, 0, SHMQ_EINVAL);
	expect_error(fd, SHMQ_MSG_STAT | SHMQ_MSG_REPLY, &nm, sizeof(nm),
		     SHMQ_EINVAL);
	expect_error(fd, SHMQ_MSG_HELLO, &hello, 4, SHMQ_EINVAL);
	expect_error(fd, SHMQ_MSG_STAT, "live", 5, SHMQ_EINVAL);
	create_body(&c, "sized");
	expect_error(fd, SHMQ_MSG_CREATE, &c, sizeof(c) - 1, SHMQ_EINVAL);
	memset(big, 0, sizeof(big));
	memcpy(big, &c, sizeof(c));
	expect_error(fd, SHMQ_MSG_CREATE, big, sizeof(big), SHMQ_EINVAL);
	live_check(&l);

	/* Names without a terminator, and names the contract forbids. */
	memset(c.name, 'a', sizeof(c.name));
	expect_error(fd, SHMQ_MSG_CREATE, &c, sizeof(c), SHMQ_ENAME);
	for (size_t i = 0; i < sizeof(bad_names) / sizeof(*bad_names); i++) {
		create_body(&c, bad_names[i]);
		expect_error(fd, SHMQ_MSG_CREATE, &c, sizeof(c), SHMQ_ENAME);
	}
	memset(&o, 0, sizeof(o));
	memset(o.name, 'o', sizeof(o.name));
	o.role = SHMQ_ROLE_CONSUMER;
	expect_error(fd, SHMQ_MSG_OPEN, &o, sizeof(o), SHMQ_ENAME);
	memset(&nm, 'n', sizeof(nm));
	expect_error(fd, SHMQ_MSG_STAT, &nm, sizeof(nm), SHMQ_ENAME);
	expect_error(fd, SHMQ_MSG_DELETE, &nm, sizeof(nm), SHMQ_ENAME);
	/* 203 was CLOSE in wire version 1; closing is the clients' now. */
	expect_error(fd, 203, &nm, sizeof(nm), SHMQ_EINVAL);
	/* Only DETACH may ask for no reply: anything else with the bit is
	 * malformed, and is answered. */
	expect_error(fd, SHMQ_MSG_STAT | SHMQ_MSG_NOREPLY, &nm, sizeof(nm),
		     SHMQ_EINVAL);
	memset(&ls, 'l', sizeof(ls));
	expect_error(fd, SHMQ_MSG_LIST, &ls, sizeof(ls), SHMQ_ENAME);
	memset(&ls, 0, sizeof(ls));
	strcpy(ls.after, ".x");
	expect_error(fd, SHMQ_MSG_LIST, &ls, sizeof(ls), SHMQ_ENAME);
	live_check(&l);

	/* Sizes that must be refused before anything is allocated. */
	create_body(&c, "huge");
	c.capacity = UINT32_MAX;
	expect_error(fd, SHMQ_MSG_CREATE, &c, sizeof(c), SHMQ_EINVAL);
	c.capacity = 0;
	expect_error(fd, SHMQ_MSG_CREATE, &c, sizeof(c), SHMQ_EINVAL);
	c.capacity = 4;
	c.max_msg = UINT32_MAX;
	expect_error(fd, SHMQ_MSG_CREATE, &c, sizeof(c), SHMQ_EINVAL);
	c.max_msg = 16;
	c.max_bytes = UINT64_MAX;
	expect_error(fd, SHMQ_MSG_CREATE, &c, sizeof(c), SHMQ_EINVAL);
	c.max_bytes = 0;
	c.capacity = SHMQ_CAPACITY_MAX;
	c.max_msg = SHMQ_MSG_MAX;       /* a 16 PiB data ring: beyond the
					   layout's 4 GiB */
	expect_error(fd, SHMQ_MSG_CREATE, &c, sizeof(c), SHMQ_EINVAL);
	c.capacity = 1024;
	c.max_msg = 2u << 20;           /* 2 GiB: a layout, not a limit */
	expect_error(fd, SHMQ_MSG_CREATE, &c, sizeof(c), SHMQ_ELIMIT);
	a = attr_of(1024, 2u << 20, 0600, 0);
	RC_EQ(shmq_create("huge", &a, 0), SHMQ_ELIMIT);
	ck_assert_msg(shmq_error_detail()[0] != '\0', "no detail");
	/* Bits nobody defined. */
	create_body(&c, "bits");
	c.mode = 07777;
	expect_error(fd, SHMQ_MSG_CREATE, &c, sizeof(c), SHMQ_EINVAL);
	create_body(&c, "bits");
	c.config_flags = 0x80;
	expect_error(fd, SHMQ_MSG_CREATE, &c, sizeof(c), SHMQ_EINVAL);
	create_body(&c, "bits");
	c.flags = 0x80;
	expect_error(fd, SHMQ_MSG_CREATE, &c, sizeof(c), SHMQ_EINVAL);
	create_body(&c, "bits");
	c.pad = 1;
	expect_error(fd, SHMQ_MSG_CREATE, &c, sizeof(c), SHMQ_EINVAL);
	ck_assert_int_eq(daemon_segments(&d), segs);
	live_check(&l);

	/* Fields of the other requests. */
	memset(&o, 0, sizeof(o));
	strcpy(o.name, "live");
	o.role = 8;   /* 4 is SHMQ_WIRE_DEAD_LETTER */
	expect_error(fd, SHMQ_MSG_OPEN, &o, sizeof(o), SHMQ_EINVAL);
	o.role = SHMQ_ROLE_CONSUMER;
	o.pad = 1;
	expect_error(fd, SHMQ_MSG_OPEN, &o, sizeof(o), SHMQ_EINVAL);
	memset(&o, 0, sizeof(o));
	strcpy(o.name, "nope");
	expect_error(fd, SHMQ_MSG_OPEN, &o, sizeof(o), SHMQ_ENOENT);
	/* Somebody else's attachment, or nobody's. */
	dt.queue_id = UINT64_C(0x123456789abcdef);
	dt.client = 7;
	dt.gen = 99;
	expect_error(fd, SHMQ_MSG_DETACH, &dt, sizeof(dt), SHMQ_ENOENT);
	memset(&dt, 0xff, sizeof(dt));
	expect_error(fd, SHMQ_MSG_DETACH, &dt, sizeof(dt), SHMQ_ENOENT);
	/* A second HELLO is harmless. */
	expect_error(fd, SHMQ_MSG_HELLO, &hello, sizeof(hello), SHMQ_OK);
	ck_assert_int_eq(stat_name("live").state, SHMQ_STATE_OPEN);

	/* After all that, the same connection still creates a queue. */
	create_body(&c, "rawq");
	expect_error(fd, SHMQ_MSG_CREATE, &c, sizeof(c), SHMQ_OK);
	ck_assert_uint_eq(stat_name("rawq").capacity, 4);
	close(fd);
	live_stop(&l, &d);
	ck_assert_int_eq(daemon_cleanup(&d), 0);
}
END_TEST

static void send_with_fds(int sock, const void *pkt, size_t len,
			  const int *fds, int n)
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

/* Lets the daemon finish what it had started: two round trips, because
 * one reply may go out before later callbacks of the same event-loop
 * iteration (a hang-up, the close of a descriptor it just passed) ran;
 * the second request is only read in a later iteration. */
static void settle(void)
{
	stat_name("live");
	stat_name("live");
}

static int count_fds(pid_t pid)
{
	char path[64];
	DIR *dir;
	struct dirent *e;
	int n = 0;

	snprintf(path, sizeof(path), "/proc/%ld/fd", (long)pid);
	dir = opendir(path);
	ck_assert_ptr_nonnull(dir);
	while ((e = readdir(dir)) != NULL)
		n += e->d_name[0] != '.';
	closedir(dir);
	return n;
}

START_TEST(test_proto_fds)
{
	struct shmq_wire_hello hello = {
		.wire_version = SHMQ_WIRE_VERSION,
		.layout_version = SHMQ_LAYOUT_VERSION,
	};
	static char pkt[SHMQ_WIRE_MAX];
	struct shmq_wire_name nm;
	struct pollfd pf;
	struct daemon d;
	struct live l;
	int p[2], fds[32], fd, fd2, before;
	size_t n;
	char b;

	ck_assert_int_eq(daemon_start(&d, NULL), 0);
	live_start(&l);
	settle();
	before = count_fds(d.pid);
	/* The live child exists already, so only we and the daemon can
	 * ever hold this pipe's write end. */
	ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
	for (int i = 0; i < 32; i++)
		fds[i] = p[1];
	memset(&nm, 0, sizeof(nm));
	strcpy(nm.name, "live");

	/* Descriptors nobody asked for ride along with good requests: the
	 * requests are served and the descriptors closed, including more
	 * than the daemon receives at once. */
	fd = connect_ok(d.sock);
	n = raw_pack(pkt, SHMQ_MSG_HELLO, 1, &hello, sizeof(hello));
	send_with_fds(fd, pkt, n, fds, 3);
	RC_EQ(raw_reply(fd, SHMQ_MSG_HELLO, 1, NULL, 0), SHMQ_OK);
	n = raw_pack(pkt, SHMQ_MSG_STAT, 2, &nm, sizeof(nm));
	send_with_fds(fd, pkt, n, fds, 32);
	RC_EQ(raw_reply(fd, SHMQ_MSG_STAT, 2, NULL, 0), SHMQ_OK);
	live_check(&l);
	/* ...and with bad ones. */
	fd2 = connect_ok(d.sock);
	memset(pkt, 0x5a, 64);
	send_with_fds(fd2, pkt, 64, fds, 5);
	ck_assert(dropped(raw_reply(fd2, 0, 0, NULL, 0)));
	close(fd2);
	fd2 = connect_ok(d.sock);
	n = raw_pack(pkt, SHMQ_MSG_STAT, 3, &nm, sizeof(nm));
	send_with_fds(fd2, pkt, n, fds, 8);
	ck_assert_int_eq(raw_reply(fd2, 0, 0, NULL, 0), SHMQ_EPROTO);
	ck_assert(dropped(raw_reply(fd2, 0, 0, NULL, 0)));
	close(fd2);
	live_check(&l);

	/* With our write end closed, the pipe ends only if the daemon
	 * kept no copy. */
	close(p[1]);
	pf.fd = p[0];
	pf.events = POLLIN;
	ck_assert_msg(poll(&pf, 1, 5000) == 1, "the daemon kept a descriptor");
	ck_assert_int_eq(read(p[0], &b, 1), 0);
	close(p[0]);
	close(fd);
	/* Once our connections are gone, the daemon holds as many
	 * descriptors as before. */
	settle();
	ck_assert_int_eq(count_fds(d.pid), before);
	live_stop(&l, &d);
	ck_assert_int_eq(daemon_cleanup(&d), 0);
}
END_TEST

/* The daemon's descriptor table: fd number -> what it refers to. */
struct fdtab {
	int n;
	int fd[256];
	char what[256][64];
};

static void fdtab_read(pid_t pid, struct fdtab *t)
{
	char path[64], link[330];
	struct dirent *e;
	DIR *dir;

	t->n = 0;
	snprintf(path, sizeof(path), "/proc/%ld/fd", (long)pid);
	dir = opendir(path);
	ck_assert_ptr_nonnull(dir);
	while ((e = readdir(dir)) != NULL && t->n < 256) {
		if (e->d_name[0] == '.')
			continue;
		snprintf(link, sizeof(link), "%s/%s", path, e->d_name);
		ssize_t m = readlink(link, t->what[t->n],
				     sizeof(t->what[0]) - 1);
		if (m < 0)
			continue;
		t->what[t->n][m] = '\0';
		t->fd[t->n++] = atoi(e->d_name);
	}
	closedir(dir);
}

/* How many entries of `a` are not in `b` with the same target; with
 * `say`, names them. */
static int fdtab_lost(const struct fdtab *a, const struct fdtab *b, int say)
{
	int lost = 0;

	for (int i = 0; i < a->n; i++) {
		int kept = 0;
		for (int j = 0; j < b->n; j++)
			kept |= a->fd[i] == b->fd[j] &&
				strcmp(a->what[i], b->what[j]) == 0;
		if (!kept && say)
			fprintf(stderr, "shmqd lost fd %d (%s)\n", a->fd[i],
				a->what[i]);
		lost += !kept;
	}
	return lost;
}

/* Regression: a client that hangs up with a reply unread makes the
 * daemon's recvmsg() fail with ECONNRESET.  shmqd then walked its
 * control buffer anyway, which the failed call had not filled, and
 * closed whatever descriptor numbers an earlier SCM_RIGHTS message had
 * left there -- by then in use for something else.  Here the stale
 * numbers are steered onto another client's pidfd: every connection
 * exists before the descriptors are passed, so that no accept() runs on
 * that stack in between, and the next two descriptors the daemon opens
 * (a segment fd, then the new process's pidfd) reuse them. */
START_TEST(test_proto_reset_keeps_fds)
{
	struct shmq_wire_hello hello = {
		.wire_version = SHMQ_WIRE_VERSION,
		.layout_version = SHMQ_LAYOUT_VERSION,
	};
	static char pkt[SHMQ_WIRE_MAX];
	static struct fdtab before, after;
	struct shmq_wire_name nm;
	struct producer z;
	struct daemon d;
	int a, b, p[2], fds[2], w[4];
	size_t n;
	shmq_t *c;

	ck_assert_int_eq(daemon_start(&d, NULL), 0);
	create_q("victim", 4, 64, 0600, SHMQ_AUTO_CLOSE);
	c = open_q("victim", SHMQ_CONSUMER);
	/* Z connects now and attaches later. */
	chan_init(&z.ch);
	z.pid = harness_fork();
	ck_assert_int_ge(z.pid, 0);
	if (z.pid == 0) {
		struct shmq_stat st;
		shmq_t *q;

		chan_child(&z.ch);
		CHILD_RC(shmq_stat_name("victim", &st), SHMQ_OK);
		child_say(&z.ch, 'r');
		CHILD_CHECK(child_hear(&z.ch) == 'o');
		CHILD_RC(shmq_open("victim", SHMQ_PRODUCER, &q), SHMQ_OK);
		child_say(&z.ch, 'k');
		CHILD_CHECK(child_hear(&z.ch) == 'q');
		CHILD_RC(shmq_detach(q), SHMQ_OK);
		child_say(&z.ch, 'k');
		_exit(0);
	}
	chan_parent(&z.ch);
	chan_expect(&z.ch, 'r');
	a = connect_hello(d.sock);
	b = connect_hello(d.sock);

	ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
	fds[0] = fds[1] = p[1];
	n = raw_pack(pkt, SHMQ_MSG_HELLO, 1, &hello, sizeof(hello));
	send_with_fds(a, pkt, n, fds, 2);
	RC_EQ(raw_reply(a, SHMQ_MSG_HELLO, 1, NULL, 0), SHMQ_OK);
	close(p[0]);
	close(p[1]);
	chan_cmd(&z.ch, 'o', 'k');
	stat_name("victim");
	stat_name("victim");
	fdtab_read(d.pid, &before);

	/* B asks and leaves without reading the answer. */
	memset(&nm, 0, sizeof(nm));
	strcpy(nm.name, "victim");
	ck_assert_int_eq(raw_request(b, SHMQ_MSG_STAT, 2, &nm, sizeof(nm)), 0);
	stat_name("victim");            /* B's reply is in flight by now */
	close(b);
	stat_name("victim");
	stat_name("victim");
	fdtab_read(d.pid, &after);
	/* New clients take the freed numbers, and each is served. */
	for (int i = 0; i < 4; i++) {
		w[i] = connect_ok(d.sock);
		ck_assert_msg(raw_hello(w[i], NULL) == SHMQ_OK,
			      "new client %d not served", i);
	}
	/* B's connection went, and nothing else. */
	if (fdtab_lost(&before, &after, 0) != 1)
		fdtab_lost(&before, &after, 1);
	ck_assert_int_eq(fdtab_lost(&before, &after, 0), 1);
	ck_assert_int_eq(before.n - after.n, 1);
	for (int i = 0; i < 4; i++)
		close(w[i]);

	/* Z is still tracked: its clean detach leaves the queue to be
	 * auto-closed without a loss. */
	chan_cmd(&z.ch, 'q', 'k');
	CHILD_OK(z.pid);
	chan_done(&z.ch);
	ck_assert_int_eq(stat_name("victim").producer_lost, 0);
	ck_assert_int_eq(stat_name("victim").state, SHMQ_STATE_CLOSED);
	close(a);
	RC_EQ(shmq_detach(c), SHMQ_OK);
	ck_assert_int_eq(daemon_cleanup(&d), 0);
}
END_TEST

/* A client that sends requests and never reads the replies is dropped
 * once its replies pile up; the daemon never waits for it. */
START_TEST(test_proto_flood)
{
	static char pkt[SHMQ_WIRE_MAX];
	struct shmq_wire_name nm;
	struct daemon d;
	struct live l;
	int fd, sent, got = 0, rc, e = 0;
	size_t n;

	ck_assert_int_eq(daemon_start(&d, NULL), 0);
	live_start(&l);
	fd = connect_hello(d.sock);
	memset(&nm, 0, sizeof(nm));
	strcpy(nm.name, "live");
	n = raw_pack(pkt, SHMQ_MSG_STAT, 0, &nm, sizeof(nm));
	for (sent = 0; sent < 100000; sent++) {
		if (send(fd, pkt, n, MSG_NOSIGNAL) != (ssize_t)n) {
			e = errno;
			break;
		}
	}
	ck_assert_msg(sent < 100000, "the daemon never gave up on the "
		      "client that does not read");
	ck_assert_msg(e == EPIPE || e == ECONNRESET,
		      "send failed with %s, not a hang-up", strerror(e));
	live_check(&l);
	/* The replies it did send are still ours to read, then the end
	 * (the kernel may report the reset first). */
	for (int i = 0; i < 100000; i++) {
		rc = raw_reply(fd, SHMQ_MSG_STAT, 0, NULL, 0);
		if (rc == SHMQ_OK)
			got++;
		else if (rc != RAW_RESET)
			break;
	}
	ck_assert_int_eq(rc, RAW_EOF);
	ck_assert_int_gt(got, 0);
	ck_assert_int_lt(got, sent);
	close(fd);
	live_stop(&l, &d);
	ck_assert_int_eq(daemon_cleanup(&d), 0);
}
END_TEST

/* ======================================================================= */
/* 7. Limits                                                                */

static void expect_detail(const char *word)
{
	const char *detail = shmq_error_detail();

	ck_assert_msg(detail[0] != '\0', "no detail for the refusal");
	ck_assert_msg(strstr(detail, word) != NULL,
		      "detail '%s' does not mention '%s'", detail, word);
}

START_TEST(test_limit_queues)
{
	static char *const args[] = { "--max-queues", "3", NULL };
	struct shmq_stat *list;
	struct daemon d;
	shmq_t *p, *c;
	size_t n;

	ck_assert_int_eq(daemon_start(&d, args), 0);
	create_q("a", 4, 64, 0600, 0);
	create_q("b", 4, 64, 0600, 0);
	create_q("c", 4, 64, 0600, 0);
	p = open_q("a", SHMQ_PRODUCER);
	c = open_q("a", SHMQ_CONSUMER);
	put_str(p, "keep");

	RC_EQ(shmq_create("d", NULL, 0), SHMQ_ELIMIT);
	expect_detail("3 queues");
	RC_EQ(shmq_create("d", NULL, SHMQ_EXIST_OK), SHMQ_ELIMIT);
	/* An existing queue needs no new room. */
	RC_EQ(shmq_create("a", NULL, SHMQ_EXIST_OK), SHMQ_OK);
	ck_assert_uint_eq(stat_name("a").messages, 1);
	ck_assert_int_eq(daemon_segments(&d), 6);

	/* Deleting makes room again. */
	RC_EQ(shmq_delete("b"), SHMQ_OK);
	create_q("d", 4, 64, 0600, 0);
	RC_EQ(shmq_create("e", NULL, 0), SHMQ_ELIMIT);
	RC_EQ(shmq_list(&list, &n), SHMQ_OK);
	ck_assert_uint_eq(n, 3);
	free(list);

	get_str(c, "keep");
	RC_EQ(shmq_detach(p), SHMQ_OK);
	RC_EQ(shmq_detach(c), SHMQ_OK);
	ck_assert_int_eq(daemon_cleanup(&d), 0);
}
END_TEST

START_TEST(test_limit_clients)
{
	static char *const args[] = { "--max-clients", "2", NULL };
	struct producer a;
	struct daemon d;
	shmq_t *p, *c;
	pid_t pid;
	int fd;

	ck_assert_int_eq(daemon_start(&d, args), 0);
	/* Client 1: this process. */
	create_q("keep", 4, 64, 0600, 0);
	p = open_q("keep", SHMQ_PRODUCER);
	c = open_q("keep", SHMQ_CONSUMER);
	put_str(p, "x");
	/* Client 2: a producer process. */
	producer_start(&a, "keep", 'A', 1);

	/* A third is told why, then dropped. */
	fd = connect_ok(d.sock);
	RC_EQ(raw_hello(fd, NULL), SHMQ_ELIMIT);
	ck_assert(dropped(raw_reply(fd, 0, 0, NULL, 0)));
	close(fd);
	pid = harness_fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		struct shmq_stat st;
		shmq_t *q;

		CHILD_RC(shmq_create("other", NULL, 0), SHMQ_ELIMIT);
		CHILD_CHECK(strstr(shmq_error_detail(), "clients") != NULL);
		CHILD_RC(shmq_open("keep", SHMQ_CONSUMER, &q), SHMQ_ELIMIT);
		CHILD_RC(shmq_stat_name("keep", &st), SHMQ_ELIMIT);
		_exit(0);
	}
	CHILD_OK(pid);

	/* The two admitted clients are served meanwhile. */
	chan_cmd(&a.ch, 'p', 'k');
	ck_assert_uint_eq(stat_name("keep").messages, 2);

	/* Once client 2 is gone (shmqd has read its detach), there is
	 * room. */
	chan_cmd(&a.ch, 'd', 'k');
	producer_end(&a);
	ck_assert(WAIT_UNTIL(stat_name("keep").producers == 1, 5000));
	pid = harness_fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		CHILD_RC(shmq_create("other", NULL, 0), SHMQ_OK);
		_exit(0);
	}
	CHILD_OK(pid);
	stat_name("other");

	get_str(c, "x");
	get_str(c, "A000000");
	RC_EQ(shmq_detach(p), SHMQ_OK);
	RC_EQ(shmq_detach(c), SHMQ_OK);
	ck_assert_int_eq(daemon_cleanup(&d), 0);
}
END_TEST

START_TEST(test_limit_segment)
{
	static char *const args[] = { "--max-segment", "65536", NULL };
	struct shmq_attr a;
	struct shmq_stat st;
	struct daemon d;
	shmq_t *p, *c;

	ck_assert_int_eq(daemon_start(&d, args), 0);
	create_q("small", 8, 1024, 0600, 0);
	p = open_q("small", SHMQ_PRODUCER);
	c = open_q("small", SHMQ_CONSUMER);
	put_str(p, "kept");

	RC_EQ(shmq_create("big", NULL, 0), SHMQ_ELIMIT);
	expect_detail("exceeds");
	a = attr_of(64, 1024, 0600, 0);
	RC_EQ(shmq_create("big", &a, 0), SHMQ_ELIMIT);
	expect_detail("65536");
	RC_EQ(shmq_stat_name("big", &st), SHMQ_ENOENT);
	ck_assert_int_eq(daemon_segments(&d), 2);
	/* A byte budget shrinks the data ring enough to fit. */
	a.max_bytes = 4096;
	RC_EQ(shmq_create("big", &a, 0), SHMQ_OK);
	ck_assert_int_eq(daemon_segments(&d), 4);

	get_str(c, "kept");
	RC_EQ(shmq_detach(p), SHMQ_OK);
	RC_EQ(shmq_detach(c), SHMQ_OK);
	ck_assert_int_eq(daemon_cleanup(&d), 0);
}
END_TEST

START_TEST(test_limit_attach)
{
	static char *const args[] = { "--max-attach", "2", NULL };
	struct shmq_stat st;
	struct daemon d;
	shmq_t *p, *c, *q;
	pid_t pid;

	ck_assert_int_eq(daemon_start(&d, args), 0);
	create_q("att", 4, 64, 0600, 0);
	p = open_q("att", SHMQ_PRODUCER);
	c = open_q("att", SHMQ_CONSUMER);
	put_str(p, "x");

	RC_EQ(shmq_open("att", SHMQ_CONSUMER, &q), SHMQ_ELIMIT);
	ck_assert_ptr_null(q);
	expect_detail("attachments");
	pid = harness_fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		shmq_t *h;
		CHILD_RC(shmq_open("att", SHMQ_PRODUCER, &h), SHMQ_ELIMIT);
		CHILD_CHECK(shmq_error_detail()[0] != '\0');
		_exit(0);
	}
	CHILD_OK(pid);
	st = stat_name("att");
	ck_assert_uint_eq(st.producers, 1);
	ck_assert_uint_eq(st.consumers, 1);
	ck_assert_uint_eq(st.messages, 1);

	/* Other queues have their own table. */
	create_q("other", 4, 64, 0600, 0);
	q = open_q("other", SHMQ_PRODUCER);
	RC_EQ(shmq_detach(q), SHMQ_OK);

	/* A detach frees an entry. */
	get_str(c, "x");
	RC_EQ(shmq_detach(c), SHMQ_OK);
	c = open_q("att", SHMQ_CONSUMER);
	put_str(p, "y");
	get_str(c, "y");
	RC_EQ(shmq_detach(p), SHMQ_OK);
	RC_EQ(shmq_detach(c), SHMQ_OK);
	ck_assert_int_eq(daemon_cleanup(&d), 0);
}
END_TEST

/* ======================================================================= */
/* 8. systemd: readiness, socket activation, one daemon per socket          */

static int notify_socket(const char *path)
{
	struct sockaddr_un un = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	ck_assert_int_ge(fd, 0);
	snprintf(un.sun_path, sizeof(un.sun_path), "%s", path);
	unlink(path);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&un, sizeof(un)), 0);
	return fd;
}

/* Whether READY=1 arrives on `fd` within `ms`. */
static int wait_ready(int fd, int ms)
{
	long until = now_ms() + ms;
	char buf[256];

	while (now_ms() < until) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		if (poll(&p, 1, (int)(until - now_ms())) <= 0)
			continue;
		ssize_t n = recv(fd, buf, sizeof(buf) - 1, 0);
		if (n <= 0)
			continue;
		buf[n] = '\0';
		if (strstr(buf, "READY=1"))
			return 1;
	}
	return 0;
}

/* Runs shmqd as systemd does for shmqd.socket: the listening socket
 * `lfd` as descriptor 3, LISTEN_FDS=1 and LISTEN_PID naming the daemon
 * itself, which only the child knows before exec. */
static pid_t start_activated(int lfd, const char *notify, const char *log)
{
	char bin[PATH_MAX];
	pid_t pid;

	harness_path("daemon/shmqd", bin, sizeof(bin));
	pid = harness_fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		char me[32];
		int err;

		/* Errors before --log is opened go to stderr: keep them
		 * in the same file. */
		err = open(log, O_WRONLY | O_CREAT | O_APPEND, 0600);
		if (err < 0 || dup2(err, STDERR_FILENO) < 0)
			_exit(126);
		if (lfd != 3) {
			if (dup2(lfd, 3) != 3)
				_exit(126);
			close(lfd);
		} else if (fcntl(3, F_SETFD, 0) < 0) {
			_exit(126);
		}
		snprintf(me, sizeof(me), "%ld", (long)getpid());
		setenv("LISTEN_FDS", "1", 1);
		setenv("LISTEN_PID", me, 1);
		setenv("NOTIFY_SOCKET", notify, 1);
		execl(bin, "shmqd", "--foreground", "--log", log, (char *)NULL);
		_exit(127);
	}
	return pid;
}

static int listening_socket(const char *path, int type)
{
	struct sockaddr_un un = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, type, 0);

	ck_assert_int_ge(fd, 0);
	snprintf(un.sun_path, sizeof(un.sun_path), "%s", path);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&un, sizeof(un)), 0);
	ck_assert_int_eq(listen(fd, 16), 0);
	return fd;
}

START_TEST(test_socket_activation)
{
	char notify[160], log[160];
	struct producer p;
	struct stat sb;
	struct daemon d;
	shmq_t *c;
	int nfd, lfd, status;

	borrow_dir(&d);
	snprintf(notify, sizeof(notify), "%s/act.notify", d.dir);
	snprintf(log, sizeof(log), "%s/act.log", d.dir);
	nfd = notify_socket(notify);
	lfd = listening_socket(d.sock, SOCK_SEQPACKET);
	d.pid = start_activated(lfd, notify, log);
	close(lfd);
	ck_assert_msg(wait_ready(nfd, 10000), "no READY=1; see %s", log);
	close(nfd);
	ck_assert(file_contains(log, "[socket activation]"));

	/* Clients reach it on systemd's socket. */
	setenv("SHMQ_SOCKET", d.sock, 1);
	setenv("SHMQ_NO_AUTOSTART", "1", 1);
	create_q("act", 4, 64, 0600, 0);
	c = open_q("act", SHMQ_CONSUMER);
	producer_start(&p, "act", 's', 3);
	chan_cmd(&p.ch, 'p', 'k');
	chan_cmd(&p.ch, 'd', 'k');
	producer_end(&p);
	get_str(c, "s000000");
	get_str(c, "s000001");
	get_str(c, "s000002");
	ck_assert_int_eq(daemon_pid_of(d.sock), d.pid);
	RC_EQ(shmq_detach(c), SHMQ_OK);

	/* The socket is systemd's: the daemon leaves it in place. */
	status = daemon_stop(&d, SIGTERM);
	ck_assert_msg(exited_with(status, 0), "SIGTERM: %s", describe(status));
	ck_assert_int_eq(stat(d.sock, &sb), 0);
	ck_assert(S_ISSOCK(sb.st_mode));
	ck_assert_int_eq(daemon_cleanup(&d), 0);
}
END_TEST

/* A passed socket of the wrong kind is refused at start, loudly. */
START_TEST(test_socket_activation_wrong_type)
{
	char notify[160], log[160];
	struct daemon d;
	int nfd, lfd, status;

	borrow_dir(&d);
	snprintf(notify, sizeof(notify), "%s/act.notify", d.dir);
	snprintf(log, sizeof(log), "%s/act.log", d.dir);
	nfd = notify_socket(notify);
	lfd = listening_socket(d.sock, SOCK_STREAM);
	d.pid = start_activated(lfd, notify, log);
	close(lfd);
	status = harness_wait(d.pid, 10000);
	d.pid = 0;
	ck_assert_msg(exited_with(status, 1), "shmqd: %s", describe(status));
	ck_assert_int_eq(wait_ready(nfd, 0), 0);
	close(nfd);
	ck_assert(file_contains(log, "SOCK_SEQPACKET"));
	ck_assert_int_eq(daemon_cleanup(&d), 0);
}
END_TEST

START_TEST(test_second_daemon_refused)
{
	char bin[PATH_MAX], log[160];
	struct daemon d;
	shmq_t *c;
	pid_t pid;
	int status;

	ck_assert_int_eq(daemon_start(&d, NULL), 0);
	create_q("first", 4, 64, 0600, 0);
	c = open_q("first", SHMQ_PRODUCER | SHMQ_CONSUMER);
	put_str(c, "x");

	snprintf(log, sizeof(log), "%s/second.log", d.dir);
	harness_path("daemon/shmqd", bin, sizeof(bin));
	pid = harness_fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		unsetenv("NOTIFY_SOCKET");
		execl(bin, "shmqd", "--foreground", "--socket", d.sock, "--log",
		      log, (char *)NULL);
		_exit(127);
	}
	status = harness_wait(pid, 10000);
	ck_assert_msg(exited_with(status, 1), "second shmqd: %s",
		      describe(status));
	ck_assert(file_contains(log, "another shmqd"));

	/* The first one still owns the socket and its queues. */
	ck_assert_int_eq(daemon_pid_of(d.sock), d.pid);
	ck_assert_uint_eq(stat_name("first").messages, 1);
	get_str(c, "x");
	RC_EQ(shmq_detach(c), SHMQ_OK);
	ck_assert_int_eq(daemon_cleanup(&d), 0);
}
END_TEST

START_TEST(test_stale_socket)
{
	struct shmq_stat st;
	struct stat sb;
	struct daemon d;
	shmq_t *c;
	pid_t old;
	int fd;

	ck_assert_int_eq(daemon_start(&d, NULL), 0);
	create_q("q", 4, 64, 0600, 0);
	c = open_q("q", SHMQ_PRODUCER | SHMQ_CONSUMER);
	put_str(c, "x");
	old = d.pid;
	ck_assert(daemon_stop(&d, SIGKILL) != -1);

	/* A killed daemon leaves its socket file, which nobody answers. */
	ck_assert_int_eq(stat(d.sock, &sb), 0);
	ck_assert(S_ISSOCK(sb.st_mode));
	fd = raw_connect(d.sock);
	ck_assert_int_lt(fd, 0);
	ck_assert_int_eq(errno, ECONNREFUSED);
	RC_EQ(shmq_stat_name("q", &st), SHMQ_ENODAEMON);

	/* The next daemon replaces it. */
	ck_assert_int_eq(daemon_restart(&d), 0);
	ck_assert_int_ne(d.pid, old);
	ck_assert_int_eq(daemon_pid_of(d.sock), d.pid);
	ck_assert_uint_eq(stat_name("q").messages, 1);
	get_str(c, "x");
	RC_EQ(shmq_detach(c), SHMQ_OK);
	ck_assert_int_eq(daemon_cleanup(&d), 0);
}
END_TEST

/* ======================================================================= */
/* 9. Autostart, 10. no daemon                                              */

static void enable_autostart(const struct daemon *d)
{
	static char bin[PATH_MAX];

	harness_path("daemon/shmqd", bin, sizeof(bin));
	ck_assert_int_eq(access(bin, X_OK), 0);
	setenv("SHMQ_SOCKET", d->sock, 1);
	setenv("SHMQ_DAEMON", bin, 1);
	unsetenv("SHMQ_NO_AUTOSTART");
}

START_TEST(test_autostart)
{
	char log[200];
	struct daemon d;
	shmq_t *p, *c;
	pid_t daemon, holder = -1, pid;
	int rc;

	borrow_dir(&d);
	enable_autostart(&d);

	rc = shmq_create("auto", NULL, 0);
	/* Whatever happened, a daemon that started must not outlive us. */
	daemon = sole_daemon(&d);
	RC_EQ(rc, SHMQ_OK);
	ck_assert_int_eq(lock_holders(d.sock, &holder), 1);
	ck_assert_int_eq(holder, daemon);
	ck_assert(is_shmqd(daemon));
	ck_assert_int_eq(daemon_pid_of(d.sock), daemon);

	/* It serves, this process and others, without a second start. */
	p = open_q("auto", SHMQ_PRODUCER);
	c = open_q("auto", SHMQ_CONSUMER);
	put_str(p, "hi");
	get_str(c, "hi");
	pid = harness_fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		shmq_t *q;
		CHILD_RC(shmq_open("auto", SHMQ_PRODUCER, &q), SHMQ_OK);
		CHILD_RC(shmq_put(q, "child", 5, 5000), SHMQ_OK);
		CHILD_RC(shmq_detach(q), SHMQ_OK);
		_exit(0);
	}
	CHILD_OK(pid);
	get_str(c, "child");
	ck_assert_int_eq(lock_holders(d.sock, NULL), 1);
	ck_assert_int_eq(daemon_pid_of(d.sock), daemon);
	RC_EQ(shmq_detach(p), SHMQ_OK);
	RC_EQ(shmq_detach(c), SHMQ_OK);

	/* In the background it logs next to its socket. */
	snprintf(log, sizeof(log), "%s.log", d.sock);
	ck_assert(file_contains(log, "listening on"));
	ck_assert_msg(stop_foreign(daemon), "autostarted shmqd ignored "
		      "SIGTERM");
	ck_assert_int_eq(daemon_cleanup(&d), 0);
}
END_TEST

START_TEST(test_autostart_race)
{
	enum { NR = 3 };
	struct daemon d;
	pid_t kids[NR], seen[NR], daemon, holder = -1;
	int gate[2], out[2], status[NR];

	borrow_dir(&d);
	enable_autostart(&d);
	ck_assert_int_eq(pipe2(gate, O_CLOEXEC), 0);
	ck_assert_int_eq(pipe2(out, O_CLOEXEC), 0);
	for (int i = 0; i < NR; i++) {
		kids[i] = harness_fork();
		ck_assert_int_ge(kids[i], 0);
		if (kids[i] == 0) {
			char b;
			pid_t who;

			close(gate[1]);
			close(out[0]);
			/* All start together when the gate closes. */
			CHILD_CHECK(read(gate[0], &b, 1) == 0);
			CHILD_RC(shmq_create("race", NULL, SHMQ_EXIST_OK),
				 SHMQ_OK);
			who = daemon_pid_of(d.sock);
			CHILD_CHECK(write(out[1], &who, sizeof(who)) ==
				    (ssize_t)sizeof(who));
			_exit(0);
		}
	}
	close(gate[0]);
	close(out[1]);
	close(gate[1]);
	for (int i = 0; i < NR; i++)
		status[i] = harness_wait(kids[i], 20000);
	/* Whatever happened, no daemon started here may outlive us; in
	 * the end exactly one is left, holding the lock. */
	daemon = sole_daemon(&d);
	for (int i = 0; i < NR; i++)
		ck_assert_msg(exited_with(status[i], 0), "racer %d: %s", i,
			      describe(status[i]));
	ck_assert_int_eq(lock_holders(d.sock, &holder), 1);
	ck_assert_int_eq(holder, daemon);
	for (int i = 0; i < NR; i++)
		ck_assert_int_eq(read(out[0], &seen[i], sizeof(seen[i])),
				 (ssize_t)sizeof(seen[i]));
	close(out[0]);
	/* Every racer was served by the same, single daemon. */
	for (int i = 0; i < NR; i++)
		ck_assert_int_eq(seen[i], daemon);
	ck_assert(is_shmqd(daemon));
	ck_assert_uint_eq(stat_name("race").capacity, SHMQ_DEFAULT_CAPACITY);
	ck_assert(stop_foreign(daemon));
	ck_assert_int_eq(daemon_cleanup(&d), 0);
}
END_TEST

START_TEST(test_no_daemon)
{
	struct shmq_stat st, *list;
	struct sockaddr_un un = { .sun_family = AF_UNIX };
	char none[100], dead[100];
	struct daemon d;
	shmq_t *q;
	size_t n;
	int fd;

	borrow_dir(&d);
	snprintf(none, sizeof(none), "%s/none.sock", d.dir);
	setenv("SHMQ_SOCKET", none, 1);
	setenv("SHMQ_NO_AUTOSTART", "1", 1);
	setenv("SHMQ_DAEMON", "/nonexistent/shmqd", 1);

	RC_EQ(shmq_create("q", NULL, 0), SHMQ_ENODAEMON);
	ck_assert_str_eq(shmq_error_detail(), "");
	q = (shmq_t *)&q;               /* poisoned: a refusal must clear it */
	RC_EQ(shmq_open("q", SHMQ_CONSUMER, &q), SHMQ_ENODAEMON);
	ck_assert_ptr_null(q);
	RC_EQ(shmq_stat_name("q", &st), SHMQ_ENODAEMON);
	RC_EQ(shmq_close_name("q", SHMQ_CLOSE_DRAIN, NULL), SHMQ_ENODAEMON);
	RC_EQ(shmq_delete("q"), SHMQ_ENODAEMON);
	RC_EQ(shmq_list(&list, &n), SHMQ_ENODAEMON);
	/* Nothing was started in our name. */
	ck_assert_int_ne(access(none, F_OK), 0);
	ck_assert_int_eq(lock_holders(none, NULL), 0);

	/* A socket file nobody listens on: the same answer. */
	snprintf(dead, sizeof(dead), "%s/dead.sock", d.dir);
	fd = socket(AF_UNIX, SOCK_SEQPACKET, 0);
	ck_assert_int_ge(fd, 0);
	snprintf(un.sun_path, sizeof(un.sun_path), "%s", dead);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&un, sizeof(un)), 0);
	close(fd);
	setenv("SHMQ_SOCKET", dead, 1);
	RC_EQ(shmq_create("q", NULL, 0), SHMQ_ENODAEMON);
	ck_assert_int_eq(lock_holders(dead, NULL), 0);
	ck_assert_int_eq(daemon_cleanup(&d), 0);
}
END_TEST

/* ======================================================================= */

static Suite *daemon_suite(void)
{
	Suite *s = suite_create("shmqd");
	TCase *tc;

	tc = tcase_create("api");
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_create);
	tcase_add_test(tc, test_names);
	tcase_add_test(tc, test_bad_attrs);
	tcase_add_test(tc, test_roles_and_io);
	tcase_add_test(tc, test_stat_counts);
	tcase_add_test(tc, test_list);
	tcase_add_test(tc, test_delete_open);
	tcase_add_test(tc, test_close);
	suite_add_tcase(s, tc);

	tc = tcase_create("producers");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_auto_close);
	tcase_add_test(tc, test_producer_killed_streaming);
	tcase_add_test(tc, test_producer_killed_blocked);
	tcase_add_test(tc, test_producer_killed_idle);
	tcase_add_test(tc, test_consumer_killed_blocked);
	suite_add_tcase(s, tc);

	tc = tcase_create("restart");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_restart_kill9);
	tcase_add_test(tc, test_detach_while_down);
	tcase_add_test(tc, test_restart_sigterm);
	suite_add_tcase(s, tc);

	tc = tcase_create("permissions");
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_permissions);
	suite_add_tcase(s, tc);

	tc = tcase_create("protocol");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_proto_framing);
	tcase_add_test(tc, test_proto_bodies);
	tcase_add_test(tc, test_proto_fds);
	tcase_add_test(tc, test_proto_flood);
	tcase_add_test(tc, test_proto_reset_keeps_fds);
	suite_add_tcase(s, tc);

	tc = tcase_create("limits");
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_limit_queues);
	tcase_add_test(tc, test_limit_clients);
	tcase_add_test(tc, test_limit_segment);
	tcase_add_test(tc, test_limit_attach);
	suite_add_tcase(s, tc);

	tc = tcase_create("systemd");
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_socket_activation);
	tcase_add_test(tc, test_socket_activation_wrong_type);
	tcase_add_test(tc, test_second_daemon_refused);
	tcase_add_test(tc, test_stale_socket);
	suite_add_tcase(s, tc);

	tc = tcase_create("autostart");
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_autostart);
	tcase_add_test(tc, test_autostart_race);
	tcase_add_test(tc, test_no_daemon);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr;
	int failed;

	harness_init("check_daemon");
	/* A child that died must fail a test, not kill the runner. */
	signal(SIGPIPE, SIG_IGN);
	sr = srunner_create(daemon_suite());
	/* Each test runs in its own process: its environment (SHMQ_SOCKET)
	 * and the library's one connection per process start fresh. */
	srunner_set_fork_status(sr, CK_FORK);
	srunner_run_all(sr, CK_ENV);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	harness_sweep();
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
