/*
 * cmd-join.c - qctl join: wait until every message put so far is
 * settled, as Python's queue.Queue.join() waits for task_done().
 *
 * Only waits: it opens the queue with no role (read permission is
 * enough), so it never counts as a producer or consumer, and never
 * changes the queue.
 */
#include "config.h"

#include "qctl.h"

static int exec_join(struct args *a)
{
	shmq_t *q = NULL;
	int status, timeout, rc;

	if ((status = num_opt_timeout(a, &timeout)))
		return status;
	rc = shmq_open(a->name, 0, &q);
	if (rc != SHMQ_OK)
		return report_fail(a, rc);
	/* A signal handler that returns (none of qctl's does) would only
	 * interrupt the wait: go on.  The timeout is restarted then, which
	 * only lengthens it. */
	do
		rc = shmq_join(q, timeout);
	while (rc == SHMQ_EINTR);
	shmq_detach(q);
	if (rc != SHMQ_OK)
		return report_fail(a, rc);
	return QX_OK;
}

static const struct cmd_opt join_opts[] = {
	{ OPT_TIMEOUT, "timeout", 0, "SECONDS", NULL,
	  "fail (status 5) if it takes longer" },
	{ OPT_TIMEOUT, "nonblock", 0, NULL, "0",
	  "do not wait: status 0 if settled now, else 5 (--timeout 0)" },
	{ OPT_NONE }
};

const struct cmd_entry cmd_join_entry = {
	.name = "join",
	.usage = "NAME [--timeout SECONDS] [--nonblock]",
	.summary = "wait until every message put so far is settled",
	.help =
"Wait until every message put on queue NAME before join started is\n"
"settled: taken by a consumer of a plain queue; on an acked queue, acked,\n"
"dead-lettered, dropped after its last delivery, or discarded by\n"
"'close --now'.  Messages put meanwhile are not waited for.  Needs read\n"
"permission; join takes nothing (after 'close --now' it discards, as a\n"
"consumer would, what is left to discard, such as the lease of a worker\n"
"that died).\n",
	.opts = join_opts,
	.min_args = 1,
	.max_args = 1,
	.flags = CMD_QUEUE,
	.exits = X_COMMON | X(QX_TIMEOUT) | X(QX_NOENT) | X(QX_ACCESS),
	.exec = exec_join,
};
