/*
 * check_deadlock.c - shmqd finding, naming and breaking deadlocks.
 *
 * Owns the promises of "Deadlocks" in shmq.h: processes that wait for
 * each other in shmq are reported within twice the deadlock timeout, by
 * the log (once) and by shmq_deadlocks(), with the right processes,
 * queues and freers, and those blocked behind them; with the fail policy
 * exactly one blocked call returns SHMQ_EDEADLK and the rest go on; a
 * restarted daemon finds a deadlock again; and none of the situations
 * that only look alike is ever reported (a slow consumer, a producer
 * busy outside shmq, another thread running, a stopped process, nobody
 * attached on the other side, a waiter killed).  Every "never" test waits
 * at least three timeouts after shmqd started watching the queue (its
 * debug log says so: the silence is not for want of looking), and most
 * then turn the situation into a real deadlock, which must be found: a
 * detector that finds nothing fails them.
 *
 * Rules every integration suite keeps (tests/lib/): it runs the real
 * built shmqd (harness.h) and real client processes on real shared
 * memory, nothing mocked; every test is bounded in time (Check's timeout,
 * and a timeout on every blocking call); no verdict rests on a sleep
 * (channels carry handshakes; WAIT_UNTIL polls, with a bound, what offers
 * none), except the silences, which are the point; and it leaves nothing
 * behind (daemon_cleanup() in the test, harness_sweep() after a test that
 * died).  Children never call ck_assert: they exit CHILD_FAIL, and the
 * test's CHILD_OK fails.
 */
#define _GNU_SOURCE
#include <check.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lib/chan.h"
#include "lib/checks.h"
#include "lib/clock.h"
#include "lib/harness.h"
#include "lib/queue.h"
#include "lib/runner.h"
#include "lib/segment.h"
#include "lib/users.h"

/* The daemon's deadlock timeout in these tests, and how long a silence
 * lasts: three timeouts after shmqd began to watch. */
#define TIMEOUT_MS 300
#define SILENCE_MS (3 * TIMEOUT_MS + 100)

static char *const dl_args[] = { "--deadlock-timeout", "0.3", "-v", NULL };

/* How many times `needle` occurs in the file at `path`. */
static int count_in_file(const char *path, const char *needle)
{
	FILE *f = fopen(path, "r");
	char line[8192];
	int n = 0;

	if (f == NULL)
		return 0;
	while (fgets(line, sizeof(line), f))
		for (char *p = line; (p = strstr(p, needle)) != NULL; p++)
			n++;
	fclose(f);
	return n;
}

/* How many lines of the file at `path` start with `prefix`. */
static int lines_starting(const char *path, const char *prefix)
{
	FILE *f = fopen(path, "r");
	char line[8192];
	int n = 0;

	if (f == NULL)
		return 0;
	while (fgets(line, sizeof(line), f))
		n += strncmp(line, prefix, strlen(prefix)) == 0;
	fclose(f);
	return n;
}

/* Rows shmq_deadlocks() lists now (freed by the caller). */
static size_t deadlocks(struct shmq_deadlock_wait **rows)
{
	size_t n;

	RC_EQ(shmq_deadlocks(rows, &n), SHMQ_OK);
	return n;
}

static size_t deadlock_count(void)
{
	struct shmq_deadlock_wait *rows;
	size_t n = deadlocks(&rows);

	free(rows);
	return n;
}

/* Fills a fresh queue of capacity `cap` to the brim, without keeping a
 * handle: a process that has it open and is not blocked could close it,
 * and shmqd would rightly see no deadlock. */
static void create_full_mode(const char *name, uint32_t cap, uint32_t mode,
			     uint32_t flags)
{
	create_q(name, cap, 64, mode, flags);
	shmq_t *q = open_q(name, SHMQ_PRODUCER);
	for (uint32_t i = 0; i < cap; i++)
		put_str(q, "token");
	shmq_detach(q);
}

static void create_full(const char *name, uint32_t cap, uint32_t flags)
{
	create_full_mode(name, cap, 0600, flags);
}

/* Waits until shmqd watches `queue` (it logs that at debug level). */
static void wait_watched(struct daemon *d, const char *queue)
{
	char needle[300];

	snprintf(needle, sizeof(needle), "watching '%s'", queue);
	EVENTUALLY(file_contains(d->log, needle));
}

/* ======================================================================= */
/* The processes                                                           */

/*
 * A stage: a process named `comm` with queue `in` open as a consumer and
 * `out` as a producer, and `hold_in` (`hold_out`) open as a consumer
 * (producer) that it never uses; any may be NULL.  It answers 'r' once
 * open; then, per command:
 *   'l'  answers 'b', then runs `rounds` rounds of "put to out, get from
 *        in" (each with SHMQ_FOREVER), and exits with the number of calls
 *        that returned SHMQ_EDEADLK
 *   'p'  answers 'b', puts one message to out (with put_timeout),
 *        answers 'k' (or 'd' if the put returned SHMQ_EDEADLK, 't' if
 *        it timed out)
 *   'g'  answers 'b', gets one message from in, answers 'k' (or 'd')
 * Any other status of a call fails it.
 */
struct stage_cfg {
	const char *comm, *in, *out, *hold_in, *hold_out;
	int rounds;
	int put_timeout;            /* of 'p', in ms; 0: SHMQ_FOREVER */
};

struct stage {
	pid_t pid;
	struct chan ch;
};

static int count_rc(int rc, int *dead)
{
	if (rc == SHMQ_EDEADLK) {
		(*dead)++;
		return SHMQ_OK;
	}
	return rc;
}

static void stage_run(struct chan *ch, const struct stage_cfg *c)
{
	shmq_t *qi = NULL, *qo = NULL, *h;
	char buf[64];
	size_t len;
	int dead = 0;

	prctl(PR_SET_NAME, c->comm);
	if (c->in && c->out && strcmp(c->in, c->out) == 0) {
		CHILD_RC(shmq_open(c->in, SHMQ_PRODUCER | SHMQ_CONSUMER, &qi),
			 SHMQ_OK);
		qo = qi;
	} else {
		if (c->in)
			CHILD_RC(shmq_open(c->in, SHMQ_CONSUMER, &qi), SHMQ_OK);
		if (c->out)
			CHILD_RC(shmq_open(c->out, SHMQ_PRODUCER, &qo), SHMQ_OK);
	}
	if (c->hold_in)
		CHILD_RC(shmq_open(c->hold_in, SHMQ_CONSUMER, &h), SHMQ_OK);
	if (c->hold_out)
		CHILD_RC(shmq_open(c->hold_out, SHMQ_PRODUCER, &h), SHMQ_OK);
	child_say(ch, 'r');
	for (;;) {
		int cmd = child_hear(ch), rc;
		child_say(ch, 'b');
		switch (cmd) {
		case 'l':
			for (int i = 0; i < c->rounds; i++) {
				if (qo)
					CHILD_RC(count_rc(shmq_put(qo, "m", 1,
								   SHMQ_FOREVER),
							  &dead), SHMQ_OK);
				if (qi)
					CHILD_RC(count_rc(shmq_get(qi, buf,
								   sizeof(buf),
								   &len,
								   SHMQ_FOREVER),
							  &dead), SHMQ_OK);
			}
			_exit(dead);
		case 'p':
			rc = shmq_put(qo, "m", 1, c->put_timeout ? c->put_timeout
								 : SHMQ_FOREVER);
			child_say(ch, rc == SHMQ_EDEADLK    ? 'd'
				      : rc == SHMQ_ETIMEDOUT ? 't'
							     : 'k');
			if (rc != SHMQ_ETIMEDOUT)
				CHILD_RC(count_rc(rc, &dead), SHMQ_OK);
			break;
		case 'g':
			rc = shmq_get(qi, buf, sizeof(buf), &len, SHMQ_FOREVER);
			child_say(ch, rc == SHMQ_EDEADLK ? 'd' : 'k');
			CHILD_RC(count_rc(rc, &dead), SHMQ_OK);
			break;
		default:
			_exit(CHILD_FAIL);
		}
	}
}

static void stage_start(struct stage *s, const struct stage_cfg *c)
{
	chan_init(&s->ch);
	s->pid = harness_fork();
	ck_assert_int_ge(s->pid, 0);
	if (s->pid == 0) {
		chan_child(&s->ch);
		stage_run(&s->ch, c);
		_exit(0);
	}
	chan_parent(&s->ch);
	chan_expect(&s->ch, 'r');
}

/* Sends a command that blocks; returns once the stage is about to. */
static void stage_go(struct stage *s, int cmd)
{
	ck_assert_int_eq(byte_write(s->ch.down[1], cmd), 0);
	chan_expect(&s->ch, 'b');
}

static void stage_kill(struct stage *s)
{
	kill(s->pid, SIGCONT);
	kill(s->pid, SIGKILL);
	harness_wait(s->pid, 5000);
	chan_done(&s->ch);
}

/* Its exit status (its count of SHMQ_EDEADLK), -1 if it failed. */
static int stage_end(struct stage *s)
{
	int st = harness_wait(s->pid, 20000);

	chan_done(&s->ch);
	return st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) != CHILD_FAIL
		       ? WEXITSTATUS(st)
		       : -1;
}

/* The row of `pid`'s wait on `queue`, or NULL. */
static const struct shmq_deadlock_wait *
row_of(const struct shmq_deadlock_wait *rows, size_t n, pid_t pid,
       const char *queue)
{
	for (size_t i = 0; i < n; i++)
		if (rows[i].pid == (uint32_t)pid &&
		    strcmp(rows[i].queue, queue) == 0)
			return &rows[i];
	return NULL;
}

/* The cycle a -> A -> b -> B -> c -> C -> a: stage X gets from x and
 * puts to the next queue; every queue is full, so each blocks in put. */
static void cycle_start(struct stage st[3], int rounds)
{
	static const char *const names[3] = { "a", "b", "c" };
	static const char *const comms[3] = { "stage-a", "stage-b",
					      "stage-c" };

	for (int i = 0; i < 3; i++) {
		struct stage_cfg c = { .comm = comms[i], .in = names[i],
				       .out = names[(i + 1) % 3],
				       .rounds = rounds };
		stage_start(&st[i], &c);
	}
}

/* Whether /proc says `pid` is stopped. */
static int is_stopped(pid_t pid)
{
	char path[64], buf[512];
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	if ((f = fopen(path, "r")) == NULL)
		return 0;
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	char *p = strrchr(buf, ')');
	return p && p[1] == ' ' && (p[2] == 'T' || p[2] == 't');
}

/* Field `field` (numbered from 1, as in proc(5)) of /proc/PID/stat, for
 * the fields after the command name; 0 if unreadable. */
static unsigned long long stat_field(pid_t pid, int field)
{
	char path[64], buf[1024];
	unsigned long long v = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	if ((f = fopen(path, "r")) == NULL)
		return 0;
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	char *p = strrchr(buf, ')');
	for (int i = 2; i < field && p; i++)
		p = strchr(p + 1, ' ');
	if (p == NULL || sscanf(p, " %llu", &v) != 1)
		return 0;
	return v;
}

/* Runs qctl with `args` (NULL-terminated, after "qctl"); its standard
 * output goes to out (NUL-terminated, cut to `cap`), its standard error
 * to ours.  Returns its wait status. */
static int run_qctl_as(uid_t uid, const char *const *args, char *out,
		       size_t cap);

static int run_qctl(const char *const *args, char *out, size_t cap)
{
	return run_qctl_as(0, args, out, cap);
}

/* The same, as user `uid` (0: as we are). */
static int run_qctl_as(uid_t uid, const char *const *args, char *out,
		       size_t cap)
{
	char bin[512];
	char *argv[16];
	int fds[2], n = 0;
	size_t len = 0;

	harness_path("tools/qctl", bin, sizeof(bin));
	argv[n++] = "qctl";
	for (; *args && n < 15; args++)
		argv[n++] = (char *)*args;
	argv[n] = NULL;
	ck_assert_int_eq(pipe(fds), 0);
	pid_t kid = harness_fork();
	if (kid == 0) {
		if (uid)
			become_user(uid, uid, NULL, 0);
		dup2(fds[1], 1);
		close(fds[0]);
		close(fds[1]);
		execv(bin, argv);
		_exit(127);
	}
	close(fds[1]);
	for (;;) {
		char buf[512];
		ssize_t got = read(fds[0], buf, sizeof(buf));
		if (got <= 0)
			break;
		for (ssize_t i = 0; i < got && len + 1 < cap; i++)
			out[len++] = buf[i];
	}
	out[len] = '\0';
	close(fds[0]);
	return harness_wait(kid, 20000);
}

/* ======================================================================= */
/* Deadlocks found                                                         */

/* Three processes in a cycle, every queue full: reported within twice
 * the timeout, once in the log and by shmq_deadlocks(), naming each
 * process, its command, the queue it waits on and who alone could free
 * it; the queues' stat says so, until it is over. */
START_TEST(test_cycle_reported)
{
	struct shmq_deadlock_wait *rows;
	struct stage st[3];
	struct daemon d;
	size_t n = 0;

	ck_assert_int_eq(daemon_start(&d, dl_args), 0);
	create_full("a", 2, 0);
	create_full("b", 2, 0);
	create_full("c", 2, 0);
	cycle_start(st, 1);
	for (int i = 0; i < 3; i++)
		stage_go(&st[i], 'l');
	long t0 = now_ms();
	ck_assert(WAIT_UNTIL((n = deadlock_count()) == 3, 4 * TIMEOUT_MS));
	long took = now_ms() - t0;
	ck_assert_msg(took <= 2 * TIMEOUT_MS, "found after %ld ms", took);
	fprintf(stderr, "deadlock found %ld ms after it formed\n", took);

	n = deadlocks(&rows);
	ck_assert_uint_eq(n, 3);
	for (int i = 0; i < 3; i++) {
		static const char *const out[3] = { "b", "c", "a" };
		static const char *const comm[3] = { "stage-a", "stage-b",
						     "stage-c" };
		const struct shmq_deadlock_wait *r =
			row_of(rows, n, st[i].pid, out[i]);
		ck_assert_msg(r != NULL, "no row for stage %d", i);
		ck_assert_uint_eq(r->deadlock, 0);
		ck_assert_int_eq(r->behind, 0);
		ck_assert_int_eq(r->put, 1);
		ck_assert_str_eq(r->comm, comm[i]);
		ck_assert_uint_eq(r->messages, 2);
		ck_assert_uint_eq(r->capacity, 2);
		ck_assert_uint_eq(r->threads, 1);
		ck_assert_int_ge(r->blocked_ns, (int64_t)TIMEOUT_MS * 1000000);
		ck_assert_int_eq(r->fail, 0);
		ck_assert_int_eq(r->victim, 0);
		ck_assert_uint_eq(r->nfreers, 1);
		ck_assert_uint_eq(r->freers[0], (uint32_t)st[(i + 1) % 3].pid);
	}
	free(rows);
	ck_assert_int_eq(stat_name("a").deadlocked, 1);

	/* One line naming them all, and only one however long it lasts. */
	char line[200];
	snprintf(line, sizeof(line),
		 "pid %d (stage-a) blocked in put on 'b' (full 2/2), freed "
		 "only by pid %d (stage-b)", st[0].pid, st[1].pid);
	EVENTUALLY(file_contains(d.log, line));
	snprintf(line, sizeof(line),
		 "pid %d (stage-c) blocked in put on 'a' (full 2/2), freed "
		 "only by pid %d (stage-a)", st[2].pid, st[0].pid);
	ck_assert(file_contains(d.log, line));
	sleep_ms(3 * TIMEOUT_MS);
	ck_assert_int_eq(count_in_file(d.log, "deadlock: pid"), 1);

	/* qctl deadlocks --json says the same, and exits 12. */
	static const char *const json[] = { "deadlocks", "--json", NULL };
	char out[8192], want[100];
	int status = run_qctl(json, out, sizeof(out));
	ck_assert_msg(exited_with(status, 12), "qctl: %s", describe(status));
	for (int i = 0; i < 3; i++) {
		static const char *const out_q[3] = { "b", "c", "a" };
		snprintf(want, sizeof(want),
			 "{\"pid\":%d,\"command\":\"stage-%c\",\"behind\":false,"
			 "\"waits\":[{\"op\":\"put\",\"queue\":\"%s\",", st[i].pid,
			 'a' + i, out_q[i]);
		ck_assert_msg(strstr(out, want), "no %s in %s", want, out);
		snprintf(want, sizeof(want), "\"freed_by\":[%d]",
			 st[(i + 1) % 3].pid);
		ck_assert_msg(strstr(out, want), "no %s in %s", want, out);
	}

	/* qctl stat and ls mark the queues. */
	static const char *const stat_json[] = { "stat", "a", "--json", NULL };
	status = run_qctl(stat_json, out, sizeof(out));
	ck_assert_msg(exited_with(status, 0), "qctl: %s", describe(status));
	ck_assert_msg(strstr(out, "\"deadlocked\":true"), "stat: %s", out);
	static const char *const stat_text[] = { "stat", "b", NULL };
	status = run_qctl(stat_text, out, sizeof(out));
	ck_assert_msg(exited_with(status, 0), "qctl: %s", describe(status));
	const char *dl = strstr(out, "deadlocked:");
	ck_assert_msg(dl != NULL, "stat: %s", out);
	dl += strlen("deadlocked:");
	dl += strspn(dl, " ");
	ck_assert_msg(strncmp(dl, "yes\n", 4) == 0, "stat: %s", out);
	static const char *const ls[] = { "ls", NULL };
	status = run_qctl(ls, out, sizeof(out));
	ck_assert_msg(exited_with(status, 0), "qctl: %s", describe(status));
	ck_assert_msg(strstr(out, "open,deadlock"), "ls: %s", out);

	for (int i = 0; i < 3; i++)
		stage_kill(&st[i]);
	EVENTUALLY(deadlock_count() == 0);
	EVENTUALLY(stat_name("a").deadlocked == 0);
	status = run_qctl(json, out, sizeof(out));
	ck_assert_msg(exited_with(status, 0), "qctl: %s", describe(status));
	ck_assert_str_eq(out, "[]\n");
	status = run_qctl(stat_json, out, sizeof(out));
	ck_assert_msg(strstr(out, "\"deadlocked\":false"), "stat: %s", out);
	ck_assert_int_eq(daemon_cleanup(&d), 0);
}
END_TEST

/* The same cycle with the fail policy: exactly one blocked call returns
 * SHMQ_EDEADLK, and then all three run to the end. */
START_TEST(test_cycle_fail)
{
	struct stage st[3];
	struct daemon d;
	int total = 0;

	ck_assert_int_eq(daemon_start(&d, dl_args), 0);
	create_full("a", 2, SHMQ_DEADLOCK_FAIL);
	create_full("b", 2, SHMQ_DEADLOCK_FAIL);
	create_full("c", 2, SHMQ_DEADLOCK_FAIL);
	ck_assert_uint_eq(stat_name("a").flags & SHMQ_DEADLOCK_FAIL,
			  SHMQ_DEADLOCK_FAIL);
	cycle_start(st, 40);
	for (int i = 0; i < 3; i++)
		stage_go(&st[i], 'l');
	for (int i = 0; i < 3; i++) {
		int dead = stage_end(&st[i]);
		ck_assert_msg(dead >= 0, "stage %d failed", i);
		total += dead;
	}
	ck_assert_int_eq(total, 1);
	EVENTUALLY(count_in_file(d.log, "breaking it") == 1);
	ck_assert_int_eq(count_in_file(d.log, "deadlock: pid"), 1);
	ck_assert_uint_eq(deadlock_count(), 0);
	ck_assert_int_eq(daemon_cleanup(&d), 0);
}
END_TEST

/* Two processes each waiting in get for the other's put; only one of
 * the queues has the fail policy: the get on it is the one that fails. */
START_TEST(test_get_victim)
{
	struct stage x, y;
	struct daemon d;
	struct stage_cfg cx = { .comm = "getter-x", .in = "x", .out = "y",
				.rounds = 1 };
	struct stage_cfg cy = { .comm = "getter-y", .in = "y", .out = "x",
				.rounds = 1 };

	ck_assert_int_eq(daemon_start(&d, dl_args), 0);
	create_q("x", 2, 64, 0600, SHMQ_DEADLOCK_FAIL);
	create_q("y", 2, 64, 0600, 0);
	stage_start(&x, &cx);
	stage_start(&y, &cy);
	stage_go(&x, 'g');
	stage_go(&y, 'g');
	chan_expect(&x.ch, 'd');
	char line[100];
	snprintf(line, sizeof(line), "the get of pid %d (getter-x) on 'x' fails",
		 x.pid);
	EVENTUALLY(file_contains(d.log, line));     /* written after */
	/* x goes on: its put frees y. */
	chan_cmd(&x.ch, 'p', 'b');
	chan_expect(&x.ch, 'k');
	chan_expect(&y.ch, 'k');
	stage_kill(&x);
	stage_kill(&y);
	ck_assert_int_eq(daemon_cleanup(&d), 0);
}
END_TEST

/* One process, one thread, putting to its own full queue: a deadlock of
 * one, freed only by itself. */
START_TEST(test_self_put)
{
	struct shmq_deadlock_wait *rows;
	struct stage s;
	struct daemon d;
	struct stage_cfg c = { .comm = "selfish", .in = "own", .out = "own",
			       .rounds = 1 };

	ck_assert_int_eq(daemon_start(&d, dl_args), 0);
	create_full("own", 4, 0);
	stage_start(&s, &c);
	stage_go(&s, 'l');
	EVENTUALLY(deadlock_count() == 1);
	size_t n = deadlocks(&rows);
	ck_assert_uint_eq(n, 1);
	ck_assert_uint_eq(rows[0].pid, (uint32_t)s.pid);
	ck_assert_str_eq(rows[0].queue, "own");
	ck_assert_uint_eq(rows[0].nfreers, 1);
	ck_assert_uint_eq(rows[0].freers[0], (uint32_t)s.pid);
	free(rows);
	ck_assert(file_contains(d.log, "freed only by itself"));
	stage_kill(&s);
	ck_assert_int_eq(daemon_cleanup(&d), 0);
}
END_TEST

/* A command name is the process's own word: one that holds a newline, a
 * journal priority and a terminal escape is logged escaped, on the one
 * line of its deadlock. */
START_TEST(test_comm_escaped)
{
	struct stage s;
	struct daemon d;
	struct stage_cfg c = { .comm = "ev\n<0>il\x1b[1m", .in = "own",
			       .out = "own", .rounds = 1 };

	ck_assert_int_eq(daemon_start(&d, dl_args), 0);
	create_full("own", 1, 0);
	stage_start(&s, &c);
	stage_go(&s, 'l');
	EVENTUALLY(deadlock_count() == 1);
	char line[100];
	snprintf(line, sizeof(line),
		 "deadlock: pid %d (ev\\x0a<0>il\\x1b[1m) blocked in put on "
		 "'own'", s.pid);
	EVENTUALLY(file_contains(d.log, line));
	ck_assert_int_eq(lines_starting(d.log, "<0>"), 0);
	ck_assert_int_eq(count_in_file(d.log, "\x1b"), 0);
	stage_kill(&s);
	ck_assert_int_eq(daemon_cleanup(&d), 0);
}
END_TEST

/* A queue full by its byte budget, not by its count: the log and qctl
 * say which. */
START_TEST(test_byte_budget)
{
	static const char *const text[] = { "deadlocks", NULL };
	struct stage s;
	struct daemon d;
	struct stage_cfg c = { .comm = "selfish", .in = "own", .out = "own",
			       .rounds = 1 };
	struct shmq_attr a = attr_of(8, 64, 0600, 0);
	char big[64], out[4096];

	ck_assert_int_eq(daemon_start(&d, dl_args), 0);
	a.max_bytes = 64;
	RC_EQ(shmq_create("own", &a, 0), SHMQ_OK);
	shmq_t *q = open_q("own", SHMQ_PRODUCER);
	memset(big, 'x', sizeof(big));
	RC_EQ(shmq_put(q, big, sizeof(big), 0), SHMQ_OK);
	RC_EQ(shmq_detach(q), SHMQ_OK);
	stage_start(&s, &c);
	stage_go(&s, 'l');
	EVENTUALLY(deadlock_count() == 1);
	EVENTUALLY(file_contains(d.log, "blocked in put on 'own' (full: byte "
					"budget 64/64), freed only by itself"));
	run_qctl(text, out, sizeof(out));
	ck_assert_msg(strstr(out, "'own' (full: byte budget 64/64)"), "%s", out);
	stage_kill(&s);
	ck_assert_int_eq(daemon_cleanup(&d), 0);
}
END_TEST

/* shmq_wait() waits as a put does, and is recorded as one: a process
 * waiting for room in its own full queue is a deadlock of one, and the
 * fail policy fails its wait. */
START_TEST(test_wait_recorded)
{
	struct daemon d;
	struct chan ch;

	ck_assert_int_eq(daemon_start(&d, dl_args), 0);
	create_full("own", 2, SHMQ_DEADLOCK_FAIL);
	chan_init(&ch);
	pid_t kid = harness_fork();
	if (kid == 0) {
		shmq_t *q;
		chan_child(&ch);
		prctl(PR_SET_NAME, "waiter");
		CHILD_RC(shmq_open("own", SHMQ_PRODUCER | SHMQ_CONSUMER, &q),
			 SHMQ_OK);
		child_say(&ch, 'b');
		CHILD_RC(shmq_wait(q, SHMQ_POLL_PUT, 1, 20000), SHMQ_EDEADLK);
		_exit(0);
	}
	chan_parent(&ch);
	chan_expect(&ch, 'b');
	CHILD_OK(kid);
	chan_done(&ch);
	char line[100];
	snprintf(line, sizeof(line), "the put of pid %d (waiter) on 'own' fails",
		 kid);
	EVENTUALLY(file_contains(d.log, line));
	ck_assert_int_eq(daemon_cleanup(&d), 0);
}
END_TEST

/* A binding's blocking call made of slices (shmq_wait_continue): puts
 * with a 100 ms timeout each, less than shmqd's report period (150 ms),
 * that all continue one call begun before the first; it returns what the
 * last slice returned.  Each slice alone is too young and timed to count:
 * only as one call is it ever stuck. */
static int sliced_put(shmq_t *q, int64_t deadline_ns)
{
	int64_t since = (int64_t)mono_ns();
	int rc;

	do {
		if (shmq_wait_continue(since, deadline_ns) != SHMQ_OK)
			return CHILD_FAIL;
		rc = shmq_put(q, "m", 1, 100);
		if (shmq_wait_continue(0, 0) != SHMQ_OK)
			return CHILD_FAIL;
	} while (rc == SHMQ_ETIMEDOUT &&
		 (deadline_ns == 0 || (int64_t)mono_ns() < deadline_ns));
	return rc;
}

/* A process in sliced_put to its own full queue (`flags`) with a
 * deadline `deadline_s` seconds away (0: none); it says 'b' first and
 * exits 0 if the call returns SHMQ_EDEADLK. */
static pid_t sliced_start(struct chan *ch, int deadline_s)
{
	chan_init(ch);
	pid_t kid = harness_fork();
	if (kid == 0) {
		shmq_t *q;
		chan_child(ch);
		prctl(PR_SET_NAME, "slicer");
		CHILD_RC(shmq_open("own", SHMQ_PRODUCER | SHMQ_CONSUMER, &q),
			 SHMQ_OK);
		child_say(ch, 'b');
		int64_t dl = deadline_s ? (int64_t)mono_ns() +
						  (int64_t)deadline_s * 1000000000
					: 0;
		CHILD_RC(sliced_put(q, dl), SHMQ_EDEADLK);
		_exit(0);
	}
	chan_parent(ch);
	chan_expect(ch, 'b');
	return kid;
}

static int sliced_row(pid_t kid, struct shmq_deadlock_wait *out)
{
	struct shmq_deadlock_wait *rows;
	size_t n = deadlocks(&rows);
	const struct shmq_deadlock_wait *r = row_of(rows, n, kid, "own");

	if (r)
		*out = *r;
	free(rows);
	return r != NULL;
}

/* Slices of one call are one wait: counted from the call's start and
 * untimed, so a process in them is found, as one blocked in a single
 * call would be (their own 100 ms timeouts would make each a young,
 * timed wait that shmqd never counts). */
START_TEST(test_sliced_recorded)
{
	struct shmq_deadlock_wait row;
	struct daemon d;
	struct chan ch;

	ck_assert_int_eq(daemon_start(&d, dl_args), 0);
	create_full("own", 1, 0);
	pid_t kid = sliced_start(&ch, 0);
	EVENTUALLY(sliced_row(kid, &row));
	ck_assert_int_eq(row.put, 1);
	ck_assert_int_eq(row.behind, 0);
	ck_assert_uint_eq(row.threads, 1);
	ck_assert_int_eq(row.ends_in_ns, 0);
	ck_assert_int_ge(row.blocked_ns, (int64_t)TIMEOUT_MS * 1000000);
	/* A look that falls between two slices sees the process running
	 * and withdraws the mark until the next look: eventually, not at
	 * once. */
	EVENTUALLY(stat_name("own").deadlocked == 1);
	kill(kid, SIGKILL);
	harness_wait(kid, 5000);
	chan_done(&ch);
	ck_assert_int_eq(daemon_cleanup(&d), 0);
}
END_TEST

/* A sliced call with a deadline counts with its own deadline (a minute),
 * not its slices'. */
START_TEST(test_sliced_timed)
{
	struct shmq_deadlock_wait row;
	struct daemon d;
	struct chan ch;

	ck_assert_int_eq(daemon_start(&d, dl_args), 0);
	create_full("own", 1, 0);
	pid_t kid = sliced_start(&ch, 60);
	EVENTUALLY(sliced_row(kid, &row));
	ck_assert_int_gt(row.ends_in_ns, (int64_t)30 * 1000000000);
	ck_assert_int_le(row.ends_in_ns, (int64_t)60 * 1000000000);
	kill(kid, SIGKILL);
	harness_wait(kid, 5000);
	chan_done(&ch);
	ck_assert_int_eq(daemon_cleanup(&d), 0);
}
END_TEST

/* The fail policy fails a sliced call: one of its slices returns
 * SHMQ_EDEADLK, whichever slice shmqd chose (its number is the call's). */
START_TEST(test_sliced_fail)
{
	struct daemon d;
	struct chan ch;

	ck_assert_int_eq(daemon_start(&d, dl_args), 0);
	create_full("own", 1, SHMQ_DEADLOCK_FAIL);
	pid_t kid = sliced_start(&ch, 0);
	CHILD_OK(kid);
	chan_done(&ch);
	char line[100];
	snprintf(line, sizeof(line), "the put of pid %d (slicer) on 'own' fails",
		 kid);
	EVENTUALLY(file_contains(d.log, line));
	ck_assert_int_eq(daemon_cleanup(&d), 0);
}
END_TEST

/* shmq_wait_continue refuses negative times; 0 clears (also when
 * nothing was set). */
START_TEST(test_continue_args)
{
	RC_EQ(shmq_wait_continue(-1, 0), SHMQ_EINVAL);
	RC_EQ(shmq_wait_continue(1, -1), SHMQ_EINVAL);
	RC_EQ(shmq_wait_continue(0, 0), SHMQ_OK);
	RC_EQ(shmq_wait_continue(0, 0), SHMQ_OK);
}
END_TEST

/* On an acked queue a lease holder can end a get (an ack, nack or
 * return).  P1 holds a lease on AQ, which has no producer, and is blocked
 * in put on AR, full; P2, AR's only consumer, is blocked in get on AQ,
 * waiting for P1's lease to come back: a deadlock, through the lease. */
START_TEST(test_lease_holder)
{
	struct shmq_deadlock_wait *rows;
	struct daemon d;
	struct chan c1, c2;

	ck_assert_int_eq(daemon_start(&d, dl_args), 0);
	create_q("AQ", 4, 64, 0600, SHMQ_ACKED);
	shmq_t *q = open_q("AQ", SHMQ_PRODUCER);
	put_str(q, "work");
	RC_EQ(shmq_detach(q), SHMQ_OK);
	create_full("AR", 1, 0);

	chan_init(&c1);
	pid_t p1 = harness_fork();
	if (p1 == 0) {
		shmq_t *aq, *ar;
		struct shmq_msg m;
		char buf[64];
		chan_child(&c1);
		prctl(PR_SET_NAME, "holder");
		CHILD_RC(shmq_open("AQ", SHMQ_CONSUMER, &aq), SHMQ_OK);
		CHILD_RC(shmq_open("AR", SHMQ_PRODUCER, &ar), SHMQ_OK);
		CHILD_RC(shmq_lease(aq, buf, sizeof(buf), &m, 5000), SHMQ_OK);
		child_say(&c1, 'b');
		CHILD_RC(shmq_put(ar, "m", 1, 20000), SHMQ_OK);
		_exit(0);
	}
	chan_parent(&c1);
	chan_expect(&c1, 'b');
	chan_init(&c2);
	pid_t p2 = harness_fork();
	if (p2 == 0) {
		shmq_t *aq, *ar;
		struct shmq_msg m;
		char buf[64];
		chan_child(&c2);
		prctl(PR_SET_NAME, "getter");
		CHILD_RC(shmq_open("AQ", SHMQ_CONSUMER, &aq), SHMQ_OK);
		CHILD_RC(shmq_open("AR", SHMQ_CONSUMER, &ar), SHMQ_OK);
		child_say(&c2, 'b');
		CHILD_RC(shmq_lease(aq, buf, sizeof(buf), &m, 20000), SHMQ_OK);
		_exit(0);
	}
	chan_parent(&c2);
	chan_expect(&c2, 'b');
	EVENTUALLY(deadlock_count() == 2);
	size_t n = deadlocks(&rows);
	const struct shmq_deadlock_wait *r = row_of(rows, n, p2, "AQ");
	ck_assert(r != NULL);
	ck_assert_int_eq(r->put, 0);
	ck_assert_int_eq(r->behind, 0);
	ck_assert_uint_eq(r->nfreers, 1);
	ck_assert_uint_eq(r->freers[0], (uint32_t)p1);
	r = row_of(rows, n, p1, "AR");
	ck_assert(r != NULL);
	ck_assert_uint_eq(r->freers[0], (uint32_t)p2);
	free(rows);
	kill(p1, SIGKILL);
	kill(p2, SIGKILL);
	harness_wait(p1, 5000);
	harness_wait(p2, 5000);
	chan_done(&c1);
	chan_done(&c2);
	ck_assert_int_eq(daemon_cleanup(&d), 0);
}
END_TEST

/* Two threads of one process share a handle and put to its own full
 * queue, which has the fail policy: the most recently blocked fails, and
 * only it, three times over (the other, older, wait goes on), though the
 * victim word is on the handle both share. */
struct older {
	shmq_t *q;
	struct chan *ch;
};

static void *older_put(void *arg)
{
	struct older *o = arg;

	shmq_put(o->q, "m", 1, SHMQ_FOREVER);
	child_say(o->ch, 'A');          /* never, if all is well */
	return NULL;
}

START_TEST(test_threads_victim)
{
	struct daemon d;
	struct chan ch;

	ck_assert_int_eq(daemon_start(&d, dl_args), 0);
	create_full("own", 1, SHMQ_DEADLOCK_FAIL);
	chan_init(&ch);
	pid_t kid = harness_fork();
	if (kid == 0) {
		struct older o = { NULL, &ch };
		struct shmq_stat st;
		pthread_t th;
		chan_child(&ch);
		CHILD_RC(shmq_open("own", SHMQ_PRODUCER | SHMQ_CONSUMER, &o.q),
			 SHMQ_OK);
		CHILD_CHECK(pthread_create(&th, NULL, older_put, &o) == 0);
		long until = now_ms() + WAIT_MS;
		do {
			sleep_ms(5);
			CHILD_RC(shmq_stat(o.q, &st), SHMQ_OK);
		} while (st.put_blocked < 1 && now_ms() < until);
		CHILD_CHECK(st.put_blocked == 1);
		for (int i = 0; i < 3; i++) {
			int rc = shmq_put(o.q, "m", 1, 20000);
			child_say(&ch, rc == SHMQ_EDEADLK ? 'B' : 'x');
		}
		child_hear(&ch);
		_exit(0);
	}
	chan_parent(&ch);
	for (int i = 0; i < 3; i++)
		chan_expect(&ch, 'B');
	/* (Logged just after the victim word is written.) */
	EVENTUALLY(count_in_file(d.log, "breaking it") == 3);
	ck_assert_int_eq(byte_write(ch.down[1], 'x'), 0);
	CHILD_OK(kid);
	chan_done(&ch);
	ck_assert_int_eq(daemon_cleanup(&d), 0);
}
END_TEST

/* A cycle of two where one put has a timeout that ends it before the
 * next look: no deadlock, ever (it ends by itself), and the fail policy
 * fails nothing: the put times out. */
START_TEST(test_timed_ends_itself)
{
	struct stage x, y;
	struct daemon d;
	struct stage_cfg cx = { .comm = "forever", .in = "a", .out = "b" };
	struct stage_cfg cy = { .comm = "timed", .in = "b", .out = "a",
				.put_timeout = TIMEOUT_MS + 100 };

	ck_assert_int_eq(daemon_start(&d, dl_args), 0);
	create_full("a", 1, SHMQ_DEADLOCK_FAIL);
	create_full("b", 1, SHMQ_DEADLOCK_FAIL);
	stage_start(&x, &cx);
	stage_start(&y, &cy);
	stage_go(&x, 'p');
	stage_go(&y, 'p');
	long until = now_ms() + 2 * TIMEOUT_MS;
	while (now_ms() < until) {
		ck_assert_uint_eq(deadlock_count(), 0);
		sleep_ms(10);
	}
	chan_expect(&y.ch, 't');
	ck_assert_int_eq(count_in_file(d.log, "deadlock: pid"), 0);
	ck_assert_int_eq(count_in_file(d.log, "breaking it"), 0);
	stage_kill(&x);
	stage_kill(&y);
	ck_assert_int_eq(daemon_cleanup(&d), 0);
}
END_TEST

/* The same with a long timeout: the cycle is real for now, and is
 * reported as one that may end at that timeout. */
START_TEST(test_timed_reported)
{
	struct shmq_deadlock_wait *rows;
	struct stage x, y;
	struct daemon d;
	struct stage_cfg cx = { .comm = "forever", .in = "a", .out = "b" };
	struct stage_cfg cy = { .comm = "timed", .in = "b", .out = "a",
				.put_timeout = 20000 };

	ck_assert_int_eq(daemon_start(&d, dl_args), 0);
	create_full("a", 1, 0);
	create_full("b", 1, 0);
	stage_start(&x, &cx);
	stage_start(&y, &cy);
	stage_go(&x, 'p');
	stage_go(&y, 'p');
	EVENTUALLY(deadlock_count() == 2);
	size_t n = deadlocks(&rows);
	const struct shmq_deadlock_wait *r = row_of(rows, n, y.pid, "a");
	ck_assert(r != NULL);
	ck_assert_int_gt(r->ends_in_ns, 15000000000LL);
	ck_assert_int_le(r->ends_in_ns, 20000000000LL);
	r = row_of(rows, n, x.pid, "b");
	ck_assert(r != NULL);
	ck_assert_int_eq(r->ends_in_ns, 0);
	free(rows);
	EVENTUALLY(file_contains(d.log, "(full 1/1, may end at its timeout in "));
	static const char *const json[] = { "deadlocks", "--json", NULL };
	char out[8192];
	run_qctl(json, out, sizeof(out));
	ck_assert_msg(strstr(out, "\"ends_in_seconds\":null"), "%s", out);
	ck_assert_msg(strstr(out, "\"ends_in_seconds\":1"), "%s", out);
	stage_kill(&x);
	stage_kill(&y);
	ck_assert_int_eq(daemon_cleanup(&d), 0);
}
END_TEST

/* A process blocked behind a deadlock from outside it: listed as such,
 * after the cycle, freed only by the process of the cycle it waits
 * for. */
START_TEST(test_behind)
{
	struct shmq_deadlock_wait *rows;
	struct stage a, b, feeder;
	struct daemon d;
	struct stage_cfg ca = { .comm = "cycle-a", .in = "ba", .out = "ab",
				.hold_in = "side", .rounds = 1 };
	struct stage_cfg cb = { .comm = "cycle-b", .in = "ab", .out = "ba",
				.rounds = 1 };
	struct stage_cfg cf = { .comm = "feeder", .out = "side", .rounds = 1 };

	ck_assert_int_eq(daemon_start(&d, dl_args), 0);
	create_full("ab", 1, 0);
	create_full("ba", 1, 0);
	create_full("side", 1, 0);
	stage_start(&a, &ca);
	stage_start(&b, &cb);
	stage_start(&feeder, &cf);
	stage_go(&a, 'l');
	stage_go(&b, 'l');
	stage_go(&feeder, 'l');
	EVENTUALLY(deadlock_count() == 3);
	size_t n = deadlocks(&rows);
	const struct shmq_deadlock_wait *r = row_of(rows, n, feeder.pid,
						    "side");
	ck_assert(r != NULL);
	ck_assert_int_eq(r->behind, 1);
	ck_assert_uint_eq(r->nfreers, 1);
	ck_assert_uint_eq(r->freers[0], (uint32_t)a.pid);
	ck_assert_int_eq(row_of(rows, n, a.pid, "ab")->behind, 0);
	ck_assert_int_eq(row_of(rows, n, b.pid, "ba")->behind, 0);
	ck_assert_int_eq(rows[n - 1].behind, 1);        /* cycle first */
	free(rows);
	ck_assert(file_contains(d.log, "; blocked behind it: pid"));
	stage_kill(&a);
	stage_kill(&b);
	stage_kill(&feeder);
	ck_assert_int_eq(daemon_cleanup(&d), 0);
}
END_TEST

/* `qctl put` blocked behind a deadlock it is not part of, on a queue
 * with the fail policy (the cycle has none): its call is failed, and qctl
 * exits 12. */
START_TEST(test_qctl_victim)
{
	static const char *const put[] = { "put", "x", "m", NULL };
	struct stage s;
	struct daemon d;
	struct stage_cfg c = { .comm = "selfish", .in = "own", .out = "own",
			       .hold_in = "x", .rounds = 1 };
	char out[64];

	ck_assert_int_eq(daemon_start(&d, dl_args), 0);
	create_full("own", 1, 0);
	create_full("x", 1, SHMQ_DEADLOCK_FAIL);
	stage_start(&s, &c);
	stage_go(&s, 'l');
	int status = run_qctl(put, out, sizeof(out));
	ck_assert_msg(exited_with(status, 12), "qctl put: %s",
		      describe(status));
	EVENTUALLY(file_contains(d.log, "(qctl) on 'x' fails"));
	/* The cycle of one goes on being reported, without a victim. */
	ck_assert_int_eq(count_in_file(d.log, "breaking it"), 1);
	EVENTUALLY(deadlock_count() == 1);
	stage_kill(&s);
	ck_assert_int_eq(daemon_cleanup(&d), 0);
}
END_TEST

/* A deadlock that still exists when shmqd is killed (-9) is found again
 * by the next one, from the wait records in the segments. */
START_TEST(test_found_after_restart)
{
	struct stage st[3];
	struct daemon d;

	ck_assert_int_eq(daemon_start(&d, dl_args), 0);
	create_full("a", 1, 0);
	create_full("b", 1, 0);
	create_full("c", 1, 0);
	cycle_start(st, 1);
	for (int i = 0; i < 3; i++)
		stage_go(&st[i], 'l');
	EVENTUALLY(deadlock_count() == 3);
	ck_assert_int_eq(count_in_file(d.log, "deadlock: pid"), 1);
	daemon_stop(&d, SIGKILL);
	ck_assert_int_eq(daemon_restart(&d), 0);
	EVENTUALLY(deadlock_count() == 3);
	EVENTUALLY(count_in_file(d.log, "deadlock: pid") == 2);
	ck_assert_int_eq(stat_name("b").deadlocked, 1);
	for (int i = 0; i < 3; i++)
		stage_kill(&st[i]);
	ck_assert_int_eq(daemon_cleanup(&d), 0);
}
END_TEST

/* ======================================================================= */
/* Never a deadlock                                                        */

/* Asserts that shmq_deadlocks() lists nothing for SILENCE_MS, and that
 * the log has only `lines` deadlocks in it all along. */
static void assert_silence(struct daemon *d, int lines)
{
	long until = now_ms() + SILENCE_MS;

	while (now_ms() < until) {
		ck_assert_uint_eq(deadlock_count(), 0);
		sleep_ms(20);
	}
	ck_assert_int_eq(count_in_file(d->log, "deadlock: pid"), lines);
}

/* A process with a second thread that is not blocked: its put to its
 * own full queue is no deadlock (the other thread may get); once that
 * thread gets, the put goes through. */
struct own_thread {
	struct chan *ch;
	shmq_t *q;
};

static void *own_consumer(void *arg)
{
	struct own_thread *t = arg;
	char buf[64];
	size_t len;

	if (child_hear(t->ch) != 'g' ||
	    shmq_get(t->q, buf, sizeof(buf), &len, 5000) != SHMQ_OK)
		_exit(CHILD_FAIL);
	return NULL;
}

START_TEST(test_other_thread_runs)
{
	struct daemon d;
	struct chan ch;

	ck_assert_int_eq(daemon_start(&d, dl_args), 0);
	create_full("own", 2, 0);
	chan_init(&ch);
	pid_t kid = harness_fork();
	if (kid == 0) {
		struct own_thread t = { &ch, NULL };
		pthread_t th;
		chan_child(&ch);
		CHILD_RC(shmq_open("own", SHMQ_PRODUCER | SHMQ_CONSUMER, &t.q),
			 SHMQ_OK);
		CHILD_CHECK(pthread_create(&th, NULL, own_consumer, &t) == 0);
		child_say(&ch, 'b');
		CHILD_RC(shmq_put(t.q, "m", 1, 20000), SHMQ_OK);
		CHILD_CHECK(pthread_join(th, NULL) == 0);
		_exit(0);
	}
	chan_parent(&ch);
	chan_expect(&ch, 'b');
	wait_watched(&d, "own");
	assert_silence(&d, 0);
	ck_assert_int_eq(byte_write(ch.down[1], 'g'), 0);
	CHILD_OK(kid);
	chan_done(&ch);
	ck_assert_int_eq(daemon_cleanup(&d), 0);
}
END_TEST

/* A slow consumer (a second between gets, asleep outside shmq) behind a
 * full queue: its producer waits long, but the consumer is no waiter. */
START_TEST(test_slow_consumer)
{
	struct daemon d;
	struct stage p;
	struct stage_cfg cp = { .comm = "producer", .out = "slow",
				.rounds = 1000 };

	ck_assert_int_eq(daemon_start(&d, dl_args), 0);
	create_full("slow", 1, 0);
	stage_start(&p, &cp);
	pid_t kid = harness_fork();
	if (kid == 0) {
		shmq_t *q;
		char buf[64];
		size_t len;
		prctl(PR_SET_NAME, "slow-consumer");
		CHILD_RC(shmq_open("slow", SHMQ_CONSUMER, &q), SHMQ_OK);
		for (int i = 0; i < 3; i++) {
			sleep_ms(1000);
			CHILD_RC(shmq_get(q, buf, sizeof(buf), &len, 5000),
				 SHMQ_OK);
		}
		_exit(0);
	}
	stage_go(&p, 'l');
	wait_watched(&d, "slow");
	assert_silence(&d, 0);
	CHILD_OK(kid);
	stage_kill(&p);
	ck_assert_int_eq(daemon_cleanup(&d), 0);
}
END_TEST

/* A consumer blocked in get while its producer is alive but busy
 * elsewhere (waiting for its next command, outside shmq): no deadlock.
 * Then the producer blocks in a put that only that consumer could end:
 * now it is one. */
START_TEST(test_producer_busy)
{
	struct daemon d;
	struct stage c, p;
	struct stage_cfg cc = { .comm = "consumer", .in = "work",
				.hold_in = "back" };
	struct stage_cfg cp = { .comm = "producer", .out = "back",
				.hold_out = "work" };

	ck_assert_int_eq(daemon_start(&d, dl_args), 0);
	create_q("work", 2, 64, 0600, 0);
	create_full("back", 1, 0);
	stage_start(&c, &cc);
	stage_start(&p, &cp);
	stage_go(&c, 'g');
	wait_watched(&d, "work");
	assert_silence(&d, 0);
	stage_go(&p, 'p');
	EVENTUALLY(deadlock_count() == 2);
	stage_kill(&c);
	stage_kill(&p);
	ck_assert_int_eq(daemon_cleanup(&d), 0);
}
END_TEST

/* A stopped process on the path (SIGSTOP while it waits in put): no
 * deadlock while it is stopped; once it runs again, it is one. */
START_TEST(test_stopped)
{
	struct daemon d;
	struct stage a, b;
	struct stage_cfg ca = { .comm = "runner", .in = "q2", .out = "q1" };
	struct stage_cfg cb = { .comm = "stopped", .in = "q1", .out = "q2" };

	ck_assert_int_eq(daemon_start(&d, dl_args), 0);
	create_full("q1", 1, 0);
	create_full("q2", 1, 0);
	stage_start(&a, &ca);
	stage_start(&b, &cb);
	stage_go(&b, 'p');
	/* Seen blocked first: stopped, it could not tell shmqd. */
	wait_watched(&d, "q2");
	ck_assert_int_eq(kill(b.pid, SIGSTOP), 0);
	EVENTUALLY(is_stopped(b.pid));
	stage_go(&a, 'p');
	wait_watched(&d, "q1");
	assert_silence(&d, 0);
	ck_assert_int_eq(kill(b.pid, SIGCONT), 0);
	EVENTUALLY(deadlock_count() == 2);
	stage_kill(&a);
	stage_kill(&b);
	ck_assert_int_eq(daemon_cleanup(&d), 0);
}
END_TEST

/* The cgroup freezer, as a test uses it: a cgroup of its own (v2 if
 * mounted and working, else the v1 freezer) holding one process. */
struct freezer {
	char dir[300];
	int v2;
};

static int write_file(const char *dir, const char *name, const char *text)
{
	char path[400];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	if ((f = fopen(path, "w")) == NULL)
		return -1;
	int ok = fputs(text, f) >= 0;
	return fclose(f) == 0 && ok ? 0 : -1;
}

static int file_has(const char *dir, const char *name, const char *text)
{
	char path[400];

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	return file_contains(path, text);
}

/* Where a cgroup file system is mounted: "cgroup2", or "freezer" (v1). */
static int cgroup_mount(const char *which, char *at, size_t size)
{
	FILE *f = fopen("/proc/self/mountinfo", "r");
	char line[1024];
	int found = 0;

	if (f == NULL)
		return 0;
	while (!found && fgets(line, sizeof(line), f)) {
		char mnt[256], type[64], opts[512];
		const char *dash = strstr(line, " - ");
		if (dash == NULL ||
		    sscanf(line, "%*s %*s %*s %*s %255s", mnt) != 1 ||
		    sscanf(dash + 3, "%63s %*s %511s", type, opts) != 2)
			continue;
		if (strcmp(which, "cgroup2") == 0
			    ? strcmp(type, "cgroup2") == 0
			    : strcmp(type, "cgroup") == 0 && strstr(opts, which))
			found = snprintf(at, size, "%s", mnt) > 0;
	}
	fclose(f);
	return found;
}

/* The test's cgroup in the hierarchy mounted at `at`, named after the
 * process that runs the suite (Check's tests run in its children), so
 * that the suite can remove it after a test that failed. */
static void freezer_dir(char *dir, size_t size, const char *at, pid_t suite)
{
	snprintf(dir, size, "%s/shmq-test.%d", at, (int)suite);
}

/* Freezes `pid` in a cgroup of its own: 0, or -1 where there is no
 * freezer to use (then nothing is left behind). */
static int freeze(pid_t pid, struct freezer *fz)
{
	char at[256], num[32];

	snprintf(num, sizeof(num), "%d", (int)pid);
	for (fz->v2 = 1; fz->v2 >= 0; fz->v2--) {
		if (!cgroup_mount(fz->v2 ? "cgroup2" : "freezer", at, sizeof(at)))
			continue;
		freezer_dir(fz->dir, sizeof(fz->dir), at, getppid());
		if (mkdir(fz->dir, 0755) < 0)
			continue;
		if (write_file(fz->dir, "cgroup.procs", num) == 0 &&
		    write_file(fz->dir, fz->v2 ? "cgroup.freeze" : "freezer.state",
			       fz->v2 ? "1" : "FROZEN") == 0 &&
		    WAIT_UNTIL(fz->v2 ? file_has(fz->dir, "cgroup.events",
						 "frozen 1")
				      : file_has(fz->dir, "freezer.state",
						 "FROZEN"),
			       WAIT_MS))
			return 0;
		write_file(fz->dir, fz->v2 ? "cgroup.freeze" : "freezer.state",
			   fz->v2 ? "0" : "THAWED");
		return -1;      /* (removed once the process is gone) */
	}
	fz->dir[0] = '\0';
	return -1;
}

static void thaw(struct freezer *fz)
{
	if (fz->dir[0])
		write_file(fz->dir, fz->v2 ? "cgroup.freeze" : "freezer.state",
			   fz->v2 ? "0" : "THAWED");
}

/* After its process is gone. */
static void freezer_remove(struct freezer *fz)
{
	if (fz->dir[0])
		ck_assert(WAIT_UNTIL(rmdir(fz->dir) == 0, WAIT_MS));
}

/* After the tests that may freeze (in the suite's process, even after a
 * test failed): thaws and removes what such a test left.  A frozen
 * process dies with its test (SIGKILL, which the v2 freezer lets through;
 * v1 once thawed), and then its cgroup can go. */
static void freezer_sweep(void)
{
	for (int v2 = 1; v2 >= 0; v2--) {
		char at[256], dir[300];
		if (!cgroup_mount(v2 ? "cgroup2" : "freezer", at, sizeof(at)))
			continue;
		freezer_dir(dir, sizeof(dir), at, getpid());
		if (access(dir, F_OK) != 0)
			continue;
		write_file(dir, v2 ? "cgroup.freeze" : "freezer.state",
			   v2 ? "0" : "THAWED");
		if (!WAIT_UNTIL(rmdir(dir) == 0, WAIT_MS))
			fprintf(stderr, "cannot remove %s\n", dir);
	}
}

/* A process on the path frozen by the cgroup freezer: stopped as surely
 * as by SIGSTOP, though /proc/PID/stat says it sleeps (v2) or waits on
 * the disk (v1): no deadlock while it is frozen; thawed, it is one. */
START_TEST(test_frozen)
{
	struct daemon d;
	struct stage a, b;
	struct freezer fz;
	struct stage_cfg ca = { .comm = "runner", .in = "q2", .out = "q1" };
	struct stage_cfg cb = { .comm = "frozen", .in = "q1", .out = "q2" };

	ck_assert_int_eq(daemon_start(&d, dl_args), 0);
	create_full("q1", 1, 0);
	create_full("q2", 1, 0);
	stage_start(&a, &ca);
	stage_start(&b, &cb);
	stage_go(&b, 'p');
	/* Seen blocked first: frozen, it could not tell shmqd. */
	wait_watched(&d, "q2");
	if (freeze(b.pid, &fz) < 0) {
		fprintf(stderr, "no cgroup freezer to use here: "
			"test_frozen checks nothing\n");
	} else {
		stage_go(&a, 'p');
		wait_watched(&d, "q1");
		assert_silence(&d, 0);
		thaw(&fz);
		EVENTUALLY(deadlock_count() == 2);
	}
	stage_kill(&a);
	stage_kill(&b);
	freezer_remove(&fz);
	ck_assert_int_eq(daemon_cleanup(&d), 0);
}
END_TEST

/* A thread blocked in get on its process's own empty queue is
 * interrupted by a signal whose handler blocks in put on another full
 * queue of the process; the other thread sleeps outside shmq.  The
 * records count two waits, and the process has two threads: but one
 * thread is counted twice, and the other runs (it could get, or put).
 * No deadlock. */
static shmq_t *handler_q;
static int handler_fd;

static void blocking_handler(int sig)
{
	(void)sig;
	if (write(handler_fd, "h", 1) != 1)
		_exit(CHILD_FAIL);
	shmq_put(handler_q, "m", 1, 20000);
}

static void *getter_thread(void *arg)
{
	char buf[64];
	size_t len;

	shmq_get(arg, buf, sizeof(buf), &len, 20000);
	return NULL;
}

START_TEST(test_signal_handler)
{
	struct daemon d;
	struct chan ch;

	ck_assert_int_eq(daemon_start(&d, dl_args), 0);
	create_q("empty", 1, 64, 0600, 0);
	create_full("full", 1, 0);
	chan_init(&ch);
	pid_t kid = harness_fork();
	if (kid == 0) {
		shmq_t *e;
		pthread_t th;
		struct shmq_stat st;
		chan_child(&ch);
		prctl(PR_SET_NAME, "handler");
		CHILD_RC(shmq_open("empty", SHMQ_PRODUCER | SHMQ_CONSUMER, &e),
			 SHMQ_OK);
		CHILD_RC(shmq_open("full", SHMQ_PRODUCER | SHMQ_CONSUMER,
				   &handler_q), SHMQ_OK);
		handler_fd = ch.up[1];
		struct sigaction sa;
		memset(&sa, 0, sizeof(sa));
		sa.sa_handler = blocking_handler;
		CHILD_CHECK(sigaction(SIGUSR1, &sa, NULL) == 0);
		CHILD_CHECK(pthread_create(&th, NULL, getter_thread, e) == 0);
		long until = now_ms() + WAIT_MS;
		do {
			sleep_ms(5);
			CHILD_RC(shmq_stat(e, &st), SHMQ_OK);
		} while (st.get_blocked < 1 && now_ms() < until);
		CHILD_CHECK(st.get_blocked == 1);
		child_say(&ch, 'g');
		CHILD_CHECK(child_hear(&ch) == 's');
		CHILD_CHECK(pthread_kill(th, SIGUSR1) == 0);
		child_hear(&ch);        /* asleep outside shmq */
		_exit(0);
	}
	chan_parent(&ch);
	chan_expect(&ch, 'g');
	/* Seen blocked in get first: in the handler, it tells nobody. */
	wait_watched(&d, "empty");
	chan_cmd(&ch, 's', 'h');
	EVENTUALLY(stat_name("full").put_blocked == 1);
	wait_watched(&d, "full");
	assert_silence(&d, 0);
	kill(kid, SIGKILL);
	harness_wait(kid, 5000);
	chan_done(&ch);
	ck_assert_int_eq(daemon_cleanup(&d), 0);
}
END_TEST

/* A put on a full queue that no consumer has open (as between two runs
 * of `qctl get` in a shell loop): a newcomer may end it, no deadlock.
 * Once a consumer that is itself blocked for good opens it, it is one. */
START_TEST(test_nobody_attached)
{
	struct daemon d;
	struct stage p, c;
	struct stage_cfg cp = { .comm = "lonely", .out = "full",
				.hold_out = "empty" };
	struct stage_cfg cc = { .comm = "late", .in = "empty",
				.hold_in = "full" };

	ck_assert_int_eq(daemon_start(&d, dl_args), 0);
	create_full("full", 1, 0);
	create_q("empty", 1, 64, 0600, 0);
	stage_start(&p, &cp);
	stage_go(&p, 'p');
	wait_watched(&d, "full");
	assert_silence(&d, 0);
	stage_start(&c, &cc);
	stage_go(&c, 'g');
	EVENTUALLY(deadlock_count() == 2);
	stage_kill(&p);
	stage_kill(&c);
	ck_assert_int_eq(daemon_cleanup(&d), 0);
}
END_TEST

/* A member of a deadlock killed (-9) while blocked: the deadlock is over
 * at once, and nothing it left makes the others look stuck (the one
 * that waited for it now waits for nobody attached). */
START_TEST(test_waiter_killed)
{
	struct stage st[3];
	struct daemon d;

	ck_assert_int_eq(daemon_start(&d, dl_args), 0);
	create_full("a", 1, 0);
	create_full("b", 1, 0);
	create_full("c", 1, 0);
	cycle_start(st, 1);
	for (int i = 0; i < 3; i++)
		stage_go(&st[i], 'l');
	EVENTUALLY(deadlock_count() == 3);
	stage_kill(&st[2]);
	EVENTUALLY(deadlock_count() == 0);
	EVENTUALLY(stat_name("a").deadlocked == 0);
	assert_silence(&d, 1);
	stage_kill(&st[0]);
	stage_kill(&st[1]);
	ck_assert_int_eq(daemon_cleanup(&d), 0);
}
END_TEST

/* --deadlock-timeout 0: nothing is looked for, nothing found. */
START_TEST(test_off)
{
	static char *const off[] = { "--deadlock-timeout", "0", "-v", NULL };
	struct stage s;
	struct daemon d;
	struct stage_cfg c = { .comm = "selfish", .in = "own", .out = "own",
			       .rounds = 1 };

	ck_assert_int_eq(daemon_start(&d, off), 0);
	create_full("own", 1, 0);
	stage_start(&s, &c);
	stage_go(&s, 'l');
	EVENTUALLY(stat_name("own").put_blocked == 1);
	assert_silence(&d, 0);
	ck_assert(!file_contains(d.log, "watching"));
	stage_kill(&s);
	ck_assert_int_eq(daemon_cleanup(&d), 0);
}
END_TEST


/* Writes into entry `c` of a queue's attachment table what shmqd writes
 * for process `pid` attached as `role`, and, if `get_threads`, a get that
 * has waited for five seconds in that many threads: a lie, unless shmqd
 * handed the entry to that process itself. */
static void forge_entry(struct shmq_client *c, pid_t pid, uint32_t role,
			uint32_t get_threads)
{
	__atomic_store_n(&c->pid, 0, __ATOMIC_SEQ_CST);
	memset(&c->waits, 0, sizeof(c->waits));
	c->start_time = stat_field(pid, 22);
	c->role = role;
	c->gen = 4242;
	if (get_threads) {
		c->waits[1].threads = get_threads;
		c->waits[1].since = (int64_t)mono_ns() - 5000000000LL;
	}
	__atomic_store_n(&c->pid, (uint32_t)pid, __ATOMIC_SEQ_CST);
}

/* Whether some entry of the table names `pid`. */
static int entry_of(struct shmq_seg_hdr *h, pid_t pid)
{
	struct shmq_client *c = segment_clients(h);

	for (uint32_t i = 0; i < h->clients; i++)
		if (__atomic_load_n(&c[i].pid, __ATOMIC_SEQ_CST) == (uint32_t)pid)
			return 1;
	return 0;
}

/* Forges, in free entries of `h`, W blocked in get and V a producer. */
static void forge_pair(struct shmq_seg_hdr *h, pid_t v, pid_t w)
{
	struct shmq_client *c = segment_clients(h);
	int done = 0;

	for (uint32_t i = 0; i < h->clients && done < 2; i++) {
		if (__atomic_load_n(&c[i].pid, __ATOMIC_SEQ_CST) != 0)
			continue;
		if (done++ == 0)
			forge_entry(&c[i], w, SHMQ_ROLE_CONSUMER,
				    (uint32_t)stat_field(w, 20));
		else
			forge_entry(&c[i], v, SHMQ_ROLE_PRODUCER, 0);
	}
	CHILD_CHECK(done == 2);
}

/*
 * Another user scribbles over the table of a queue of its own: entries
 * saying that W (a process of ours, idle outside shmq, the only consumer
 * of our queue R) is blocked in get on its queue, and that V (blocked in
 * put on R, which is full and has the fail policy) is its producer.
 * Believed, they make a deadlock of V and W, fail V's put and name R to
 * a user who may not read it.  shmqd trusts a record only in an entry it
 * handed to that process itself: it clears the forged entries, never
 * reports, and V's put goes through once R has room.
 */
START_TEST(test_forged_records)
{
	struct stage v, w;
	struct daemon d;
	struct chan ch;
	struct stage_cfg cv = { .comm = "victim-v", .out = "R" };
	struct stage_cfg cw = { .comm = "victim-w", .hold_in = "R" };

	ck_assert_int_eq(daemon_start(&d, dl_args), 0);
	share_socket(&d);
	create_full("R", 1, SHMQ_DEADLOCK_FAIL);
	stage_start(&w, &cw);
	stage_start(&v, &cv);
	stage_go(&v, 'p');
	EVENTUALLY(stat_name("R").put_blocked == 1);

	chan_init(&ch);
	pid_t kid = harness_fork();
	if (kid == 0) {
		struct shmq_attr a = attr_of(1, 64, 0600, 0);
		shmq_t *c;
		char buf[64];
		size_t len;
		chan_child(&ch);
		become_nobody(NULL, 0);
		CHILD_RC(shmq_create("mine", &a, 0), SHMQ_OK);
		CHILD_RC(shmq_open("mine", SHMQ_CONSUMER, &c), SHMQ_OK);
		struct shmq_seg_hdr *h = segment_mapped("mine");
		CHILD_CHECK(h != NULL);
		forge_pair(h, v.pid, w.pid);
		/* A real wait, long enough to be told: shmqd looks. */
		CHILD_RC(shmq_get(c, buf, sizeof(buf), &len, 3 * TIMEOUT_MS),
			 SHMQ_ETIMEDOUT);
		long until = now_ms() + WAIT_MS;
		while ((entry_of(h, v.pid) || entry_of(h, w.pid)) &&
		       now_ms() < until)
			sleep_ms(10);
		CHILD_CHECK(!entry_of(h, v.pid) && !entry_of(h, w.pid));
		/* Again, for good, with a real get of our own blocked in
		 * another process, so that shmqd goes on looking. */
		pid_t getter = fork();
		if (getter == 0) {
			shmq_t *g;
			if (shmq_open("mine", SHMQ_CONSUMER, &g) == SHMQ_OK)
				shmq_get(g, buf, sizeof(buf), &len,
					 SILENCE_MS + 500);
			_exit(0);
		}
		forge_pair(h, v.pid, w.pid);
		/* And out of sight ourselves: attached and running, we could
		 * close the queue and so free W. */
		struct shmq_client *e = segment_clients(h);
		for (uint32_t i = 0; i < h->clients; i++)
			if (e[i].pid == (uint32_t)getpid())
				__atomic_store_n(&e[i].pid, 0, __ATOMIC_SEQ_CST);
		child_say(&ch, 'f');
		until = now_ms() + SILENCE_MS;
		while (now_ms() < until) {
			struct shmq_deadlock_wait *rows;
			size_t n;
			CHILD_RC(shmq_deadlocks(&rows, &n), SHMQ_OK);
			CHILD_CHECK(n == 0);
			free(rows);
			sleep_ms(20);
		}
		waitpid(getter, NULL, 0);
		_exit(0);
	}
	chan_parent(&ch);
	chan_expect(&ch, 'f');
	wait_watched(&d, "mine");
	assert_silence(&d, 0);
	CHILD_OK(kid);
	chan_done(&ch);
	ck_assert_int_eq(stat_name("R").put_blocked, 1);
	shmq_t *r = open_q("R", SHMQ_CONSUMER);
	get_str(r, "token");
	chan_expect(&v.ch, 'k');
	RC_EQ(shmq_detach(r), SHMQ_OK);
	stage_kill(&v);
	stage_kill(&w);
	ck_assert_int_eq(daemon_cleanup(&d), 0);
}
END_TEST

/*
 * A deadlock across users: P1 (ours) consumes our queue R (mode 0602:
 * others may only put) and is blocked in put on N, the other user's
 * queue; P2 (the other user's) consumes N and is blocked in put on R.
 * The other user sees the deadlock, but never R's name, nor what R
 * holds: that wait is listed on a queue it may not read.
 */
START_TEST(test_unreadable_hidden)
{
	static const char *const json[] = { "deadlocks", "--json", NULL };
	static const char *const text[] = { "deadlocks", NULL };
	struct stage p1;
	struct daemon d;
	struct chan ch;
	struct stage_cfg c1 = { .comm = "ours", .in = "R", .out = "N" };

	ck_assert_int_eq(daemon_start(&d, dl_args), 0);
	share_socket(&d);
	create_full_mode("R", 1, 0602, 0);

	chan_init(&ch);
	pid_t p2 = harness_fork();
	if (p2 == 0) {
		struct shmq_attr a = attr_of(1, 64, 0666, 0);
		shmq_t *r, *n;
		chan_child(&ch);
		prctl(PR_SET_NAME, "theirs");
		become_nobody(NULL, 0);
		CHILD_RC(shmq_create("N", &a, 0), SHMQ_OK);
		CHILD_RC(shmq_open("N", SHMQ_PRODUCER | SHMQ_CONSUMER, &n),
			 SHMQ_OK);
		CHILD_RC(shmq_put(n, "token", 5, 0), SHMQ_OK);
		CHILD_RC(shmq_open("R", SHMQ_PRODUCER, &r), SHMQ_OK);
		child_say(&ch, 'r');
		CHILD_RC(shmq_put(r, "m", 1, 20000), SHMQ_OK);
		_exit(0);
	}
	chan_parent(&ch);
	chan_expect(&ch, 'r');
	stage_start(&p1, &c1);
	stage_go(&p1, 'p');
	EVENTUALLY(deadlock_count() == 2);

	char out[8192];
	int status = run_qctl_as(NOBODY, json, out, sizeof(out));
	ck_assert_msg(exited_with(status, 12), "qctl: %s", describe(status));
	ck_assert_msg(strstr(out, "\"queue\":\"N\""), "%s", out);
	ck_assert_msg(strstr(out, "\"queue\":null"), "%s", out);
	ck_assert_msg(!strstr(out, "\"R\""), "%s", out);
	status = run_qctl_as(NOBODY, text, out, sizeof(out));
	ck_assert_msg(exited_with(status, 12), "qctl: %s", describe(status));
	ck_assert_msg(strstr(out, "on a queue you may not read"), "%s", out);
	ck_assert_msg(!strstr(out, "'R'"), "%s", out);
	/* We may read both. */
	status = run_qctl(json, out, sizeof(out));
	ck_assert_msg(strstr(out, "\"queue\":\"R\""), "%s", out);

	kill(p2, SIGKILL);
	harness_wait(p2, 5000);
	chan_done(&ch);
	stage_kill(&p1);
	ck_assert_int_eq(daemon_cleanup(&d), 0);
}
END_TEST


/* Seventy processes, each putting to its own full queue: seventy
 * deadlocks at once, each logged once however many looks see them. */
START_TEST(test_many_logged_once)
{
	enum { N = 70 };
	static struct stage st[N];
	struct daemon d;

	ck_assert_int_eq(daemon_start(&d, dl_args), 0);
	for (int i = 0; i < N; i++) {
		char name[16];
		snprintf(name, sizeof(name), "own%d", i);
		create_full(name, 1, 0);
		struct stage_cfg c = { .comm = "selfish", .in = name,
				       .out = name, .rounds = 1 };
		stage_start(&st[i], &c);
	}
	for (int i = 0; i < N; i++)
		stage_go(&st[i], 'l');
	EVENTUALLY(count_in_file(d.log, "deadlock: pid") >= N);
	sleep_ms(4 * TIMEOUT_MS);
	ck_assert_uint_eq(deadlock_count(), N);
	ck_assert_int_eq(count_in_file(d.log, "deadlock: pid"), N);
	for (int i = 0; i < N; i++) {
		char line[64];
		snprintf(line, sizeof(line), "deadlock: pid %d (", st[i].pid);
		ck_assert_int_eq(count_in_file(d.log, line), 1);
	}
	for (int i = 0; i < N; i++)
		stage_kill(&st[i]);
	ck_assert_int_eq(daemon_cleanup(&d), 0);
}
END_TEST

/* shmqd's CPU time so far, in clock ticks (/proc/PID/stat). */
static unsigned long long cpu_ticks(pid_t pid)
{
	return stat_field(pid, 14) + stat_field(pid, 15);
}

/* Its voluntary context switches so far: how often it went to sleep. */
static long sleeps_of(pid_t pid)
{
	char path[64], line[256];
	long n = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	if ((f = fopen(path, "r")) == NULL)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "voluntary_ctxt_switches: %ld", &n) == 1)
			break;
	fclose(f);
	return n;
}

/* The attacker of test_forged_chains: K queues of its own, every entry
 * of their tables but its own forged as processes blocked in get in
 * chains (process j waits on queues j and j + 1), a real get blocked in
 * each (so that shmqd looks), then its own entries forged too. */
enum { CHAIN_K = 64 };
static shmq_t *chain_h[CHAIN_K];

static void *chain_get(void *arg)
{
	char buf[64];
	size_t len;

	shmq_get(chain_h[(long)arg], buf, sizeof(buf), &len, 3 * TIMEOUT_MS);
	return NULL;
}

static void forge_chains(struct shmq_seg_hdr **h, int own_too)
{
	for (int j = 0; j < CHAIN_K; j++) {
		struct shmq_client *c = segment_clients(h[j]);
		for (uint32_t s = 0; s < h[j]->clients; s++) {
			uint32_t pid = __atomic_load_n(&c[s].pid, __ATOMIC_SEQ_CST);
			if ((pid == (uint32_t)getpid()) != own_too)
				continue;
			__atomic_store_n(&c[s].pid, 0, __ATOMIC_SEQ_CST);
			c[s].start_time = 1;
			c[s].gen = 777;
			c[s].role = SHMQ_ROLE_PRODUCER | SHMQ_ROLE_CONSUMER;
			c[s].waits[1].threads = 1;
			c[s].waits[1].since = (int64_t)mono_ns() - 100000000000LL;
			if (s == 0)
				pid = 1000000 + (uint32_t)j;
			else if (s == 1 && j > 0)
				pid = 1000000 + (uint32_t)j - 1;
			else
				pid = 2000000 + (uint32_t)j * h[j]->clients + s;
			__atomic_store_n(&c[s].pid, pid, __ATOMIC_SEQ_CST);
		}
	}
}

/*
 * Forged records by the thousand cost shmqd nothing: another user fills
 * the tables of 64 queues of its own with processes blocked in chains
 * (which a reduction that rescans everything per step pays for in the
 * square), makes shmqd look with a real get in each, then leaves the
 * forgeries behind.  shmqd reads only the entries it handed out: while it
 * looks its CPU time stays small, and once no real call is blocked it
 * stops looking altogether (it does not even wake up).
 */
START_TEST(test_forged_chains)
{
	struct daemon d;
	struct chan ch;

	ck_assert_int_eq(daemon_start(&d, dl_args), 0);
	share_socket(&d);
	chan_init(&ch);
	pid_t kid = harness_fork();
	if (kid == 0) {
		static struct shmq_seg_hdr *h[CHAIN_K];
		pthread_t th[CHAIN_K];
		chan_child(&ch);
		become_nobody(NULL, 0);
		for (long j = 0; j < CHAIN_K; j++) {
			struct shmq_attr a = attr_of(1, 64, 0600, 0);
			char name[16];
			snprintf(name, sizeof(name), "chain%ld", j);
			CHILD_RC(shmq_create(name, &a, 0), SHMQ_OK);
			CHILD_RC(shmq_open(name, SHMQ_CONSUMER, &chain_h[j]),
				 SHMQ_OK);
			CHILD_CHECK((h[j] = segment_mapped(name)) != NULL);
		}
		forge_chains(h, 0);
		for (long j = 0; j < CHAIN_K; j++)
			CHILD_CHECK(pthread_create(&th[j], NULL, chain_get,
						   (void *)j) == 0);
		child_say(&ch, 'b');
		for (long j = 0; j < CHAIN_K; j++)
			pthread_join(th[j], NULL);
		/* shmqd cleared what it saw when it began to look: forge
		 * it all again, our own entries too, and stay a while. */
		forge_chains(h, 0);
		forge_chains(h, 1);
		child_say(&ch, 'f');
		sleep_ms(4 * TIMEOUT_MS);
		_exit(0);
	}
	chan_parent(&ch);
	chan_expect(&ch, 'b');
	EVENTUALLY(count_in_file(d.log, "deadlock detection: watching") ==
		   CHAIN_K);
	unsigned long long t0 = cpu_ticks(d.pid);
	chan_expect(&ch, 'f');
	CHILD_OK(kid);
	chan_done(&ch);
	unsigned long long used = cpu_ticks(d.pid) - t0;
	fprintf(stderr, "shmqd: %llu ticks of CPU while watching %d queues of "
		"forgeries\n", used, CHAIN_K);
	ck_assert_msg(used <= 20, "shmqd used %llu clock ticks", used);

	/* Nothing real is blocked any more: after a look or two shmqd
	 * sleeps, however many forged waits the tables still hold. */
	sleep_ms(3 * TIMEOUT_MS / 2);
	long before = sleeps_of(d.pid);
	sleep_ms(3 * TIMEOUT_MS);
	ck_assert_int_eq(sleeps_of(d.pid), before);
	ck_assert_int_eq(count_in_file(d.log, "deadlock: pid"), 0);
	ck_assert_int_eq(daemon_cleanup(&d), 0);
}
END_TEST


/*
 * An idle consumer blocked in get, its producer alive and busy elsewhere:
 * no deadlock, and nothing that waiting longer could make one.  shmqd
 * backs off (a look every period at first, then every 2, 4, 8): over
 * sixteen periods it wakes a few times, not sixteen, and so does the
 * consumer (at most once a second, as any sleeper).  A new wait (the
 * producer blocking in put on a queue only that consumer drains) is
 * looked at as soon as it reports, and the deadlock is found within
 * twice the timeout as ever.
 */
START_TEST(test_backoff)
{
	struct daemon d;
	struct stage c, p;
	struct stage_cfg cc = { .comm = "consumer", .in = "work",
				.hold_in = "back" };
	struct stage_cfg cp = { .comm = "producer", .out = "back",
				.hold_out = "work" };
	const long period = TIMEOUT_MS / 2;

	ck_assert_int_eq(daemon_start(&d, dl_args), 0);
	create_q("work", 2, 64, 0600, 0);
	create_full("back", 1, 0);
	stage_start(&c, &cc);
	stage_start(&p, &cp);
	stage_go(&c, 'g');
	wait_watched(&d, "work");
	/* Backing off: 1 + 2 + 4 + 8 periods, and the wait must first be
	 * a whole timeout old. */
	sleep_ms(17 * period);
	long daemon0 = sleeps_of(d.pid), consumer0 = sleeps_of(c.pid);
	sleep_ms(16 * period);
	long daemon_woke = sleeps_of(d.pid) - daemon0;
	long consumer_woke = sleeps_of(c.pid) - consumer0;
	fprintf(stderr, "over %ld ms of an idle get: shmqd woke %ld times, "
		"the consumer %ld\n", 16 * period, daemon_woke, consumer_woke);
	ck_assert_msg(daemon_woke <= 5, "shmqd woke %ld times", daemon_woke);
	ck_assert_msg(consumer_woke <= 5, "the consumer woke %ld times",
		      consumer_woke);
	ck_assert_uint_eq(deadlock_count(), 0);

	stage_go(&p, 'p');
	long t0 = now_ms();
	ck_assert(WAIT_UNTIL(deadlock_count() == 2, 4 * TIMEOUT_MS));
	long took = now_ms() - t0;
	ck_assert_msg(took <= 2 * TIMEOUT_MS, "found after %ld ms", took);
	stage_kill(&c);
	stage_kill(&p);
	ck_assert_int_eq(daemon_cleanup(&d), 0);
}
END_TEST

/* ======================================================================= */

static Suite *deadlock_suite(void)
{
	Suite *s = suite_create("deadlock");
	TCase *tc;

	tc = tcase_create("found");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_cycle_reported);
	tcase_add_test(tc, test_cycle_fail);
	tcase_add_test(tc, test_get_victim);
	tcase_add_test(tc, test_self_put);
	tcase_add_test(tc, test_byte_budget);
	tcase_add_test(tc, test_wait_recorded);
	tcase_add_test(tc, test_sliced_recorded);
	tcase_add_test(tc, test_sliced_timed);
	tcase_add_test(tc, test_sliced_fail);
	tcase_add_test(tc, test_continue_args);
	tcase_add_test(tc, test_behind);
	tcase_add_test(tc, test_lease_holder);
	tcase_add_test(tc, test_threads_victim);
	tcase_add_test(tc, test_timed_ends_itself);
	tcase_add_test(tc, test_timed_reported);
	tcase_add_test(tc, test_qctl_victim);
	tcase_add_test(tc, test_found_after_restart);
	tcase_add_test(tc, test_many_logged_once);
	suite_add_tcase(s, tc);

	tc = tcase_create("never");
	tcase_set_timeout(tc, 60);
	tcase_add_unchecked_fixture(tc, NULL, freezer_sweep);
	tcase_add_test(tc, test_other_thread_runs);
	tcase_add_test(tc, test_slow_consumer);
	tcase_add_test(tc, test_producer_busy);
	tcase_add_test(tc, test_stopped);
	tcase_add_test(tc, test_frozen);
	tcase_add_test(tc, test_signal_handler);
	tcase_add_test(tc, test_nobody_attached);
	tcase_add_test(tc, test_waiter_killed);
	tcase_add_test(tc, test_off);
	suite_add_tcase(s, tc);

	tc = tcase_create("hostile");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_comm_escaped);
	tcase_add_test(tc, test_forged_records);
	tcase_add_test(tc, test_unreadable_hidden);
	tcase_add_test(tc, test_forged_chains);
	suite_add_tcase(s, tc);

	tc = tcase_create("cost");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_backoff);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return run_suite(deadlock_suite(), "deadlock");
}
