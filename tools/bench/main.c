/*
 * main.c - shmq-bench's options, and the order in which it does things.
 *
 * Owns the command line (and its help text) and main(): set up the
 * environment, measure, clean up, then report.  It measures nothing
 * itself; what the bench is and must never do is said in bench.h.
 */
#define _GNU_SOURCE
#include "config.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"

struct options opt = {
	.runs = 5, .seconds = 0.5, .pp_count = 20000, .pp_warm = 2000,
	.wait_s = 2.0, .clients = 1000, .queues = 10000, .only = SEC_ALL,
};

/* The --transport names, from the transport table. */
static void usage_transports(FILE *f)
{
	for (int t = 0; t < NT; t++) {
		const char *o = xports[t]->option;
		int seen = 0;
		for (int u = 0; u < t; u++)
			seen |= strcmp(xports[u]->option, o) == 0;
		if (!seen)
			fprintf(f, "%s%s", t ? "," : "", o);
	}
}

static void usage(FILE *f)
{
	fprintf(f,
"Usage: shmq-bench [OPTION]...\n"
"Runs shmq, a pipe, an AF_UNIX SOCK_SEQPACKET socket pair and a POSIX\n"
"message queue through the same cases and prints a markdown report.\n"
"Starts its own shmqd ($SHMQ_DAEMON, else shmqd from $PATH).\n"
"\n"
"  -o, --output FILE   also write the report to FILE\n"
"  -r, --runs N        runs per case (default 5, at most 100); medians\n"
"                      and min-max\n"
"  -s, --seconds S     length of one throughput run (default 0.5)\n"
"  -q, --quick         smoke mode: one short run of everything\n"
"      --only LIST     comma-separated: tput,ping,mpmc,syscalls,waiter,\n"
"                      control,onecpu (default: all)\n"
"      --transport LIST  comma-separated: ");
	usage_transports(f);
	fprintf(f, "\n"
"                      (default: all; ratios need shmq and the peer)\n"
"      --case TEXT     run only the cases whose name contains TEXT,\n"
"                      e.g. --case '16 B single'\n"
"      --pin           pin 1->1 producer/consumer to CPUs 0 and 1\n"
"      --keep-awake    run a SCHED_IDLE spinner on every CPU, so that idle\n"
"                      CPUs never halt (on a VM, waking a halted vCPU costs\n"
"                      tens of µs and slows every transport that blocks)\n"
"  -h, --help          show this help\n");
}

/* A comma-separated list of names, as a mask of their indexes (a name
 * given to several indexes selects them all). */
static unsigned parse_list(const char *s, const char *const *names,
			   unsigned n)
{
	char *copy = strdup(s), *save = NULL, *tok;
	unsigned mask = 0;

	for (tok = strtok_r(copy, ",", &save); tok;
	     tok = strtok_r(NULL, ",", &save)) {
		unsigned hit = 0;
		for (unsigned i = 0; i < n; i++)
			if (strcmp(tok, names[i]) == 0)
				hit |= 1u << i;
		if (hit == 0) {
			fprintf(stderr, "shmq-bench: unknown name '%s'\n", tok);
			mask = 0;
			break;
		}
		mask |= hit;
	}
	free(copy);
	return mask;
}

static int parse_options(int argc, char **argv)
{
	static const char *const sections[NSECTIONS] = {
		"tput", "ping", "mpmc", "syscalls", "waiter", "control",
		"onecpu",
	};
	const char *transports[NT];
	enum { OPT_ONLY = 256, OPT_PIN, OPT_TRANSPORT, OPT_CASE, OPT_AWAKE };
	static const struct option longopts[] = {
		{ "output", required_argument, NULL, 'o' },
		{ "runs", required_argument, NULL, 'r' },
		{ "seconds", required_argument, NULL, 's' },
		{ "quick", no_argument, NULL, 'q' },
		{ "only", required_argument, NULL, OPT_ONLY },
		{ "pin", no_argument, NULL, OPT_PIN },
		{ "transport", required_argument, NULL, OPT_TRANSPORT },
		{ "case", required_argument, NULL, OPT_CASE },
		{ "keep-awake", no_argument, NULL, OPT_AWAKE },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int runs = 0, c;
	double secs = 0;
	char *end;

	for (int t = 0; t < NT; t++)
		transports[t] = xports[t]->option;
	while ((c = getopt_long(argc, argv, "o:r:s:qh", longopts, NULL)) != -1) {
		switch (c) {
		case 'o': opt.output = optarg; break;
		case 'q': opt.quick = 1; break;
		case OPT_PIN: opt.pin = 1; break;
		case OPT_CASE: opt.match = optarg; break;
		case OPT_AWAKE: opt.keep_awake = 1; break;
		case 'h': usage(stdout); exit(0);
		case 'r':
			runs = (int)strtol(optarg, &end, 10);
			if (*end || runs < 1 || runs > MAX_RUNS)
				goto bad;
			break;
		case 's':
			secs = strtod(optarg, &end);
			if (*end || secs < 0.001 || secs > 600)
				goto bad;
			break;
		case OPT_ONLY:
			opt.only = parse_list(optarg, sections, NSECTIONS);
			if (opt.only == 0)
				return -1;
			break;
		case OPT_TRANSPORT:
			opt.transports = parse_list(optarg, transports, NT);
			if (opt.transports == 0)
				return -1;
			break;
		default:
			usage(stderr);
			return -1;
		}
	}
	if (optind != argc)
		goto bad;
	if (opt.quick) {
		/* Every code path, small counts: for the test suite. */
		opt.runs = 1;
		opt.seconds = 0.02;
		opt.pp_count = 500;
		opt.pp_warm = 100;
		opt.wait_s = 0.2;
		opt.clients = 100;
		opt.queues = 500;
	}
	if (runs)
		opt.runs = runs;
	if (secs > 0)
		opt.seconds = secs;
	return 0;
bad:
	fprintf(stderr, "shmq-bench: bad argument: %s\n",
		optind < argc ? argv[optind] : optarg ? optarg : "?");
	usage(stderr);
	return -1;
}

/* The exit status says whether anything failed. */
static int any_failed(void)
{
	for (int ci = 0; ci < NCASES; ci++)
		for (int t = 0; t < NT; t++)
			if (results[ci][t].failed)
				return 1;
	return (sys_res.ran && !sys_res.ok) || ctl.err[0] ||
	       ((opt.only & SEC_WAITER) && (!waiter[0].ok || !waiter[1].ok));
}

int main(int argc, char **argv)
{
	if (parse_options(argc, argv) < 0)
		return 2;
	signals_init();
	env_init();
	control_fresh();
	run_init();
	mq_init();
	perf_init();
	facts_init();
	for (int ci = 0; ci < NCASES && !interrupted; ci++)
		if (case_selected(ci))
			run_case(ci);
	if ((opt.only & SEC_SYSCALLS) && !interrupted)
		syscalls_test();
	for (int i = 0; i < 2 && (opt.only & SEC_WAITER) && !interrupted; i++)
		waiter_test(i, &waiter[i]);
	if ((opt.only & SEC_CONTROL) && !interrupted)
		control_test();
	facts_end();
	cleanup();
	report();
	if (write_output() < 0)
		return 1;
	return interrupted ? 130 : any_failed() ? 1 : 0;
}
