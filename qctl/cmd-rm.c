/*
 * cmd-rm.c - qctl rm: delete a queue's name.
 *
 * As with unlink(2), only the name goes: processes that have the queue
 * open keep it until they detach, and nothing here may wait for them.
 */
#include "config.h"

#include "qctl.h"

static int exec_rm(struct args *a)
{
	int rc = shmq_delete(a->name);

	if (rc != SHMQ_OK)
		return report_fail(a, rc);
	return QX_OK;
}

const struct cmd_entry cmd_rm_entry = {
	.name = "rm",
	.alias = "delete",
	.usage = "NAME",
	.summary = "delete a queue",
	.help =
"Delete queue NAME.  As with unlinking a file, the name goes at once, while\n"
"processes that have the queue open keep using it until they detach.\n",
	.opts = NULL,
	.min_args = 1,
	.max_args = 1,
	.flags = CMD_QUEUE,
	.exits = X_COMMON | X(QX_NOENT) | X(QX_ACCESS),
	.exec = exec_rm,
};
