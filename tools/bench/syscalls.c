/*
 * syscalls.c - system calls per message, and the report's section on them.
 *
 * Owns the check of shmq's contract that a queue neither full nor empty
 * costs no system call (one process keeping a queue half full, counted by
 * the kernel), and the counted cross-process runs of shmq and a pipe
 * beside it.  Its queue is deleted before it returns.
 */
#define _GNU_SOURCE
#include "config.h"

#include <inttypes.h>
#include <stdio.h>

#include "bench.h"

struct sys_result sys_res;

/* The cross-process rows: shmq blocking, shmq with the receiving side
 * (in the ping-pong both sides) polling its descriptor, and a pipe. */
static const int xs_transport[3] = { T_SHMQ, T_SHMQ_POLL, T_PIPE };
static const char *const xs_name[3] = { "shmq", "shmq, polled (epoll)",
					"pipe" };

static int steady_loop(shmq_t *q, uint64_t n, unsigned b, double *ns,
		       double *sys)
{
	uint8_t buf[MAX_BATCH * 16], in[MAX_BATCH * 16];
	struct iovec v[MAX_BATCH], o[MAX_BATCH];
	struct probe pr;
	struct usage u;
	size_t k;
	int rc = SHMQ_OK;

	for (unsigned i = 0; i < b; i++)
		v[i] = (struct iovec){ buf + 16 * i, 16 };
	probe_open(&pr, 1);
	probe_start(&pr);
	uint64_t t1 = mono_ns();
	for (uint64_t i = 0; i < n && rc == SHMQ_OK; i += b) {
		msg_stamp(buf, 16, 0, i);
		if (b == 1) {
			rc = shmq_put(q, buf, 16, SHMQ_FOREVER);
			if (rc == SHMQ_OK)
				rc = shmq_get(q, in, sizeof(in), &k,
					      SHMQ_FOREVER);
		} else {
			rc = shmq_putv(q, v, b, &k, SHMQ_FOREVER);
			/* A getv may return fewer than are queued: take
			 * until the queue is back to half full. */
			for (unsigned got = 0; rc == SHMQ_OK && got < b;
			     got += (unsigned)k)
				rc = shmq_getv(q, in, sizeof(in), o, b - got,
					       &k, SHMQ_FOREVER);
		}
	}
	uint64_t t2 = mono_ns();
	probe_stop(&pr, &u);
	*ns = (double)(t2 - t1) / (double)n;
	*sys = u.syscalls == UINT64_MAX ? -1 : (double)u.syscalls / (double)n;
	return rc;
}

/*
 * The contract: no system call while the queue is neither full nor empty.
 * Between processes a queue keeps running full or empty, so the strict
 * check is made in one process that keeps it half full (a put, then a get,
 * never waiting); the cross-process runs then show what a real 1->1 costs.
 */
void syscalls_test(void)
{
	struct shmq_attr a;
	shmq_t *q = NULL;
	uint8_t m[16];
	uint64_t n = opt.quick ? 100000 : 2000000;
	int rc;

	sys_res.ran = 1;
	sys_res.n = n;
	shmq_attr_init(&a);
	a.capacity = SHMQ_CAP;
	a.max_msg = 16;
	rc = shmq_create("bench.steady", &a, 0);
	if (rc == SHMQ_OK)
		rc = shmq_open("bench.steady", SHMQ_PRODUCER | SHMQ_CONSUMER,
			       &q);
	for (unsigned i = 0; rc == SHMQ_OK && i < SHMQ_CAP / 2; i++) {
		msg_stamp(m, sizeof(m), 0, i);
		rc = shmq_put(q, m, sizeof(m), SHMQ_NOWAIT);
	}
	if (rc == SHMQ_OK)
		rc = steady_loop(q, n, 1, &sys_res.pair_ns, &sys_res.pair_sys);
	if (rc == SHMQ_OK)
		rc = steady_loop(q, n, 64, &sys_res.batch_ns,
				 &sys_res.batch_sys);
	if (rc != SHMQ_OK)
		snprintf(sys_res.err, sizeof(sys_res.err), "%s",
			 shmq_strerror(rc));
	sys_res.ok = rc == SHMQ_OK;
	shmq_detach(q);
	shmq_delete("bench.steady");

	for (int i = 0; i < 3; i++) {
		run_once(&cases[C_16S], xs_transport[i], 1, &sys_res.xs[i]);
		run_once(&cases[C_PING], xs_transport[i], 1, &sys_res.ping[i]);
	}
	progress("%-24s  one process: %.1f ns per put+get, %.3g syscalls; "
		 "separate processes: %s\n", "syscalls per message",
		 sys_res.pair_ns, sys_res.pair_sys,
		 sys_res.xs[0].ok ? "ok" : sys_res.xs[0].err);
}

static void fmt_sys(char *b, size_t n, uint64_t calls, uint64_t msgs)
{
	if (calls == UINT64_MAX)
		snprintf(b, n, "n/a");
	else
		snprintf(b, n, "%.4f", per_msg(calls, msgs));
}

/* The cross-process runs counted with the probe: 1->1 and ping-pong. */
static void report_sys_xproc(void)
{
	char p[32], c[32];

	say("- Separate processes, 1→1 16 B single, one run of %.2f s (the "
	    "queue runs full or empty at times, so waits are included):\n\n"
	    "| transport | msgs/s | producer syscalls/msg | consumer "
	    "syscalls/msg | context switches/msg |\n|---|---:|---:|---:|---:|\n",
	    opt.seconds);
	for (int i = 0; i < 3; i++) {
		const struct sample *s = &sys_res.xs[i];
		fmt_sys(p, sizeof(p), s->prod.syscalls, s->msgs);
		fmt_sys(c, sizeof(c), s->cons.syscalls, s->msgs);
		if (!s->ok)
			say("| %s | **FAILED**: %s | | | |\n", xs_name[i],
			    s->err);
		else
			say("| %s | %.3g | %s | %s | %.4f |\n", xs_name[i],
			    s->value, p, c,
			    per_msg(s->prod.csw + s->cons.csw, s->msgs));
	}
	say("\n- Ping-pong 64 B, one run: a pipe needs a write and a read "
	    "per side and round trip; for shmq, any call is a futex wake or "
	    "sleep (the partner was not caught spinning); polled, a "
	    "datagram sent or drained, or an epoll_wait.\n\n"
	    "| transport | median RTT | client syscalls/RTT | server "
	    "syscalls/RTT | context switches/RTT | client CPU/RTT |\n"
	    "|---|---:|---:|---:|---:|---:|\n");
	for (int i = 0; i < 3; i++) {
		const struct sample *s = &sys_res.ping[i];
		fmt_sys(p, sizeof(p), s->prod.syscalls, s->msgs);
		fmt_sys(c, sizeof(c), s->cons.syscalls, s->msgs);
		if (!s->ok)
			say("| %s | **FAILED**: %s | | | | |\n", xs_name[i],
			    s->err);
		else
			say("| %s | %.2f µs | %s | %s | %.2f | %.2f µs |\n",
			    xs_name[i], s->value / 1000, p, c,
			    per_msg(s->prod.csw + s->cons.csw, s->msgs),
			    per_msg(s->prod.user_ns + s->prod.sys_ns,
				    s->msgs) / 1000);
	}
	say("\n");
}

void report_syscalls(void)
{
	if (!sys_res.ran)
		return;
	say("## System calls per message\n\n"
	    "Counted by the kernel (perf tracepoint raw_syscalls:sys_enter "
	    "on the process itself%s).\n\n", !probe_counts_syscalls()
	    ? " — **not available here**: no tracefs or no permission" : "");
	if (sys_res.ok)
		say("- One process keeping a 16 B queue half full (neither full "
		    "nor empty), %" PRIu64 " × (put, get): **%.0f** system "
		    "calls in all, %.1f ns per put+get; %" PRIu64 " messages "
		    "by putv/getv of 64: **%.0f** system calls, %.1f ns per "
		    "message.\n", sys_res.n, sys_res.pair_sys * sys_res.n,
		    sys_res.pair_ns, sys_res.n,
		    sys_res.batch_sys * sys_res.n, sys_res.batch_ns);
	else
		say("- One process: **FAILED**: %s\n", sys_res.err);
	report_sys_xproc();
}
