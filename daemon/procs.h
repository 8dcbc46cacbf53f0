/*
 * procs.h - client processes and what each of them has attached.
 *
 * A client is a process, not a connection: attachments are recorded in
 * the segment with the process's pid and start time, and the daemon
 * watches each process through a pidfd.  So it notices a death whether
 * the process held one connection, shared it with a forked child, or
 * attached under a previous daemon that was restarted since.
 */
#ifndef SHMQD_PROCS_H
#define SHMQD_PROCS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "registry.h"

struct event_base;

void procs_init(struct event_base *base);
/* Forgets every process without touching the segments: the attachments
 * stay recorded there for the next daemon to adopt. */
void procs_shutdown(void);

/* Records an attachment of process `pid`, charged as a handle of `uid`
 * (the process's uid) until it is released; on failure `why` says why. */
int procs_attach(pid_t pid, uint32_t uid, struct queue *q, uint32_t role,
		 uint32_t *index, uint32_t *gen, char *why, size_t why_size);
int procs_detach(pid_t pid, uint64_t queue_id, uint32_t index, uint32_t gen);
/* Takes over the attachments recorded in an adopted queue: live
 * processes are watched, dead ones released. */
void procs_adopt(struct queue *q);
/* The queue of process `pid`'s attachment (queue_id, index, gen), or
 * NULL if it has none such. */
struct queue *procs_attachment(pid_t pid, uint64_t queue_id, uint32_t index,
				uint32_t gen);

/* One attachment of a queue as shmqd handed it out (or adopted it): the
 * truth about who holds entry `index`, whatever the segment now says. */
struct procs_entry {
	pid_t pid;
	uint64_t start_time;
	uint32_t index, gen;
	uint32_t role;              /* SHMQ_ROLE_* */
};
/* The attachments of q, into out[0..cap): returns how many there are
 * (q->attached), even beyond cap. */
size_t procs_entries(const struct queue *q, struct procs_entry *out,
		     size_t cap);

/* What /proc/PID/stat says of a process. */
struct proc_info {
	char comm[16];              /* command name, NUL-terminated */
	char state;                 /* R, S, D, T, t, Z, X, ... */
	uint32_t threads;
	uint64_t start_time;        /* clock ticks since boot */
};
/* 0, or -1 if the process is gone or its record unreadable. */
int procs_info(pid_t pid, struct proc_info *pi);

/* Whether the cgroup freezer holds `pid` (cgroup v2 cgroup.events says
 * "frozen 1", or v1 freezer.state is not THAWED): it is stopped as surely
 * as by SIGSTOP, though /proc/PID/stat may say it sleeps.  0 when it
 * cannot tell (no freezer mounted, an unreadable file): without a freezer
 * nothing is frozen. */
int procs_frozen(pid_t pid);
/* If `pid` is a tracked process that has exited, releases it now. */
void procs_check(pid_t pid);
size_t procs_count(void);

#endif /* SHMQD_PROCS_H */
