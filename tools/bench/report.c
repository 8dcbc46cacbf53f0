/*
 * report.c - the report: its text, the tables of the transports' results,
 * and the order of its sections.
 *
 * Owns the growing markdown string (say), the progress lines on stderr,
 * the Results and "Where the CPU goes" tables (their rows, labels, units
 * and ratios), report(), which puts the sections in order, and writing
 * it out.  It measures nothing: every number in it was kept by cases.c,
 * facts.c or one of the probes.
 */
#define _GNU_SOURCE
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "bench.h"

/* One growing string, printed and written at the end. */
static struct {
	char *s;
	size_t len, cap;
} out;

void say(const char *fmt, ...)
{
	va_list ap;
	int n;

	for (;;) {
		va_start(ap, fmt);
		n = vsnprintf(out.s ? out.s + out.len : NULL,
			      out.s ? out.cap - out.len : 0, fmt, ap);
		va_end(ap);
		if (n < 0)
			return;
		if (out.s && out.len + (size_t)n < out.cap)
			break;
		size_t cap = (out.cap ? out.cap * 2 : 65536) + (size_t)n;
		char *s = realloc(out.s, cap);
		if (s == NULL)
			return;
		out.s = s;
		out.cap = cap;
	}
	out.len += (size_t)n;
}

void progress(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
}

/* "2.05 M (1.98–2.10)": min and max in the median's unit. */
static void fmt_value(char *b, size_t n, double med, double lo, double hi,
		      int rtt)
{
	double div = 1;
	const char *unit = "";

	if (rtt) {
		unit = med >= 1000 ? " µs" : " ns";
		div = med >= 1000 ? 1000 : 1;
	} else if (med >= 1e6) {
		unit = " M/s";
		div = 1e6;
	} else if (med >= 1e3) {
		unit = " k/s";
		div = 1e3;
	} else {
		unit = " /s";
	}
	int prec = med / div < 10 ? 2 : med / div < 100 ? 1 : 0;
	snprintf(b, n, "%.*f%s (%.*f–%.*f)", prec, med / div, unit, prec,
		 lo / div, prec, hi / div);
}

/* The transport's own label, or its name and (in a batch case, for a
 * peer) how it batches. */
static void transport_label(char *b, size_t n, const struct bcase *k, int t,
			    const struct agg *a)
{
	const struct xport *x = xports[t];
	const char *how = k->batch && !x->shmq ? x->batch_how : NULL;

	if (x->label && x->label(b, n, k, a))
		return;
	snprintf(b, n, "%s%s%s%s", x->name, how ? " (" : "", how ? how : "",
		 how ? ")" : "");
}

double agg_median(int ci, int t, int p99)
{
	const struct agg *a = &results[ci][t];

	if (!a->ran || a->failed || a->n == 0)
		return 0;
	return median(p99 ? a->p99 : a->v, a->n);
}

/* How many times faster shmq is than the peer; 0 if unknown.  POSIX mq
 * is compared with shmq at mq's capacity where that had to be smaller. */
double ratio(int ci, int t, int p99)
{
	int st = t == T_MQ && results[ci][T_SHMQ_SMALL].ran ? T_SHMQ_SMALL
							    : T_SHMQ;
	double s = agg_median(ci, st, p99), p = agg_median(ci, t, p99);

	if (s <= 0 || p <= 0)
		return 0;
	return cases[ci].kind == PING ? p / s : s / p;
}

static void report_row(int ci, int t, int p99)
{
	const struct bcase *k = &cases[ci];
	const struct agg *a = &results[ci][t];
	char label[256], val[96], mbs[32] = "", rat[32] = "—";
	double lo, hi, med = agg_median(ci, t, p99);

	transport_label(label, sizeof(label), k, t, a);
	if (!a->ran || a->failed) {
		say("| %s%s | %s | %s%s | | |\n", k->label,
		    k->kind == PING ? (p99 ? " — RTT p99" : " — RTT median")
				    : "",
		    label, a->failed ? "**FAILED**: " : "", a->note);
		return;
	}
	min_max(p99 ? a->p99 : a->v, a->n, &lo, &hi);
	fmt_value(val, sizeof(val), med, lo, hi, k->kind == PING);
	if (k->kind == TPUT)
		snprintf(mbs, sizeof(mbs), "%.0f", med * (double)k->size / 1e6);
	if (!xports[t]->shmq && ratio(ci, t, p99) > 0)
		snprintf(rat, sizeof(rat), "%.2f×", ratio(ci, t, p99));
	say("| %s%s | %s | %s | %s | %s |\n", k->label,
	    k->kind == PING ? (p99 ? " — RTT p99" : " — RTT median") : "",
	    label, val, mbs, rat);
}

static void report_results(void)
{
	say("## Results\n\n"
	    "Median of %d run%s (min–max). Throughput rows: messages per "
	    "second from the start barrier to the consumers' last message; "
	    "MB/s counts payload (10^6 B). Ping-pong rows: round-trip time "
	    "of one 64 B message. **shmq ÷ peer**: how many times faster "
	    "shmq is (throughput ratio, or the peer's RTT over shmq's).\n\n",
	    opt.runs, opt.runs > 1 ? "s" : "");
	report_line();
	say("| case | transport | msgs/s or RTT: median (min–max) | MB/s | "
	    "shmq ÷ peer |\n|---|---|---|---:|---:|\n");
	for (int ci = 0; ci < NCASES; ci++) {
		if (!case_selected(ci))
			continue;
		for (int p99 = 0; p99 <= (cases[ci].kind == PING); p99++)
			for (size_t i = 0; i < NT; i++) {
				int t = row_order[i];
				if (results[ci][t].ran || results[ci][t].note[0])
					report_row(ci, t, p99);
			}
	}
	say("\n");
}

double per_msg(uint64_t v, uint64_t msgs)
{
	return msgs ? (double)v / (double)msgs : 0;
}

static void report_cpu(void)
{
	say("## Where the CPU goes\n\n"
	    "Per message (ping-pong: per round trip), summed over the "
	    "successful runs: user + system CPU of the producer side and of "
	    "the consumer side (getrusage, between the start barrier and "
	    "the end), and context switches of both sides. Two cores: a "
	    "side that is busy all the run spends ~1 s of CPU per second. "
	    "**msgs per receive**: messages a consumer got per receive call "
	    "(getv, read, recvmmsg...). **other load**: CPUs kept busy by "
	    "other processes during the runs (from /proc/stat, minus ours; "
	    "median and min–max): with 2 cores, anything near 1 means a run "
	    "shared its cores with someone else.\n\n"
	    "| case | transport | producer user + sys ns | consumer user + "
	    "sys ns | context switches per 1000 | msgs per receive | other "
	    "load, CPUs |\n|---|---|---:|---:|---:|---:|---:|\n");
	for (int ci = 0; ci < NCASES; ci++) {
		if (!case_selected(ci))
			continue;
		for (size_t i = 0; i < NT; i++) {
			int t = row_order[i];
			const struct agg *a = &results[ci][t];
			char label[256];
			if (!a->n)
				continue;
			transport_label(label, sizeof(label), &cases[ci], t, a);
			double lo, hi;
			min_max(a->other, a->n, &lo, &hi);
			say("| %s | %s | %.0f + %.0f | %.0f + %.0f | %.1f | "
			    "%.1f | %.2f (%.2f–%.2f) |\n", cases[ci].label,
			    label,
			    per_msg(a->prod.user_ns, a->msgs),
			    per_msg(a->prod.sys_ns, a->msgs),
			    per_msg(a->cons.user_ns, a->msgs),
			    per_msg(a->cons.sys_ns, a->msgs),
			    1000 * per_msg(a->prod.csw + a->cons.csw, a->msgs),
			    cases[ci].kind == PING ? 1.0
						   : per_msg(a->msgs, a->calls),
			    median(a->other, a->n), lo, hi);
		}
	}
	say("\n");
}

/* The sections, in the order a reader needs them. */
void report(void)
{
	say("# shmq benchmark\n\n");
	if (interrupted)
		say("**Interrupted: the tables are incomplete.**\n\n");
	report_machine();
	report_results();
	report_targets();
	report_cpu();
	report_syscalls();
	report_waiter();
	report_control();
	say("Every message carries a per-producer sequence number; every "
	    "consumer checks it (and a tag, and a trailer from 32 B on), and "
	    "the counts, sums and sums of squares must show each message "
	    "arrived exactly once. Producers and consumers are separate "
	    "processes, started together by a barrier.\n");
}

int write_output(void)
{
	fwrite(out.s, 1, out.len, stdout);
	fflush(stdout);
	if (opt.output == NULL)
		return 0;
	FILE *f = fopen(opt.output, "we");
	if (f == NULL || fwrite(out.s, 1, out.len, f) != out.len ||
	    fclose(f) != 0) {
		fprintf(stderr, "shmq-bench: cannot write %s: %s\n", opt.output,
			strerror(errno));
		return -1;
	}
	progress("report written to %s\n", opt.output);
	return 0;
}
