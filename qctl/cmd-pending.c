/*
 * cmd-pending.c - qctl pending: the messages of an acked queue that are
 * out with a consumer or waiting to come back, as a table or JSON.
 *
 * Owns the columns and keys of that listing: scripts parse both, so a
 * column or key may be added but never renamed or moved.  It only reads
 * (the queue is opened with no role, which read permission allows).
 */
#include "config.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "qctl.h"

static const char *state_word(int state)
{
	switch (state) {
	case SHMQ_LEASE_HELD:        return "held";
	case SHMQ_LEASE_WAITING:     return "waiting";
	case SHMQ_LEASE_DEAD_LETTER: return "dead-letter";
	default:                     return "unknown";
	}
}

/* Milliseconds, rounded down; for "left", -1 (never) stays -1. */
static int64_t ms_of(int64_t ns)
{
	return ns < 0 ? -1 : ns / 1000000;
}

/* "12.3s", or "-" for none. */
static const char *seconds(int64_t ms, char *buf, size_t size)
{
	if (ms < 0)
		return "-";
	snprintf(buf, size, "%" PRId64 ".%01ds", ms / 1000,
		 (int)(ms % 1000 / 100));
	return buf;
}

static void show_json(const struct shmq_lease_info *l, size_t n)
{
	putchar('[');
	for (size_t i = 0; i < n; i++) {
		struct fields f = { .json = 1 };
		fputs(i ? ",\n" : "\n", stdout);
		fields_u64(&f, "seq", l[i].seq);
		fields_str(&f, "state", state_word(l[i].state));
		if (l[i].pid)
			fields_u64(&f, "pid", l[i].pid);
		else
			fields_str_or_none(&f, "pid", NULL);
		fields_u64(&f, "deliveries", l[i].deliveries);
		fields_u64(&f, "age_ms", (uint64_t)ms_of(l[i].age_ns));
		if (l[i].left_ns >= 0)
			fields_u64(&f, "left_ms", (uint64_t)ms_of(l[i].left_ns));
		else
			fields_str_or_none(&f, "left_ms", NULL);
		fields_u64(&f, "bytes", l[i].len);
		fields_end(&f);
	}
	fputs(n ? "\n]\n" : "]\n", stdout);
}

static void show_table(const struct shmq_lease_info *l, size_t n)
{
	char pid[16], age[32], left[32];

	printf("%-12s  %-11s  %8s  %10s  %9s  %9s  %10s\n", "SEQ", "STATE",
	       "PID", "DELIVERIES", "AGE", "LEFT", "BYTES");
	for (size_t i = 0; i < n; i++) {
		if (l[i].pid)
			snprintf(pid, sizeof(pid), "%" PRIu32, l[i].pid);
		else
			snprintf(pid, sizeof(pid), "-");
		printf("%-12" PRIu64 "  %-11s  %8s  %10" PRIu32 "  %9s  %9s  "
		       "%10" PRIu32 "\n", l[i].seq, state_word(l[i].state), pid,
		       l[i].deliveries,
		       seconds(ms_of(l[i].age_ns), age, sizeof(age)),
		       seconds(ms_of(l[i].left_ns), left, sizeof(left)),
		       l[i].len);
	}
}

static int by_seq(const void *x, const void *y)
{
	const struct shmq_lease_info *a = x, *b = y;

	return a->seq < b->seq ? -1 : a->seq > b->seq;
}

static int exec_pending(struct args *a)
{
	struct shmq_lease_info *list = NULL;
	shmq_t *q = NULL;
	size_t n = 0;
	int rc;

	rc = shmq_open(a->name, 0, &q);
	if (rc == SHMQ_OK)
		rc = shmq_pending(q, &list, &n);
	shmq_detach(q);
	if (rc != SHMQ_OK)
		return report_fail(a, rc);
	if (n > 1)
		qsort(list, n, sizeof(*list), by_seq);
	if (a->opt[OPT_JSON])
		show_json(list, n);
	else
		show_table(list, n);
	free(list);
	return report_flush(a);
}

static const struct cmd_opt pending_opts[] = {
	{ OPT_JSON, "json", 0, NULL, NULL, "print JSON" },
	{ OPT_NONE }
};

const struct cmd_entry cmd_pending_entry = {
	.name = "pending",
	.usage = "NAME [--json]",
	.summary = "list an acked queue's leased and returned messages",
	.help =
"List the messages of acked queue NAME that a consumer holds or that wait\n"
"to be delivered again, oldest first: SEQ (the message's position in the\n"
"queue), STATE (held: leased by a consumer; waiting: returned, to be\n"
"delivered again; dead-letter: waiting for room in the dead-letter queue),\n"
"PID (the holder's process, '-' unless held), DELIVERIES (so far), AGE\n"
"(since the last delivery), LEFT (until the lease times out; '-': never,\n"
"or not held), BYTES.  --json prints a JSON array of objects with keys\n"
"seq, state, pid, deliveries, age_ms, left_ms, bytes (null for '-').  A\n"
"plain queue has none.  Needs read permission.\n",
	.opts = pending_opts,
	.min_args = 1,
	.max_args = 1,
	.flags = CMD_QUEUE,
	.exits = X_COMMON | X(QX_NOENT) | X(QX_ACCESS),
	.exec = exec_pending,
};
