/*
 * cases.c - the cases, which transports run them, and their statistics.
 *
 * Owns the table of cases (what a row of the report measures), the choice
 * of the transports that run each (--transport, and each transport's own
 * rule), the order of the runs, and what is kept of them: the samples,
 * their median and min-max.  The numbers come from run_once(); the tables
 * are printed by report.c.
 */
#define _GNU_SOURCE
#include "config.h"

#include <stdio.h>
#include <stdlib.h>

#include "bench.h"

/* Batches of 16 at 4->4: 16 x 256 B is PIPE_BUF, the most a pipe writes
 * atomically, and every transport gets the same batch.  The sweep's new
 * sizes and the one-CPU cases (the second speed round) run on shmq and the
 * pipe (their targets are ratios to shmq itself and to the pipe), and on
 * Boost's message_queue where it was built, that round's point of
 * comparison. */
#define SP ((1u << T_SHMQ) | (1u << T_PIPE) | (1u << T_BOOST))
#define SWEEP(id, label, size)                                               \
	[id##S] = { "1→1 " label " single", TPUT, size, 1, 1, 0, SEC_TPUT,    \
		    CPUS_ALL, SP },                                          \
	[id##B] = { "1→1 " label " batch ×64", TPUT, size, 1, 1, 64,         \
		    SEC_TPUT, CPUS_ALL, SP }
#define ONECPU(id, how, cpus)                                                \
	[id##_16S] = { how ": 1→1 16 B single", TPUT, 16, 1, 1, 0,           \
		       SEC_ONECPU, cpus, SP },                               \
	[id##_4KS] = { how ": 1→1 4 KiB single", TPUT, 4096, 1, 1, 0,        \
		       SEC_ONECPU, cpus, SP },                               \
	[id##_PING] = { how ": ping-pong 64 B", PING, 64, 1, 1, 0,           \
			SEC_ONECPU, cpus, SP }

const struct bcase cases[NCASES] = {
	[C_16S]   = { "1→1 16 B single", TPUT, 16, 1, 1, 0, SEC_TPUT },
	[C_16B]   = { "1→1 16 B batch ×64", TPUT, 16, 1, 1, 64, SEC_TPUT },
	SWEEP(C_32, "32 B", 32),
	SWEEP(C_64, "64 B", 64),
	SWEEP(C_128, "128 B", 128),
	[C_256S]  = { "1→1 256 B single", TPUT, 256, 1, 1, 0, SEC_TPUT },
	[C_256B]  = { "1→1 256 B batch ×64", TPUT, 256, 1, 1, 64, SEC_TPUT },
	SWEEP(C_512, "512 B", 512),
	SWEEP(C_1K, "1 KiB", 1024),
	[C_4KS]   = { "1→1 4 KiB single", TPUT, 4096, 1, 1, 0, SEC_TPUT },
	[C_4KB]   = { "1→1 4 KiB batch ×64", TPUT, 4096, 1, 1, 64, SEC_TPUT },
	SWEEP(C_16K, "16 KiB", 16384),
	[C_64KS]  = { "1→1 64 KiB single", TPUT, 65536, 1, 1, 0, SEC_TPUT },
	[C_64KB]  = { "1→1 64 KiB batch ×64", TPUT, 65536, 1, 1, 64,
		      SEC_TPUT },
	[C_PING]  = { "ping-pong 64 B", PING, 64, 1, 1, 0, SEC_PING },
	[C_M256S] = { "4→4 256 B single", TPUT, 256, 4, 4, 0, SEC_MPMC },
	[C_M256B] = { "4→4 256 B batch ×16", TPUT, 256, 4, 4, 16, SEC_MPMC },
	ONECPU(C_PIN, "one CPU", CPUS_PIN1),
	ONECPU(C_QUOTA, "one CPU of quota", CPUS_QUOTA1),
	ONECPU(C_BUSY, "one CPU + busy loop", CPUS_BUSY1),
};

struct agg results[NCASES][NT];

int case_selected(int ci)
{
	return (cases[ci].section & opt.only) != 0 &&
	       (opt.match == NULL || strstr(cases[ci].label, opt.match));
}

int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

double median(const double *v, int n)
{
	double s[MAX_RUNS];

	if (n == 0)
		return 0;
	memcpy(s, v, (size_t)n * sizeof(*v));
	for (int i = 1; i < n; i++)             /* n is small */
		for (int j = i; j > 0 && s[j - 1] > s[j]; j--) {
			double x = s[j];
			s[j] = s[j - 1];
			s[j - 1] = x;
		}
	return n % 2 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
}

void min_max(const double *v, int n, double *lo, double *hi)
{
	*lo = *hi = n ? v[0] : 0;
	for (int i = 1; i < n; i++) {
		if (v[i] < *lo)
			*lo = v[i];
		if (v[i] > *hi)
			*hi = v[i];
	}
}

/* --transport first; then the transport's own rule, which may say in
 * a->note why it does not run the case. */
static int applicable(const struct bcase *k, int t, struct agg *a)
{
	if (opt.transports && !(opt.transports & (1u << t)))
		return 0;
	if (k->xmask && !(k->xmask & (1u << t)))
		return 0;
	return xports[t]->applies == NULL || xports[t]->applies(k, a);
}

static void agg_add(struct agg *a, const struct sample *s)
{
	a->ran++;
	if (!s->ok) {
		if (!a->failed++)
			snprintf(a->note, sizeof(a->note), "%s", s->err);
		return;
	}
	a->v[a->n] = s->value;
	a->p99[a->n] = s->p99;
	a->other[a->n] = s->other;
	a->n++;
	a->msgs += s->msgs;
	a->calls += s->calls;
	usage_add(&a->prod, &s->prod);
	usage_add(&a->cons, &s->cons);
}

static void case_progress(int ci)
{
	const struct bcase *k = &cases[ci];

	progress("%s:", k->label);
	for (int t = 0; t < NT; t++) {
		struct agg *a = &results[ci][t];
		if (!a->ran)
			continue;
		double m = median(a->v, a->n);
		if (a->failed)
			progress("  %s FAILED", xports[t]->name);
		else if (k->kind == PING)
			progress("  %s %.2f µs", xports[t]->name, m / 1000);
		else
			progress("  %s %.3g/s", xports[t]->name, m);
	}
	double other[NT * MAX_RUNS];
	int n = 0;
	for (int t = 0; t < NT; t++)
		for (int i = 0; i < results[ci][t].n; i++)
			other[n++] = results[ci][t].other[i];
	progress("  [other load %.2f CPUs]\n",
		 median(other, n < MAX_RUNS ? n : MAX_RUNS));
}

/* Runs are interleaved (run 1 of every transport, then run 2...) and the
 * order rotates, so that a burst of load from elsewhere on the machine
 * does not land on one transport only. */
void run_case(int ci)
{
	const struct bcase *k = &cases[ci];
	int ts[NT], nt = 0;

	for (int t = 0; t < NT; t++) {
		struct agg *a = &results[ci][t];
		a->capacity = xport_capacity(t, k->size);
		if (applicable(k, t, a))
			ts[nt++] = t;
	}
	if (k->cpus == CPUS_QUOTA1 && nt && quota_ready() < 0) {
		for (int i = 0; i < nt; i++)
			snprintf(results[ci][ts[i]].note,
				 sizeof(results[ci][ts[i]].note),
				 "not run: %s", quota_how());
		progress("%s: not run: %s\n", k->label, quota_how());
		return;
	}
	/* The machine's own measure, next to the case it explains. */
	if (nt)
		progress("[line %.0f ns] ", facts_line());
	for (int run = 0; run < opt.runs && !interrupted; run++)
		for (int i = 0; i < nt && !interrupted; i++) {
			int t = ts[(i + run) % nt];
			struct sample s;
			run_once(k, t, 0, &s);
			if (interrupted)
				break;  /* a killed run is no result */
			agg_add(&results[ci][t], &s);
		}
	case_progress(ci);
}
