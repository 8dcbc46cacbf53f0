/*
 * check_autostart.c - the library starting a per-user shmqd, and what it
 * does when there is none.
 *
 * Owns autostart as a client sees it: the first call starts a daemon in
 * the background, which serves this process and others without a second
 * start and logs next to its socket; racing clients end up with exactly
 * one daemon, holding the lock, serving them all; and with autostart off,
 * or a socket nobody listens on, every call says SHMQ_ENODAEMON and
 * nothing is started.  Also the bound of every call to the daemon: one
 * that accepts and never answers, never reads, or never accepts is given
 * up on in shmq.h's time, however often signals come.  The daemons started here are not the test's
 * children: tests/lib/foreign.h finds and stops them.
 *
 * Rules every integration suite keeps (tests/lib/): it runs the real
 * built shmqd (harness.h) and real client processes on real shared
 * memory, nothing mocked; every test is bounded in time (Check's timeout,
 * and a timeout on every blocking call); no verdict rests on a sleep
 * (channels carry handshakes; WAIT_UNTIL polls, with a bound, what offers
 * none); and it leaves nothing behind (daemon_cleanup() in the test,
 * harness_sweep() after a test that died).  Children never call
 * ck_assert: they exit CHILD_FAIL, and the test's CHILD_OK fails.
 */
#define _GNU_SOURCE
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "control.h"
#include "lib/checks.h"
#include "lib/clock.h"
#include "lib/foreign.h"
#include "lib/harness.h"
#include "lib/queue.h"
#include "lib/rawconn.h"
#include "lib/runner.h"

/* ======================================================================= */
/* Autostart, and no daemon                                                */

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
	ck_assert(harness_is_shmqd(daemon));
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
	ck_assert(harness_is_shmqd(daemon));
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
	/* The detail says why: the socket, connect's error, autostart off. */
	expect_detail(none);
	expect_detail(strerror(ENOENT));
	expect_detail("autostart is off (SHMQ_NO_AUTOSTART)");
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
	expect_detail(dead);
	expect_detail(strerror(ECONNREFUSED));
	ck_assert_int_eq(lock_holders(dead, NULL), 0);

	/* Autostart of a binary that is not there: its exec error comes
	 * back from the child, and nothing is waited for. */
	unsetenv("SHMQ_NO_AUTOSTART");
	setenv("SHMQ_SOCKET", none, 1);
	RC_EQ(shmq_list(&list, &n), SHMQ_ENODAEMON);
	expect_detail("cannot start /nonexistent/shmqd (exec: ");
	expect_detail(strerror(ENOENT));
	ck_assert_int_ne(access(none, F_OK), 0);
	setenv("SHMQ_NO_AUTOSTART", "1", 1);
	ck_assert_int_eq(daemon_cleanup(&d), 0);
}
END_TEST

/* A detach only tells the daemon: with none running, it must not start
 * one (the segment already says the handle is gone). */
START_TEST(test_detach_does_not_start)
{
	struct daemon d;
	pid_t daemon;
	shmq_t *q;

	borrow_dir(&d);
	enable_autostart(&d);
	RC_EQ(shmq_create("dq", NULL, 0), SHMQ_OK);
	daemon = sole_daemon(&d);
	q = open_q("dq", SHMQ_CONSUMER);
	ck_assert(stop_foreign(daemon));
	ck_assert_int_eq(lock_holders(d.sock, NULL), 0);

	RC_EQ(shmq_detach(q), SHMQ_OK);
	ck_assert_int_eq(lock_holders(d.sock, NULL), 0);
	ck_assert_int_eq(daemons_on(d.sock, NULL, 0), 0);
	setenv("SHMQ_NO_AUTOSTART", "1", 1);
	ck_assert_int_eq(daemon_cleanup(&d), 0);
}
END_TEST

/* A consumer of an acked queue tries again, now and then, to open a
 * dead-letter queue it could not: that must not start a daemon either,
 * whatever the call (one that may block, a nack, one that may not). */
START_TEST(test_dead_letter_retry_does_not_start)
{
	struct shmq_attr a;
	struct shmq_msg m;
	struct daemon d;
	char buf[64];
	size_t len;
	pid_t daemon;
	shmq_t *q;

	borrow_dir(&d);
	enable_autostart(&d);
	RC_EQ(shmq_create("dd", NULL, 0), SHMQ_OK);
	daemon = sole_daemon(&d);
	shmq_attr_init(&a);
	a.flags = SHMQ_ACKED;
	a.max_msg = 64;
	a.dead_letter = "dd";
	RC_EQ(shmq_create("w", &a, 0), SHMQ_OK);
	RC_EQ(shmq_delete("dd"), SHMQ_OK);
	q = open_q("w", SHMQ_PRODUCER | SHMQ_CONSUMER);
	put_str(q, "m0");
	put_str(q, "m1");
	RC_EQ(shmq_lease(q, buf, sizeof(buf), &m, 5000), SHMQ_OK);
	RC_EQ(shmq_nack(q, &m, SHMQ_NACK_DEAD), SHMQ_OK);   /* it waits */
	ck_assert(stop_foreign(daemon));
	ck_assert_int_eq(lock_holders(d.sock, NULL), 0);

	/* Past the retry period, every kind of call. */
	long until = now_ms() + 1500;
	while (now_ms() < until) {
		int rc = shmq_get(q, buf, sizeof(buf), &len, SHMQ_NOWAIT);
		ck_assert(rc == SHMQ_OK || rc == SHMQ_EAGAIN);
		rc = shmq_lease(q, buf, sizeof(buf), &m, 10);
		ck_assert(rc == SHMQ_OK || rc == SHMQ_ETIMEDOUT);
		if (rc == SHMQ_OK)
			RC_EQ(shmq_nack(q, &m, SHMQ_NACK_DEAD), SHMQ_OK);
		sleep_ms(20);
	}
	ck_assert_int_eq(lock_holders(d.sock, NULL), 0);
	ck_assert_int_eq(daemons_on(d.sock, NULL, 0), 0);
	ck_assert_uint_eq(stat_q(q).returned, 1);       /* m0, waiting */
	RC_EQ(shmq_detach(q), SHMQ_OK);
	ck_assert_int_eq(daemons_on(d.sock, NULL, 0), 0);
	setenv("SHMQ_NO_AUTOSTART", "1", 1);
	ck_assert_int_eq(daemon_cleanup(&d), 0);
}
END_TEST

static int serving(const char *sock)
{
	int fd = raw_connect(sock), ok;

	if (fd < 0)
		return 0;
	ok = raw_hello(fd, NULL) == SHMQ_OK;
	close(fd);
	return ok;
}

/* The per-user default socket may sit in a directory another user made
 * first: a daemon answering there as somebody else is refused. */
START_TEST(test_foreign_user_daemon)
{
	char bin[PATH_MAX], dir[PATH_MAX], sub[PATH_MAX + 8],
		sock[PATH_MAX + 24];
	struct shmq_stat *list;
	struct daemon d;
	size_t n;
	pid_t pid;

	if (geteuid() != 0)
		return;         /* needs to run a daemon as another uid */
	borrow_dir(&d);
	harness_path("daemon/shmqd", bin, sizeof(bin));
	snprintf(dir, sizeof(dir), "%s/xdg", d.dir);
	snprintf(sub, sizeof(sub), "%s/shmq", dir);
	snprintf(sock, sizeof(sock), "%s/shmqd.sock", sub);
	/* uid 65534 must reach its directory through ours (0700). */
	snprintf(sub, sizeof(sub), "%s", d.dir);
	ck_assert_ptr_nonnull(strrchr(sub, '/'));
	*strrchr(sub, '/') = '\0';
	ck_assert_int_eq(chmod(sub, 0711), 0);
	ck_assert_int_eq(chmod(d.dir, 0711), 0);
	snprintf(sub, sizeof(sub), "%s/shmq", dir);
	ck_assert_int_eq(mkdir(dir, 0711), 0);
	ck_assert_int_eq(mkdir(sub, 0700), 0);
	ck_assert_int_eq(chown(sub, 65534, 65534), 0);

	pid = harness_fork();
	if (pid == 0) {
		if (setgid(65534) < 0 || setuid(65534) < 0)
			_exit(CHILD_FAIL);
		execl(bin, "shmqd", "--foreground", "--socket", sock, "--log",
		      "/dev/null", (char *)NULL);
		_exit(127);
	}
	ck_assert_int_gt(pid, 0);
	/* Serving (its HELLO answered) means its event loop, and with it
	 * its SIGTERM handler, runs: the socket file alone comes earlier. */
	ck_assert(WAIT_UNTIL(serving(sock), 10000));

	unsetenv("SHMQ_SOCKET");
	setenv("XDG_RUNTIME_DIR", dir, 1);
	setenv("SHMQ_NO_AUTOSTART", "1", 1);
	RC_EQ(shmq_list(&list, &n), SHMQ_EACCES);
	expect_detail("runs as uid 65534");
	expect_detail(sock);

	kill(pid, SIGTERM);
	ck_assert(exited_with(harness_wait(pid, 10000), 0));
	unsetenv("XDG_RUNTIME_DIR");
	ck_assert_int_eq(daemon_cleanup(&d), 0);
}
END_TEST

/* shmqd, and the library before it autostarts one, refuse a socket
 * directory that another user owns or that others may write in without
 * the sticky bit: someone else could put a socket of theirs in its
 * place.  A sticky one (as /tmp) and one of our own are fine. */
struct sock_dir {
	mode_t mode;
	uid_t owner;            /* (uid_t)-1: ours */
	int refused;
};

static const struct sock_dir sock_dirs[] = {
	{ 0700, (uid_t)-1, 0 },
	{ 0755, (uid_t)-1, 0 },
	{ 01777, (uid_t)-1, 0 },
	{ 0777, (uid_t)-1, 1 },
	{ 0720, (uid_t)-1, 1 },
	{ 0702, (uid_t)-1, 1 },
	{ 0700, 65534, 1 },
};

START_TEST(test_socket_dir_refused)
{
	const struct sock_dir *sd = &sock_dirs[_i];
	char bin[PATH_MAX], dir[PATH_MAX], sock[PATH_MAX + 16],
		log[PATH_MAX + 16];
	struct shmq_stat *list;
	struct daemon d;
	size_t n;
	pid_t pid;

	if (sd->owner != (uid_t)-1 && geteuid() != 0)
		return;         /* chown needs root */
	borrow_dir(&d);
	harness_path("daemon/shmqd", bin, sizeof(bin));
	snprintf(dir, sizeof(dir), "%s/sub", d.dir);
	snprintf(sock, sizeof(sock), "%s/s.sock", dir);
	snprintf(log, sizeof(log), "%s/shmqd.log", d.dir);
	ck_assert_int_eq(mkdir(dir, 0700), 0);
	ck_assert_int_eq(chmod(dir, sd->mode), 0);
	if (sd->owner != (uid_t)-1)
		ck_assert_int_eq(chown(dir, sd->owner, sd->owner), 0);

	pid = harness_fork();
	if (pid == 0) {
		/* A refusal comes before any --log is opened: stderr. */
		int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		if (fd < 0 || dup2(fd, 2) < 0)
			_exit(CHILD_FAIL);
		execl(bin, "shmqd", "--foreground", "--socket", sock,
		      (char *)NULL);
		_exit(127);
	}
	ck_assert_int_gt(pid, 0);
	if (sd->refused) {
		int st = harness_wait(pid, 10000);
		ck_assert_msg(exited_with(st, 1), "shmqd: %s", describe(st));
		ck_assert(file_contains(log, "refusing the directory of"));
		ck_assert_int_ne(access(sock, F_OK), 0);
	} else {
		ck_assert(WAIT_UNTIL(serving(sock), 10000));
		kill(pid, SIGTERM);
		ck_assert(exited_with(harness_wait(pid, 10000), 0));
	}

	/* The library's autostart says the same before starting one. */
	if (sd->refused) {
		setenv("SHMQ_SOCKET", sock, 1);
		setenv("SHMQ_DAEMON", bin, 1);
		unsetenv("SHMQ_NO_AUTOSTART");
		RC_EQ(shmq_list(&list, &n), SHMQ_ENODAEMON);
		expect_detail("another user owns it or may write in it");
		ck_assert_int_eq(daemons_on(sock, NULL, 0), 0);
		setenv("SHMQ_NO_AUTOSTART", "1", 1);
	}
	ck_assert_int_eq(daemon_cleanup(&d), 0);
}
END_TEST

/* ======================================================================= */
/* Bounds: a call to the daemon returns within shmq.h's bound, whatever   */
/* the daemon does and however often signals come                        */

/* shmq.h, "Calls to the daemon": what a call may take in all. */
#define CALL_BOUND_MS 10000

static volatile sig_atomic_t ticks;

static void on_tick(int sig)
{
	(void)sig;
	ticks++;
}

/* Interrupts this process every 300 ms for the rest of its life, with a
 * handler installed with SA_RESTART or without. */
static void tick(int restart)
{
	struct sigaction sa = { .sa_handler = on_tick };
	struct itimerval it = { { 0, 300000 }, { 0, 300000 } };

	sa.sa_flags = restart ? SA_RESTART : 0;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGALRM, &sa, NULL);
	setitimer(ITIMER_REAL, &it, NULL);
}

/* A socket listening at `path` that nobody accepts on or reads from. */
static int mute_listener(const char *path, int backlog)
{
	int fd = listen_at(path, backlog);

	ck_assert_msg(fd >= 0, "listen at %s: %s", path, strerror(errno));
	return fd;
}

/* Fills the listen backlog of `path`: a connect(2) to it now waits. */
static void fill_backlog(const char *path)
{
	struct sockaddr_un un = { .sun_family = AF_UNIX };
	int n = 0;

	snprintf(un.sun_path, sizeof(un.sun_path), "%s", path);
	for (;;) {
		int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC |
				SOCK_NONBLOCK, 0);
		ck_assert_int_ge(fd, 0);
		if (connect(fd, (struct sockaddr *)&un, sizeof(un)) < 0) {
			ck_assert_int_eq(errno, EAGAIN);
			close(fd);
			break;
		}
		ck_assert_int_lt(++n, 1000);    /* kept open: they fill it */
	}
}

/* A daemon that says HELLO back, then never reads again: its socket's
 * queue fills, and a send(2) to it waits. */
static pid_t deaf_daemon(int lfd)
{
	pid_t pid = harness_fork();

	ck_assert_int_ge(pid, 0);
	if (pid > 0)
		return pid;
	CHILD_CHECK(fake_accept(lfd) >= 0);
	for (;;)
		pause();
}

/* In a child, under a signal every 300 ms: shmq_list() on `sock` says
 * SHMQ_ENODAEMON after the bound, neither sooner (a signal cut it short)
 * nor much later (a signal started a wait afresh, or a wait had none). */
static pid_t list_bounded(const char *sock, int restart, const char *why)
{
	pid_t pid = harness_fork();
	struct shmq_stat *list;
	size_t n;
	long t0, ms;

	ck_assert_int_ge(pid, 0);
	if (pid > 0)
		return pid;
	setenv("SHMQ_SOCKET", sock, 1);
	tick(restart);
	t0 = now_ms();
	CHILD_RC(shmq_list(&list, &n), SHMQ_ENODAEMON);
	ms = now_ms() - t0;
	CHILD_CHECK(ticks > 10);
	if (ms < CALL_BOUND_MS - 500 || ms > CALL_BOUND_MS + 3000) {
		fprintf(stderr, "shmq_list took %ld ms\n", ms);
		_exit(CHILD_FAIL);
	}
	CHILD_CHECK(strstr(shmq_error_detail(), why) != NULL);
	_exit(0);
}

/* In a child: detaches (requests without a reply) to a daemon that never
 * reads them, until one cannot be sent within the bound. */
static pid_t detach_bounded(const char *sock)
{
	pid_t pid = harness_fork();
	struct shmq_wire_detach req = { .queue_id = 1 };
	struct shmq_wire_status rep;
	size_t len;
	long t0 = 0, ms;
	int rc = SHMQ_OK, sent = 0;

	ck_assert_int_ge(pid, 0);
	if (pid > 0)
		return pid;
	setenv("SHMQ_SOCKET", sock, 1);
	tick(1);
	while (rc == SHMQ_OK && sent < 1000000) {
		t0 = now_ms();
		rc = control_call(SHMQ_MSG_DETACH | SHMQ_MSG_NOREPLY, &req,
				  sizeof(req), &rep, sizeof(rep), &len, NULL);
		sent += rc == SHMQ_OK;
	}
	ms = now_ms() - t0;
	CHILD_RC(rc, SHMQ_ENODAEMON);
	CHILD_CHECK(sent > 0);
	if (ms < CALL_BOUND_MS - 500 || ms > CALL_BOUND_MS + 3000) {
		fprintf(stderr, "detach %d took %ld ms\n", sent, ms);
		_exit(CHILD_FAIL);
	}
	/* control_call() here is the test library's copy: so is its detail. */
	CHILD_CHECK(strstr(control_detail(), "send") != NULL);
	_exit(0);
}

/* Every way a daemon can keep a call waiting: it accepts and never
 * answers, its listen backlog is full, it never reads.  Each runs in
 * its own child, at the same time: the bound is the test's length. */
START_TEST(test_call_bounded)
{
	char mute[100], full[100], deaf[100];
	pid_t kids[5], fake;
	struct daemon d;
	int st;

	borrow_dir(&d);
	setenv("SHMQ_NO_AUTOSTART", "1", 1);
	snprintf(mute, sizeof(mute), "%s/mute.sock", d.dir);
	snprintf(full, sizeof(full), "%s/full.sock", d.dir);
	snprintf(deaf, sizeof(deaf), "%s/deaf.sock", d.dir);
	mute_listener(mute, 16);
	mute_listener(full, 0);
	fill_backlog(full);
	fake = deaf_daemon(mute_listener(deaf, 16));

	kids[0] = list_bounded(mute, 1, "no reply");
	kids[1] = list_bounded(mute, 0, "no reply");
	kids[2] = list_bounded(full, 1, "connect");
	kids[3] = list_bounded(full, 0, "connect");
	kids[4] = detach_bounded(deaf);
	for (int i = 0; i < 5; i++) {
		st = harness_wait(kids[i], CALL_BOUND_MS + 10000);
		ck_assert_msg(exited_with(st, 0), "child %d: %s", i,
			      describe(st));
	}
	kill(fake, SIGKILL);
	harness_wait(fake, 5000);
	ck_assert_int_eq(daemon_cleanup(&d), 0);
}
END_TEST

/* A shell script at `path` that runs `body`: a daemon binary that
 * misbehaves. */
static void script(const char *path, const char *body)
{
	FILE *f = fopen(path, "w");

	ck_assert_ptr_nonnull(f);
	fprintf(f, "#!/bin/sh\n%s\n", body);
	ck_assert_int_eq(fclose(f), 0);
	ck_assert_int_eq(chmod(path, 0755), 0);
}

/* In a child, with SIGCHLD as the caller's program may have it: the
 * first call with autostart of `bin` on socket `sock` returns `want`
 * within `min_ms`..`max_ms`, saying `why`; and leaves no child behind,
 * not even a zombie. */
static pid_t start_bounded(const char *sock, const char *bin, int ignore,
			   int want, long min_ms, long max_ms,
			   const char *why)
{
	pid_t pid = harness_fork();
	struct shmq_stat *list;
	size_t n;
	long t0, ms;

	ck_assert_int_ge(pid, 0);
	if (pid > 0)
		return pid;
	setenv("SHMQ_SOCKET", sock, 1);
	setenv("SHMQ_DAEMON", bin, 1);
	unsetenv("SHMQ_NO_AUTOSTART");
	if (ignore)
		signal(SIGCHLD, SIG_IGN);
	t0 = now_ms();
	CHILD_RC(shmq_list(&list, &n), want);
	ms = now_ms() - t0;
	if (ms < min_ms || ms > max_ms || !strstr(shmq_error_detail(), why)) {
		fprintf(stderr, "took %ld ms, detail: %s\n", ms,
			shmq_error_detail());
		_exit(CHILD_FAIL);
	}
	if (want == SHMQ_OK)
		free(list);
	/* A started shmqd is its own process group's, not our child. */
	CHILD_CHECK(waitpid(-1, NULL, WNOHANG) < 0 && errno == ECHILD);
	_exit(0);
}

/* Starting a daemon is bounded as a whole by the 5 s it adds to a call:
 * a binary that never listens is killed and reaped.  With SIGCHLD
 * ignored, the kernel reaps what autostart started, and the socket alone
 * says whether a daemon came up. */
START_TEST(test_autostart_bounded)
{
	char hang[120], fail[120], bin[PATH_MAX], sock[4][120];
	pid_t kids[4], daemon;
	struct daemon d;
	int st;

	borrow_dir(&d);
	harness_path("daemon/shmqd", bin, sizeof(bin));
	snprintf(hang, sizeof(hang), "%s/hang.sh", d.dir);
	snprintf(fail, sizeof(fail), "%s/fail.sh", d.dir);
	script(hang, "exec sleep 60");
	script(fail, "exit 3");
	for (int i = 0; i < 4; i++)
		snprintf(sock[i], sizeof(sock[i]), "%s/s%d/s.sock", d.dir, i);

	kids[0] = start_bounded(sock[0], hang, 0, SHMQ_ENODAEMON, 4500, 8000,
				"did not listen within 5 s");
	kids[1] = start_bounded(sock[1], hang, 1, SHMQ_ENODAEMON, 4500, 8000,
				"did not listen within 5 s");
	kids[2] = start_bounded(sock[2], fail, 1, SHMQ_ENODAEMON, 4500, 8000,
				"exit status is unknown");
	kids[3] = start_bounded(sock[3], bin, 1, SHMQ_OK, 0, 5000, "");
	for (int i = 0; i < 4; i++) {
		st = harness_wait(kids[i], 20000);
		ck_assert_msg(exited_with(st, 0), "child %d: %s", i,
			      describe(st));
	}
	/* The one that came up was served by a real daemon: stop it. */
	daemon = daemon_pid_of(sock[3]);
	ck_assert_int_gt(daemon, 0);
	harness_remember_pid(daemon);
	ck_assert(stop_foreign(daemon));
	setenv("SHMQ_NO_AUTOSTART", "1", 1);
	ck_assert_int_eq(daemon_cleanup(&d), 0);
}
END_TEST

/* ======================================================================= */

static Suite *autostart_suite(void)
{
	Suite *s = suite_create("autostart");
	TCase *tc;

	tc = tcase_create("autostart");
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_autostart);
	tcase_add_test(tc, test_autostart_race);
	tcase_add_test(tc, test_no_daemon);
	tcase_add_test(tc, test_detach_does_not_start);
	tcase_add_test(tc, test_dead_letter_retry_does_not_start);
	tcase_add_test(tc, test_foreign_user_daemon);
	tcase_add_loop_test(tc, test_socket_dir_refused, 0,
			    sizeof(sock_dirs) / sizeof(sock_dirs[0]));
	suite_add_tcase(s, tc);

	tc = tcase_create("bounds");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_call_bounded);
	tcase_add_test(tc, test_autostart_bounded);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return run_suite(autostart_suite(), "autostart");
}
