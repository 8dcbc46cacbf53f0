/*
 * check_api.c - the public API (shmq.h) through the real shmqd.
 *
 * Owns the queue lifecycle as a client sees it, as the README and docs/
 * describe it: create (defaults, attributes, EXIST_OK, refusals that
 * create nothing), names (the valid and the refused, everywhere a name is
 * taken), roles and I/O across processes (binary, empty and maximal
 * messages, a buffer too small, batches), the statistics (attachments,
 * sleepers, totals), the sorted and paged listing (and one broken off
 * half-way, by a stand-in daemon), delete while open
 * (unlink(2) semantics) and close, drained or immediate, by handle or by
 * name, waking sleepers in other processes.
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
#include <stddef.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lib/chan.h"
#include "lib/checks.h"
#include "lib/clock.h"
#include "lib/foreign.h"
#include "lib/harness.h"
#include "lib/queue.h"
#include "lib/rawconn.h"
#include "lib/runner.h"
#include "shmq_layout.h"

/* ======================================================================= */
/* The API through the daemon                                              */

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

/* A relay's two small additions: closing as "producer lost", and the
 * position of a viewed message (shmq-bridge's message ids). */
START_TEST(test_close_lost_and_view_seq)
{
	struct daemon d;
	shmq_t *p, *c;
	const void *data;
	char buf[16];
	size_t len;
	uint64_t seq = 99;

	ck_assert_int_eq(daemon_start(&d, NULL), 0);
	create_q("relay", 4, 64, 0600, 0);
	p = open_q("relay", SHMQ_PRODUCER);
	c = open_q("relay", SHMQ_CONSUMER);
	put_str(p, "a");
	put_str(p, "b");
	RC_EQ(shmq_view_seq(c, &seq), SHMQ_EINVAL);     /* no view held */
	RC_EQ(shmq_get_view(c, &data, &len, 1000), SHMQ_OK);
	RC_EQ(shmq_view_seq(c, &seq), SHMQ_OK);
	ck_assert_uint_eq(seq, 0);
	RC_EQ(shmq_get_leave(c), SHMQ_OK);
	RC_EQ(shmq_get_view(c, &data, &len, 1000), SHMQ_OK);
	RC_EQ(shmq_view_seq(c, &seq), SHMQ_OK);
	ck_assert_uint_eq(seq, 0);                      /* the same one */
	RC_EQ(shmq_get_take(c), SHMQ_OK);
	RC_EQ(shmq_get_view(c, &data, &len, 1000), SHMQ_OK);
	RC_EQ(shmq_view_seq(c, &seq), SHMQ_OK);
	ck_assert_uint_eq(seq, 1);
	RC_EQ(shmq_get_take(c), SHMQ_OK);
	RC_EQ(shmq_view_seq(c, &seq), SHMQ_EINVAL);

	put_str(p, "c");
	RC_EQ(shmq_close(p, 4u | SHMQ_CLOSE_LOST, NULL), SHMQ_EINVAL);
	ck_assert_int_eq(stat_name("relay").producer_lost, 0);
	ck_assert_int_eq(stat_name("relay").state, SHMQ_STATE_OPEN);
	RC_EQ(shmq_close(p, SHMQ_CLOSE_DRAIN | SHMQ_CLOSE_LOST, NULL),
	      SHMQ_OK);
	ck_assert_int_eq(stat_name("relay").producer_lost, 1);
	get_str(c, "c");                /* drained, then "producer lost" */
	RC_EQ(shmq_get(c, buf, sizeof(buf), &len, 1000), SHMQ_EOS_LOST);
	RC_EQ(shmq_detach(p), SHMQ_OK);
	RC_EQ(shmq_detach(c), SHMQ_OK);
	ck_assert_int_eq(daemon_cleanup(&d), 0);
}
END_TEST

/* A listing broken off half-way: a stand-in daemon sends the first page
 * of users (with totals, and more to come), then hangs up.  The call
 * fails with nothing handed out, and the caller's totals untouched, as
 * shmq.h promises: a half-listing's totals would be a lie. */
START_TEST(test_users_cut_short)
{
	static struct shmq_wire_users_reply page;
	struct shmq_user *list, total, keep;
	char sock[120];
	struct daemon d;
	uint16_t type;
	uint32_t seq;
	size_t n;
	pid_t pid;
	int lfd;

	borrow_dir(&d);
	snprintf(sock, sizeof(sock), "%s/cut.sock", d.dir);
	lfd = listen_at(sock, 4);
	ck_assert_int_ge(lfd, 0);
	pid = harness_fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		int fd = fake_accept(lfd);

		CHILD_CHECK(fd >= 0);
		CHILD_CHECK(fake_request(fd, &type, &seq) == 0);
		CHILD_EQ(type, SHMQ_MSG_USERS);
		page.count = 1;
		page.more = 1;
		page.total.uid = UINT32_MAX;
		page.total.queues = 7;
		page.entries[0].uid = 1;
		CHILD_CHECK(fake_reply(fd, type, seq, &page,
				       offsetof(struct shmq_wire_users_reply,
						entries[1])) == 0);
		_exit(0);       /* and with it, the socket and connection */
	}
	close(lfd);
	setenv("SHMQ_SOCKET", sock, 1);
	setenv("SHMQ_NO_AUTOSTART", "1", 1);
	memset(&total, 0xab, sizeof(total));
	keep = total;
	list = (struct shmq_user *)&list;       /* poisoned */
	n = 99;
	RC_EQ(shmq_users(&list, &n, &total), SHMQ_ENODAEMON);
	ck_assert_ptr_null(list);
	ck_assert_uint_eq(n, 0);
	ck_assert(memcmp(&total, &keep, sizeof(total)) == 0);
	CHILD_OK(pid);
	ck_assert_int_eq(daemon_cleanup(&d), 0);
}
END_TEST

/* ======================================================================= */

static Suite *api_suite(void)
{
	Suite *s = suite_create("api");
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
	tcase_add_test(tc, test_close_lost_and_view_seq);
	tcase_add_test(tc, test_users_cut_short);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return run_suite(api_suite(), "api");
}
