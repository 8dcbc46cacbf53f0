/*
 * check_hostile.c - a process with write access scribbles over a live
 * queue while others use it.
 *
 * Any process that has a queue open can write any byte of its segment, so
 * the library and the daemon treat the segment as hostile input.  Here a
 * scribbler writes random bytes over header fields, head/tail and hints,
 * slots (tickets, offsets, lengths), the attachment table and the data
 * (and, on an acked queue, the lease table and its counters), while
 * producers and consumers in other processes keep working with timeouts.  They may get errors or (garbled but well-formed) messages;
 * they must never crash, read outside the mapping (the suite runs under
 * AddressSanitizer in CI), or hang past their timeouts, and the daemon
 * must keep serving everyone else.
 *
 * The two pthread mutexes are left alone: an opaque glibc mutex cannot be
 * validated by its users, so a scribbled lock word can only be survived
 * through timeouts, which the workers use anyway.
 */
#define _GNU_SOURCE
#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "lib/checks.h"
#include "lib/clock.h"
#include "lib/harness.h"
#include "lib/runner.h"
#include "lib/segment.h"
#include "shmq.h"
#include "shmq_layout.h"

#define RUN_MS   1500
#define MSG_MAX  256

/* A worker: puts or gets with short timeouts until RUN_MS is over.  Every
 * status is acceptable; only crashing or hanging is not.  Exit 0. */
static void worker(const char *name, int producer, unsigned seed)
{
	char buf[MSG_MAX];
	long until = now_ms() + RUN_MS;
	struct shmq_msg m;
	shmq_t *q;
	int rc;

	/* Opening a damaged queue may fail in several ways (corrupt header,
	 * another layout version, a scribbled-full attachment table). */
	rc = shmq_open(name, producer ? SHMQ_PRODUCER : SHMQ_CONSUMER, &q);
	if (rc != SHMQ_OK)
		_exit(rc < 0 ? 0 : 10);
	while (now_ms() < until) {
		size_t len = (size_t)rand_r(&seed) % sizeof(buf);
		if (producer) {
			memset(buf, 'a' + (int)(len % 26), len);
			rc = shmq_put(q, buf, len, 5);
		} else if (seed % 2) {
			rc = shmq_get(q, buf, sizeof(buf), &len, 5);
			/* A message handed out must fit what we gave. */
			if (rc == SHMQ_OK && len > sizeof(buf))
				_exit(11);
		} else {
			/* Leases (on a plain queue, gets), settled in turn by
			 * an ack, a nack or an extend. */
			rc = shmq_lease(q, buf, sizeof(buf), &m, 5);
			if (rc == SHMQ_OK && (m.len > sizeof(buf) ||
					      (char *)m.data != buf))
				_exit(12);
			if (rc == SHMQ_OK && len % 3 == 0)
				shmq_extend(q, &m, 10);
			if (rc == SHMQ_OK && len % 2)
				shmq_nack(q, &m, len % 5 == 0 ? SHMQ_NACK_DEAD
							      : 0);
			else if (rc == SHMQ_OK)
				shmq_ack(q, &m);
		}
	}
	shmq_detach(q);
	_exit(0);
}

/* Offsets a scribbler may hit: everything but the two lock words. */
static size_t random_target(unsigned *seed, size_t size)
{
	const size_t put_lock = offsetof(struct shmq_seg_hdr, put_lock);
	const size_t get_lock = offsetof(struct shmq_seg_hdr, get_lock);
	const size_t hot[] = {
		offsetof(struct shmq_seg_hdr, tail),
		offsetof(struct shmq_seg_hdr, head),
		offsetof(struct shmq_seg_hdr, head_hint),
		offsetof(struct shmq_seg_hdr, wpos_ticket),
		offsetof(struct shmq_seg_hdr, wpos_off),
		offsetof(struct shmq_seg_hdr, wpos_pos),
		offsetof(struct shmq_seg_hdr, wpos_bytes),
		offsetof(struct shmq_seg_hdr, tail_hint),
		offsetof(struct shmq_seg_hdr, discard_from),
		offsetof(struct shmq_seg_hdr, data_futex),
		offsetof(struct shmq_seg_hdr, space_futex),
		offsetof(struct shmq_seg_hdr, producers),
		offsetof(struct shmq_seg_hdr, capacity),
		offsetof(struct shmq_seg_hdr, name_len),
		offsetof(struct shmq_seg_hdr, leased),
		offsetof(struct shmq_seg_hdr, lease_bytes),
		offsetof(struct shmq_seg_hdr, returned),
		offsetof(struct shmq_seg_hdr, next_deadline),
		offsetof(struct shmq_seg_hdr, free_hint),
		offsetof(struct shmq_seg_hdr, departures),
		offsetof(struct shmq_seg_hdr, departures_seen),
	};
	size_t off;

	do {
		switch (rand_r(seed) % 4) {
		case 0:     /* a field the data path reads */
			off = hot[(size_t)rand_r(seed) % (sizeof(hot) /
							  sizeof(hot[0]))];
			break;
		case 1:     /* the header */
			off = (size_t)rand_r(seed) %
			      sizeof(struct shmq_seg_hdr);
			break;
		case 2:     /* the slots and the attachment table */
			off = sizeof(struct shmq_seg_hdr) +
			      (size_t)rand_r(seed) % 8192;
			break;
		default:    /* anywhere */
			off = (size_t)rand_r(seed) % size;
			break;
		}
		off &= ~(size_t)7;
	} while (off + 8 > size ||
		 (off >= put_lock && off < put_lock + SHMQ_CACHELINE) ||
		 (off >= get_lock && off < get_lock + SHMQ_CACHELINE));
	return off;
}

static void scribble(void *map, size_t size, unsigned seed, long ms)
{
	long until = now_ms() + ms;

	while (now_ms() < until) {
		uint64_t v;
		switch (rand_r(&seed) % 4) {
		case 0: v = 0; break;
		case 1: v = ~UINT64_C(0); break;
		case 2: v = (uint64_t)rand_r(&seed) % 4096; break;
		default:
			v = (uint64_t)rand_r(&seed) << 32 |
			    (uint64_t)rand_r(&seed);
		}
		memcpy((char *)map + random_target(&seed, size), &v, sizeof(v));
		if (rand_r(&seed) % 64 == 0)
			sleep_us(200);
	}
}

/* The daemon still serves: a fresh queue works end to end. */
static void assert_daemon_serves(const struct daemon *d)
{
	char buf[16];
	size_t len;
	shmq_t *p, *c;

	ck_assert_int_eq(kill(d->pid, 0), 0);
	ck_assert_int_eq(shmq_create("healthy", NULL, SHMQ_EXIST_OK), SHMQ_OK);
	ck_assert_int_eq(shmq_open("healthy", SHMQ_PRODUCER, &p), SHMQ_OK);
	ck_assert_int_eq(shmq_open("healthy", SHMQ_CONSUMER, &c), SHMQ_OK);
	ck_assert_int_eq(shmq_put(p, "ok", 2, 1000), SHMQ_OK);
	ck_assert_int_eq(shmq_get(c, buf, sizeof(buf), &len, 1000), SHMQ_OK);
	ck_assert_uint_eq(len, 2);
	ck_assert_int_eq(memcmp(buf, "ok", 2), 0);
	shmq_detach(p);
	shmq_detach(c);
}

START_TEST(scribble_while_in_use)
{
	struct daemon d;
	struct shmq_attr a;
	pid_t kids[4];
	size_t size;
	void *map;

	ck_assert_int_eq(daemon_start(&d, NULL), 0);
	shmq_attr_init(&a);
	a.capacity = 16;
	a.max_msg = MSG_MAX;
	if (_i >= 4) {          /* an acked queue, its lease table too */
		a.flags = SHMQ_ACKED;
		a.lease_timeout_ms = 3;
		a.max_deliveries = 4;
	}
	ck_assert_int_eq(shmq_create("victim", &a, 0), SHMQ_OK);
	map = segment_map_only(&d, &size);

	for (int i = 0; i < 4; i++) {
		kids[i] = harness_fork();
		if (kids[i] == 0)
			worker("victim", i < 2, (unsigned)(_i * 100 + i));
	}
	scribble(map, size, (unsigned)_i + 1, RUN_MS * 8 / 10);
	for (int i = 0; i < 4; i++) {
		int st = harness_wait(kids[i], RUN_MS + 10000);
		ck_assert_msg(st != -1, "worker %d hung", i);
		ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0,
			      "worker %d: status %d", i, st);
	}
	/* Stat and reopen of the damaged queue: an answer, not a crash. */
	struct shmq_stat s;
	int rc = shmq_stat_name("victim", &s);
	ck_assert(rc == SHMQ_OK || rc == SHMQ_ECORRUPT);
	shmq_t *q;
	rc = shmq_open("victim", SHMQ_CONSUMER, &q);
	if (rc == SHMQ_OK) {
		char buf[MSG_MAX];
		size_t len;
		rc = shmq_get(q, buf, sizeof(buf), &len, 10);
		ck_assert(rc <= SHMQ_EOS_LOST);
		shmq_detach(q);
	}
	assert_daemon_serves(&d);
	munmap(map, size);
	ck_assert_int_eq(daemon_cleanup(&d), 0);
}
END_TEST

/* A restarted daemon meets a scribbled segment: it must start, keep or
 * refuse that queue, and adopt the others. */
START_TEST(adopt_scribbled_segment)
{
	struct daemon d;
	size_t size;
	void *map;
	shmq_t *p;

	ck_assert_int_eq(daemon_start(&d, NULL), 0);
	ck_assert_int_eq(shmq_create("victim", NULL, 0), SHMQ_OK);
	ck_assert_int_eq(shmq_open("victim", SHMQ_PRODUCER, &p), SHMQ_OK);
	ck_assert_int_eq(shmq_put(p, "x", 1, 100), SHMQ_OK);
	map = segment_map_only(&d, &size);
	scribble(map, size, (unsigned)_i + 7, 50);
	ck_assert_int_eq(shmq_create("other", NULL, 0), SHMQ_OK);

	ck_assert_int_eq(daemon_restart(&d), 0);
	struct shmq_stat s;
	ck_assert_int_eq(shmq_stat_name("other", &s), SHMQ_OK);
	int rc = shmq_stat_name("victim", &s);
	ck_assert(rc == SHMQ_OK || rc == SHMQ_ENOENT || rc == SHMQ_ECORRUPT);
	assert_daemon_serves(&d);
	shmq_detach(p);
	munmap(map, size);
	ck_assert_int_eq(daemon_cleanup(&d), 0);
}
END_TEST

static void truncate_segment(const char *path, void *arg)
{
	(void)arg;
	if (!segment_is_meta(path))
		ck_assert_int_eq(truncate(path, 0), 0);
}

/* Truncates every segment (not the meta records) of daemon `d`. */
static void truncate_segments(const struct daemon *d)
{
	daemon_each_segment(d, truncate_segment, NULL);
}

/* A client with a queue open truncates its segment: every later access
 * to those pages raises SIGBUS.  The daemon, which maps every segment,
 * must lose that queue, not its life. */
START_TEST(truncated_segment)
{
	struct daemon d;
	struct shmq_stat s;
	int ready[2], go[2];
	char c;
	shmq_t *q;

	ck_assert_int_eq(daemon_start(&d, NULL), 0);
	ck_assert_int_eq(shmq_create("victim", NULL, 0), SHMQ_OK);
	ck_assert_int_eq(pipe(ready), 0);
	ck_assert_int_eq(pipe(go), 0);
	pid_t kid = harness_fork();
	if (kid == 0) {
		/* A producer that will touch the truncated pages. */
		if (shmq_open("victim", SHMQ_PRODUCER, &q) != SHMQ_OK ||
		    shmq_put(q, "x", 1, 100) != SHMQ_OK)
			_exit(10);
		if (write(ready[1], "r", 1) != 1 || read(go[0], &c, 1) != 1)
			_exit(11);
		shmq_put(q, "y", 1, 100);       /* SIGBUS here */
		_exit(0);
	}
	ck_assert_int_eq(read(ready[0], &c, 1), 1);
	truncate_segments(&d);

	/* The daemon meets the truncated queue: an error, the queue gone. */
	int rc = shmq_stat_name("victim", &s);
	ck_assert_msg(rc == SHMQ_ECORRUPT || rc == SHMQ_ENOENT, "stat: %d", rc);
	ck_assert_int_eq(shmq_stat_name("victim", &s), SHMQ_ENOENT);
	ck_assert_int_eq(shmq_open("victim", SHMQ_CONSUMER, &q), SHMQ_ENOENT);
	ck_assert(file_contains(d.log, "truncated by a client"));
	assert_daemon_serves(&d);

	/* The client dies of its own access; releasing its attachment must
	 * not touch the segment again. */
	ck_assert_int_eq(write(go[1], "g", 1), 1);
	int st = harness_wait(kid, 10000);
	ck_assert_msg(st != -1, "client hung");
	/* Killed by SIGBUS (or, under ASan, reported and exited 1). */
	ck_assert_msg(!(WIFEXITED(st) && WEXITSTATUS(st) >= 10),
		      "client setup failed: status %d", st);
	assert_daemon_serves(&d);
	ck_assert_int_eq(daemon_stop(&d, SIGTERM), 0);
	ck_assert_int_eq(daemon_cleanup(&d), 0);
}
END_TEST

/* The first the daemon hears of truncated segments is an OPEN, then a
 * LIST that walks over several of them: the broken queues must be
 * dropped without the daemon touching them (or their memory) again. */
START_TEST(truncated_then_open_and_list)
{
	static const char *const names[] = { "t1", "t2", "t3" };
	struct shmq_stat *list;
	struct daemon d;
	size_t n;
	shmq_t *q;

	ck_assert_int_eq(daemon_start(&d, NULL), 0);
	for (int i = 0; i < 3; i++)
		ck_assert_int_eq(shmq_create(names[i], NULL, 0), SHMQ_OK);
	truncate_segments(&d);
	ck_assert_int_eq(shmq_create("zz.healthy", NULL, 0), SHMQ_OK);
	int rc = shmq_open("t1", SHMQ_CONSUMER, &q);
	ck_assert_msg(rc == SHMQ_ECORRUPT || rc == SHMQ_ENOENT, "open: %d", rc);
	ck_assert_int_eq(shmq_list(&list, &n), SHMQ_OK);
	ck_assert_uint_eq(n, 1);
	ck_assert_str_eq(list[0].name, "zz.healthy");
	free(list);
	for (int i = 0; i < 3; i++) {
		struct shmq_stat st;
		ck_assert_int_eq(shmq_stat_name(names[i], &st), SHMQ_ENOENT);
		/* The name is free again. */
		ck_assert_int_eq(shmq_create(names[i], NULL, 0), SHMQ_OK);
	}
	assert_daemon_serves(&d);
	ck_assert_int_eq(daemon_cleanup(&d), 0);
}
END_TEST

/* A segment truncated while no daemon ran is refused at adoption. */
START_TEST(truncated_while_down)
{
	struct daemon d;
	struct shmq_stat s;

	ck_assert_int_eq(daemon_start(&d, NULL), 0);
	ck_assert_int_eq(shmq_create("victim", NULL, 0), SHMQ_OK);
	daemon_stop(&d, SIGKILL);
	truncate_segments(&d);
	ck_assert_int_eq(daemon_restart(&d), 0);
	ck_assert_int_eq(shmq_stat_name("victim", &s), SHMQ_ENOENT);
	ck_assert(file_contains(d.log, "cannot adopt queue 'victim'"));
	assert_daemon_serves(&d);
	ck_assert_int_eq(daemon_cleanup(&d), 0);
}
END_TEST

static Suite *hostile_suite(void)
{
	Suite *s = suite_create("hostile");
	TCase *tc = tcase_create("scribble");

	tcase_set_timeout(tc, 60);
	/* Several seeds: each loop is a different scribbling. */
	tcase_add_loop_test(tc, scribble_while_in_use, 0, 6);
	tcase_add_loop_test(tc, adopt_scribbled_segment, 0, 4);
	tcase_add_test(tc, truncated_segment);
	tcase_add_test(tc, truncated_then_open_and_list);
	tcase_add_test(tc, truncated_while_down);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return run_suite(hostile_suite(), "hostile");
}
