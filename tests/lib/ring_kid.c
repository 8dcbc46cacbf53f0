/*
 * ring_kid.c - child processes on the ring suites' segment, and parking
 * one at a hook point (see ring_kid.h).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "chan.h"
#include "checks.h"
#include "ring_kid.h"

static struct kid kids[MAX_KIDS];
static int nkids;

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
	uint8_t *mem = map_guarded(S.fd, S.size, &region, &region_len);
	if (mem == NULL || ring_attach(&c.r, mem, S.size) != SHMQ_OK)
		_exit(KID_SETUP);
	if (msg[0] != NO_ENTRY && ring_client_bind(&c.r, msg[0], msg[1]))
		_exit(KID_SETUP);
	_exit(fn(&c));
}

struct kid *kid_start(uint32_t role, kid_fn fn, void *arg)
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

void kid_ok(struct kid *k)
{
	int status = kid_wait(k);

	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		      "child failed: %s %d",
		      WIFEXITED(status) ? "exit" : "signal",
		      WIFEXITED(status) ? WEXITSTATUS(status)
					: WTERMSIG(status));
}

void kid_kill(struct kid *k)
{
	ck_assert_int_eq(kill(k->pid, SIGKILL), 0);
	int status = kid_wait(k);
	ck_assert_msg(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL,
		      "child did not die of SIGKILL (status %#x)", status);
}

/* --- parking at a hook point ------------------------------------- */

static int park_fd = -1;
static int park_at = -1;
static int park_nth = 1;        /* park at the nth hit of park_at */
static int park_hits;
static const struct ring *park_until_now;    /* see struct op */

/* Announces "parked" on the event pipe and stops right there, inside the
 * critical section, until the parent kills us (or, until_now, until
 * somebody closes the queue with close --now: the child's alarm bounds
 * the wait). */
static void park_hook(enum ring_hook_point p)
{
	if ((int)p != park_at || ++park_hits < park_nth)
		return;
	if (write(park_fd, "P", 1) != 1)
		_exit(CHILD_FAIL);
	if (park_until_now) {
		const struct timespec tick = { 0, 1000000 };
		while (!(__atomic_load_n(&park_until_now->hdr->tail,
					 __ATOMIC_ACQUIRE) & SHMQ_TAIL_NOW))
			nanosleep(&tick, NULL);
		park_at = -1;
		return;
	}
	for (;;)
		pause();
}

void park_arm(struct kctx *c, const struct op *op)
{
	if (op->park == 0)
		return;
	park_fd = c->evt;
	park_at = op->park - 1;
	park_nth = op->park_nth > 0 ? op->park_nth : 1;
	park_hits = 0;
	park_until_now = op->until_now ? &c->r : NULL;
	ring_test_hook = park_hook;
}

static int kid_report(struct kctx *c, const struct kres *res)
{
	return write(c->evt, res, sizeof(*res)) == (ssize_t)sizeof(*res)
		       ? 0 : CHILD_FAIL;
}

int kid_put(struct kctx *c)
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

int kid_get(struct kctx *c)
{
	const struct op *op = c->arg;
	struct iovec out[MAX_BATCH];
	struct kres res = { 0 };
	static char buf[1 << 17];       /* batches of large messages */
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

int kid_close_now(struct kctx *c)
{
	struct kres res = { 0 };
	uint64_t n = 0;

	res.rc = ring_close(&c->r, SHMQ_CLOSE_NOW, &n);
	res.count = (uint32_t)n;
	return kid_report(c, &res);
}

struct kid *kid_op(uint32_t role, kid_fn fn, struct op *op)
{
	return kid_start(role, fn, op);
}

struct kres kid_result(struct kid *k)
{
	struct kres res;

	ck_assert_msg(read_timed(k->evt, &res, sizeof(res)) == 0,
		      "no report from child %d", (int)k->pid);
	kid_ok(k);
	return res;
}

void kid_silent(struct kid *k)
{
	struct pollfd pfd = { .fd = k->evt, .events = POLLIN };

	ck_assert_int_eq(poll(&pfd, 1, 0), 0);
}

void kid_expect_parked(struct kid *k)
{
	char ch = 0;

	ck_assert_msg(read_timed(k->evt, &ch, 1) == 0 && ch == 'P',
		      "child %d did not park", (int)k->pid);
}

/* --- the fixture --------------------------------------------------- */

void ring_setup(void)
{
	seg_setup();
	nkids = 0;
	ring_test_hook = NULL;
}

void ring_teardown(void)
{
	for (int i = 0; i < nkids; i++) {
		if (kids[i].pid > 0) {
			kill(kids[i].pid, SIGKILL);
			waitpid(kids[i].pid, NULL, 0);
		}
		close(kids[i].evt);
	}
	nkids = 0;
	seg_release();
}

TCase *ring_tcase(Suite *s, const char *name, double timeout)
{
	TCase *tc = tcase_create(name);

	tcase_add_checked_fixture(tc, ring_setup, ring_teardown);
	tcase_set_timeout(tc, timeout);
	suite_add_tcase(s, tc);
	return tc;
}
