/*
 * lease_look.c - acked queues: what is read of the lease table without
 * its lock (see lease.c for the table and its rules).
 *
 * Owns the lockless looks: whether a getter could make progress (asked
 * before it sleeps), the table as stat and pending show it, the holders
 * shmqd's deadlock detection asks for, and the full check made at
 * adoption.  It never writes the segment, and never trusts
 * a slot (read_lease checks each one): a look may be stale the moment it
 * is made, so every answer here is either a hint that only costs an
 * attempt under the lock, or a report.
 */
#include <string.h>

#include "ring_impl.h"

int lease_ready(struct ring *r, uint64_t head)
{
	const struct shmq_seg_hdr *h = r->hdr;

	if (LOAD_ACQ(h->returned) > 0 ||
	    LOAD_ACQ(h->departures) != READ_ONCE(h->departures_seen))
		return 1;
	int64_t dl = READ_ONCE(h->next_deadline);
	if (dl != SHMQ_NO_DEADLINE && dl <= (int64_t)mono_ns())
		return 1;
	uint64_t tw = LOAD_SC(h->tail);
	if ((tw & SHMQ_TAIL_COUNT) != head)
		return 1;
	if (!(tw & SHMQ_TAIL_CLOSED))
		return 0;
	/* Closed and drained: the end comes once no other handle holds a
	 * lease and no dead letter waits (its next try is a deadline, seen
	 * above).  (A yes only costs an attempt under the lock.) */
	if (tw & SHMQ_TAIL_NOW)
		return 1;
	return READ_ONCE(h->dead) == 0 && lease_others(r) == 0;
}

/* A slot as stat and pending show it, without the lock: a lease whose
 * holder is gone or whose deadline passed has ended, even before the next
 * getter's sweep returns it (an ack would be refused already), so it is
 * shown as returned. */
static uint32_t shown_state(const struct ring *r, uint32_t i, uint64_t head,
			    int64_t now, struct shmq_lease *s)
{
	uint32_t st = read_lease(r, i, head, s);

	if (st == SHMQ_LEASE_LEASED &&
	    (!holder_alive(r, s) || s->deadline <= now))
		st = SHMQ_LEASE_RETURNED;
	return st;
}

void ring_lease_holders(const struct ring *r,
			void (*fn)(uint32_t index, uint32_t gen, void *arg),
			void *arg)
{
	uint64_t head = LOAD_ACQ(r->hdr->head);

	for (uint32_t i = 0; r->leases && i < r->capacity; i++) {
		struct shmq_lease s;
		if (read_lease(r, i, head, &s) == SHMQ_LEASE_LEASED)
			fn(s.holder, s.holder_gen, arg);
	}
}

size_t ring_pending(const struct ring *r, struct shmq_lease_info *out,
		    size_t cap)
{
	uint64_t head = LOAD_ACQ(r->hdr->head);
	int64_t now = (int64_t)mono_ns();
	size_t n = 0;

	if (r->leases == NULL)
		return 0;
	for (uint32_t i = 0; i < r->capacity; i++) {
		struct shmq_lease s;
		uint32_t st = shown_state(r, i, head, now, &s);
		if (st == SHMQ_LEASE_FREE)
			continue;
		if (n < cap) {
			struct shmq_lease_info *e = &out[n];
			memset(e, 0, sizeof(*e));
			e->seq = s.ticket;
			e->deliveries = s.deliveries;
			e->len = s.len;
			/* since is the segment's word: any value (a negative
			 * one would overflow the subtraction). */
			e->age_ns = s.since >= 0 && now > s.since ? now - s.since
								  : 0;
			e->left_ns = -1;
			if (st == SHMQ_LEASE_LEASED) {
				e->state = SHMQ_LEASE_HELD;
				if (s.holder < r->nclients && holder_alive(r, &s))
					e->pid = READ_ONCE(
						r->clients[s.holder].pid);
				if (s.deadline != SHMQ_NO_DEADLINE)
					e->left_ns = s.deadline > now
							     ? s.deadline - now
							     : 0;
			} else {
				e->state = st == SHMQ_LEASE_RETURNED
						   ? SHMQ_LEASE_WAITING
						   : SHMQ_LEASE_DEAD_LETTER;
			}
		}
		n++;
	}
	return n;
}

void lease_stat(const struct ring *r, uint64_t head, struct shmq_stat *st)
{
	const struct shmq_seg_hdr *h = r->hdr;

	int64_t now = (int64_t)mono_ns();

	for (uint32_t i = 0; i < r->capacity; i++) {
		struct shmq_lease s;
		uint32_t state = shown_state(r, i, head, now, &s);
		if (state == SHMQ_LEASE_LEASED) {
			st->leased++;
		} else if (state != SHMQ_LEASE_FREE) {
			/* Returned, or waiting for the dead-letter queue:
			 * queued again, as far as the user can tell. */
			st->returned++;
			st->messages++;
			st->bytes += s.len;
		}
	}
	st->acked = READ_ONCE(h->acked);
	st->dead_lettered = READ_ONCE(h->dead_lettered);
	st->dropped = READ_ONCE(h->dropped);
	st->discarded += READ_ONCE(h->lease_discarded);
	st->lease_timeout_ms = r->lease_timeout_ms;
	st->max_deliveries = r->max_deliveries;
	uint32_t n = READ_ONCE(h->dlq_len);
	if (n > SHMQ_NAME_MAX)
		n = 0;
	for (uint32_t i = 0; i < n; i++)
		st->dead_letter[i] = READ_ONCE(h->dlq[i]);
	st->dead_letter[n] = '\0';
}

int lease_check(const struct ring *r, uint64_t head)
{
	for (uint32_t i = 0; i < r->capacity; i++) {
		const struct shmq_lease *p = &r->leases[i];
		uint32_t state = READ_ONCE(p->state);
		if (state == SHMQ_LEASE_FREE || READ_ONCE(p->ticket) >= head)
			continue;
		if (state > SHMQ_LEASE_DEAD || READ_ONCE(p->len) > r->max_msg)
			return SHMQ_ECORRUPT;
	}
	return SHMQ_OK;
}
