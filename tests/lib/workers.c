/*
 * workers.c - producer and consumer processes a test drives (see
 * workers.h).
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdint.h>
#include <unistd.h>

#include "checks.h"
#include "queue.h"
#include "workers.h"

void producer_start(struct producer *p, const char *queue, char tag,
		    unsigned batch)
{
	chan_init(&p->ch);
	p->pid = harness_fork();
	ck_assert_int_ge(p->pid, 0);
	if (p->pid == 0) {
		char msg[SEQ_LEN + 1];
		unsigned seq = 0;
		shmq_t *q;

		chan_child(&p->ch);
		CHILD_RC(shmq_open(queue, SHMQ_PRODUCER, &q), SHMQ_OK);
		child_say(&p->ch, 'r');
		for (;;) {
			int cmd = child_hear(&p->ch);
			if (cmd == 'p') {
				for (unsigned i = 0; i < batch; i++, seq++) {
					seq_msg(msg, tag, seq);
					CHILD_RC(shmq_put(q, msg, SEQ_LEN,
							  10000),
						 SHMQ_OK);
				}
				child_say(&p->ch, 'k');
			} else if (cmd == 'd') {
				CHILD_RC(shmq_detach(q), SHMQ_OK);
				child_say(&p->ch, 'k');
				_exit(0);
			} else if (cmd == 'x') {
				_exit(0);
			} else {
				CHILD_CHECK(cmd == 'p' || cmd == 'd');
			}
		}
	}
	chan_parent(&p->ch);
	chan_expect(&p->ch, 'r');
}

void producer_end(struct producer *p)
{
	CHILD_OK(p->pid);
	chan_done(&p->ch);
}

void consumer_start(struct consumer *k, const char *queue)
{
	chan_init(&k->ch);
	ck_assert_int_eq(pipe2(k->rec, O_CLOEXEC), 0);
	k->pid = harness_fork();
	ck_assert_int_ge(k->pid, 0);
	if (k->pid == 0) {
		unsigned next[256] = { 0 };
		char buf[64];
		size_t len;
		shmq_t *q;
		int rc;

		chan_child(&k->ch);
		close(k->rec[0]);
		CHILD_RC(shmq_open(queue, SHMQ_CONSUMER, &q), SHMQ_OK);
		child_say(&k->ch, 'r');
		while ((rc = shmq_get(q, buf, sizeof(buf), &len, 15000)) ==
		       SHMQ_OK) {
			uint32_t r[2];
			unsigned char tag;
			unsigned seq;
			CHILD_CHECK(seq_parse(buf, len, &tag, &seq) == 0);
			/* Several consumers: increasing, not contiguous. */
			CHILD_CHECK(seq >= next[tag]);
			next[tag] = seq + 1;
			r[0] = tag;
			r[1] = seq;
			CHILD_CHECK(write(k->rec[1], r, sizeof(r)) ==
				    (ssize_t)sizeof(r));
		}
		CHILD_CHECK(rc == SHMQ_EOS || rc == SHMQ_EOS_LOST);
		CHILD_RC(shmq_detach(q), SHMQ_OK);
		_exit(rc == SHMQ_EOS ? 0 : 2);
	}
	chan_parent(&k->ch);
	close(k->rec[1]);
	chan_expect(&k->ch, 'r');
}

void holder_start(struct holder *h, const char *queue, unsigned n)
{
	chan_init(&h->ch);
	h->pid = harness_fork();
	ck_assert_int_ge(h->pid, 0);
	if (h->pid == 0) {
		struct shmq_msg m[16];
		char buf[16][256];
		shmq_t *q;

		chan_child(&h->ch);
		CHILD_CHECK(n <= 16);
		CHILD_RC(shmq_open(queue, SHMQ_CONSUMER, &q), SHMQ_OK);
		for (unsigned i = 0; i < n; i++)
			CHILD_RC(shmq_lease(q, buf[i], sizeof(buf[i]), &m[i],
					    10000), SHMQ_OK);
		child_say(&h->ch, 'r');
		for (;;) {
			int cmd = child_hear(&h->ch), bad = 0;
			if (cmd == 'a') {
				bad = shmq_ackv(q, m, n, NULL) != SHMQ_OK;
			} else if (cmd == 'n') {
				for (unsigned i = 0; i < n; i++)
					bad |= shmq_nack(q, &m[i], 0) != SHMQ_OK;
			} else if (cmd == 'd') {
				CHILD_RC(shmq_detach(q), SHMQ_OK);
				child_say(&h->ch, 'k');
				_exit(0);
			} else {
				CHILD_CHECK(cmd == 'a' || cmd == 'n' ||
					    cmd == 'd');
			}
			child_say(&h->ch, bad ? 'e' : 'k');
		}
	}
	chan_parent(&h->ch);
	chan_expect(&h->ch, 'r');
}
