/*
 * shmq-torture.c - kill torture: producers and consumers in separate
 * processes exchange sequence-numbered messages through several queues
 * while a driver SIGKILLs random processes at random moments (holding a
 * lock, asleep in put or get, half-way through a copy), and optionally the
 * daemon too, and restarts them.  Afterwards it proves:
 *
 *   - progress never stopped (no deadlock: a watchdog fails the run);
 *   - no message was received twice;
 *   - every message whose put returned success was received, except those
 *     a killed consumer had already taken out: a consumer announces the
 *     batch it asks for before get and clears it once it has recorded
 *     what it got, so each kill allows at most that many;
 *   - every queue is consistent and empty at the end, with no producer,
 *     consumer or sleeper left counted.
 *
 * With --acked the queues are acked and the consumers are workers: they
 * lease (singly, in batches, in place) or get, then ack, sometimes nack
 * (now and then straight to the dead-letter queue) or extend, and report
 * each successful ack and nack on a side channel.  Every acked queue has
 * a small dead-letter queue, which a drainer (never killed) empties
 * slowly enough that dead letters wait for room at times; one queue's
 * leases time out (its workers now and then sleep past the deadline);
 * and at the end one queue is closed with close --now while its workers
 * still hold leases, and every queue is joined.  Nothing may be lost
 * then: every message put is settled exactly once, acked (no ack reported
 * twice) or dead-lettered (a copy in the dead-letter queue; a second copy
 * only from a kill inside the move, at most one per kill), except on the
 * closed-now queue, where what was discarded is counted; the queue's own
 * counts agree (acked + dead-lettered + discarded = put); a message
 * delivered more than once must have been nacked, held by a killed
 * worker or past its deadline; and the only unreported ones are those a
 * killed worker was settling.  A worker publishes what it holds before
 * it settles it, and announces a lease or get before the call, so the
 * driver knows what a kill left behind.
 *
 * The bookkeeping lives in an anonymous shared mapping made before any
 * fork, so it survives every kill:
 *
 *   producer slot k   acked: seqs < acked were put successfully;
 *                     tried: seqs in [acked, tried) may or may not have
 *                     been committed when the producer died;
 *   received[k][seq]  how many times a consumer got that message.
 *
 * and, with --acked, struct acked_book (below).
 *
 * Usage: shmq-torture [--seconds N] [--producers N] [--consumers N]
 *                     [--queues N] [--kill-daemon] [--acked] [--seed N]
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "shmq.h"
#include "privd.h"

#define MAX_PROCS   16
#define MAX_QUEUES  8
#define MAX_BATCH   8
#define MAX_SEQ     (1u << 24)      /* per producer slot */
#define MSG_MAX     1024

struct message {                    /* the head of every message */
	uint32_t producer;
	uint32_t len;
	uint64_t seq;
	uint64_t sum;                   /* of the bytes after the head */
};

struct prod_state {
	uint64_t acked;
	uint64_t tried;
};

struct book {
	volatile int stop;              /* producers: finish and detach */
	struct prod_state prod[MAX_PROCS];
	uint64_t got[MAX_PROCS];        /* per consumer slot */
	uint64_t want[MAX_PROCS];       /* a consumer's batch while in get */
	uint64_t bad;                   /* corrupt, out of order, unknown */
	uint8_t received[MAX_PROCS][MAX_SEQ];
};

/* Acked queues: what workers report, per message, and what they hold. */
#define ACKED_SEQ   (1u << 20)      /* per producer slot, with --acked */
#define NACK_BELOW  4               /* workers nack only early deliveries */
#define MAX_DELIV   5               /* then the dead-letter queue */
#define DL_CAPACITY 4               /* small: dead letters wait for room */
#define SHORT_LEASE 200             /* ms: the timeout queue's leases */

struct acked_book {
	uint64_t held[MAX_PROCS][MAX_BATCH];    /* producer << 32 | seq */
	uint32_t held_n[MAX_PROCS];     /* published after the lease */
	uint32_t held_done[MAX_PROCS];  /* settled and reported so far */
	uint8_t deliveries[MAX_PROCS][ACKED_SEQ];   /* the most seen */
	uint8_t acks[MAX_PROCS][ACKED_SEQ];         /* successful acks */
	uint8_t nacks[MAX_PROCS][ACKED_SEQ];        /* successful nacks */
	uint8_t killed[MAX_PROCS][ACKED_SEQ];       /* held by a killed one */
	uint8_t expired[MAX_PROCS][ACKED_SEQ];      /* its lease timed out */
	uint8_t dead[MAX_PROCS][ACKED_SEQ];         /* copies dead-lettered */
	volatile int drained;           /* the drainer saw every end */
};

struct config {
	unsigned seconds, producers, consumers, queues;
	int kill_daemon;
	int acked;
	unsigned seed;
	const char *daemon;
};

static struct book *book;
static struct acked_book *ab;
static struct config cfg;
static char sockdir[64];
static pid_t daemon_pid;

static uint64_t mix(uint64_t x)
{
	x ^= x >> 31;
	x *= UINT64_C(0x7fb5d329728ea185);
	x ^= x >> 27;
	return x;
}

static void queue_name(unsigned i, char *buf, size_t size)
{
	snprintf(buf, size, "torture.%u", i);
}

/* With --acked: queue i's dead-letter queue; the one queue whose leases
 * time out; the one closed with close --now at the end (none of one). */
static void dl_name(unsigned i, char *buf, size_t size)
{
	snprintf(buf, size, "torture.%u.dead", i);
}

static int short_lease(unsigned i)
{
	return i == 1 % cfg.queues;
}

static int closed_now(unsigned i)
{
	return cfg.queues > 1 && i == cfg.queues - 1;
}

/* --- the daemon -------------------------------------------------------- */

static void daemon_prep(void)
{
	prctl(PR_SET_PDEATHSIG, SIGKILL);
}

static void start_daemon(void)
{
	char sock[96], log[96];
	pid_t other;
	int status;

	snprintf(sock, sizeof(sock), "%s/s.sock", sockdir);
	snprintf(log, sizeof(log), "%s/shmqd.log", sockdir);
	daemon_pid = privd_start(cfg.daemon, sock, log, daemon_prep);
	/* Ready when it answers. */
	if (daemon_pid > 0 && privd_wait_ready(daemon_pid, sock, 5000, NULL,
					       &status, &other) == PRIVD_READY)
		return;
	fprintf(stderr, "torture: shmqd did not start (see %s)\n", log);
	exit(1);
}

/* Opens, retrying while the daemon is being restarted. */
static shmq_t *open_retry(const char *name, unsigned flags)
{
	shmq_t *q;
	int rc;

	for (int i = 0; i < 3000; i++) {
		rc = shmq_open(name, flags, &q);
		if (rc == SHMQ_OK)
			return q;
		if (rc != SHMQ_ENODAEMON)
			break;
		sleep_ms(5);
	}
	fprintf(stderr, "torture: open %s: %s\n", name, shmq_strerror(rc));
	_exit(3);
}

/* --- producers and consumers -------------------------------------------- */

static size_t make_message(uint8_t *buf, unsigned k, uint64_t seq)
{
	struct message *m = (struct message *)buf;
	uint64_t r = mix(seq * 977 + k);
	size_t len = sizeof(*m) + (size_t)(r % (MSG_MAX - sizeof(*m) + 1));
	uint64_t sum = 0;

	for (size_t i = sizeof(*m); i < len; i++) {
		buf[i] = (uint8_t)(r >> ((i % 8) * 8)) ^ (uint8_t)i;
		sum = sum * 31 + buf[i];
	}
	m->producer = k;
	m->len = (uint32_t)len;
	m->seq = seq;
	m->sum = sum;
	return len;
}

static int timeout_for(uint64_t r)
{
	switch (r % 4) {
	case 0: return SHMQ_NOWAIT;
	case 1: return 20;
	default: return SHMQ_FOREVER;
	}
}

static void producer(unsigned k)
{
	static uint8_t bufs[MAX_BATCH][MSG_MAX];
	struct iovec iov[MAX_BATCH];
	char name[32];
	struct prod_state *ps = &book->prod[k];
	uint64_t seq = ps->tried;   /* past anything possibly committed */
	shmq_t *q;

	queue_name(k % cfg.queues, name, sizeof(name));
	q = open_retry(name, SHMQ_PRODUCER);
	uint64_t max_seq = cfg.acked ? ACKED_SEQ : MAX_SEQ;

	while (!book->stop && seq + MAX_BATCH < max_seq) {
		uint64_t r = mix(seq ^ (uint64_t)getpid() << 32);
		size_t n = 1 + r % MAX_BATCH, done = 0;
		for (size_t i = 0; i < n; i++) {
			iov[i].iov_base = bufs[i];
			iov[i].iov_len = make_message(bufs[i], k, seq + i);
		}
		/* tried first, acked after: a kill in between leaves the
		 * batch "maybe committed", which the check allows. */
		__atomic_store_n(&ps->tried, seq + n, __ATOMIC_SEQ_CST);
		int rc = shmq_putv(q, iov, n, &done, timeout_for(r >> 8));
		if (done) {
			seq += done;
			__atomic_store_n(&ps->acked, seq, __ATOMIC_SEQ_CST);
		}
		__atomic_store_n(&ps->tried, seq, __ATOMIC_SEQ_CST);
		if (rc == SHMQ_ECLOSED)
			break;
		if (rc != SHMQ_OK && rc != SHMQ_ETIMEDOUT &&
		    rc != SHMQ_EAGAIN) {
			fprintf(stderr, "torture: put: %s\n", shmq_strerror(rc));
			_exit(4);
		}
	}
	/* Out of sequence numbers: idle (as a live producer) until the end. */
	while (!book->stop)
		sleep_ms(10);
	shmq_detach(q);
	_exit(0);
}

/* Checks a message's integrity and, given last_seen, each producer's
 * order (acked queues redeliver out of order: no order check there).
 * Returns producer << 32 | seq, or UINT64_MAX for a bad one. */
static uint64_t check_message(const uint8_t *buf, size_t len,
			      uint64_t *last_seen)
{
	struct message head, *m = &head;
	uint64_t sum = 0;

	if (len < sizeof(*m))
		goto bad;
	memcpy(m, buf, sizeof(*m));
	if (m->len != len || m->producer >= MAX_PROCS || m->seq >= MAX_SEQ ||
	    (cfg.acked && m->seq >= ACKED_SEQ))
		goto bad;
	for (size_t i = sizeof(*m); i < len; i++)
		sum = sum * 31 + buf[i];
	if (sum != m->sum)
		goto bad;
	if (last_seen) {
		/* FIFO per producer, as this consumer sees it. */
		if (last_seen[m->producer] != UINT64_MAX &&
		    m->seq <= last_seen[m->producer])
			goto bad;
		last_seen[m->producer] = m->seq;
		__atomic_add_fetch(&book->received[m->producer][m->seq], 1,
				   __ATOMIC_SEQ_CST);
	}
	return (uint64_t)m->producer << 32 | m->seq;
bad:
	__atomic_add_fetch(&book->bad, 1, __ATOMIC_SEQ_CST);
	return UINT64_MAX;
}

static void consumer(unsigned c)
{
	static uint8_t buf[MAX_BATCH * MSG_MAX];
	uint64_t last_seen[MAX_PROCS];
	struct iovec out[MAX_BATCH];
	char name[32];
	shmq_t *q;
	int rc;

	for (int i = 0; i < MAX_PROCS; i++)
		last_seen[i] = UINT64_MAX;
	queue_name(c % cfg.queues, name, sizeof(name));
	q = open_retry(name, SHMQ_CONSUMER);
	for (uint64_t i = 0;; i++) {
		uint64_t r = mix(i ^ (uint64_t)getpid() << 20);
		size_t want = 1 + r % MAX_BATCH, got = 0;
		__atomic_store_n(&book->want[c], want, __ATOMIC_SEQ_CST);
		rc = shmq_getv(q, buf, sizeof(buf), out, want, &got,
			       timeout_for(r >> 8));
		for (size_t j = 0; j < got; j++)
			check_message(out[j].iov_base, out[j].iov_len,
				      last_seen);
		__atomic_add_fetch(&book->got[c], got, __ATOMIC_SEQ_CST);
		__atomic_store_n(&book->want[c], 0, __ATOMIC_SEQ_CST);
		if (rc == SHMQ_EOS || rc == SHMQ_EOS_LOST)
			break;
		if (rc != SHMQ_OK && rc != SHMQ_ETIMEDOUT &&
		    rc != SHMQ_EAGAIN) {
			fprintf(stderr, "torture: get: %s\n", shmq_strerror(rc));
			_exit(4);
		}
	}
	shmq_detach(q);
	_exit(0);
}

/* --- workers of acked queues ---------------------------------------------- */

static void raise_to(uint8_t *p, uint32_t v)
{
	uint8_t cur = __atomic_load_n(p, __ATOMIC_SEQ_CST);
	uint8_t want = v > 255 ? 255 : (uint8_t)v;

	while (cur < want && !__atomic_compare_exchange_n(p, &cur, want, 0,
							  __ATOMIC_SEQ_CST,
							  __ATOMIC_SEQ_CST))
		;
}

static void bump(uint8_t *p)
{
	if (__atomic_load_n(p, __ATOMIC_SEQ_CST) < 255)
		__atomic_add_fetch(p, 1, __ATOMIC_SEQ_CST);
}

/* Takes up to `want` messages in one of the ways a worker can: a lease,
 * a batch of leases, a lease in place, or a get (which acks at once: its
 * m[i].lease is 0).  Returns the status; *got says how many. */
static int take_some(shmq_t *q, uint64_t r, uint8_t *buf, size_t size,
		     struct shmq_msg *m, size_t want, size_t *got,
		     int timeout)
{
	struct iovec v[MAX_BATCH];
	int rc;

	*got = 0;
	switch (r % 8) {
	case 0:
		rc = shmq_lease(q, buf, size, m, timeout);
		*got = rc == SHMQ_OK;
		return rc;
	case 1:
		rc = shmq_lease_view(q, m, timeout);
		*got = rc == SHMQ_OK;
		return rc;
	case 2:
		rc = shmq_getv(q, buf, size, v, want, got, timeout);
		for (size_t i = 0; i < *got; i++)
			m[i] = (struct shmq_msg){ .data = v[i].iov_base,
						  .len = v[i].iov_len };
		return rc;
	default:
		return shmq_leasev(q, buf, size, m, want, got, timeout);
	}
}

/* Settles message i of the batch (ack, or now and then nack or extend
 * first), and reports what succeeded. */
static void settle_one(shmq_t *q, const struct shmq_msg *m, uint64_t id,
		       uint64_t r, int timeouts)
{
	unsigned k = (unsigned)(id >> 32);
	uint64_t seq = id & 0xffffffffu;
	int rc;

	if (m->lease == 0) {            /* taken by a get: acked already */
		bump(&ab->acks[k][seq]);
		return;
	}
	/* On the timeout queue a lease may end under a live worker (one
	 * that sleeps past it on purpose, or that the machine did not run
	 * in time): then every call on it is refused, and the message goes
	 * to somebody else.  Anywhere else a refusal is a bug. */
	if (timeouts && r % 64 == 7)
		sleep_ms(SHORT_LEASE + 50);
	if (r % 16 == 0)
		rc = shmq_extend(q, m, 0);
	else
		rc = SHMQ_OK;
	if (rc == SHMQ_OK && r % 8 == 1 && m->deliveries < NACK_BELOW) {
		rc = shmq_nack(q, m, 0);
		if (rc == SHMQ_OK)
			bump(&ab->nacks[k][seq]);
	} else if (rc == SHMQ_OK && r % 512 == 10) {
		rc = shmq_nack(q, m, SHMQ_NACK_DEAD);   /* the drainer sees it */
	} else if (rc == SHMQ_OK) {
		rc = shmq_ack(q, m);
		if (rc == SHMQ_OK)
			bump(&ab->acks[k][seq]);
	}
	if (rc == SHMQ_ELEASE && timeouts) {
		bump(&ab->expired[k][seq]);
	} else if (rc != SHMQ_OK) {
		fprintf(stderr, "torture: settle: %s\n", shmq_strerror(rc));
		__atomic_add_fetch(&book->bad, 1, __ATOMIC_SEQ_CST);
	}
}

static void worker(unsigned c)
{
	static uint8_t buf[MAX_BATCH * (MSG_MAX + 16)];
	struct shmq_msg m[MAX_BATCH];
	char name[32];
	shmq_t *q;
	int rc;

	queue_name(c % cfg.queues, name, sizeof(name));
	q = open_retry(name, SHMQ_CONSUMER);
	for (uint64_t i = 0;; i++) {
		uint64_t r = mix(i ^ (uint64_t)getpid() << 20);
		size_t want = 1 + r % MAX_BATCH, got = 0;

		/* Announce, take, publish what we hold, then settle it one
		 * by one: a kill anywhere leaves the driver knowing what
		 * may have been taken or settled unreported. */
		__atomic_store_n(&ab->held_n[c], 0, __ATOMIC_SEQ_CST);
		__atomic_store_n(&ab->held_done[c], 0, __ATOMIC_SEQ_CST);
		__atomic_store_n(&book->want[c], want, __ATOMIC_SEQ_CST);
		rc = take_some(q, r >> 8, buf, sizeof(buf), m, want, &got,
			       timeout_for(r >> 16));
		for (size_t j = 0; j < got; j++) {
			uint64_t id = check_message(m[j].data, m[j].len, NULL);
			ab->held[c][j] = id;
			if (id != UINT64_MAX && m[j].lease)
				raise_to(&ab->deliveries[id >> 32]
							[id & 0xffffffffu],
					 m[j].deliveries);
			else if (id != UINT64_MAX)
				raise_to(&ab->deliveries[id >> 32]
							[id & 0xffffffffu], 1);
		}
		__atomic_store_n(&ab->held_n[c], (uint32_t)got,
				 __ATOMIC_SEQ_CST);
		__atomic_store_n(&book->want[c], 0, __ATOMIC_SEQ_CST);
		for (size_t j = 0; j < got; j++) {
			if (ab->held[c][j] != UINT64_MAX)
				settle_one(q, &m[j], ab->held[c][j],
					   mix(r + j),
					   short_lease(c % cfg.queues));
			else if (m[j].lease)
				shmq_ack(q, &m[j]);
			__atomic_store_n(&ab->held_done[c], (uint32_t)j + 1,
					 __ATOMIC_SEQ_CST);
		}
		__atomic_add_fetch(&book->got[c], got, __ATOMIC_SEQ_CST);
		if (rc == SHMQ_EOS || rc == SHMQ_EOS_LOST)
			break;
		if (rc != SHMQ_OK && rc != SHMQ_ETIMEDOUT &&
		    rc != SHMQ_EAGAIN) {
			fprintf(stderr, "torture: lease: %s\n",
				shmq_strerror(rc));
			_exit(4);
		}
	}
	shmq_detach(q);
	_exit(0);
}

/* The driver, after killing worker c: what it held is marked as held by
 * a killed worker; what it was taking counts toward the allowance. */
static uint64_t worker_killed(unsigned c)
{
	uint32_t n = ab->held_n[c], done = ab->held_done[c];

	for (uint32_t j = done; j < n && j < MAX_BATCH; j++) {
		uint64_t id = ab->held[c][j];
		if (id != UINT64_MAX)
			bump(&ab->killed[id >> 32][id & 0xffffffffu]);
	}
	ab->held_n[c] = ab->held_done[c] = 0;
	return book->want[c];
}

/* The drainer: empties every dead-letter queue until each ends, now and
 * then pausing so that they fill and dead letters wait for room, and
 * records each copy.  Never killed: what it takes it has recorded. */
static void drainer(void)
{
	static uint8_t buf[MSG_MAX];
	shmq_t *q[MAX_QUEUES];
	int open[MAX_QUEUES];
	unsigned left = cfg.queues;
	char name[32];
	size_t len;

	for (unsigned i = 0; i < cfg.queues; i++) {
		dl_name(i, name, sizeof(name));
		q[i] = open_retry(name, SHMQ_CONSUMER);
		open[i] = 1;
	}
	for (uint64_t n = 0; left; n++) {
		for (unsigned i = 0; i < cfg.queues; i++) {
			if (!open[i])
				continue;
			int rc = shmq_get(q[i], buf, sizeof(buf), &len,
					  SHMQ_NOWAIT);
			if (rc == SHMQ_OK) {
				uint64_t id = check_message(buf, len, NULL);
				if (id != UINT64_MAX)
					bump(&ab->dead[id >> 32]
						      [id & 0xffffffffu]);
			} else if (rc == SHMQ_EOS || rc == SHMQ_EOS_LOST) {
				open[i] = 0;
				left--;
			} else if (rc != SHMQ_EAGAIN) {
				fprintf(stderr, "torture: drain: %s\n",
					shmq_strerror(rc));
				_exit(4);
			}
		}
		sleep_ms(mix(n) % 8 == 0 ? 20 : 1);
	}
	for (unsigned i = 0; i < cfg.queues; i++)
		shmq_detach(q[i]);
	ab->drained = 1;
	_exit(0);
}

/* --- the driver -------------------------------------------------------- */

struct child {
	pid_t pid;
	int consumer;
	unsigned slot;
};

static struct child kids[2 * MAX_PROCS];
static unsigned nkids;
static pid_t drainer_pid;

static pid_t spawn(int is_consumer, unsigned slot)
{
	pid_t pid = fork();

	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (is_consumer && cfg.acked)
			worker(slot);
		if (is_consumer)
			consumer(slot);
		producer(slot);
	}
	if (pid < 0) {
		perror("torture: fork");
		exit(1);
	}
	return pid;
}

static uint64_t progress(void)
{
	uint64_t p = 0;
	for (unsigned i = 0; i < cfg.consumers; i++)
		p += __atomic_load_n(&book->got[i], __ATOMIC_RELAXED);
	return p;
}

static void dump_queues(void)
{
	for (unsigned i = 0; i < cfg.queues; i++) {
		struct shmq_stat st;
		char name[32];
		queue_name(i, name, sizeof(name));
		if (shmq_stat_name(name, &st) == SHMQ_OK)
			fprintf(stderr, "  %s: %" PRIu64 "/%u queued, put %" PRIu64
				" got %" PRIu64 ", blocked put %u get %u, "
				"producers %u consumers %u, state %d\n", name,
				st.messages, st.capacity, st.total_put,
				st.total_got, st.put_blocked, st.get_blocked,
				st.producers, st.consumers, st.state);
	}
}

/* Reaps one finished child without blocking; returns its index or -1. */
static int reap(int *status)
{
	pid_t pid = waitpid(-1, status, WNOHANG);

	if (pid <= 0)
		return -1;
	if (pid == daemon_pid || pid == drainer_pid) {
		/* Only the driver kills the daemon, and reaps it itself;
		 * the drainer ends only after the run. */
		fprintf(stderr, "torture: %s died by itself (status %d)\n",
			pid == daemon_pid ? "shmqd" : "the drainer", *status);
		exit(1);
	}
	for (unsigned i = 0; i < nkids; i++)
		if (kids[i].pid == pid)
			return (int)i;
	return -1;
}

/* Every queue drained and nothing left counted; an acked queue settled
 * each message it ever took exactly once (acked, dead-lettered, or after
 * close --now discarded), and its dead-letter queue is empty. */
static int queues_clean(void)
{
	int ok = 1;

	for (unsigned i = 0; i < cfg.queues; i++) {
		struct shmq_stat st, dl = { 0 };
		char name[32], dname[32];
		queue_name(i, name, sizeof(name));
		dl_name(i, dname, sizeof(dname));
		int now = cfg.acked && closed_now(i);
		if (shmq_stat_name(name, &st) != SHMQ_OK ||
		    st.messages != 0 ||
		    (!now && st.total_put != st.total_got) ||
		    st.producers || st.consumers || st.put_blocked ||
		    st.get_blocked ||
		    (cfg.acked && (st.leased || st.returned || st.dropped ||
				   st.acked + st.dead_lettered +
						   (now ? st.discarded : 0) !=
					   st.total_put)) ||
		    (cfg.acked && (shmq_stat_name(dname, &dl) != SHMQ_OK ||
				   dl.messages || dl.producers ||
				   dl.consumers))) {
			fprintf(stderr, "torture: %s is not clean at the end\n",
				name);
			ok = 0;
		}
	}
	return ok;
}

/* With --acked: nothing lost, each message settled once (acked, or
 * dead-lettered: a second copy there only from a kill inside the move,
 * at most `kills` of them), each one delivered again nacked, held by a
 * killed worker or past its deadline.  `allowed` covers what killed
 * workers were taking (a get acks as it takes) and settling unreported;
 * on the closed-now queue what was never settled was discarded. */
static int verify_acked(uint64_t allowed, uint64_t kills, uint64_t *lost)
{
	uint64_t delivered = 0, again = 0, dup = 0, phantom = 0,
		 unexplained = 0, killed = 0, nacked = 0, expired = 0,
		 dead = 0, dead_dup = 0, discarded = 0;
	int ok = 1;

	for (unsigned k = 0; k < cfg.producers; k++) {
		struct prod_state *ps = &book->prod[k];
		for (uint64_t s = 0; s < ACKED_SEQ; s++) {
			unsigned n = ab->deliveries[k][s];
			unsigned acks = ab->acks[k][s], dl = ab->dead[k][s];
			unsigned why = ab->nacks[k][s] + ab->killed[k][s] +
				       ab->expired[k][s];
			delivered += n;
			nacked += ab->nacks[k][s];
			killed += ab->killed[k][s] > 0;
			expired += ab->expired[k][s] > 0;
			dead += dl > 0;
			if (dl > 1)
				dead_dup += dl - 1;
			if (n > 1)
				again++;
			if (acks > 1 || (acks && dl))
				dup++;
			if (s >= ps->tried && (n || acks || dl))
				phantom++;
			else if (acks || dl)
				;               /* settled */
			else if (closed_now(k % cfg.queues))
				discarded += s < ps->acked;
			else if (s < ps->acked && n == 0)
				unexplained++;  /* taken unreported */
			else if (n && !ab->killed[k][s])
				unexplained++;  /* settled unreported */
			if (n > 1 && n - 1 > why)
				unexplained += n - 1 - why;
		}
	}
	*lost = unexplained;
	printf("verify: %" PRIu64 " messages delivered (%" PRIu64 " more than "
	       "once: %" PRIu64 " nacks, %" PRIu64 " held by killed workers, "
	       "%" PRIu64 " past their deadline), %" PRIu64 " dead-lettered "
	       "(%" PRIu64 " copies twice, at most %" PRIu64 "), %" PRIu64
	       " discarded by close --now, %" PRIu64 " settled twice, %"
	       PRIu64 " unexplained (at most %" PRIu64 " allowed), %" PRIu64
	       " never put, %" PRIu64 " bad\n",
	       delivered, again, nacked, killed, expired, dead, dead_dup,
	       kills, discarded, dup, unexplained, allowed, phantom,
	       book->bad);
	if (dup || phantom || book->bad || unexplained > allowed ||
	    dead_dup > kills || !ab->drained)
		ok = 0;
	ok &= queues_clean();
	if (!ok)
		dump_queues();
	return ok;
}

static int verify(uint64_t allowed, uint64_t *lost)
{
	uint64_t dup = 0, missing = 0, phantom = 0, maybe = 0, delivered = 0;
	int ok = 1;

	for (unsigned k = 0; k < cfg.producers; k++) {
		struct prod_state *ps = &book->prod[k];
		for (uint64_t s = 0; s < MAX_SEQ; s++) {
			uint8_t n = book->received[k][s];
			delivered += n;
			if (n > 1)
				dup++;
			if (s < ps->acked && n == 0)
				missing++;
			else if (s >= ps->acked && s < ps->tried)
				maybe++;
			else if (s >= ps->tried && n > 0)
				phantom++;
		}
	}
	*lost = missing;
	printf("verify: %" PRIu64 " delivered, %" PRIu64 " duplicated, "
	       "%" PRIu64 " lost in killed consumers (at most %" PRIu64
	       " allowed), %" PRIu64 " never acked, %" PRIu64 " bad\n",
	       delivered, dup, missing, allowed, phantom, book->bad);
	(void)maybe;
	if (dup || phantom || book->bad || missing > allowed)
		ok = 0;
	ok &= queues_clean();
	if (!ok)
		dump_queues();
	return ok;
}

static void cleanup(void)
{
	char name[32];

	for (unsigned i = 0; i < cfg.queues; i++) {
		queue_name(i, name, sizeof(name));
		shmq_delete(name);
		dl_name(i, name, sizeof(name));
		shmq_delete(name);
	}
	if (daemon_pid > 0) {
		kill(daemon_pid, SIGTERM);
		waitpid(daemon_pid, NULL, 0);
	}
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", sockdir);
	if (system(cmd) != 0)
		fprintf(stderr, "torture: could not remove %s\n", sockdir);
}

static int run(void)
{
	uint64_t kills_p = 0, kills_c = 0, kills_d = 0, lost = 0, allowed = 0;
	unsigned rnd = cfg.seed;
	double t0 = mono_s(), last_progress_t = t0, next_daemon_kill = t0 + 1;
	uint64_t last_progress = 0;
	int status, ok = 1, failures = 0;
	char name[32];

	for (unsigned i = 0; i < cfg.queues; i++) {
		struct shmq_attr a, d;
		char dname[32];
		int rc = SHMQ_OK;
		shmq_attr_init(&a);
		a.capacity = i % 3 == 0 ? 1 : i % 3 == 1 ? 8 : 64;
		a.max_msg = MSG_MAX;
		if (cfg.acked) {
			/* On one queue leases time out under live workers;
			 * on the others the deadline never passes in a run,
			 * but is kept. */
			a.flags |= SHMQ_ACKED;
			a.lease_timeout_ms = short_lease(i) ? SHORT_LEASE
							    : 30000;
			a.max_deliveries = MAX_DELIV;
			dl_name(i, dname, sizeof(dname));
			a.dead_letter = dname;
			shmq_attr_init(&d);
			d.capacity = DL_CAPACITY;
			d.max_msg = MSG_MAX;
			rc = shmq_create(dname, &d, 0);
		}
		queue_name(i, name, sizeof(name));
		if (rc == SHMQ_OK)
			rc = shmq_create(name, &a, 0);
		if (rc != SHMQ_OK) {
			fprintf(stderr, "torture: create %s: %s\n", name,
				shmq_strerror(rc));
			return 0;
		}
	}
	if (cfg.acked && (drainer_pid = fork()) == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		drainer();
	}
	for (unsigned i = 0; i < cfg.producers; i++)
		kids[nkids++] = (struct child){ spawn(0, i), 0, i };
	for (unsigned i = 0; i < cfg.consumers; i++)
		kids[nkids++] = (struct child){ spawn(1, i), 1, i };

	while (mono_s() - t0 < cfg.seconds) {
		/* Kill someone at a random moment, then bring it back. */
		sleep_ms(1 + rand_r(&rnd) % 20);
		struct child *victim = &kids[rand_r(&rnd) % nkids];
		kill(victim->pid, SIGKILL);
		waitpid(victim->pid, &status, 0);
		if (victim->consumer) {
			kills_c++;
			allowed += cfg.acked ? worker_killed(victim->slot)
					     : book->want[victim->slot];
			book->want[victim->slot] = 0;
		} else {
			kills_p++;
		}
		victim->pid = spawn(victim->consumer, victim->slot);

		if (cfg.kill_daemon && mono_s() >= next_daemon_kill) {
			kill(daemon_pid, SIGKILL);
			waitpid(daemon_pid, NULL, 0);
			kills_d++;
			sleep_ms(rand_r(&rnd) % 50);    /* clients run alone */
			start_daemon();
			next_daemon_kill = mono_s() + 0.5 + rand_r(&rnd) % 1500 /
							     1000.0;
		}
		/* Children that exited by themselves are a failure. */
		int i;
		while ((i = reap(&status)) >= 0) {
			fprintf(stderr, "torture: %s %u exited (status %d)\n",
				kids[i].consumer ? "consumer" : "producer",
				kids[i].slot, status);
			if (++failures >= 10) {
				fprintf(stderr, "torture: giving up\n");
				dump_queues();
				return 0;
			}
			ok = 0;
			kids[i].pid = spawn(kids[i].consumer, kids[i].slot);
		}
		uint64_t p = progress();
		if (p != last_progress) {
			last_progress = p;
			last_progress_t = mono_s();
		} else if (mono_s() - last_progress_t > 10) {
			fprintf(stderr, "torture: no progress for 10 s: "
					"deadlock?\n");
			dump_queues();
			return 0;
		}
	}

	/* Wind down: producers finish, queues close, consumers drain. */
	book->stop = 1;
	for (unsigned i = 0; i < nkids; i++)
		if (!kids[i].consumer && waitpid(kids[i].pid, &status, 0) > 0 &&
		    (!WIFEXITED(status) || WEXITSTATUS(status) != 0)) {
			fprintf(stderr, "torture: producer %u failed at the "
				"end\n", kids[i].slot);
			ok = 0;
		}
	for (unsigned i = 0; i < cfg.queues; i++) {
		queue_name(i, name, sizeof(name));
		shmq_close_name(name, cfg.acked && closed_now(i)
					      ? SHMQ_CLOSE_NOW
					      : SHMQ_CLOSE_DRAIN, NULL);
	}
	for (unsigned i = 0; i < nkids; i++)
		if (kids[i].consumer && waitpid(kids[i].pid, &status, 0) > 0 &&
		    (!WIFEXITED(status) || WEXITSTATUS(status) != 0)) {
			fprintf(stderr, "torture: consumer %u failed at the "
				"end\n", kids[i].slot);
			ok = 0;
		}
	/* Acked: everything is settled (a join settles itself what the
	 * closed-now queue's dead holders left), then the dead letters
	 * are drained. */
	for (unsigned i = 0; cfg.acked && i < cfg.queues; i++) {
		shmq_t *q;
		queue_name(i, name, sizeof(name));
		int rc = shmq_open(name, 0, &q);
		if (rc == SHMQ_OK) {
			rc = shmq_join(q, 10000);
			shmq_detach(q);
		}
		if (rc != SHMQ_OK) {
			fprintf(stderr, "torture: join %s: %s\n", name,
				shmq_strerror(rc));
			ok = 0;
		}
		dl_name(i, name, sizeof(name));
		shmq_close_name(name, SHMQ_CLOSE_DRAIN, NULL);
	}
	if (cfg.acked && (waitpid(drainer_pid, &status, 0) != drainer_pid ||
			  !WIFEXITED(status) || WEXITSTATUS(status) != 0)) {
		fprintf(stderr, "torture: the drainer failed at the end\n");
		ok = 0;
	}
	/* The daemon releases what the dead held as their pidfds fire;
	 * give it a moment to have done so before checking the counts. */
	for (int i = 0; i < 200; i++) {
		struct shmq_stat st;
		int busy = 0;
		for (unsigned q = 0; q < cfg.queues; q++) {
			queue_name(q, name, sizeof(name));
			if (shmq_stat_name(name, &st) == SHMQ_OK &&
			    (st.producers || st.consumers))
				busy = 1;
		}
		if (!busy)
			break;
		sleep_ms(10);
	}

	uint64_t puts = 0, gets = progress();
	for (unsigned k = 0; k < cfg.producers; k++)
		puts += book->prod[k].acked;
	ok &= cfg.acked ? verify_acked(allowed, kills_c, &lost)
			: verify(allowed, &lost);
	printf("torture: %.0f s, %u producers, %u %s, %u %squeues: "
	       "%" PRIu64 " puts, %" PRIu64 " %s, kills: %" PRIu64
	       " producers, %" PRIu64 " consumers, %" PRIu64 " daemons; "
	       "%s %" PRIu64 " -> %s\n",
	       mono_s() - t0, cfg.producers, cfg.consumers,
	       cfg.acked ? "workers" : "consumers", cfg.queues,
	       cfg.acked ? "acked " : "", puts, gets,
	       cfg.acked ? "deliveries" : "gets", kills_p, kills_c, kills_d,
	       cfg.acked ? "unexplained" : "lost in consumers", lost,
	       ok ? "PASS" : "FAIL");
	return ok;
}

static void usage(FILE *f)
{
	fprintf(f,
"Usage: shmq-torture [--seconds N] [--producers N] [--consumers N]\n"
"                    [--queues N] [--kill-daemon] [--acked] [--seed N]\n"
"                    [--daemon PATH]\n"
"SIGKILLs random producers and consumers (and with --kill-daemon, shmqd)\n"
"while they exchange sequence-numbered messages, then checks that nothing\n"
"was duplicated or lost.  With --acked, the queues are acked and the\n"
"consumers lease and ack, each queue has a small dead-letter queue, one\n"
"queue's leases time out and one is closed with --now at the end: then\n"
"nothing may be lost, each message is settled once (acked or\n"
"dead-lettered), and one delivered again was nacked, held by a killed\n"
"worker or past its deadline.\n"
"Starts its own shmqd (--daemon, or $SHMQ_DAEMON).\n"
"Defaults: 60 s, 4 producers, 4 consumers, 3 queues.\n");
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "seconds", required_argument, NULL, 's' },
		{ "producers", required_argument, NULL, 'p' },
		{ "consumers", required_argument, NULL, 'c' },
		{ "queues", required_argument, NULL, 'q' },
		{ "kill-daemon", no_argument, NULL, 'k' },
		{ "acked", no_argument, NULL, 'a' },
		{ "seed", required_argument, NULL, 'r' },
		{ "daemon", required_argument, NULL, 'd' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int opt;

	cfg = (struct config){ 60, 4, 4, 3, 0, 0, (unsigned)time(NULL),
			       getenv("SHMQ_DAEMON") };
	while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		char *end = NULL;
		unsigned long v = 0;
		if (optarg) {
			errno = 0;
			v = strtoul(optarg, &end, 10);
			if (opt != 'd' && (errno || *end || v > 1000000)) {
				fprintf(stderr, "torture: bad number '%s'\n",
					optarg);
				return 2;
			}
		}
		switch (opt) {
		case 's': cfg.seconds = (unsigned)v; break;
		case 'p': cfg.producers = (unsigned)v; break;
		case 'c': cfg.consumers = (unsigned)v; break;
		case 'q': cfg.queues = (unsigned)v; break;
		case 'k': cfg.kill_daemon = 1; break;
		case 'a': cfg.acked = 1; break;
		case 'r': cfg.seed = (unsigned)v; break;
		case 'd': cfg.daemon = optarg; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (cfg.producers < 1 || cfg.producers > MAX_PROCS ||
	    cfg.consumers < 1 || cfg.consumers > MAX_PROCS ||
	    cfg.queues < 1 || cfg.queues > MAX_QUEUES ||
	    cfg.queues > cfg.producers || cfg.queues > cfg.consumers) {
		fprintf(stderr, "torture: need 1..%d producers and consumers, "
			"1..%d queues, and at least one of each per queue\n",
			MAX_PROCS, MAX_QUEUES);
		return 2;
	}
	if (cfg.daemon == NULL) {
		fprintf(stderr, "torture: no shmqd: use --daemon or "
				"SHMQ_DAEMON\n");
		return 2;
	}
	book = mmap(NULL, sizeof(*book), PROT_READ | PROT_WRITE,
		    MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (cfg.acked)
		ab = mmap(NULL, sizeof(*ab), PROT_READ | PROT_WRITE,
			  MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (book == MAP_FAILED || ab == MAP_FAILED) {
		perror("torture: mmap");
		return 1;
	}
	snprintf(sockdir, sizeof(sockdir), "/tmp/shmq-torture.XXXXXX");
	if (mkdtemp(sockdir) == NULL) {
		perror("torture: mkdtemp");
		return 1;
	}
	char sock[96];
	snprintf(sock, sizeof(sock), "%s/s.sock", sockdir);
	setenv("SHMQ_SOCKET", sock, 1);
	setenv("SHMQ_NO_AUTOSTART", "1", 1);
	signal(SIGPIPE, SIG_IGN);
	printf("torture: seed %u\n", cfg.seed);
	fflush(stdout);
	start_daemon();
	int ok = run();
	cleanup();
	return ok ? 0 : 1;
}
