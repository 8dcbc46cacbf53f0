/*
 * check_acked.c - acked queues through libshmq and the real shmqd.
 *
 * Owns what a client of an acked queue sees: the calls (lease, the batch
 * and zero-copy forms, ack, nack, extend, join, pending, stat) and every
 * status they promise; a holder process killed or detaching (shmqd
 * notices, the next consumer gets the message back with its count
 * raised, ahead of new ones); end of stream and join waiting for another
 * process's lease; dead letters through the dead-letter queue the library
 * opens itself, dropped without one, waiting while it is full; shmqd
 * killed and restarted under live and dead holders; and the refusals at
 * create.  The kills inside critical sections are check_acked_crash's.
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
#include <pthread.h>
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
#include "lib/users.h"
#include "lib/workers.h"

static struct shmq_attr acked_attr(uint32_t capacity, uint32_t timeout_ms,
				   uint32_t max_deliveries,
				   const char *dead_letter)
{
	struct shmq_attr a = attr_of(capacity, 256, 0600, SHMQ_ACKED);

	a.lease_timeout_ms = timeout_ms;
	a.max_deliveries = max_deliveries;
	a.dead_letter = dead_letter;
	return a;
}

static void create_acked(const char *name, uint32_t capacity,
			 uint32_t timeout_ms, uint32_t max_deliveries,
			 const char *dead_letter)
{
	struct shmq_attr a = acked_attr(capacity, timeout_ms, max_deliveries,
					dead_letter);

	RC_EQ(shmq_create(name, &a, 0), SHMQ_OK);
}

struct leased {
	struct shmq_msg m;
	char data[256];
};

/* The next lease of q must be `want`, delivered the `deliveries`th time. */
#define expect_lease(q, l, want, deliveries) \
	expect_lease_at((q), (l), (want), (deliveries), __LINE__)

static void expect_lease_at(shmq_t *q, struct leased *l, const char *want,
			    uint32_t deliveries, int line)
{
	int rc = shmq_lease(q, l->data, sizeof(l->data), &l->m, WAIT_MS);

	ck_assert_msg(rc == SHMQ_OK, "line %d: lease, expecting \"%s\": %s",
		      line, want, shmq_strerror(rc));
	check_leased(&l->m, want, deliveries, line);
	ck_assert_ptr_eq(l->m.data, l->data);
}

static void take(shmq_t *q, const char *want, uint32_t deliveries)
{
	struct leased l;

	expect_lease(q, &l, want, deliveries);
	RC_EQ(shmq_ack(q, &l.m), SHMQ_OK);
}

static void put_strs(shmq_t *q, int n)
{
	char m[16];

	for (int i = 0; i < n; i++) {
		snprintf(m, sizeof(m), "m%d", i);
		put_str(q, m);
	}
}

/* The segment's departure counter, which shmqd bumps once it has
 * released an attachment: then a lease of the dead is returned. */
static uint32_t departures(const struct shmq_seg_hdr *h)
{
	return __atomic_load_n(&h->departures, __ATOMIC_ACQUIRE);
}

/* ======================================================================= */
/* A holder that dies or detaches                                          */

START_TEST(test_holder_killed)
{
	struct holder h;
	struct daemon d;
	size_t size;

	ck_assert_int_eq(daemon_start(&d, NULL), 0);
	create_acked("q", 8, 0, 0, NULL);
	shmq_t *q = open_q("q", SHMQ_PRODUCER | SHMQ_CONSUMER);
	put_strs(q, 4);
	holder_start(&h, "q", 2);
	struct shmq_stat st = stat_q(q);
	ck_assert_uint_eq(st.leased, 2);
	ck_assert_uint_eq(st.messages, 2);
	struct shmq_seg_hdr *seg = segment_map_only(&d, &size);
	uint32_t before = departures(seg);
	kill(h.pid, SIGKILL);
	ck_assert_int_ne(harness_wait(h.pid, 10000), -1);
	chan_done(&h.ch);
	EVENTUALLY(departures(seg) != before);
	/* Back, delivered twice, ahead of the two never delivered. */
	take(q, "m0", 2);
	take(q, "m1", 2);
	take(q, "m2", 1);
	take(q, "m3", 1);
	st = stat_q(q);
	ck_assert_uint_eq(st.acked, 4);
	ck_assert_uint_eq(st.leased, 0);
	ck_assert_uint_eq(st.messages, 0);

	/* A holder that detaches gives its leases back at once (its own
	 * mark says so), whether or not shmqd has heard of it. */
	put_strs(q, 2);
	holder_start(&h, "q", 1);
	chan_cmd(&h.ch, 'd', 'k');
	CHILD_OK(h.pid);
	chan_done(&h.ch);
	take(q, "m0", 2);
	take(q, "m1", 1);

	/* A waiting consumer is woken by the death and gets the message. */
	put_strs(q, 1);
	holder_start(&h, "q", 1);
	pid_t w = harness_fork();
	if (w == 0) {
		struct leased l;
		shmq_t *c;
		CHILD_RC(shmq_open("q", SHMQ_CONSUMER, &c), SHMQ_OK);
		CHILD_RC(shmq_lease(c, l.data, sizeof(l.data), &l.m, 10000),
			 SHMQ_OK);
		CHILD_CHECK(l.m.len == 2 && memcmp(l.data, "m0", 2) == 0);
		CHILD_EQ(l.m.deliveries, 2);
		CHILD_RC(shmq_ack(c, &l.m), SHMQ_OK);
		_exit(0);
	}
	EVENTUALLY(wait_mark_of(seg, size, w) == SHMQ_WAIT_GET);
	kill(h.pid, SIGKILL);
	ck_assert_int_ne(harness_wait(h.pid, 10000), -1);
	chan_done(&h.ch);
	CHILD_OK(w);
	munmap(seg, size);
	RC_EQ(shmq_detach(q), SHMQ_OK);
	ck_assert_int_eq(daemon_cleanup(&d), 0);
}
END_TEST

/* ======================================================================= */
/* End of stream and join wait for another process's lease                 */

static pid_t start_getter(const char *queue, int want_eos)
{
	pid_t pid = harness_fork();

	if (pid == 0) {
		char buf[256];
		size_t len;
		shmq_t *c;
		CHILD_RC(shmq_open(queue, SHMQ_CONSUMER, &c), SHMQ_OK);
		if (!want_eos) {
			CHILD_RC(shmq_get(c, buf, sizeof(buf), &len, 10000),
				 SHMQ_OK);
			CHILD_CHECK(len == 2 && memcmp(buf, "m0", 2) == 0);
		}
		CHILD_RC(shmq_get(c, buf, sizeof(buf), &len, 10000), SHMQ_EOS);
		_exit(0);
	}
	ck_assert_int_gt(pid, 0);
	return pid;
}

START_TEST(test_eos_and_join)
{
	struct holder h;
	struct daemon d;
	size_t size;

	ck_assert_int_eq(daemon_start(&d, NULL), 0);
	create_acked("q", 8, 0, 0, NULL);
	shmq_t *q = open_q("q", SHMQ_PRODUCER);
	shmq_t *j = open_q("q", 0);
	struct shmq_seg_hdr *seg = segment_map_only(&d, &size);
	put_strs(q, 1);
	RC_EQ(shmq_join(j, SHMQ_NOWAIT), SHMQ_EAGAIN);
	RC_EQ(shmq_join(j, 20), SHMQ_ETIMEDOUT);
	holder_start(&h, "q", 1);
	RC_EQ(shmq_close(q, SHMQ_CLOSE_DRAIN, NULL), SHMQ_OK);
	/* Closed and drained, but m0 is out: no end of stream yet. */
	pid_t g = start_getter("q", 1);
	EVENTUALLY(wait_mark_of(seg, size, g) == SHMQ_WAIT_GET);
	RC_EQ(shmq_join(j, SHMQ_NOWAIT), SHMQ_EAGAIN);
	chan_cmd(&h.ch, 'a', 'k');
	CHILD_OK(g);
	RC_EQ(shmq_join(j, SHMQ_NOWAIT), SHMQ_OK);
	chan_cmd(&h.ch, 'd', 'k');
	CHILD_OK(h.pid);
	chan_done(&h.ch);
	munmap(seg, size);
	RC_EQ(shmq_detach(q), SHMQ_OK);
	RC_EQ(shmq_detach(j), SHMQ_OK);

	/* The holder dies instead: the getter gets the message, then the
	 * end of the stream; join waits meanwhile. */
	create_acked("r", 8, 0, 0, NULL);
	q = open_q("r", SHMQ_PRODUCER);
	j = open_q("r", 0);
	put_strs(q, 1);
	holder_start(&h, "r", 1);
	RC_EQ(shmq_close(q, SHMQ_CLOSE_DRAIN, NULL), SHMQ_OK);
	pid_t jp = harness_fork();
	if (jp == 0) {
		shmq_t *jj;
		CHILD_RC(shmq_open("r", 0, &jj), SHMQ_OK);
		CHILD_RC(shmq_join(jj, 10000), SHMQ_OK);
		_exit(0);
	}
	g = start_getter("r", 0);
	RC_EQ(shmq_join(j, SHMQ_NOWAIT), SHMQ_EAGAIN);
	kill(h.pid, SIGKILL);
	ck_assert_int_ne(harness_wait(h.pid, 10000), -1);
	chan_done(&h.ch);
	CHILD_OK(g);
	CHILD_OK(jp);
	RC_EQ(shmq_join(j, 0), SHMQ_OK);
	RC_EQ(shmq_detach(q), SHMQ_OK);
	RC_EQ(shmq_detach(j), SHMQ_OK);

	/* A plain queue: settled once taken. */
	create_q("p", 8, 64, 0600, 0);
	q = open_q("p", SHMQ_PRODUCER | SHMQ_CONSUMER);
	RC_EQ(shmq_join(q, SHMQ_NOWAIT), SHMQ_OK);
	put_str(q, "x");
	RC_EQ(shmq_join(q, SHMQ_NOWAIT), SHMQ_EAGAIN);
	get_str(q, "x");
	RC_EQ(shmq_join(q, SHMQ_NOWAIT), SHMQ_OK);
	RC_EQ(shmq_join(NULL, 0), SHMQ_EINVAL);
	RC_EQ(shmq_detach(q), SHMQ_OK);
	ck_assert_int_eq(daemon_cleanup(&d), 0);
}
END_TEST

/* ======================================================================= */
/* Dead letters                                                            */

START_TEST(test_dead_letters)
{
	struct shmq_lease_info *info;
	struct leased l;
	struct daemon d;
	size_t n;

	ck_assert_int_eq(daemon_start(&d, NULL), 0);
	create_q("dlq", 2, 256, 0600, 0);
	create_acked("w", 8, 0, 2, "dlq");
	shmq_t *q = open_q("w", SHMQ_PRODUCER | SHMQ_CONSUMER);
	shmq_t *dl = open_q("dlq", SHMQ_PRODUCER | SHMQ_CONSUMER);
	struct shmq_stat st = stat_q(q);
	ck_assert_str_eq(st.dead_letter, "dlq");
	ck_assert_uint_eq(st.max_deliveries, 2);
	put_strs(q, 4);
	/* Delivered twice, nacked twice: into the dead-letter queue. */
	expect_lease(q, &l, "m0", 1);
	RC_EQ(shmq_nack(q, &l.m, 0), SHMQ_OK);
	expect_lease(q, &l, "m0", 2);
	RC_EQ(shmq_nack(q, &l.m, 0), SHMQ_OK);
	get_str(dl, "m0");
	/* Nacked with SHMQ_NACK_DEAD: at once. */
	expect_lease(q, &l, "m1", 1);
	RC_EQ(shmq_nack(q, &l.m, SHMQ_NACK_DEAD), SHMQ_OK);
	get_str(dl, "m1");
	st = stat_q(q);
	ck_assert_uint_eq(st.dead_lettered, 2);
	ck_assert_uint_eq(st.dropped, 0);

	/* A full dead-letter queue: the message waits in this one. */
	put_str(dl, "a");
	put_str(dl, "b");
	expect_lease(q, &l, "m2", 1);
	RC_EQ(shmq_nack(q, &l.m, SHMQ_NACK_DEAD), SHMQ_OK);
	st = stat_q(q);
	ck_assert_uint_eq(st.dead_lettered, 2);
	ck_assert_uint_eq(st.returned, 1);
	ck_assert_uint_eq(st.messages, 2);
	RC_EQ(shmq_pending(q, &info, &n), SHMQ_OK);
	ck_assert_uint_eq(n, 1);
	ck_assert_int_eq(info[0].state, SHMQ_LEASE_DEAD_LETTER);
	ck_assert_uint_eq(info[0].seq, 2);
	ck_assert_uint_eq(info[0].pid, 0);
	free(info);
	take(q, "m3", 1);
	get_str(dl, "a");
	/* Tried again a second later by whoever leases (only the clock
	 * makes it due). */
	ck_assert_msg(WAIT_UNTIL(shmq_lease(q, l.data, sizeof(l.data), &l.m,
					    SHMQ_NOWAIT) == SHMQ_EAGAIN &&
					 stat_q(q).dead_lettered == 3,
				 WAIT_MS),
		      "the dead letter was never moved");
	get_str(dl, "b");
	get_str(dl, "m2");
	RC_EQ(shmq_detach(q), SHMQ_OK);

	/* Without a dead-letter queue: dropped and counted. */
	create_acked("nodl", 8, 0, 1, NULL);
	q = open_q("nodl", SHMQ_PRODUCER | SHMQ_CONSUMER);
	put_strs(q, 2);
	expect_lease(q, &l, "m0", 1);
	RC_EQ(shmq_nack(q, &l.m, 0), SHMQ_OK);
	take(q, "m1", 1);
	st = stat_q(q);
	ck_assert_uint_eq(st.dropped, 1);
	ck_assert_uint_eq(st.acked, 1);
	ck_assert_uint_eq(st.messages, 0);
	ck_assert_str_eq(st.dead_letter, "");
	RC_EQ(shmq_detach(q), SHMQ_OK);

	/* A dead-letter queue deleted since: its dead letters wait. */
	create_q("gone", 4, 256, 0600, 0);
	create_acked("g", 8, 0, 1, "gone");
	RC_EQ(shmq_delete("gone"), SHMQ_OK);
	q = open_q("g", SHMQ_PRODUCER | SHMQ_CONSUMER);
	put_strs(q, 2);
	expect_lease(q, &l, "m0", 1);
	RC_EQ(shmq_nack(q, &l.m, 0), SHMQ_OK);
	take(q, "m1", 1);
	st = stat_q(q);
	ck_assert_uint_eq(st.dead_lettered, 0);
	ck_assert_uint_eq(st.returned, 1);
	RC_EQ(shmq_detach(q), SHMQ_OK);
	RC_EQ(shmq_detach(dl), SHMQ_OK);
	ck_assert_int_eq(daemon_cleanup(&d), 0);
}
END_TEST

/* The dead-letter handles a consumer opens are relays: they do not
 * count as the dead-letter queue's producers, so a consumer that
 * detaches does not auto-close it, and one killed does not mark it
 * "producer lost". */
START_TEST(test_dead_letter_relay)
{
	struct leased l;
	struct daemon d;
	struct chan ch;

	ck_assert_int_eq(daemon_start(&d, NULL), 0);
	create_q("dd", 8, 256, 0600, SHMQ_AUTO_CLOSE);
	create_acked("w", 8, 0, 0, "dd");
	shmq_t *q = open_q("w", SHMQ_PRODUCER | SHMQ_CONSUMER);
	shmq_t *dl = open_q("dd", SHMQ_CONSUMER);
	put_strs(q, 2);
	expect_lease(q, &l, "m0", 1);
	RC_EQ(shmq_nack(q, &l.m, SHMQ_NACK_DEAD), SHMQ_OK);
	get_str(dl, "m0");
	ck_assert_uint_eq(stat_q(dl).producers, 0);
	RC_EQ(shmq_detach(q), SHMQ_OK);

	chan_init(&ch);
	pid_t pid = harness_fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		struct shmq_msg m;
		char buf[256];
		shmq_t *c;
		chan_child(&ch);
		CHILD_RC(shmq_open("w", SHMQ_CONSUMER, &c), SHMQ_OK);
		CHILD_RC(shmq_lease(c, buf, sizeof(buf), &m, WAIT_MS),
			 SHMQ_OK);
		CHILD_RC(shmq_nack(c, &m, SHMQ_NACK_DEAD), SHMQ_OK);
		child_say(&ch, 'r');
		for (;;)
			pause();
	}
	chan_parent(&ch);
	chan_expect(&ch, 'r');
	get_str(dl, "m1");
	ck_assert_int_eq(kill(pid, SIGKILL), 0);
	ck_assert_int_ne(harness_wait(pid, 10000), -1);
	chan_done(&ch);
	/* Once shmqd has released the child's handles, the queue still has
	 * its consumer and nothing else. */
	ck_assert_msg(WAIT_UNTIL(stat_name("w").consumers == 0, WAIT_MS),
		      "shmqd never released the killed consumer");
	struct shmq_stat st = stat_q(dl);
	ck_assert_int_eq(st.state, SHMQ_STATE_OPEN);
	ck_assert_int_eq(st.auto_closed, 0);
	ck_assert_int_eq(st.producer_lost, 0);
	RC_EQ(shmq_detach(dl), SHMQ_OK);
	ck_assert_int_eq(daemon_cleanup(&d), 0);
}
END_TEST

/* The handles shmqd counts for this process's uid. */
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

struct nacker {
	shmq_t *q;
	pthread_barrier_t *go;
	int rc;
};

static void *nack_dead(void *arg)
{
	struct nacker *n = arg;
	struct shmq_msg m;
	char buf[256];

	n->rc = shmq_lease(n->q, buf, sizeof(buf), &m, WAIT_MS);
	pthread_barrier_wait(n->go);
	if (n->rc == SHMQ_OK)
		n->rc = shmq_nack(n->q, &m, SHMQ_NACK_DEAD);
	return NULL;
}

/* The dead-letter queue deleted and made again while a consumer has it
 * open: the consumer's handle still maps the old one, which its segment
 * marks deleted, so no dead letter goes there; the next nack opens the
 * new one.  Threads sharing the handle nacking at once open it once. */
START_TEST(test_dead_letter_queue_replaced)
{
	enum { THREADS = 4 };
	struct nacker n[THREADS];
	pthread_t t[THREADS];
	pthread_barrier_t go;
	struct leased l;
	struct daemon d;
	char seen[THREADS] = { 0 };
	char buf[16];
	size_t len;

	ck_assert_int_eq(daemon_start(&d, NULL), 0);
	create_q("dd", 8, 256, 0600, 0);
	create_acked("w", 8, 0, 0, "dd");
	shmq_t *q = open_q("w", SHMQ_PRODUCER | SHMQ_CONSUMER);
	shmq_t *dl = open_q("dd", SHMQ_CONSUMER);
	put_strs(q, 1 + THREADS);
	expect_lease(q, &l, "m0", 1);
	RC_EQ(shmq_nack(q, &l.m, SHMQ_NACK_DEAD), SHMQ_OK);
	get_str(dl, "m0");
	RC_EQ(shmq_detach(dl), SHMQ_OK);
	RC_EQ(shmq_delete("dd"), SHMQ_OK);
	create_q("dd", 8, 256, 0600, 0);
	dl = open_q("dd", SHMQ_CONSUMER);
	/* q, its dead-letter handle (on the old queue), dl. */
	ck_assert_msg(WAIT_UNTIL(my_handles() == 3, WAIT_MS),
		      "%llu handles", (unsigned long long)my_handles());

	pthread_barrier_init(&go, NULL, THREADS);
	for (int i = 0; i < THREADS; i++) {
		n[i] = (struct nacker){ .q = q, .go = &go };
		ck_assert_int_eq(pthread_create(&t[i], NULL, nack_dead, &n[i]),
				 0);
	}
	for (int i = 0; i < THREADS; i++) {
		pthread_join(t[i], NULL);
		RC_EQ(n[i].rc, SHMQ_OK);
	}
	pthread_barrier_destroy(&go);
	/* Every letter in the new queue, none lost. */
	for (int i = 0; i < THREADS; i++) {
		RC_EQ(shmq_get(dl, buf, sizeof(buf), &len, WAIT_MS), SHMQ_OK);
		ck_assert(len == 2 && buf[0] == 'm' && buf[1] >= '1' &&
			  buf[1] < '1' + THREADS);
		ck_assert(!seen[buf[1] - '1']);
		seen[buf[1] - '1'] = 1;
	}
	struct shmq_stat st = stat_q(q);
	ck_assert_uint_eq(st.dead_lettered, 1 + THREADS);
	ck_assert_uint_eq(st.returned, 0);
	ck_assert_uint_eq(st.messages, 0);
	/* One new dead-letter handle, the old one detached. */
	ck_assert_msg(WAIT_UNTIL(my_handles() == 3, WAIT_MS),
		      "%llu handles", (unsigned long long)my_handles());
	RC_EQ(shmq_detach(dl), SHMQ_OK);
	RC_EQ(shmq_detach(q), SHMQ_OK);
	ck_assert_int_eq(daemon_cleanup(&d), 0);
}
END_TEST

/* Gets and leases that may not wait (SHMQ_NOWAIT) never talk to the
 * daemon, even while dead letters wait for a dead-letter queue the
 * consumer could not open; calls that may block try again, at most once
 * a second. */
START_TEST(test_dead_letter_retries)
{
	struct leased l;
	struct daemon d;
	char buf[256];
	size_t len;

	ck_assert_int_eq(daemon_start(&d, NULL), 0);
	create_q("dd", 8, 256, 0600, 0);
	create_acked("w", 8, 0, 2, "dd");
	RC_EQ(shmq_delete("dd"), SHMQ_OK);
	shmq_t *c = open_q("w", SHMQ_CONSUMER);         /* no "dd" for it */
	shmq_t *q = open_q("w", SHMQ_PRODUCER);
	put_strs(q, 2);
	expect_lease(c, &l, "m0", 1);
	RC_EQ(shmq_nack(c, &l.m, SHMQ_NACK_DEAD), SHMQ_OK);
	struct shmq_stat st = stat_q(c);
	ck_assert_uint_eq(st.dead_lettered, 0);
	ck_assert_uint_eq(st.returned, 1);

	/* A daemon that never answers: any round trip would take its
	 * 10 s.  For longer than the retry period, no call may wait. */
	ck_assert_int_eq(kill(d.pid, SIGSTOP), 0);
	long until = now_ms() + 1500, worst = 0;
	while (now_ms() < until) {
		long t0 = now_ms();
		int rc = shmq_get(c, buf, sizeof(buf), &len, SHMQ_NOWAIT);
		ck_assert(rc == SHMQ_OK || rc == SHMQ_EAGAIN);
		rc = shmq_lease(c, l.data, sizeof(l.data), &l.m, SHMQ_NOWAIT);
		ck_assert(rc == SHMQ_OK || rc == SHMQ_EAGAIN);
		if (rc == SHMQ_OK)
			RC_EQ(shmq_ack(c, &l.m), SHMQ_OK);
		if (now_ms() - t0 > worst)
			worst = now_ms() - t0;
		sleep_ms(10);
	}
	ck_assert_int_eq(kill(d.pid, SIGCONT), 0);
	ck_assert_msg(worst < 1000, "a call without waiting took %ld ms",
		      worst);
	ck_assert_uint_eq(stat_q(c).returned, 1);

	/* The queue is back: a call that may block opens it, and the
	 * letter waiting goes at once. */
	create_q("dd", 8, 256, 0600, 0);
	shmq_t *dl = open_q("dd", SHMQ_CONSUMER);
	RC_EQ(shmq_lease(c, l.data, sizeof(l.data), &l.m, 10),
	      SHMQ_ETIMEDOUT);
	get_str(dl, "m0");
	st = stat_q(c);
	ck_assert_uint_eq(st.dead_lettered, 1);
	ck_assert_uint_eq(st.returned, 0);
	RC_EQ(shmq_detach(dl), SHMQ_OK);
	RC_EQ(shmq_detach(q), SHMQ_OK);
	RC_EQ(shmq_detach(c), SHMQ_OK);
	ck_assert_int_eq(daemon_cleanup(&d), 0);
}
END_TEST

/* ======================================================================= */
/* shmqd killed and restarted                                              */

START_TEST(test_restart)
{
	struct holder live, dead;
	struct daemon d;

	ck_assert_int_eq(daemon_start(&d, NULL), 0);
	create_acked("q", 8, 0, 0, NULL);
	shmq_t *q = open_q("q", SHMQ_PRODUCER | SHMQ_CONSUMER);
	put_strs(q, 3);
	holder_start(&live, "q", 1);       /* m0 */
	holder_start(&dead, "q", 1);       /* m1 */
	daemon_stop(&d, SIGKILL);
	kill(dead.pid, SIGKILL);
	ck_assert_int_ne(harness_wait(dead.pid, 10000), -1);
	chan_done(&dead.ch);
	/* Without a daemon nobody knows yet: m1 stays leased. */
	take(q, "m2", 1);
	ck_assert_uint_eq(stat_q(q).leased, 2);
	ck_assert_int_eq(daemon_restart(&d), 0);
	/* The new daemon releases the dead holder: m1 comes back... */
	take(q, "m1", 2);
	/* ...and re-adopts the live one, whose lease still holds. */
	struct shmq_stat st = stat_name("q");
	ck_assert_uint_eq(st.leased, 1);
	ck_assert_uint_eq(st.consumers, 2);
	chan_cmd(&live.ch, 'a', 'k');
	chan_cmd(&live.ch, 'd', 'k');
	CHILD_OK(live.pid);
	chan_done(&live.ch);
	st = stat_q(q);
	ck_assert_uint_eq(st.acked, 3);
	ck_assert_uint_eq(st.leased, 0);
	ck_assert_uint_eq(st.messages, 0);
	RC_EQ(shmq_detach(q), SHMQ_OK);
	ck_assert_int_eq(daemon_cleanup(&d), 0);
}
END_TEST

/* ======================================================================= */
/* The calls                                                               */

START_TEST(test_calls)
{
	struct shmq_msg m[4];
	struct leased l, l2;
	struct shmq_lease_info *info;
	struct daemon d;
	const void *view;
	char buf[256];
	size_t n, len;

	ck_assert_int_eq(daemon_start(&d, NULL), 0);
	create_acked("q", 8, 60000, 0, NULL);
	shmq_t *q = open_q("q", SHMQ_PRODUCER | SHMQ_CONSUMER);
	shmq_t *p = open_q("q", SHMQ_PRODUCER);
	put_strs(q, 6);
	/* A batch, each at a multiple of 16 bytes from buf. */
	RC_EQ(shmq_leasev(q, buf, sizeof(buf), m, 3, &n, 0), SHMQ_OK);
	ck_assert_uint_eq(n, 3);
	for (size_t i = 0; i < n; i++) {
		ck_assert_ptr_eq(m[i].data, buf + 16 * i);
		ck_assert_uint_eq(m[i].seq, i);
		ck_assert_uint_eq(m[i].deliveries, 1);
		ck_assert_uint_ne(m[i].lease, 0);
	}
	RC_EQ(shmq_pending(q, &info, &n), SHMQ_OK);
	ck_assert_uint_eq(n, 3);
	for (size_t i = 0; i < n; i++) {
		ck_assert_int_eq(info[i].state, SHMQ_LEASE_HELD);
		ck_assert_uint_eq(info[i].pid, (uint32_t)getpid());
		ck_assert_uint_eq(info[i].deliveries, 1);
		ck_assert_int_gt(info[i].left_ns, 50000000000ll);
		ck_assert_uint_eq(info[i].len, 2);
	}
	free(info);
	RC_EQ(shmq_ackv(q, m, 3, &n), SHMQ_OK);
	ck_assert_uint_eq(n, 3);
	RC_EQ(shmq_ackv(q, m, 0, &n), SHMQ_OK);
	/* Zero copy: in the queue's memory, until the lease ends. */
	RC_EQ(shmq_lease_view(q, &m[0], 0), SHMQ_OK);
	ck_assert_uint_eq(m[0].len, 2);
	ck_assert_mem_eq(m[0].data, "m3", 2);
	ck_assert(m[0].data < (void *)buf || m[0].data >= (void *)(buf + 256));
	RC_EQ(shmq_extend(q, &m[0], 100000), SHMQ_OK);
	RC_EQ(shmq_ack(q, &m[0]), SHMQ_OK);
	/* shmq_get_view is a lease: take acks it, leave nacks it. */
	RC_EQ(shmq_get_view(q, &view, &len, 0), SHMQ_OK);
	ck_assert_mem_eq(view, "m4", 2);
	RC_EQ(shmq_lease(q, buf, sizeof(buf), &l.m, 0), SHMQ_EINVAL);
	RC_EQ(shmq_get_leave(q), SHMQ_OK);
	RC_EQ(shmq_get_view(q, &view, &len, 0), SHMQ_OK);
	ck_assert_mem_eq(view, "m4", 2);
	RC_EQ(shmq_get_take(q), SHMQ_OK);
	/* A buffer too small: nothing leased, the length said. */
	RC_EQ(shmq_lease(q, buf, 1, &l.m, 0), SHMQ_EMSGSIZE);
	ck_assert_uint_eq(l.m.len, 2);
	ck_assert_uint_eq(l.m.lease, 0);
	/* shmq_get acks in one step. */
	RC_EQ(shmq_get(q, buf, sizeof(buf), &len, 0), SHMQ_OK);
	ck_assert_mem_eq(buf, "m5", 2);
	struct shmq_stat st = stat_q(q);
	ck_assert_uint_eq(st.acked, 6);
	ck_assert_uint_eq(st.leased, 0);
	ck_assert_uint_eq(st.lease_timeout_ms, 60000);
	ck_assert(st.flags & SHMQ_ACKED);

	/* Bad leases and arguments. */
	put_strs(q, 2);
	expect_lease(q, &l, "m0", 1);
	RC_EQ(shmq_ack(q, &l.m), SHMQ_OK);
	RC_EQ(shmq_ack(q, &l.m), SHMQ_ELEASE);
	RC_EQ(shmq_nack(q, &l.m, 0), SHMQ_ELEASE);
	RC_EQ(shmq_extend(q, &l.m, 0), SHMQ_ELEASE);
	expect_lease(q, &l2, "m1", 1);
	l.m.lease = l2.m.lease ^ 0x8000000000000000ull;     /* forged */
	RC_EQ(shmq_ack(q, &l.m), SHMQ_ELEASE);
	l.m.lease = 0xffff;
	RC_EQ(shmq_ack(q, &l.m), SHMQ_ELEASE);
	RC_EQ(shmq_nack(q, &l2.m, 0x80), SHMQ_EINVAL);
	RC_EQ(shmq_extend(q, &l2.m, -5), SHMQ_EINVAL);
	RC_EQ(shmq_ack(NULL, &l2.m), SHMQ_EINVAL);
	RC_EQ(shmq_ack(q, NULL), SHMQ_EINVAL);
	RC_EQ(shmq_ackv(q, NULL, 1, NULL), SHMQ_EINVAL);
	RC_EQ(shmq_nack(q, NULL, 0), SHMQ_EINVAL);
	RC_EQ(shmq_extend(NULL, &l2.m, 0), SHMQ_EINVAL);
	RC_EQ(shmq_leasev(q, buf, sizeof(buf), m, 0, &n, 0), SHMQ_EINVAL);
	RC_EQ(shmq_leasev(q, buf, sizeof(buf), NULL, 1, &n, 0), SHMQ_EINVAL);
	RC_EQ(shmq_lease(q, NULL, 4, &l.m, 0), SHMQ_EINVAL);
	RC_EQ(shmq_lease(q, buf, sizeof(buf), NULL, 0), SHMQ_EINVAL);
	RC_EQ(shmq_lease(p, buf, sizeof(buf), &l.m, 0), SHMQ_EROLE);
	RC_EQ(shmq_pending(q, NULL, &n), SHMQ_EINVAL);
	/* Another handle's lease, even in this process, is not its. */
	RC_EQ(shmq_ack(p, &l2.m), SHMQ_ELEASE);
	RC_EQ(shmq_ack(q, &l2.m), SHMQ_OK);
	/* A handle's leases end when it detaches. */
	shmq_t *c = open_q("q", SHMQ_CONSUMER);
	put_str(q, "x");
	expect_lease(c, &l, "x", 1);
	RC_EQ(shmq_detach(c), SHMQ_OK);
	take(q, "x", 2);
	RC_EQ(shmq_detach(p), SHMQ_OK);
	RC_EQ(shmq_detach(q), SHMQ_OK);

	/* A plain queue: lease is a get, lease 0 acks as nothing. */
	create_q("plain", 4, 64, 0600, 0);
	q = open_q("plain", SHMQ_PRODUCER | SHMQ_CONSUMER);
	put_str(q, "a");
	RC_EQ(shmq_lease(q, buf, sizeof(buf), &l.m, 0), SHMQ_OK);
	ck_assert_uint_eq(l.m.lease, 0);
	ck_assert_uint_eq(l.m.deliveries, 1);
	ck_assert_uint_eq(stat_q(q).messages, 0);
	RC_EQ(shmq_ack(q, &l.m), SHMQ_OK);
	RC_EQ(shmq_nack(q, &l.m, 0), SHMQ_OK);
	RC_EQ(shmq_extend(q, &l.m, 0), SHMQ_OK);
	l.m.lease = 5;
	RC_EQ(shmq_ack(q, &l.m), SHMQ_ELEASE);
	RC_EQ(shmq_lease_view(q, &l.m, 0), SHMQ_EINVAL);
	RC_EQ(shmq_pending(q, &info, &n), SHMQ_OK);
	ck_assert_ptr_null(info);
	ck_assert_uint_eq(n, 0);
	RC_EQ(shmq_detach(q), SHMQ_OK);
	ck_assert_int_eq(daemon_cleanup(&d), 0);
}
END_TEST

/* Refused at create, with a detail that says why. */
START_TEST(test_create_refusals)
{
	struct shmq_attr a;
	struct daemon d;

	ck_assert_int_eq(daemon_start(&d, NULL), 0);
	/* Lease options on a plain queue. */
	a = attr_of(8, 64, 0600, 0);
	a.lease_timeout_ms = 1000;
	RC_EQ(shmq_create("p", &a, 0), SHMQ_EINVAL);
	expect_detail("need an acked queue");
	a = attr_of(8, 64, 0600, 0);
	a.max_deliveries = 3;
	RC_EQ(shmq_create("p", &a, 0), SHMQ_EINVAL);
	expect_detail("need an acked queue");
	create_q("small", 8, 64, 0600, 0);
	a = attr_of(8, 64, 0600, 0);
	a.dead_letter = "small";
	RC_EQ(shmq_create("p", &a, 0), SHMQ_EINVAL);
	expect_detail("need an acked queue");
	/* A dead-letter queue that does not exist, takes smaller
	 * messages, or has a bad name. */
	a = acked_attr(8, 0, 2, "nosuch");
	RC_EQ(shmq_create("q", &a, 0), SHMQ_ENOENT);
	expect_detail("dead-letter queue 'nosuch' does not exist");
	a = acked_attr(8, 0, 2, "small");       /* 256 > 64 */
	RC_EQ(shmq_create("q", &a, 0), SHMQ_EINVAL);
	expect_detail("dead-letter queue 'small' takes messages");
	a = acked_attr(8, 0, 2, "bad/name");
	RC_EQ(shmq_create("q", &a, 0), SHMQ_ENAME);
	a = attr_of(8, 64, 0600, SHMQ_ACKED | 0x100);
	RC_EQ(shmq_create("q", &a, 0), SHMQ_EINVAL);
	/* One the owner may not write: another user creates the queue. */
	if (geteuid() == 0) {
		create_q("rootonly", 8, 256, 0644, 0);
		share_socket(&d);
		pid_t pid = harness_fork();
		if (pid == 0) {
			become_nobody(NULL, 0);
			struct shmq_attr b = acked_attr(8, 0, 2, "rootonly");
			CHILD_RC(shmq_create("q", &b, 0), SHMQ_EACCES);
			CHILD_CHECK(strstr(shmq_error_detail(),
					   "dead-letter queue 'rootonly'"));
			struct shmq_attr own = attr_of(8, 256, 0600, 0);
			CHILD_RC(shmq_create("nobodys", &own, 0), SHMQ_OK);
			b = acked_attr(8, 0, 2, "nobodys");
			CHILD_RC(shmq_create("q", &b, 0), SHMQ_OK);
			_exit(0);
		}
		CHILD_OK(pid);
	}
	struct shmq_stat st;
	RC_EQ(shmq_stat_name("p", &st), SHMQ_ENOENT);
	ck_assert_int_eq(daemon_cleanup(&d), 0);

	/* An acked queue reserves capacity x max-msg for leased copies,
	 * whatever its byte budget: a refusal says so when that is what
	 * does not fit (--max-segment, then the daemon's byte limit). */
	static char *const small_seg[] = { "--max-segment", "4M", NULL };
	ck_assert_int_eq(daemon_start(&d, small_seg), 0);
	a = attr_of(4096, 4096, 0600, 0);
	a.max_bytes = 65536;
	RC_EQ(shmq_create("plain", &a, 0), SHMQ_OK);
	a.flags = SHMQ_ACKED;
	RC_EQ(shmq_create("acked", &a, 0), SHMQ_ELIMIT);
	expect_detail("are leased copies (acked: capacity x max-msg)");
	ck_assert_int_eq(daemon_cleanup(&d), 0);
	static char *const small_all[] = { "--max-bytes", "4M", NULL };
	ck_assert_int_eq(daemon_start(&d, small_all), 0);
	RC_EQ(shmq_create("acked", &a, 0), SHMQ_ELIMIT);
	expect_detail("are leased copies (acked: capacity x max-msg)");
	a.flags = 0;
	RC_EQ(shmq_create("plain", &a, 0), SHMQ_OK);
	ck_assert_int_eq(daemon_cleanup(&d), 0);
}
END_TEST

static Suite *acked_suite(void)
{
	Suite *s = suite_create("acked");
	TCase *tc = tcase_create("acked");

	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_holder_killed);
	tcase_add_test(tc, test_eos_and_join);
	tcase_add_test(tc, test_dead_letters);
	tcase_add_test(tc, test_dead_letter_relay);
	tcase_add_test(tc, test_dead_letter_queue_replaced);
	tcase_add_test(tc, test_dead_letter_retries);
	tcase_add_test(tc, test_restart);
	tcase_add_test(tc, test_calls);
	tcase_add_test(tc, test_create_refusals);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return run_suite(acked_suite(), "acked");
}
