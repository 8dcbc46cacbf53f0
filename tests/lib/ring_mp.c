/*
 * ring_mp.c - streams of numbered messages between many children (see
 * ring_mp.h).
 */
#define _GNU_SOURCE
#include <string.h>
#include <sys/mman.h>

#include "checks.h"
#include "clock.h"
#include "ring_mp.h"

static size_t mp_msg_len(uint32_t id, uint32_t seq)
{
	return 8 + (seq * 13u + id * 7u) % (MP_FILL_MAX + 1);
}

static size_t mp_msg_make(uint8_t *m, uint32_t id, uint32_t seq)
{
	size_t len = mp_msg_len(id, seq);

	memcpy(m, &id, 4);
	memcpy(m + 4, &seq, 4);
	for (size_t i = 8; i < len; i++)
		m[i] = (uint8_t)(id * 31u + seq + i);
	return len;
}

/* 0 if `m` is a well-formed message, filling *id and *seq. */
static int mp_msg_parse(const uint8_t *m, size_t len, uint32_t producers,
			uint32_t *id, uint32_t *seq)
{
	if (len < 8)
		return -1;
	memcpy(id, m, 4);
	memcpy(seq, m + 4, 4);
	if (*id >= producers || len != mp_msg_len(*id, *seq))
		return -1;
	for (size_t i = 8; i < len; i++)
		if (m[i] != (uint8_t)(*id * 31u + *seq + i))
			return -1;
	return 0;
}

int kid_produce(struct kctx *c)
{
	const struct mp *mp = c->arg;
	uint8_t m[8][MP_MSG_MAX];
	struct iovec v[8];
	uint32_t seq = 0;
	uint32_t end = mp->per_producer ? mp->per_producer : MP_SEQ_MAX;
	size_t done;

	if (mp->nospin)
		c->r.spin_ns = 0;

	for (unsigned it = 0; seq < end; it++) {
		size_t n = it % 3 == 0 ? 8 : 1;
		if (n > end - seq)
			n = end - seq;
		for (size_t i = 0; i < n; i++) {
			v[i].iov_base = m[i];
			v[i].iov_len = mp_msg_make(m[i], mp->id,
						   seq + (uint32_t)i);
		}
		int rc = ring_put(&c->r, v, n, &done, 10000);
		seq += (uint32_t)done;
		if (rc == SHMQ_ECLOSED && mp->per_producer == 0)
			return 0;
		CHILD_EQ(rc, SHMQ_OK);
		CHILD_EQ(done, n);
	}
	while (mp->per_producer == 0 &&
	       !(__atomic_load_n(&c->r.hdr->tail, __ATOMIC_ACQUIRE) &
		 SHMQ_TAIL_CLOSED))
		sleep_us(1000);
	return 0;
}

int kid_consume(struct kctx *c)
{
	const struct mp *mp = c->arg;
	uint32_t next[MP_MAX_PROD] = { 0 };
	uint8_t buf[8 * MP_MSG_MAX];
	struct iovec out[8];
	size_t got;
	int rc;

	if (mp->nospin)
		c->r.spin_ns = 0;
	for (unsigned it = 0;; it++) {
		size_t n = it & 1 ? 8 : 1;
		size_t size = it % 7 == 3 ? 12 : sizeof(buf);
		rc = ring_get(&c->r, buf, size, out, n, &got, 10000);
		if (rc == SHMQ_EMSGSIZE) {
			CHILD_CHECK(out[0].iov_len > size);
			CHILD_CHECK(out[0].iov_len <= MP_MSG_MAX);
			continue;
		}
		if (rc == SHMQ_EOS || rc == SHMQ_EOS_LOST)
			break;
		CHILD_EQ(rc, SHMQ_OK);
		CHILD_CHECK(got >= 1 && got <= n);
		for (size_t i = 0; i < got; i++) {
			uint32_t id, seq;
			CHILD_CHECK(mp_msg_parse(out[i].iov_base,
						 out[i].iov_len, mp->producers,
						 &id, &seq) == 0);
			if (mp->strict)
				CHILD_EQ(seq, next[id]);
			CHILD_CHECK(seq >= next[id]);
			next[id] = seq + 1;
			CHILD_CHECK(seq < (mp->per_producer ? mp->per_producer
							   : MP_SEQ_MAX));
			__atomic_fetch_add(&mp->seen[(size_t)id * MP_SEQ_MAX +
						     seq], 1,
					   __ATOMIC_RELAXED);
		}
	}
	if (mp->strict)
		for (uint32_t id = 0; id < mp->producers; id++)
			CHILD_EQ(next[id], mp->per_producer);
	return 0;
}

size_t receipts_not(const uint8_t *seen, size_t n, unsigned want)
{
	for (size_t i = 0; i < n; i++)
		if (want == 2 ? seen[i] >= 2 : seen[i] != want)
			return i;
	return SIZE_MAX;
}

void *shared_alloc(size_t len)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
		       MAP_SHARED | MAP_ANONYMOUS, -1, 0);

	ck_assert_ptr_ne(p, MAP_FAILED);
	return p;
}

void mp_run(uint32_t np, uint32_t nc, uint32_t per, uint32_t capacity,
	    int nospin)
{
	struct ring_config c = seg_config(capacity, MP_MSG_MAX, 0,
					  SHMQ_CFG_AUTO_CLOSE);
	struct mp prod[MP_MAX_PROD], cons;
	struct kid *pk[MP_MAX_PROD], *ckids[16];
	size_t table = (size_t)np * MP_SEQ_MAX;

	ck_assert_uint_le(per, MP_SEQ_MAX);
	ck_assert_uint_le(nc, 16);
	seg_create(&c);
	uint8_t *seen = shared_alloc(table);
	cons = (struct mp){ .producers = np, .per_producer = per,
			    .strict = nc == 1, .nospin = nospin, .seen = seen };
	for (uint32_t i = 0; i < nc; i++)
		ckids[i] = kid_start(SHMQ_ROLE_CONSUMER, kid_consume, &cons);
	for (uint32_t i = 0; i < np; i++) {
		prod[i] = cons;
		prod[i].id = i;
		pk[i] = kid_start(SHMQ_ROLE_PRODUCER, kid_produce, &prod[i]);
	}
	for (uint32_t i = 0; i < np; i++) {
		kid_ok(pk[i]);
		ring_client_remove(&R, pk[i]->idx, 0);
	}
	ck_assert_int_eq(stat_now().state, SHMQ_STATE_CLOSED);
	for (uint32_t i = 0; i < nc; i++)
		kid_ok(ckids[i]);

	/* Exactly once: every message received by exactly one consumer. */
	for (uint32_t id = 0; id < np; id++) {
		size_t bad = receipts_not(seen + (size_t)id * MP_SEQ_MAX, per, 1);
		ck_assert_msg(bad == SIZE_MAX, "message %u/%zu received %u "
			      "times", id, bad,
			      (unsigned)seen[(size_t)id * MP_SEQ_MAX + bad]);
	}
	struct shmq_stat st = stat_now();
	ck_assert_uint_eq(st.total_put, (uint64_t)np * per);
	ck_assert_uint_eq(st.total_got, (uint64_t)np * per);
	ck_assert_uint_eq(st.messages, 0);
	ck_assert_int_eq(st.producer_lost, 0);
	ck_assert_int_eq(ring_check(&R), SHMQ_OK);
	munmap((void *)seen, table);
}
