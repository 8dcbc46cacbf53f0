/*
 * cmd-close.c - qctl close: close a queue by name, draining or (--now)
 * discarding what is queued.
 *
 * Closing is the end-of-stream signal consumers wait for; it never deletes
 * the queue (rm does).
 */
#include "config.h"

#include <inttypes.h>
#include <stdio.h>

#include "qctl.h"

static int exec_close(struct args *a)
{
	unsigned how = a->opt[OPT_NOW] ? SHMQ_CLOSE_NOW : SHMQ_CLOSE_DRAIN;
	uint64_t discarded = 0;
	int rc;

	rc = shmq_close_name(a->name, how, &discarded);
	if (rc != SHMQ_OK)
		return report_fail(a, rc);
	if (how == SHMQ_CLOSE_NOW) {
		printf("%" PRIu64 "\n", discarded);
		return report_flush(a);
	}
	return QX_OK;
}

static const struct cmd_opt close_opts[] = {
	{ OPT_NOW, "now", 0, NULL, NULL,
	  "discard queued messages; print how many" },
	{ OPT_NONE }
};

const struct cmd_entry cmd_close_entry = {
	.name = "close",
	.usage = "NAME [--now]",
	.summary = "close a queue (drain, or discard with --now)",
	.help =
"Close queue NAME: from now on put fails with status 4, while consumers\n"
"still receive what is queued, then end of stream.  With --now, queued\n"
"messages are discarded instead, consumers see end of stream at once, and\n"
"the number discarded is printed.  On an acked queue --now also discards\n"
"the messages waiting for redelivery and the dead letters waiting for room;\n"
"leased messages are discarded when they come back.  Closing a closed\n"
"queue is no error.\n",
	.opts = close_opts,
	.min_args = 1,
	.max_args = 1,
	.flags = CMD_QUEUE,
	.exits = X_COMMON | X(QX_NOENT) | X(QX_ACCESS),
	.exec = exec_close,
};
