/*
 * check_ring.c - Check suite for the ring module (client/ring.c).
 *
 * Owns the tests of what ring.c promises on one mapped segment:
 *  - every row of SPEC's Operations table (put, get, batches, close,
 *    producers, stat), played by real processes that share one
 *    MAP_SHARED segment, each through its own mapping;
 *  - the crash rules of proto/shmq_layout.h: a process parked at a
 *    ring_test_hook point inside a critical section is SIGKILLed, and the
 *    others carry on with nothing committed lost and nothing duplicated;
 *  - the untrusted-memory rules: a corrupted segment yields an error or
 *    valid data, never an access outside the segment (the segment sits
 *    between two PROT_NONE guard pages, receive buffers are heap blocks of
 *    the exact size, so AddressSanitizer and the MMU both watch).
 *
 * It must never rest a verdict on timing: processes hand off through pipes
 * and through state they publish in the segment; a sleep is only ever used
 * to make a race likely.  Every test is bounded: Check runs it in a forked
 * child in its own process group and kills that group afterwards, children
 * arm alarm(), and the parent blocks only with a timeout or on a child
 * whose alarm bounds it.  Fuzz loops are seeded (SHMQ_TEST_SEED replays
 * another seed) and each test starts from the same state.  Segments are
 * unlinked as soon as they are formatted, so a failing test leaves neither
 * a process nor a name behind.  No daemon is involved: this file plays its
 * part (ring_format, ring_client_add/remove) itself.
 */
#define _GNU_SOURCE
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ring.h"

#define KID_ALARM_S   20        /* a stuck child dies of SIGALRM */
#define WAIT_MS       5000      /* how long the parent waits for an event */
#define MAX_KIDS      96
#define MAX_BATCH     32
#define NO_ENTRY      UINT32_MAX
#define KID_FAIL      70        /* exit status of a child whose check failed */
#define KID_SETUP     71        /* ... that could not attach */
#define BAD_COUNT     (-999)    /* a helper saw an inconsistent count */

/* ------------------------------------------------------------------ */
/* Small utilities                                                    */

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void sleep_us(long us)
{
	struct timespec ts = { us / 1000000, (us % 1000000) * 1000 };

	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

/* Polls until `cond` holds, for observing another process reach a state
 * (asleep in put, say).  Only the wait is timed, never the verdict. */
#define EVENTUALLY(cond)                                                     \
	do {                                                                 \
		uint64_t end_ = now_ns() + (uint64_t)WAIT_MS * 1000000u;     \
		while (!(cond)) {                                            \
			ck_assert_msg(now_ns() < end_,                       \
				      "timed out waiting for: %s", #cond);   \
			sleep_us(500);                                       \
		}                                                            \
	} while (0)

/* xorshift64*: reproducible randomness for the fuzz loops. */
static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t rnd(void)
{
	uint64_t x = rng_state;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	rng_state = x;
	return x * 0x2545f4914f6cdd1dull;
}

static int read_full(int fd, void *p, size_t len)
{
	uint8_t *b = p;

	while (len) {
		ssize_t n = read(fd, b, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		b += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Reads exactly `len` bytes, waiting at most WAIT_MS for each chunk. */
static int read_timed(int fd, void *p, size_t len)
{
	uint8_t *b = p;

	while (len) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		int rc = poll(&pfd, 1, WAIT_MS);
		if (rc < 0 && errno == EINTR)
			continue;
		if (rc <= 0)
			return -1;
		ssize_t n = read(fd, b, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		b += n;
		len -= (size_t)n;
	}
	return 0;
}

/* ------------------------------------------------------------------ */
/* The segment under test                                             */

struct seg {
	int fd;
	uint8_t *region;        /* guard page, segment, guard page */
	size_t region_len;
	uint8_t *mem;
	uint64_t size;
};

static struct seg S;            /* this test's segment */
static struct ring R;           /* the test process's view of it */

/* Maps the segment between two PROT_NONE pages, so that a read or write
 * just outside it faults instead of landing in some other mapping. */
static uint8_t *map_guarded(int fd, uint64_t size, uint8_t **region,
			    size_t *region_len)
{
	size_t pg = (size_t)sysconf(_SC_PAGESIZE);
	size_t span = (size + pg - 1) / pg * pg;
	size_t len = span + 2 * pg;
	uint8_t *reg = mmap(NULL, len, PROT_NONE,
			    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);

	if (reg == MAP_FAILED)
		return NULL;
	void *mem = mmap(reg + pg, size, PROT_READ | PROT_WRITE,
			 MAP_SHARED | MAP_FIXED, fd, 0);
	if (mem == MAP_FAILED) {
		munmap(reg, len);
		return NULL;
	}
	*region = reg;
	*region_len = len;
	return mem;
}

static struct ring_config config(uint32_t capacity, uint32_t max_msg,
				 uint64_t max_bytes, uint32_t flags)
{
	return (struct ring_config){
		.capacity = capacity,
		.max_msg = max_msg,
		.max_bytes = max_bytes,
		.clients = 16,
		.mode = 0640,
		.uid = (uint32_t)getuid(),
		.gid = (uint32_t)getgid(),
		.config_flags = flags,
		.queue_id = 42,
		.name = "test-queue",
	};
}

/* Creates, formats and attaches this test's queue.  The name is unlinked
 * at once: children reach the segment through the inherited fd. */
static void q_create(const struct ring_config *cfg)
{
	static unsigned serial;
	char name[64];
	uint64_t size;

	ck_assert_int_eq(ring_plan(cfg, &size), SHMQ_OK);
	snprintf(name, sizeof(name), "/shmq-test-%d-%u", (int)getpid(),
		 serial++);
	S.fd = shm_open(name, O_RDWR | O_CREAT | O_EXCL, 0600);
	ck_assert_msg(S.fd >= 0, "shm_open %s: %s", name, strerror(errno));
	shm_unlink(name);
	ck_assert_int_eq(ftruncate(S.fd, (off_t)size), 0);
	S.mem = map_guarded(S.fd, size, &S.region, &S.region_len);
	ck_assert_ptr_nonnull(S.mem);
	S.size = size;
	ck_assert_int_eq(ring_format(S.mem, size, cfg), SHMQ_OK);
	ck_assert_int_eq(ring_attach(&R, S.mem, size), SHMQ_OK);
}

/* Starts over on the same segment: the corruption tests reformat it
 * before every mutation. */
static void q_reformat(const struct ring_config *cfg)
{
	memset(S.mem, 0, S.size);
	ck_assert_int_eq(ring_format(S.mem, S.size, cfg), SHMQ_OK);
	ck_assert_int_eq(ring_attach(&R, S.mem, S.size), SHMQ_OK);
}

static struct shmq_stat stat_now(void)
{
	struct shmq_stat st;

	ring_stat(&R, &st);
	return st;
}

static uint32_t entry_wait(uint32_t idx)
{
	return __atomic_load_n(&R.clients[idx].wait, __ATOMIC_ACQUIRE);
}

/* ------------------------------------------------------------------ */
/* Messages                                                           */

/* One message, one call; checks that *done agrees with the status. */
static int put_buf(struct ring *r, const void *p, size_t len, int timeout)
{
	struct iovec v = { (void *)p, len };
	size_t done = 77;
	int rc = ring_put(r, &v, 1, &done, timeout);

	if (done != (rc == SHMQ_OK ? 1u : 0u))
		return BAD_COUNT;
	return rc;
}

static int put_str(struct ring *r, const char *s, int timeout)
{
	return put_buf(r, s, strlen(s), timeout);
}

/* One message into buf; *len is its length on SHMQ_OK and SHMQ_EMSGSIZE. */
static int get_buf(struct ring *r, void *buf, size_t size, size_t *len,
		   int timeout)
{
	struct iovec out = { NULL, 0 };
	size_t got = 77;
	int rc = ring_get(r, buf, size, &out, 1, &got, timeout);

	if (got != (rc == SHMQ_OK ? 1u : 0u))
		return BAD_COUNT;
	if (rc == SHMQ_OK && out.iov_base != buf)
		return BAD_COUNT;
	if (rc == SHMQ_OK || rc == SHMQ_EMSGSIZE)
		*len = out.iov_len;
	return rc;
}

/* Asserts that the next message is the string `want`.  These helpers
 * name the caller's line: Check reports the helper's. */
#define expect_msg(r, want) expect_msg_at((r), (want), __LINE__)
#define expect_empty(r)     expect_empty_at((r), __LINE__)
#define put_ok(r, s)        put_ok_at((r), (s), __LINE__)

static void expect_msg_at(struct ring *r, const char *want, int line)
{
	char buf[512];
	size_t len = 0;
	int rc = get_buf(r, buf, sizeof(buf), &len, WAIT_MS);

	ck_assert_msg(rc == SHMQ_OK, "line %d: get, expecting \"%s\": "
		      "status %d", line, want, rc);
	ck_assert_msg(len == strlen(want) && memcmp(buf, want, len) == 0,
		      "line %d: got \"%.*s\", expected \"%s\"", line,
		      (int)len, buf, want);
}

/* Asserts that the queue is empty (and open) right now. */
static void expect_empty_at(struct ring *r, int line)
{
	char buf[512];
	size_t len;
	int rc = get_buf(r, buf, sizeof(buf), &len, SHMQ_NOWAIT);

	ck_assert_msg(rc == SHMQ_EAGAIN, "line %d: expected an empty queue, "
		      "get: %d", line, rc);
}

static void put_ok_at(struct ring *r, const char *s, int line)
{
	int rc = put_str(r, s, SHMQ_NOWAIT);

	ck_assert_msg(rc == SHMQ_OK, "line %d: put \"%s\": %d", line, s, rc);
}

/* ------------------------------------------------------------------ */
/* Child processes                                                    */

struct kid {
	pid_t pid;
	int evt;                /* read end of the child's event pipe */
	uint32_t idx;           /* its attachment entry, or NO_ENTRY */
};

/* What a child's body gets: its own mapping and view of the segment. */
struct kctx {
	struct ring r;
	int evt;                /* write end of the event pipe */
	void *arg;
};

typedef int (*kid_fn)(struct kctx *c);

static struct kid kids[MAX_KIDS];
static int nkids;

#define KCHECK(cond)                                                         \
	do {                                                                 \
		if (!(cond)) {                                               \
			fprintf(stderr, "%s:%d: child %d: failed: %s\n",     \
				__FILE__, __LINE__, (int)getpid(), #cond);   \
			_exit(KID_FAIL);                                     \
		}                                                            \
	} while (0)

#define KCHECK_EQ(a, b)                                                      \
	do {                                                                 \
		long long a_ = (long long)(a), b_ = (long long)(b);          \
		if (a_ != b_) {                                              \
			fprintf(stderr, "%s:%d: child %d: %s == %lld, "      \
				"expected %s == %lld\n", __FILE__, __LINE__, \
				(int)getpid(), #a, a_, #b, b_);              \
			_exit(KID_FAIL);                                     \
		}                                                            \
	} while (0)

static void kid_main(kid_fn fn, void *arg, int evt, int go)
{
	struct kctx c = { .evt = evt, .arg = arg };
	uint32_t msg[2];
	uint8_t *region;
	size_t region_len;

	alarm(KID_ALARM_S);
	for (int i = 0; i < nkids; i++)
		close(kids[i].evt);
	if (read_full(go, msg, sizeof(msg)) != 0)
		_exit(KID_SETUP);
	close(go);
	/* A mapping of its own, at another address, as a real client has:
	 * nothing in the segment may depend on where it is mapped. */
	uint8_t *mem = map_guarded(S.fd, S.size, &region, &region_len);
	if (mem == NULL || ring_attach(&c.r, mem, S.size) != SHMQ_OK)
		_exit(KID_SETUP);
	if (msg[0] != NO_ENTRY && ring_client_bind(&c.r, msg[0], msg[1]))
		_exit(KID_SETUP);
	_exit(fn(&c));
}

/* Forks a child running fn(arg).  Like shmqd, the parent registers the
 * child's attachment (if `role`) and hands it the entry to bind. */
static struct kid *kid_start(uint32_t role, kid_fn fn, void *arg)
{
	int evt[2], go[2];
	uint32_t msg[2] = { NO_ENTRY, 0 };

	ck_assert_int_lt(nkids, MAX_KIDS);
	ck_assert_int_eq(pipe(evt), 0);
	ck_assert_int_eq(pipe(go), 0);
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		close(evt[0]);
		close(go[1]);
		kid_main(fn, arg, evt[1], go[0]);
	}
	close(evt[1]);
	close(go[0]);
	struct kid *k = &kids[nkids++];
	k->pid = pid;
	k->evt = evt[0];
	k->idx = NO_ENTRY;
	if (role) {
		ck_assert_int_eq(ring_client_add(&R, (uint32_t)pid, 0, role,
						 &msg[0], &msg[1]), SHMQ_OK);
		k->idx = msg[0];
	}
	ck_assert_int_eq(write(go[1], msg, sizeof(msg)), (ssize_t)sizeof(msg));
	close(go[1]);
	return k;
}

static int kid_wait(struct kid *k)
{
	int status;

	ck_assert_int_gt(k->pid, 0);
	while (waitpid(k->pid, &status, 0) < 0)
		ck_assert_int_eq(errno, EINTR);
	k->pid = 0;
	return status;
}

/* Reaps a child that must have exited on its own with status 0. */
static void kid_ok(struct kid *k)
{
	int status = kid_wait(k);

	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		      "child failed: %s %d",
		      WIFEXITED(status) ? "exit" : "signal",
		      WIFEXITED(status) ? WEXITSTATUS(status)
					: WTERMSIG(status));
}

/* SIGKILLs a child and reaps it: it must have died of that signal (and
 * not earlier, of a failed check or its alarm). */
static void kid_kill(struct kid *k)
{
	ck_assert_int_eq(kill(k->pid, SIGKILL), 0);
	int status = kid_wait(k);
	ck_assert_msg(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL,
		      "child did not die of SIGKILL (status %#x)", status);
}

static void setup(void)
{
	memset(&S, 0, sizeof(S));
	memset(&R, 0, sizeof(R));
	S.fd = -1;
	nkids = 0;
	ring_test_hook = NULL;
}

/* Runs when a test passes; when one fails, Check kills its process group
 * and the segment has no name left to leak. */
static void teardown(void)
{
	for (int i = 0; i < nkids; i++) {
		if (kids[i].pid > 0) {
			kill(kids[i].pid, SIGKILL);
			waitpid(kids[i].pid, NULL, 0);
		}
		close(kids[i].evt);
	}
	nkids = 0;
	if (S.region)
		munmap(S.region, S.region_len);
	if (S.fd >= 0)
		close(S.fd);
	S.region = NULL;
	S.fd = -1;
}

/* --- parking at a hook point ------------------------------------- */

static int park_fd = -1;
static int park_at = -1;
static int park_nth = 1;        /* park at the nth hit of park_at */
static int park_hits;

/* Announces "parked" on the event pipe and stops right there, inside the
 * critical section, until the parent kills us. */
static void park_hook(enum ring_hook_point p)
{
	if ((int)p != park_at || ++park_hits < park_nth)
		return;
	if (write(park_fd, "P", 1) != 1)
		_exit(KID_FAIL);
	for (;;)
		pause();
}

/* What a put or get child does. */
struct op {
	int timeout;
	int park;               /* AT(hook point) to park there, 0: never */
	int park_nth;           /* 0 or 1: first hit */
	size_t n;               /* batch size (get: at most; 0 means 1) */
	const char *msgs[MAX_BATCH];
};

#define OP(...) ((struct op){ __VA_ARGS__ })
#define AT(point) ((int)(point) + 1)

/* A child's report: status, count, and the first message it got. */
struct kres {
	int32_t rc;
	uint32_t count;
	uint32_t len;
	char data[256];
};

static void park_arm(struct kctx *c, const struct op *op)
{
	if (op->park == 0)
		return;
	park_fd = c->evt;
	park_at = op->park - 1;
	park_nth = op->park_nth > 0 ? op->park_nth : 1;
	park_hits = 0;
	ring_test_hook = park_hook;
}

static int kid_report(struct kctx *c, const struct kres *res)
{
	return write(c->evt, res, sizeof(*res)) == (ssize_t)sizeof(*res)
		       ? 0 : KID_FAIL;
}

static int kid_put(struct kctx *c)
{
	const struct op *op = c->arg;
	struct iovec v[MAX_BATCH];
	struct kres res = { 0 };
	size_t done = 0;

	for (size_t i = 0; i < op->n; i++) {
		v[i].iov_base = (void *)op->msgs[i];
		v[i].iov_len = strlen(op->msgs[i]);
	}
	park_arm(c, op);
	res.rc = ring_put(&c->r, v, op->n, &done, op->timeout);
	res.count = (uint32_t)done;
	return kid_report(c, &res);
}

static int kid_get(struct kctx *c)
{
	const struct op *op = c->arg;
	struct iovec out[MAX_BATCH];
	struct kres res = { 0 };
	char buf[4096];
	size_t got = 0;

	park_arm(c, op);
	res.rc = ring_get(&c->r, buf, sizeof(buf), out, op->n ? op->n : 1,
			  &got, op->timeout);
	res.count = (uint32_t)got;
	if (got) {
		res.len = (uint32_t)out[0].iov_len;
		memcpy(res.data, out[0].iov_base,
		       res.len < sizeof(res.data) ? res.len : sizeof(res.data));
	}
	return kid_report(c, &res);
}

/* Waits for the child's report of its one operation, then reaps it. */
static struct kres kid_result(struct kid *k)
{
	struct kres res;

	ck_assert_msg(read_timed(k->evt, &res, sizeof(res)) == 0,
		      "no report from child %d", (int)k->pid);
	kid_ok(k);
	return res;
}

/* Asserts that nothing has been reported yet: the child still blocks. */
static void kid_silent(struct kid *k)
{
	struct pollfd pfd = { .fd = k->evt, .events = POLLIN };

	ck_assert_int_eq(poll(&pfd, 1, 0), 0);
}

static void kid_expect_parked(struct kid *k)
{
	char ch = 0;

	ck_assert_msg(read_timed(k->evt, &ch, 1) == 0 && ch == 'P',
		      "child %d did not park", (int)k->pid);
}

static struct kid *kid_op(uint32_t role, kid_fn fn, struct op *op)
{
	return kid_start(role, fn, op);
}

/* ================================================================== */
/* Configuration, format and attach                                   */

START_TEST(test_plan_rejects_bad_config)
{
	struct ring_config c = config(8, 64, 0, 0);
	uint64_t size = 0;
	char longname[SHMQ_NAME_MAX + 2];

	ck_assert_int_eq(ring_plan(&c, &size), SHMQ_OK);
	ck_assert_uint_eq(size % 4096, 0);
	ck_assert_uint_gt(size, sizeof(struct shmq_seg_hdr));

	c.capacity = 0;
	ck_assert_int_eq(ring_plan(&c, &size), SHMQ_EINVAL);
	c.capacity = SHMQ_CAPACITY_MAX + 1;
	ck_assert_int_eq(ring_plan(&c, &size), SHMQ_EINVAL);
	c = config(8, SHMQ_MSG_MAX + 1, 0, 0);
	ck_assert_int_eq(ring_plan(&c, &size), SHMQ_EINVAL);
	c = config(8, 64, 0, 0);
	c.clients = 0;
	ck_assert_int_eq(ring_plan(&c, &size), SHMQ_EINVAL);
	/* A budget below one maximal message could never admit it. */
	c = config(8, 64, 63, 0);
	ck_assert_int_eq(ring_plan(&c, &size), SHMQ_EINVAL);

	/* Formatting refuses a short segment and an over-long name. */
	c = config(8, 64, 0, 0);
	ck_assert_int_eq(ring_plan(&c, &size), SHMQ_OK);
	void *mem = calloc(1, size);
	ck_assert_ptr_nonnull(mem);
	ck_assert_int_eq(ring_format(mem, size - 1, &c), SHMQ_EINVAL);
	memset(longname, 'n', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	c.name = longname;
	ck_assert_int_eq(ring_format(mem, size, &c), SHMQ_EINVAL);
	free(mem);
}
END_TEST

START_TEST(test_format_attach_stat)
{
	struct ring_config c = config(5, 100, 1000, SHMQ_CFG_AUTO_CLOSE);
	struct timespec wall;
	struct ring r2;

	clock_gettime(CLOCK_REALTIME, &wall);
	int64_t t0 = (int64_t)wall.tv_sec * 1000000000 + wall.tv_nsec;
	q_create(&c);
	struct shmq_stat st = stat_now();
	ck_assert_str_eq(st.name, "test-queue");
	ck_assert_uint_eq(st.capacity, 5);
	ck_assert_uint_eq(st.max_msg, 100);
	ck_assert_uint_eq(st.max_bytes, 1000);
	ck_assert_uint_eq(st.mode, 0640);
	ck_assert_uint_eq(st.uid, getuid());
	ck_assert_uint_eq(st.gid, getgid());
	ck_assert_uint_eq(st.flags, SHMQ_AUTO_CLOSE);
	ck_assert_uint_eq(st.messages, 0);
	ck_assert_uint_eq(st.bytes, 0);
	ck_assert_uint_eq(st.total_put, 0);
	ck_assert_uint_eq(st.total_got, 0);
	ck_assert_int_eq(st.state, SHMQ_STATE_OPEN);
	ck_assert_int_eq(st.closed_ns, 0);
	ck_assert_int_ge(st.created_ns, t0 - 1000000000);
	ck_assert_int_le(st.created_ns, t0 + 10 * 1000000000ll);
	ck_assert_int_eq(ring_check(&R), SHMQ_OK);

	/* The mapping must cover the whole segment. */
	ck_assert_int_eq(ring_attach(&r2, S.mem, S.size - 1), SHMQ_ECORRUPT);
	ck_assert_int_eq(ring_attach(&r2, S.mem, 16), SHMQ_ECORRUPT);
	ck_assert_int_eq(ring_attach(&r2, S.mem, S.size), SHMQ_OK);
	ck_assert_uint_eq(r2.capacity, 5);
	ck_assert_uint_eq(r2.max_msg, 100);

	/* Unformatted (zero) memory is not a queue. */
	void *zero = calloc(1, S.size);
	ck_assert_int_eq(ring_attach(&r2, zero, S.size), SHMQ_ECORRUPT);
	free(zero);
}
END_TEST

/* ================================================================== */
/* put and get                                                        */

START_TEST(test_put_get_fifo)
{
	struct ring_config c = config(8, 64, 0, 0);
	char msg[32];

	q_create(&c);
	/* Many rounds, so the slot and data rings wrap many times. */
	for (int round = 0; round < 200; round++) {
		int n = 1 + round % 8;
		for (int i = 0; i < n; i++) {
			snprintf(msg, sizeof(msg), "r%d-m%d-%.*s", round, i,
				 (round * 7 + i) % 20, "xxxxxxxxxxxxxxxxxxxx");
			put_ok(&R, msg);
		}
		ck_assert_uint_eq(stat_now().messages, (unsigned)n);
		for (int i = 0; i < n; i++) {
			snprintf(msg, sizeof(msg), "r%d-m%d-%.*s", round, i,
				 (round * 7 + i) % 20, "xxxxxxxxxxxxxxxxxxxx");
			expect_msg(&R, msg);
		}
		expect_empty(&R);
	}
	ck_assert_int_eq(ring_check(&R), SHMQ_OK);
}
END_TEST

START_TEST(test_nowait_full_and_empty)
{
	struct ring_config c = config(4, 64, 0, 0);

	q_create(&c);
	expect_empty(&R);
	for (int i = 0; i < 4; i++)
		put_ok(&R, "fill");
	/* Full: a try fails at once and queues nothing. */
	ck_assert_int_eq(put_str(&R, "over", SHMQ_NOWAIT), SHMQ_EAGAIN);
	struct shmq_stat st = stat_now();
	ck_assert_uint_eq(st.messages, 4);
	ck_assert_uint_eq(st.total_put, 4);
	expect_msg(&R, "fill");
	put_ok(&R, "last");
	for (int i = 0; i < 3; i++)
		expect_msg(&R, "fill");
	expect_msg(&R, "last");
	expect_empty(&R);
}
END_TEST

START_TEST(test_timeouts)
{
	struct ring_config c = config(2, 64, 0, 0);
	char buf[64];
	size_t len;

	q_create(&c);
	uint64_t t0 = now_ns();
	ck_assert_int_eq(get_buf(&R, buf, sizeof(buf), &len, 60),
			 SHMQ_ETIMEDOUT);
	uint64_t dt = now_ns() - t0;
	ck_assert_uint_ge(dt, 60 * 1000000ull);
	ck_assert_uint_lt(dt, 3000 * 1000000ull);

	put_ok(&R, "a");
	put_ok(&R, "b");
	t0 = now_ns();
	ck_assert_int_eq(put_str(&R, "c", 60), SHMQ_ETIMEDOUT);
	dt = now_ns() - t0;
	ck_assert_uint_ge(dt, 60 * 1000000ull);
	ck_assert_uint_lt(dt, 3000 * 1000000ull);
	ck_assert_uint_eq(stat_now().messages, 2);
	expect_msg(&R, "a");
	expect_msg(&R, "b");
	expect_empty(&R);
}
END_TEST

/* A full queue blocks put until a consumer makes room. */
START_TEST(test_full_put_blocks)
{
	struct ring_config c = config(2, 64, 0, 0);
	struct op op = OP(.timeout = SHMQ_FOREVER, .n = 1, .msgs = { "k" });

	q_create(&c);
	put_ok(&R, "a");
	put_ok(&R, "b");
	struct kid *k = kid_op(SHMQ_ROLE_PRODUCER, kid_put, &op);
	/* Asleep in put, and it said so in its entry and the statistics. */
	EVENTUALLY(entry_wait(k->idx) == SHMQ_WAIT_PUT);
	ck_assert_uint_eq(stat_now().put_blocked, 1);
	kid_silent(k);
	ck_assert_uint_eq(stat_now().messages, 2);
	expect_msg(&R, "a");
	struct kres res = kid_result(k);
	ck_assert_int_eq(res.rc, SHMQ_OK);
	ck_assert_uint_eq(res.count, 1);
	ck_assert_uint_eq(stat_now().put_blocked, 0);
	expect_msg(&R, "b");
	expect_msg(&R, "k");
	expect_empty(&R);
}
END_TEST

/* An empty queue blocks get until a producer puts. */
START_TEST(test_empty_get_blocks)
{
	struct ring_config c = config(2, 64, 0, 0);
	struct op op = OP(.timeout = SHMQ_FOREVER);

	q_create(&c);
	struct kid *k = kid_op(SHMQ_ROLE_CONSUMER, kid_get, &op);
	EVENTUALLY(entry_wait(k->idx) == SHMQ_WAIT_GET);
	ck_assert_uint_eq(stat_now().get_blocked, 1);
	kid_silent(k);
	put_ok(&R, "wake");
	struct kres res = kid_result(k);
	ck_assert_int_eq(res.rc, SHMQ_OK);
	ck_assert_uint_eq(res.len, 4);
	ck_assert_mem_eq(res.data, "wake", 4);
	ck_assert_uint_eq(stat_now().get_blocked, 0);
	expect_empty(&R);
}
END_TEST

START_TEST(test_byte_budget)
{
	char m64[64], m40[40], m36[36];

	struct ring_config c = config(16, 64, 100, 0);
	memset(m64, 'a', sizeof(m64));
	memset(m40, 'b', sizeof(m40));
	memset(m36, 'c', sizeof(m36));
	q_create(&c);
	ck_assert_int_eq(put_buf(&R, m64, 64, SHMQ_NOWAIT), SHMQ_OK);
	/* 64 + 40 > 100 although only 1 of 16 slots is used. */
	ck_assert_int_eq(put_buf(&R, m40, 40, SHMQ_NOWAIT), SHMQ_EAGAIN);
	ck_assert_int_eq(put_buf(&R, m40, 40, 30), SHMQ_ETIMEDOUT);
	ck_assert_uint_eq(stat_now().bytes, 64);
	ck_assert_int_eq(put_buf(&R, m36, 36, SHMQ_NOWAIT), SHMQ_OK);
	/* Exactly at the budget; an empty message adds no bytes. */
	ck_assert_int_eq(put_buf(&R, "", 0, SHMQ_NOWAIT), SHMQ_OK);
	ck_assert_int_eq(put_buf(&R, "x", 1, SHMQ_NOWAIT), SHMQ_EAGAIN);
	struct shmq_stat st = stat_now();
	ck_assert_uint_eq(st.bytes, 100);
	ck_assert_uint_eq(st.messages, 3);

	char buf[64];
	size_t len;
	ck_assert_int_eq(get_buf(&R, buf, sizeof(buf), &len, 0), SHMQ_OK);
	ck_assert_uint_eq(len, 64);
	ck_assert_int_eq(put_buf(&R, m40, 40, SHMQ_NOWAIT), SHMQ_OK);
	ck_assert_uint_eq(stat_now().bytes, 76);
}
END_TEST

/* The budget, not the capacity, blocks a producer in another process. */
START_TEST(test_byte_budget_blocks)
{
	struct ring_config c = config(16, 64, 100, 0);
	struct op op = OP(.timeout = SHMQ_FOREVER, .n = 1,
			  .msgs = { "0123456789012345678901234567890123456789" });
	char m64[64];
	char buf[64];
	size_t len;

	memset(m64, 'a', sizeof(m64));
	q_create(&c);
	ck_assert_int_eq(put_buf(&R, m64, 64, SHMQ_NOWAIT), SHMQ_OK);
	struct kid *k = kid_op(SHMQ_ROLE_PRODUCER, kid_put, &op);
	EVENTUALLY(entry_wait(k->idx) == SHMQ_WAIT_PUT);
	kid_silent(k);
	ck_assert_uint_eq(stat_now().messages, 1);
	ck_assert_int_eq(get_buf(&R, buf, sizeof(buf), &len, 0), SHMQ_OK);
	struct kres res = kid_result(k);
	ck_assert_int_eq(res.rc, SHMQ_OK);
	expect_msg(&R, op.msgs[0]);
}
END_TEST

START_TEST(test_too_big)
{
	struct ring_config c = config(4, 32, 0, 0);
	char big[33], max[32];

	memset(big, 'B', sizeof(big));
	memset(max, 'M', sizeof(max));
	q_create(&c);
	ck_assert_int_eq(put_buf(&R, big, 33, SHMQ_NOWAIT), SHMQ_E2BIG);
	ck_assert_int_eq(put_buf(&R, big, 33, SHMQ_FOREVER), SHMQ_E2BIG);
	struct shmq_stat st = stat_now();
	ck_assert_uint_eq(st.messages, 0);
	ck_assert_uint_eq(st.total_put, 0);
	ck_assert_int_eq(put_buf(&R, max, 32, SHMQ_NOWAIT), SHMQ_OK);
	/* Too big wins over full: waiting could never help it. */
	for (int i = 0; i < 3; i++)
		put_ok(&R, "f");
	ck_assert_int_eq(put_buf(&R, big, 33, 10000), SHMQ_E2BIG);
	ck_assert_uint_eq(stat_now().messages, 4);

	char buf[64];
	size_t len;
	ck_assert_int_eq(get_buf(&R, buf, sizeof(buf), &len, 0), SHMQ_OK);
	ck_assert_uint_eq(len, 32);
	ck_assert_mem_eq(buf, max, 32);
}
END_TEST

/* Includes a regression test: a get into no buffer at all (NULL, size 0,
 * which shmq_get() accepts) used to compute NULL + 0, which only a clang
 * --enable-sanitizers build (UBSan) reports. */
START_TEST(test_binary_and_empty_messages)
{
	struct ring_config c = config(8, 256, 0, 0);
	uint8_t all[256], rev[256], buf[256];
	static const uint8_t nuls[] = { 'a', 0, 'b', 0, 0, 'c', 0 };
	size_t len;

	for (int i = 0; i < 256; i++) {
		all[i] = (uint8_t)i;
		rev[i] = (uint8_t)(255 - i);
	}
	q_create(&c);
	for (int round = 0; round < 20; round++) {
		ck_assert_int_eq(put_buf(&R, "", 0, 0), SHMQ_OK);
		ck_assert_int_eq(put_buf(&R, all, 256, 0), SHMQ_OK);
		ck_assert_int_eq(put_buf(&R, nuls, sizeof(nuls), 0), SHMQ_OK);
		ck_assert_int_eq(put_buf(&R, "", 0, 0), SHMQ_OK);
		ck_assert_int_eq(put_buf(&R, rev, 256, 0), SHMQ_OK);
		ck_assert_uint_eq(stat_now().bytes, 512 + sizeof(nuls));

		memset(buf, 0xee, sizeof(buf));
		ck_assert_int_eq(get_buf(&R, buf, sizeof(buf), &len, 0), 0);
		ck_assert_uint_eq(len, 0);
		ck_assert_int_eq(get_buf(&R, buf, sizeof(buf), &len, 0), 0);
		ck_assert_uint_eq(len, 256);
		ck_assert_mem_eq(buf, all, 256);
		ck_assert_int_eq(get_buf(&R, buf, sizeof(buf), &len, 0), 0);
		ck_assert_uint_eq(len, sizeof(nuls));
		ck_assert_mem_eq(buf, nuls, sizeof(nuls));
		/* An empty message fits a zero-sized buffer. */
		ck_assert_int_eq(get_buf(&R, buf, 0, &len, 0), 0);
		ck_assert_uint_eq(len, 0);
		ck_assert_int_eq(get_buf(&R, buf, sizeof(buf), &len, 0), 0);
		ck_assert_uint_eq(len, 256);
		ck_assert_mem_eq(buf, rev, 256);
		/* ...and no buffer at all. */
		ck_assert_int_eq(put_buf(&R, "", 0, 0), SHMQ_OK);
		ck_assert_int_eq(get_buf(&R, NULL, 0, &len, 0), SHMQ_OK);
		ck_assert_uint_eq(len, 0);
	}
	expect_empty(&R);
	ck_assert_uint_eq(stat_now().total_got, 120);
}
END_TEST

START_TEST(test_emsgsize_keeps_message)
{
	struct ring_config c = config(4, 200, 0, 0);
	char msg[100], buf[200];
	size_t len = 0;

	memset(msg, 'q', sizeof(msg));
	q_create(&c);
	ck_assert_int_eq(put_buf(&R, msg, 100, 0), SHMQ_OK);
	put_ok(&R, "next");
	ck_assert_int_eq(get_buf(&R, buf, 10, &len, 0), SHMQ_EMSGSIZE);
	ck_assert_uint_eq(len, 100);
	ck_assert_int_eq(get_buf(&R, buf, 99, &len, WAIT_MS), SHMQ_EMSGSIZE);
	ck_assert_uint_eq(len, 100);
	struct shmq_stat st = stat_now();
	ck_assert_uint_eq(st.messages, 2);
	ck_assert_uint_eq(st.total_got, 0);
	ck_assert_int_eq(get_buf(&R, buf, 100, &len, 0), SHMQ_OK);
	ck_assert_uint_eq(len, 100);
	ck_assert_mem_eq(buf, msg, 100);
	expect_msg(&R, "next");
}
END_TEST

/* ================================================================== */
/* Batches                                                            */

START_TEST(test_batch_put_get)
{
	struct ring_config c = config(8, 32, 0, 0);
	struct iovec v[12], out[16];
	char names[12][8], buf[256], big[40];
	size_t done, got;

	q_create(&c);
	for (int i = 0; i < 12; i++) {
		snprintf(names[i], sizeof(names[i]), "b%d", i);
		v[i].iov_base = names[i];
		v[i].iov_len = strlen(names[i]);
	}
	ck_assert_int_eq(ring_put(&R, v, 5, &done, 0), SHMQ_OK);
	ck_assert_uint_eq(done, 5);
	ck_assert_uint_eq(stat_now().messages, 5);

	/* Several at once, each starting 16-aligned from the buffer, so
	 * that a caller may read a message as a struct. */
	ck_assert_int_eq(ring_get(&R, buf, sizeof(buf), out, 3, &got, 0), 0);
	ck_assert_uint_eq(got, 3);
	for (int i = 0; i < 3; i++) {
		ck_assert_uint_eq(out[i].iov_len, 2);
		ck_assert_mem_eq(out[i].iov_base, names[i], 2);
	}
	ck_assert_ptr_eq(out[0].iov_base, buf);
	ck_assert_ptr_eq(out[1].iov_base, buf + 16);
	ck_assert_ptr_eq(out[2].iov_base, buf + 32);
	/* As many as the buffer holds: "b3" fits, "b4" does not (it would
	 * start at 16, and 17 bytes leave it 1). */
	ck_assert_int_eq(ring_get(&R, buf, 17, out, 8, &got, 0), SHMQ_OK);
	ck_assert_uint_eq(got, 1);
	ck_assert_mem_eq(out[0].iov_base, "b3", 2);
	ck_assert_int_eq(ring_get(&R, buf, sizeof(buf), out, 8, &got, 0), 0);
	ck_assert_uint_eq(got, 1);
	ck_assert_mem_eq(out[0].iov_base, "b4", 2);
	ck_assert_int_eq(ring_get(&R, buf, sizeof(buf), out, 8, &got, 0),
			 SHMQ_EAGAIN);
	ck_assert_uint_eq(got, 0);

	/* A try puts what fits and says how many. */
	ck_assert_int_eq(ring_put(&R, v, 12, &done, 0), SHMQ_EAGAIN);
	ck_assert_uint_eq(done, 8);
	ck_assert_int_eq(ring_get(&R, buf, sizeof(buf), out, 16, &got, 0), 0);
	ck_assert_uint_eq(got, 8);
	for (int i = 0; i < 8; i++)
		ck_assert_mem_eq(out[i].iov_base, names[i], out[i].iov_len);

	/* A too-big message stops the batch; those before it are queued,
	 * it and those after it are not. */
	memset(big, 'B', sizeof(big));
	struct iovec mix[3] = { { "x", 1 }, { big, 40 }, { "y", 1 } };
	ck_assert_int_eq(ring_put(&R, mix, 3, &done, 0), SHMQ_E2BIG);
	ck_assert_uint_eq(done, 1);
	expect_msg(&R, "x");
	expect_empty(&R);

	ck_assert_int_eq(ring_put(&R, v, 0, &done, 0), SHMQ_OK);
	ck_assert_uint_eq(done, 0);
	ck_assert_int_eq(ring_get(&R, buf, sizeof(buf), out, 0, &got, 0),
			 SHMQ_EINVAL);
	/* A first message that does not fit is reported as for one get. */
	put_ok(&R, "abcdef");
	ck_assert_int_eq(ring_get(&R, buf, 4, out, 8, &got, 0), SHMQ_EMSGSIZE);
	ck_assert_uint_eq(got, 0);
	ck_assert_uint_eq(out[0].iov_len, 6);
	expect_msg(&R, "abcdef");
}
END_TEST

/* A batch larger than the queue blocks part-way and completes as another
 * process makes room; the consumer sees it in order. */
START_TEST(test_batch_blocks_across_processes)
{
	struct ring_config c = config(4, 32, 0, 0);
	static char names[20][8];
	struct op op = OP(.timeout = SHMQ_FOREVER, .n = 20);
	char buf[32];
	size_t len;

	for (int i = 0; i < 20; i++) {
		snprintf(names[i], sizeof(names[i]), "k%02d", i);
		op.msgs[i] = names[i];
	}
	q_create(&c);
	struct kid *k = kid_op(SHMQ_ROLE_PRODUCER, kid_put, &op);
	EVENTUALLY(entry_wait(k->idx) == SHMQ_WAIT_PUT);
	/* Blocked after committing the first four. */
	ck_assert_uint_eq(stat_now().messages, 4);
	kid_silent(k);
	for (int i = 0; i < 20; i++) {
		ck_assert_int_eq(get_buf(&R, buf, sizeof(buf), &len, WAIT_MS),
				 SHMQ_OK);
		ck_assert_uint_eq(len, 3);
		ck_assert_mem_eq(buf, names[i], 3);
	}
	struct kres res = kid_result(k);
	ck_assert_int_eq(res.rc, SHMQ_OK);
	ck_assert_uint_eq(res.count, 20);
	expect_empty(&R);
}
END_TEST

/* A batch get blocks while empty and returns what is there at once. */
START_TEST(test_batch_get_blocks)
{
	struct ring_config c = config(8, 32, 0, 0);
	struct op op = OP(.timeout = SHMQ_FOREVER, .n = 8);

	q_create(&c);
	struct kid *k = kid_op(SHMQ_ROLE_CONSUMER, kid_get, &op);
	EVENTUALLY(entry_wait(k->idx) == SHMQ_WAIT_GET);
	struct iovec v[3] = { { "one", 3 }, { "two", 3 }, { "six", 3 } };
	size_t done;
	ck_assert_int_eq(ring_put(&R, v, 3, &done, 0), SHMQ_OK);
	struct kres res = kid_result(k);
	ck_assert_int_eq(res.rc, SHMQ_OK);
	/* One batch put is one commit: the consumer sees all three. */
	ck_assert_uint_eq(res.count, 3);
	ck_assert_mem_eq(res.data, "one", 3);
	expect_empty(&R);
}
END_TEST

/* ================================================================== */
/* close                                                              */

START_TEST(test_close_drain_then_eos)
{
	struct ring_config c = config(8, 32, 0, 0);
	char buf[64];
	size_t len, got;
	struct iovec out[4];
	uint64_t disc = 99;
	int rc, n = 0;

	ck_assert_int_gt(SHMQ_EOS, 0);
	ck_assert_int_gt(SHMQ_EOS_LOST, 0);
	ck_assert_int_ne(SHMQ_EOS, SHMQ_EOS_LOST);
	q_create(&c);
	put_ok(&R, "one");
	put_ok(&R, "two");
	put_ok(&R, "three");
	put_ok(&R, "four");
	ck_assert_int_eq(ring_close(&R, SHMQ_CLOSE_DRAIN, &disc), SHMQ_OK);
	ck_assert_uint_eq(disc, 0);
	ck_assert_int_eq(put_str(&R, "late", SHMQ_FOREVER), SHMQ_ECLOSED);
	ck_assert_int_eq(put_str(&R, "late", 0), SHMQ_ECLOSED);
	struct shmq_stat st = stat_now();
	ck_assert_int_eq(st.state, SHMQ_STATE_CLOSED);
	ck_assert_int_gt(st.closed_ns, 0);
	ck_assert_uint_eq(st.messages, 4);

	/* Drain: the remaining messages, one and then a batch... */
	expect_msg(&R, "one");
	ck_assert_int_eq(ring_get(&R, buf, sizeof(buf), out, 4, &got, 0), 0);
	ck_assert_uint_eq(got, 3);
	ck_assert_mem_eq(out[2].iov_base, "four", 4);
	/* ...then end of stream, for every kind of call, every time. */
	ck_assert_int_eq(get_buf(&R, buf, sizeof(buf), &len, SHMQ_FOREVER),
			 SHMQ_EOS);
	ck_assert_int_eq(get_buf(&R, buf, sizeof(buf), &len, 0), SHMQ_EOS);
	ck_assert_int_eq(ring_get(&R, buf, sizeof(buf), out, 4, &got, 50),
			 SHMQ_EOS);
	ck_assert_uint_eq(got, 0);

	/* The iterate idiom stops on end of stream, not on an error. */
	q_reformat(&c);
	for (int i = 0; i < 5; i++)
		put_ok(&R, "it");
	ring_close(&R, SHMQ_CLOSE_DRAIN, NULL);
	while ((rc = get_buf(&R, buf, sizeof(buf), &len, WAIT_MS)) == SHMQ_OK)
		n++;
	ck_assert_int_eq(rc, SHMQ_EOS);
	ck_assert_int_eq(n, 5);
	st = stat_now();
	ck_assert_uint_eq(st.total_put, 5);
	ck_assert_uint_eq(st.total_got, 5);
	ck_assert_uint_eq(st.discarded, 0);
}
END_TEST

START_TEST(test_close_now_discards)
{
	struct ring_config c = config(8, 32, 0, 0);
	uint64_t disc = 99;
	char buf[32];
	size_t len;

	q_create(&c);
	put_ok(&R, "m0");
	put_ok(&R, "m1");
	put_ok(&R, "m2");
	put_ok(&R, "m3");
	put_ok(&R, "m4");
	expect_msg(&R, "m0");
	ck_assert_int_eq(ring_close(&R, SHMQ_CLOSE_NOW, &disc), SHMQ_OK);
	ck_assert_uint_eq(disc, 4);
	/* End of stream at once, even for a call that would wait. */
	ck_assert_int_eq(get_buf(&R, buf, sizeof(buf), &len, SHMQ_FOREVER),
			 SHMQ_EOS);
	ck_assert_int_eq(put_str(&R, "late", 0), SHMQ_ECLOSED);
	struct shmq_stat st = stat_now();
	ck_assert_int_eq(st.state, SHMQ_STATE_CLOSED_NOW);
	ck_assert_uint_eq(st.discarded, 4);
	ck_assert_uint_eq(st.total_put, 5);
	ck_assert_uint_eq(st.total_got, 1);
	ck_assert_uint_eq(st.messages, 0);
	ck_assert_uint_eq(st.bytes, 0);
	ck_assert_int_eq(ring_check(&R), SHMQ_OK);
}
END_TEST

START_TEST(test_close_idempotent)
{
	struct ring_config c = config(8, 32, 0, 0);
	uint64_t disc = 99;
	char buf[32];
	size_t len;

	q_create(&c);
	put_ok(&R, "a");
	put_ok(&R, "b");
	put_ok(&R, "c");
	ck_assert_int_eq(ring_close(&R, SHMQ_CLOSE_DRAIN, &disc), SHMQ_OK);
	int64_t first = stat_now().closed_ns;
	ck_assert_int_gt(first, 0);
	ck_assert_int_eq(ring_close(&R, SHMQ_CLOSE_DRAIN, &disc), SHMQ_OK);
	ck_assert_uint_eq(disc, 0);
	ck_assert_int_eq(stat_now().closed_ns, first);
	ck_assert_int_eq(stat_now().state, SHMQ_STATE_CLOSED);
	ck_assert_uint_eq(stat_now().messages, 3);
	expect_msg(&R, "a");
	/* A drained close may still be made immediate: the rest goes. */
	ck_assert_int_eq(ring_close(&R, SHMQ_CLOSE_NOW, &disc), SHMQ_OK);
	ck_assert_uint_eq(disc, 2);
	ck_assert_int_eq(ring_close(&R, SHMQ_CLOSE_NOW, &disc), SHMQ_OK);
	ck_assert_uint_eq(disc, 0);
	ck_assert_int_eq(ring_close(&R, SHMQ_CLOSE_DRAIN, &disc), SHMQ_OK);
	ck_assert_int_eq(ring_close(&R, 7, &disc), SHMQ_EINVAL);
	struct shmq_stat st = stat_now();
	ck_assert_int_eq(st.state, SHMQ_STATE_CLOSED_NOW);
	ck_assert_uint_eq(st.discarded, 2);
	ck_assert_int_eq(st.closed_ns, first);
	ck_assert_int_eq(get_buf(&R, buf, sizeof(buf), &len, 0), SHMQ_EOS);
}
END_TEST

/* Close wakes putters asleep in other processes; they fail "closed" and
 * the queue keeps exactly what it had. */
START_TEST(test_close_wakes_putters)
{
	struct ring_config c = config(2, 32, 0, 0);
	struct op op = OP(.timeout = SHMQ_FOREVER, .n = 1, .msgs = { "x" });

	q_create(&c);
	put_ok(&R, "a");
	put_ok(&R, "b");
	struct kid *k1 = kid_op(SHMQ_ROLE_PRODUCER, kid_put, &op);
	struct kid *k2 = kid_op(SHMQ_ROLE_PRODUCER, kid_put, &op);
	EVENTUALLY(entry_wait(k1->idx) == SHMQ_WAIT_PUT &&
		   entry_wait(k2->idx) == SHMQ_WAIT_PUT);
	ck_assert_uint_eq(stat_now().put_blocked, 2);
	ck_assert_int_eq(ring_close(&R, SHMQ_CLOSE_DRAIN, NULL), SHMQ_OK);
	ck_assert_int_eq(kid_result(k1).rc, SHMQ_ECLOSED);
	ck_assert_int_eq(kid_result(k2).rc, SHMQ_ECLOSED);
	ck_assert_uint_eq(stat_now().put_blocked, 0);
	expect_msg(&R, "a");
	expect_msg(&R, "b");
	char buf[8];
	size_t len;
	ck_assert_int_eq(get_buf(&R, buf, sizeof(buf), &len, 0), SHMQ_EOS);
}
END_TEST

START_TEST(test_close_wakes_getters)
{
	struct ring_config c = config(2, 32, 0, 0);
	struct op op = OP(.timeout = SHMQ_FOREVER);
	struct op batch = OP(.timeout = SHMQ_FOREVER, .n = 4);

	q_create(&c);
	struct kid *k1 = kid_op(SHMQ_ROLE_CONSUMER, kid_get, &op);
	struct kid *k2 = kid_op(SHMQ_ROLE_CONSUMER, kid_get, &batch);
	EVENTUALLY(entry_wait(k1->idx) == SHMQ_WAIT_GET &&
		   entry_wait(k2->idx) == SHMQ_WAIT_GET);
	ck_assert_uint_eq(stat_now().get_blocked, 2);
	ck_assert_int_eq(ring_close(&R, SHMQ_CLOSE_DRAIN, NULL), SHMQ_OK);
	struct kres r1 = kid_result(k1), r2 = kid_result(k2);
	ck_assert_int_eq(r1.rc, SHMQ_EOS);
	ck_assert_int_eq(r2.rc, SHMQ_EOS);
	ck_assert_uint_eq(r1.count + r2.count, 0);
	ck_assert_uint_eq(stat_now().get_blocked, 0);
}
END_TEST

/* close --now wakes a putter on a full queue, reports the discarded
 * messages, and a consumer in another process sees end of stream. */
START_TEST(test_close_now_wakes_everyone)
{
	struct ring_config c = config(3, 32, 0, 0);
	struct op put = OP(.timeout = SHMQ_FOREVER, .n = 1, .msgs = { "x" });
	struct op get = OP(.timeout = SHMQ_FOREVER);
	uint64_t disc = 0;

	q_create(&c);
	put_ok(&R, "a");
	put_ok(&R, "b");
	put_ok(&R, "c");
	struct kid *p = kid_op(SHMQ_ROLE_PRODUCER, kid_put, &put);
	EVENTUALLY(entry_wait(p->idx) == SHMQ_WAIT_PUT);
	ck_assert_int_eq(ring_close(&R, SHMQ_CLOSE_NOW, &disc), SHMQ_OK);
	ck_assert_uint_eq(disc, 3);
	ck_assert_int_eq(kid_result(p).rc, SHMQ_ECLOSED);
	struct kid *g = kid_op(SHMQ_ROLE_CONSUMER, kid_get, &get);
	ck_assert_int_eq(kid_result(g).rc, SHMQ_EOS);
	ck_assert_uint_eq(stat_now().discarded, 3);

	/* And an immediate close of an empty queue wakes a sleeper. */
	q_reformat(&c);
	g = kid_op(SHMQ_ROLE_CONSUMER, kid_get, &get);
	EVENTUALLY(entry_wait(g->idx) == SHMQ_WAIT_GET);
	ck_assert_int_eq(ring_close(&R, SHMQ_CLOSE_NOW, &disc), SHMQ_OK);
	ck_assert_uint_eq(disc, 0);
	ck_assert_int_eq(kid_result(g).rc, SHMQ_EOS);
}
END_TEST

/* ================================================================== */
/* Producers, consumers and stat                                      */

START_TEST(test_stat_counts)
{
	struct ring_config c = config(8, 64, 0, 0);
	uint32_t ip, ic, ipc, gen;

	q_create(&c);
	put_ok(&R, "aaaa");
	put_ok(&R, "bbbbbbbb");
	put_ok(&R, "");
	struct shmq_stat st = stat_now();
	ck_assert_uint_eq(st.messages, 3);
	ck_assert_uint_eq(st.bytes, 12);
	ck_assert_uint_eq(st.total_put, 3);
	ck_assert_uint_eq(st.total_got, 0);
	expect_msg(&R, "aaaa");
	st = stat_now();
	ck_assert_uint_eq(st.messages, 2);
	ck_assert_uint_eq(st.bytes, 8);
	ck_assert_uint_eq(st.total_got, 1);

	ck_assert_int_eq(ring_client_add(&R, 1001, 5, SHMQ_ROLE_PRODUCER, &ip,
					 &gen), SHMQ_OK);
	ck_assert_int_eq(ring_client_add(&R, 1002, 5, SHMQ_ROLE_CONSUMER, &ic,
					 &gen), SHMQ_OK);
	ck_assert_int_eq(ring_client_add(&R, 1003, 5, SHMQ_ROLE_PRODUCER |
					 SHMQ_ROLE_CONSUMER, &ipc, &gen),
			 SHMQ_OK);
	st = stat_now();
	ck_assert_uint_eq(st.producers, 2);
	ck_assert_uint_eq(st.consumers, 2);
	ring_client_remove(&R, ip, 0);
	ring_client_remove(&R, ic, 0);
	st = stat_now();
	ck_assert_uint_eq(st.producers, 1);
	ck_assert_uint_eq(st.consumers, 1);
	ck_assert_int_eq(st.state, SHMQ_STATE_OPEN);
	ck_assert_int_eq(st.producer_lost, 0);
	/* The counts can be rebuilt from the table after damage. */
	R.hdr->producers = 77;
	R.hdr->consumers = 0;
	ring_client_recount(&R);
	st = stat_now();
	ck_assert_uint_eq(st.producers, 1);
	ck_assert_uint_eq(st.consumers, 1);
}
END_TEST

START_TEST(test_client_table)
{
	struct ring_config c = config(4, 64, 0, 0);
	uint32_t idx[5], gen[5], i2, g2;

	c.clients = 4;
	q_create(&c);
	for (int i = 0; i < 4; i++) {
		ck_assert_int_eq(ring_client_add(&R, 2000 + (uint32_t)i, 0,
						 SHMQ_ROLE_CONSUMER, &idx[i],
						 &gen[i]), SHMQ_OK);
		ck_assert_uint_lt(idx[i], 4);
		ck_assert_uint_ne(gen[i], 0);
		for (int j = 0; j < i; j++) {
			ck_assert_uint_ne(idx[i], idx[j]);
			ck_assert_uint_ne(gen[i], gen[j]);
		}
	}
	ck_assert_int_eq(ring_client_add(&R, 3000, 0, SHMQ_ROLE_CONSUMER,
					 &idx[4], &gen[4]), SHMQ_ELIMIT);
	ck_assert_int_eq(ring_client_add(&R, 0, 0, SHMQ_ROLE_CONSUMER,
					 &idx[4], &gen[4]), SHMQ_EINVAL);

	struct ring mine = R;
	ck_assert_int_eq(ring_client_bind(&mine, idx[1], gen[1]), SHMQ_OK);
	ck_assert_ptr_eq(mine.self, &R.clients[idx[1]]);
	ck_assert_int_eq(ring_client_bind(&mine, 4, gen[1]), SHMQ_ECORRUPT);
	ck_assert_int_eq(ring_client_bind(&mine, UINT32_MAX, 1),
			 SHMQ_ECORRUPT);
	ck_assert_int_eq(ring_client_bind(&mine, idx[1], gen[2]),
			 SHMQ_ECORRUPT);
	ck_assert_int_eq(ring_client_bind(&mine, idx[1], 0), SHMQ_ECORRUPT);

	/* A freed entry is reused under a new generation: the old token
	 * no longer binds. */
	ring_client_remove(&R, idx[1], 0);
	ck_assert_uint_eq(stat_now().consumers, 3);
	ring_client_remove(&R, 99, 0);          /* out of range: ignored */
	ring_client_remove(&R, UINT32_MAX, 1);
	ck_assert_uint_eq(stat_now().consumers, 3);
	ck_assert_int_eq(ring_client_add(&R, 3001, 0, SHMQ_ROLE_CONSUMER, &i2,
					 &g2), SHMQ_OK);
	ck_assert_uint_eq(i2, idx[1]);
	ck_assert_uint_ne(g2, gen[1]);
	ck_assert_int_eq(ring_client_bind(&mine, idx[1], gen[1]),
			 SHMQ_ECORRUPT);
	ck_assert_int_eq(ring_client_bind(&mine, i2, g2), SHMQ_OK);
}
END_TEST

START_TEST(test_auto_close)
{
	struct ring_config c = config(8, 64, 0, SHMQ_CFG_AUTO_CLOSE);
	struct op get = OP(.timeout = SHMQ_FOREVER);
	uint32_t p1, p2, ic, gen;
	char buf[64];
	size_t len;

	q_create(&c);
	ck_assert_int_eq(ring_client_add(&R, 11, 0, SHMQ_ROLE_PRODUCER, &p1,
					 &gen), SHMQ_OK);
	ck_assert_int_eq(ring_client_add(&R, 12, 0, SHMQ_ROLE_PRODUCER, &p2,
					 &gen), SHMQ_OK);
	ck_assert_int_eq(ring_client_add(&R, 13, 0, SHMQ_ROLE_CONSUMER, &ic,
					 &gen), SHMQ_OK);
	put_ok(&R, "x");
	ring_client_remove(&R, p1, 0);
	ck_assert_int_eq(stat_now().state, SHMQ_STATE_OPEN);
	/* A consumer leaving never closes. */
	ring_client_remove(&R, ic, 0);
	ck_assert_int_eq(stat_now().state, SHMQ_STATE_OPEN);
	expect_msg(&R, "x");

	/* The last producer leaves while a consumer sleeps elsewhere. */
	struct kid *g = kid_op(SHMQ_ROLE_CONSUMER, kid_get, &get);
	EVENTUALLY(entry_wait(g->idx) == SHMQ_WAIT_GET);
	ring_client_remove(&R, p2, 0);
	struct shmq_stat st = stat_now();
	ck_assert_int_eq(st.state, SHMQ_STATE_CLOSED);
	ck_assert_int_eq(st.auto_closed, 1);
	ck_assert_int_eq(st.producer_lost, 0);
	ck_assert_int_gt(st.closed_ns, 0);
	ck_assert_uint_eq(st.producers, 0);
	ck_assert_int_eq(kid_result(g).rc, SHMQ_EOS);
	ck_assert_int_eq(put_str(&R, "late", 0), SHMQ_ECLOSED);
	ck_assert_int_eq(get_buf(&R, buf, sizeof(buf), &len, 0), SHMQ_EOS);
}
END_TEST

START_TEST(test_no_auto_close_without_flag)
{
	struct ring_config c = config(8, 64, 0, 0);
	uint32_t p, gen;

	q_create(&c);
	ck_assert_int_eq(ring_client_add(&R, 11, 0, SHMQ_ROLE_PRODUCER, &p,
					 &gen), SHMQ_OK);
	ring_client_remove(&R, p, 0);
	ck_assert_int_eq(stat_now().state, SHMQ_STATE_OPEN);
	ck_assert_int_eq(stat_now().auto_closed, 0);
	put_ok(&R, "still open");

	/* On an auto-close queue closed by hand first, the last producer
	 * leaving does not claim the close. */
	c = config(8, 64, 0, SHMQ_CFG_AUTO_CLOSE);
	q_reformat(&c);
	ck_assert_int_eq(ring_client_add(&R, 11, 0, SHMQ_ROLE_PRODUCER, &p,
					 &gen), SHMQ_OK);
	ring_close(&R, SHMQ_CLOSE_DRAIN, NULL);
	ring_client_remove(&R, p, 0);
	ck_assert_int_eq(stat_now().state, SHMQ_STATE_CLOSED);
	ck_assert_int_eq(stat_now().auto_closed, 0);
}
END_TEST

/* Body of a producer that puts two messages and exits without
 * detaching: the "daemon" (the parent) notices and removes it. */
static int kid_put_two_and_vanish(struct kctx *c)
{
	KCHECK_EQ(put_str(&c->r, "p1", 0), SHMQ_OK);
	KCHECK_EQ(put_str(&c->r, "p2", 0), SHMQ_OK);
	return 0;
}

START_TEST(test_producer_died_eos_lost)
{
	struct ring_config c = config(8, 64, 0, SHMQ_CFG_AUTO_CLOSE);
	struct op get = OP(.timeout = SHMQ_FOREVER);
	uint32_t ok, gen;
	char buf[64];
	size_t len;

	q_create(&c);
	/* A producer that detaches cleanly... */
	ck_assert_int_eq(ring_client_add(&R, 11, 0, SHMQ_ROLE_PRODUCER, &ok,
					 &gen), SHMQ_OK);
	struct kid *p = kid_start(SHMQ_ROLE_PRODUCER, kid_put_two_and_vanish,
				  NULL);
	kid_ok(p);
	ring_client_remove(&R, ok, 0);
	ck_assert_int_eq(stat_now().state, SHMQ_STATE_OPEN);
	/* ...and one that died: the queue closes, marked lost. */
	ring_client_remove(&R, p->idx, 1);
	struct shmq_stat st = stat_now();
	ck_assert_int_eq(st.state, SHMQ_STATE_CLOSED);
	ck_assert_int_eq(st.producer_lost, 1);
	ck_assert_int_eq(st.auto_closed, 1);
	/* A consumer elsewhere drains, then learns the stream is cut. */
	struct kid *g = kid_op(SHMQ_ROLE_CONSUMER, kid_get, &get);
	struct kres res = kid_result(g);
	ck_assert_int_eq(res.rc, SHMQ_OK);
	ck_assert_mem_eq(res.data, "p1", 2);
	expect_msg(&R, "p2");
	ck_assert_int_eq(get_buf(&R, buf, sizeof(buf), &len, 0),
			 SHMQ_EOS_LOST);
	g = kid_op(SHMQ_ROLE_CONSUMER, kid_get, &get);
	ck_assert_int_eq(kid_result(g).rc, SHMQ_EOS_LOST);

	/* Without auto-close the queue stays open until closed by hand. */
	c = config(8, 64, 0, 0);
	q_reformat(&c);
	ck_assert_int_eq(ring_client_add(&R, 11, 0, SHMQ_ROLE_PRODUCER, &ok,
					 &gen), SHMQ_OK);
	put_ok(&R, "m");
	ring_client_remove(&R, ok, 1);
	ck_assert_int_eq(stat_now().state, SHMQ_STATE_OPEN);
	ck_assert_int_eq(stat_now().producer_lost, 1);
	expect_msg(&R, "m");
	expect_empty(&R);
	ring_close(&R, SHMQ_CLOSE_DRAIN, NULL);
	ck_assert_int_eq(get_buf(&R, buf, sizeof(buf), &len, 0),
			 SHMQ_EOS_LOST);
}
END_TEST

/* ================================================================== */
/* Many processes                                                     */

/* A sequence-numbered message: who sent it, its number, and a filler
 * whose length and bytes follow from both, so a torn or mixed-up
 * message cannot pass for a good one. */
#define SEQ_FILL_MAX 40
#define SEQ_MAX_LEN  (8 + SEQ_FILL_MAX)
#define MP_MAX_PROD  64

struct mp {
	uint32_t id;            /* producer id of this child */
	uint32_t per_producer;  /* messages each producer puts (0: endless) */
	uint32_t producers;     /* ids are < producers */
	int strict;             /* one consumer: seqs must be consecutive */
	int nospin;             /* sleep at once instead of spinning first */
	uint8_t *seen;          /* shared: receipts per [id][seq], atomic */
};

#define SEQ_MAX 65536u          /* per producer: the receipt table's row */

static size_t seq_len(uint32_t id, uint32_t seq)
{
	return 8 + (seq * 13u + id * 7u) % (SEQ_FILL_MAX + 1);
}

static size_t seq_make(uint8_t *m, uint32_t id, uint32_t seq)
{
	size_t len = seq_len(id, seq);

	memcpy(m, &id, 4);
	memcpy(m + 4, &seq, 4);
	for (size_t i = 8; i < len; i++)
		m[i] = (uint8_t)(id * 31u + seq + i);
	return len;
}

/* 0 if `m` is a well-formed message, filling *id and *seq. */
static int seq_parse(const uint8_t *m, size_t len, uint32_t producers,
		     uint32_t *id, uint32_t *seq)
{
	if (len < 8)
		return -1;
	memcpy(id, m, 4);
	memcpy(seq, m + 4, 4);
	if (*id >= producers || len != seq_len(*id, *seq))
		return -1;
	for (size_t i = 8; i < len; i++)
		if (m[i] != (uint8_t)(*id * 31u + *seq + i))
			return -1;
	return 0;
}

/* Producer: single puts and batches of up to 8, in sequence.  With
 * per_producer 0 it runs until the queue closes, idling once it has put
 * SEQ_MAX messages (its row of the receipt table is full). */
static int kid_produce(struct kctx *c)
{
	const struct mp *mp = c->arg;
	uint8_t m[8][SEQ_MAX_LEN];
	struct iovec v[8];
	uint32_t seq = 0, end = mp->per_producer ? mp->per_producer : SEQ_MAX;
	size_t done;

	if (mp->nospin)
		c->r.spin_ns = 0;

	for (unsigned it = 0; seq < end; it++) {
		size_t n = it % 3 == 0 ? 8 : 1;
		if (n > end - seq)
			n = end - seq;
		for (size_t i = 0; i < n; i++) {
			v[i].iov_base = m[i];
			v[i].iov_len = seq_make(m[i], mp->id, seq + (uint32_t)i);
		}
		int rc = ring_put(&c->r, v, n, &done, 10000);
		seq += (uint32_t)done;
		if (rc == SHMQ_ECLOSED && mp->per_producer == 0)
			return 0;
		KCHECK_EQ(rc, SHMQ_OK);
		KCHECK_EQ(done, n);
	}
	while (mp->per_producer == 0 &&
	       !(__atomic_load_n(&c->r.hdr->tail, __ATOMIC_ACQUIRE) &
		 SHMQ_TAIL_CLOSED))
		sleep_us(1000);
	return 0;
}

/* Consumer: single gets, batches, and now and then a buffer too small
 * for the next message.  Checks each message and each producer's order,
 * and records every receipt in the shared table. */
static int kid_consume(struct kctx *c)
{
	const struct mp *mp = c->arg;
	uint32_t next[MP_MAX_PROD] = { 0 };
	uint8_t buf[8 * SEQ_MAX_LEN];
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
			KCHECK(out[0].iov_len > size);
			KCHECK(out[0].iov_len <= SEQ_MAX_LEN);
			continue;
		}
		if (rc == SHMQ_EOS || rc == SHMQ_EOS_LOST)
			break;
		KCHECK_EQ(rc, SHMQ_OK);
		KCHECK(got >= 1 && got <= n);
		for (size_t i = 0; i < got; i++) {
			uint32_t id, seq;
			KCHECK(seq_parse(out[i].iov_base, out[i].iov_len,
					 mp->producers, &id, &seq) == 0);
			if (mp->strict)
				KCHECK_EQ(seq, next[id]);
			KCHECK(seq >= next[id]);
			next[id] = seq + 1;
			KCHECK(seq < (mp->per_producer ? mp->per_producer
							: SEQ_MAX));
			__atomic_fetch_add(&mp->seen[(size_t)id * SEQ_MAX +
						     seq], 1,
					   __ATOMIC_RELAXED);
		}
	}
	if (mp->strict)
		for (uint32_t id = 0; id < mp->producers; id++)
			KCHECK_EQ(next[id], mp->per_producer);
	return 0;
}

/* The first receipt count in seen[0..n) that is not `want` (or, with
 * want 2, that is 2 or more), or SIZE_MAX.  One assertion per table, not
 * one per entry: each passing Check assertion records a checkpoint. */
static size_t receipts_not(const uint8_t *seen, size_t n, unsigned want)
{
	for (size_t i = 0; i < n; i++)
		if (want == 2 ? seen[i] >= 2 : seen[i] != want)
			return i;
	return SIZE_MAX;
}

static void *shared_alloc(size_t len)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
		       MAP_SHARED | MAP_ANONYMOUS, -1, 0);

	ck_assert_ptr_ne(p, MAP_FAILED);
	return p;
}

/* Runs `np` producers and `nc` consumers over one auto-close queue: the
 * parent plays the daemon, removing each producer as it exits, so the
 * queue closes after the last one and the consumers drain to EOS. */
static void run_producers_consumers(uint32_t np, uint32_t nc, uint32_t per,
				    uint32_t capacity, int nospin)
{
	struct ring_config c = config(capacity, SEQ_MAX_LEN, 0,
				      SHMQ_CFG_AUTO_CLOSE);
	struct mp prod[MP_MAX_PROD], cons;
	struct kid *pk[MP_MAX_PROD], *ckids[16];
	size_t table = (size_t)np * SEQ_MAX;

	ck_assert_uint_le(per, SEQ_MAX);
	ck_assert_uint_le(nc, 16);
	q_create(&c);
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
		size_t bad = receipts_not(seen + (size_t)id * SEQ_MAX, per, 1);
		ck_assert_msg(bad == SIZE_MAX, "message %u/%zu received %u "
			      "times", id, bad,
			      (unsigned)seen[(size_t)id * SEQ_MAX + bad]);
	}
	struct shmq_stat st = stat_now();
	ck_assert_uint_eq(st.total_put, (uint64_t)np * per);
	ck_assert_uint_eq(st.total_got, (uint64_t)np * per);
	ck_assert_uint_eq(st.messages, 0);
	ck_assert_int_eq(st.producer_lost, 0);
	ck_assert_int_eq(ring_check(&R), SHMQ_OK);
	munmap((void *)seen, table);
}

/* One consumer sees each producer's messages consecutively, in order. */
START_TEST(test_fifo_per_producer)
{
	run_producers_consumers(3, 1, 4000, 16, 0);
}
END_TEST

/* Several of each: every message is received exactly once, and each
 * consumer still sees each producer's messages in increasing order. */
START_TEST(test_many_producers_consumers)
{
	run_producers_consumers(3, 3, 5000, 32, 0);
}
END_TEST

/* Capacity 1, one producer, one consumer, no spinning: every message is
 * a hand-off in which one side goes to sleep and the other must wake it,
 * with no further traffic to cover for a lost wake-up (which would show
 * as a timeout in a child).  Which interleavings occur is chance; each
 * run tries many. */
START_TEST(test_ping_pong)
{
	run_producers_consumers(1, 1, 20000, 1, 1);
}
END_TEST

/* ================================================================== */
/* Crashes inside the critical sections                               */

/* Kills a child parked at `point` inside put, and checks that the queue
 * is whole: earlier messages intact, the dead one's message visible
 * exactly if it had committed, and later puts and gets (in this and in a
 * process that was waiting for the lock) working. */
struct put_crash {
	int point;
	int visible;            /* the dead child's message(s) committed */
	size_t n;               /* messages in the dead child's batch */
};

static const struct put_crash put_crashes[] = {
	{ RING_HOOK_PUT_LOCKED, 0, 1 },
	{ RING_HOOK_PUT_COPIED, 0, 1 },
	{ RING_HOOK_PUT_COMMITTED, 1, 1 },
	{ RING_HOOK_PUT_LOCKED, 0, 3 },
	{ RING_HOOK_PUT_COPIED, 0, 3 },
	{ RING_HOOK_PUT_COMMITTED, 1, 3 },
};

START_TEST(test_crash_in_put)
{
	const struct put_crash *pc = &put_crashes[_i];
	struct ring_config c = config(8, 64, 0, 0);
	struct op dead = OP(.timeout = SHMQ_FOREVER, .park = AT(pc->point),
			    .n = pc->n, .msgs = { "dead0", "dead1", "dead2" });
	struct op waiter = OP(.timeout = WAIT_MS, .n = 1, .msgs = { "w" });
	char buf[64];
	size_t len;

	q_create(&c);
	put_ok(&R, "m0");
	put_ok(&R, "m1");
	expect_msg(&R, "m0");   /* head and tail both past zero */
	struct kid *k = kid_op(SHMQ_ROLE_PRODUCER, kid_put, &dead);
	kid_expect_parked(k);
	/* It holds put_lock: a try fails, a timed put times out, but the
	 * get side is independent and keeps working. */
	ck_assert_int_eq(put_str(&R, "x", SHMQ_NOWAIT), SHMQ_EAGAIN);
	ck_assert_int_eq(put_str(&R, "x", 20), SHMQ_ETIMEDOUT);
	ck_assert_uint_eq(stat_now().messages, 1 + (pc->visible ? pc->n : 0));
	expect_msg(&R, "m1");
	/* Another process queues up for the lock behind the parked one. */
	struct kid *w = kid_op(SHMQ_ROLE_PRODUCER, kid_put, &waiter);
	sleep_us(20000);        /* only makes "waiting in the lock" likely */
	kid_kill(k);
	ring_client_remove(&R, k->idx, 1);
	/* The waiter inherits the lock (EOWNERDEAD), repairs, puts. */
	struct kres res = kid_result(w);
	ck_assert_int_eq(res.rc, SHMQ_OK);
	put_ok(&R, "m2");
	if (pc->visible) {
		for (size_t i = 0; i < pc->n; i++)
			expect_msg(&R, dead.msgs[i]);
	}
	expect_msg(&R, "w");
	expect_msg(&R, "m2");
	ck_assert_int_eq(get_buf(&R, buf, sizeof(buf), &len, 0), SHMQ_EAGAIN);
	ck_assert_int_eq(ring_check(&R), SHMQ_OK);
	struct shmq_stat st = stat_now();
	ck_assert_uint_eq(st.total_put, 4 + (pc->visible ? pc->n : 0));
	ck_assert_uint_eq(st.total_put, st.total_got);
}
END_TEST

/* The same on the get side: a consumer killed before its commit leaves
 * the message(s) to the next consumer; killed after, they are gone and
 * the next consumer gets the following one. */
struct get_crash {
	int point;
	int consumed;
	size_t n;
};

static const struct get_crash get_crashes[] = {
	{ RING_HOOK_GET_LOCKED, 0, 1 },
	{ RING_HOOK_GET_COPIED, 0, 1 },
	{ RING_HOOK_GET_COMMITTED, 1, 1 },
	{ RING_HOOK_GET_COPIED, 0, 3 },
	{ RING_HOOK_GET_COMMITTED, 1, 3 },
};

START_TEST(test_crash_in_get)
{
	const struct get_crash *gc = &get_crashes[_i];
	struct ring_config c = config(8, 64, 0, 0);
	struct op dead = OP(.timeout = SHMQ_FOREVER, .park = AT(gc->point),
			    .n = gc->n);
	struct op next = OP(.timeout = WAIT_MS);
	static const char *const msgs[] = { "m0", "m1", "m2", "m3", "m4" };
	char buf[64];
	size_t len;

	q_create(&c);
	for (int i = 0; i < 4; i++)
		put_ok(&R, msgs[i]);
	struct kid *k = kid_op(SHMQ_ROLE_CONSUMER, kid_get, &dead);
	kid_expect_parked(k);
	/* It holds get_lock: other consumers wait, producers do not. */
	ck_assert_int_eq(get_buf(&R, buf, sizeof(buf), &len, SHMQ_NOWAIT),
			 SHMQ_EAGAIN);
	ck_assert_int_eq(get_buf(&R, buf, sizeof(buf), &len, 20),
			 SHMQ_ETIMEDOUT);
	put_ok(&R, "m4");
	struct kid *g = kid_op(SHMQ_ROLE_CONSUMER, kid_get, &next);
	sleep_us(20000);        /* only makes "waiting in the lock" likely */
	kid_kill(k);
	ring_client_remove(&R, k->idx, 1);
	size_t first = gc->consumed ? gc->n : 0;
	struct kres res = kid_result(g);
	ck_assert_int_eq(res.rc, SHMQ_OK);
	ck_assert_uint_eq(res.len, 2);
	ck_assert_mem_eq(res.data, msgs[first], 2);
	for (size_t i = first + 1; i < 5; i++)
		expect_msg(&R, msgs[i]);
	expect_empty(&R);
	ck_assert_int_eq(ring_check(&R), SHMQ_OK);
	struct shmq_stat st = stat_now();
	ck_assert_uint_eq(st.total_put, 5);
	ck_assert_uint_eq(st.total_got, 5);
}
END_TEST

/* A batch of large messages commits as it goes (every 32 KiB of
 * payload): the first messages of a batch reach consumers while its
 * caller is still copying the rest, and a caller killed mid-batch leaves
 * exactly what it had committed.  Three 20 KiB messages: the commit after
 * the second is the first of the batch. */
#define BIG 20000u

static void big_fill(uint8_t *m, unsigned tag)
{
	for (unsigned i = 0; i < BIG; i++)
		m[i] = (uint8_t)(tag * 31 + i * 7);
}

static int kid_put_big(struct kctx *c)
{
	static uint8_t m[3][BIG];
	struct iovec v[3];
	size_t done = 0;

	for (unsigned i = 0; i < 3; i++) {
		big_fill(m[i], i);
		v[i] = (struct iovec){ m[i], BIG };
	}
	park_arm(c, c->arg);
	KCHECK_EQ(ring_put(&c->r, v, 3, &done, SHMQ_FOREVER), SHMQ_OK);
	return 0;
}

static int kid_get_big(struct kctx *c)
{
	static uint8_t buf[4 * BIG];
	struct iovec out[3];
	size_t got = 0;

	park_arm(c, c->arg);
	KCHECK_EQ(ring_get(&c->r, buf, sizeof(buf), out, 3, &got,
			   SHMQ_FOREVER), SHMQ_OK);
	return 0;
}

static void expect_big(unsigned tag)
{
	static uint8_t want[BIG], buf[BIG];
	size_t len = 0;

	big_fill(want, tag);
	ck_assert_int_eq(get_buf(&R, buf, sizeof(buf), &len, WAIT_MS),
			 SHMQ_OK);
	ck_assert_uint_eq(len, BIG);
	ck_assert_msg(memcmp(buf, want, BIG) == 0, "message %u garbled", tag);
}

/* The same batches run to the end, across their partial commits: the
 * counts add up, every byte arrives, and the producers' hint names the
 * tail afterwards.  A batch larger than the room commits what fits. */
START_TEST(test_large_batch_completes)
{
	static uint8_t m[3][BIG], buf[4 * BIG];
	struct iovec v[3], out[3];
	size_t done = 0, got = 0;

	struct ring_config c = config(8, BIG, 0, 0);
	q_create(&c);
	for (unsigned i = 0; i < 3; i++) {
		big_fill(m[i], 20 + i);
		v[i] = (struct iovec){ m[i], BIG };
	}
	for (int round = 0; round < 3; round++) {
		ck_assert_int_eq(ring_put(&R, v, 3, &done, SHMQ_NOWAIT),
				 SHMQ_OK);
		ck_assert_uint_eq(done, 3);
		ck_assert_uint_eq(R.hdr->wpos_ticket,
				  R.hdr->tail & SHMQ_TAIL_COUNT);
		ck_assert_int_eq(ring_get(&R, buf, sizeof(buf), out, 3, &got,
					  SHMQ_NOWAIT), SHMQ_OK);
		ck_assert_uint_eq(got, 3);
		for (unsigned i = 0; i < 3; i++) {
			ck_assert_uint_eq(out[i].iov_len, BIG);
			ck_assert(memcmp(out[i].iov_base, m[i], BIG) == 0);
		}
		expect_empty(&R);
		ck_assert_int_eq(ring_check(&R), SHMQ_OK);
	}
	teardown();
	setup();

	/* Room for two: the first two are committed, the third waits. */
	c = config(2, BIG, 0, 0);
	q_create(&c);
	ck_assert_int_eq(ring_put(&R, v, 3, &done, SHMQ_NOWAIT), SHMQ_EAGAIN);
	ck_assert_uint_eq(done, 2);
	ck_assert_int_eq(ring_get(&R, buf, sizeof(buf), out, 3, &got,
				  SHMQ_NOWAIT), SHMQ_OK);
	ck_assert_uint_eq(got, 2);
	ck_assert(memcmp(out[1].iov_base, m[1], BIG) == 0);
	ck_assert_int_eq(ring_check(&R), SHMQ_OK);
}
END_TEST

START_TEST(test_large_batch_commits_as_it_goes)
{
	struct ring_config c = config(8, BIG, 0, 0);
	struct op at_commit = OP(.park = AT(RING_HOOK_PUT_COMMITTED));
	struct op at_take = OP(.park = AT(RING_HOOK_GET_COMMITTED));
	static uint8_t m[BIG];

	q_create(&c);
	/* Put side: parked inside the batch, after its first commit. */
	struct kid *k = kid_op(SHMQ_ROLE_PRODUCER, kid_put_big, &at_commit);
	kid_expect_parked(k);
	ck_assert_uint_eq(stat_now().messages, 2);
	expect_big(0);
	expect_big(1);
	kid_kill(k);
	ring_client_remove(&R, k->idx, 1);
	expect_empty(&R);       /* the third was never committed */

	/* Get side: three queued, a consumer parked after taking two. */
	for (unsigned i = 0; i < 3; i++) {
		big_fill(m, 10 + i);
		ck_assert_int_eq(put_buf(&R, m, BIG, SHMQ_NOWAIT), SHMQ_OK);
	}
	k = kid_op(SHMQ_ROLE_CONSUMER, kid_get_big, &at_take);
	kid_expect_parked(k);
	ck_assert_uint_eq(stat_now().messages, 1);
	kid_kill(k);
	ring_client_remove(&R, k->idx, 1);
	expect_big(12);
	expect_empty(&R);
	ck_assert_int_eq(ring_check(&R), SHMQ_OK);
	struct shmq_stat st = stat_now();
	ck_assert_uint_eq(st.total_put, 5);
	ck_assert_uint_eq(st.total_got, 5);
}
END_TEST

/* Regression: on a capacity-1 queue every new message lands in the one
 * slot that also records where the previous message ended.  A producer
 * killed after writing it but before committing must not leave the queue
 * unusable for everyone else. */
START_TEST(test_crash_put_capacity_one)
{
	struct ring_config c = config(1, 64, 0, 0);
	struct op dead = OP(.timeout = SHMQ_FOREVER,
			    .park = AT(RING_HOOK_PUT_COPIED), .n = 1,
			    .msgs = { "dead" });

	q_create(&c);
	put_ok(&R, "a");
	expect_msg(&R, "a");
	struct kid *k = kid_op(SHMQ_ROLE_PRODUCER, kid_put, &dead);
	kid_expect_parked(k);
	kid_kill(k);
	put_ok(&R, "b");
	expect_msg(&R, "b");
	put_ok(&R, "c");
	expect_msg(&R, "c");
	ck_assert_int_eq(ring_check(&R), SHMQ_OK);
}
END_TEST

/* Regression: a batch that fills an empty queue whose capacity is a
 * power of two writes, before its commit, the slot of the last committed
 * message; killed there, the producer must not break later puts. */
START_TEST(test_crash_batch_fills_queue)
{
	struct ring_config c = config(4, 64, 0, 0);
	struct op dead = OP(.timeout = SHMQ_FOREVER,
			    .park = AT(RING_HOOK_PUT_COPIED), .n = 4,
			    .msgs = { "d0", "d1", "d2", "d3" });

	q_create(&c);
	put_ok(&R, "a");
	expect_msg(&R, "a");
	struct kid *k = kid_op(SHMQ_ROLE_PRODUCER, kid_put, &dead);
	kid_expect_parked(k);
	kid_kill(k);
	put_ok(&R, "b");
	put_ok(&R, "c");
	expect_msg(&R, "b");
	expect_msg(&R, "c");
	expect_empty(&R);
	ck_assert_int_eq(ring_check(&R), SHMQ_OK);
}
END_TEST

/* Regression: producers trust a remembered head (head_hint) for room.  A
 * producer that had to look up the real head, wrote past the remembered
 * one's slot and died before its commit must not leave the next producer
 * reading that overwritten slot as corruption. */
START_TEST(test_crash_batch_stale_hint)
{
	struct ring_config c = config(3, 64, 0, 0);
	struct op dead = OP(.timeout = SHMQ_FOREVER,
			    .park = AT(RING_HOOK_PUT_COPIED), .n = 3,
			    .msgs = { "d0", "d1", "d2" });

	q_create(&c);
	put_ok(&R, "a");
	put_ok(&R, "b");
	expect_msg(&R, "a");
	expect_msg(&R, "b");
	struct kid *k = kid_op(SHMQ_ROLE_PRODUCER, kid_put, &dead);
	kid_expect_parked(k);
	kid_kill(k);
	put_ok(&R, "c");
	put_ok(&R, "d");
	expect_msg(&R, "c");
	expect_msg(&R, "d");
	expect_empty(&R);
	ck_assert_int_eq(ring_check(&R), SHMQ_OK);
}
END_TEST

/* A consumer killed while asleep in get (its "sleeper" bit still set in
 * the futex word, its sleep still counted) must not cost the other
 * sleepers their wake-ups, now or later; the daemon's removal of its
 * entry repairs the statistics. */
START_TEST(test_crash_asleep_in_get)
{
	struct ring_config c = config(4, 64, 0, 0);
	struct op get = OP(.timeout = SHMQ_FOREVER);

	q_create(&c);
	struct kid *a = kid_op(SHMQ_ROLE_CONSUMER, kid_get, &get);
	struct kid *b = kid_op(SHMQ_ROLE_CONSUMER, kid_get, &get);
	EVENTUALLY(entry_wait(a->idx) == SHMQ_WAIT_GET &&
		   entry_wait(b->idx) == SHMQ_WAIT_GET);
	kid_kill(a);
	ck_assert_uint_eq(stat_now().get_blocked, 2);   /* a's is stale */
	put_ok(&R, "x");
	struct kres res = kid_result(b);
	ck_assert_int_eq(res.rc, SHMQ_OK);
	ck_assert_mem_eq(res.data, "x", 1);
	ck_assert_uint_eq(stat_now().get_blocked, 1);
	ring_client_remove(&R, a->idx, 1);
	ck_assert_uint_eq(stat_now().get_blocked, 0);
	ck_assert_uint_eq(stat_now().consumers, 1);

	/* Later sleepers still wake. */
	struct kid *d = kid_op(SHMQ_ROLE_CONSUMER, kid_get, &get);
	EVENTUALLY(entry_wait(d->idx) == SHMQ_WAIT_GET);
	put_ok(&R, "y");
	res = kid_result(d);
	ck_assert_int_eq(res.rc, SHMQ_OK);
	ck_assert_mem_eq(res.data, "y", 1);
	expect_empty(&R);
}
END_TEST

/* Killed between announcing its sleep and sleeping (RING_HOOK_SLEEP), on
 * each side: the others still wake. */
START_TEST(test_crash_at_sleep_hook)
{
	struct ring_config c = config(2, 64, 0, 0);
	struct op get_dead = OP(.timeout = SHMQ_FOREVER,
				.park = AT(RING_HOOK_SLEEP));
	struct op get = OP(.timeout = SHMQ_FOREVER);
	struct op put_dead = OP(.timeout = SHMQ_FOREVER,
				.park = AT(RING_HOOK_SLEEP), .n = 1,
				.msgs = { "dead" });
	struct op put = OP(.timeout = SHMQ_FOREVER, .n = 1,
			   .msgs = { "live" });

	q_create(&c);
	struct kid *a = kid_op(SHMQ_ROLE_CONSUMER, kid_get, &get_dead);
	kid_expect_parked(a);
	kid_kill(a);
	ring_client_remove(&R, a->idx, 1);
	struct kid *b = kid_op(SHMQ_ROLE_CONSUMER, kid_get, &get);
	EVENTUALLY(entry_wait(b->idx) == SHMQ_WAIT_GET);
	put_ok(&R, "x");
	ck_assert_mem_eq(kid_result(b).data, "x", 1);

	put_ok(&R, "f1");
	put_ok(&R, "f2");
	a = kid_op(SHMQ_ROLE_PRODUCER, kid_put, &put_dead);
	kid_expect_parked(a);
	kid_kill(a);
	ring_client_remove(&R, a->idx, 1);
	b = kid_op(SHMQ_ROLE_PRODUCER, kid_put, &put);
	EVENTUALLY(entry_wait(b->idx) == SHMQ_WAIT_PUT);
	expect_msg(&R, "f1");
	ck_assert_int_eq(kid_result(b).rc, SHMQ_OK);
	expect_msg(&R, "f2");
	expect_msg(&R, "live");
	expect_empty(&R);
	ck_assert_uint_eq(stat_now().put_blocked, 0);
	ck_assert_uint_eq(stat_now().get_blocked, 0);
}
END_TEST

/* Two consumers asleep; a put wakes both; the first to take the lock is
 * killed holding it.  The other inherits the lock and the message. */
START_TEST(test_crash_woken_getter)
{
	struct ring_config c = config(4, 64, 0, 0);
	struct op dead = OP(.timeout = SHMQ_FOREVER,
			    .park = AT(RING_HOOK_GET_LOCKED), .park_nth = 2);
	struct op get = OP(.timeout = SHMQ_FOREVER);

	q_create(&c);
	struct kid *a = kid_op(SHMQ_ROLE_CONSUMER, kid_get, &dead);
	EVENTUALLY(entry_wait(a->idx) == SHMQ_WAIT_GET);
	struct kid *b = kid_op(SHMQ_ROLE_CONSUMER, kid_get, &get);
	EVENTUALLY(entry_wait(b->idx) == SHMQ_WAIT_GET);
	put_ok(&R, "only");
	/* a woke and parked with get_lock held, or b already took the
	 * message (a then parks on its next round of the lock). */
	kid_expect_parked(a);
	kid_kill(a);
	ring_client_remove(&R, a->idx, 1);
	struct kres res = kid_result(b);
	ck_assert_int_eq(res.rc, SHMQ_OK);
	ck_assert_mem_eq(res.data, "only", 4);
	expect_empty(&R);
}
END_TEST

/* close --now needs get_lock to count and drop; with the lock held by a
 * stalled consumer it reports EBUSY, and the next holder finishes the
 * discard after the stalled one is killed. */
START_TEST(test_crash_close_now_busy)
{
	struct ring_config c = config(8, 64, 0, 0);
	struct op dead = OP(.timeout = SHMQ_FOREVER,
			    .park = AT(RING_HOOK_GET_COPIED));
	uint64_t disc = 99;
	char buf[64];
	size_t len;

	q_create(&c);
	put_ok(&R, "a");
	put_ok(&R, "b");
	put_ok(&R, "c");
	struct kid *k = kid_op(SHMQ_ROLE_CONSUMER, kid_get, &dead);
	kid_expect_parked(k);
	ck_assert_int_eq(ring_close(&R, SHMQ_CLOSE_NOW, &disc), SHMQ_EBUSY);
	ck_assert_int_eq(put_str(&R, "late", 0), SHMQ_ECLOSED);
	ck_assert_int_eq(stat_now().state, SHMQ_STATE_CLOSED_NOW);
	kid_kill(k);
	ck_assert_int_eq(get_buf(&R, buf, sizeof(buf), &len, 0), SHMQ_EOS);
	struct shmq_stat st = stat_now();
	ck_assert_uint_eq(st.messages, 0);
	ck_assert_uint_eq(st.discarded, 3);
	ck_assert_uint_eq(st.total_got, 0);
	ck_assert_int_eq(ring_check(&R), SHMQ_OK);
}
END_TEST

/* A consumer that holds get_lock past close --now's patience, then goes
 * on normally: the close still takes effect at the next get. */
static int go_pipe[2] = { -1, -1 };

static int kid_view_then_leave(struct kctx *c)
{
	const void *data;
	size_t len;
	char ch;

	if (ring_view(&c->r, &data, &len, SHMQ_FOREVER) != SHMQ_OK)
		return KID_FAIL;
	if (write(c->evt, "P", 1) != 1 || read(go_pipe[0], &ch, 1) != 1)
		return KID_FAIL;
	return ring_release(&c->r, 1) == SHMQ_OK ? 0 : KID_FAIL;
}

START_TEST(test_close_now_outwaited)
{
	struct ring_config c = config(8, 64, 0, 0);
	uint64_t disc = 99;
	char buf[64];
	size_t len;

	q_create(&c);
	put_ok(&R, "a");
	put_ok(&R, "b");
	put_ok(&R, "c");
	ck_assert_int_eq(pipe(go_pipe), 0);
	struct kid *k = kid_start(SHMQ_ROLE_CONSUMER, kid_view_then_leave,
				  NULL);
	kid_expect_parked(k);
	ck_assert_int_eq(ring_close(&R, SHMQ_CLOSE_NOW, &disc), SHMQ_EBUSY);
	ck_assert_int_eq(write(go_pipe[1], "g", 1), 1);
	kid_ok(k);
	/* Nothing more is delivered: the discard happens now. */
	ck_assert_int_eq(get_buf(&R, buf, sizeof(buf), &len, 0), SHMQ_EOS);
	struct shmq_stat st = stat_now();
	ck_assert_uint_eq(st.messages, 0);
	ck_assert_uint_eq(st.discarded, 3);
	close(go_pipe[0]);
	close(go_pipe[1]);
}
END_TEST

/* A producer killed between its commit and its wake-up call must not
 * strand a consumer asleep on an empty queue: sleeps are capped, so the
 * sleeper looks again within about a second. */
START_TEST(test_crash_before_wakeup)
{
	struct ring_config c = config(8, 64, 0, 0);
	struct op sleeper = OP(.timeout = SHMQ_FOREVER);
	struct op dead = OP(.timeout = SHMQ_FOREVER,
			    .park = AT(RING_HOOK_PUT_COMMITTED), .n = 1,
			    .msgs = { "stranded?" });

	q_create(&c);
	struct kid *g = kid_op(SHMQ_ROLE_CONSUMER, kid_get, &sleeper);
	EVENTUALLY(entry_wait(g->idx) == SHMQ_WAIT_GET);
	struct kid *p = kid_op(SHMQ_ROLE_PRODUCER, kid_put, &dead);
	kid_expect_parked(p);           /* committed, nobody woken */
	kid_kill(p);
	/* No shmqd here to wake anyone on the producer's death. */
	struct kres res = kid_result(g);
	ck_assert_int_eq(res.rc, SHMQ_OK);
	ck_assert_mem_eq(res.data, "stranded?", 9);
}
END_TEST

/* SIGKILL at random instructions.  Producers and consumers run flat out
 * while the parent kills one at random every few hundred microseconds and
 * starts a replacement.  No message may be received twice or torn, each
 * consumer must see each producer in order, and afterwards the queue must
 * be consistent and every survivor must reach end of stream.  Which
 * instruction a kill hits is left to chance; the verdict is not. */
#define STORM_KILLS 60

START_TEST(test_crash_storm)
{
	struct ring_config c = config(8, SEQ_MAX_LEN, 0, 0);
	static struct mp prod[MP_MAX_PROD];
	struct mp cons;
	struct kid *live[4];
	uint32_t nprod = 0;
	size_t table = (size_t)MP_MAX_PROD * SEQ_MAX;

	q_create(&c);
	uint8_t *seen = shared_alloc(table);
	cons = (struct mp){ .producers = MP_MAX_PROD, .seen = seen };
	for (int i = 0; i < 4; i++) {
		if (i < 2) {
			prod[nprod] = cons;
			prod[nprod].id = nprod;
			live[i] = kid_start(SHMQ_ROLE_PRODUCER, kid_produce,
					    &prod[nprod]);
			nprod++;
		} else {
			live[i] = kid_start(SHMQ_ROLE_CONSUMER, kid_consume,
					    &cons);
		}
	}
	for (int kill_no = 0; kill_no < STORM_KILLS; kill_no++) {
		sleep_us((long)(rnd() % 3000));
		int i = (int)(rnd() % 4);
		kid_kill(live[i]);
		ring_client_remove(&R, live[i]->idx, 1);
		if (i < 2) {
			ck_assert_uint_lt(nprod, MP_MAX_PROD);
			prod[nprod] = cons;
			prod[nprod].id = nprod;
			live[i] = kid_start(SHMQ_ROLE_PRODUCER, kid_produce,
					    &prod[nprod]);
			nprod++;
		} else {
			live[i] = kid_start(SHMQ_ROLE_CONSUMER, kid_consume,
					    &cons);
		}
	}
	/* The survivors were not harmed: producers stop on close, the
	 * consumers drain to end of stream. */
	ck_assert_int_eq(ring_close(&R, SHMQ_CLOSE_DRAIN, NULL), SHMQ_OK);
	for (int i = 0; i < 4; i++)
		kid_ok(live[i]);
	struct shmq_stat st = stat_now();
	ck_assert_uint_eq(st.messages, 0);
	ck_assert_uint_eq(st.total_got, st.total_put);
	ck_assert_uint_gt(st.total_put, 0);
	ck_assert_int_eq(ring_check(&R), SHMQ_OK);
	size_t dup = receipts_not(seen, table, 2);
	ck_assert_msg(dup == SIZE_MAX, "message %zu/%zu received %u times",
		      dup / SEQ_MAX, dup % SEQ_MAX, (unsigned)seen[dup]);
	uint64_t received = 0;
	for (size_t i = 0; i < table; i++)
		received += seen[i];
	/* Consumers killed between a commit and their record lose only
	 * the record: never more receipts than gets. */
	ck_assert_uint_le(received, st.total_got);
	ck_assert_uint_gt(received, 0);
	munmap((void *)seen, table);
}
END_TEST

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
	return config(63, 64, 0, 0);
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
		ck_assert_int_eq(put_buf(&R, m, (size_t)len, 0), SHMQ_OK);
		if (i < 80)
			ck_assert_int_eq(get_buf(&R, m, sizeof(m),
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

	q_create(&c);
	ck_assert_uint_eq(R.seg_size - (uint64_t)(R.data - S.mem),
			  R.data_size);
	for (size_t f = 0; f < sizeof(hdr_fields) / sizeof(hdr_fields[0]);
	     f++) {
		const struct field *fd = &hdr_fields[f];
		uint8_t *p = S.mem + fd->off;
		q_reformat(&c);
		uint64_t orig = peek(p, fd->width);
		size_t n = bad_values(orig, vals);
		for (size_t i = 0; i < n; i++) {
			uint64_t v = fd->width == 4 ? (uint32_t)vals[i]
						    : vals[i];
			if (v == orig)
				continue;
			q_reformat(&c);
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

	q_create(&c);
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
	q_reformat(&c);
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

	q_create(&c);
	for (size_t f = 0; f < sizeof(idx_fields) / sizeof(idx_fields[0]);
	     f++) {
		const struct field *fd = &idx_fields[f];
		uint8_t *p = S.mem + fd->off;
		q_reformat(&c);
		corrupt_fill();
		uint64_t orig = peek(p, fd->width);
		size_t n = bad_values(orig, vals);
		for (size_t i = 0; i < n; i++) {
			q_reformat(&c);
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

	q_create(&c);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct field *fd = &slot_fields[cases[i].field];
		q_reformat(&c);
		corrupt_fill();
		uint64_t head = R.hdr->head;
		/* A message of 40 bytes at head, so that "pos 4080" runs
		 * past the end. */
		slot_of(head)->len = 40;
		poke((uint8_t *)slot_of(head) + fd->off, fd->width,
		     cases[i].value);
		ck_assert_int_eq(ring_check(&R), SHMQ_ECORRUPT);
		ck_assert_int_eq(get_buf(&R, buf, sizeof(buf), &len, 0),
				 SHMQ_ECORRUPT);
		ck_assert_uint_eq(R.hdr->head, head);
		ck_assert_uint_eq(stat_now().messages, 20);
		exercise(&R, 0);
	}

	/* Where the next message goes comes from the producers' hint, or,
	 * when the hint is not for the tail (after a producer died holding
	 * the lock), from the newest message's slot: if either is damaged,
	 * put refuses rather than guess. */
	q_reformat(&c);
	corrupt_fill();
	uint64_t tail = R.hdr->tail;
	ck_assert_uint_eq(R.hdr->wpos_ticket, tail);
	R.hdr->wpos_pos = 4096 + 16;
	ck_assert_int_eq(put_str(&R, "p", 0), SHMQ_ECORRUPT);
	R.hdr->wpos_pos = 8;
	ck_assert_int_eq(put_str(&R, "p", 0), SHMQ_ECORRUPT);
	ck_assert_uint_eq(R.hdr->tail, tail);
	R.hdr->wpos_ticket = UINT64_MAX;
	slot_of(tail - 1)->pos = 4096 + 16;
	ck_assert_int_eq(put_str(&R, "p", 0), SHMQ_ECORRUPT);
	ck_assert_uint_eq(R.hdr->tail, tail);
	slot_of(tail - 1)->pos = 0;
	slot_of(tail - 1)->ticket = tail + 5;
	ck_assert_int_eq(put_str(&R, "p", 0), SHMQ_ECORRUPT);
	ck_assert_uint_eq(R.hdr->tail, tail);
}
END_TEST

/* A producers' hint that says "no room" where the slots say there is
 * (here: a byte count far ahead, on a queue with a byte budget) must not
 * make a put and its wait disagree for ever: the put drops the hint, and
 * a put that waits is bounded by its timeout whatever the segment says. */
START_TEST(test_corrupt_wpos_hint_no_spin)
{
	struct ring_config c = config(8, 64, 256, 0);

	q_create(&c);
	put_ok(&R, "one");
	put_ok(&R, "two");
	R.hdr->wpos_bytes = UINT64_MAX / 2;
	/* Without the hint dropped: spins until its timeout, then
	 * SHMQ_ETIMEDOUT (or for ever, had the wait no deadline check). */
	ck_assert_int_eq(put_str(&R, "three", 2000), SHMQ_OK);
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
	struct ring_config c = config(64, 64, 0, 0);
	struct op op = OP(.timeout = SHMQ_FOREVER);

	q_create(&c);
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
	struct ring_config c = config(8, 64, 0, 0);
	char buf[64];
	size_t len;

	q_create(&c);
	ck_assert_uint_gt(R.stride, 0);
	R.spin_ns = 2000;
	ck_assert_int_eq(get_buf(&R, buf, sizeof(buf), &len, 5),
			 SHMQ_ETIMEDOUT);
	ck_assert_uint_gt(R.stride_skip[1], 0);
	ck_assert_uint_eq(R.stride_skip[0], 0);

	for (int i = 0; i < 8; i++)
		put_ok(&R, "x");
	R.spin_ns = 2000;
	ck_assert_int_eq(put_str(&R, "y", 5), SHMQ_ETIMEDOUT);
	ck_assert_uint_gt(R.stride_skip[0], 0);
}
END_TEST

/* Any value in any field of any queued slot, and of the slots around. */
START_TEST(test_corrupt_slots_random)
{
	struct ring_config c = corrupt_config();
	uint64_t vals[32];

	q_create(&c);
	for (int iter = 0; iter < 300; iter++) {
		q_reformat(&c);
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

	q_create(&c);
	size_t tables_end = (size_t)(R.data - S.mem);
	for (int iter = 0; iter < 400; iter++) {
		q_reformat(&c);
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

/* Messages up to SHMQ_INLINE_MAX bytes live in their slot, longer ones in
 * the data ring: mixed sizes around the boundary, over many laps of both
 * rings, singly and in batches, keep their order and their bytes. */
/* Consumers learn of a message from its slot's published mark and look
 * at `tail` only when the mark is missing.  A producer killed between its
 * commit and the mark must not make its message invisible: not to a get
 * that may not wait, and not to one that waits (which trusts the marks
 * at first, then looks at tail before it sleeps). */
static int sleeps;

static void count_sleeps(enum ring_hook_point p)
{
	if (p == RING_HOOK_SLEEP)
		sleeps++;
}

START_TEST(test_unpublished_commit_delivered)
{
	struct ring_config c = config(4, 64, 0, 0);
	char buf[64];
	size_t len;

	q_create(&c);
	sleeps = 0;
	ring_test_hook = count_sleeps;
	for (int timeout = SHMQ_NOWAIT; timeout <= WAIT_MS;
	     timeout += WAIT_MS) {
		put_ok(&R, "a");
		put_ok(&R, "b");
		uint64_t head = R.hdr->head;
		ck_assert_uint_eq(R.slots[head & R.mask].published, head);
		R.slots[head & R.mask].published = SHMQ_UNPUBLISHED;
		R.slots[(head + 1) & R.mask].published = SHMQ_UNPUBLISHED;
		ck_assert_int_eq(get_buf(&R, buf, sizeof(buf), &len, timeout),
				 SHMQ_OK);
		ck_assert(len == 1 && buf[0] == 'a');
		ck_assert_int_eq(get_buf(&R, buf, sizeof(buf), &len, timeout),
				 SHMQ_OK);
		ck_assert(len == 1 && buf[0] == 'b');
		/* Found by a look at tail, never by sleeping until the 1 s
		 * cap: the look before sleeping must already find them. */
		ck_assert_int_eq(sleeps, 0);
		expect_empty(&R);
	}
	ring_test_hook = NULL;
}
END_TEST

START_TEST(test_inline_boundary)
{
	static const size_t sizes[] = { 0, 1, 23, 24, 25, 31, 32, 40, 63, 64 };
	const size_t nsizes = sizeof(sizes) / sizeof(sizes[0]);
	struct ring_config c = config(4, 64, 0, 0);
	uint8_t msg[64], buf[64 * 4 + 64];
	struct iovec v[3], out[3];
	size_t len, done, got;

	q_create(&c);
	for (size_t i = 0; i < 200; i++) {
		size_t n = sizes[i % nsizes];
		for (size_t b = 0; b < n; b++)
			msg[b] = (uint8_t)(i * 7 + b);
		ck_assert_int_eq(put_buf(&R, msg, n, 0), SHMQ_OK);
		ck_assert_int_eq(get_buf(&R, buf, sizeof(buf), &len, 0), SHMQ_OK);
		ck_assert_uint_eq(len, n);
		ck_assert_mem_eq(buf, msg, n);
	}
	/* Every inline length, from the very end of a page followed by an
	 * inaccessible one: put reads exactly the message's bytes (into
	 * registers, a word at a time), never past them. */
	long pg = sysconf(_SC_PAGESIZE);
	uint8_t *two = mmap(NULL, 2 * (size_t)pg, PROT_READ | PROT_WRITE,
			    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ck_assert_ptr_ne(two, MAP_FAILED);
	ck_assert_int_eq(mprotect(two + pg, (size_t)pg, PROT_NONE), 0);
	for (size_t n = 0; n <= SHMQ_INLINE_MAX + 1; n++) {
		uint8_t *end = two + pg - n;
		for (size_t b = 0; b < n; b++)
			end[b] = (uint8_t)(n * 13 + b + 1);
		ck_assert_int_eq(put_buf(&R, end, n, 0), SHMQ_OK);
		memset(buf, 0xee, sizeof(buf));
		ck_assert_int_eq(get_buf(&R, buf, sizeof(buf), &len, 0), SHMQ_OK);
		ck_assert_uint_eq(len, n);
		ck_assert_mem_eq(buf, end, n);
	}
	munmap(two, 2 * (size_t)pg);
	/* Batches of three: slot, ring and slot again, in one call. */
	for (size_t i = 0; i < 60; i++) {
		uint8_t m[3][64];
		for (int k = 0; k < 3; k++) {
			size_t n = sizes[(i + (size_t)k * 3) % nsizes];
			memset(m[k], 'a' + k, n);
			v[k].iov_base = m[k];
			v[k].iov_len = n;
		}
		ck_assert_int_eq(ring_put(&R, v, 3, &done, 0), SHMQ_OK);
		ck_assert_uint_eq(done, 3);
		ck_assert_int_eq(ring_get(&R, buf, sizeof(buf), out, 3, &got, 0),
				 SHMQ_OK);
		ck_assert_uint_eq(got, 3);
		for (int k = 0; k < 3; k++) {
			ck_assert_uint_eq(out[k].iov_len, v[k].iov_len);
			ck_assert_mem_eq(out[k].iov_base, m[k], v[k].iov_len);
		}
	}
	/* A full check with short and long messages queued side by side
	 * (inline ones take no room in the data ring). */
	for (size_t k = 0; k < 4; k++) {
		memset(msg, 'q', sizeof(msg));
		ck_assert_int_eq(put_buf(&R, msg, k % 2 ? 40 : 8, 0), SHMQ_OK);
	}
	ck_assert_int_eq(ring_check(&R), SHMQ_OK);
	for (size_t k = 0; k < 4; k++) {
		ck_assert_int_eq(get_buf(&R, buf, sizeof(buf), &len, 0), SHMQ_OK);
		ck_assert_uint_eq(len, k % 2 ? 40 : 8);
	}
	ck_assert_int_eq(ring_check(&R), SHMQ_OK);
	expect_empty(&R);
}
END_TEST

/* ================================================================== */
/* Zero copy                                                          */

START_TEST(test_zero_copy)
{
	struct ring_config c = config(2, 32, 0, 0);
	const void *view;
	void *data;
	size_t len;

	q_create(&c);
	/* Written in place, visible only once committed. */
	ck_assert_int_eq(ring_reserve(&R, 5, &data, 0), SHMQ_OK);
	memcpy(data, "hello", 5);
	ck_assert_uint_eq(stat_now().messages, 0);
	ck_assert_int_eq(ring_reserve(&R, 1, &data, 0), SHMQ_EINVAL);
	ck_assert_int_eq(ring_commit(&R, 0), SHMQ_OK);
	ck_assert_int_eq(ring_commit(&R, 0), SHMQ_EINVAL);
	/* Cancelled: never seen. */
	ck_assert_int_eq(ring_reserve(&R, 3, &data, 0), SHMQ_OK);
	memcpy(data, "bad", 3);
	ck_assert_int_eq(ring_commit(&R, 1), SHMQ_OK);
	ck_assert_uint_eq(stat_now().messages, 1);
	ck_assert_int_eq(ring_reserve(&R, 33, &data, 0), SHMQ_E2BIG);
	put_ok(&R, "two");
	ck_assert_int_eq(ring_reserve(&R, 1, &data, 0), SHMQ_EAGAIN);
	ck_assert_int_eq(ring_reserve(&R, 1, &data, 20), SHMQ_ETIMEDOUT);

	/* Read in place; left, it stays first; taken, it is gone. */
	ck_assert_int_eq(ring_view(&R, &view, &len, 0), SHMQ_OK);
	ck_assert_uint_eq(len, 5);
	ck_assert_mem_eq(view, "hello", 5);
	ck_assert_int_eq(ring_view(&R, &view, &len, 0), SHMQ_EINVAL);
	ck_assert_int_eq(ring_release(&R, 1), SHMQ_OK);
	ck_assert_int_eq(ring_release(&R, 1), SHMQ_EINVAL);
	ck_assert_int_eq(ring_view(&R, &view, &len, 0), SHMQ_OK);
	ck_assert_mem_eq(view, "hello", 5);
	ck_assert_int_eq(ring_release(&R, 0), SHMQ_OK);
	expect_msg(&R, "two");
	ck_assert_int_eq(ring_view(&R, &view, &len, 0), SHMQ_EAGAIN);

	/* Closed while reserved: the commit fails and nothing appears. */
	ck_assert_int_eq(ring_reserve(&R, 4, &data, 0), SHMQ_OK);
	memcpy(data, "late", 4);
	ck_assert_int_eq(ring_close(&R, SHMQ_CLOSE_DRAIN, NULL), SHMQ_OK);
	ck_assert_int_eq(ring_commit(&R, 0), SHMQ_ECLOSED);
	ck_assert_int_eq(ring_reserve(&R, 1, &data, 0), SHMQ_ECLOSED);
	ck_assert_int_eq(ring_view(&R, &view, &len, SHMQ_FOREVER), SHMQ_EOS);
}
END_TEST

static int kid_reserve_and_park(struct kctx *c)
{
	void *data;

	if (ring_reserve(&c->r, 4, &data, SHMQ_FOREVER) != SHMQ_OK)
		return KID_FAIL;
	memcpy(data, "dead", 4);
	if (write(c->evt, "P", 1) != 1)
		return KID_FAIL;
	for (;;)
		pause();
}

static int kid_view_and_park(struct kctx *c)
{
	const void *data;
	size_t len;

	if (ring_view(&c->r, &data, &len, SHMQ_FOREVER) != SHMQ_OK)
		return KID_FAIL;
	if (write(c->evt, "P", 1) != 1)
		return KID_FAIL;
	for (;;)
		pause();
}

/* A process killed between reserve and commit, or between view and take,
 * holds a lock when it dies; the next holder repairs, and the queue is as
 * if the dead one had never started. */
START_TEST(test_crash_zero_copy)
{
	struct ring_config c = config(4, 32, 0, 0);

	q_create(&c);
	put_ok(&R, "m0");
	struct kid *k = kid_start(SHMQ_ROLE_PRODUCER, kid_reserve_and_park,
				  NULL);
	kid_expect_parked(k);
	ck_assert_int_eq(put_str(&R, "x", SHMQ_NOWAIT), SHMQ_EAGAIN);
	kid_kill(k);
	ring_client_remove(&R, k->idx, 1);
	put_ok(&R, "m1");               /* inherits put_lock, repairs */
	expect_msg(&R, "m0");
	expect_msg(&R, "m1");           /* "dead" never appeared */
	expect_empty(&R);

	put_ok(&R, "m2");
	k = kid_start(SHMQ_ROLE_CONSUMER, kid_view_and_park, NULL);
	kid_expect_parked(k);
	kid_kill(k);
	ring_client_remove(&R, k->idx, 1);
	expect_msg(&R, "m2");           /* still there for the next one */
	expect_empty(&R);
	ck_assert_int_eq(ring_check(&R), SHMQ_OK);
}
END_TEST

/* ================================================================== */

static TCase *tcase(Suite *s, const char *name, double timeout)
{
	TCase *tc = tcase_create(name);

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, timeout);
	suite_add_tcase(s, tc);
	return tc;
}

static Suite *ring_suite(void)
{
	Suite *s = suite_create("ring");
	TCase *tc;

	tc = tcase(s, "format", 5);
	tcase_add_test(tc, test_plan_rejects_bad_config);
	tcase_add_test(tc, test_format_attach_stat);

	tc = tcase(s, "putget", 10);
	tcase_add_test(tc, test_put_get_fifo);
	tcase_add_test(tc, test_nowait_full_and_empty);
	tcase_add_test(tc, test_timeouts);
	tcase_add_test(tc, test_full_put_blocks);
	tcase_add_test(tc, test_empty_get_blocks);
	tcase_add_test(tc, test_byte_budget);
	tcase_add_test(tc, test_byte_budget_blocks);
	tcase_add_test(tc, test_too_big);
	tcase_add_test(tc, test_binary_and_empty_messages);
	tcase_add_test(tc, test_emsgsize_keeps_message);

	tc = tcase(s, "batch", 10);
	tcase_add_test(tc, test_batch_put_get);
	tcase_add_test(tc, test_batch_blocks_across_processes);
	tcase_add_test(tc, test_batch_get_blocks);
	tcase_add_test(tc, test_inline_boundary);
	tcase_add_test(tc, test_unpublished_commit_delivered);

	tc = tcase(s, "zerocopy", 10);
	tcase_add_test(tc, test_zero_copy);
	tcase_add_test(tc, test_crash_zero_copy);

	tc = tcase(s, "close", 10);
	tcase_add_test(tc, test_close_drain_then_eos);
	tcase_add_test(tc, test_close_now_discards);
	tcase_add_test(tc, test_close_idempotent);
	tcase_add_test(tc, test_close_wakes_putters);
	tcase_add_test(tc, test_close_wakes_getters);
	tcase_add_test(tc, test_close_now_wakes_everyone);

	tc = tcase(s, "producers", 10);
	tcase_add_test(tc, test_stat_counts);
	tcase_add_test(tc, test_client_table);
	tcase_add_test(tc, test_auto_close);
	tcase_add_test(tc, test_no_auto_close_without_flag);
	tcase_add_test(tc, test_producer_died_eos_lost);

	tc = tcase(s, "multiproc", 30);
	tcase_add_test(tc, test_fifo_per_producer);
	tcase_add_test(tc, test_many_producers_consumers);
	tcase_add_test(tc, test_ping_pong);

	tc = tcase(s, "crash", 20);
	tcase_add_loop_test(tc, test_crash_in_put, 0,
			    sizeof(put_crashes) / sizeof(put_crashes[0]));
	tcase_add_loop_test(tc, test_crash_in_get, 0,
			    sizeof(get_crashes) / sizeof(get_crashes[0]));
	tcase_add_test(tc, test_crash_put_capacity_one);
	tcase_add_test(tc, test_crash_batch_fills_queue);
	tcase_add_test(tc, test_crash_batch_stale_hint);
	tcase_add_test(tc, test_large_batch_commits_as_it_goes);
	tcase_add_test(tc, test_large_batch_completes);
	tcase_add_test(tc, test_crash_asleep_in_get);
	tcase_add_test(tc, test_crash_at_sleep_hook);
	tcase_add_test(tc, test_crash_woken_getter);
	tcase_add_test(tc, test_crash_close_now_busy);
	tcase_add_test(tc, test_close_now_outwaited);
	tcase_add_test(tc, test_crash_before_wakeup);
	tcase_add_test(tc, test_crash_storm);

	tc = tcase(s, "corrupt", 30);
	tcase_add_test(tc, test_corrupt_header);
	tcase_add_test(tc, test_corrupt_header_after_attach);
	tcase_add_test(tc, test_corrupt_head_tail);
	tcase_add_test(tc, test_corrupt_slot_refused);
	tcase_add_test(tc, test_corrupt_wpos_hint_no_spin);
	tcase_add_test(tc, test_forged_stride_mark_no_spin);
	tcase_add_test(tc, test_stride_missed_in_short_spin);
	tcase_add_test(tc, test_corrupt_slots_random);
	tcase_add_test(tc, test_corrupt_random_bytes);
	return s;
}

int main(void)
{
	const char *seed = getenv("SHMQ_TEST_SEED");
	SRunner *sr = srunner_create(ring_suite());
	int failed;

	/* Reproducible by default; any seed can be replayed. */
	if (seed)
		rng_state = strtoull(seed, NULL, 0) | 1;
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
