/*
 * xp_shmq.c - shmq as a transport of the bench, in four rows.
 *
 * Owns: shmq at its capacity in every case (SHMQ_CAP); shmq at the
 * capacity POSIX mq was allowed, where that is smaller, so that it meets
 * mq at equal capacity; shmq's zero-copy calls, at that capacity too,
 * where copying costs (64 KiB); and an acked queue, whose consumer leases
 * each message and acks it (one by one, or a batch with shmq_leasev and
 * shmq_ackv).  Every queue is made by the parent through the bench's own
 * shmqd and deleted when the run ends.
 */
#define _GNU_SOURCE
#include "config.h"

#include <stdio.h>
#include <stdlib.h>

#include "bench.h"

/* The parent keeps a producer handle of its own: it sends the stops that
 * release the second and later consumers of a 4->4 run. */
static int create_chan(struct chan *c, unsigned flags)
{
	static unsigned serial;
	struct shmq_attr a;
	int rc;

	shmq_attr_init(&a);
	a.capacity = c->capacity;
	a.max_msg = (uint32_t)c->size;
	a.flags = flags;
	snprintf(c->name, sizeof(c->name), "bench.%u", serial++);
	if ((rc = shmq_create(c->name, &a, 0)) != SHMQ_OK)
		return fail_shmq(c, "shmq_create", rc);
	if ((rc = shmq_open(c->name, SHMQ_PRODUCER | SHMQ_PREFAULT,
			    &c->q)) != SHMQ_OK) {
		shmq_delete(c->name);
		return fail_shmq(c, "shmq_open", rc);
	}
	return 0;
}

static int shmq_create_chan(struct chan *c)
{
	return create_chan(c, 0);
}

/* In a child: its own handle (handles do not cross fork).  The parent's
 * handle, still mapped here, is simply never used. */
static int shmq_open_chan(struct chan *c, enum role r)
{
	/* Warm mappings, as a long-running pipeline's are: a fresh ring
	 * would otherwise fault in its pages during the short timed runs. */
	int rc = shmq_open(c->name, (r == TX ? SHMQ_PRODUCER : SHMQ_CONSUMER) |
					    SHMQ_PREFAULT, &c->q);

	return rc == SHMQ_OK ? 0 : fail_shmq(c, "shmq_open", rc);
}

static int shmq_send(struct chan *c, const void *m)
{
	int rc = shmq_put(c->q, m, c->size, c->timeout_ms);

	return rc == SHMQ_OK ? 0 : fail_shmq(c, "shmq_put", rc);
}

static int shmq_recv(struct chan *c, void *buf, size_t *len)
{
	int rc = shmq_get(c->q, buf, c->size, len, c->timeout_ms);

	return rc == SHMQ_OK ? 0 : fail_shmq(c, "shmq_get", rc);
}

static int shmq_sendv(struct chan *c, const struct iovec *v, unsigned n)
{
	size_t done;
	int rc = shmq_putv(c->q, v, n, &done, c->timeout_ms);

	return rc == SHMQ_OK ? 0 : fail_shmq(c, "shmq_putv", rc);
}

static int shmq_recvv(struct chan *c, void *buf, struct iovec *v, unsigned n,
		      unsigned *got)
{
	size_t k = 0;
	int rc = shmq_getv(c->q, buf, batch_stride(c->size) * n, v, n, &k,
			   c->timeout_ms);

	*got = (unsigned)k;
	return rc == SHMQ_OK ? 0 : fail_shmq(c, "shmq_getv", rc);
}

static void shmq_leave(struct chan *c)
{
	shmq_detach(c->q);
}

static void shmq_destroy(struct chan *c)
{
	shmq_detach(c->q);
	shmq_delete(c->name);
}

const struct xport xp_shmq = {
	.name = "shmq", .option = "shmq", .shmq = 1,
	.batch_how = "shmq_putv / shmq_getv",
	.create = shmq_create_chan, .open = shmq_open_chan,
	.send = shmq_send, .recv = shmq_recv, .sendv = shmq_sendv,
	.recvv = shmq_recvv, .leave = shmq_leave, .destroy = shmq_destroy,
};

/* At mq's capacity: only where the system held mq below SHMQ_CAP. */
static int small_applies(const struct bcase *k, struct agg *a)
{
	unsigned mc = mq_cap(k->size);

	(void)a;
	return k->kind == TPUT && k->producers == 1 && mc > 0 &&
	       mc < SHMQ_CAP;
}

static int small_label(char *b, size_t n, const struct bcase *k,
		       const struct agg *a)
{
	(void)k;
	snprintf(b, n, "shmq, capacity %u (as mq)", a->capacity);
	return 1;
}

/* Progress lines call it "shmq(small)". */
const struct xport xp_shmq_small = {
	.name = "shmq(small)", .option = "shmq", .shmq = 1,
	.batch_how = "shmq_putv / shmq_getv",
	.capacity = mq_cap, .applies = small_applies, .label = small_label,
	.create = shmq_create_chan, .open = shmq_open_chan,
	.send = shmq_send, .recv = shmq_recv, .sendv = shmq_sendv,
	.recvv = shmq_recvv, .leave = shmq_leave, .destroy = shmq_destroy,
};

/* Zero copy: the producer still copies its message in (reserve, copy,
 * commit), the consumer checks it where it lies (view, take) instead of
 * copying it out.  The checker sees the same header and trailer the other
 * transports hand it: those are the bytes it checks in every message. */
static int zc_send(struct chan *c, const void *m)
{
	void *p;
	int rc = shmq_put_reserve(c->q, c->size, &p, c->timeout_ms);

	if (rc != SHMQ_OK)
		return fail_shmq(c, "shmq_put_reserve", rc);
	memcpy(p, m, c->size);
	rc = shmq_put_commit(c->q);
	return rc == SHMQ_OK ? 0 : fail_shmq(c, "shmq_put_commit", rc);
}

static int zc_recv(struct chan *c, void *buf, size_t *len)
{
	const uint8_t *p;
	const size_t head = sizeof(struct msg_hdr), tail = sizeof(uint64_t);
	int rc = shmq_get_view(c->q, (const void **)&p, len, c->timeout_ms);

	if (rc != SHMQ_OK)
		return fail_shmq(c, "shmq_get_view", rc);
	memcpy(buf, p, *len < head ? *len : head);
	if (*len >= head + tail)
		memcpy((uint8_t *)buf + *len - tail, p + *len - tail, tail);
	rc = shmq_get_take(c->q);
	return rc == SHMQ_OK ? 0 : fail_shmq(c, "shmq_get_take", rc);
}

/* Zero copy only matters where copying costs: large messages. */
static int zc_applies(const struct bcase *k, struct agg *a)
{
	(void)a;
	return k->kind == TPUT && k->producers == 1 && !k->batch &&
	       k->size >= 65536;
}

static int zc_label(char *b, size_t n, const struct bcase *k,
		    const struct agg *a)
{
	(void)k;
	if (a->capacity < SHMQ_CAP)
		snprintf(b, n, "shmq zero copy (put_reserve/commit, "
			 "get_view/take), capacity %u (as mq)", a->capacity);
	else
		snprintf(b, n, "shmq zero copy (put_reserve/commit, "
			 "get_view/take)");
	return 1;
}

const struct xport xp_shmq_zc = {
	.name = "shmq zero copy", .option = "shmq", .shmq = 1,
	.batch_how = "",
	.capacity = mq_cap_below, .applies = zc_applies, .label = zc_label,
	.create = shmq_create_chan, .open = shmq_open_chan,
	.send = zc_send, .recv = zc_recv, .sendv = shmq_sendv,
	.recvv = shmq_recvv, .leave = shmq_leave, .destroy = shmq_destroy,
};

/* An acked queue.  The consumer leases and acks every message: singly
 * (shmq_lease, then shmq_ack), or a batch (shmq_leasev, then shmq_ackv,
 * one lock round trip each); the producer puts as into a plain queue. */
static int acked_create(struct chan *c)
{
	return create_chan(c, SHMQ_ACKED);
}

static int acked_open(struct chan *c, enum role r)
{
	if (r == RX && (c->lease = calloc(MAX_BATCH,
					  sizeof(*c->lease))) == NULL)
		return fail_errno(c, "calloc");
	return shmq_open_chan(c, r);
}

static int acked_recv(struct chan *c, void *buf, size_t *len)
{
	int rc = shmq_lease(c->q, buf, c->size, &c->lease[0], c->timeout_ms);

	if (rc != SHMQ_OK)
		return fail_shmq(c, "shmq_lease", rc);
	*len = c->lease[0].len;
	rc = shmq_ack(c->q, &c->lease[0]);
	return rc == SHMQ_OK ? 0 : fail_shmq(c, "shmq_ack", rc);
}

static int acked_recvv(struct chan *c, void *buf, struct iovec *v,
		       unsigned n, unsigned *got)
{
	size_t k = 0;
	int rc = shmq_leasev(c->q, buf, batch_stride(c->size) * n, c->lease,
			     n, &k, c->timeout_ms);

	*got = (unsigned)k;
	if (rc != SHMQ_OK)
		return fail_shmq(c, "shmq_leasev", rc);
	for (size_t i = 0; i < k; i++)
		v[i] = (struct iovec){ c->lease[i].data, c->lease[i].len };
	rc = shmq_ackv(c->q, c->lease, k, NULL);
	return rc == SHMQ_OK ? 0 : fail_shmq(c, "shmq_ackv", rc);
}

static void acked_leave(struct chan *c)
{
	free(c->lease);
	c->lease = NULL;
	shmq_detach(c->q);
}

/* The copying cases up to 4 KiB, one and four of each side. */
static int acked_applies(const struct bcase *k, struct agg *a)
{
	(void)a;
	return k->kind == TPUT && k->size <= 4096;
}

static int acked_label(char *b, size_t n, const struct bcase *k,
		       const struct agg *a)
{
	(void)a;
	snprintf(b, n, "shmq acked (%s)",
		 k->batch ? "shmq_leasev + shmq_ackv" : "shmq_lease + shmq_ack");
	return 1;
}

const struct xport xp_shmq_acked = {
	.name = "shmq acked", .option = "acked", .shmq = 1,
	.batch_how = "shmq_leasev + shmq_ackv",
	.applies = acked_applies, .label = acked_label,
	.create = acked_create, .open = acked_open,
	.send = shmq_send, .recv = acked_recv, .sendv = shmq_sendv,
	.recvv = acked_recvv, .leave = acked_leave, .destroy = shmq_destroy,
};
