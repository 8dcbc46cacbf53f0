/*
 * targets.c - the speed targets of both rounds, each PASS or MISS, and the
 * report's sections listing them.
 *
 * Owns what the targets are and how each is judged from the numbers the
 * cases and probes kept.  A target whose case was not run (or failed,
 * which its section says) is listed as not measured, never judged.
 */
#define _GNU_SOURCE
#include "config.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>

#include "bench.h"

static void target(const char *what, int known, int pass, const char *fmt,
		   ...) __attribute__((format(printf, 4, 5)));

/* Targets without a measurement (their case was not selected, or failed
 * and said so above) are listed after the table instead of as rows. */
static const char *unmeasured[32];
static unsigned n_unmeasured;

static void target(const char *what, int known, int pass, const char *fmt,
		   ...)
{
	char m[256];
	va_list ap;

	if (!known) {
		if (n_unmeasured < sizeof(unmeasured) / sizeof(unmeasured[0]))
			unmeasured[n_unmeasured++] = what;
		return;
	}
	va_start(ap, fmt);
	vsnprintf(m, sizeof(m), fmt, ap);
	va_end(ap);
	say("| %s | %s | %s |\n", what, m, pass ? "PASS" : "**MISS**");
}

static void target_ratio(const char *what, int ci, int t, double want)
{
	double r = ratio(ci, t, 0);

	target(what, case_selected(ci) && r > 0, r >= want, "%.2f×", r);
}

/* shmq in case `ci` against the peer's single-message case `cj`. */
static double cross_ratio(int ci, int cj, int t)
{
	double s = agg_median(ci, T_SHMQ, 0), p = agg_median(cj, t, 0);

	return s > 0 && p > 0 ? s / p : 0;
}

/* shmq's row `st` in case `ci` against transport `t`. */
static double row_ratio(int ci, int st, int t)
{
	double s = agg_median(ci, st, 0), p = agg_median(ci, t, 0);

	return s > 0 && p > 0 ? s / p : 0;
}

static void targets_throughput(void)
{
	double r, x;

	target_ratio("1→1 16 B single ≥ 5× pipe", C_16S, T_PIPE, 5);
	target_ratio("1→1 256 B single ≥ 3× pipe", C_256S, T_PIPE, 3);
	r = ratio(C_16B, T_PIPE, 0);
	x = cross_ratio(C_16B, C_16S, T_PIPE);
	target("1→1 16 B batch calls ≥ 15× pipe",
	       case_selected(C_16B) && x > 0, x >= 15,
	       "%.2f× (a pipe that batches too: %.2f×)", x, r);
	/* shmq's zero-copy calls count as shmq: the best of its rows. */
	r = ratio(C_64KS, T_PIPE, 0);
	double rs = row_ratio(C_64KS, T_SHMQ_SMALL, T_PIPE);
	x = row_ratio(C_64KS, T_SHMQ_ZC, T_PIPE);
	double xb = row_ratio(C_64KS, T_SHMQ_ZC, T_PIPE_BIG);
	unsigned scap = results[C_64KS][T_SHMQ_SMALL].capacity;
	unsigned zcap = results[C_64KS][T_SHMQ_ZC].capacity;
	target("1→1 64 KiB single ≥ 30× pipe",
	       case_selected(C_64KS) && r > 0, r >= 30 || rs >= 30 || x >= 30,
	       "%.2f× (capacity %u: %.2f×; zero copy, capacity %u: %.2f×, "
	       "against a %zu KiB pipe %.2f×)",
	       r, scap, rs, zcap, x, pipe_big_size(65536, zcap) >> 10, xb);
	/* At the same capacity: shmq's rows at mq's. */
	r = ratio(C_64KS, T_MQ, 0);
	x = row_ratio(C_64KS, T_SHMQ_ZC, T_MQ);
	target("1→1 64 KiB single ≥ 3× POSIX mq",
	       case_selected(C_64KS) && r > 0, r >= 3 || x >= 3,
	       "%.2f× (zero copy: %.2f×; both at capacity %u, mq's limit)",
	       r, x, results[C_64KS][T_MQ].capacity);
}

static void targets_latency(void)
{
	double r = ratio(C_PING, T_PIPE, 0);
	double s99 = agg_median(C_PING, T_SHMQ, 1);
	double p99 = agg_median(C_PING, T_PIPE, 1);

	target("ping-pong 64 B median RTT ≤ 1/40 of pipe's",
	       case_selected(C_PING) && r > 0, r >= 40,
	       "1/%.1f (%.0f ns vs %.0f ns)", r,
	       agg_median(C_PING, T_SHMQ, 0), agg_median(C_PING, T_PIPE, 0));
	target("ping-pong 64 B p99 RTT ≤ pipe's p99",
	       case_selected(C_PING) && s99 > 0 && p99 > 0, s99 <= p99,
	       "%.0f ns vs %.0f ns", s99, p99);
}

static void targets_mpmc(void)
{
	double r = ratio(C_M256B, T_PIPE, 0);
	double x = cross_ratio(C_M256B, C_M256S, T_PIPE);

	target_ratio("4→4 256 B single ≥ 2× pipe", C_M256S, T_PIPE, 2);
	target("4→4 256 B batch calls ≥ 8× pipe",
	       case_selected(C_M256B) && x > 0, x >= 8,
	       "%.2f× (a pipe that batches too: %.2f×)", x, r);
}

static void targets_other(void)
{
	double wg = waiter[0].ok ? 100 * waiter[0].cpu_ns / waiter[0].wall_ns
				 : -1;
	double wp = waiter[1].ok ? 100 * waiter[1].cpu_ns / waiter[1].wall_ns
				 : -1;
	double od = median(ctl.open_rate, ctl.n_open);
	int sys_known = sys_res.ok && sys_res.pair_sys >= 0;

	target("blocked waiter uses ~0 CPU (< 1 % of the wait)",
	       waiter[0].ok && waiter[1].ok, wg < 1 && wp < 1,
	       "get %.4f %%, put %.4f %%", wg, wp);
	target("0 system calls per message, 1→1, neither full nor empty",
	       sys_known, sys_res.pair_sys == 0 && sys_res.batch_sys == 0,
	       "%.0f in %" PRIu64 " put+get, %.0f in %" PRIu64 " by "
	       "putv/getv", sys_res.pair_sys * sys_res.n, sys_res.n,
	       sys_res.batch_sys * sys_res.n, sys_res.n);
	target("control plane ≥ 10,000 open+detach/s", ctl.n_open > 0,
	       od >= 10000, "%.0f /s", od);
	target("shmqd holds 1,000 connected clients", ctl.ran,
	       ctl.clients_held >= 1000 && ctl.clients_served,
	       "%u held, %s", ctl.clients_held,
	       ctl.clients_served ? "still serving" : "not serving");
	target("shmqd holds 10,000 queues", ctl.ran,
	       ctl.queues_listed >= 10000, "%u created and listed",
	       ctl.queues_listed);
	target("idle shmqd RSS < 10 MB (fresh)", ctl.fresh.rss > 0,
	       ctl.fresh.rss < 10240, "%.1f MB", ctl.fresh.rss / 1024.0);
	target("idle shmqd RSS < 10 MB (holding the clients and queues)",
	       ctl.ran && ctl.with_queues.rss > 0,
	       ctl.with_queues.rss < 10240, "%.1f MB",
	       ctl.with_queues.rss / 1024.0);
}

/* ---- the second round: sizes, one CPU, containers ---------------------- */

/* shmq's median in case ci over its median in case cj. */
static double shmq_ratio(int ci, int cj)
{
	double a = agg_median(ci, T_SHMQ, 0), b = agg_median(cj, T_SHMQ, 0);

	return a > 0 && b > 0 ? a / b : 0;
}

static void target_size_ratio(const char *what, int ci, int cj, double want)
{
	double r = shmq_ratio(ci, cj);

	target(what, case_selected(ci) && case_selected(cj) && r > 0,
	       r >= want, "%.2f× (%.3g vs %.3g msgs/s)", r,
	       agg_median(ci, T_SHMQ, 0), agg_median(cj, T_SHMQ, 0));
}

static const char *size_of(int ci)
{
	return cases[ci].label + strlen("1→1 ");
}

static void targets_sizes(void)
{
	int known = 1, worst_at = -1, low_at = -1;
	double worst = 0, low = 0;

	target_size_ratio("size sweep, single: msgs/s at 256 B ≥ 0.5× at 16 B",
			  C_256S, C_16S, 0.5);
	target_size_ratio("size sweep, single: msgs/s at 1 KiB ≥ 0.3× at 16 B",
			  C_1KS, C_16S, 0.3);
	/* Bytes per second from each size to the next: the smallest step. */
	for (int ci = C_16S; ci + 2 <= C_64KS; ci += 2) {
		double a = agg_median(ci, T_SHMQ, 0) * (double)cases[ci].size;
		double b = agg_median(ci + 2, T_SHMQ, 0) *
			   (double)cases[ci + 2].size;
		if (!case_selected(ci) || !case_selected(ci + 2) || a <= 0 ||
		    b <= 0) {
			known = 0;
			break;
		}
		if (worst_at < 0 || b / a < worst) {
			worst = b / a;
			worst_at = ci;
		}
	}
	target("size sweep, single: bytes/s never falls as size grows",
	       known && worst_at >= 0, worst >= 1,
	       "smallest step %.2f× (%s → %s)", worst,
	       worst_at >= 0 ? size_of(worst_at) : "",
	       worst_at >= 0 ? size_of(worst_at + 2) : "");
	known = 1;
	for (int ci = C_16S; ci <= C_64KS; ci += 2) {
		double r = ratio(ci, T_PIPE, 0);
		if (!case_selected(ci) || r <= 0) {
			known = 0;
			break;
		}
		if (low_at < 0 || r < low) {
			low = r;
			low_at = ci;
		}
	}
	target("size sweep, single: every size ≥ 3× pipe", known, low >= 3,
	       "lowest %.2f× (%s)", low, low_at >= 0 ? size_of(low_at) : "");
	target_size_ratio("size sweep, batch: msgs/s at 256 B ≥ 0.5× at 16 B",
			  C_256B, C_16B, 0.5);
}

/* shmq's throughput against the pipe's in the same setting. */
static void target_tput(const char *how, int ci, double want)
{
	char what[160];
	double r = ratio(ci, T_PIPE, 0);

	snprintf(what, sizeof(what), "%s: %s ≥ %.1f× pipe", how,
		 cases[ci].label + strlen(how) + 2, want);
	target(what, case_selected(ci) && r > 0, r >= want, "%.2f×", r);
}

/* shmq's round trip (median or p99) over the pipe's, at most `most`. */
static void target_rtt(const char *how, int ci, int p99, double most)
{
	char what[160];
	double s = agg_median(ci, T_SHMQ, p99), p = agg_median(ci, T_PIPE, p99);

	snprintf(what, sizeof(what), "%s: ping-pong %s ≤ %.1f× pipe's", how,
		 p99 ? "p99" : "median", most);
	target(what, case_selected(ci) && s > 0 && p > 0, s <= most * p,
	       "%.2f× (%.1f µs vs %.1f µs)", p > 0 ? s / p : 0, s / 1000,
	       p / 1000);
}

static void targets_onecpu(void)
{
	static const struct {
		const char *how;
		int c16, c4k, cping;
	} one[] = {
		{ "one CPU", C_PIN_16S, C_PIN_4KS, C_PIN_PING },
		{ "one CPU of quota", C_QUOTA_16S, C_QUOTA_4KS, C_QUOTA_PING },
	};

	for (size_t i = 0; i < sizeof(one) / sizeof(one[0]); i++) {
		target_tput(one[i].how, one[i].c16, 1.5);
		target_tput(one[i].how, one[i].c4k, 1.5);
		target_rtt(one[i].how, one[i].cping, 0, 0.8);
	}

	const char *how = "one CPU + busy loop";
	const int own[2][2] = { { C_BUSY_16S, C_PIN_16S },
				{ C_BUSY_4KS, C_PIN_4KS } };
	for (int i = 0; i < 2; i++) {
		char what[160];
		snprintf(what, sizeof(what), "%s: %s ≥ 0.3× shmq's own on one "
			 "CPU without it", how, cases[own[i][0]].label +
			 strlen(how) + 2);
		target_size_ratio(what, own[i][0], own[i][1], 0.3);
		target_tput(how, own[i][0], 1.5);
	}
	target_rtt(how, C_BUSY_PING, 0, 2);
	target_rtt(how, C_BUSY_PING, 1, 2);
}

static void report_targets16(void)
{
	say("## Speed targets: sizes, one CPU, containers\n\n%s"
	    "The size sweep compares shmq with itself (1→1, one message per "
	    "call, or batches of 64) and with the pipe. In the one-CPU cases "
	    "both sides run on one CPU (pinned; or unpinned in a cgroup with "
	    "one CPU's worth of quota; or pinned together with a CPU-bound "
	    "busy loop), and shmq is compared with a pipe in the same "
	    "setting.\n\n| target | measured | result |\n|---|---|---|\n",
	    opt.quick ? "*Quick mode: counts too small for these to mean "
	    "anything.*\n\n" : "");
	n_unmeasured = 0;
	targets_sizes();
	targets_onecpu();
	say("\n");
	if (n_unmeasured) {
		say("Not measured in this run:");
		for (unsigned i = 0; i < n_unmeasured; i++)
			say("%s %s", i ? ";" : "", unmeasured[i]);
		say(".\n\n");
	}
}

void report_targets(void)
{
	say("## Speed targets\n\n%sRatios of shmq's batch calls are "
	    "taken against the pipe's one-message-per-call row, and the ratio "
	    "to a pipe that batches too (writev of the whole batch, one large "
	    "read: a byte stream at its best) is shown beside it. At 16 B, 15× "
	    "a batching pipe would be ~2 ns per message, sequence check "
	    "included, on each of two cores.\n\n| target | measured | result |\n"
	    "|---|---|---|\n", opt.quick ? "*Quick mode: counts too small "
	    "for these to mean anything.*\n\n" : "");
	n_unmeasured = 0;
	targets_throughput();
	targets_latency();
	targets_mpmc();
	targets_other();
	say("\n");
	if (n_unmeasured) {
		say("Not measured in this run:");
		for (unsigned i = 0; i < n_unmeasured; i++)
			say("%s %s", i ? ";" : "", unmeasured[i]);
		say(".\n\n");
	}
	report_targets16();
}
