/*
 * check_restart.c - shmqd restarting under running clients.
 *
 * Owns the promise that a daemon can die (SIGKILL) or stop (SIGTERM)
 * and come back without losing anything: open handles keep working
 * while it is down, in both directions and in several processes; the
 * next daemon adopts the queues, their messages and their attachments,
 * releases (as a loss) producers that exited meanwhile, honours detaches
 * made meanwhile, watches adopted processes, and trusts its own records
 * over a segment a client forged.
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
/* Restarts                                                                */

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
	hdr = segment_map_only(&d, &size);
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

static Suite *restart_suite(void)
{
	Suite *s = suite_create("restart");
	TCase *tc;

	tc = tcase_create("restart");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_restart_kill9);
	tcase_add_test(tc, test_detach_while_down);
	tcase_add_test(tc, test_restart_sigterm);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return run_suite(restart_suite(), "restart");
}
