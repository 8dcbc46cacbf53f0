/*
 * cmd-users.c - qctl users: what shmqd holds for each user, against the
 * limits that bind it (shmq_users()), as a table or JSON.
 *
 * Owns that command's columns and JSON keys: scripts parse them, so a
 * field may be added but never renamed or moved.  It only reads; who may
 * see whom is the daemon's decision, never this file's.
 */
#include "config.h"

#include <inttypes.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qctl.h"

/* 4096 -> "4.0K", 18253611008 -> "17G": three significant digits at
 * most, powers of 1024 as everywhere in qctl. */
static const char *human(uint64_t v, char *buf, size_t size)
{
	static const char units[] = "KMGTPE";
	double x = (double)v;
	int u = -1;

	if (v == SHMQ_UNLIMITED)
		return "unlimited";
	if (v < 1024) {
		snprintf(buf, size, "%" PRIu64, v);
		return buf;
	}
	while (x >= 1024 && u < 5) {
		x /= 1024;
		u++;
	}
	snprintf(buf, size, x < 10 ? "%.1f%c" : "%.0f%c", x, units[u]);
	return buf;
}

static const char *count(uint64_t v, char *buf, size_t size)
{
	if (v == SHMQ_UNLIMITED)
		return "unlimited";
	snprintf(buf, size, "%" PRIu64, v);
	return buf;
}

static const char *user_name(uint32_t uid, char *buf, size_t size)
{
	const struct passwd *pw = getpwuid((uid_t)uid);

	if (pw && pw->pw_name && *pw->pw_name)
		return report_clean(pw->pw_name, buf, size);
	snprintf(buf, size, "%" PRIu32, uid);
	return buf;
}

/* "used/limit" for one column. */
static void pair(char *out, size_t size, uint64_t used, uint64_t limit,
		 int bytes)
{
	char a[32], b[32];

	if (bytes)
		snprintf(out, size, "%s/%s", human(used, a, sizeof(a)),
			 human(limit, b, sizeof(b)));
	else
		snprintf(out, size, "%s/%s", count(used, a, sizeof(a)),
			 count(limit, b, sizeof(b)));
}

static void row(const char *user, int uw, const char *uid,
		const struct shmq_user *u)
{
	char q[72], by[72], c[72], h[72];

	pair(q, sizeof(q), u->queues, u->max_queues, 0);
	pair(by, sizeof(by), u->bytes, u->max_bytes, 1);
	pair(c, sizeof(c), u->clients, u->max_clients, 0);
	pair(h, sizeof(h), u->handles, u->max_handles, 0);
	printf("%-*s  %10s  %-13s  %-15s  %-11s  %s\n", uw, user, uid, q, by,
	       c, h);
}

static void show_table(const struct shmq_user *list, size_t n,
		       const struct shmq_user *total)
{
	char name[CLEAN_MAX + 2], uid[16];
	int width = 7, exempt = 0;

	for (size_t i = 0; i < n; i++) {
		int w = (int)strlen(user_name(list[i].uid, name,
					      sizeof(name) - 1)) + 1;
		if (w > width)
			width = w;
	}
	printf("%-*s  %10s  %-13s  %-15s  %-11s  %s\n", width, "USER", "UID",
	       "QUEUES", "BYTES", "CLIENTS", "HANDLES");
	for (size_t i = 0; i < n; i++) {
		user_name(list[i].uid, name, sizeof(name) - 1);
		if (list[i].flags & SHMQ_USER_EXEMPT) {
			strcat(name, "*");
			exempt = 1;
		}
		snprintf(uid, sizeof(uid), "%" PRIu32, list[i].uid);
		row(name, width, uid, &list[i]);
	}
	row("(total)", width, "", total);
	if (exempt)
		puts("* the daemon's own user: only the daemon's limits bind "
		     "it");
}

static void user_fields(struct fields *f, const struct shmq_user *u)
{
	fields_u64(f, "bytes", u->bytes);
	fields_limit(f, "max_bytes", u->max_bytes);
	fields_u64(f, "queues", u->queues);
	fields_limit(f, "max_queues", u->max_queues);
	fields_u64(f, "clients", u->clients);
	fields_limit(f, "max_clients", u->max_clients);
	fields_u64(f, "handles", u->handles);
	fields_limit(f, "max_handles", u->max_handles);
	fields_end(f);
}

static void show_json(const struct shmq_user *list, size_t n,
		      const struct shmq_user *total)
{
	char name[CLEAN_MAX + 2];

	fputs("{\"users\":[", stdout);
	for (size_t i = 0; i < n; i++) {
		struct fields f = { .json = 1 };
		fputs(i ? ",\n" : "\n", stdout);
		fields_u64(&f, "uid", list[i].uid);
		const struct passwd *pw = getpwuid((uid_t)list[i].uid);
		if (pw && pw->pw_name && *pw->pw_name)
			fields_str(&f, "user", pw->pw_name);
		else
			fields_str(&f, "user",
				   user_name(list[i].uid, name, sizeof(name)));
		fields_bool(&f, "exempt",
			    !!(list[i].flags & SHMQ_USER_EXEMPT));
		user_fields(&f, &list[i]);
	}
	fputs(n ? "\n],\n\"total\":" : "],\n\"total\":", stdout);
	struct fields t = { .json = 1 };
	user_fields(&t, total);
	fputs("}\n", stdout);
}

static int exec_users(struct args *a)
{
	struct shmq_user *list, total;
	size_t n;
	int rc = shmq_users(&list, &n, &total);

	if (rc != SHMQ_OK)
		return report_fail(a, rc);
	if (a->opt[OPT_JSON])
		show_json(list, n, &total);
	else
		show_table(list, n, &total);
	free(list);
	return report_flush(a);
}

static const struct cmd_opt users_opts[] = {
	{ OPT_JSON, "json", 0, NULL, NULL, "print JSON" },
	{ OPT_NONE }
};

const struct cmd_entry cmd_users_entry = {
	.name = "users",
	.usage = "[--json]",
	.summary = "show each user's usage against its quotas",
	.help =
"Show, for each user, what shmqd holds on its behalf against the limits\n"
"that bind it, as USED/LIMIT: QUEUES it owns, BYTES of shared memory its\n"
"queues reserve, CLIENTS (connections) and HANDLES (open handles) of its\n"
"processes; then (total), everybody's against the daemon's own limits.\n"
"A user's limit is the smaller of its quota (shmqd --user-max-*) and the\n"
"daemon's limit; the daemon's own user, marked '*', has no quota.\n"
"Root and the daemon's user see every user holding anything; any other\n"
"user sees only itself (even holding nothing) and the totals.  Your own\n"
"connection counts among your clients.\n"
"--json prints {\"users\": [...], \"total\": {...}}: each user with uid,\n"
"user, exempt, bytes, max_bytes, queues, max_queues, clients,\n"
"max_clients, handles, max_handles (a limit that is not there: null).\n",
	.opts = users_opts,
	.min_args = 0,
	.max_args = 0,
	.exits = X_COMMON,
	.exec = exec_users,
};
