/*
 * check_poll.c - event loops: pollable descriptors (shmq_fd), the wait
 * that takes nothing (shmq_wait), and the example that uses them.
 *
 * Owns the contract of "Event loops" in shmq.h, checked with the real
 * shmqd and real processes: a descriptor starts readable, is armed by a
 * non-blocking call that finds nothing, becomes readable at the next
 * commit in its direction, stays readable (level) until a call returns
 * SHMQ_EAGAIN, and is closed by shmq_detach; close, auto-close and a
 * producer's death (both done by shmqd) wake every poller; a poller
 * killed while armed costs the others nothing; on an acked queue a lease
 * that times out or is nacked wakes the getter's descriptor; shmq_wait
 * takes nothing, even when it is cancelled; and pollers of every kind
 * (epoll level- and edge-triggered, libevent) with blocking consumers and
 * a million messages from bursty producers get every message exactly
 * once, none of them ever waiting 2 s for a wake-up, also while other
 * handles hold the queue's locks (zero copy, stalled) and on an acked
 * queue; a lock another handle holds never blocks a polling call nor
 * strands an edge-triggered loop; and shmq_fd refuses in a network
 * namespace other than shmqd's.
 *
 * Rules every integration suite keeps (tests/lib/): it runs the real
 * built shmqd (harness.h) and real client processes on real shared
 * memory, nothing mocked; every test is bounded in time (Check's timeout,
 * and a timeout on every blocking call and every poll); no verdict rests
 * on a sleep (channels carry handshakes; WAIT_UNTIL polls, with a bound,
 * what offers none); and it leaves nothing behind (daemon_cleanup() in
 * the test, harness_sweep() after a test that died).  Children never call
 * ck_assert: they exit CHILD_FAIL, and the test's CHILD_OK fails.
 */
#define _GNU_SOURCE
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <event2/event.h>

#include "lib/chan.h"
#include "lib/checks.h"
#include "lib/clock.h"
#include "lib/harness.h"
#include "lib/queue.h"
#include "lib/rnd.h"
#include "lib/runner.h"

/* A child that found a poller's descriptor silent this long while the
 * stream ran exits with this status. */
#define STALL_MS     2000
#define CHILD_STALL  75
#define POLL_MS      10000      /* a wake-up a test waits for */

/* Is fd readable right now? */
static int readable(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	int n;

	while ((n = poll(&p, 1, 0)) < 0 && errno == EINTR)
		;
	return n == 1;
}

/* Waits at most ms for fd to become readable: 1, or 0. */
static int readable_within(int fd, int ms)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	long until = now_ms() + ms;
	int n;

	do
		n = poll(&p, 1, (int)(until - now_ms() > 0 ? until - now_ms()
							   : 0));
	while (n < 0 && errno == EINTR);
	return n == 1;
}

static int get_nowait(shmq_t *q, char *buf, size_t size, size_t *len)
{
	return shmq_get(q, buf, size, len, SHMQ_NOWAIT);
}

/* ======================================================================= */
/* The descriptor                                                          */

START_TEST(test_fd_contract)
{
	struct daemon d;
	char buf[64];
	size_t len;
	int fd = 7, fd2, pfd;

	ck_assert_int_eq(daemon_start(&d, NULL), 0);
	create_q("fds", 2, 64, 0600, 0);
	shmq_t *c = open_q("fds", SHMQ_CONSUMER);
	shmq_t *p = open_q("fds", SHMQ_PRODUCER);

	RC_EQ(shmq_fd(c, SHMQ_POLL_PUT, &fd), SHMQ_EROLE);
	ck_assert_int_eq(fd, -1);
	RC_EQ(shmq_fd(p, SHMQ_POLL_GET, &fd), SHMQ_EROLE);
	RC_EQ(shmq_fd(c, 3, &fd), SHMQ_EINVAL);
	RC_EQ(shmq_fd(c, 0, &fd), SHMQ_EINVAL);
	RC_EQ(shmq_fd(c, SHMQ_POLL_GET, NULL), SHMQ_EINVAL);
	RC_EQ(shmq_fd(NULL, SHMQ_POLL_GET, &fd), SHMQ_EINVAL);

	RC_EQ(shmq_fd(c, SHMQ_POLL_GET, &fd), SHMQ_OK);
	RC_EQ(shmq_fd(c, SHMQ_POLL_GET, &fd2), SHMQ_OK);
	ck_assert_int_eq(fd, fd2);
	ck_assert_int_ne(fcntl(fd, F_GETFD) & FD_CLOEXEC, 0);
	/* New: readable, so that the loop's first wake-up arms it. */
	ck_assert(readable(fd));
	RC_EQ(get_nowait(c, buf, sizeof(buf), &len), SHMQ_EAGAIN);
	ck_assert(!readable(fd));
	put_str(p, "a");
	ck_assert(readable(fd));        /* the put sent before it returned */
	put_str(p, "b");
	/* Level: readable until a call returns SHMQ_EAGAIN. */
	get_str(c, "a");
	ck_assert(readable(fd));
	get_str(c, "b");
	ck_assert(readable(fd));
	RC_EQ(get_nowait(c, buf, sizeof(buf), &len), SHMQ_EAGAIN);
	ck_assert(!readable(fd));
	/* Blocking calls neither arm nor disarm. */
	RC_EQ(shmq_get(c, buf, sizeof(buf), &len, 20), SHMQ_ETIMEDOUT);
	ck_assert(!readable(fd));

	/* The put side: armed when full, readable when a get frees room. */
	RC_EQ(shmq_fd(p, SHMQ_POLL_PUT, &pfd), SHMQ_OK);
	ck_assert(readable(pfd));
	put_str(p, "c");
	put_str(p, "d");
	ck_assert(readable(pfd));
	RC_EQ(shmq_put(p, "e", 1, SHMQ_NOWAIT), SHMQ_EAGAIN);
	ck_assert(!readable(pfd));
	ck_assert(readable(fd));
	get_str(c, "c");
	ck_assert(readable(pfd));
	RC_EQ(shmq_put(p, "e", 1, SHMQ_NOWAIT), SHMQ_OK);
	RC_EQ(shmq_put(p, "f", 1, SHMQ_NOWAIT), SHMQ_EAGAIN);
	ck_assert(!readable(pfd));

	/* close makes both readable; the next get is the end of the stream
	 * once drained, the next put SHMQ_ECLOSED. */
	get_str(c, "d");
	get_str(c, "e");
	RC_EQ(get_nowait(c, buf, sizeof(buf), &len), SHMQ_EAGAIN);
	RC_EQ(shmq_put(p, "f", 1, SHMQ_NOWAIT), SHMQ_OK);
	RC_EQ(shmq_put(p, "g", 1, SHMQ_NOWAIT), SHMQ_OK);
	RC_EQ(shmq_put(p, "h", 1, SHMQ_NOWAIT), SHMQ_EAGAIN);
	(void)readable(fd);
	ck_assert(!readable(pfd));
	RC_EQ(shmq_close(p, SHMQ_CLOSE_DRAIN, NULL), SHMQ_OK);
	ck_assert(readable(pfd));
	RC_EQ(shmq_put(p, "h", 1, SHMQ_NOWAIT), SHMQ_ECLOSED);
	get_str(c, "f");
	get_str(c, "g");
	RC_EQ(get_nowait(c, buf, sizeof(buf), &len), SHMQ_EOS);

	/* Owned by the handle: closed by shmq_detach. */
	RC_EQ(shmq_detach(c), SHMQ_OK);
	ck_assert_int_eq(fcntl(fd, F_GETFD), -1);
	ck_assert_int_eq(errno, EBADF);
	RC_EQ(shmq_detach(p), SHMQ_OK);
	ck_assert_int_eq(fcntl(pfd, F_GETFD), -1);
	ck_assert_int_eq(daemon_cleanup(&d), 0);
}
END_TEST

/* A child that makes its descriptor for `dir`, arms it (says 'a'), waits
 * for it, then makes the call again until it does not return
 * SHMQ_EAGAIN, and exits with what it returned (shifted: 100 + status),
 * or CHILD_STALL if no wake-up came within POLL_MS. */
static pid_t poller_child(struct chan *ch, const char *queue, unsigned dir)
{
	chan_init(ch);
	pid_t pid = harness_fork();
	ck_assert_int_ge(pid, 0);
	if (pid > 0) {
		chan_parent(ch);
		chan_expect(ch, 'a');
		return pid;
	}
	chan_child(ch);
	shmq_t *q;
	char buf[64];
	size_t len;
	int fd, rc;
	CHILD_RC(shmq_open(queue, dir == SHMQ_POLL_GET ? SHMQ_CONSUMER
						       : SHMQ_PRODUCER, &q),
		 SHMQ_OK);
	CHILD_RC(shmq_fd(q, dir, &fd), SHMQ_OK);
	if (dir == SHMQ_POLL_GET)
		rc = get_nowait(q, buf, sizeof(buf), &len);
	else
		rc = shmq_put(q, "p", 1, SHMQ_NOWAIT);
	CHILD_RC(rc, SHMQ_EAGAIN);
	CHILD_CHECK(!readable(fd));
	child_say(ch, 'a');
	/* A wake-up may be spurious (a death elsewhere wakes everybody):
	 * then the call re-arms, and the child waits again. */
	while (rc == SHMQ_EAGAIN) {
		if (!readable_within(fd, POLL_MS))
			_exit(CHILD_STALL);
		if (dir == SHMQ_POLL_GET)
			rc = get_nowait(q, buf, sizeof(buf), &len);
		else
			rc = shmq_put(q, "p", 1, SHMQ_NOWAIT);
	}
	_exit(100 + rc);
}

static void expect_exit(pid_t pid, int code)
{
	int st = harness_wait(pid, 20000);
	ck_assert_msg(exited_with(st, code), "child %ld: %s, want exit %d",
		      (long)pid, describe(st), code);
}

/* shmqd closes an auto-close queue when its last producer detaches, and
 * marks the producer lost when it dies: both wake every poller (the
 * daemon sends those wake-ups, not a client). */
START_TEST(test_daemon_wakes_pollers)
{
	struct chan ch[2];
	struct daemon d;
	pid_t g[2];

	ck_assert_int_eq(daemon_start(&d, NULL), 0);
	create_q("auto", 4, 64, 0600, SHMQ_AUTO_CLOSE);
	shmq_t *p = open_q("auto", SHMQ_PRODUCER);
	for (int i = 0; i < 2; i++)
		g[i] = poller_child(&ch[i], "auto", SHMQ_POLL_GET);
	RC_EQ(shmq_detach(p), SHMQ_OK);
	for (int i = 0; i < 2; i++) {
		expect_exit(g[i], 100 + SHMQ_EOS);
		chan_done(&ch[i]);
	}

	/* A producer that dies: the daemon marks it lost and closes the
	 * queue, and the poller sees the end of the stream as such. */
	create_q("lost", 4, 64, 0600, SHMQ_AUTO_CLOSE);
	pid_t k = harness_fork();
	ck_assert_int_ge(k, 0);
	if (k == 0) {
		shmq_t *q;
		CHILD_RC(shmq_open("lost", SHMQ_PRODUCER, &q), SHMQ_OK);
		CHILD_RC(shmq_put(q, "x", 1, SHMQ_NOWAIT), SHMQ_OK);
		for (;;)
			pause();
	}
	EVENTUALLY(stat_name("lost").messages == 1);
	shmq_t *c = open_q("lost", SHMQ_CONSUMER);
	get_str(c, "x");
	g[0] = poller_child(&ch[0], "lost", SHMQ_POLL_GET);
	ck_assert_int_eq(kill(k, SIGKILL), 0);
	harness_wait(k, 5000);
	expect_exit(g[0], 100 + SHMQ_EOS_LOST);
	chan_done(&ch[0]);
	RC_EQ(shmq_detach(c), SHMQ_OK);
	ck_assert_int_eq(daemon_cleanup(&d), 0);
}
END_TEST

/* A poller killed while armed: its socket went with it.  The daemon
 * removes its entry; meanwhile and afterwards, puts and the other
 * pollers carry on. */
START_TEST(test_poller_killed_armed)
{
	struct chan ch[2];
	struct daemon d;

	ck_assert_int_eq(daemon_start(&d, NULL), 0);
	create_q("k", 8, 64, 0600, 0);
	shmq_t *p = open_q("k", SHMQ_PRODUCER);
	pid_t dead = poller_child(&ch[0], "k", SHMQ_POLL_GET);
	pid_t live = poller_child(&ch[1], "k", SHMQ_POLL_GET);
	ck_assert_int_eq(kill(dead, SIGKILL), 0);
	harness_wait(dead, 5000);
	put_str(p, "one");
	expect_exit(live, 100 + SHMQ_OK);
	EVENTUALLY(stat_name("k").consumers == 0);
	live = poller_child(&ch[0], "k", SHMQ_POLL_GET);
	put_str(p, "two");
	expect_exit(live, 100 + SHMQ_OK);
	ck_assert_uint_eq(stat_name("k").messages, 0);
	for (int i = 0; i < 2; i++)
		chan_done(&ch[i]);
	RC_EQ(shmq_detach(p), SHMQ_OK);
	ck_assert_int_eq(daemon_cleanup(&d), 0);
}
END_TEST

/* ======================================================================= */
/* A lock another handle holds                                             */

/* A child that opens `queue` with `flags`, holds its side's lock in a
 * zero-copy call (get: a view of the next message; put: a reservation
 * of "late"), says 'h', and on 'g' takes (commits) and detaches. */
static pid_t holder_child(struct chan *ch, const char *queue, unsigned flags)
{
	chan_init(ch);
	pid_t pid = harness_fork();
	ck_assert_int_ge(pid, 0);
	if (pid > 0) {
		chan_parent(ch);
		chan_expect(ch, 'h');
		return pid;
	}
	chan_child(ch);
	shmq_t *q;
	CHILD_RC(shmq_open(queue, flags, &q), SHMQ_OK);
	if (flags == SHMQ_CONSUMER) {
		const void *d;
		size_t len;
		CHILD_RC(shmq_get_view(q, &d, &len, 5000), SHMQ_OK);
		child_say(ch, 'h');
		CHILD_EQ(child_hear(ch), 'g');
		CHILD_RC(shmq_get_take(q), SHMQ_OK);
	} else {
		void *d;
		CHILD_RC(shmq_put_reserve(q, 4, &d, 5000), SHMQ_OK);
		memcpy(d, "late", 4);
		child_say(ch, 'h');
		CHILD_EQ(child_hear(ch), 'g');
		CHILD_RC(shmq_put_commit(q), SHMQ_OK);
	}
	CHILD_RC(shmq_detach(q), SHMQ_OK);
	_exit(0);
}

/* While the lock is held: every call returns SHMQ_EAGAIN at once (the
 * loop never waits for the holder), and the edge-triggered descriptor
 * fires again and again, neither never (a loop that would hang) nor at
 * once (a loop that would spin). */
static void expect_busy_rounds(shmq_t *q, unsigned dir, int ep)
{
	struct epoll_event ev;
	char buf[64];
	size_t len;

	long t0 = now_ms();
	for (int i = 0; i < 20; i++)
		RC_EQ(dir == SHMQ_POLL_GET ? get_nowait(q, buf, sizeof(buf), &len)
					   : shmq_put(q, "p", 1, SHMQ_NOWAIT),
		      SHMQ_EAGAIN);
	/* (Each call used to wait 10 ms for the holder: 200 ms.) */
	ck_assert_int_lt(now_ms() - t0, 100);
	t0 = now_ms();
	for (int i = 0; i < 30; i++) {
		ck_assert_msg(epoll_wait(ep, &ev, 1, 1000) == 1,
			      "no wake-up %d while the lock is held", i);
		RC_EQ(dir == SHMQ_POLL_GET ? get_nowait(q, buf, sizeof(buf), &len)
					   : shmq_put(q, "p", 1, SHMQ_NOWAIT),
		      SHMQ_EAGAIN);
	}
	ck_assert_int_ge(now_ms() - t0, 100);
}

static int epoll_of(int fd)
{
	struct epoll_event ev = { .events = EPOLLIN | EPOLLET };
	int ep = epoll_create1(EPOLL_CLOEXEC);

	ck_assert_int_ge(ep, 0);
	ck_assert_int_eq(epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev), 0);
	return ep;
}

START_TEST(test_lock_held)
{
	struct epoll_event ev;
	struct chan ch;
	struct daemon d;
	char buf[64];
	size_t len;
	int fd, rc;

	ck_assert_int_eq(daemon_start(&d, NULL), 0);
	create_q("lk", 4, 64, 0600, 0);
	shmq_t *p = open_q("lk", SHMQ_PRODUCER);
	shmq_t *c = open_q("lk", SHMQ_CONSUMER);
	put_str(p, "m0");
	put_str(p, "m1");
	put_str(p, "m2");

	/* The get side: another consumer views m0. */
	pid_t h = holder_child(&ch, "lk", SHMQ_CONSUMER);
	RC_EQ(shmq_fd(c, SHMQ_POLL_GET, &fd), SHMQ_OK);
	int ep = epoll_of(fd);
	ck_assert_int_eq(epoll_wait(ep, &ev, 1, 0), 1);   /* new: readable */
	expect_busy_rounds(c, SHMQ_POLL_GET, ep);
	chan_cmd(&ch, 'g', -1);
	CHILD_OK(h);
	chan_done(&ch);
	/* The next wake-up (a retry) takes the rest. */
	ck_assert_int_eq(epoll_wait(ep, &ev, 1, POLL_MS), 1);
	get_str(c, "m1");
	get_str(c, "m2");
	RC_EQ(get_nowait(c, buf, sizeof(buf), &len), SHMQ_EAGAIN);

	/* The put side: another producer reserved the last free slot. */
	put_str(p, "m3");
	put_str(p, "m4");
	put_str(p, "m5");
	h = holder_child(&ch, "lk", SHMQ_PRODUCER);
	int pfd;
	RC_EQ(shmq_fd(p, SHMQ_POLL_PUT, &pfd), SHMQ_OK);
	int pep = epoll_of(pfd);
	ck_assert_int_eq(epoll_wait(pep, &ev, 1, 0), 1);
	expect_busy_rounds(p, SHMQ_POLL_PUT, pep);
	chan_cmd(&ch, 'g', -1);
	CHILD_OK(h);
	chan_done(&ch);
	/* Full now: the retry arms it, a get frees a slot. */
	ck_assert_int_eq(epoll_wait(pep, &ev, 1, POLL_MS), 1);
	RC_EQ(shmq_put(p, "m6", 2, SHMQ_NOWAIT), SHMQ_EAGAIN);
	get_str(c, "m3");
	ck_assert_int_eq(epoll_wait(pep, &ev, 1, POLL_MS), 1);
	RC_EQ(shmq_put(p, "m6", 2, SHMQ_NOWAIT), SHMQ_OK);

	/* Close wakes the edge-triggered getter, which drains and ends. */
	while ((rc = get_nowait(c, buf, sizeof(buf), &len)) == SHMQ_OK)
		;
	RC_EQ(rc, SHMQ_EAGAIN);
	RC_EQ(shmq_close(p, SHMQ_CLOSE_DRAIN, NULL), SHMQ_OK);
	ck_assert_int_eq(epoll_wait(ep, &ev, 1, POLL_MS), 1);
	RC_EQ(get_nowait(c, buf, sizeof(buf), &len), SHMQ_EOS);
	close(ep);
	close(pep);
	RC_EQ(shmq_detach(c), SHMQ_OK);
	RC_EQ(shmq_detach(p), SHMQ_OK);
	ck_assert_int_eq(daemon_cleanup(&d), 0);
}
END_TEST

/* ======================================================================= */
/* Another network namespace                                               */

#define CHILD_NO_NETNS 76       /* could not make a network namespace */

/* Moves the calling process into a new network namespace (as root, or
 * through a user namespace that maps our own uid to itself): 0, or -1 if
 * this system allows neither. */
static int enter_new_netns(void)
{
	if (unshare(CLONE_NEWNET) == 0)
		return 0;
	uid_t uid = getuid();
	if (unshare(CLONE_NEWUSER | CLONE_NEWNET) != 0)
		return -1;
	char map[64];
	int n = snprintf(map, sizeof(map), "%u %u 1\n", (unsigned)uid,
			 (unsigned)uid);
	int fd = open("/proc/self/uid_map", O_WRONLY | O_CLOEXEC);
	int ok = fd >= 0 && write(fd, map, (size_t)n) == n;
	if (fd >= 0)
		close(fd);
	return ok ? 0 : -1;
}

/* A handle in another network namespace than shmqd's: its wake-ups (a
 * death, an auto-close) could never reach a descriptor there, so shmq_fd
 * refuses to make one, loudly (SHMQ_ESYS, errno EXDEV, a detail that says
 * why), instead of making one that would hang; the blocking calls and
 * shmq_wait of the same handle work. */
START_TEST(test_other_netns)
{
	struct chan ch;
	struct daemon d;

	ck_assert_int_eq(daemon_start(&d, NULL), 0);
	create_q("ns", 4, 64, 0600, 0);
	shmq_t *p = open_q("ns", SHMQ_PRODUCER);
	chan_init(&ch);
	pid_t k = harness_fork();
	ck_assert_int_ge(k, 0);
	if (k == 0) {
		shmq_t *q;
		char buf[64];
		size_t len;
		int fd;
		chan_child(&ch);
		if (enter_new_netns() != 0)
			_exit(CHILD_NO_NETNS);
		CHILD_RC(shmq_open("ns", SHMQ_CONSUMER, &q), SHMQ_OK);
		CHILD_RC(shmq_fd(q, SHMQ_POLL_GET, &fd), SHMQ_ESYS);
		CHILD_EQ(errno, EXDEV);
		CHILD_EQ(fd, -1);
		CHILD_CHECK(strstr(shmq_error_detail(), "network namespace"));
		child_say(&ch, 'r');
		CHILD_RC(shmq_wait(q, SHMQ_POLL_GET, 0, 10000), SHMQ_OK);
		CHILD_RC(shmq_get(q, buf, sizeof(buf), &len, 10000), SHMQ_OK);
		CHILD_RC(shmq_detach(q), SHMQ_OK);
		_exit(0);
	}
	chan_parent(&ch);
	int b = byte_read(ch.up[0], 15000);
	if (b < 0) {
		int st = harness_wait(k, 5000);
		if (exited_with(st, CHILD_NO_NETNS)) {
			fprintf(stderr, "check_poll: no network namespace "
					"here; test_other_netns not run\n");
			chan_done(&ch);
			RC_EQ(shmq_detach(p), SHMQ_OK);
			ck_assert_int_eq(daemon_cleanup(&d), 0);
			return;
		}
		ck_abort_msg("child: %s", describe(st));
	}
	ck_assert_int_eq(b, 'r');
	put_str(p, "across");
	CHILD_OK(k);
	chan_done(&ch);
	RC_EQ(shmq_detach(p), SHMQ_OK);
	ck_assert_int_eq(daemon_cleanup(&d), 0);
}
END_TEST

/* ======================================================================= */
/* shmq_wait                                                               */

START_TEST(test_wait)
{
	struct daemon d;
	char buf[64];
	size_t len;
	int pfd;

	ck_assert_int_eq(daemon_start(&d, NULL), 0);
	create_q("w", 2, 64, 0600, 0);
	shmq_t *c = open_q("w", SHMQ_CONSUMER);
	shmq_t *p = open_q("w", SHMQ_PRODUCER);

	RC_EQ(shmq_wait(NULL, SHMQ_POLL_GET, 0, 0), SHMQ_EINVAL);
	RC_EQ(shmq_wait(c, 0, 0, 0), SHMQ_EINVAL);
	RC_EQ(shmq_wait(c, SHMQ_POLL_PUT, 1, 0), SHMQ_EROLE);
	RC_EQ(shmq_wait(p, SHMQ_POLL_GET, 0, 0), SHMQ_EROLE);
	RC_EQ(shmq_wait(p, SHMQ_POLL_PUT, 65, 0), SHMQ_E2BIG);

	RC_EQ(shmq_wait(c, SHMQ_POLL_GET, 0, SHMQ_NOWAIT), SHMQ_EAGAIN);
	long t0 = now_ms();
	RC_EQ(shmq_wait(c, SHMQ_POLL_GET, 0, 30), SHMQ_ETIMEDOUT);
	ck_assert_int_ge(now_ms() - t0, 30);
	RC_EQ(shmq_wait(p, SHMQ_POLL_PUT, 64, SHMQ_NOWAIT), SHMQ_OK);
	put_str(p, "a");
	/* Ready, and it took nothing: twice, then the get has it. */
	RC_EQ(shmq_wait(c, SHMQ_POLL_GET, 0, SHMQ_FOREVER), SHMQ_OK);
	RC_EQ(shmq_wait(c, SHMQ_POLL_GET, 0, SHMQ_NOWAIT), SHMQ_OK);
	ck_assert_uint_eq(stat_q(c).messages, 1);
	put_str(p, "b");
	RC_EQ(shmq_wait(p, SHMQ_POLL_PUT, 1, 20), SHMQ_ETIMEDOUT);

	/* With SHMQ_NOWAIT it arms the handle's descriptor. */
	RC_EQ(shmq_fd(p, SHMQ_POLL_PUT, &pfd), SHMQ_OK);
	RC_EQ(shmq_wait(p, SHMQ_POLL_PUT, 1, SHMQ_NOWAIT), SHMQ_EAGAIN);
	ck_assert(!readable(pfd));
	get_str(c, "a");
	ck_assert(readable(pfd));
	RC_EQ(shmq_wait(p, SHMQ_POLL_PUT, 1, SHMQ_NOWAIT), SHMQ_OK);

	/* A waiter woken by a put in another process. */
	get_str(c, "b");
	pid_t w = harness_fork();
	ck_assert_int_ge(w, 0);
	if (w == 0) {
		shmq_t *q;
		CHILD_RC(shmq_open("w", SHMQ_PRODUCER, &q), SHMQ_OK);
		CHILD_RC(shmq_put(q, "c", 1, 5000), SHMQ_OK);
		CHILD_RC(shmq_detach(q), SHMQ_OK);
		_exit(0);
	}
	RC_EQ(shmq_wait(c, SHMQ_POLL_GET, 0, 5000), SHMQ_OK);
	CHILD_OK(w);
	ck_assert_uint_eq(stat_q(c).messages, 1);

	/* Closed: a get would not block (it drains, then ends), nor a put
	 * (it fails). */
	RC_EQ(shmq_close(p, SHMQ_CLOSE_DRAIN, NULL), SHMQ_OK);
	RC_EQ(shmq_wait(p, SHMQ_POLL_PUT, 1, SHMQ_FOREVER), SHMQ_OK);
	get_str(c, "c");
	RC_EQ(shmq_wait(c, SHMQ_POLL_GET, 0, SHMQ_FOREVER), SHMQ_OK);
	RC_EQ(shmq_get(c, buf, sizeof(buf), &len, SHMQ_NOWAIT), SHMQ_EOS);
	RC_EQ(shmq_detach(c), SHMQ_OK);
	RC_EQ(shmq_detach(p), SHMQ_OK);
	ck_assert_int_eq(daemon_cleanup(&d), 0);
}
END_TEST

/* A waiter cancelled at any moment has taken nothing: children waiting
 * (spinning, or asleep) are killed, the message stays queued.  A signal
 * handler makes it return SHMQ_EINTR. */
static void on_alarm(int sig)
{
	(void)sig;
}

START_TEST(test_wait_cancelled)
{
	struct chan ch;
	struct daemon d;

	ck_assert_int_eq(daemon_start(&d, NULL), 0);
	create_q("cw", 2, 64, 0600, 0);
	shmq_t *p = open_q("cw", SHMQ_PRODUCER);
	for (int i = 0; i < 4; i++) {
		chan_init(&ch);
		pid_t w = harness_fork();
		ck_assert_int_ge(w, 0);
		if (w == 0) {
			shmq_t *q;
			chan_child(&ch);
			CHILD_RC(shmq_open("cw", SHMQ_CONSUMER, &q), SHMQ_OK);
			child_say(&ch, 'r');
			for (;;)
				CHILD_RC(shmq_wait(q, SHMQ_POLL_GET, 0, 5000),
					 SHMQ_OK);
		}
		chan_parent(&ch);
		chan_expect(&ch, 'r');
		if (i % 2)
			put_str(p, "m");
		ck_assert_int_eq(kill(w, SIGKILL), 0);
		harness_wait(w, 5000);
		chan_done(&ch);
	}
	ck_assert_uint_eq(stat_name("cw").messages, 2);

	shmq_t *c = open_q("cw", SHMQ_CONSUMER);
	get_str(c, "m");
	get_str(c, "m");
	/* (Well inside its first sleep: a handler that runs while the call
	 * is between two sleeps does not interrupt it.) */
	struct sigaction sa = { .sa_handler = on_alarm };
	struct itimerval it = { .it_value = { 0, 200000 } };
	sigaction(SIGALRM, &sa, NULL);
	setitimer(ITIMER_REAL, &it, NULL);
	RC_EQ(shmq_wait(c, SHMQ_POLL_GET, 0, 10000), SHMQ_EINTR);
	RC_EQ(shmq_detach(c), SHMQ_OK);
	RC_EQ(shmq_detach(p), SHMQ_OK);
	ck_assert_int_eq(daemon_cleanup(&d), 0);
}
END_TEST

/* ======================================================================= */
/* Acked queues                                                            */

/* A getter polling an acked queue whose only message another handle
 * holds: the lease times out (nobody puts or acks), and the descriptor
 * fires; the lease is returned by the get that follows.  A nack wakes it
 * as well. */
START_TEST(test_acked_wakes)
{
	struct shmq_attr a = attr_of(4, 64, 0600, SHMQ_ACKED);
	struct daemon d;
	struct shmq_msg m, m2;
	char buf[64], buf2[64];
	int fd;

	a.lease_timeout_ms = 300;
	ck_assert_int_eq(daemon_start(&d, NULL), 0);
	RC_EQ(shmq_create("ack", &a, 0), SHMQ_OK);
	shmq_t *p = open_q("ack", SHMQ_PRODUCER);
	shmq_t *holder = open_q("ack", SHMQ_CONSUMER);
	shmq_t *poller = open_q("ack", SHMQ_CONSUMER);
	RC_EQ(shmq_fd(poller, SHMQ_POLL_GET, &fd), SHMQ_OK);
	put_str(p, "job");
	RC_EQ(shmq_lease(holder, buf, sizeof(buf), &m, SHMQ_NOWAIT), SHMQ_OK);
	RC_EQ(shmq_lease(poller, buf2, sizeof(buf2), &m2, SHMQ_NOWAIT),
	      SHMQ_EAGAIN);
	ck_assert(!readable(fd));
	long t0 = now_ms();
	ck_assert(readable_within(fd, POLL_MS));
	ck_assert_int_ge(now_ms() - t0, 200);
	RC_EQ(shmq_lease(poller, buf2, sizeof(buf2), &m2, SHMQ_NOWAIT),
	      SHMQ_OK);
	ck_assert_uint_eq(m2.deliveries, 2);
	RC_EQ(shmq_ack(holder, &m), SHMQ_ELEASE);

	/* Now the poller holds it; the holder polls, the poller nacks. */
	int hfd;
	RC_EQ(shmq_fd(holder, SHMQ_POLL_GET, &hfd), SHMQ_OK);
	RC_EQ(shmq_lease(holder, buf, sizeof(buf), &m, SHMQ_NOWAIT),
	      SHMQ_EAGAIN);
	ck_assert(!readable(hfd));
	RC_EQ(shmq_nack(poller, &m2, 0), SHMQ_OK);
	ck_assert(readable(hfd));
	RC_EQ(shmq_lease(holder, buf, sizeof(buf), &m, SHMQ_NOWAIT), SHMQ_OK);
	ck_assert_uint_eq(m.deliveries, 3);
	RC_EQ(shmq_ack(holder, &m), SHMQ_OK);

	/* Closed: the end of the stream. */
	RC_EQ(shmq_lease(poller, buf2, sizeof(buf2), &m2, SHMQ_NOWAIT),
	      SHMQ_EAGAIN);
	RC_EQ(shmq_close(p, SHMQ_CLOSE_DRAIN, NULL), SHMQ_OK);
	ck_assert(readable(fd));
	RC_EQ(shmq_lease(poller, buf2, sizeof(buf2), &m2, SHMQ_NOWAIT),
	      SHMQ_EOS);
	RC_EQ(shmq_detach(poller), SHMQ_OK);
	RC_EQ(shmq_detach(holder), SHMQ_OK);
	RC_EQ(shmq_detach(p), SHMQ_OK);
	ck_assert_int_eq(daemon_cleanup(&d), 0);
}
END_TEST

/* ======================================================================= */
/* Many pollers, many messages                                             */

/*
 * Producers put 8-byte messages (id, seq) in bursts of random length with
 * random pauses; two of them poll their put descriptor (edge- and
 * level-triggered) instead of blocking, and one puts by zero copy,
 * holding its reservation (so the producers' lock) for milliseconds
 * every 2048 messages and stalling with it for 300 ms every 65536.  Consumers of every kind take them: epoll
 * level-triggered taking one message per wake-up, epoll edge-triggered
 * taking until SHMQ_EAGAIN, libevent (level and EV_ET), two that block,
 * and a slow one: on a plain queue a zero-copy consumer that holds its
 * view (so the consumers' lock) as long as that producer holds its
 * reservation; on an acked queue one that leases and sometimes sits on
 * a lease past its timeout, so that it comes back to the others.  On an acked queue the pollers lease and ack, or get, and
 * now and then nack.  Every message is taken (settled) exactly once,
 * each producer's in order at each consumer of a plain queue, and no
 * poller's descriptor is ever silent for STALL_MS while the stream runs:
 * the producers never pause that long, every commit wakes an armed
 * poller, and a poller that finds the lock held is called back within
 * 32 ms.
 */
enum { NP = 4, PER = 250000, PER_ACKED = 100000, CAP = 64 };
enum { K_EPOLL_LT, K_EPOLL_ET, K_EVENT_LT, K_EVENT_ET, K_BLOCK, K_SLOW };
static const int kinds[] = { K_EPOLL_LT, K_EPOLL_ET, K_EVENT_LT, K_EVENT_ET,
			     K_BLOCK, K_BLOCK, K_SLOW };
#define NC ((int)(sizeof(kinds) / sizeof(kinds[0])))
#define ZC_PRODUCER 2           /* puts by zero copy */
#define LEASE_MS    200         /* the acked storm's lease timeout */

struct storm {
	const char *queue;
	int acked;
	uint32_t per;           /* messages per producer */
	uint8_t seen[NP][PER];
	uint64_t got[NC];
};

struct taker {
	struct storm *sh;
	int who;
	int64_t last[NP];
	shmq_t *q;
	struct event_base *base;
	struct event *ev, *dog;
	int rc;                 /* how the stream ended for it */
	int stalled;
};

static void take(struct taker *t, const char *m, size_t len)
{
	uint32_t id, seq;

	CHILD_EQ(len, 8);
	memcpy(&id, m, 4);
	memcpy(&seq, m + 4, 4);
	CHILD_CHECK(id < NP && seq < t->sh->per);
	/* (Returned messages come again out of order.) */
	CHILD_CHECK(t->sh->acked || (int64_t)seq > t->last[id]);
	t->last[id] = seq;
	__atomic_add_fetch(&t->sh->seen[id][seq], 1, __ATOMIC_RELAXED);
	t->sh->got[t->who]++;
}

/* One non-blocking take: a get, or on an acked queue for some takers a
 * lease and its ack, now and then a nack instead (the message comes back
 * for somebody). */
static int take_one(struct taker *t)
{
	char m[16];
	size_t len;
	struct shmq_msg msg;
	int rc;

	if (!t->sh->acked || t->who % 2 == 0) {
		rc = shmq_get(t->q, m, sizeof(m), &len, SHMQ_NOWAIT);
		if (rc == SHMQ_OK)
			take(t, m, len);
		return rc;
	}
	rc = shmq_lease(t->q, m, sizeof(m), &msg, SHMQ_NOWAIT);
	if (rc != SHMQ_OK)
		return rc;
	/* (A taker descheduled past the lease timeout finds its lease
	 * ended: SHMQ_ELEASE, and the message went back.) */
	if (rnd() % 512 == 0) {
		rc = shmq_nack(t->q, &msg, 0);
		CHILD_CHECK(rc == SHMQ_OK || rc == SHMQ_ELEASE);
		return SHMQ_OK;
	}
	rc = shmq_ack(t->q, &msg);
	CHILD_CHECK(rc == SHMQ_OK || rc == SHMQ_ELEASE);
	if (rc == SHMQ_OK)
		take(t, m, msg.len);
	return SHMQ_OK;
}

/* Takes until SHMQ_EAGAIN (armed) or the end; at most `max` messages
 * (then it returns SHMQ_OK, the descriptor still readable). */
static int take_some(struct taker *t, int max)
{
	int rc = SHMQ_OK;

	for (int i = 0; i < max; i++) {
		rc = take_one(t);
		if (rc != SHMQ_OK)
			break;
	}
	return rc;
}

static void epoll_taker(struct taker *t, int edge)
{
	struct epoll_event ev = { .events = EPOLLIN | (edge ? EPOLLET : 0) };
	int fd, ep = epoll_create1(EPOLL_CLOEXEC), rc;

	CHILD_RC(shmq_fd(t->q, SHMQ_POLL_GET, &fd), SHMQ_OK);
	CHILD_CHECK(ep >= 0 && epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) == 0);
	for (;;) {
		int n = epoll_wait(ep, &ev, 1, STALL_MS);
		if (n < 0 && errno == EINTR)
			continue;
		if (n == 0)
			_exit(CHILD_STALL);
		CHILD_CHECK(n == 1);
		/* Level: one message per wake-up, the descriptor stays
		 * readable; edge: all of them. */
		rc = take_some(t, edge ? INT32_MAX : 1);
		if (rc != SHMQ_OK && rc != SHMQ_EAGAIN)
			break;
	}
	t->rc = rc;
	close(ep);
}

static void on_event(evutil_socket_t fd, short what, void *arg)
{
	struct taker *t = arg;
	struct timeval dog = { STALL_MS / 1000, (STALL_MS % 1000) * 1000 };
	int rc = take_some(t, INT32_MAX);

	(void)fd;
	(void)what;
	event_add(t->dog, &dog);        /* restarts the watchdog */
	if (rc == SHMQ_EAGAIN)
		return;
	t->rc = rc;
	event_base_loopexit(t->base, NULL);
}

static void on_dog(evutil_socket_t fd, short what, void *arg)
{
	struct taker *t = arg;

	(void)fd;
	(void)what;
	t->stalled = 1;
	event_base_loopexit(t->base, NULL);
}

static void event_taker(struct taker *t, int edge)
{
	struct timeval dog = { STALL_MS / 1000, (STALL_MS % 1000) * 1000 };
	int fd;

	CHILD_RC(shmq_fd(t->q, SHMQ_POLL_GET, &fd), SHMQ_OK);
	t->base = event_base_new();
	CHILD_CHECK(t->base != NULL);
	t->ev = event_new(t->base, fd, EV_READ | EV_PERSIST | (edge ? EV_ET : 0),
			  on_event, t);
	t->dog = evtimer_new(t->base, on_dog, t);
	CHILD_CHECK(t->ev && t->dog && event_add(t->ev, NULL) == 0 &&
		    event_add(t->dog, &dog) == 0);
	event_base_dispatch(t->base);
	if (t->stalled)
		_exit(CHILD_STALL);
	event_free(t->ev);
	event_free(t->dog);
	event_base_free(t->base);
}

/* Holding a lock now and then, at the n-th message of a holder: up to
 * 10 ms every 2048 messages, and a stall of 300 ms every 65536. */
static void slow_hold(uint32_t n)
{
	if (n % 65536 == 16384)
		sleep_ms(300);
	else if (n % 2048 == 1024)
		sleep_us((long)(rnd() % 10000));
}

/* The slow consumer: blocking zero-copy gets (plain queue) or blocking
 * leases (acked), holding them now and then; on the acked queue a lease
 * held past LEASE_MS (every 4096 messages) comes back to the others, and
 * its ack is refused. */
static void slow_taker(struct taker *t)
{
	if (!t->sh->acked) {
		const void *d;
		size_t len;
		for (uint32_t n = 0; (t->rc = shmq_get_view(t->q, &d, &len,
							     60000)) == SHMQ_OK;
		     n++) {
			take(t, d, len);
			slow_hold(n);
			CHILD_RC(shmq_get_take(t->q), SHMQ_OK);
		}
		return;
	}
	char m[16];
	struct shmq_msg msg;
	for (uint32_t n = 0; (t->rc = shmq_lease(t->q, m, sizeof(m), &msg,
						 60000)) == SHMQ_OK; n++) {
		if (n % 4096 == 2048)
			sleep_ms(LEASE_MS + 100);
		int rc = shmq_ack(t->q, &msg);
		if (rc == SHMQ_OK)
			take(t, m, msg.len);
		else
			CHILD_RC(rc, SHMQ_ELEASE);
	}
}

static void consumer_main(struct storm *sh, int who, int kind)
{
	struct taker t = { .sh = sh, .who = who };
	char m[16];
	size_t len;

	for (int i = 0; i < NP; i++)
		t.last[i] = -1;
	CHILD_RC(shmq_open(sh->queue, SHMQ_CONSUMER, &t.q), SHMQ_OK);
	switch (kind) {
	case K_EPOLL_LT: epoll_taker(&t, 0); break;
	case K_EPOLL_ET: epoll_taker(&t, 1); break;
	case K_EVENT_LT: event_taker(&t, 0); break;
	case K_EVENT_ET: event_taker(&t, 1); break;
	case K_SLOW: slow_taker(&t); break;
	default:
		while ((t.rc = shmq_get(t.q, m, sizeof(m), &len, 60000)) ==
		       SHMQ_OK)
			take(&t, m, len);
	}
	CHILD_RC(t.rc, SHMQ_EOS);
	shmq_detach(t.q);
	_exit(0);
}

/* Producer `id`: polled (0: edge, 1: level), by zero copy (ZC_PRODUCER),
 * or blocking (the others). */
static void producer_main(const struct storm *sh, int id)
{
	struct epoll_event ev = { .events = EPOLLIN | (id == 0 ? EPOLLET : 0) };
	shmq_t *q;
	int fd, ep = -1, rc;

	CHILD_RC(shmq_open(sh->queue, SHMQ_PRODUCER, &q), SHMQ_OK);
	if (id < 2) {
		CHILD_RC(shmq_fd(q, SHMQ_POLL_PUT, &fd), SHMQ_OK);
		ep = epoll_create1(EPOLL_CLOEXEC);
		CHILD_CHECK(ep >= 0 &&
			    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) == 0);
	}
	for (uint32_t seq = 0; seq < sh->per;) {
		uint32_t burst = 1 + (uint32_t)(rnd() % 2000);
		for (uint32_t k = 0; k < burst && seq < sh->per; k++, seq++) {
			char m[8];
			memcpy(m, &(uint32_t){ (uint32_t)id }, 4);
			memcpy(m + 4, &seq, 4);
			if (id == ZC_PRODUCER) {
				void *d;
				CHILD_RC(shmq_put_reserve(q, 8, &d, 60000),
					 SHMQ_OK);
				memcpy(d, m, 8);
				slow_hold(seq);
				CHILD_RC(shmq_put_commit(q), SHMQ_OK);
				continue;
			}
			if (ep < 0) {
				CHILD_RC(shmq_put(q, m, 8, 60000), SHMQ_OK);
				continue;
			}
			while ((rc = shmq_put(q, m, 8, SHMQ_NOWAIT)) ==
			       SHMQ_EAGAIN) {
				int n = epoll_wait(ep, &ev, 1, STALL_MS);
				if (n == 0)
					_exit(CHILD_STALL);
				CHILD_CHECK(n == 1 || errno == EINTR);
			}
			CHILD_RC(rc, SHMQ_OK);
		}
		sleep_us((long)(rnd() % 2000));
	}
	shmq_detach(q);
	_exit(0);
}

static void storm_run(const char *queue, int acked, uint32_t per)
{
	struct storm *sh = mmap(NULL, sizeof(*sh), PROT_READ | PROT_WRITE,
				MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	pid_t prod[NP], cons[NC];
	struct daemon d;

	ck_assert_ptr_ne(sh, MAP_FAILED);
	sh->queue = queue;
	sh->acked = acked;
	sh->per = per;
	ck_assert_int_eq(daemon_start(&d, NULL), 0);
	struct shmq_attr a = attr_of(CAP, 16, 0600, acked ? SHMQ_ACKED : 0);
	a.lease_timeout_ms = acked ? LEASE_MS : 0;
	RC_EQ(shmq_create(queue, &a, 0), SHMQ_OK);
	for (int i = 0; i < NC; i++) {
		(void)rnd();
		cons[i] = harness_fork();
		ck_assert_int_ge(cons[i], 0);
		if (cons[i] == 0)
			consumer_main(sh, i, kinds[i]);
	}
	EVENTUALLY(stat_name(queue).consumers == NC);
	for (int i = 0; i < NP; i++) {
		(void)rnd();    /* each child draws its own sequence */
		prod[i] = harness_fork();
		ck_assert_int_ge(prod[i], 0);
		if (prod[i] == 0)
			producer_main(sh, i);
	}
	for (int i = 0; i < NP; i++) {
		int st = harness_wait(prod[i], 150000);
		ck_assert_msg(exited_with(st, 0), "producer %d: %s%s", i,
			      describe(st), exited_with(st, CHILD_STALL)
			      ? " (a stall)" : "");
	}
	RC_EQ(shmq_close_name(queue, SHMQ_CLOSE_DRAIN, NULL), SHMQ_OK);
	uint64_t total = 0;
	for (int i = 0; i < NC; i++) {
		int st = harness_wait(cons[i], 60000);
		ck_assert_msg(exited_with(st, 0), "consumer %d (kind %d): %s%s",
			      i, kinds[i], describe(st),
			      exited_with(st, CHILD_STALL) ? " (a stall)" : "");
		total += sh->got[i];
	}
	ck_assert_uint_eq(total, (uint64_t)NP * per);
	for (int i = 0; i < NP; i++)
		for (uint32_t s = 0; s < per; s++)
			if (sh->seen[i][s] != 1)
				ck_abort_msg("message %d/%u arrived %d times",
					     i, s, sh->seen[i][s]);
	munmap(sh, sizeof(*sh));
	ck_assert_int_eq(daemon_cleanup(&d), 0);
}

START_TEST(test_storm)
{
	storm_run("storm", 0, PER);
}
END_TEST

START_TEST(test_storm_acked)
{
	storm_run("astorm", 1, PER_ACKED);
}
END_TEST

/* ======================================================================= */
/* The example                                                             */

/* docs/examples/evloop, on two queues fed from here and closed: every
 * message printed once, exit 0; a producer lost: exit 10. */
static pid_t run_example(int *out)
{
	char bin[512];
	int fds[2];

	harness_path("docs/examples/evloop", bin, sizeof(bin));
	ck_assert_int_eq(pipe2(fds, O_CLOEXEC), 0);
	pid_t pid = harness_fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		dup2(fds[1], 1);
		execl(bin, "evloop", "ex1", "ex2", (char *)NULL);
		_exit(127);
	}
	close(fds[1]);
	*out = fds[0];
	return pid;
}

static size_t read_all(int fd, char *buf, size_t size)
{
	size_t n = 0;

	for (;;) {
		ck_assert_msg(readable_within(fd, POLL_MS), "no output");
		ssize_t r = read(fd, buf + n, size - 1 - n);
		if (r <= 0)
			break;
		n += (size_t)r;
	}
	buf[n] = '\0';
	close(fd);
	return n;
}

START_TEST(test_example)
{
	static char out[1 << 16];
	struct daemon d;
	int fd;

	ck_assert_int_eq(daemon_start(&d, NULL), 0);
	create_q("ex1", 8, 64, 0600, 0);
	create_q("ex2", 8, 64, 0600, SHMQ_AUTO_CLOSE);
	shmq_t *a = open_q("ex1", SHMQ_PRODUCER);
	shmq_t *b = open_q("ex2", SHMQ_PRODUCER);
	pid_t ex = run_example(&fd);
	EVENTUALLY(stat_name("ex1").consumers == 1 &&
		   stat_name("ex2").consumers == 1);
	for (int i = 0; i < 100; i++) {
		char m[16];
		snprintf(m, sizeof(m), "m%d", i);
		put_str(i % 3 ? a : b, m);
	}
	RC_EQ(shmq_close(a, SHMQ_CLOSE_DRAIN, NULL), SHMQ_OK);
	RC_EQ(shmq_detach(b), SHMQ_OK);         /* auto-close */
	read_all(fd, out, sizeof(out));
	expect_exit(ex, 0);
	for (int i = 0; i < 100; i++) {
		char line[32];
		snprintf(line, sizeof(line), "%s: m%d\n", i % 3 ? "ex1" : "ex2",
			 i);
		ck_assert_msg(strstr(out, line), "missing %s", line);
	}
	int lines = 0;
	for (char *s = out; (s = strchr(s, '\n')); s++)
		lines++;
	ck_assert_int_eq(lines, 100);
	RC_EQ(shmq_detach(a), SHMQ_OK);

	/* A producer of ex2 killed: ex2 ends with "producer lost". */
	RC_EQ(shmq_delete("ex1"), SHMQ_OK);
	RC_EQ(shmq_delete("ex2"), SHMQ_OK);
	create_q("ex1", 8, 64, 0600, 0);
	create_q("ex2", 8, 64, 0600, SHMQ_AUTO_CLOSE);
	ex = run_example(&fd);
	pid_t k = harness_fork();
	ck_assert_int_ge(k, 0);
	if (k == 0) {
		shmq_t *q;
		CHILD_RC(shmq_open("ex2", SHMQ_PRODUCER, &q), SHMQ_OK);
		CHILD_RC(shmq_put(q, "last words", 10, 5000), SHMQ_OK);
		for (;;)
			pause();
	}
	EVENTUALLY(stat_name("ex2").total_got == 1);
	ck_assert_int_eq(kill(k, SIGKILL), 0);
	harness_wait(k, 5000);
	RC_EQ(shmq_close_name("ex1", SHMQ_CLOSE_DRAIN, NULL), SHMQ_OK);
	read_all(fd, out, sizeof(out));
	ck_assert_str_eq(out, "ex2: last words\n");
	expect_exit(ex, 10);
	ck_assert_int_eq(daemon_cleanup(&d), 0);
}
END_TEST

/* ======================================================================= */

static Suite *poll_suite(void)
{
	Suite *s = suite_create("poll");
	TCase *tc;

	tc = tcase_create("descriptor");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_fd_contract);
	tcase_add_test(tc, test_daemon_wakes_pollers);
	tcase_add_test(tc, test_poller_killed_armed);
	tcase_add_test(tc, test_acked_wakes);
	tcase_add_test(tc, test_lock_held);
	tcase_add_test(tc, test_other_netns);
	tcase_add_test(tc, test_example);
	suite_add_tcase(s, tc);

	tc = tcase_create("wait");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_wait);
	tcase_add_test(tc, test_wait_cancelled);
	suite_add_tcase(s, tc);

	tc = tcase_create("storm");
	tcase_set_timeout(tc, 300);
	tcase_add_test(tc, test_storm);
	tcase_add_test(tc, test_storm_acked);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return run_suite(poll_suite(), "poll");
}
