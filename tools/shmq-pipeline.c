/*
 * shmq-pipeline.c - a producer, parallel workers and a collector, each a
 * separate process, connected by two bounded shmq queues.
 *
 *   producer --> [jobs] --> worker x W --> [results] --> collector
 *
 * It is the demonstration of what shmq is for:
 *  - backpressure: the collector starts slow; both queues fill to their
 *    capacity and stay there, the workers and then the producer block, and
 *    memory stays bounded.  When the collector speeds up, the whole
 *    pipeline speeds up.
 *  - closing: the producer closes `jobs` when done; each worker ends at
 *    end of stream; `results` closes by itself when the last worker (its
 *    last producer) detaches; the collector ends at end of stream and
 *    checks that every item arrived exactly once.
 *  - throughput: items per second, shown live with the queue depths.
 *
 * `shmq-pipeline run` starts the stages (fork + exec of this program) and
 * prints progress; the stages are `producer`, `worker` and `collector`.
 * The queues are created and deleted by `run`; the daemon is whichever
 * SHMQ_SOCKET names (tools/demo.sh starts a private one).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "shmq.h"

#define JOBS     "demo.jobs"
#define RESULTS  "demo.results"
#define MAX_WORKERS 16

struct item {
	uint64_t id;
	uint64_t value;         /* work input, then the worker's result */
	uint32_t worker;
	uint32_t pad;
	char payload[32];
};

struct config {
	uint64_t items;
	unsigned workers;
	unsigned capacity;
	unsigned work;          /* hash rounds per item in a worker */
	unsigned slow_items;    /* items the collector takes slowly */
	unsigned slow_us;       /* per slow item */
};

static void die(const char *what, int rc)
{
	const char *detail = shmq_error_detail();
	fprintf(stderr, "shmq-pipeline: %s: %s%s%s\n", what, shmq_strerror(rc),
		*detail ? ": " : "", detail);
	exit(1);
}

static shmq_t *open_queue(const char *name, unsigned flags)
{
	shmq_t *q;
	int rc = shmq_open(name, flags, &q);
	if (rc != SHMQ_OK)
		die(name, rc);
	return q;
}

/* --- stages ------------------------------------------------------------ */

static int producer(const struct config *c)
{
	shmq_t *q = open_queue(JOBS, SHMQ_PRODUCER);
	struct item batch[64];
	struct iovec iov[64];
	uint64_t id = 0;
	int rc;

	while (id < c->items) {
		size_t n = 0;
		for (; n < 64 && id < c->items; n++, id++) {
			memset(&batch[n], 0, sizeof(batch[n]));
			batch[n].id = id;
			batch[n].value = id * 2654435761u;
			snprintf(batch[n].payload, sizeof(batch[n].payload),
				 "item %" PRIu64, id);
			iov[n].iov_base = &batch[n];
			iov[n].iov_len = sizeof(batch[n]);
		}
		/* Blocks while `jobs` is full: the backpressure. */
		rc = shmq_putv(q, iov, n, NULL, SHMQ_FOREVER);
		if (rc != SHMQ_OK)
			die("put " JOBS, rc);
	}
	/* No sentinel: closing says "no more items". */
	shmq_close(q, SHMQ_CLOSE_DRAIN, NULL);
	shmq_detach(q);
	return 0;
}

static uint64_t work(uint64_t v, unsigned rounds)
{
	for (unsigned i = 0; i < rounds; i++) {
		v ^= v >> 33;
		v *= UINT64_C(0xff51afd7ed558ccd);
		v ^= v >> 29;
	}
	return v;
}

static int worker(const struct config *c, unsigned me)
{
	shmq_t *in = open_queue(JOBS, SHMQ_CONSUMER);
	shmq_t *out = open_queue(RESULTS, SHMQ_PRODUCER);
	struct item it;
	size_t len;
	int rc;

	SHMQ_FOREACH(in, &it, sizeof(it), len, rc) {
		if (len != sizeof(it))
			die("get " JOBS ": short item", SHMQ_EINVAL);
		it.value = work(it.value, c->work);
		it.worker = me;
		rc = shmq_put(out, &it, sizeof(it), SHMQ_FOREVER);
		if (rc != SHMQ_OK)
			die("put " RESULTS, rc);
	}
	if (rc != SHMQ_EOS)
		die("get " JOBS, rc);
	/* Detaching the last worker closes `results` (auto-close). */
	shmq_detach(out);
	shmq_detach(in);
	return 0;
}

static int collector(const struct config *c)
{
	shmq_t *q = open_queue(RESULTS, SHMQ_CONSUMER);
	uint8_t *seen = calloc(c->items ? c->items : 1, 1);
	uint64_t got = 0, dup = 0, per_worker[MAX_WORKERS] = { 0 };
	struct item it;
	size_t len;
	int rc;

	if (seen == NULL)
		die("collector", SHMQ_ENOMEM);
	SHMQ_FOREACH(q, &it, sizeof(it), len, rc) {
		if (len != sizeof(it) || it.id >= c->items ||
		    it.worker >= MAX_WORKERS ||
		    it.value != work(it.id * 2654435761u, c->work))
			die("collector: bad item", SHMQ_ECORRUPT);
		dup += seen[it.id]++ != 0;
		per_worker[it.worker]++;
		got++;
		if (got <= c->slow_items) {
			/* A slow consumer: everything upstream must wait. */
			sleep_us((long)c->slow_us);
		}
	}
	uint64_t missing = 0;
	for (uint64_t i = 0; i < c->items; i++)
		missing += !seen[i];
	printf("collector: %" PRIu64 " items, %" PRIu64 " missing, %" PRIu64
	       " duplicated; per worker:", got, missing, dup);
	for (unsigned w = 0; w < c->workers && w < MAX_WORKERS; w++)
		printf(" %" PRIu64, per_worker[w]);
	printf("; %s\n", rc == SHMQ_EOS ? "end of stream" : shmq_strerror(rc));
	shmq_detach(q);
	free(seen);
	return (rc == SHMQ_EOS && missing == 0 && dup == 0) ? 0 : 1;
}

/* --- the conductor ----------------------------------------------------- */

static pid_t spawn(const char *self, const struct config *c,
		   const char *role, unsigned index)
{
	char items[32], work_s[16], slow[16], slow_us[16], idx[16], workers[16];
	pid_t pid;

	snprintf(items, sizeof(items), "%" PRIu64, c->items);
	snprintf(work_s, sizeof(work_s), "%u", c->work);
	snprintf(slow, sizeof(slow), "%u", c->slow_items);
	snprintf(slow_us, sizeof(slow_us), "%u", c->slow_us);
	snprintf(idx, sizeof(idx), "%u", index);
	snprintf(workers, sizeof(workers), "%u", c->workers);
	pid = fork();
	if (pid == 0) {
		execl(self, "shmq-pipeline", role, "--items", items, "--work",
		      work_s, "--slow-items", slow, "--slow-us", slow_us,
		      "--index", idx, "--workers", workers, (char *)NULL);
		_exit(127);
	}
	if (pid < 0) {
		perror("fork");
		exit(1);
	}
	return pid;
}

static void bar(char *buf, uint64_t depth, uint64_t cap, int width)
{
	int fill = cap ? (int)((depth * (uint64_t)width + cap - 1) / cap) : 0;
	for (int i = 0; i < width; i++)
		buf[i] = i < fill ? '#' : '.';
	buf[width] = '\0';
}

static void progress(double t0, int tty, uint64_t *max_jobs,
		     uint64_t *max_results)
{
	struct shmq_stat j, r;
	char bj[21], br[21];

	if (shmq_stat_name(JOBS, &j) != SHMQ_OK ||
	    shmq_stat_name(RESULTS, &r) != SHMQ_OK)
		return;
	if (j.messages > *max_jobs)
		*max_jobs = j.messages;
	if (r.messages > *max_results)
		*max_results = r.messages;
	bar(bj, j.messages, j.capacity, 20);
	bar(br, r.messages, r.capacity, 20);
	double t = mono_s() - t0;
	printf("%s%6.1fs jobs [%s] %4" PRIu64 "/%u%s  results [%s] %4" PRIu64
	       "/%u%s  done %8" PRIu64 "  %9.0f items/s%s",
	       tty ? "\r" : "", t, bj, j.messages, j.capacity,
	       j.put_blocked ? " P-blocked" : "          ", br, r.messages,
	       r.capacity, r.put_blocked ? " W-blocked" : "          ",
	       r.total_got, t > 0 ? (double)r.total_got / t : 0.0,
	       tty ? "" : "\n");
	fflush(stdout);
}

static int run(const char *self, const struct config *c)
{
	struct shmq_attr a;
	int npids = 0, status, failed = 0, rc, tty = isatty(STDOUT_FILENO);
	uint64_t max_jobs = 0, max_results = 0;

	shmq_attr_init(&a);
	a.capacity = c->capacity;
	a.max_msg = sizeof(struct item);
	if ((rc = shmq_create(JOBS, &a, 0)) != SHMQ_OK)
		die("create " JOBS, rc);
	a.flags = SHMQ_AUTO_CLOSE;
	if ((rc = shmq_create(RESULTS, &a, 0)) != SHMQ_OK)
		die("create " RESULTS, rc);

	printf("pipeline: 1 producer -> [%s, capacity %u] -> %u workers -> "
	       "[%s, capacity %u] -> collector\n", JOBS, c->capacity,
	       c->workers, RESULTS, c->capacity);
	printf("%" PRIu64 " items; the collector takes the first %u slowly "
	       "(%u us each): watch the queues fill and the producer block\n",
	       c->items, c->slow_items, c->slow_us);

	double t0 = mono_s();
	spawn(self, c, "collector", 0);
	for (unsigned w = 0; w < c->workers; w++)
		spawn(self, c, "worker", w);
	spawn(self, c, "producer", 0);
	npids = (int)c->workers + 2;

	int left = npids;
	double last = 0;
	while (left > 0) {
		pid_t pid = waitpid(-1, &status, WNOHANG);
		if (pid > 0) {
			left--;
			if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
				failed++;
			continue;
		}
		if (mono_s() - last >= 0.25) {
			progress(t0, tty, &max_jobs, &max_results);
			last = mono_s();
		}
		sleep_ms(20);
	}
	progress(t0, tty, &max_jobs, &max_results);
	double t = mono_s() - t0;
	if (tty)
		printf("\n");
	printf("finished in %.2f s: %.0f items/s end to end; deepest queues "
	       "%" PRIu64 "/%u and %" PRIu64 "/%u (bounded by capacity)\n",
	       t, (double)c->items / t, max_jobs, c->capacity, max_results,
	       c->capacity);
	shmq_delete(JOBS);
	shmq_delete(RESULTS);
	if (failed) {
		printf("FAILED: %d stage(s) did not finish cleanly\n", failed);
		return 1;
	}
	printf("OK: every item produced, processed and collected exactly "
	       "once; the pipeline ended by itself when the producer closed\n");
	return 0;
}

static void usage(FILE *f)
{
	fprintf(f,
"Usage: shmq-pipeline run [--items N] [--workers W] [--capacity C]\n"
"                         [--work ROUNDS] [--slow-items N] [--slow-us US]\n"
"A producer, W workers and a collector, each its own process, connected\n"
"by two bounded queues (%s and %s) on the daemon SHMQ_SOCKET names.\n"
"Defaults: 200000 items, 3 workers, capacity 256, 200 rounds of work,\n"
"the first 2000 items collected slowly at 500 us each.\n", JOBS, RESULTS);
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "items", required_argument, NULL, 'n' },
		{ "workers", required_argument, NULL, 'w' },
		{ "capacity", required_argument, NULL, 'c' },
		{ "work", required_argument, NULL, 'r' },
		{ "slow-items", required_argument, NULL, 's' },
		{ "slow-us", required_argument, NULL, 'u' },
		{ "index", required_argument, NULL, 'i' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct config c = { 200000, 3, 256, 200, 2000, 500 };
	unsigned index = 0;
	char *end;
	int opt;

	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	const char *role = argv[1];
	optind = 2;
	while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		unsigned long long v;
		if (opt == 'h') {
			usage(stdout);
			return 0;
		}
		if (opt == '?') {
			usage(stderr);
			return 2;
		}
		errno = 0;
		v = strtoull(optarg, &end, 10);
		if (errno || *end || end == optarg || v > UINT32_MAX * 16ull) {
			fprintf(stderr, "shmq-pipeline: bad number '%s'\n",
				optarg);
			return 2;
		}
		switch (opt) {
		case 'n': c.items = v; break;
		case 'w': c.workers = (unsigned)v; break;
		case 'c': c.capacity = (unsigned)v; break;
		case 'r': c.work = (unsigned)v; break;
		case 's': c.slow_items = (unsigned)v; break;
		case 'u': c.slow_us = (unsigned)v; break;
		case 'i': index = (unsigned)v; break;
		}
	}
	if (c.workers < 1 || c.workers > MAX_WORKERS || c.capacity < 1 ||
	    c.slow_us > 1000000) {
		fprintf(stderr, "shmq-pipeline: need 1..%d workers, capacity "
				">= 1, slow-us <= 1000000\n", MAX_WORKERS);
		return 2;
	}
	if (!strcmp(role, "run"))
		return run("/proc/self/exe", &c);
	if (!strcmp(role, "producer"))
		return producer(&c);
	if (!strcmp(role, "worker"))
		return worker(&c, index);
	if (!strcmp(role, "collector"))
		return collector(&c);
	if (!strcmp(role, "--help") || !strcmp(role, "-h")) {
		usage(stdout);
		return 0;
	}
	usage(stderr);
	return 2;
}
