/*
 * control.c - the control plane (shmqd), and the report's section on it.
 *
 * Owns the measurements of the daemon rather than of a queue: the
 * open+detach rate, a thousand connections held (each a raw connect and
 * HELLO, so that no thousand processes are needed), ten thousand queues,
 * and the daemon's RSS through all of it.  It deletes every queue and
 * closes every connection it made before it returns.
 */
#define _GNU_SOURCE
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "bench.h"
#include "../privd.h"

struct ctl_result ctl;

static struct rss daemon_rss(void)
{
	struct rss r = { -1, -1, -1 };
	char path[64], line[256];
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)env.daemon);
	if ((f = fopen(path, "re")) == NULL)
		return r;
	while (fgets(line, sizeof(line), f)) {
		sscanf(line, "VmRSS: %ld", &r.rss);
		sscanf(line, "RssAnon: %ld", &r.anon);
		sscanf(line, "RssShmem: %ld", &r.shmem);
	}
	fclose(f);
	return r;
}

static double open_detach_rate(const char *name)
{
	uint64_t n = 0, t0 = mono_ns(), end = t0 + (uint64_t)(opt.seconds * NS);
	shmq_t *q;
	int rc;

	do {
		rc = shmq_open(name, SHMQ_PRODUCER, &q);
		if (rc != SHMQ_OK) {
			snprintf(ctl.err, sizeof(ctl.err), "open: %s (%s)",
				 shmq_strerror(rc), shmq_error_detail());
			return 0;
		}
		shmq_detach(q);
		n++;
	} while (mono_ns() < end && !interrupted);
	return (double)n * NS / (double)(mono_ns() - t0);
}

static int open_detach_once(const char *name)
{
	shmq_t *q;

	if (shmq_open(name, SHMQ_PRODUCER, &q) != SHMQ_OK)
		return 0;
	return shmq_detach(q) == SHMQ_OK;
}

static void hold_clients(int *fds)
{
	for (unsigned i = 0; i < opt.clients && !interrupted; i++) {
		fds[i] = privd_connect(env.sock);
		if (fds[i] < 0 || privd_hello(fds[i], i + 2) < 0) {
			snprintf(ctl.err, sizeof(ctl.err), "client %u: %s%s",
				 i, fds[i] < 0 ? "" : "HELLO: ",
				 strerror(errno));
			break;
		}
		ctl.clients_held++;
	}
}

static void make_queues(void)
{
	struct shmq_attr a;
	struct shmq_stat *list;
	char name[64];
	size_t n;
	uint64_t t0 = mono_ns();

	shmq_attr_init(&a);
	a.capacity = 1;
	a.max_msg = 16;
	for (unsigned i = 0; i < opt.queues && !interrupted; i++) {
		snprintf(name, sizeof(name), "bench.many.%05u", i);
		int rc = shmq_create(name, &a, 0);
		if (rc != SHMQ_OK) {
			snprintf(ctl.err, sizeof(ctl.err), "queue %u: %s (%s)",
				 i, shmq_strerror(rc), shmq_error_detail());
			break;
		}
		ctl.queues_made++;
	}
	ctl.create_rate = ctl.queues_made * NS / (double)(mono_ns() - t0);
	if (shmq_list(&list, &n) == SHMQ_OK) {
		for (size_t i = 0; i < n; i++)
			ctl.queues_listed += !strncmp(list[i].name,
						      "bench.many.", 11);
		free(list);
	}
}

static void delete_queues(void)
{
	char name[64];
	uint64_t t0 = mono_ns();

	for (unsigned i = 0; i < ctl.queues_made; i++) {
		snprintf(name, sizeof(name), "bench.many.%05u", i);
		shmq_delete(name);
	}
	ctl.delete_rate = ctl.queues_made * NS / (double)(mono_ns() - t0);
}

void control_test(void)
{
	const char *name = "bench.ctl";
	int *fds = malloc(opt.clients * sizeof(*fds));
	struct shmq_attr a;

	ctl.ran = 1;
	shmq_attr_init(&a);
	a.capacity = 64;
	a.max_msg = 64;
	if (fds == NULL || shmq_create(name, &a, 0) != SHMQ_OK) {
		snprintf(ctl.err, sizeof(ctl.err), "setup failed");
		free(fds);
		return;
	}
	for (int r = 0; r < opt.runs && !interrupted && !ctl.err[0]; r++)
		ctl.open_rate[ctl.n_open++] = open_detach_rate(name);
	for (unsigned i = 0; i < opt.clients; i++)
		fds[i] = -1;
	hold_clients(fds);
	ctl.clients_served = open_detach_once(name);
	ctl.with_clients = daemon_rss();
	make_queues();
	sleep_ns(200000000);            /* idle: nothing in flight */
	ctl.with_queues = daemon_rss();
	delete_queues();
	for (unsigned i = 0; i < opt.clients; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	free(fds);
	shmq_delete(name);
	sleep_ns(200000000);
	ctl.after = daemon_rss();
	progress("%-24s  %.0f open+detach/s; %u clients, %u queues held; "
		 "RSS %ld kB fresh, %ld kB loaded %s\n", "control plane",
		 median(ctl.open_rate, ctl.n_open), ctl.clients_held,
		 ctl.queues_listed, ctl.fresh.rss, ctl.with_queues.rss,
		 ctl.err);
}

void control_fresh(void)
{
	ctl.fresh = daemon_rss();
}

static void say_rss(const char *what, struct rss r)
{
	say("| shmqd RSS, %s | %ld kB (anon %ld kB, shmem %ld kB) |\n", what,
	    r.rss, r.anon, r.shmem);
}

void report_control(void)
{
	double lo, hi;

	if (!ctl.ran)
		return;
	min_max(ctl.open_rate, ctl.n_open, &lo, &hi);
	say("## Control plane (shmqd)\n\n| measurement | result |\n|---|---|\n"
	    "| shmq_open + shmq_detach per second, one process | %.0f "
	    "(%.0f–%.0f) |\n", median(ctl.open_rate, ctl.n_open), lo, hi);
	say("| connections held (connect + HELLO each) | %u of %u; daemon "
	    "%s serving |\n", ctl.clients_held, opt.clients,
	    ctl.clients_served ? "still" : "**not**");
	say("| queues (capacity 1, max-msg 16) created, then listed | %u, "
	    "%u (%.0f creates/s, %.0f deletes/s) |\n", ctl.queues_made,
	    ctl.queues_listed, ctl.create_rate, ctl.delete_rate);
	say_rss("fresh, no queues, idle", ctl.fresh);
	say_rss("holding the connections", ctl.with_clients);
	say_rss("holding the connections and the queues, idle",
		ctl.with_queues);
	say_rss("after deleting them and closing the connections", ctl.after);
	if (ctl.err[0])
		say("| error | %s |\n", ctl.err);
	say("\n");
}
