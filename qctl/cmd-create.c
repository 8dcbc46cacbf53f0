/*
 * cmd-create.c - qctl create: make a queue with the settings the command
 * line gives.
 *
 * Hands the library only what the user said; every default is the
 * library's (shmq_attr_init), never a second copy here.
 */
#include "config.h"

#include <string.h>

#include "qctl.h"

/* The options of an acked queue.  Given without --acked they are bad
 * usage here, before the daemon would refuse them: the user forgot
 * --acked, and should be told so. */
static int acked_attrs(const struct args *a, struct shmq_attr *attr)
{
	int ms = 0;
	uint32_t n = 0;

	if (num_opt_seconds(a, OPT_LEASE_TIMEOUT, &ms) ||
	    num_opt_u32(a, OPT_MAX_DELIVERIES, 0, &n))
		return QX_USAGE;
	if (a->opt[OPT_DEAD_LETTER] &&
	    shmq_check_name(a->opt[OPT_DEAD_LETTER]) != SHMQ_OK)
		return num_bad(a, OPT_DEAD_LETTER, "not a valid queue name");
	if (!a->opt[OPT_ACKED]) {
		static const enum opt_id need[] = {
			OPT_LEASE_TIMEOUT, OPT_MAX_DELIVERIES, OPT_DEAD_LETTER
		};
		for (size_t i = 0; i < sizeof(need) / sizeof(need[0]); i++)
			if (a->opt[need[i]])
				return report_usage(a, "--%s needs --acked",
						    a->src[need[i]]->name);
		return QX_OK;
	}
	attr->flags |= SHMQ_ACKED;
	attr->lease_timeout_ms = (uint32_t)ms;
	attr->max_deliveries = n;
	attr->dead_letter = a->opt[OPT_DEAD_LETTER];
	return QX_OK;
}

static int exec_create(struct args *a)
{
	struct shmq_attr attr;
	uint64_t max_bytes;
	int status, rc;

	shmq_attr_init(&attr);
	max_bytes = attr.max_bytes;
	if (num_opt_u32(a, OPT_CAPACITY, 1, &attr.capacity) ||
	    num_opt_u32(a, OPT_MAX_MSG, 0, &attr.max_msg) ||
	    num_opt_size(a, OPT_MAX_BYTES, 0, UINT64_MAX, &max_bytes) ||
	    num_opt_mode(a, OPT_MODE, &attr.mode))
		return QX_USAGE;
	attr.max_bytes = max_bytes;
	if (a->opt[OPT_AUTO_CLOSE])
		attr.flags |= SHMQ_AUTO_CLOSE;
	if (a->opt[OPT_ON_DEADLOCK]) {
		if (strcmp(a->opt[OPT_ON_DEADLOCK], "fail") == 0)
			attr.flags |= SHMQ_DEADLOCK_FAIL;
		else if (strcmp(a->opt[OPT_ON_DEADLOCK], "report") != 0)
			return num_bad(a, OPT_ON_DEADLOCK,
				       "expected report or fail");
	}
	if ((status = acked_attrs(a, &attr)) != QX_OK)
		return status;
	rc = shmq_create(a->name, &attr,
			 a->opt[OPT_EXIST_OK] ? SHMQ_EXIST_OK : 0);
	if (rc != SHMQ_OK)
		return report_fail(a, rc);
	return QX_OK;
}

static const struct cmd_opt create_opts[] = {
	{ OPT_CAPACITY, "capacity", 0, "N", NULL,
	  "hold at most N messages (default 1024)" },
	{ OPT_MAX_MSG, "max-msg", 0, "BYTES", NULL,
	  "largest message (default 4096)" },
	{ OPT_MAX_BYTES, "max-bytes", 0, "BYTES", NULL,
	  "hold at most BYTES of messages (default 0: no limit)" },
	{ OPT_MODE, "mode", 0, "OCTAL", NULL,
	  "permission bits (default 0600: owner only)" },
	{ OPT_AUTO_CLOSE, "auto-close", 0, NULL, NULL,
	  "close the queue when its last producer detaches" },
	{ OPT_ON_DEADLOCK, "on-deadlock", 0, "report|fail", NULL,
	  "on a deadlock, only log it (default) or fail a call" },
	{ OPT_EXIST_OK, "exist-ok", 0, NULL, NULL,
	  "an existing queue NAME is not an error" },
	{ OPT_ACKED, "acked", 0, NULL, NULL,
	  "messages leave the queue only when acked" },
	{ OPT_LEASE_TIMEOUT, "lease-timeout", 0, "SECONDS", NULL,
	  "acked: redeliver a message not acked in time (default 0: never)" },
	{ OPT_MAX_DELIVERIES, "max-deliveries", 0, "N", NULL,
	  "acked: after N deliveries, dead-letter it (default 0: never)" },
	{ OPT_DEAD_LETTER, "dead-letter", 0, "QUEUE", NULL,
	  "acked: where dead letters go (default: dropped, counted)" },
	{ OPT_NONE }
};

const struct cmd_entry cmd_create_entry = {
	.name = "create",
	.usage = "NAME [--capacity N] [--max-msg BYTES] [--max-bytes BYTES] "
		 "[--mode OCTAL] [--auto-close] [--on-deadlock report|fail] "
		 "[--exist-ok]\n"
		 "                   [--acked] [--lease-timeout SECONDS] "
		 "[--max-deliveries N]\n"
		 "                   [--dead-letter QUEUE]",
	.summary = "create a queue",
	.help =
"Create queue NAME.  It holds at most N messages of at most --max-msg bytes\n"
"each and, with --max-bytes, at most that many bytes of messages in all;\n"
"while it is full, put waits.  The mode works as for files: producers need\n"
"write permission, consumers read permission.  With --auto-close the queue\n"
"closes when its last producer detaches (or dies), so consumers see end of\n"
"stream without anyone running 'qctl close'.  When shmqd finds processes\n"
"deadlocked in calls blocked on the queue (see 'qctl deadlocks'), it logs\n"
"it; with --on-deadlock fail it also breaks the deadlock: one such call,\n"
"the most recent, fails (put and get exit with status 12).\n"
"\n"
"With --acked, a message leaves the queue only once its consumer acks it\n"
"('qctl work' acks when its command succeeds; get and cat once they have\n"
"printed it).  A message not acked - its consumer died, gave it back, or\n"
"held it past --lease-timeout - is delivered again, before any new one;\n"
"after --max-deliveries deliveries it goes to the --dead-letter queue (which\n"
"must exist, be writable by you and take messages as large), or without\n"
"one is dropped and counted.  An acked queue reserves capacity x max-msg\n"
"bytes of shared memory for the copies of its leased messages, whatever\n"
"--max-bytes says.\n",
	.opts = create_opts,
	.min_args = 1,
	.max_args = 1,
	.flags = CMD_QUEUE,
	.exits = X_COMMON | X(QX_NOENT) | X(QX_ACCESS) | X(QX_EXISTS),
	.exec = exec_create,
};
