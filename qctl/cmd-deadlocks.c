/*
 * cmd-deadlocks.c - qctl deadlocks: the deadlocks shmqd found, as text or
 * JSON, and exit status 12 when there is one.
 *
 * Owns how a deadlock is shown: its processes, what each waits for and
 * who alone could free it, those blocked behind it last.  Scripts parse
 * the JSON and test the exit status, so neither may change meaning.  It
 * only reads: the daemon's word is shmq_deadlocks().
 */
#include "config.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qctl.h"

/* The command name of `pid`, if the list has a row of it. */
static const char *comm_of(const struct shmq_deadlock_wait *w, size_t n,
			   uint32_t pid)
{
	for (size_t i = 0; i < n; i++)
		if (w[i].pid == pid)
			return w[i].comm;
	return "?";
}

static void show_freers(const struct shmq_deadlock_wait *w, size_t n,
			const struct shmq_deadlock_wait *r)
{
	char buf[CLEAN_MAX];
	uint32_t k = r->nfreers < SHMQ_DEADLOCK_FREERS ? r->nfreers
						      : SHMQ_DEADLOCK_FREERS;

	if (r->nfreers == 1 && r->freers[0] == r->pid) {
		fputs("itself", stdout);
		return;
	}
	for (uint32_t i = 0; i < k; i++)
		printf("%spid %" PRIu32 " (%s)", i ? ", " : "", r->freers[i],
		       report_clean(comm_of(w, n, r->freers[i]), buf,
				    sizeof(buf)));
	if (r->nfreers > k)
		printf(" and %" PRIu32 " more", r->nfreers - k);
}

/* deadlock 1: 3 processes
 *   pid 812 (stage-a) blocked in put on 'b' (full 2/2) for 1.3 s, freed
 *     only by pid 813 (stage-b)
 *   behind it: pid 900 (feeder) ... */
static void show_text(const struct shmq_deadlock_wait *w, size_t n)
{
	char buf[CLEAN_MAX];

	for (size_t i = 0; i < n; i++) {
		const struct shmq_deadlock_wait *r = &w[i];
		if (i == 0 || r->deadlock != w[i - 1].deadlock) {
			size_t procs = 0;
			for (size_t j = i; j < n && w[j].deadlock == r->deadlock;
			     j++)
				procs += j == i || w[j].pid != w[j - 1].pid;
			printf("%sdeadlock %u: %zu process%s\n", i ? "\n" : "",
			       r->deadlock + 1, procs, procs == 1 ? "" : "es");
		}
		printf("  %spid %" PRIu32 " (%s) blocked in %s on ",
		       r->behind ? "behind it: " : "", r->pid,
		       report_clean(r->comm, buf, sizeof(buf)),
		       r->put ? "put" : "get");
		if (r->queue[0] == '\0')
			fputs("a queue you may not read", stdout);
		else if (r->put && r->messages < r->capacity)
			printf("'%s' (full: byte budget %" PRIu64 "/%" PRIu64 ")",
			       r->queue, r->bytes, r->max_bytes);
		else if (r->put)
			printf("'%s' (full %" PRIu32 "/%" PRIu32 ")", r->queue,
			       r->messages, r->capacity);
		else
			printf("'%s' (empty)", r->queue);
		if (r->threads > 1)
			printf(" in %" PRIu32 " threads", r->threads);
		printf(" for %.1f s", (double)r->blocked_ns / 1e9);
		if (r->ends_in_ns > 0)
			printf(" (may end at its timeout in %.1f s)",
			       (double)r->ends_in_ns / 1e9);
		fputs(", freed only by ", stdout);
		show_freers(w, n, r);
		if (r->victim)
			fputs("; on-deadlock fail: this call fails", stdout);
		putchar('\n');
	}
}

/* [{"processes":[{"pid":812,"command":"stage-a","behind":false,
 *   "waits":[{"op":"put","queue":"b",...,"freed_by":[813]}]}]}] */
static void show_json(const struct shmq_deadlock_wait *w, size_t n)
{
	putchar('[');
	for (size_t i = 0; i < n; i++) {
		const struct shmq_deadlock_wait *r = &w[i];
		int new_dl = i == 0 || r->deadlock != w[i - 1].deadlock;
		int new_proc = new_dl || r->pid != w[i - 1].pid ||
			       r->behind != w[i - 1].behind;
		if (new_dl)
			fputs(i ? "]}]},\n{\"processes\":[" : "\n{\"processes\":[",
			      stdout);
		if (new_proc) {
			if (!new_dl)
				fputs("]},", stdout);
			printf("{\"pid\":%" PRIu32 ",\"command\":", r->pid);
			fields_json_string(r->comm);
			printf(",\"behind\":%s,\"waits\":[",
			       r->behind ? "true" : "false");
		} else {
			putchar(',');
		}
		printf("{\"op\":\"%s\",\"queue\":", r->put ? "put" : "get");
		if (r->queue[0] == '\0')
			fputs("null", stdout);
		else
			fields_json_string(r->queue);
		printf(",\"messages\":%" PRIu32 ",\"capacity\":%" PRIu32
		       ",\"bytes\":%" PRIu64 ",\"max_bytes\":%" PRIu64
		       ",\"threads\":%" PRIu32 ",\"blocked_seconds\":%.3f",
		       r->messages, r->capacity, r->bytes, r->max_bytes,
		       r->threads, (double)r->blocked_ns / 1e9);
		if (r->ends_in_ns > 0)
			printf(",\"ends_in_seconds\":%.3f",
			       (double)r->ends_in_ns / 1e9);
		else
			fputs(",\"ends_in_seconds\":null", stdout);
		printf(",\"on_deadlock\":\"%s\",\"victim\":%s,\"freed_by\":[",
		       r->fail ? "fail" : "report", r->victim ? "true" : "false");
		for (uint32_t k = 0; k < r->nfreers && k < SHMQ_DEADLOCK_FREERS;
		     k++)
			printf("%s%" PRIu32, k ? "," : "", r->freers[k]);
		printf("],\"freers\":%" PRIu32 "}", r->nfreers);
	}
	fputs(n ? "]}]}\n]\n" : "]\n", stdout);
}

static int exec_deadlocks(struct args *a)
{
	struct shmq_deadlock_wait *w;
	size_t n;
	int rc = shmq_deadlocks(&w, &n), status;

	if (rc != SHMQ_OK)
		return report_fail(a, rc);
	if (a->opt[OPT_JSON])
		show_json(w, n);
	else if (n == 0)
		puts("no deadlocks");
	else
		show_text(w, n);
	free(w);
	status = report_flush(a);
	if (status == QX_OK && n > 0)
		status = QX_DEADLOCK;
	return status;
}

static const struct cmd_opt deadlocks_opts[] = {
	{ OPT_JSON, "json", 0, NULL, NULL, "print JSON" },
	{ OPT_NONE }
};

const struct cmd_entry cmd_deadlocks_entry = {
	.name = "deadlocks",
	.usage = "[--json]",
	.summary = "list the deadlocks shmqd found",
	.help =
"List the deadlocks shmqd found at its last look: sets of processes each\n"
"blocked, in every thread, in a put or a get that only another of them\n"
"could end, for longer than shmqd's --deadlock-timeout (default 1 s).  For\n"
"each process: its pid and command, the queue and call it waits in, for\n"
"how long, and which processes alone could free it; processes blocked\n"
"behind a deadlock (waiting for it from outside) come last, as 'behind\n"
"it'.  Only deadlocks involving a queue you may read are listed, and a\n"
"queue you may not read is never named ('a queue you may not read', JSON\n"
"null).  --json prints a JSON array with one object per deadlock:\n"
"\"processes\", each with pid, command, behind and \"waits\" (op put or\n"
"get, queue, messages, capacity, bytes, max_bytes (0: no byte budget),\n"
"threads, blocked_seconds, ends_in_seconds (null without a timeout),\n"
"on_deadlock, victim, freed_by: pids, at most 8 of freers).  Exits 12 if\n"
"it lists a deadlock, 0 if none.\n",
	.opts = deadlocks_opts,
	.min_args = 0,
	.max_args = 0,
	.exits = X_COMMON | X(QX_DEADLOCK),
	.exec = exec_deadlocks,
};
