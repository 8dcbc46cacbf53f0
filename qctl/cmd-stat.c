/*
 * cmd-stat.c - qctl stat and qctl ls: a queue's settings and counters, and
 * the list of queues, as text or JSON.
 *
 * Owns which fields they show and in what order: scripts parse both
 * outputs, so a field may be added but never renamed or moved.  It only
 * reads: nothing here may attach to a queue.
 */
#include "config.h"

#include <grp.h>
#include <inttypes.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qctl.h"

static const char *state_notes(const struct shmq_stat *st)
{
	if (st->auto_closed && st->producer_lost)
		return " (auto, producer lost)";
	if (st->auto_closed)
		return " (auto)";
	return st->producer_lost ? " (producer lost)" : "";
}

/* Added after the fields of every queue, never among them: scripts parse
 * both outputs.  JSON has every key for every queue (0 and null for a
 * plain one), the text only says "acked: no" for a plain queue. */
static void show_acked(struct fields *f, const struct shmq_stat *st)
{
	int acked = (st->flags & SHMQ_ACKED) != 0;

	fields_bool(f, "acked", acked);
	if (!acked && !f->json)
		return;
	fields_u64(f, "leased", st->leased);
	fields_u64(f, "returned", st->returned);
	fields_u64(f, "total_acked", st->acked);
	fields_u64(f, "dead_lettered", st->dead_lettered);
	fields_u64(f, "dropped", st->dropped);
	fields_u64(f, "lease_timeout_ms", st->lease_timeout_ms);
	fields_u64(f, "max_deliveries", st->max_deliveries);
	fields_str_or_none(f, "dead_letter", st->dead_letter);
}

static void show_stat(const struct shmq_stat *st, int json)
{
	struct fields f = { .json = json };
	char buf[64];

	fields_str(&f, "name", st->name);
	fields_u64(&f, "capacity", st->capacity);
	fields_u64(&f, "max_msg", st->max_msg);
	fields_u64(&f, "max_bytes", st->max_bytes);
	snprintf(buf, sizeof(buf), "%04o", (unsigned)st->mode);
	fields_str(&f, "mode", buf);
	fields_u64(&f, "uid", st->uid);
	fields_u64(&f, "gid", st->gid);
	fields_bool(&f, "auto_close", !!(st->flags & SHMQ_AUTO_CLOSE));
	fields_u64(&f, "messages", st->messages);
	fields_u64(&f, "bytes", st->bytes);
	fields_u64(&f, "producers", st->producers);
	fields_u64(&f, "consumers", st->consumers);
	fields_u64(&f, "blocked_put", st->put_blocked);
	fields_u64(&f, "blocked_get", st->get_blocked);
	fields_u64(&f, "total_put", st->total_put);
	fields_u64(&f, "total_got", st->total_got);
	fields_u64(&f, "discarded", st->discarded);
	if (json) {
		fields_str(&f, "state", fields_state_name(st->state));
		fields_bool(&f, "auto_closed", st->auto_closed);
		fields_bool(&f, "producer_lost", st->producer_lost);
	} else {
		snprintf(buf, sizeof(buf), "%s%s", fields_state_name(st->state),
			 state_notes(st));
		fields_str(&f, "state", buf);
	}
	fields_time(&f, "created", st->created_ns);
	fields_time(&f, "closed", st->closed_ns);
	fields_str(&f, "on_deadlock",
		   st->flags & SHMQ_DEADLOCK_FAIL ? "fail" : "report");
	fields_bool(&f, "deadlocked", st->deadlocked);
	show_acked(&f, st);
	fields_end(&f);
}

static int exec_stat(struct args *a)
{
	struct shmq_stat st;
	int rc = shmq_stat_name(a->name, &st);

	if (rc != SHMQ_OK)
		return report_fail(a, rc);
	show_stat(&st, a->opt[OPT_JSON] != NULL);
	if (a->opt[OPT_JSON])
		putchar('\n');
	return report_flush(a);
}

static const struct cmd_opt json_opts[] = {
	{ OPT_JSON, "json", 0, NULL, NULL, "print JSON" },
	{ OPT_NONE }
};

const struct cmd_entry cmd_stat_entry = {
	.name = "stat",
	.usage = "NAME [--json]",
	.summary = "show a queue's settings and counters",
	.help =
"Show queue NAME, one \"key: value\" per line, or one JSON object with\n"
"--json.  Keys: name, capacity, max_msg, max_bytes (0: no limit), mode,\n"
"uid, gid, auto_close, messages, bytes (queued now), producers, consumers,\n"
"blocked_put, blocked_get (processes waiting), total_put, total_got,\n"
"discarded (by close --now), state (open, closed or closed-now; JSON adds\n"
"auto_closed and producer_lost, the text adds them in parentheses),\n"
"created and closed (UTC, ISO 8601; '-' or null while open), on_deadlock\n"
"(report or fail), deadlocked (shmqd found calls blocked here deadlocked\n"
"at its last look: see 'qctl deadlocks'), acked (an acked queue).  For an\n"
"acked queue (JSON: for every queue, 0 or null if plain) also: leased\n"
"(delivered, not yet acked), returned (waiting for redelivery; counted in\n"
"messages too), total_acked, dead_lettered, dropped (after the most\n"
"deliveries, for want of a dead-letter queue), lease_timeout_ms and\n"
"max_deliveries (0: none), dead_letter ('-' or null: none).\n",
	.opts = json_opts,
	.min_args = 1,
	.max_args = 1,
	.flags = CMD_QUEUE,
	.exits = X_COMMON | X(QX_NOENT) | X(QX_ACCESS),
	.exec = exec_stat,
};

/* ------------------------------------------------------------------ */
/* ls                                                                 */

static void show_list_json(const struct shmq_stat *list, size_t n)
{
	putchar('[');
	for (size_t i = 0; i < n; i++) {
		fputs(i ? ",\n" : "\n", stdout);
		show_stat(&list[i], 1);
	}
	fputs(n ? "\n]\n" : "]\n", stdout);
}

/* The owner's and the group's names (else their numbers), for ls -l. */
static const char *owner_name(uint32_t uid, char *buf, size_t size)
{
	const struct passwd *pw = getpwuid((uid_t)uid);

	if (pw && pw->pw_name && *pw->pw_name)
		return report_clean(pw->pw_name, buf, size);
	snprintf(buf, size, "%" PRIu32, uid);
	return buf;
}

static const char *group_name(uint32_t gid, char *buf, size_t size)
{
	const struct group *gr = getgrgid((gid_t)gid);

	if (gr && gr->gr_name && *gr->gr_name)
		return report_clean(gr->gr_name, buf, size);
	snprintf(buf, size, "%" PRIu32, gid);
	return buf;
}

static void show_list_table(const struct shmq_stat *list, size_t n,
			    int long_form)
{
	int width = 4, ow = 5, gw = 5;
	char len[48], state[48], who[CLEAN_MAX], leased[16];

	for (size_t i = 0; i < n; i++) {
		if ((int)strlen(list[i].name) > width)
			width = (int)strlen(list[i].name);
		if (!long_form)
			continue;
		int w = (int)strlen(owner_name(list[i].uid, who, sizeof(who)));
		ow = w > ow ? w : ow;
		w = (int)strlen(group_name(list[i].gid, who, sizeof(who)));
		gw = w > gw ? w : gw;
	}
	printf("%-*s  ", width, "NAME");
	if (long_form)
		printf("%-4s  %-*s  %-*s  ", "MODE", ow, "OWNER", gw, "GROUP");
	printf("%-15s  %-17s  %9s  %9s  %6s\n", "LENGTH/CAPACITY", "STATE",
	       "PRODUCERS", "CONSUMERS", "LEASED");
	for (size_t i = 0; i < n; i++) {
		const struct shmq_stat *st = &list[i];
		snprintf(len, sizeof(len), "%" PRIu64 "/%" PRIu32,
			 st->messages, st->capacity);
		snprintf(state, sizeof(state), "%s%s%s%s",
			 fields_state_name(st->state),
			 st->auto_closed ? ",auto" : "",
			 st->producer_lost ? ",lost" : "",
			 st->deadlocked ? ",deadlock" : "");
		printf("%-*s  ", width, st->name);
		if (long_form) {
			printf("%04o  ", (unsigned)st->mode);
			printf("%-*s  ", ow, owner_name(st->uid, who,
							 sizeof(who)));
			printf("%-*s  ", gw, group_name(st->gid, who,
							 sizeof(who)));
		}
		/* A plain queue has no leases: '-' marks it. */
		if (st->flags & SHMQ_ACKED)
			snprintf(leased, sizeof(leased), "%" PRIu32,
				 st->leased);
		else
			strcpy(leased, "-");
		printf("%-15s  %-17s  %9" PRIu32 "  %9" PRIu32 "  %6s\n", len,
		       state, st->producers, st->consumers, leased);
	}
}

static int exec_ls(struct args *a)
{
	struct shmq_stat *list;
	size_t n;
	int rc = shmq_list(&list, &n);

	if (rc != SHMQ_OK)
		return report_fail(a, rc);
	if (a->opt[OPT_JSON])
		show_list_json(list, n);
	else
		show_list_table(list, n, a->opt[OPT_LONG] != NULL);
	free(list);
	return report_flush(a);
}

static const struct cmd_opt ls_opts[] = {
	{ OPT_LONG, "long", 'l', NULL, NULL,
	  "also show each queue's mode, owner and group" },
	{ OPT_JSON, "json", 0, NULL, NULL, "print JSON" },
	{ OPT_NONE }
};

const struct cmd_entry cmd_ls_entry = {
	.name = "ls",
	.alias = "list",
	.usage = "[-l] [--json]",
	.summary = "list queues",
	.help =
"List the queues you may read, by name: NAME, LENGTH/CAPACITY (messages\n"
"queued, and the most it holds), STATE (open, closed or closed-now, plus\n"
"',auto' if the last producer's leaving closed it, ',lost' if a producer\n"
"died without detaching and ',deadlock' if calls blocked on it are\n"
"deadlocked), PRODUCERS and CONSUMERS attached, LEASED (an acked queue's\n"
"messages delivered and not yet acked; '-' for a plain queue).  -l adds,\n"
"after NAME, the queue's MODE, OWNER and GROUP (names, or numbers without\n"
"one): the owner is the user whose quotas the queue counts against (see\n"
"'qctl users').  --json prints a JSON array of the objects 'qctl stat\n"
"--json' prints (the owner is their uid, the group their gid).\n",
	.opts = ls_opts,
	.min_args = 0,
	.max_args = 0,
	.exits = X_COMMON,
	.exec = exec_ls,
};
