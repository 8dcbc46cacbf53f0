/*
 * run.c - the parent's side of one run: one case on one transport.
 *
 * Owns the shared page, the start barrier, forking and pinning the
 * children, collecting them (killing all on the first failure, the
 * deadline or an interrupt), sending the stops, and turning what they
 * wrote into a sample: verified (every message arrived exactly once) or
 * FAILED.  It also measures how busy the rest of the machine was.  It
 * must never leave a child of a run alive when run_once() returns.
 */
#define _GNU_SOURCE
#include "config.h"

#include <inttypes.h>
#include <poll.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"
#include "cpu.h"

struct shared *sh;

void run_init(void)
{
	sh = mmap(NULL, sizeof(*sh), PROT_READ | PROT_WRITE,
		  MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (sh == MAP_FAILED)
		fatal("mmap: %s", strerror(errno));
}

/* The busy loop of a CPUS_BUSY1 run, while it runs. */
static pid_t busy_pid;

/* Clock ticks a process of ours has used. */
static uint64_t pid_ticks(pid_t pid)
{
	char path[64], buf[512];
	unsigned long ut = 0, st = 0;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	FILE *f = fopen(path, "re");
	if (f == NULL)
		return 0;
	char *p = fgets(buf, sizeof(buf), f) ? strrchr(buf, ')') : NULL;
	/* Fields 14 and 15, after "pid (comm) state ...". */
	if (p == NULL || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u "
				"%*u %*u %lu %lu", &ut, &st) != 2)
		ut = st = 0;
	fclose(f);
	return ut + st;
}

/* Clock ticks the --keep-awake spinners and a run's busy loop have used:
 * not "other load". */
static uint64_t awake_ticks(void)
{
	uint64_t sum = busy_pid > 0 ? pid_ticks(busy_pid) : 0;

	for (int i = 0; i < env.nawake; i++)
		sum += pid_ticks(env.awake[i]);
	return sum;
}

/* CPU time the whole machine spent busy (steal included: a hypervisor
 * that runs someone else took it from us), in ns. */
static uint64_t machine_busy_ns(void)
{
	unsigned long long v[8] = { 0 };
	FILE *f = fopen("/proc/stat", "re");
	int n = 0;

	if (f) {
		n = fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu",
			   &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &v[6],
			   &v[7]);
		fclose(f);
	}
	if (n != 8)
		return 0;
	uint64_t busy = v[0] + v[1] + v[2] + v[5] + v[6] + v[7];
	uint64_t spun = awake_ticks();
	busy = busy > spun ? busy - spun : 0;
	return busy * (1000000000u / (uint64_t)sysconf(_SC_CLK_TCK));
}

/* How many CPUs' worth of other work ran during a run: the machine's busy
 * time minus our children's.  Clock ticks make it coarse (10 ms). */
static double other_load(uint64_t busy0, uint64_t t0, const struct sample *s)
{
	uint64_t busy = machine_busy_ns() - busy0, wall = mono_ns() - t0;
	double ours = (double)(s->prod.user_ns + s->prod.sys_ns +
			       s->cons.user_ns + s->cons.sys_ns);
	double other = ((double)busy - ours) / (double)wall;

	return busy0 == 0 || wall == 0 ? -1 : other < 0 ? 0 : other;
}

struct run {
	const struct bcase *k;
	struct chan ch[2];
	int nch;
	pid_t pid[MAX_KIDS];
	int consumer[MAX_KIDS];         /* is kid i a consumer */
	struct side_res *res[MAX_KIDS];
	int n, alive, consumers_alive;
	int failed;
	char err[200];
	uint8_t *stop;
};

__attribute__((format(printf, 2, 3)))
static void run_fail(struct run *r, const char *fmt, ...)
{
	va_list ap;

	if (r->failed++)
		return;
	va_start(ap, fmt);
	vsnprintf(r->err, sizeof(r->err), fmt, ap);
	va_end(ap);
}

void pin_to(int cpu)
{
	cpu_set_t set;

	if (cpu < 0)
		return;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	sched_setaffinity(0, sizeof(set), &set);
}

static pid_t spawn(struct run *r, job_fn fn, struct job *j, int consumer,
		   int parent_fds[2])
{
	pid_t pid = fork();

	if (pid < 0) {
		run_fail(r, "fork: %s", strerror(errno));
		return -1;
	}
	if (pid == 0) {
		child_signals(SIGKILL);
		close(parent_fds[0]);
		close(parent_fds[1]);
		pin_to(j->cpu);
		if (j->quota && quota_join() < 0) {
			char c = 'x';
			snprintf(j->res->err, sizeof(j->res->err),
				 "joining the cgroup: %s", strerror(errno));
			if (write(j->ready_fd, &c, 1) != 1)
				_exit(1);
			_exit(1);
		}
		_exit(fn(j) ? 1 : 0);
	}
	kids_add(pid);
	r->pid[r->n] = pid;
	r->consumer[r->n] = consumer;
	r->res[r->n] = j->res;
	r->n++;
	r->alive++;
	r->consumers_alive += consumer;
	return pid;
}

static void kill_run(struct run *r)
{
	for (int i = 0; i < r->n; i++) {
		if (r->pid[i] <= 0)
			continue;
		kill(r->pid[i], SIGKILL);
		while (waitpid(r->pid[i], NULL, 0) < 0 && errno == EINTR)
			;
		kids_forget(r->pid[i]);
		r->pid[i] = 0;
		r->alive--;
	}
}

static void kid_exited(struct run *r, int i, int status)
{
	kids_forget(r->pid[i]);
	r->pid[i] = 0;
	r->alive--;
	r->consumers_alive -= r->consumer[i];
	if (WIFSIGNALED(status)) {
		run_fail(r, "a %s was killed by signal %d",
			 r->consumer[i] ? "consumer" : "producer",
			 WTERMSIG(status));
		return;
	}
	if (WEXITSTATUS(status) != 0) {
		run_fail(r, "%s", r->res[i]->err[0] ? r->res[i]->err
						    : "a child failed");
		return;
	}
	/* One stop at a time: a batch receive can then never swallow a stop
	 * meant for another consumer. */
	if (r->consumer[i] && r->k->kind == TPUT && r->consumers_alive > 0 &&
	    send_stop(&r->ch[0], r->stop))
		run_fail(r, "sending a stop: %s", r->ch[0].why);
}

/* Collects the children; kills them all on the first failure, on the
 * deadline, or on an interrupt. */
static void reap(struct run *r, uint64_t deadline)
{
	while (r->alive > 0) {
		int reaped = 0, status;

		for (int i = 0; i < r->n; i++)
			if (r->pid[i] > 0 &&
			    waitpid(r->pid[i], &status, WNOHANG) == r->pid[i]) {
				kid_exited(r, i, status);
				reaped = 1;
			}
		if (interrupted)
			run_fail(r, "interrupted");
		else if (!reaped && r->alive && mono_ns() >= deadline)
			run_fail(r, "timed out");
		if (r->failed) {
			kill_run(r);
			break;
		}
		if (reaped || r->alive == 0)
			continue;
		uint64_t left = deadline - mono_ns();
		if (left > 1000000000u)
			left = 1000000000u;
		struct timespec ts = { 0, (long)left };
		if (left == 1000000000u)
			ts = (struct timespec){ 1, 0 };
		sigtimedwait(&env.chld, NULL, &ts);
	}
}

/* Waits for every child's ready byte ('x' if it failed to set up). */
static int await_ready(struct run *r, int fd)
{
	uint64_t end = mono_ns() + SETUP_S * 1000000000ull;
	int need = r->n;

	while (need > 0 && !r->failed) {
		struct pollfd p = { fd, POLLIN, 0 };
		uint64_t now = mono_ns();
		char buf[MAX_KIDS];
		if (interrupted || now >= end) {
			run_fail(r, interrupted ? "interrupted"
						: "children not ready in time");
			break;
		}
		int rc = poll(&p, 1, (int)((end - now) / 1000000) + 1);
		if (rc <= 0)
			continue;
		ssize_t n = read(fd, buf, (size_t)need);
		if (n <= 0) {
			run_fail(r, "a child died while setting up");
			break;
		}
		for (ssize_t i = 0; i < n; i++)
			if (buf[i] != 'r')
				for (int k = 0; k < r->n; k++)
					if (r->res[k]->err[0])
						run_fail(r, "%s", r->res[k]->err);
		need -= (int)n;
	}
	return r->failed ? -1 : 0;
}

static void spawn_all(struct run *r, struct job *jobs, int syscalls,
		      int barrier[2][2])
{
	const struct bcase *k = r->k;
	int pin = opt.pin && k->producers == 1 && k->consumers == 1 &&
		  cpus_online() >= 2 && k->cpus == CPUS_ALL;
	int one = k->cpus == CPUS_PIN1 || k->cpus == CPUS_BUSY1 ? onecpu_cpu()
								 : -1;
	int parent_fds[2] = { barrier[0][0], barrier[1][1] };
	unsigned np = k->kind == PING ? 1 : k->producers;
	unsigned nc = k->kind == PING ? 1 : k->consumers;

	for (unsigned i = 0; i < np + nc && !r->failed; i++) {
		struct job *j = &jobs[i];
		int cons = i >= np;
		*j = (struct job){
			.k = k, .ch = r->ch, .index = cons ? i - np : i,
			.ready_fd = barrier[0][1], .go_fd = barrier[1][0],
			.syscalls = syscalls,
			.cpu = pin ? cons : one, .quota = k->cpus == CPUS_QUOTA1,
			.res = cons ? &sh->cons[i - np] : &sh->prod[i],
		};
		job_fn fn = k->kind == PING ? (cons ? pp_server : pp_client)
					    : (cons ? consumer : producer);
		spawn(r, fn, j, cons, parent_fds);
	}
}

static uint64_t sum_to(uint64_t n)
{
	return n % 2 ? n * ((n - 1) / 2) : (n / 2) * (n - 1);
}

static uint64_t sum_sq_to(uint64_t n)
{
	unsigned __int128 v = (unsigned __int128)n * (n ? n - 1 : 0);

	return n ? (uint64_t)(v * (2 * n - 1) / 6) : 0;
}

/* Every producer's 0..sent-1 arrived exactly once: the counts, sums and
 * sums of squares of what the consumers saw must say so. */
static void verify(struct run *r, struct sample *s)
{
	const struct bcase *k = r->k;
	uint64_t total = 0, t_end = UINT64_MAX;

	for (unsigned p = 0; p < k->producers; p++) {
		uint64_t sent = sh->prod[p].msgs, cnt = 0, sum = 0, sq = 0;
		for (unsigned c = 0; c < k->consumers; c++) {
			cnt += sh->cons[c].t.cnt[p];
			sum += sh->cons[c].t.sum[p];
			sq += sh->cons[c].t.sq[p];
		}
		if (cnt != sent || sum != sum_to(sent) || sq != sum_sq_to(sent))
			run_fail(r, "producer %u sent %" PRIu64 " messages, "
				 "%" PRIu64 " arrived (or not each once)",
				 p, sent, cnt);
		total += sent;
		usage_add(&s->prod, &sh->prod[p].u);
	}
	for (unsigned c = 0; c < k->consumers; c++) {
		if (sh->cons[c].t_stop && sh->cons[c].t_stop < t_end)
			t_end = sh->cons[c].t_stop;
		s->calls += sh->cons[c].calls;
		usage_add(&s->cons, &sh->cons[c].u);
	}
	if (r->failed || t_end <= sh->t0 || total == 0) {
		run_fail(r, "no messages");
		return;
	}
	/* The first stop is taken once every data message has been. */
	s->value = (double)total * NS / (double)(t_end - sh->t0);
	s->msgs = total;
}

static void run_sample(struct run *r, struct sample *s)
{
	memset(s, 0, sizeof(*s));
	if (r->k->kind == PING) {
		s->value = (double)sh->prod[0].rtt_med;
		s->p99 = (double)sh->prod[0].rtt_p99;
		s->msgs = sh->prod[0].msgs;
		s->prod = sh->prod[0].u;
		s->cons = sh->cons[0].u;
	} else {
		verify(r, s);
	}
	s->ok = !r->failed;
	if (r->failed)
		snprintf(s->err, sizeof(s->err), "%s", r->err);
}

/* Waits (up to a second) for a 50 ms window in which other processes
 * kept less than a third of a CPU busy: a shared machine has bursts of
 * load (a compile, a test) that a run need not land in. */
static void settle(void)
{
	uint64_t give_up = mono_ns() + 1000000000u;

	if (opt.quick)
		return;
	do {
		uint64_t b0 = machine_busy_ns(), t0 = mono_ns();
		sleep_ns(50000000);
		double busy = (double)(machine_busy_ns() - b0) /
			      (double)(mono_ns() - t0);
		if (busy < 0.34 || b0 == 0)
			return;
	} while (mono_ns() < give_up && !interrupted);
}

void run_once(const struct bcase *k, int t, int syscalls,
		     struct sample *s)
{
	struct run r = { .k = k, .nch = k->kind == PING ? 2 : 1 };
	struct job jobs[MAX_KIDS];
	int barrier[2][2] = { { -1, -1 }, { -1, -1 } };  /* ready, go */
	uint64_t busy0 = 0, t0 = 0;
	int made = 0;

	settle();
	if (k->cpus == CPUS_BUSY1 && (busy_pid = busy_start(onecpu_cpu())) < 0) {
		run_fail(&r, "fork: %s", strerror(errno));
		goto out;
	}
	memset(sh, 0, sizeof(*sh));
	sh->producers_left = k->producers;
	r.stop = msg_buffer(k->size, 1);
	for (; made < r.nch; made++)
		if (chan_create(&r.ch[made], t, k)) {
			run_fail(&r, "%s", r.ch[made].why);
			goto out;
		}
	if (r.stop == NULL || pipe(barrier[0]) < 0 || pipe(barrier[1]) < 0) {
		run_fail(&r, "setup: %s", strerror(errno));
		goto out;
	}
	spawn_all(&r, jobs, syscalls, barrier);
	close(barrier[0][1]);
	close(barrier[1][0]);
	barrier[0][1] = barrier[1][0] = -1;
	for (int i = 0; i < r.nch; i++)
		r.ch[i].timeout_ms = 5000;
	if (r.failed || await_ready(&r, barrier[0][0])) {
		kill_run(&r);
		goto out;
	}
	busy0 = machine_busy_ns();
	t0 = mono_ns();
	sh->t0 = t0;
	__atomic_store_n(&sh->deadline, t0 + (uint64_t)(opt.seconds * NS),
			 __ATOMIC_RELEASE);
	close(barrier[1][1]);           /* go */
	barrier[1][1] = -1;
	reap(&r, t0 + (uint64_t)((opt.seconds + RUN_SLACK_S) * NS));
out:
	run_sample(&r, s);
	s->other = t0 ? other_load(busy0, t0, s) : -1;
	busy_stop(busy_pid);
	busy_pid = 0;
	for (int i = 0; i < 2; i++)
		for (int e = 0; e < 2; e++)
			if (barrier[i][e] >= 0)
				close(barrier[i][e]);
	while (made-- > 0)
		r.ch[made].x->destroy(&r.ch[made]);
	free(r.stop);
}
