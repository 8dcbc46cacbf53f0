/*
 * check_limits.c - shmqd's resource limits.
 *
 * Owns what --max-queues, --max-clients, --max-segment and --max-attach
 * promise: the request beyond a limit is refused with SHMQ_ELIMIT and a
 * detail that says which limit, nothing is created by the refusal, those
 * within the limit keep being served, and room freed (a delete, a client
 * gone, a detach) is room again.
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
/* Limits                                                                  */

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

static Suite *limits_suite(void)
{
	Suite *s = suite_create("limits");
	TCase *tc;

	tc = tcase_create("limits");
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_limit_queues);
	tcase_add_test(tc, test_limit_clients);
	tcase_add_test(tc, test_limit_segment);
	tcase_add_test(tc, test_limit_attach);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return run_suite(limits_suite(), "limits");
}
