/*
 * check_ring_poll.c - the ring (common/poll.c, common/wait.c): pollable
 * descriptors are woken, even when a process dies around a wake-up.
 *
 * Owns the core's side of the poll rules: a descriptor armed by a
 * non-blocking call becomes readable at the next commit in its direction
 * and at close; a committer stopped on its way to send (RING_HOOK_POLL_SEND)
 * leaves the next committer to send, and one killed there, or between its
 * commit and its wake-up, is covered by the daemon's removal of its entry
 * (ring_client_remove, which shmqd calls on a death); a poller killed
 * while armed costs the others nothing; races with an arming (a lease
 * taken meanwhile, a waker late with a reused entry) lose nothing; a
 * wake-up that cannot be sent stays armed; names taken first by somebody
 * else are avoided; one arming costs one datagram however many messages
 * follow; and a damaged table directs wake-ups nowhere outside the
 * queue.
 *
 * Rules of every ring suite (tests/lib/ring_kid.h): processes hand off
 * through pipes and state they publish in the segment, never through
 * timing; every test is bounded (Check's timeout, children's alarm(),
 * timed reads and polls); the fixture reaps every child.  No daemon takes
 * part: the test process does what shmqd would.
 */
#define _GNU_SOURCE
#include <check.h>
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

#include "lib/chan.h"
#include "lib/checks.h"
#include "lib/clock.h"
#include "lib/ring_kid.h"
#include "lib/runner.h"

#include "ring_impl.h"

/* A poller child: makes its descriptor for op->dir, arms it with a
 * non-blocking call and reports that call (SHMQ_EAGAIN), waits until the
 * descriptor is readable (at most 10 s; else it reports BAD_COUNT), then
 * makes the call again, non-blocking, and reports it.  With `pause`, its
 * first call pauses there (see below). */
struct pop {
	unsigned dir;
	const char *msg;        /* what a put-side poller puts */
	int pause;              /* AT(hook point), or 0 */
	int go;                 /* the read end of its go pipe */
};

/* Pausing a child at a hook point and letting it go on (parking, in
 * ring_kid.c, is for killing it there): at the first hit of the point
 * the child says 'P' on its event pipe and waits for a byte on its go
 * pipe. */
static int pause_point = -1, pause_evt = -1, pause_go = -1;

static void pause_hook(enum ring_hook_point point)
{
	char b;

	if ((int)point != pause_point)
		return;
	pause_point = -1;
	if (write(pause_evt, "P", 1) != 1 || read(pause_go, &b, 1) != 1)
		_exit(CHILD_FAIL);
}

static void pause_arm(struct kctx *c, int at, int go)
{
	if (at == 0)
		return;
	pause_point = at - 1;
	pause_evt = c->evt;
	pause_go = go;
	ring_test_hook = pause_hook;
}

/* Lets a paused child go on. */
static void go_on(int go)
{
	ck_assert_int_eq(write(go, "g", 1), 1);
}

/* The test process as one more client of the segment, in `me`. */
static uint32_t self_client(struct ring *me, uint32_t role)
{
	uint32_t idx, gen;

	ck_assert_int_eq(ring_attach(me, S.mem, S.size), SHMQ_OK);
	ck_assert_int_eq(ring_client_add(&R, (uint32_t)getpid(), 0, role,
					 &idx, &gen), SHMQ_OK);
	ck_assert_int_eq(ring_client_bind(me, idx, gen), SHMQ_OK);
	return idx;
}

#define POLL_WAIT_MS 10000

static int poller_call(struct kctx *c, const struct pop *op, struct kres *res)
{
	struct iovec out, in = { (void *)op->msg, op->msg ? strlen(op->msg) : 0 };
	char buf[256];
	size_t n = 0;

	memset(res, 0, sizeof(*res));
	if (op->dir == SHMQ_POLL_PUT) {
		res->rc = ring_put(&c->r, &in, 1, &n, SHMQ_NOWAIT);
		res->count = (uint32_t)n;
		return 0;
	}
	res->rc = ring_get(&c->r, buf, sizeof(buf), &out, 1, &n, SHMQ_NOWAIT);
	res->count = (uint32_t)n;
	if (n) {
		res->len = (uint32_t)out.iov_len;
		memcpy(res->data, buf, out.iov_len < sizeof(res->data)
						? out.iov_len : sizeof(res->data));
	}
	return 0;
}

static int kid_poller(struct kctx *c)
{
	const struct pop *op = c->arg;
	struct kres res;
	int fd;

	if (ring_poll_fd(&c->r, op->dir, &fd) != SHMQ_OK)
		return CHILD_FAIL;
	pause_arm(c, op->pause, op->go);
	poller_call(c, op, &res);
	if (write(c->evt, &res, sizeof(res)) != (ssize_t)sizeof(res))
		return CHILD_FAIL;
	struct pollfd p = { .fd = fd, .events = POLLIN };
	int n;
	while ((n = poll(&p, 1, POLL_WAIT_MS)) < 0 && errno == EINTR)
		;
	if (n != 1)
		res = (struct kres){ .rc = BAD_COUNT };
	else
		poller_call(c, op, &res);
	return write(c->evt, &res, sizeof(res)) == (ssize_t)sizeof(res)
		       ? 0 : CHILD_FAIL;
}

/* A producer child that puts `msg`, pausing at `pause` (see pause_arm)
 * and reporting as kid_put does. */
struct pput {
	const char *msg;
	int pause;
	int go;
};

static int kid_put_paused(struct kctx *c)
{
	const struct pput *op = c->arg;
	struct iovec v = { (void *)op->msg, strlen(op->msg) };
	struct kres res = { 0 };
	size_t done = 0;

	pause_arm(c, op->pause, op->go);
	res.rc = ring_put(&c->r, &v, 1, &done, SHMQ_FOREVER);
	res.count = (uint32_t)done;
	return write(c->evt, &res, sizeof(res)) == (ssize_t)sizeof(res)
		       ? 0 : CHILD_FAIL;
}

/* Starts a poller and waits until it is armed. */
static struct kid *poller_start(uint32_t role, struct pop *op)
{
	struct kid *k = kid_start(role, kid_poller, op);
	struct kres res;

	ck_assert_msg(read_timed(k->evt, &res, sizeof(res)) == 0,
		      "poller %d did not arm", (int)k->pid);
	ck_assert_int_eq(res.rc, SHMQ_EAGAIN);
	return k;
}

static uint32_t word_bits(const uint32_t *word)
{
	return __atomic_load_n(word, __ATOMIC_SEQ_CST) &
	       (SHMQ_WAIT_SLEEPER | SHMQ_WAIT_POLLER);
}

/* ================================================================== */
/* Deaths around a wake-up                                            */

/* A producer stopped (not killed) on its way to wake the pollers, before
 * it sent anything: the entry is still armed and the bit still set, so
 * the next put (here the test's) wakes the poller without it; then the
 * stopped one goes on.  (The bit used to be taken before the sends: the
 * poller slept until the stopped process ran again.) */
START_TEST(test_waker_stopped_before_send)
{
	struct ring_config c = seg_config(8, 64, 0, 0);
	struct pop pop = { .dir = SHMQ_POLL_GET };
	int go[2];

	ck_assert_int_eq(pipe(go), 0);
	struct pput late = { .msg = "first", .pause = AT(RING_HOOK_POLL_SEND),
			     .go = go[0] };
	seg_create(&c);
	struct kid *g = poller_start(SHMQ_ROLE_CONSUMER, &pop);
	struct kid *p = kid_start(SHMQ_ROLE_PRODUCER, kid_put_paused, &late);
	kid_expect_parked(p);
	ck_assert_uint_eq(word_bits(&R.hdr->data_futex), SHMQ_WAIT_POLLER);
	ck_assert_uint_ne(R.clients[g->idx].armed[GET_SIDE], 0);
	kid_silent(g);
	put_ok(&R, "second");
	struct kres res = kid_result(g);
	ck_assert_int_eq(res.rc, SHMQ_OK);
	ck_assert_mem_eq(res.data, "first", 5);
	go_on(go[1]);
	ck_assert_int_eq(kid_result(p).rc, SHMQ_OK);
	expect_msg(&R, "second");
	close(go[0]);
	close(go[1]);
}
END_TEST

/* A producer killed on its way to wake the pollers: nobody else changes
 * the queue, but the daemon's removal of the dead entry wakes every
 * armed descriptor. */
START_TEST(test_killed_at_wake_hook)
{
	struct ring_config c = seg_config(8, 64, 0, 0);
	struct pop pop = { .dir = SHMQ_POLL_GET };
	struct op dead = OP(.timeout = SHMQ_FOREVER,
			    .park = AT(RING_HOOK_POLL_SEND), .n = 1,
			    .msgs = { "orphan" });

	seg_create(&c);
	struct kid *g = poller_start(SHMQ_ROLE_CONSUMER, &pop);
	ck_assert_uint_eq(word_bits(&R.hdr->data_futex), SHMQ_WAIT_POLLER);
	struct kid *p = kid_op(SHMQ_ROLE_PRODUCER, kid_put, &dead);
	kid_expect_parked(p);
	kid_silent(g);
	kid_kill(p);
	ring_client_remove(&R, p->idx, 1);
	struct kres res = kid_result(g);
	ck_assert_int_eq(res.rc, SHMQ_OK);
	ck_assert_mem_eq(res.data, "orphan", 6);
	expect_empty(&R);
}
END_TEST

/* Killed between its commit and its wake-up call, lock held: the same. */
START_TEST(test_killed_after_commit)
{
	struct ring_config c = seg_config(8, 64, 0, 0);
	struct pop pop = { .dir = SHMQ_POLL_GET };
	struct op dead = OP(.timeout = SHMQ_FOREVER,
			    .park = AT(RING_HOOK_PUT_COMMITTED), .n = 1,
			    .msgs = { "committed" });

	seg_create(&c);
	struct kid *g = poller_start(SHMQ_ROLE_CONSUMER, &pop);
	struct kid *p = kid_op(SHMQ_ROLE_PRODUCER, kid_put, &dead);
	kid_expect_parked(p);
	kid_silent(g);
	kid_kill(p);
	ring_client_remove(&R, p->idx, 1);
	struct kres res = kid_result(g);
	ck_assert_int_eq(res.rc, SHMQ_OK);
	ck_assert_mem_eq(res.data, "committed", 9);
	/* The next producer takes over the dead one's lock. */
	put_ok(&R, "after");
	expect_msg(&R, "after");
}
END_TEST

/* The put side: a consumer killed after it freed a slot, on its way to
 * wake the producers.  The armed producer still gets its room. */
START_TEST(test_put_side_killed_getter)
{
	struct ring_config c = seg_config(2, 64, 0, 0);
	struct pop pop = { .dir = SHMQ_POLL_PUT, .msg = "third" };
	struct op dead = OP(.timeout = SHMQ_FOREVER,
			    .park = AT(RING_HOOK_POLL_SEND));

	seg_create(&c);
	put_ok(&R, "first");
	put_ok(&R, "second");
	struct kid *w = poller_start(SHMQ_ROLE_PRODUCER, &pop);
	ck_assert_uint_eq(word_bits(&R.hdr->space_futex), SHMQ_WAIT_POLLER);
	struct kid *g = kid_op(SHMQ_ROLE_CONSUMER, kid_get, &dead);
	kid_expect_parked(g);
	kid_silent(w);
	kid_kill(g);
	ring_client_remove(&R, g->idx, 1);
	struct kres res = kid_result(w);
	ck_assert_int_eq(res.rc, SHMQ_OK);
	ck_assert_uint_eq(res.count, 1);
	expect_msg(&R, "second");
	expect_msg(&R, "third");
	expect_empty(&R);
}
END_TEST

/* A poller killed while armed: its socket is gone with it.  The others
 * are woken as before, now and after the daemon removed its entry. */
START_TEST(test_poller_killed_armed)
{
	struct ring_config c = seg_config(8, 64, 0, 0);
	struct pop pop = { .dir = SHMQ_POLL_GET };

	seg_create(&c);
	struct kid *dead = poller_start(SHMQ_ROLE_CONSUMER, &pop);
	struct kid *live = poller_start(SHMQ_ROLE_CONSUMER, &pop);
	kid_kill(dead);
	put_ok(&R, "one");
	struct kres res = kid_result(live);
	ck_assert_int_eq(res.rc, SHMQ_OK);
	ck_assert_mem_eq(res.data, "one", 3);
	ck_assert_uint_eq(R.clients[dead->idx].armed[GET_SIDE], 0);
	ring_client_remove(&R, dead->idx, 1);
	live = poller_start(SHMQ_ROLE_CONSUMER, &pop);
	put_ok(&R, "two");
	res = kid_result(live);
	ck_assert_int_eq(res.rc, SHMQ_OK);
	ck_assert_mem_eq(res.data, "two", 3);
}
END_TEST

/* ================================================================== */
/* Races with an arming                                               */

/* An acked queue: a lease taken while a getter arms (it has emptied its
 * descriptor, not yet looked again) is one its timer must cover: the
 * descriptor fires when that lease times out, and the get that follows
 * returns the message.  (Its timer was set before the lease, for none.) */
START_TEST(test_lease_taken_while_arming)
{
	struct ring_config c = seg_config(8, 64, 0, SHMQ_CFG_ACKED);
	struct shmq_msg m;
	struct ring me;
	char buf[64];
	size_t got;
	int go[2];

	c.lease_timeout_ms = 300;
	ck_assert_int_eq(pipe(go), 0);
	struct pop pop = { .dir = SHMQ_POLL_GET,
			   .pause = AT(RING_HOOK_POLL_ARM), .go = go[0] };
	seg_create(&c);
	struct kid *g = kid_start(SHMQ_ROLE_CONSUMER, kid_poller, &pop);
	kid_expect_parked(g);
	self_client(&me, SHMQ_ROLE_CONSUMER);
	put_ok(&R, "job");
	ck_assert_int_eq(ring_lease(&me, buf, sizeof(buf), &m, 1, &got,
				    SHMQ_NOWAIT, 0), SHMQ_OK);
	long t0 = now_ms();
	go_on(go[1]);
	struct kres res;
	ck_assert_int_eq(read_timed(g->evt, &res, sizeof(res)), 0);
	ck_assert_int_eq(res.rc, SHMQ_EAGAIN);
	res = kid_result(g);
	ck_assert_int_eq(res.rc, SHMQ_OK);
	ck_assert_mem_eq(res.data, "job", 3);
	ck_assert_int_ge(now_ms() - t0, 250);
	close(go[0]);
	close(go[1]);
}
END_TEST

/* A waker delayed after it read an armed entry, while the entry's
 * handle dies and a new handle takes the entry and arms: the waker's
 * late clear of the arming it read must not erase the new one (both
 * used to have the same value, 1), or the new poller misses the next
 * put. */
START_TEST(test_late_clear_of_reused_entry)
{
	struct ring_config c = seg_config(8, 64, 0, 0);
	struct pop pop = { .dir = SHMQ_POLL_GET };
	int go[2];

	ck_assert_int_eq(pipe(go), 0);
	struct pput late = { .msg = "x", .pause = AT(RING_HOOK_POLL_SEND),
			     .go = go[0] };
	seg_create(&c);
	struct kid *p1 = poller_start(SHMQ_ROLE_CONSUMER, &pop);
	struct kid *w = kid_start(SHMQ_ROLE_PRODUCER, kid_put_paused, &late);
	kid_expect_parked(w);
	kid_kill(p1);
	ring_client_remove(&R, p1->idx, 1);
	expect_msg(&R, "x");
	struct kid *p2 = poller_start(SHMQ_ROLE_CONSUMER, &pop);
	ck_assert_uint_eq(p2->idx, p1->idx);
	go_on(go[1]);
	struct kres res = kid_result(w);
	ck_assert_int_eq(res.rc, SHMQ_OK);
	ck_assert_uint_ne(R.clients[p2->idx].armed[GET_SIDE], 0);
	put_ok(&R, "y");
	res = kid_result(p2);
	ck_assert_int_eq(res.rc, SHMQ_OK);
	ck_assert_mem_eq(res.data, "y", 1);
	close(go[0]);
	close(go[1]);
}
END_TEST

/* ================================================================== */
/* When a wake-up cannot be sent                                      */

/* This process's wake-up socket: the unbound AF_UNIX datagram socket
 * among its descriptors, or -1. */
static int find_sender(void)
{
	for (int fd = 3; fd < 1024; fd++) {
		struct sockaddr_un a;
		socklen_t len = sizeof(a);
		int type;
		socklen_t tl = sizeof(type);
		if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tl) == 0 &&
		    type == SOCK_DGRAM &&
		    getsockname(fd, (struct sockaddr *)&a, &len) == 0 &&
		    a.sun_family == AF_UNIX &&
		    len <= offsetof(struct sockaddr_un, sun_path))
			return fd;
	}
	return -1;
}

/* The program closed the library's wake-up socket behind its back (as a
 * daemon closing every descriptor does) and the number now belongs to
 * one of its own stream sockets: the next wake-up still arrives, from a
 * new socket, and nothing is written into the program's stream. */
START_TEST(test_sender_replaced)
{
	struct ring_config c = seg_config(8, 64, 0, 0);
	struct pop pop = { .dir = SHMQ_POLL_GET };
	int sp[2];
	char b;

	seg_create(&c);
	struct kid *g = poller_start(SHMQ_ROLE_CONSUMER, &pop);
	put_ok(&R, "one");
	ck_assert_int_eq(kid_result(g).rc, SHMQ_OK);
	int s = find_sender();
	ck_assert_int_ge(s, 0);
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sp), 0);
	ck_assert_int_eq(dup2(sp[0], s), s);
	g = poller_start(SHMQ_ROLE_CONSUMER, &pop);
	put_ok(&R, "two");
	struct kres res = kid_result(g);
	ck_assert_int_eq(res.rc, SHMQ_OK);
	ck_assert_mem_eq(res.data, "two", 3);
	ck_assert_int_eq(recv(sp[1], &b, 1, MSG_DONTWAIT), -1);
	ck_assert_int_eq(errno, EAGAIN);

	/* Closed, and the number left free. */
	close(s);
	g = poller_start(SHMQ_ROLE_CONSUMER, &pop);
	put_ok(&R, "three");
	res = kid_result(g);
	ck_assert_int_eq(res.rc, SHMQ_OK);
	ck_assert_mem_eq(res.data, "three", 5);
	close(sp[0]);
	close(sp[1]);
}
END_TEST

/* A producer at its limit of descriptors puts: it has no socket to send
 * the wake-up from, so the put succeeds, the entry stays armed and the
 * bit set, and the next put (from a process that can send) wakes the
 * poller.  (The wake-up used to be dropped and the arming cleared.) */
static int kid_put_at_fd_limit(struct kctx *c)
{
	struct kres res = { 0 };
	struct iovec v = { "first", 5 };
	size_t done = 0;
	int top = 3;

	/* Fill every free number below the limit. */
	for (int fd; (fd = dup(0)) >= 0;)
		top = fd;
	struct rlimit rl = { (rlim_t)top + 1, (rlim_t)top + 1 };
	if (setrlimit(RLIMIT_NOFILE, &rl) != 0 ||
	    socket(AF_UNIX, SOCK_DGRAM, 0) >= 0)
		return CHILD_FAIL;
	res.rc = ring_put(&c->r, &v, 1, &done, SHMQ_NOWAIT);
	res.count = (uint32_t)done;
	return write(c->evt, &res, sizeof(res)) == (ssize_t)sizeof(res)
		       ? 0 : CHILD_FAIL;
}

START_TEST(test_sender_out_of_descriptors)
{
	struct ring_config c = seg_config(8, 64, 0, 0);
	struct pop pop = { .dir = SHMQ_POLL_GET };

	seg_create(&c);
	struct kid *g = poller_start(SHMQ_ROLE_CONSUMER, &pop);
	struct kid *p = kid_start(SHMQ_ROLE_PRODUCER, kid_put_at_fd_limit,
				  NULL);
	struct kres res = kid_result(p);
	ck_assert_int_eq(res.rc, SHMQ_OK);
	ck_assert_uint_eq(res.count, 1);
	ck_assert_uint_ne(R.clients[g->idx].armed[GET_SIDE], 0);
	ck_assert_uint_eq(word_bits(&R.hdr->data_futex), SHMQ_WAIT_POLLER);
	kid_silent(g);
	put_ok(&R, "second");
	res = kid_result(g);
	ck_assert_int_eq(res.rc, SHMQ_OK);
	ck_assert_mem_eq(res.data, "first", 5);
}
END_TEST

/* ================================================================== */
/* Names taken first                                                  */

/* The nonce the next bind draws, when a test forces one (0: the real
 * random ones).  The core is linked into this program, so its
 * getrandom() is this one. */
static uint32_t forced_nonce;

ssize_t getrandom(void *buf, size_t len, unsigned flags)
{
	if (forced_nonce && len == sizeof(forced_nonce)) {
		memcpy(buf, &forced_nonce, len);
		forced_nonce = 0;
		return (ssize_t)len;
	}
	return syscall(SYS_getrandom, buf, len, flags);
}

/* Binds a socket under `name` (abstract, `len` as getsockname says). */
static int squat(const struct sockaddr_un *name, socklen_t len)
{
	int s = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	ck_assert_int_ge(s, 0);
	ck_assert_int_eq(bind(s, (const struct sockaddr *)name, len), 0);
	return s;
}

/* Anybody can read a handle's socket names in /proc/net/unix.  Taking
 * the other direction's name (the same but its last letter) before the
 * handle asks for that descriptor used to make shmq_fd fail: each
 * direction now has a nonce of its own.  And a name that is taken all
 * the same (a forced nonce here) is tried again with a new nonce; the
 * descriptor works. */
START_TEST(test_name_taken_first)
{
	struct ring_config c = seg_config(8, 64, 0, 0);
	struct sockaddr_un a;
	socklen_t len = sizeof(a);
	struct ring me;
	int fd, pfd;

	seg_create(&c);
	uint32_t idx = self_client(&me, SHMQ_ROLE_PRODUCER | SHMQ_ROLE_CONSUMER);
	ck_assert_int_eq(ring_poll_fd(&me, SHMQ_POLL_GET, &fd), SHMQ_OK);
	ck_assert_int_eq(getsockname(me.poll[GET_SIDE].sock,
				     (struct sockaddr *)&a, &len), 0);
	ck_assert_uint_gt(len, offsetof(struct sockaddr_un, sun_path) + 2);
	char *last = (char *)&a + len - 1;
	ck_assert_int_eq(*last, 'g');
	*last = 'p';
	int s1 = squat(&a, len);
	ck_assert_int_eq(ring_poll_fd(&me, SHMQ_POLL_PUT, &pfd), SHMQ_OK);
	ck_assert_int_ne(me.poll[PUT_SIDE].nonce, me.poll[GET_SIDE].nonce);
	ring_poll_close(&me);

	/* A new handle on the entry, whose first nonce is taken. */
	ring_client_remove(&R, idx, 0);
	uint32_t gen;
	ck_assert_int_eq(ring_client_add(&R, (uint32_t)getpid(), 0,
					 SHMQ_ROLE_CONSUMER, &idx, &gen),
			 SHMQ_OK);
	ck_assert_int_eq(ring_client_bind(&me, idx, gen), SHMQ_OK);
	struct sockaddr_un b = { .sun_family = AF_UNIX };
	int n = snprintf(b.sun_path + 1, sizeof(b.sun_path) - 1,
			 "shmq-poll.%016" PRIx64 ".%" PRIx32 ".%" PRIx32
			 ".%08" PRIx32 ".g", me.queue_id, idx, gen, 0x5eedu);
	int s2 = squat(&b, (socklen_t)(offsetof(struct sockaddr_un, sun_path) +
				       1 + (size_t)n));
	forced_nonce = 0x5eedu;
	ck_assert_int_eq(ring_poll_fd(&me, SHMQ_POLL_GET, &fd), SHMQ_OK);
	ck_assert_uint_eq(forced_nonce, 0);
	ck_assert_uint_ne(me.poll[GET_SIDE].nonce, 0x5eedu);
	ck_assert_uint_eq(R.clients[idx].poll_nonce[GET_SIDE],
			  me.poll[GET_SIDE].nonce);
	/* And it is woken. */
	char buf[64];
	struct iovec out;
	size_t got;
	ck_assert_int_eq(ring_get(&me, buf, sizeof(buf), &out, 1, &got,
				  SHMQ_NOWAIT), SHMQ_EAGAIN);
	put_ok(&R, "woken");
	struct pollfd p = { .fd = fd, .events = POLLIN };
	ck_assert_int_eq(poll(&p, 1, POLL_WAIT_MS), 1);
	ring_poll_close(&me);
	ring_client_remove(&R, idx, 0);
	close(s1);
	close(s2);
}
END_TEST

/* ================================================================== */
/* Close, and what a wake-up costs                                    */

/* close wakes every armed descriptor: getters armed on an empty queue
 * see the end of the stream, putters armed on a full one its close. */
START_TEST(test_close_wakes_both_sides)
{
	struct ring_config c = seg_config(1, 64, 0, 0);
	struct pop get = { .dir = SHMQ_POLL_GET };
	struct pop put = { .dir = SHMQ_POLL_PUT, .msg = "late" };
	struct kid *k[3];
	uint64_t discarded = 9;

	seg_create(&c);
	for (int i = 0; i < 3; i++)
		k[i] = poller_start(SHMQ_ROLE_CONSUMER, &get);
	ck_assert_int_eq(ring_close(&R, SHMQ_CLOSE_NOW, &discarded), SHMQ_OK);
	ck_assert_uint_eq(discarded, 0);
	for (int i = 0; i < 3; i++)
		ck_assert_int_eq(kid_result(k[i]).rc, SHMQ_EOS);

	seg_reformat(&c);
	put_ok(&R, "kept");
	for (int i = 0; i < 3; i++)
		k[i] = poller_start(SHMQ_ROLE_PRODUCER, &put);
	ck_assert_int_eq(ring_close(&R, SHMQ_CLOSE_DRAIN, NULL), SHMQ_OK);
	for (int i = 0; i < 3; i++)
		ck_assert_int_eq(kid_result(k[i]).rc, SHMQ_ECLOSED);
	expect_msg(&R, "kept");
}
END_TEST

/* How many datagrams wait in a descriptor's socket (the descriptor
 * itself is an epoll set of it and a timer). */
static int datagrams(int fd)
{
	char b[8];
	int n = 0;

	while (recv(fd, b, sizeof(b), MSG_DONTWAIT) >= 0)
		n++;
	ck_assert_int_eq(errno, EAGAIN);
	return n;
}

/* One arming, one datagram: a burst of commits after it costs the
 * committers one system call in all, not one each; after the poller has
 * caught up and armed again, the next commit sends one more. */
START_TEST(test_one_datagram_per_arming)
{
	struct ring_config c = seg_config(1024, 64, 0, 0);
	struct ring me;
	uint32_t idx, gen;
	char buf[64];
	struct iovec out;
	size_t n;
	int fd;

	seg_create(&c);
	ck_assert_int_eq(ring_attach(&me, S.mem, S.size), SHMQ_OK);
	ck_assert_int_eq(ring_client_add(&R, (uint32_t)getpid(), 0,
					 SHMQ_ROLE_CONSUMER, &idx, &gen),
			 SHMQ_OK);
	ck_assert_int_eq(ring_client_bind(&me, idx, gen), SHMQ_OK);
	ck_assert_int_eq(ring_poll_fd(&me, SHMQ_POLL_GET, &fd), SHMQ_OK);
	fd = me.poll[GET_SIDE].sock;
	ck_assert_int_eq(datagrams(fd), 1);     /* a new one starts readable */
	for (int round = 0; round < 3; round++) {
		ck_assert_int_eq(ring_get(&me, buf, sizeof(buf), &out, 1, &n,
					  SHMQ_NOWAIT), SHMQ_EAGAIN);
		for (int i = 0; i < 1000; i++)
			put_ok(&R, "m");
		ck_assert_int_eq(datagrams(fd), 1);
		ck_assert_uint_eq(word_bits(&R.hdr->data_futex), 0);
		for (int i = 0; i < 1000; i++)
			ck_assert_int_eq(ring_get(&me, buf, sizeof(buf), &out,
						  1, &n, SHMQ_NOWAIT), SHMQ_OK);
	}
	/* Blocking calls neither arm nor disarm. */
	ck_assert_int_eq(ring_get(&me, buf, sizeof(buf), &out, 1, &n, 1),
			 SHMQ_ETIMEDOUT);
	put_ok(&R, "m");
	ck_assert_int_eq(datagrams(fd), 0);
	ring_poll_close(&me);
	ring_client_remove(&R, idx, 0);
}
END_TEST

/* A table that lies (every entry armed, poll_hi beyond the table, names
 * of entries that do not exist): a wake-up looks at the table only, and
 * sends only to names of this queue; nothing breaks. */
START_TEST(test_damaged_table)
{
	struct ring_config c = seg_config(8, 64, 0, 0);
	struct pop pop = { .dir = SHMQ_POLL_GET };

	seg_create(&c);
	struct kid *g = poller_start(SHMQ_ROLE_CONSUMER, &pop);
	R.hdr->poll_hi = UINT32_MAX;
	for (uint32_t i = 0; i < R.nclients; i++) {
		if (i == g->idx)
			continue;
		R.clients[i].armed[GET_SIDE] = 7;
		R.clients[i].armed[PUT_SIDE] = 7;
		R.clients[i].gen = 12345 + i;
		R.clients[i].poll_nonce[PUT_SIDE] = i;
		R.clients[i].poll_nonce[GET_SIDE] = i;
	}
	put_ok(&R, "still");
	struct kres res = kid_result(g);
	ck_assert_int_eq(res.rc, SHMQ_OK);
	ck_assert_mem_eq(res.data, "still", 5);
	ring_wake_all(&R);
	for (uint32_t i = 0; i < R.nclients; i++)
		ck_assert_uint_eq(R.clients[i].armed[GET_SIDE], 0);
}
END_TEST

/* ================================================================== */

static Suite *ring_poll_suite(void)
{
	Suite *s = suite_create("ring poll");
	TCase *tc;

	tc = ring_tcase(s, "deaths", 30);
	tcase_add_test(tc, test_waker_stopped_before_send);
	tcase_add_test(tc, test_killed_at_wake_hook);
	tcase_add_test(tc, test_killed_after_commit);
	tcase_add_test(tc, test_put_side_killed_getter);
	tcase_add_test(tc, test_poller_killed_armed);
	tc = ring_tcase(s, "races", 30);
	tcase_add_test(tc, test_lease_taken_while_arming);
	tcase_add_test(tc, test_late_clear_of_reused_entry);
	tcase_add_test(tc, test_name_taken_first);
	tc = ring_tcase(s, "failed sends", 30);
	tcase_add_test(tc, test_sender_replaced);
	tcase_add_test(tc, test_sender_out_of_descriptors);
	tc = ring_tcase(s, "wake-ups", 30);
	tcase_add_test(tc, test_close_wakes_both_sides);
	tcase_add_test(tc, test_one_datagram_per_arming);
	tcase_add_test(tc, test_damaged_table);
	return s;
}

int main(void)
{
	return run_suite(ring_poll_suite(), "ring_poll");
}
