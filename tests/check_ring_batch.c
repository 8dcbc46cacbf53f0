/*
 * check_ring_batch.c - the ring (common/ring.c): batches, inline
 * messages, publication marks and zero copy.
 *
 * Owns the many-messages-per-call side of ring.c: batch put and get
 * (16-aligned in the receive buffer, partial when the queue or the buffer
 * runs out, one commit per batch), a batch blocking part-way while
 * another process makes room, messages stored in their slot or in the
 * data ring around SHMQ_INLINE_MAX, consumers finding a commit whose
 * publication mark is missing, and reserve/commit and view/release,
 * including a process killed in between.
 *
 * Rules of every ring suite (tests/lib/ring_kid.h): processes hand off
 * through pipes and state they publish in the segment, never through
 * timing; every test is bounded (Check's timeout, children's alarm(),
 * timed reads); the segment has no name once formatted, and the fixture
 * reaps every child.  No daemon takes part.
 */
#define _GNU_SOURCE
#include <check.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "lib/checks.h"
#include "lib/clock.h"
#include "lib/ring_kid.h"
#include "lib/runner.h"

/* ================================================================== */
/* Batches                                                            */

START_TEST(test_batch_put_get)
{
	struct ring_config c = seg_config(8, 32, 0, 0);
	struct iovec v[12], out[16];
	char names[12][8], buf[256], big[40];
	size_t done, got;

	seg_create(&c);
	for (int i = 0; i < 12; i++) {
		snprintf(names[i], sizeof(names[i]), "b%d", i);
		v[i].iov_base = names[i];
		v[i].iov_len = strlen(names[i]);
	}
	ck_assert_int_eq(ring_put(&R, v, 5, &done, 0), SHMQ_OK);
	ck_assert_uint_eq(done, 5);
	ck_assert_uint_eq(stat_now().messages, 5);

	/* Several at once, each starting 16-aligned from the buffer, so
	 * that a caller may read a message as a struct. */
	ck_assert_int_eq(ring_get(&R, buf, sizeof(buf), out, 3, &got, 0), 0);
	ck_assert_uint_eq(got, 3);
	for (int i = 0; i < 3; i++) {
		ck_assert_uint_eq(out[i].iov_len, 2);
		ck_assert_mem_eq(out[i].iov_base, names[i], 2);
	}
	ck_assert_ptr_eq(out[0].iov_base, buf);
	ck_assert_ptr_eq(out[1].iov_base, buf + 16);
	ck_assert_ptr_eq(out[2].iov_base, buf + 32);
	/* As many as the buffer holds: "b3" fits, "b4" does not (it would
	 * start at 16, and 17 bytes leave it 1). */
	ck_assert_int_eq(ring_get(&R, buf, 17, out, 8, &got, 0), SHMQ_OK);
	ck_assert_uint_eq(got, 1);
	ck_assert_mem_eq(out[0].iov_base, "b3", 2);
	ck_assert_int_eq(ring_get(&R, buf, sizeof(buf), out, 8, &got, 0), 0);
	ck_assert_uint_eq(got, 1);
	ck_assert_mem_eq(out[0].iov_base, "b4", 2);
	ck_assert_int_eq(ring_get(&R, buf, sizeof(buf), out, 8, &got, 0),
			 SHMQ_EAGAIN);
	ck_assert_uint_eq(got, 0);

	/* A try puts what fits and says how many. */
	ck_assert_int_eq(ring_put(&R, v, 12, &done, 0), SHMQ_EAGAIN);
	ck_assert_uint_eq(done, 8);
	ck_assert_int_eq(ring_get(&R, buf, sizeof(buf), out, 16, &got, 0), 0);
	ck_assert_uint_eq(got, 8);
	for (int i = 0; i < 8; i++)
		ck_assert_mem_eq(out[i].iov_base, names[i], out[i].iov_len);

	/* A too-big message stops the batch; those before it are queued,
	 * it and those after it are not. */
	memset(big, 'B', sizeof(big));
	struct iovec mix[3] = { { "x", 1 }, { big, 40 }, { "y", 1 } };
	ck_assert_int_eq(ring_put(&R, mix, 3, &done, 0), SHMQ_E2BIG);
	ck_assert_uint_eq(done, 1);
	expect_msg(&R, "x");
	expect_empty(&R);

	ck_assert_int_eq(ring_put(&R, v, 0, &done, 0), SHMQ_OK);
	ck_assert_uint_eq(done, 0);
	ck_assert_int_eq(ring_get(&R, buf, sizeof(buf), out, 0, &got, 0),
			 SHMQ_EINVAL);
	/* A first message that does not fit is reported as for one get. */
	put_ok(&R, "abcdef");
	ck_assert_int_eq(ring_get(&R, buf, 4, out, 8, &got, 0), SHMQ_EMSGSIZE);
	ck_assert_uint_eq(got, 0);
	ck_assert_uint_eq(out[0].iov_len, 6);
	expect_msg(&R, "abcdef");
}
END_TEST

/* A batch larger than the queue blocks part-way and completes as another
 * process makes room; the consumer sees it in order. */
/* ring_lease on a plain queue is a batch get, 16 messages at a time (the
 * core never allocates): a batch of more than 16 is taken whole, in
 * order, laid out as one get lays it out, and stops where the queue or
 * the buffer runs out, also in a later chunk. */
START_TEST(test_lease_plain_batch)
{
	struct ring_config c = seg_config(64, 64, 0, 0);
	struct shmq_msg m[50];
	struct iovec v[45];
	char data[45][64], buf[45 * 80];
	size_t done, got, end;

	seg_create(&c);
	for (int i = 0; i < 45; i++) {
		memset(data[i], 'a' + i % 26, sizeof(data[i]));
		v[i].iov_base = data[i];
		v[i].iov_len = (size_t)(i % 20) + 1;
	}
	ck_assert_int_eq(ring_put(&R, v, 45, &done, 0), SHMQ_OK);

	/* 40 of the 45, in three chunks: one call. */
	ck_assert_int_eq(ring_lease(&R, buf, sizeof(buf), m, 40, &got, 0, 0),
			 SHMQ_OK);
	ck_assert_uint_eq(got, 40);
	end = 0;
	for (int i = 0; i < 40; i++) {
		size_t off = (size_t)((char *)m[i].data - buf);
		ck_assert_uint_eq(off % 16, 0);
		ck_assert_uint_eq(off, (end + 15) / 16 * 16);
		ck_assert_uint_eq(m[i].len, v[i].iov_len);
		ck_assert_mem_eq(m[i].data, data[i], m[i].len);
		ck_assert_uint_eq(m[i].seq, (uint64_t)i);
		ck_assert_uint_eq(m[i].deliveries, 1);
		ck_assert_uint_eq(m[i].lease, 0);
		end = off + m[i].len;
	}
	/* Asked for 50, 5 are left: the second chunk finds the queue
	 * empty, which is no error. */
	ck_assert_int_eq(ring_lease(&R, buf, sizeof(buf), m, 50, &got, 0, 0),
			 SHMQ_OK);
	ck_assert_uint_eq(got, 5);
	ck_assert_uint_eq(m[4].seq, 44);
	ck_assert_int_eq(ring_lease(&R, buf, sizeof(buf), m, 50, &got, 0, 0),
			 SHMQ_EAGAIN);
	ck_assert_uint_eq(got, 0);

	/* A buffer that runs out in the second chunk: of 20 messages of 20
	 * bytes, one every 32, 600 bytes hold 19. */
	for (int i = 0; i < 20; i++)
		v[i].iov_len = 20;
	ck_assert_int_eq(ring_put(&R, v, 20, &done, 0), SHMQ_OK);
	ck_assert_int_eq(ring_lease(&R, buf, 600, m, 20, &got, 0, 0),
			 SHMQ_OK);
	ck_assert_uint_eq(got, 19);
	ck_assert_uint_eq(m[18].seq, 45 + 18);
	ck_assert_ptr_eq(m[18].data, buf + 18 * 32);
	ck_assert_int_eq(ring_lease(&R, buf, 600, m, 20, &got, 0, 0),
			 SHMQ_OK);
	ck_assert_uint_eq(got, 1);
	ck_assert_uint_eq(m[0].seq, 45 + 19);
}
END_TEST

START_TEST(test_batch_blocks_across_processes)
{
	struct ring_config c = seg_config(4, 32, 0, 0);
	static char names[20][8];
	struct op op = OP(.timeout = SHMQ_FOREVER, .n = 20);
	char buf[32];
	size_t len;

	for (int i = 0; i < 20; i++) {
		snprintf(names[i], sizeof(names[i]), "k%02d", i);
		op.msgs[i] = names[i];
	}
	seg_create(&c);
	struct kid *k = kid_op(SHMQ_ROLE_PRODUCER, kid_put, &op);
	EVENTUALLY(entry_wait(k->idx) == SHMQ_WAIT_PUT);
	/* Blocked after committing the first four. */
	ck_assert_uint_eq(stat_now().messages, 4);
	kid_silent(k);
	for (int i = 0; i < 20; i++) {
		ck_assert_int_eq(get_one(&R, buf, sizeof(buf), &len, WAIT_MS),
				 SHMQ_OK);
		ck_assert_uint_eq(len, 3);
		ck_assert_mem_eq(buf, names[i], 3);
	}
	struct kres res = kid_result(k);
	ck_assert_int_eq(res.rc, SHMQ_OK);
	ck_assert_uint_eq(res.count, 20);
	expect_empty(&R);
}
END_TEST

/* A batch get blocks while empty and returns what is there at once. */
START_TEST(test_batch_get_blocks)
{
	struct ring_config c = seg_config(8, 32, 0, 0);
	struct op op = OP(.timeout = SHMQ_FOREVER, .n = 8);

	seg_create(&c);
	struct kid *k = kid_op(SHMQ_ROLE_CONSUMER, kid_get, &op);
	EVENTUALLY(entry_wait(k->idx) == SHMQ_WAIT_GET);
	struct iovec v[3] = { { "one", 3 }, { "two", 3 }, { "six", 3 } };
	size_t done;
	ck_assert_int_eq(ring_put(&R, v, 3, &done, 0), SHMQ_OK);
	struct kres res = kid_result(k);
	ck_assert_int_eq(res.rc, SHMQ_OK);
	/* One batch put is one commit: the consumer sees all three. */
	ck_assert_uint_eq(res.count, 3);
	ck_assert_mem_eq(res.data, "one", 3);
	expect_empty(&R);
}
END_TEST

/* ================================================================== */
/* Inline messages and publication marks                              */

/* Messages up to SHMQ_INLINE_MAX bytes live in their slot, longer ones in
 * the data ring: mixed sizes around the boundary, over many laps of both
 * rings, singly and in batches, keep their order and their bytes. */
START_TEST(test_inline_boundary)
{
	static const size_t sizes[] = { 0, 1, 23, 24, 25, 31, 32, 40, 63, 64 };
	const size_t nsizes = sizeof(sizes) / sizeof(sizes[0]);
	struct ring_config c = seg_config(4, 64, 0, 0);
	uint8_t msg[64], buf[64 * 4 + 64];
	struct iovec v[3], out[3];
	size_t len, done, got;

	seg_create(&c);
	for (size_t i = 0; i < 200; i++) {
		size_t n = sizes[i % nsizes];
		for (size_t b = 0; b < n; b++)
			msg[b] = (uint8_t)(i * 7 + b);
		ck_assert_int_eq(put_one(&R, msg, n, 0), SHMQ_OK);
		ck_assert_int_eq(get_one(&R, buf, sizeof(buf), &len, 0), SHMQ_OK);
		ck_assert_uint_eq(len, n);
		ck_assert_mem_eq(buf, msg, n);
	}
	/* Every inline length, from the very end of a page followed by an
	 * inaccessible one: put reads exactly the message's bytes (into
	 * registers, a word at a time), never past them. */
	long pg = sysconf(_SC_PAGESIZE);
	uint8_t *two = mmap(NULL, 2 * (size_t)pg, PROT_READ | PROT_WRITE,
			    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ck_assert_ptr_ne(two, MAP_FAILED);
	ck_assert_int_eq(mprotect(two + pg, (size_t)pg, PROT_NONE), 0);
	for (size_t n = 0; n <= SHMQ_INLINE_MAX + 1; n++) {
		uint8_t *end = two + pg - n;
		for (size_t b = 0; b < n; b++)
			end[b] = (uint8_t)(n * 13 + b + 1);
		ck_assert_int_eq(put_one(&R, end, n, 0), SHMQ_OK);
		memset(buf, 0xee, sizeof(buf));
		ck_assert_int_eq(get_one(&R, buf, sizeof(buf), &len, 0), SHMQ_OK);
		ck_assert_uint_eq(len, n);
		ck_assert_mem_eq(buf, end, n);
	}
	munmap(two, 2 * (size_t)pg);
	/* Batches of three: slot, ring and slot again, in one call. */
	for (size_t i = 0; i < 60; i++) {
		uint8_t m[3][64];
		for (int k = 0; k < 3; k++) {
			size_t n = sizes[(i + (size_t)k * 3) % nsizes];
			memset(m[k], 'a' + k, n);
			v[k].iov_base = m[k];
			v[k].iov_len = n;
		}
		ck_assert_int_eq(ring_put(&R, v, 3, &done, 0), SHMQ_OK);
		ck_assert_uint_eq(done, 3);
		ck_assert_int_eq(ring_get(&R, buf, sizeof(buf), out, 3, &got, 0),
				 SHMQ_OK);
		ck_assert_uint_eq(got, 3);
		for (int k = 0; k < 3; k++) {
			ck_assert_uint_eq(out[k].iov_len, v[k].iov_len);
			ck_assert_mem_eq(out[k].iov_base, m[k], v[k].iov_len);
		}
	}
	/* A full check with short and long messages queued side by side
	 * (inline ones take no room in the data ring). */
	for (size_t k = 0; k < 4; k++) {
		memset(msg, 'q', sizeof(msg));
		ck_assert_int_eq(put_one(&R, msg, k % 2 ? 40 : 8, 0), SHMQ_OK);
	}
	ck_assert_int_eq(ring_check(&R), SHMQ_OK);
	for (size_t k = 0; k < 4; k++) {
		ck_assert_int_eq(get_one(&R, buf, sizeof(buf), &len, 0), SHMQ_OK);
		ck_assert_uint_eq(len, k % 2 ? 40 : 8);
	}
	ck_assert_int_eq(ring_check(&R), SHMQ_OK);
	expect_empty(&R);
}
END_TEST

/* Consumers learn of a message from its slot's published mark and look
 * at `tail` only when the mark is missing.  A producer killed between its
 * commit and the mark must not make its message invisible: not to a get
 * that may not wait, and not to one that waits (which trusts the marks
 * at first, then looks at tail before it sleeps). */
static int sleeps;

static void count_sleeps(enum ring_hook_point p)
{
	if (p == RING_HOOK_SLEEP)
		sleeps++;
}

START_TEST(test_unpublished_commit_delivered)
{
	struct ring_config c = seg_config(4, 64, 0, 0);
	char buf[64];
	size_t len;

	seg_create(&c);
	sleeps = 0;
	ring_test_hook = count_sleeps;
	for (int timeout = SHMQ_NOWAIT; timeout <= WAIT_MS;
	     timeout += WAIT_MS) {
		put_ok(&R, "a");
		put_ok(&R, "b");
		uint64_t head = R.hdr->head;
		ck_assert_uint_eq(R.slots[head & R.mask].published, head);
		R.slots[head & R.mask].published = SHMQ_UNPUBLISHED;
		R.slots[(head + 1) & R.mask].published = SHMQ_UNPUBLISHED;
		ck_assert_int_eq(get_one(&R, buf, sizeof(buf), &len, timeout),
				 SHMQ_OK);
		ck_assert(len == 1 && buf[0] == 'a');
		ck_assert_int_eq(get_one(&R, buf, sizeof(buf), &len, timeout),
				 SHMQ_OK);
		ck_assert(len == 1 && buf[0] == 'b');
		/* Found by a look at tail, never by sleeping until the 1 s
		 * cap: the look before sleeping must already find them. */
		ck_assert_int_eq(sleeps, 0);
		expect_empty(&R);
	}
	ring_test_hook = NULL;
}
END_TEST

/* ================================================================== */
/* Zero copy                                                          */

START_TEST(test_zero_copy)
{
	struct ring_config c = seg_config(2, 32, 0, 0);
	const void *view;
	void *data;
	size_t len;

	seg_create(&c);
	/* Written in place, visible only once committed. */
	ck_assert_int_eq(ring_reserve(&R, 5, &data, 0), SHMQ_OK);
	memcpy(data, "hello", 5);
	ck_assert_uint_eq(stat_now().messages, 0);
	ck_assert_int_eq(ring_reserve(&R, 1, &data, 0), SHMQ_EINVAL);
	ck_assert_int_eq(ring_commit(&R, 0), SHMQ_OK);
	ck_assert_int_eq(ring_commit(&R, 0), SHMQ_EINVAL);
	/* Cancelled: never seen. */
	ck_assert_int_eq(ring_reserve(&R, 3, &data, 0), SHMQ_OK);
	memcpy(data, "bad", 3);
	ck_assert_int_eq(ring_commit(&R, 1), SHMQ_OK);
	ck_assert_uint_eq(stat_now().messages, 1);
	ck_assert_int_eq(ring_reserve(&R, 33, &data, 0), SHMQ_E2BIG);
	put_ok(&R, "two");
	ck_assert_int_eq(ring_reserve(&R, 1, &data, 0), SHMQ_EAGAIN);
	ck_assert_int_eq(ring_reserve(&R, 1, &data, 20), SHMQ_ETIMEDOUT);

	/* Read in place; left, it stays first; taken, it is gone. */
	ck_assert_int_eq(ring_view(&R, &view, &len, 0), SHMQ_OK);
	ck_assert_uint_eq(len, 5);
	ck_assert_mem_eq(view, "hello", 5);
	ck_assert_int_eq(ring_view(&R, &view, &len, 0), SHMQ_EINVAL);
	ck_assert_int_eq(ring_release(&R, 1), SHMQ_OK);
	ck_assert_int_eq(ring_release(&R, 1), SHMQ_EINVAL);
	ck_assert_int_eq(ring_view(&R, &view, &len, 0), SHMQ_OK);
	ck_assert_mem_eq(view, "hello", 5);
	ck_assert_int_eq(ring_release(&R, 0), SHMQ_OK);
	expect_msg(&R, "two");
	ck_assert_int_eq(ring_view(&R, &view, &len, 0), SHMQ_EAGAIN);

	/* Closed while reserved: the commit fails and nothing appears. */
	ck_assert_int_eq(ring_reserve(&R, 4, &data, 0), SHMQ_OK);
	memcpy(data, "late", 4);
	ck_assert_int_eq(ring_close(&R, SHMQ_CLOSE_DRAIN, NULL), SHMQ_OK);
	ck_assert_int_eq(ring_commit(&R, 0), SHMQ_ECLOSED);
	ck_assert_int_eq(ring_reserve(&R, 1, &data, 0), SHMQ_ECLOSED);
	ck_assert_int_eq(ring_view(&R, &view, &len, SHMQ_FOREVER), SHMQ_EOS);
}
END_TEST

/* A zero-copy operation holds a robust mutex, which only its owner
 * thread can unlock: ending it from another thread is refused (the lock
 * would otherwise stay held until the owner thread exits), and the owner
 * can still end it. */
struct other_thread {
	int cancel_leave;       /* commit/release: 0, cancel/leave: 1 */
	int put_side;
	int rc;
};

static void *end_elsewhere(void *arg)
{
	struct other_thread *o = arg;

	o->rc = o->put_side ? ring_commit(&R, o->cancel_leave)
			    : ring_release(&R, o->cancel_leave);
	return NULL;
}

static int end_in_thread(int put_side, int cancel_leave)
{
	struct other_thread o = { cancel_leave, put_side, 99 };
	pthread_t t;

	ck_assert_int_eq(pthread_create(&t, NULL, end_elsewhere, &o), 0);
	ck_assert_int_eq(pthread_join(t, NULL), 0);
	return o.rc;
}

START_TEST(test_zero_copy_other_thread)
{
	struct ring_config c = seg_config(4, 32, 0, 0);
	const void *view;
	void *data;
	size_t len;

	seg_create(&c);
	ck_assert_int_eq(ring_reserve(&R, 2, &data, 0), SHMQ_OK);
	memcpy(data, "zc", 2);
	ck_assert_int_eq(end_in_thread(1, 0), SHMQ_EINVAL);
	ck_assert_int_eq(end_in_thread(1, 1), SHMQ_EINVAL);
	ck_assert_uint_eq(stat_now().messages, 0);
	ck_assert_int_eq(ring_commit(&R, 0), SHMQ_OK);
	/* The lock was released: another put goes through. */
	put_ok(&R, "next");
	ck_assert_int_eq(ring_view(&R, &view, &len, 0), SHMQ_OK);
	ck_assert_int_eq(end_in_thread(0, 0), SHMQ_EINVAL);
	ck_assert_int_eq(end_in_thread(0, 1), SHMQ_EINVAL);
	ck_assert_int_eq(ring_release(&R, 0), SHMQ_OK);
	expect_msg(&R, "next");
	expect_empty(&R);
}
END_TEST

static int kid_reserve_and_park(struct kctx *c)
{
	void *data;

	if (ring_reserve(&c->r, 4, &data, SHMQ_FOREVER) != SHMQ_OK)
		return CHILD_FAIL;
	memcpy(data, "dead", 4);
	if (write(c->evt, "P", 1) != 1)
		return CHILD_FAIL;
	for (;;)
		pause();
}

static int kid_view_and_park(struct kctx *c)
{
	const void *data;
	size_t len;

	if (ring_view(&c->r, &data, &len, SHMQ_FOREVER) != SHMQ_OK)
		return CHILD_FAIL;
	if (write(c->evt, "P", 1) != 1)
		return CHILD_FAIL;
	for (;;)
		pause();
}

/* A process killed between reserve and commit, or between view and take,
 * holds a lock when it dies; the next holder repairs, and the queue is as
 * if the dead one had never started. */
START_TEST(test_crash_zero_copy)
{
	struct ring_config c = seg_config(4, 32, 0, 0);

	seg_create(&c);
	put_ok(&R, "m0");
	struct kid *k = kid_start(SHMQ_ROLE_PRODUCER, kid_reserve_and_park,
				  NULL);
	kid_expect_parked(k);
	ck_assert_int_eq(put_one_str(&R, "x", SHMQ_NOWAIT), SHMQ_EAGAIN);
	kid_kill(k);
	ring_client_remove(&R, k->idx, 1);
	put_ok(&R, "m1");               /* inherits put_lock, repairs */
	expect_msg(&R, "m0");
	expect_msg(&R, "m1");           /* "dead" never appeared */
	expect_empty(&R);

	put_ok(&R, "m2");
	k = kid_start(SHMQ_ROLE_CONSUMER, kid_view_and_park, NULL);
	kid_expect_parked(k);
	kid_kill(k);
	ring_client_remove(&R, k->idx, 1);
	expect_msg(&R, "m2");           /* still there for the next one */
	expect_empty(&R);
	ck_assert_int_eq(ring_check(&R), SHMQ_OK);
}
END_TEST

/* ================================================================== */

static Suite *ring_batch_suite(void)
{
	Suite *s = suite_create("ring batch");
	TCase *tc;

	tc = ring_tcase(s, "batch", 10);
	tcase_add_test(tc, test_batch_put_get);
	tcase_add_test(tc, test_lease_plain_batch);
	tcase_add_test(tc, test_batch_blocks_across_processes);
	tcase_add_test(tc, test_batch_get_blocks);
	tcase_add_test(tc, test_inline_boundary);
	tcase_add_test(tc, test_unpublished_commit_delivered);

	tc = ring_tcase(s, "zerocopy", 10);
	tcase_add_test(tc, test_zero_copy);
	tcase_add_test(tc, test_zero_copy_other_thread);
	tcase_add_test(tc, test_crash_zero_copy);
	return s;
}

int main(void)
{
	return run_suite(ring_batch_suite(), "ring_batch");
}
