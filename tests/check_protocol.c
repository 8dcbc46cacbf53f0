/*
 * check_protocol.c - shmqd facing hostile input on its control socket.
 *
 * Owns the daemon's side of the wire protocol (proto/shmq_wire.h) under
 * attack: packets that are not ours, truncated, oversized, empty, of
 * another version or before HELLO (answered if the header can be
 * trusted, then dropped); bodies of the wrong size or with bad names,
 * sizes or bits (answered, the connection kept); descriptors nobody
 * asked for (closed, none kept); a client that hangs up with a reply
 * unread (the regression that closed another client's descriptors); and
 * a client that never reads (dropped, never waited for).  Throughout, a
 * well-behaved client in another process keeps being served by the same
 * daemon.  Packets are built and checked by the real proto/wire.c.
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
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lib/chan.h"
#include "lib/checks.h"
#include "lib/clock.h"
#include "lib/harness.h"
#include "lib/queue.h"
#include "lib/rawconn.h"
#include "lib/runner.h"
#include "lib/workers.h"

/* ======================================================================= */
/* Bad input on the control socket                                         */

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
	n = wire_pack(pkt, SHMQ_MSG_HELLO, 1, &hello, sizeof(hello));
	expect_fatal(d.sock, pkt, 10, RAW_EOF);
	expect_fatal(d.sock, pkt, 1, RAW_EOF);
	live_check(&l);

	/* The right magic with a length that is not the packet's: the
	 * header cannot be trusted, so an error and a hang-up. */
	n = wire_pack(pkt, SHMQ_MSG_HELLO, 1, &hello, sizeof(hello));
	memcpy(&h, pkt, sizeof(h));
	h.len = 4096;
	memcpy(pkt, &h, sizeof(h));
	expect_fatal(d.sock, pkt, n, SHMQ_EPROTO);
	h.len = sizeof(h);
	memcpy(pkt, &h, sizeof(h));
	expect_fatal(d.sock, pkt, n, SHMQ_EPROTO);
	live_check(&l);

	/* Another protocol version. */
	n = wire_pack(pkt, SHMQ_MSG_HELLO, 1, &hello, sizeof(hello));
	memcpy(&h, pkt, sizeof(h));
	h.version = SHMQ_WIRE_VERSION + 1;
	memcpy(pkt, &h, sizeof(h));
	expect_fatal(d.sock, pkt, n, SHMQ_EPROTO);
	/* A HELLO that announces other versions in its body. */
	hello.wire_version = SHMQ_WIRE_VERSION + 1;
	n = wire_pack(pkt, SHMQ_MSG_HELLO, 1, &hello, sizeof(hello));
	expect_fatal(d.sock, pkt, n, SHMQ_EPROTO);
	hello.wire_version = SHMQ_WIRE_VERSION;
	hello.layout_version = SHMQ_LAYOUT_VERSION + 1;
	n = wire_pack(pkt, SHMQ_MSG_HELLO, 1, &hello, sizeof(hello));
	expect_fatal(d.sock, pkt, n, SHMQ_EPROTO);
	hello.layout_version = SHMQ_LAYOUT_VERSION;
	live_check(&l);

	/* Any request before HELLO. */
	memset(&name, 0, sizeof(name));
	strcpy(name.name, "live");
	n = wire_pack(pkt, SHMQ_MSG_STAT, 7, &name, sizeof(name));
	expect_fatal(d.sock, pkt, n, SHMQ_EPROTO);
	live_check(&l);

	/* Bigger than any packet may be: dropped. */
	memset(pkt, 'z', sizeof(pkt));
	n = wire_pack(pkt, SHMQ_MSG_HELLO, 1, &hello, sizeof(hello));
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
	n = wire_pack(pkt, SHMQ_MSG_HELLO, 1, &hello, sizeof(hello));
	send_with_fds(fd, pkt, n, fds, 3);
	RC_EQ(raw_reply(fd, SHMQ_MSG_HELLO, 1, NULL, 0), SHMQ_OK);
	n = wire_pack(pkt, SHMQ_MSG_STAT, 2, &nm, sizeof(nm));
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
	n = wire_pack(pkt, SHMQ_MSG_STAT, 3, &nm, sizeof(nm));
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
	n = wire_pack(pkt, SHMQ_MSG_HELLO, 1, &hello, sizeof(hello));
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
	n = wire_pack(pkt, SHMQ_MSG_STAT, 0, &nm, sizeof(nm));
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

static Suite *protocol_suite(void)
{
	Suite *s = suite_create("protocol");
	TCase *tc;

	tc = tcase_create("protocol");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_proto_framing);
	tcase_add_test(tc, test_proto_bodies);
	tcase_add_test(tc, test_proto_fds);
	tcase_add_test(tc, test_proto_flood);
	tcase_add_test(tc, test_proto_reset_keeps_fds);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return run_suite(protocol_suite(), "protocol");
}
