/*
 * check_producers.c - shmqd tracking the processes attached to a queue.
 *
 * Owns what the daemon does when producers and consumers come and go in
 * other processes (relays, SHMQ_RELAY, included): auto-close once the last producer detaches (and only
 * then, and only with the flag), every message delivered exactly once to
 * several consumers, and a producer killed without detaching (streaming,
 * asleep in put, idle) turning the end of the stream into "producer
 * lost" after everything it committed, with the sleep statistics the
 * dead process held repaired; a consumer killed asleep costs nothing.
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
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lib/chan.h"
#include "lib/checks.h"
#include "lib/clock.h"
#include "lib/harness.h"
#include "lib/queue.h"
#include "lib/runner.h"
#include "lib/segment.h"
#include "lib/workers.h"

/* ======================================================================= */
/* Auto-close with producers in several processes                          */

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
/* A producer killed without detaching                                     */

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
	hdr = segment_map_only(&d, &size);
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
	hdr = segment_map_only(&d, &size);
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
/* Relays                                                                  */

/* The handles shmqd counts for this process's uid: it has released an
 * attachment once it no longer counts it. */
static uint64_t my_handles(void)
{
	struct shmq_user *u;
	uint64_t n = UINT64_MAX;
	size_t k;

	if (shmq_users(&u, &k, NULL) != SHMQ_OK)
		return UINT64_MAX;
	for (size_t i = 0; i < k; i++)
		if (u[i].uid == getuid())
			n = u[i].handles;
	free(u);
	return n;
}

/* A relay producer (SHMQ_RELAY) is not counted: detached or killed, it
 * neither closes an auto-close queue nor loses a producer, and the queue
 * still closes when its last counted producer leaves, relay or not. */
START_TEST(test_relay)
{
	struct shmq_stat st;
	struct daemon d;
	struct chan ch;
	shmq_t *q = (shmq_t *)1;
	char buf[64];
	size_t len;

	ck_assert_int_eq(daemon_start(&d, NULL), 0);
	create_q("r", 8, 64, 0600, SHMQ_AUTO_CLOSE);
	RC_EQ(shmq_open("r", SHMQ_RELAY, &q), SHMQ_EINVAL);
	ck_assert_ptr_null(q);
	RC_EQ(shmq_open("r", SHMQ_CONSUMER | SHMQ_RELAY, &q), SHMQ_EINVAL);
	shmq_t *c = open_q("r", SHMQ_CONSUMER);
	shmq_t *rel = open_q("r", SHMQ_PRODUCER | SHMQ_RELAY);
	ck_assert_uint_eq(stat_q(c).producers, 0);
	put_str(rel, "a");
	RC_EQ(shmq_detach(rel), SHMQ_OK);
	ck_assert_msg(WAIT_UNTIL(my_handles() == 1, WAIT_MS),
		      "shmqd never released the relay");
	st = stat_q(c);
	ck_assert_int_eq(st.state, SHMQ_STATE_OPEN);
	ck_assert_int_eq(st.auto_closed, 0);

	/* Killed: no producer lost. */
	chan_init(&ch);
	pid_t pid = harness_fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		chan_child(&ch);
		CHILD_RC(shmq_open("r", SHMQ_PRODUCER | SHMQ_RELAY, &q),
			 SHMQ_OK);
		CHILD_RC(shmq_put(q, "b", 1, SHMQ_NOWAIT), SHMQ_OK);
		child_say(&ch, 'r');
		for (;;)
			pause();
	}
	chan_parent(&ch);
	chan_expect(&ch, 'r');
	ck_assert_int_eq(kill(pid, SIGKILL), 0);
	ck_assert_int_ne(harness_wait(pid, 10000), -1);
	chan_done(&ch);
	ck_assert_msg(WAIT_UNTIL(my_handles() == 1, WAIT_MS),
		      "shmqd never released the killed relay");
	st = stat_q(c);
	ck_assert_int_eq(st.state, SHMQ_STATE_OPEN);
	ck_assert_int_eq(st.producer_lost, 0);

	/* A counted producer leaving closes the queue, relay or not. */
	rel = open_q("r", SHMQ_PRODUCER | SHMQ_RELAY);
	shmq_t *p = open_q("r", SHMQ_PRODUCER);
	ck_assert_uint_eq(stat_q(c).producers, 1);
	RC_EQ(shmq_detach(p), SHMQ_OK);
	ck_assert_msg(WAIT_UNTIL(stat_q(c).state == SHMQ_STATE_CLOSED,
				 WAIT_MS),
		      "the queue did not auto-close");
	ck_assert_int_eq(stat_q(c).auto_closed, 1);
	get_str(c, "a");
	get_str(c, "b");
	RC_EQ(shmq_get(c, buf, sizeof(buf), &len, SHMQ_NOWAIT), SHMQ_EOS);
	RC_EQ(shmq_detach(rel), SHMQ_OK);
	RC_EQ(shmq_detach(c), SHMQ_OK);
	ck_assert_int_eq(daemon_cleanup(&d), 0);
}
END_TEST

/* ======================================================================= */

static Suite *producers_suite(void)
{
	Suite *s = suite_create("producers");
	TCase *tc;

	tc = tcase_create("producers");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_auto_close);
	tcase_add_test(tc, test_producer_killed_streaming);
	tcase_add_test(tc, test_producer_killed_blocked);
	tcase_add_test(tc, test_producer_killed_idle);
	tcase_add_test(tc, test_consumer_killed_blocked);
	tcase_add_test(tc, test_relay);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return run_suite(producers_suite(), "producers");
}
