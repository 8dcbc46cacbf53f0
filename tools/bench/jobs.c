/*
 * jobs.c - the children of a run: producers, consumers, and the two sides
 * of a ping-pong.
 *
 * Owns what a child does between fork and _exit: open its side of the
 * transport, meet the others at the start barrier, move messages until
 * the deadline or the stop, and write what it saw into the shared page.
 * Every message it receives is checked here (sequence, tag, trailer,
 * size), so that a transport that loses or corrupts one fails instead of
 * looking fast.  A child must never print: it reports through its
 * side_res.
 */
#define _GNU_SOURCE
#include "config.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "bench.h"

uint8_t *msg_buffer(size_t size, unsigned n)
{
	uint8_t *b = malloc(size * n);

	/* Touched now, so that page faults are not part of a run. */
	if (b)
		for (size_t i = 0; i < size * n; i++)
			b[i] = (uint8_t)(i * 7 + 1);
	return b;
}

/* A consumer's check of what it receives (the tally is in bench.h). */
struct checker {
	struct tally t;
	size_t size;
	unsigned producers;
	int exact;
	char *err;
	size_t err_size;
};

/* 1: a data message, 0: a stop, -1: wrong (err says why). */
static int check_msg(struct checker *ck, const uint8_t *m, size_t len)
{
	struct msg_hdr h;
	uint64_t trailer;

	if (len != ck->size) {
		snprintf(ck->err, ck->err_size, "message of %zu bytes, "
			 "expected %zu", len, ck->size);
		return -1;
	}
	memcpy(&h, m, sizeof(h));
	if (h.producer == STOP_ID)
		return 0;
	if (h.producer >= ck->producers || h.tag != msg_tag(h.seq, h.producer))
		goto corrupt;
	if (len >= 2 * sizeof(h)) {
		memcpy(&trailer, m + len - sizeof(trailer), sizeof(trailer));
		if (trailer != ~h.seq)
			goto corrupt;
	}
	uint32_t p = h.producer;
	if (h.seq < ck->t.next[p] || (ck->exact && h.seq != ck->t.next[p])) {
		snprintf(ck->err, ck->err_size, "producer %u: got message %"
			 PRIu64 ", expected %s%" PRIu64, p, h.seq,
			 ck->exact ? "" : ">= ", ck->t.next[p]);
		return -1;
	}
	ck->t.next[p] = h.seq + 1;
	ck->t.cnt[p]++;
	ck->t.sum[p] += h.seq;
	ck->t.sq[p] += h.seq * h.seq;
	return 1;
corrupt:
	snprintf(ck->err, ck->err_size, "corrupt message (seq %" PRIu64
		 ", producer %u)", h.seq, h.producer);
	return -1;
}

static int job_fail(struct job *j, const char *why)
{
	snprintf(j->res->err, sizeof(j->res->err), "%s", why);
	return -1;
}

/* Ready, then wait for the parent to close the go pipe. */
static int job_barrier(struct job *j)
{
	char c = 'r';
	ssize_t r;

	if (write(j->ready_fd, &c, 1) != 1)
		return job_fail(j, "barrier: write failed");
	close(j->ready_fd);
	do
		r = read(j->go_fd, &c, 1);
	while (r < 0 && errno == EINTR);
	close(j->go_fd);
	return 0;
}

/* A child that fails before the barrier says so, so that the parent does
 * not wait for it. */
static int job_setup_failed(struct job *j, const char *why)
{
	char c = 'x';

	job_fail(j, why);
	if (write(j->ready_fd, &c, 1) != 1)
		_exit(1);
	return -1;
}

int send_stop(struct chan *c, uint8_t *buf)
{
	msg_stamp(buf, c->size, STOP_ID, 0);
	return c->x->send(c, buf);
}

static int produce_single(struct job *j, struct chan *c, uint8_t *buf,
			  uint64_t *sent)
{
	const uint64_t deadline = __atomic_load_n(&sh->deadline,
						  __ATOMIC_ACQUIRE);
	uint64_t seq;

	/* Reading the clock costs ~20 ns: once per 32 messages.  At least
	 * 32 go, so that a run whose producer got no CPU before its deadline
	 * (a cgroup throttled by its quota) still measures something. */
	for (seq = 0; (seq & 31) || seq == 0 || mono_ns() < deadline; seq++) {
		msg_stamp(buf, c->size, j->index, seq);
		if (c->x->send(c, buf)) {
			*sent = seq;
			return job_fail(j, c->why);
		}
	}
	*sent = seq;
	return 0;
}

static int produce_batch(struct job *j, struct chan *c, uint8_t *buf,
			 uint64_t *sent)
{
	const uint64_t deadline = __atomic_load_n(&sh->deadline,
						  __ATOMIC_ACQUIRE);
	struct iovec iov[MAX_BATCH];
	unsigned b = j->k->batch;
	uint64_t seq = 0;

	for (unsigned i = 0; i < b; i++)
		iov[i] = (struct iovec){ buf + i * c->size, c->size };
	do {
		for (unsigned i = 0; i < b; i++)
			msg_stamp(buf + i * c->size, c->size, j->index,
				  seq + i);
		if (c->x->sendv(c, iov, b)) {
			*sent = seq;
			return job_fail(j, c->why);
		}
		seq += b;
	} while (mono_ns() < deadline);     /* one batch at least */
	*sent = seq;
	return 0;
}

int producer(struct job *j)
{
	struct chan *c = &j->ch[0];
	unsigned b = j->k->batch ? j->k->batch : 1;
	uint8_t *buf = msg_buffer(c->size, b);
	struct probe pr;
	int rc;

	if (buf == NULL)
		return job_setup_failed(j, "out of memory");
	if (c->x->open(c, TX))
		return job_setup_failed(j, c->why);
	probe_open(&pr, j->syscalls);
	if (job_barrier(j))
		return -1;
	probe_start(&pr);
	if (j->k->batch)
		rc = produce_batch(j, c, buf, &j->res->msgs);
	else
		rc = produce_single(j, c, buf, &j->res->msgs);
	probe_stop(&pr, &j->res->u);
	if (rc)
		return rc;
	/* The last producer out sends the first stop: every data message
	 * of every producer is queued before it. */
	if (__atomic_sub_fetch(&sh->producers_left, 1, __ATOMIC_SEQ_CST) == 0 &&
	    send_stop(c, buf))
		return job_fail(j, c->why);
	c->x->leave(c);
	return 0;
}

/* 1 on a stop, 0 to go on, -1 on an error. */
static int consume_some(struct job *j, struct chan *c, struct checker *ck,
			uint8_t *buf, struct iovec *v)
{
	unsigned got = 1;
	int stopped = 0;

	if (j->k->batch) {
		if (c->x->recvv(c, buf, v, j->k->batch, &got))
			return job_fail(j, c->why);
	} else {
		v[0].iov_base = buf;
		if (c->x->recv(c, buf, &v[0].iov_len))
			return job_fail(j, c->why);
	}
	for (unsigned i = 0; i < got; i++) {
		int r = check_msg(ck, v[i].iov_base, v[i].iov_len);
		if (r < 0 || (r > 0 && stopped))
			return job_fail(j, r < 0 ? ck->err
					       : "message after the stop");
		if (r == 0)
			stopped = 1;
	}
	j->res->msgs += got - (unsigned)stopped;
	j->res->calls++;
	return stopped;
}

int consumer(struct job *j)
{
	struct chan *c = &j->ch[0];
	unsigned b = j->k->batch ? j->k->batch : 1;
	uint8_t *buf = msg_buffer(batch_stride(c->size), b);
	struct iovec v[MAX_BATCH];
	struct checker ck = {
		.size = c->size, .producers = j->k->producers,
		.exact = j->k->consumers == 1, .err = j->res->err,
		.err_size = sizeof(j->res->err),
	};
	struct probe pr;
	int r;

	if (buf == NULL)
		return job_setup_failed(j, "out of memory");
	if (c->x->open(c, RX))
		return job_setup_failed(j, c->why);
	probe_open(&pr, j->syscalls);
	if (job_barrier(j))
		return -1;
	probe_start(&pr);
	while ((r = consume_some(j, c, &ck, buf, v)) == 0)
		;
	j->res->t_stop = mono_ns();
	probe_stop(&pr, &j->res->u);
	if (r < 0)
		return -1;
	j->res->t = ck.t;
	c->x->leave(c);
	return 0;
}

/* One round trip: ping on ch[0], the same bytes back on ch[1]. */
static int round_trip(struct job *j, uint8_t *buf, uint64_t seq,
		      uint64_t *rtt)
{
	struct msg_hdr h;
	size_t len;
	uint64_t t1 = mono_ns();

	msg_stamp(buf, j->k->size, 0, seq);
	if (j->ch[0].x->send(&j->ch[0], buf))
		return job_fail(j, j->ch[0].why);
	if (j->ch[1].x->recv(&j->ch[1], buf, &len))
		return job_fail(j, j->ch[1].why);
	*rtt = mono_ns() - t1;
	memcpy(&h, buf, sizeof(h));
	if (len != j->k->size || h.seq != seq || h.producer != 0 ||
	    h.tag != msg_tag(seq, 0))
		return job_fail(j, "ping-pong: wrong reply");
	return 0;
}

int pp_client(struct job *j)
{
	uint8_t *buf = msg_buffer(j->k->size, 1);
	uint64_t *rtt = calloc(opt.pp_count, sizeof(*rtt));
	uint64_t n = (uint64_t)opt.pp_warm + opt.pp_count, t;
	struct probe pr;

	if (buf == NULL || rtt == NULL)
		return job_setup_failed(j, "out of memory");
	if (j->ch[0].x->open(&j->ch[0], TX) || j->ch[1].x->open(&j->ch[1], RX))
		return job_setup_failed(j, j->ch[0].why[0] ? j->ch[0].why
							   : j->ch[1].why);
	probe_open(&pr, j->syscalls);
	if (job_barrier(j))
		return -1;
	probe_start(&pr);
	for (uint64_t i = 0; i < n; i++) {
		if (round_trip(j, buf, i, &t))
			return -1;
		if (i >= opt.pp_warm)
			rtt[i - opt.pp_warm] = t;
	}
	probe_stop(&pr, &j->res->u);
	if (send_stop(&j->ch[0], buf))
		return job_fail(j, j->ch[0].why);
	qsort(rtt, opt.pp_count, sizeof(*rtt), cmp_u64);
	j->res->rtt_med = rtt[opt.pp_count / 2];
	j->res->rtt_p99 = rtt[(size_t)opt.pp_count * 99 / 100];
	j->res->msgs = n;       /* the usage window holds the warm-up too */
	j->ch[0].x->leave(&j->ch[0]);
	j->ch[1].x->leave(&j->ch[1]);
	return 0;
}

int pp_server(struct job *j)
{
	uint8_t *buf = msg_buffer(j->k->size, 1);
	struct probe pr;
	struct msg_hdr h;
	size_t len;

	if (buf == NULL)
		return job_setup_failed(j, "out of memory");
	if (j->ch[0].x->open(&j->ch[0], RX) || j->ch[1].x->open(&j->ch[1], TX))
		return job_setup_failed(j, j->ch[0].why[0] ? j->ch[0].why
							   : j->ch[1].why);
	probe_open(&pr, j->syscalls);
	if (job_barrier(j))
		return -1;
	probe_start(&pr);
	for (;;) {
		if (j->ch[0].x->recv(&j->ch[0], buf, &len))
			return job_fail(j, j->ch[0].why);
		memcpy(&h, buf, sizeof(h));
		if (len != j->k->size)
			return job_fail(j, "ping-pong: wrong size");
		if (h.producer == STOP_ID)
			break;
		if (j->ch[1].x->send(&j->ch[1], buf))
			return job_fail(j, j->ch[1].why);
		j->res->msgs++;
	}
	probe_stop(&pr, &j->res->u);
	j->ch[0].x->leave(&j->ch[0]);
	j->ch[1].x->leave(&j->ch[1]);
	return 0;
}
