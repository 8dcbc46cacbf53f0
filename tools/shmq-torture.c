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
 * The bookkeeping lives in an anonymous shared mapping made before any
 * fork, so it survives every kill:
 *
 *   producer slot k   acked: seqs < acked were put successfully;
 *                     tried: seqs in [acked, tried) may or may not have
 *                     been committed when the producer died;
 *   received[k][seq]  how many times a consumer got that message.
 *
 * Usage: shmq-torture [--seconds N] [--producers N] [--consumers N]
 *                     [--queues N] [--kill-daemon] [--seed N]
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

#include "shmq.h"

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

struct config {
	unsigned seconds, producers, consumers, queues;
	int kill_daemon;
	unsigned seed;
	const char *daemon;
};

static struct book *book;
static struct config cfg;
static char sockdir[64];
static pid_t daemon_pid;

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sleep_ms(unsigned ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000 };
	nanosleep(&ts, NULL);
}

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

/* --- the daemon -------------------------------------------------------- */

static void start_daemon(void)
{
	char sock[96], log[96];

	snprintf(sock, sizeof(sock), "%s/s.sock", sockdir);
	snprintf(log, sizeof(log), "%s/shmqd.log", sockdir);
	daemon_pid = fork();
	if (daemon_pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		execl(cfg.daemon, "shmqd", "--foreground", "--socket", sock,
		      "--log", log, (char *)NULL);
		_exit(127);
	}
	/* Ready when it answers. */
	for (int i = 0; i < 500; i++) {
		struct shmq_stat *l;
		size_t n;
		if (shmq_list(&l, &n) == SHMQ_OK) {
			free(l);
			return;
		}
		sleep_ms(10);
	}
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
	while (!book->stop && seq + MAX_BATCH < MAX_SEQ) {
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

static void check_message(const uint8_t *buf, size_t len,
			  uint64_t *last_seen)
{
	struct message head, *m = &head;
	uint64_t sum = 0;

	if (len < sizeof(*m))
		goto bad;
	memcpy(m, buf, sizeof(*m));
	if (m->len != len || m->producer >= MAX_PROCS || m->seq >= MAX_SEQ)
		goto bad;
	for (size_t i = sizeof(*m); i < len; i++)
		sum = sum * 31 + buf[i];
	if (sum != m->sum)
		goto bad;
	/* FIFO per producer, as this consumer sees it. */
	if (last_seen[m->producer] != UINT64_MAX &&
	    m->seq <= last_seen[m->producer])
		goto bad;
	last_seen[m->producer] = m->seq;
	__atomic_add_fetch(&book->received[m->producer][m->seq], 1,
			   __ATOMIC_SEQ_CST);
	return;
bad:
	__atomic_add_fetch(&book->bad, 1, __ATOMIC_SEQ_CST);
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

/* --- the driver -------------------------------------------------------- */

struct child {
	pid_t pid;
	int consumer;
	unsigned slot;
};

static struct child kids[2 * MAX_PROCS];
static unsigned nkids;

static pid_t spawn(int is_consumer, unsigned slot)
{
	pid_t pid = fork();

	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
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
	if (pid == daemon_pid) {
		/* Only the driver kills the daemon, and reaps it itself. */
		fprintf(stderr, "torture: shmqd died by itself (status %d)\n",
			*status);
		exit(1);
	}
	for (unsigned i = 0; i < nkids; i++)
		if (kids[i].pid == pid)
			return (int)i;
	return -1;
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

	/* Every queue drained and nothing left counted. */
	for (unsigned i = 0; i < cfg.queues; i++) {
		struct shmq_stat st;
		char name[32];
		queue_name(i, name, sizeof(name));
		if (shmq_stat_name(name, &st) != SHMQ_OK ||
		    st.messages != 0 || st.total_put != st.total_got ||
		    st.producers || st.consumers || st.put_blocked ||
		    st.get_blocked) {
			fprintf(stderr, "torture: %s is not clean at the end\n",
				name);
			ok = 0;
		}
	}
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
	double t0 = now_s(), last_progress_t = t0, next_daemon_kill = t0 + 1;
	uint64_t last_progress = 0;
	int status, ok = 1, failures = 0;
	char name[32];

	for (unsigned i = 0; i < cfg.queues; i++) {
		struct shmq_attr a;
		shmq_attr_init(&a);
		a.capacity = i % 3 == 0 ? 1 : i % 3 == 1 ? 8 : 64;
		a.max_msg = MSG_MAX;
		queue_name(i, name, sizeof(name));
		int rc = shmq_create(name, &a, 0);
		if (rc != SHMQ_OK) {
			fprintf(stderr, "torture: create %s: %s\n", name,
				shmq_strerror(rc));
			return 0;
		}
	}
	for (unsigned i = 0; i < cfg.producers; i++)
		kids[nkids++] = (struct child){ spawn(0, i), 0, i };
	for (unsigned i = 0; i < cfg.consumers; i++)
		kids[nkids++] = (struct child){ spawn(1, i), 1, i };

	while (now_s() - t0 < cfg.seconds) {
		/* Kill someone at a random moment, then bring it back. */
		sleep_ms(1 + rand_r(&rnd) % 20);
		struct child *victim = &kids[rand_r(&rnd) % nkids];
		kill(victim->pid, SIGKILL);
		waitpid(victim->pid, &status, 0);
		if (victim->consumer) {
			kills_c++;
			allowed += book->want[victim->slot];
			book->want[victim->slot] = 0;
		} else {
			kills_p++;
		}
		victim->pid = spawn(victim->consumer, victim->slot);

		if (cfg.kill_daemon && now_s() >= next_daemon_kill) {
			kill(daemon_pid, SIGKILL);
			waitpid(daemon_pid, NULL, 0);
			kills_d++;
			sleep_ms(rand_r(&rnd) % 50);    /* clients run alone */
			start_daemon();
			next_daemon_kill = now_s() + 0.5 + rand_r(&rnd) % 1500 /
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
			last_progress_t = now_s();
		} else if (now_s() - last_progress_t > 10) {
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
		shmq_close_name(name, SHMQ_CLOSE_DRAIN, NULL);
	}
	for (unsigned i = 0; i < nkids; i++)
		if (kids[i].consumer && waitpid(kids[i].pid, &status, 0) > 0 &&
		    (!WIFEXITED(status) || WEXITSTATUS(status) != 0)) {
			fprintf(stderr, "torture: consumer %u failed at the "
				"end\n", kids[i].slot);
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
	ok &= verify(allowed, &lost);
	printf("torture: %.0f s, %u producers, %u consumers, %u queues: "
	       "%" PRIu64 " puts, %" PRIu64 " gets, kills: %" PRIu64
	       " producers, %" PRIu64 " consumers, %" PRIu64 " daemons; "
	       "lost in consumers %" PRIu64 " -> %s\n",
	       now_s() - t0, cfg.producers, cfg.consumers, cfg.queues, puts,
	       gets, kills_p, kills_c, kills_d, lost, ok ? "PASS" : "FAIL");
	return ok;
}

static void usage(FILE *f)
{
	fprintf(f,
"Usage: shmq-torture [--seconds N] [--producers N] [--consumers N]\n"
"                    [--queues N] [--kill-daemon] [--seed N] [--daemon PATH]\n"
"SIGKILLs random producers and consumers (and with --kill-daemon, shmqd)\n"
"while they exchange sequence-numbered messages, then checks that nothing\n"
"was duplicated or lost.  Starts its own shmqd (--daemon, or $SHMQ_DAEMON).\n"
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
		{ "seed", required_argument, NULL, 'r' },
		{ "daemon", required_argument, NULL, 'd' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int opt;

	cfg = (struct config){ 60, 4, 4, 3, 0, (unsigned)time(NULL),
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
	if (book == MAP_FAILED) {
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
