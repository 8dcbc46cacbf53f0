/*
 * quota.h - who may take how much of the daemon: the global limits and
 * each user's share of them.
 *
 * Four things a client can make shmqd hold for it are counted, per uid
 * and in total:
 *
 *   QUOTA_BYTES    shared memory reserved in /dev/shm: every queue's
 *                  segment and its .meta record, rounded up to pages as
 *                  tmpfs allocates them; charged to the queue's owner
 *                  until the memory is freed (at delete, or at the last
 *                  detach of a deleted queue somebody still had open)
 *   QUOTA_QUEUES   queues, charged to their owner until deleted
 *   QUOTA_CLIENTS  connections, charged to the connecting uid
 *   QUOTA_HANDLES  open handles (attachments), charged to the uid of the
 *                  process that opened them
 *
 * The daemon's own uid is limited by the global limits only; every other
 * uid also by its quota.  Callers take before they allocate and give back
 * exactly what they took when they free.
 */
#ifndef SHMQD_QUOTA_H
#define SHMQD_QUOTA_H

#include <stddef.h>
#include <stdint.h>

enum quota_kind {
	QUOTA_BYTES,
	QUOTA_QUEUES,
	QUOTA_CLIENTS,
	QUOTA_HANDLES,
	QUOTA_KINDS
};

#define QUOTA_UNLIMITED UINT64_MAX

struct quota_limits {
	uint64_t global[QUOTA_KINDS];   /* everybody together */
	uint64_t user[QUOTA_KINDS];     /* each uid but the daemon's */
};

void quota_init(const struct quota_limits *lim, uint32_t daemon_uid);
/* Forgets every count (the callers have freed what they held). */
void quota_shutdown(void);

/* Charges `n` of `kind` to `uid`.  SHMQ_OK, or SHMQ_ELIMIT with `detail`
 * naming the quota, the usage and the limit (the first refusal of a
 * quota is logged; later ones are not, until that usage falls clearly
 * below the limit, and at most one a minute), or
 * SHMQ_ENOMEM.  With QUOTA_FORCE nothing is refused: for what exists
 * already, such as the queues a restarted daemon adopts. */
#define QUOTA_FORCE 0x1u
int quota_take(uint32_t uid, enum quota_kind kind, uint64_t n,
	       unsigned flags, char *detail, size_t detail_size);
/* Gives back what quota_take() charged. */
void quota_give(uint32_t uid, enum quota_kind kind, uint64_t n);

/* A user's usage and the limits that bind it (the smaller of its quota
 * and the global limit; QUOTA_UNLIMITED: none). */
struct quota_view {
	uint32_t uid;
	int exempt;                     /* the daemon's uid */
	uint64_t used[QUOTA_KINDS];
	uint64_t limit[QUOTA_KINDS];
};
void quota_view(uint32_t uid, struct quota_view *v);
/* Everybody together, against the global limits (uid is UINT32_MAX). */
void quota_total(struct quota_view *v);
/* Calls fn for each uid >= `from` that holds anything, in uid order,
 * until fn returns non-zero. */
void quota_walk(uint32_t from, int (*fn)(const struct quota_view *, void *),
		void *arg);
uint32_t quota_daemon_uid(void);

#endif /* SHMQD_QUOTA_H */
