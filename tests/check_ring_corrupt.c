/*
 * check_ring_corrupt.c - the ring (common/ring.c) on a corrupted segment.
 *
 * Owns the untrusted-memory rules: whatever a process with the queue
 * open writes into the segment (header, indices and hints, slots,
 * attachment table, data; not the two mutexes, see below), every
 * operation answers with an error or valid data, never with an access
 * outside the segment (it sits between two PROT_NONE guard pages and
 * receive buffers are heap blocks of the exact size, so the MMU and
 * AddressSanitizer both watch) and never with a wait that outlasts its
 * timeout.  The fuzz loops draw from tests/lib/rnd.h (SHMQ_TEST_SEED
 * replays another seed).
 *
 * Rules of every ring suite (tests/lib/ring_kid.h): processes hand off
 * through pipes and state they publish in the segment, never through
 * timing; every test is bounded (Check's timeout, children's alarm(),
 * timed reads); the segment has no name once formatted, and the fixture
 * reaps every child.  No daemon takes part.
 */
#define _GNU_SOURCE
#include <check.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lib/checks.h"
#include "lib/clock.h"
#include "lib/ring_kid.h"
#include "lib/rnd.h"
#include "lib/runner.h"

/* ================================================================== */
/* Corrupted segments                                                 */

/*
 * The corruption tests scribble over everything in a segment except the
 * two pthread mutexes (put_lock, get_lock): a glibc mutex is opaque, so
 * no reader can validate one; a damaged lock word shows up as an error
 * from pthread_mutex_*lock (mapped to SHMQ_ECORRUPT) or as a hang that
 * only the timeouts bound.  Everything else is input that ring.c must
 * check before use.
 *
 * The geometry is chosen so that the data ring ends exactly at the end of
 * the segment, where the guard page begins: reading one byte past the
 * ring faults.
 */
static struct ring_config corrupt_config(void)
{
	/* capacity 63, 64-byte messages: a 4096-byte data ring that ends
	 * the segment. */
	return seg_config(63, 64, 0, 0);
}

static int in_lock(size_t off)
{
	size_t put = offsetof(struct shmq_seg_hdr, put_lock);
	size_t get = offsetof(struct shmq_seg_hdr, get_lock);

	return (off >= put && off < put + sizeof(union shmq_lock)) ||
	       (off >= get && off < get + sizeof(union shmq_lock));
}

static int get_status_ok(int rc)
{
	return rc == SHMQ_OK || rc == SHMQ_EAGAIN || rc == SHMQ_EOS ||
	       rc == SHMQ_EOS_LOST || rc == SHMQ_ECORRUPT;
}

static int put_status_ok(int rc)
{
	return rc == SHMQ_OK || rc == SHMQ_EAGAIN || rc == SHMQ_ECLOSED ||
	       rc == SHMQ_ECORRUPT;
}

/* Runs every operation, without blocking, on a possibly corrupted queue
 * and checks that each answer is one the API allows.  The receive buffer
 * is a heap block of exactly max_msg bytes, so AddressSanitizer catches a
 * copy that trusts a corrupted length. */
static void exercise(struct ring *r, int close_too)
{
	uint8_t *buf = malloc(r->max_msg + 1);
	uint8_t msg[64] = { 0 };
	struct iovec out[4], v[2];
	struct shmq_stat st;
	size_t got, done;
	int rc;

	ck_assert_ptr_nonnull(buf);
	ring_stat(r, &st);
	ck_assert_uint_le(st.messages, r->capacity);
	ck_assert_uint_le(strlen(st.name), SHMQ_NAME_MAX);
	rc = ring_check(r);
	ck_assert_msg(rc == SHMQ_OK || rc == SHMQ_ECORRUPT, "check: %d", rc);
	for (int i = 0; i < 3; i++) {
		rc = ring_get(r, buf, r->max_msg, out, 4, &got, SHMQ_NOWAIT);
		ck_assert_msg(get_status_ok(rc), "get: %d", rc);
		ck_assert_uint_eq(got > 0, rc == SHMQ_OK);
		size_t used = 0;
		for (size_t j = 0; j < got; j++) {
			if (j > 0)      /* messages start 16-aligned */
				used = (used + 15) & ~(size_t)15;
			ck_assert_ptr_eq(out[j].iov_base, buf + used);
			used += out[j].iov_len;
		}
		ck_assert_uint_le(used, r->max_msg);
	}
	v[0].iov_base = msg;
	v[0].iov_len = r->max_msg < 20 ? r->max_msg : 20;
	v[1] = v[0];
	rc = ring_put(r, v, 2, &done, SHMQ_NOWAIT);
	ck_assert_msg(put_status_ok(rc), "put: %d", rc);
	ck_assert_uint_le(done, 2);
	if (close_too) {
		uint64_t disc;
		rc = ring_close(r, SHMQ_CLOSE_NOW, &disc);
		ck_assert_msg(rc == SHMQ_OK || rc == SHMQ_ECORRUPT,
			      "close: %d", rc);
		rc = ring_get(r, buf, r->max_msg, out, 4, &got, SHMQ_NOWAIT);
		ck_assert_msg(get_status_ok(rc), "get after close: %d", rc);
	}
	free(buf);
}

/* A queue with history: the rings have wrapped and messages are queued. */
static void corrupt_fill(void)
{
	char m[64];

	for (int i = 0; i < 100; i++) {
		int len = snprintf(m, sizeof(m), "fill-%d-%.*s", i, i % 40,
				   "................................................");
		ck_assert_int_eq(put_one(&R, m, (size_t)len, 0), SHMQ_OK);
		if (i < 80)
			ck_assert_int_eq(get_one(&R, m, sizeof(m),
						 &(size_t){ 0 }, 0), SHMQ_OK);
	}
}

static uint64_t peek(const void *p, size_t w)
{
	uint64_t v64;
	uint32_t v32;

	if (w == 8) {
		memcpy(&v64, p, 8);
		return v64;
	}
	memcpy(&v32, p, 4);
	return v32;
}

static void poke(void *p, size_t w, uint64_t v)
{
	uint32_t v32 = (uint32_t)v;

	if (w == 8)
		memcpy(p, &v, 8);
	else
		memcpy(p, &v32, 4);
}

/* Values worth trying in place of `orig`. */
static size_t bad_values(uint64_t orig, uint64_t *v)
{
	size_t n = 0;

	v[n++] = 0;
	v[n++] = 1;
	v[n++] = orig - 1;
	v[n++] = orig + 1;
	v[n++] = orig * 2;
	v[n++] = orig / 2;
	v[n++] = orig + 4096;
	v[n++] = orig ^ (UINT64_C(1) << 31);
	v[n++] = UINT32_MAX;
	v[n++] = UINT64_MAX;
	v[n++] = UINT64_C(1) << 62;
	v[n++] = UINT64_C(1) << 63;
	for (int i = 0; i < 8; i++)
		v[n++] = rnd() >> (rnd() % 64);
	return n;
}

struct field {
	const char *name;
	size_t off, width;
	int must_reject;        /* attach must refuse any other value */
};

#define HDR_FIELD(f, rej)                                                    \
	{ #f, offsetof(struct shmq_seg_hdr, f),                              \
	  sizeof(((struct shmq_seg_hdr *)0)->f), rej }

static const struct field hdr_fields[] = {
	HDR_FIELD(magic, 1),
	HDR_FIELD(version, 1),
	HDR_FIELD(hdr_size, 1),
	HDR_FIELD(seg_size, 1),
	HDR_FIELD(ring_slots, 1),
	HDR_FIELD(data_size, 1),
	HDR_FIELD(slots_off, 1),
	HDR_FIELD(clients_off, 1),
	HDR_FIELD(data_off, 1),
	/* The configuration proper: another value may describe another
	 * valid queue of the same geometry (max_msg 64 vs 60, say). */
	HDR_FIELD(capacity, 0),
	HDR_FIELD(max_msg, 0),
	HDR_FIELD(clients, 0),
	HDR_FIELD(max_bytes, 0),
	HDR_FIELD(config_flags, 0),
	HDR_FIELD(queue_id, 0),
	HDR_FIELD(name_len, 0),
	HDR_FIELD(mode, 0),
	HDR_FIELD(state_flags, 0),
	HDR_FIELD(producers, 0),
	HDR_FIELD(consumers, 0),
	HDR_FIELD(client_gen, 0),
};

START_TEST(test_corrupt_header)
{
	struct ring_config c = corrupt_config();
	uint64_t vals[32];
	struct ring r2;

	seg_create(&c);
	ck_assert_uint_eq(R.seg_size - (uint64_t)(R.data - S.mem),
			  R.data_size);
	for (size_t f = 0; f < sizeof(hdr_fields) / sizeof(hdr_fields[0]);
	     f++) {
		const struct field *fd = &hdr_fields[f];
		uint8_t *p = S.mem + fd->off;
		seg_reformat(&c);
		uint64_t orig = peek(p, fd->width);
		size_t n = bad_values(orig, vals);
		for (size_t i = 0; i < n; i++) {
			uint64_t v = fd->width == 4 ? (uint32_t)vals[i]
						    : vals[i];
			if (v == orig)
				continue;
			seg_reformat(&c);
			corrupt_fill();
			poke(p, fd->width, v);
			int rc = ring_attach(&r2, S.mem, S.size);
			int want = fd->off == offsetof(struct shmq_seg_hdr,
						       version)
					   ? SHMQ_EPROTO : SHMQ_ECORRUPT;
			if (fd->must_reject)
				ck_assert_msg(rc == want,
					      "%s = %#llx: attach %d", fd->name,
					      (unsigned long long)v, rc);
			else
				ck_assert_msg(rc == SHMQ_OK ||
					      rc == SHMQ_ECORRUPT,
					      "%s = %#llx: attach %d", fd->name,
					      (unsigned long long)v, rc);
			if (rc == SHMQ_OK) {
				ck_assert_uint_le(r2.seg_size, S.size);
				exercise(&r2, i & 1);
			}
			/* The view attached before the damage keeps its
			 * private copy of the configuration. */
			exercise(&R, 0);
		}
	}
}
END_TEST

/* An attached view never rereads the configuration: damage to it after
 * attach changes nothing for that view. */
START_TEST(test_corrupt_header_after_attach)
{
	struct ring_config c = corrupt_config();

	seg_create(&c);
	put_ok(&R, "before");
	S.mem[0] ^= 0xff;                               /* magic */
	R.hdr->capacity = UINT32_MAX;
	R.hdr->max_msg = UINT32_MAX;
	R.hdr->data_size = UINT64_MAX;
	R.hdr->data_off = 1;
	put_ok(&R, "after");
	expect_msg(&R, "before");
	expect_msg(&R, "after");
	struct shmq_stat st = stat_now();
	ck_assert_uint_eq(st.capacity, 63);
	ck_assert_uint_eq(st.max_msg, 64);
	struct ring r2;
	ck_assert_int_eq(ring_attach(&r2, S.mem, S.size), SHMQ_ECORRUPT);

	/* A name without its terminator, or longer than allowed, is
	 * reported by the check and clipped by stat. */
	seg_reformat(&c);
	memset(R.hdr->name, 'z', sizeof(R.hdr->name));
	R.hdr->name_len = 1000;
	ck_assert_int_eq(ring_check(&R), SHMQ_ECORRUPT);
	st = stat_now();
	ck_assert_uint_le(strlen(st.name), SHMQ_NAME_MAX);
	R.hdr->name_len = SHMQ_NAME_MAX;
	ck_assert_int_eq(ring_check(&R), SHMQ_ECORRUPT);
	st = stat_now();
	ck_assert_uint_eq(strlen(st.name), SHMQ_NAME_MAX);
}
END_TEST

#define IDX_FIELD(f) HDR_FIELD(f, 0)

static const struct field idx_fields[] = {
	IDX_FIELD(tail),
	IDX_FIELD(head),
	IDX_FIELD(head_hint),
	IDX_FIELD(wpos_ticket),
	IDX_FIELD(wpos_off),
	IDX_FIELD(wpos_bytes),
	IDX_FIELD(wpos_pos),
	IDX_FIELD(tail_hint),
	IDX_FIELD(discard_from),
	IDX_FIELD(data_futex),
	IDX_FIELD(space_futex),
};

/* head, tail and their hints: any value yields errors or valid data;
 * the ones that break head <= tail <= head + capacity are reported. */
START_TEST(test_corrupt_head_tail)
{
	struct ring_config c = corrupt_config();
	uint64_t vals[32];

	seg_create(&c);
	for (size_t f = 0; f < sizeof(idx_fields) / sizeof(idx_fields[0]);
	     f++) {
		const struct field *fd = &idx_fields[f];
		uint8_t *p = S.mem + fd->off;
		seg_reformat(&c);
		corrupt_fill();
		uint64_t orig = peek(p, fd->width);
		size_t n = bad_values(orig, vals);
		for (size_t i = 0; i < n; i++) {
			seg_reformat(&c);
			corrupt_fill();
			poke(p, fd->width, vals[i]);
			/* A broken I1 is always caught by the check. */
			uint64_t head = R.hdr->head;
			uint64_t tail = R.hdr->tail & SHMQ_TAIL_COUNT;
			if (head > tail || tail - head > R.capacity)
				ck_assert_int_eq(ring_check(&R),
						 SHMQ_ECORRUPT);
			exercise(&R, i & 1);
		}
	}
}
END_TEST

#define SLOT_FIELD(f)                                                        \
	{ #f, offsetof(struct shmq_slot, f),                                 \
	  sizeof(((struct shmq_slot *)0)->f), 0 }

static const struct field slot_fields[] = {
	SLOT_FIELD(ticket), SLOT_FIELD(off), SLOT_FIELD(bytes),
	SLOT_FIELD(pos), SLOT_FIELD(len),
};

static struct shmq_slot *slot_of(uint64_t ticket)
{
	return &R.slots[ticket & R.mask];
}

/* Specific damage to the oldest message's slot is refused by get, which
 * leaves the message where it is. */
START_TEST(test_corrupt_slot_refused)
{
	struct ring_config c = corrupt_config();
	struct {
		size_t field;
		uint64_t value;
	} cases[] = {
		{ 0, 12345 },                   /* ticket of another message */
		{ 4, 65 },                      /* len > max_msg */
		{ 4, UINT32_MAX },
		{ 3, 4096 },                    /* pos at the end, len > 0 */
		{ 3, 4096 - 16 },               /* runs past the end */
		{ 3, 8 },                       /* misaligned */
		{ 3, UINT32_MAX },
	};
	char buf[64];
	size_t len;

	seg_create(&c);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct field *fd = &slot_fields[cases[i].field];
		seg_reformat(&c);
		corrupt_fill();
		uint64_t head = R.hdr->head;
		/* A message of 40 bytes at head, so that "pos 4080" runs
		 * past the end. */
		slot_of(head)->len = 40;
		poke((uint8_t *)slot_of(head) + fd->off, fd->width,
		     cases[i].value);
		ck_assert_int_eq(ring_check(&R), SHMQ_ECORRUPT);
		ck_assert_int_eq(get_one(&R, buf, sizeof(buf), &len, 0),
				 SHMQ_ECORRUPT);
		ck_assert_uint_eq(R.hdr->head, head);
		ck_assert_uint_eq(stat_now().messages, 20);
		exercise(&R, 0);
	}

	/* Where the next message goes comes from the producers' hint, or,
	 * when the hint is not for the tail (after a producer died holding
	 * the lock), from the newest message's slot: if either is damaged,
	 * put refuses rather than guess. */
	seg_reformat(&c);
	corrupt_fill();
	uint64_t tail = R.hdr->tail;
	ck_assert_uint_eq(R.hdr->wpos_ticket, tail);
	R.hdr->wpos_pos = 4096 + 16;
	ck_assert_int_eq(put_one_str(&R, "p", 0), SHMQ_ECORRUPT);
	R.hdr->wpos_pos = 8;
	ck_assert_int_eq(put_one_str(&R, "p", 0), SHMQ_ECORRUPT);
	ck_assert_uint_eq(R.hdr->tail, tail);
	R.hdr->wpos_ticket = UINT64_MAX;
	slot_of(tail - 1)->pos = 4096 + 16;
	ck_assert_int_eq(put_one_str(&R, "p", 0), SHMQ_ECORRUPT);
	ck_assert_uint_eq(R.hdr->tail, tail);
	slot_of(tail - 1)->pos = 0;
	slot_of(tail - 1)->ticket = tail + 5;
	ck_assert_int_eq(put_one_str(&R, "p", 0), SHMQ_ECORRUPT);
	ck_assert_uint_eq(R.hdr->tail, tail);
}
END_TEST

/* A producers' hint that says "no room" where the slots say there is
 * (here: a byte count far ahead, on a queue with a byte budget) must not
 * make a put and its wait disagree for ever: the put drops the hint, and
 * a put that waits is bounded by its timeout whatever the segment says. */
START_TEST(test_corrupt_wpos_hint_no_spin)
{
	struct ring_config c = seg_config(8, 64, 256, 0);

	seg_create(&c);
	put_ok(&R, "one");
	put_ok(&R, "two");
	R.hdr->wpos_bytes = UINT64_MAX / 2;
	/* Without the hint dropped: spins until its timeout, then
	 * SHMQ_ETIMEDOUT (or for ever, had the wait no deadline check). */
	ck_assert_int_eq(put_one_str(&R, "three", 2000), SHMQ_OK);
	expect_msg(&R, "one");
	expect_msg(&R, "two");
	expect_msg(&R, "three");
	ck_assert_int_eq(ring_check(&R), SHMQ_OK);
}
END_TEST

/* A waiting consumer first looks a stride ahead (see ring.c).  A forged
 * mark there, on an empty queue, must not keep it spinning: it goes to
 * sleep as on any empty queue, and still gets the next real message. */
START_TEST(test_forged_stride_mark_no_spin)
{
	struct ring_config c = seg_config(64, 64, 0, 0);
	struct op op = OP(.timeout = SHMQ_FOREVER);

	seg_create(&c);
	put_ok(&R, "a");
	expect_msg(&R, "a");
	/* Every mark but the next message's, whatever the stride is. */
	for (uint64_t t = 2; t < 1 + R.mask + 1; t++)
		slot_of(t)->published = t;
	struct kid *k = kid_op(SHMQ_ROLE_CONSUMER, kid_get, &op);
	EVENTUALLY(entry_wait(k->idx) == SHMQ_WAIT_GET);
	kid_silent(k);
	put_ok(&R, "real");
	struct kres res = kid_result(k);
	ck_assert_int_eq(res.rc, SHMQ_OK);
	ck_assert_uint_eq(res.len, 4);
	ck_assert_mem_eq(res.data, "real", 4);
}
END_TEST

/* A stride takes at most half of a waiter's spin window, so that a stride
 * that does not come is always seen as missed (and strides are then left
 * off for a while, on that side only).  Were the stride window longer
 * than a short spin window, every wait would spend its whole spin on
 * strides and a request-reply stream would go to sleep every time. */
START_TEST(test_stride_missed_in_short_spin)
{
	struct ring_config c = seg_config(8, 64, 0, 0);
	char buf[64];
	size_t len;

	seg_create(&c);
	ck_assert_uint_gt(R.stride, 0);
	R.spin_ns = 2000;
	ck_assert_int_eq(get_one(&R, buf, sizeof(buf), &len, 5),
			 SHMQ_ETIMEDOUT);
	ck_assert_uint_gt(R.stride_skip[1], 0);
	ck_assert_uint_eq(R.stride_skip[0], 0);

	for (int i = 0; i < 8; i++)
		put_ok(&R, "x");
	R.spin_ns = 2000;
	ck_assert_int_eq(put_one_str(&R, "y", 5), SHMQ_ETIMEDOUT);
	ck_assert_uint_gt(R.stride_skip[0], 0);
}
END_TEST

/* Any value in any field of any queued slot, and of the slots around. */
START_TEST(test_corrupt_slots_random)
{
	struct ring_config c = corrupt_config();
	uint64_t vals[32];

	seg_create(&c);
	for (int iter = 0; iter < 300; iter++) {
		seg_reformat(&c);
		corrupt_fill();
		uint64_t head = R.hdr->head;
		uint64_t t = head - 2 + rnd() % 24;
		const struct field *fd = &slot_fields[rnd() % 5];
		uint8_t *p = (uint8_t *)slot_of(t) + fd->off;
		size_t n = bad_values(peek(p, fd->width), vals);
		poke(p, fd->width, vals[rnd() % n]);
		exercise(&R, iter & 1);
	}
}
END_TEST

/* Random bytes anywhere but in the locks: header, slots, attachment
 * table, data ring.  Both a fresh attach and an existing view must
 * answer with errors or valid data. */
START_TEST(test_corrupt_random_bytes)
{
	struct ring_config c = corrupt_config();
	struct ring r2;

	seg_create(&c);
	size_t tables_end = (size_t)(R.data - S.mem);
	for (int iter = 0; iter < 400; iter++) {
		seg_reformat(&c);
		corrupt_fill();
		int flips = 1 + (int)(rnd() % 8);
		for (int i = 0; i < flips; i++) {
			size_t off;
			do {
				/* Mostly where the indices live. */
				off = rnd() % 4 ? rnd() % tables_end
						: rnd() % S.size;
			} while (in_lock(off));
			S.mem[off] = (uint8_t)rnd();
		}
		exercise(&R, 0);
		int rc = ring_attach(&r2, S.mem, S.size);
		ck_assert_msg(rc == SHMQ_OK || rc == SHMQ_ECORRUPT ||
			      rc == SHMQ_EPROTO, "attach: %d", rc);
		if (rc != SHMQ_OK)
			continue;
		uint32_t idx = (uint32_t)(rnd() % (r2.nclients + 2));
		rc = ring_client_bind(&r2, idx, (uint32_t)rnd());
		ck_assert(rc == SHMQ_OK || rc == SHMQ_ECORRUPT);
		ring_client_remove(&r2, idx, (int)(rnd() & 1));
		ring_client_recount(&r2);
		exercise(&r2, iter & 1);
	}
}
END_TEST

/* ================================================================== */
/* Corrupted lease tables (acked queues)                              */

/* An acked queue with history: every kind of lease slot in use (held by
 * the test's own entry, returned, waiting for the dead-letter queue),
 * messages queued behind them, and a lease timeout so that deadlines
 * matter. */
static void acked_fill(struct shmq_msg *held, size_t *nheld, char *keep)
{
	struct shmq_msg m;
	size_t got;

	corrupt_fill();
	*nheld = 0;
	for (int i = 0; i < 12; i++) {
		char *buf = keep + (size_t)i * 64;
		if (ring_lease(&R, buf, 64, &m, 1, &got, 0, 0) != SHMQ_OK)
			break;
		switch (i % 4) {
		case 0:
			ck_assert_int_eq(ring_ack(&R, &m, 1, NULL), SHMQ_OK);
			break;
		case 1:
			ck_assert_int_eq(ring_nack(&R, &m, 0), SHMQ_OK);
			break;
		default:
			held[(*nheld)++] = m;
		}
	}
}

static void acked_setup(struct ring_config *c)
{
	uint32_t idx, gen;

	seg_reformat(c);
	ck_assert_int_eq(ring_client_add(&R, (uint32_t)getpid(), 0,
					 SHMQ_ROLE_PRODUCER |
						 SHMQ_ROLE_CONSUMER,
					 &idx, &gen), SHMQ_OK);
	ck_assert_int_eq(ring_client_bind(&R, idx, gen), SHMQ_OK);
}

static int lease_status_ok(int rc)
{
	return get_status_ok(rc);
}

static int ack_status_ok(int rc)
{
	return rc == SHMQ_OK || rc == SHMQ_ELEASE || rc == SHMQ_ECORRUPT;
}

/* Every lease operation, without blocking, on a possibly corrupted acked
 * queue: statuses the API allows, messages inside their buffer or inside
 * the lease copies, never longer than max_msg. */
static void exercise_acked(struct ring *r, struct shmq_msg *held,
			   size_t nheld)
{
	uint8_t *buf = malloc(4 * r->max_msg + 64);
	uint8_t *copy = malloc(r->max_msg + 1);
	const uint8_t *lo = r->lease_data;
	const uint8_t *hi = r->lease_data + (size_t)r->capacity *
						    r->lease_stride;
	struct shmq_lease_info info[70];
	struct shmq_msg m[4];
	struct shmq_stat st;
	size_t got;
	int rc;

	ck_assert_ptr_nonnull(buf);
	ck_assert_ptr_nonnull(copy);
	ring_stat(r, &st);
	ck_assert_uint_le(st.leased, r->capacity);
	ck_assert_uint_le(strlen(st.dead_letter), SHMQ_NAME_MAX);
	ck_assert_uint_le(ring_pending(r, info, 70), r->capacity);
	rc = ring_check(r);
	ck_assert_msg(rc == SHMQ_OK || rc == SHMQ_ECORRUPT, "check: %d", rc);
	for (int i = 0; i < 3; i++) {
		rc = ring_lease(r, buf, 4 * r->max_msg + 64, m, 4, &got,
				SHMQ_NOWAIT, 0);
		ck_assert_msg(lease_status_ok(rc), "leasev: %d", rc);
		ck_assert_uint_eq(got > 0, rc == SHMQ_OK);
		for (size_t j = 0; j < got; j++) {
			ck_assert_uint_le(m[j].len, r->max_msg);
			ck_assert((uint8_t *)m[j].data >= buf &&
				  (uint8_t *)m[j].data + m[j].len <=
					  buf + 4 * r->max_msg + 64);
		}
		if (got == 0)
			continue;
		if (rnd() & 1)
			rc = ring_ack(r, m, got, NULL);
		else
			rc = ring_nack(r, &m[0], (unsigned)(rnd() & 1));
		ck_assert_msg(ack_status_ok(rc), "settle: %d", rc);
	}
	rc = ring_lease(r, NULL, 0, m, 1, &got, SHMQ_NOWAIT, 1);
	ck_assert_msg(lease_status_ok(rc), "view: %d", rc);
	if (rc == SHMQ_OK) {
		ck_assert_uint_le(m[0].len, r->max_msg);
		ck_assert((const uint8_t *)m[0].data >= lo &&
			  (const uint8_t *)m[0].data + m[0].len <= hi);
		memcpy(copy, m[0].data, m[0].len);     /* ASan watches */
		rc = ring_ack(r, m, 1, NULL);
		ck_assert_msg(ack_status_ok(rc), "ack view: %d", rc);
	}
	for (size_t j = 0; j < nheld; j++) {
		switch (rnd() % 3) {
		case 0: rc = ring_ack(r, &held[j], 1, NULL); break;
		case 1: rc = ring_nack(r, &held[j], 0); break;
		default: rc = ring_extend(r, &held[j], (int)(rnd() % 1000));
		}
		ck_assert_msg(ack_status_ok(rc), "held: %d", rc);
	}
	rc = ring_join(r, 1);
	ck_assert_msg(rc == SHMQ_OK || rc == SHMQ_ETIMEDOUT, "join: %d", rc);
	free(copy);
	free(buf);
}

static const struct field lease_hdr_fields[] = {
	HDR_FIELD(leases_off, 1),
	HDR_FIELD(lease_data_off, 1),
	HDR_FIELD(lease_stride, 1),
	HDR_FIELD(lease_timeout_ms, 0),
	HDR_FIELD(max_deliveries, 0),
	HDR_FIELD(dlq_len, 0),
	HDR_FIELD(leased, 0),
	HDR_FIELD(lease_bytes, 0),
	HDR_FIELD(returned, 0),
	HDR_FIELD(departures_seen, 0),
	HDR_FIELD(next_deadline, 0),
	HDR_FIELD(free_hint, 0),
	HDR_FIELD(departures, 0),
};

#define LEASE_FIELD(f)                                                       	{ #f, offsetof(struct shmq_lease, f),                                	  sizeof(((struct shmq_lease *)0)->f), 0 }

static const struct field lease_fields[] = {
	LEASE_FIELD(state), LEASE_FIELD(deliveries), LEASE_FIELD(ticket),
	LEASE_FIELD(holder), LEASE_FIELD(holder_gen), LEASE_FIELD(len),
	LEASE_FIELD(epoch), LEASE_FIELD(deadline), LEASE_FIELD(since),
};

static struct ring_config acked_corrupt_config(void)
{
	struct ring_config c = seg_config(63, 64, 0, SHMQ_CFG_ACKED);

	c.lease_timeout_ms = 1000;
	c.max_deliveries = 3;
	return c;
}

/* Any value in any lease field of the header and of any lease slot;
 * then random bytes over the lease table, the lease copies and the
 * header's acked fields.  A getter gets SHMQ_ECORRUPT or well-formed
 * messages, never an access outside the segment, never a wait past its
 * timeout; a fresh attach refuses a bad geometry. */
START_TEST(test_corrupt_leases)
{
	struct ring_config c = acked_corrupt_config();
	struct shmq_msg held[12];
	char keep[12 * 64];
	uint64_t vals[32];
	size_t nheld;
	struct ring r2;

	seg_create(&c);
	for (size_t f = 0;
	     f < sizeof(lease_hdr_fields) / sizeof(lease_hdr_fields[0]); f++) {
		const struct field *fd = &lease_hdr_fields[f];
		uint8_t *p = S.mem + fd->off;
		acked_setup(&c);
		uint64_t orig = peek(p, fd->width);
		size_t n = bad_values(orig, vals);
		for (size_t i = 0; i < n; i++) {
			uint64_t v = fd->width == 4 ? (uint32_t)vals[i]
						    : vals[i];
			if (v == orig)
				continue;
			acked_setup(&c);
			acked_fill(held, &nheld, keep);
			poke(p, fd->width, v);
			int rc = ring_attach(&r2, S.mem, S.size);
			if (fd->must_reject)
				ck_assert_msg(rc == SHMQ_ECORRUPT,
					      "%s = %#llx accepted", fd->name,
					      (unsigned long long)v);
			exercise_acked(&R, held, nheld);
			exercise(&R, (int)(i & 1));
		}
	}
	for (int iter = 0; iter < 300; iter++) {
		acked_setup(&c);
		acked_fill(held, &nheld, keep);
		uint32_t slot = (uint32_t)(rnd() % R.capacity);
		const struct field *fd = &lease_fields[rnd() % 9];
		uint8_t *p = (uint8_t *)&R.leases[slot] + fd->off;
		size_t n = bad_values(peek(p, fd->width), vals);
		poke(p, fd->width, vals[rnd() % n]);
		exercise_acked(&R, held, nheld);
		exercise(&R, iter & 1);
	}
	uint8_t *table = (uint8_t *)R.leases;
	size_t table_len = (size_t)R.capacity * sizeof(struct shmq_lease);
	size_t acked_hdr = offsetof(struct shmq_seg_hdr, lease_timeout_ms);
	for (int iter = 0; iter < 300; iter++) {
		acked_setup(&c);
		acked_fill(held, &nheld, keep);
		int flips = 1 + (int)(rnd() % 16);
		for (int i = 0; i < flips; i++) {
			switch (rnd() % 3) {
			case 0:
				table[rnd() % table_len] = (uint8_t)rnd();
				break;
			case 1:
				S.mem[acked_hdr + rnd() % (sizeof(struct
					shmq_seg_hdr) - acked_hdr)] =
					(uint8_t)rnd();
				break;
			default:
				R.lease_data[rnd() % ((size_t)R.capacity *
						      R.lease_stride)] =
					(uint8_t)rnd();
			}
		}
		exercise_acked(&R, held, nheld);
		if (ring_attach(&r2, S.mem, S.size) == SHMQ_OK)
			exercise_acked(&r2, NULL, 0);
	}
}
END_TEST

/* ================================================================== */

static Suite *ring_corrupt_suite(void)
{
	Suite *s = suite_create("ring corrupt");
	TCase *tc;

	tc = ring_tcase(s, "corrupt", 30);
	tcase_add_test(tc, test_corrupt_header);
	tcase_add_test(tc, test_corrupt_header_after_attach);
	tcase_add_test(tc, test_corrupt_head_tail);
	tcase_add_test(tc, test_corrupt_slot_refused);
	tcase_add_test(tc, test_corrupt_wpos_hint_no_spin);
	tcase_add_test(tc, test_forged_stride_mark_no_spin);
	tcase_add_test(tc, test_stride_missed_in_short_spin);
	tcase_add_test(tc, test_corrupt_slots_random);
	tcase_add_test(tc, test_corrupt_random_bytes);
	tcase_add_test(tc, test_corrupt_leases);
	return s;
}

int main(void)
{
	return run_suite(ring_corrupt_suite(), "ring_corrupt");
}
