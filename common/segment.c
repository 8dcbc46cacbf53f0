/*
 * segment.c - one queue segment as a whole: its geometry, formatting a new
 * one, checking one that was handed to us, and reading its statistics.
 *
 * Everything here runs once per queue or per request (create, open,
 * adopt, stat), never per message.  It must never trust the segment: the
 * configuration is copied out of the header once, at attach, and checked
 * against the size of the mapping; the shared copy is never read again.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "ring_impl.h"
#include "wait.h"

/* ------------------------------------------------------------------ */
/* Segment geometry                                                   */

struct plan {
	uint32_t ring_slots;
	uint64_t slots_off, clients_off, data_off, data_size, seg_size;
	uint64_t leases_off, lease_data_off;   /* 0 unless acked */
	uint32_t lease_stride;
};

static uint32_t pow2_at_least(uint32_t v)
{
	uint32_t p = 1;
	while (p < v)
		p <<= 1;
	return p;
}

static int plan_segment(uint32_t capacity, uint32_t max_msg,
			uint64_t max_bytes, uint32_t clients, int acked,
			struct plan *p)
{
	if (capacity < 1 || capacity > SHMQ_CAPACITY_MAX)
		return SHMQ_EINVAL;
	if (max_msg > SHMQ_MSG_MAX)
		return SHMQ_EINVAL;
	if (clients < 1 || clients > SHMQ_CLIENTS_MAX)
		return SHMQ_EINVAL;
	/* A budget smaller than one message could never admit it. */
	if (max_bytes != 0 && max_bytes < max_msg)
		return SHMQ_EINVAL;
	if (max_bytes > (UINT64_C(1) << 48))
		return SHMQ_EINVAL;

	/* The data ring must hold `capacity` messages of the largest size
	 * plus the padding of one wrap; with a budget it need only hold the
	 * budget plus alignment and one wrap. */
	uint64_t a = align_up(max_msg, SHMQ_DATA_ALIGN);
	uint64_t size = ((uint64_t)capacity + 1) * a;
	if (max_bytes) {
		uint64_t budget = align_up(max_bytes, SHMQ_DATA_ALIGN) +
				  (uint64_t)capacity * SHMQ_DATA_ALIGN + a;
		if (budget < size)
			size = budget;
	}
	if (size < SHMQ_CACHELINE)
		size = SHMQ_CACHELINE;
	size = align_up(size, SHMQ_CACHELINE);
	/* A slot's `pos` is 32 bits: the data ring must stay below 4 GiB. */
	if (size > UINT32_MAX)
		return SHMQ_EINVAL;

	/* More slots than capacity: a producer writes slots for tickets up to
	 * head + capacity - 1 before it commits, and must never reach the slot
	 * of ticket tail - 1, which next_wpos() reads to place the next
	 * message (with ring_slots == capacity, a batch filling an empty
	 * queue, or any put at capacity 1, would overwrite it, and a crash
	 * before the commit would leave it naming a foreign ticket). */
	p->ring_slots = pow2_at_least(capacity + 1);
	p->slots_off = align_up(sizeof(struct shmq_seg_hdr), SHMQ_CACHELINE);
	p->clients_off = p->slots_off +
			 (uint64_t)p->ring_slots * sizeof(struct shmq_slot);
	uint64_t meta_end = p->clients_off +
			    (uint64_t)clients * sizeof(struct shmq_client);
	p->leases_off = p->lease_data_off = 0;
	p->lease_stride = 0;
	if (acked) {
		/* Every queued message may be leased at once: one slot, and
		 * room for one message of the largest size, per capacity. */
		p->leases_off = align_up(meta_end, SHMQ_CACHELINE);
		meta_end = p->leases_off +
			   (uint64_t)capacity * sizeof(struct shmq_lease);
		p->lease_stride = (uint32_t)align_up(max_msg, SHMQ_CACHELINE);
	}
	p->data_off = align_up(meta_end, 4096);
	p->data_size = size;
	p->seg_size = align_up(p->data_off + size, 4096);
	if (acked) {
		p->lease_data_off = p->seg_size;
		p->seg_size = align_up(p->seg_size +
				       (uint64_t)capacity * p->lease_stride,
				       4096);
	}
	return SHMQ_OK;
}

static int acked_config(const struct ring_config *cfg)
{
	return (cfg->config_flags & SHMQ_CFG_ACKED) != 0;
}

int ring_plan(const struct ring_config *cfg, uint64_t *seg_size)
{
	struct plan p;
	int rc = plan_segment(cfg->capacity, cfg->max_msg, cfg->max_bytes,
			      cfg->clients, acked_config(cfg), &p);
	if (rc == SHMQ_OK && !acked_config(cfg) &&
	    (cfg->lease_timeout_ms || cfg->max_deliveries ||
	     (cfg->dead_letter && cfg->dead_letter[0])))
		rc = SHMQ_EINVAL;       /* lease options need an acked queue */
	if (rc == SHMQ_OK)
		*seg_size = p.seg_size;
	return rc;
}

static int init_lock(pthread_mutex_t *m)
{
	pthread_mutexattr_t a;
	int rc = pthread_mutexattr_init(&a);
	if (rc == 0)
		rc = pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
	if (rc == 0)
		rc = pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
	if (rc == 0)
		rc = pthread_mutex_init(m, &a);
	pthread_mutexattr_destroy(&a);
	return rc == 0 ? SHMQ_OK : SHMQ_ESYS;
}

int ring_format(void *mem, uint64_t size, const struct ring_config *cfg)
{
	struct shmq_seg_hdr *h = mem;
	struct plan p;
	size_t name_len = cfg->name ? strlen(cfg->name) : 0;
	int rc;

	size_t dlq_len = cfg->dead_letter ? strlen(cfg->dead_letter) : 0;

	rc = plan_segment(cfg->capacity, cfg->max_msg, cfg->max_bytes,
			  cfg->clients, acked_config(cfg), &p);
	if (rc != SHMQ_OK)
		return rc;
	if (size < p.seg_size || name_len > SHMQ_NAME_MAX ||
	    dlq_len > SHMQ_NAME_MAX)
		return SHMQ_EINVAL;

	memset(h, 0, sizeof(*h));
	h->version = SHMQ_LAYOUT_VERSION;
	h->hdr_size = sizeof(*h);
	h->seg_size = p.seg_size;
	h->queue_id = cfg->queue_id;
	h->capacity = cfg->capacity;
	h->ring_slots = p.ring_slots;
	h->max_msg = cfg->max_msg;
	h->clients = cfg->clients;
	h->max_bytes = cfg->max_bytes;
	h->data_size = p.data_size;
	h->slots_off = p.slots_off;
	h->clients_off = p.clients_off;
	h->data_off = p.data_off;
	h->config_flags = cfg->config_flags &
			  (SHMQ_CFG_AUTO_CLOSE | SHMQ_CFG_ACKED |
			   SHMQ_CFG_DEADLOCK_FAIL);
	h->mode = cfg->mode & 0777;
	h->uid = cfg->uid;
	h->gid = cfg->gid;
	struct timespec now;
	clock_gettime(CLOCK_REALTIME, &now);
	h->created_ns = (int64_t)now.tv_sec * 1000000000 + now.tv_nsec;
	h->name_len = (uint32_t)name_len;
	if (name_len)
		memcpy(h->name, cfg->name, name_len);
	h->discard_from = SHMQ_NO_DISCARD;
	if (acked_config(cfg)) {
		h->lease_timeout_ms = cfg->lease_timeout_ms;
		h->max_deliveries = cfg->max_deliveries;
		h->leases_off = p.leases_off;
		h->lease_data_off = p.lease_data_off;
		h->lease_stride = p.lease_stride;
		h->dlq_len = (uint32_t)dlq_len;
		if (dlq_len)
			memcpy(h->dlq, cfg->dead_letter, dlq_len);
		h->next_deadline = SHMQ_NO_DEADLINE;
		/* No slot is returned: the empty cache of returned slots
		 * holds every one (see lease.c). */
		h->ret_bound = UINT64_MAX;
	}

	struct shmq_slot *slots = (struct shmq_slot *)((uint8_t *)mem +
						       p.slots_off);
	for (uint32_t i = 0; i < p.ring_slots; i++)
		slots[i].published = SHMQ_UNPUBLISHED;

	if ((rc = init_lock(&h->put_lock.mutex)) != SHMQ_OK ||
	    (rc = init_lock(&h->get_lock.mutex)) != SHMQ_OK)
		return rc;
	/* The magic goes last: a segment is valid only once complete. */
	__atomic_store_n(&h->magic, SHMQ_LAYOUT_MAGIC, __ATOMIC_RELEASE);
	return SHMQ_OK;
}

int ring_attach(struct ring *r, void *mem, uint64_t size)
{
	struct shmq_seg_hdr *h = mem;
	struct plan p;

	memset(r, 0, sizeof(*r));
	if (size < sizeof(*h))
		return SHMQ_ECORRUPT;
	if (LOAD_ACQ(h->magic) != SHMQ_LAYOUT_MAGIC)
		return SHMQ_ECORRUPT;
	if (READ_ONCE(h->version) != SHMQ_LAYOUT_VERSION)
		return SHMQ_EPROTO;

	/* Copy the configuration once, then check the copy: the geometry it
	 * implies must be exactly what is written and fit in our mapping. */
	uint32_t capacity = READ_ONCE(h->capacity);
	uint32_t max_msg = READ_ONCE(h->max_msg);
	uint64_t max_bytes = READ_ONCE(h->max_bytes);
	uint32_t clients = READ_ONCE(h->clients);
	uint32_t config_flags = READ_ONCE(h->config_flags);
	int acked = (config_flags & SHMQ_CFG_ACKED) != 0;
	if (plan_segment(capacity, max_msg, max_bytes, clients, acked, &p) !=
	    SHMQ_OK)
		return SHMQ_ECORRUPT;
	if (READ_ONCE(h->hdr_size) != sizeof(*h) ||
	    READ_ONCE(h->ring_slots) != p.ring_slots ||
	    READ_ONCE(h->slots_off) != p.slots_off ||
	    READ_ONCE(h->clients_off) != p.clients_off ||
	    READ_ONCE(h->data_off) != p.data_off ||
	    READ_ONCE(h->data_size) != p.data_size ||
	    READ_ONCE(h->seg_size) != p.seg_size || p.seg_size > size ||
	    READ_ONCE(h->leases_off) != p.leases_off ||
	    READ_ONCE(h->lease_data_off) != p.lease_data_off ||
	    READ_ONCE(h->lease_stride) != p.lease_stride)
		return SHMQ_ECORRUPT;

	r->hdr = h;
	r->slots = (struct shmq_slot *)((uint8_t *)mem + p.slots_off);
	r->clients = (struct shmq_client *)((uint8_t *)mem + p.clients_off);
	r->data = (uint8_t *)mem + p.data_off;
	r->seg_size = p.seg_size;
	r->data_size = p.data_size;
	r->max_bytes = max_bytes;
	r->queue_id = READ_ONCE(h->queue_id);
	r->capacity = capacity;
	r->mask = p.ring_slots - 1;
	r->max_msg = max_msg;
	r->nclients = clients;
	r->config_flags = config_flags;
	if (acked) {
		r->leases = (struct shmq_lease *)((uint8_t *)mem +
						  p.leases_off);
		r->lease_data = (uint8_t *)mem + p.lease_data_off;
		r->lease_stride = p.lease_stride;
		r->lease_timeout_ms = READ_ONCE(h->lease_timeout_ms);
		r->max_deliveries = READ_ONCE(h->max_deliveries);
		r->has_dead_letter = READ_ONCE(h->dlq_len) != 0;
	}
	ring_tune(r);
	wait_tune(r);
	return SHMQ_OK;
}

/* ------------------------------------------------------------------ */
/* Statistics and checks                                              */

void ring_stat(const struct ring *r, struct shmq_stat *st)
{
	const struct shmq_seg_hdr *h = r->hdr;

	memset(st, 0, sizeof(*st));
	uint32_t nl = READ_ONCE(h->name_len);
	if (nl > SHMQ_NAME_MAX)
		nl = 0;
	for (uint32_t i = 0; i < nl; i++)
		st->name[i] = READ_ONCE(h->name[i]);
	st->capacity = r->capacity;
	st->max_msg = r->max_msg;
	st->max_bytes = r->max_bytes;
	st->mode = READ_ONCE(h->mode) & 0777;
	st->uid = READ_ONCE(h->uid);
	st->gid = READ_ONCE(h->gid);
	st->flags = ((r->config_flags & SHMQ_CFG_AUTO_CLOSE) ? SHMQ_AUTO_CLOSE
							     : 0) |
		    (r->leases ? SHMQ_ACKED : 0) |
		    ((r->config_flags & SHMQ_CFG_DEADLOCK_FAIL)
			     ? SHMQ_DEADLOCK_FAIL : 0);

	/* head first: both only grow, so tail read later is >= head. */
	uint64_t head = LOAD_ACQ(h->head);
	uint64_t tw = LOAD_ACQ(h->tail);
	uint64_t tail = tw & SHMQ_TAIL_COUNT;
	uint64_t from = READ_ONCE(h->discard_from);
	if (tail >= head && tail - head <= r->capacity) {
		st->messages = tail - head;
		struct shmq_slot first, last;
		if (tail > head && read_slot(r, head, &first) == SHMQ_OK &&
		    read_slot(r, tail - 1, &last) == SHMQ_OK &&
		    last.bytes + last.len >= first.bytes)
			st->bytes = last.bytes + last.len - first.bytes;
	}
	st->total_put = tail;
	if (from != SHMQ_NO_DISCARD && from <= tail) {
		st->discarded = tail - from;
		st->total_got = from < head ? from : head;
	} else {
		st->total_got = head;
	}
	st->state = (tw & SHMQ_TAIL_NOW)      ? SHMQ_STATE_CLOSED_NOW
		    : (tw & SHMQ_TAIL_CLOSED) ? SHMQ_STATE_CLOSED
					      : SHMQ_STATE_OPEN;
	uint32_t sf = READ_ONCE(h->state_flags);
	st->auto_closed = !!(sf & SHMQ_ST_AUTO_CLOSED);
	st->producer_lost = !!(sf & SHMQ_ST_PRODUCER_LOST);
	st->deadlocked = !!(READ_ONCE(h->deadlocked) & SHMQ_DL_WAITERS);
	st->producers = READ_ONCE(h->producers);
	st->consumers = READ_ONCE(h->consumers);
	for (uint32_t i = 0; i < r->nclients; i++) {
		const struct shmq_client *c = &r->clients[i];
		if (READ_ONCE(c->pid) == 0)
			continue;
		uint32_t wait = READ_ONCE(c->wait);
		st->put_blocked += wait == SHMQ_WAIT_PUT;
		st->get_blocked += wait == SHMQ_WAIT_GET;
	}
	st->created_ns = READ_ONCE(h->created_ns);
	st->closed_ns = READ_ONCE(h->closed_ns);
	if (r->leases)
		lease_stat(r, head, st);
}

void ring_progress(const struct ring *r, struct ring_progress *p)
{
	const struct shmq_seg_hdr *h = r->hdr;
	struct shmq_slot first, last;

	memset(p, 0, sizeof(*p));
	p->head = LOAD_ACQ(h->head);
	p->tail_word = LOAD_ACQ(h->tail);
	uint64_t tail = p->tail_word & SHMQ_TAIL_COUNT;
	p->discarded = READ_ONCE(h->discard_from);
	if (tail > p->head && tail - p->head <= r->capacity &&
	    read_slot(r, p->head, &first) == SHMQ_OK &&
	    read_slot(r, tail - 1, &last) == SHMQ_OK &&
	    last.bytes + last.len >= first.bytes)
		p->bytes = last.bytes + last.len - first.bytes;
	p->next_deadline = SHMQ_NO_DEADLINE;
	if (r->leases) {
		p->leased = READ_ONCE(h->leased);
		p->returned = READ_ONCE(h->returned);
		p->acked = READ_ONCE(h->acked);
		p->dead_lettered = READ_ONCE(h->dead_lettered);
		p->dropped = READ_ONCE(h->dropped);
		p->discarded += READ_ONCE(h->lease_discarded);
		p->bytes += READ_ONCE(h->lease_bytes);
		p->next_deadline = READ_ONCE(h->next_deadline);
	}
}

uint64_t ring_netns(void)
{
	struct stat st;

	return stat("/proc/self/ns/net", &st) == 0 ? (uint64_t)st.st_ino : 0;
}

void ring_set_daemon_netns(struct ring *r)
{
	WRITE_ONCE(r->hdr->daemon_netns, ring_netns());
}

void ring_dl_set_period(struct ring *r, uint32_t report_ms)
{
	WRITE_ONCE(r->hdr->dl_report_ms, report_ms);
}

uint32_t ring_dl_state(const struct ring *r)
{
	return READ_ONCE(r->hdr->deadlocked);
}

void ring_dl_set_state(struct ring *r, uint32_t state)
{
	WRITE_ONCE(r->hdr->deadlocked, state);
}

void ring_dl_set_watch(struct ring *r, int64_t until_ns, int64_t seen_ns)
{
	WRITE_ONCE(r->hdr->dl_seen_ns, seen_ns);
	WRITE_ONCE(r->hdr->dl_watch_ns, until_ns);
}

int ring_check(struct ring *r)
{
	struct shmq_seg_hdr *h = r->hdr;
	uint64_t head = LOAD_ACQ(h->head);
	uint64_t tail = LOAD_ACQ(h->tail) & SHMQ_TAIL_COUNT;
	struct shmq_slot prev = { 0 }, s;

	if (head > tail || tail - head > r->capacity)
		return SHMQ_ECORRUPT;
	if (READ_ONCE(h->name_len) > SHMQ_NAME_MAX ||
	    READ_ONCE(h->name[SHMQ_NAME_MAX]) != '\0')
		return SHMQ_ECORRUPT;
	/* Every queued message, in order, must follow the one before it. */
	for (uint64_t t = head; t < tail; t++) {
		if (read_slot(r, t, &s) != SHMQ_OK)
			return SHMQ_ECORRUPT;
		if (t > head && (s.off < prev.off + ring_bytes(prev.len) ||
				 s.bytes != prev.bytes + prev.len))
			return SHMQ_ECORRUPT;
		prev = s;
	}
	if (tail > 0 && read_slot(r, tail - 1, &s) != SHMQ_OK)
		return SHMQ_ECORRUPT;
	return r->leases ? lease_check(r, head) : SHMQ_OK;
}
