/*
 * registry.h - the daemon's queues: names, segments, limits, adoption.
 *
 * Every queue is two POSIX shared-memory objects owned by the daemon's user
 * with mode 0600:
 *
 *   /shmq.<daemon>.<id>        the segment clients map (shmq_layout.h)
 *   /shmq.<daemon>.<id>.meta   the daemon's own record of name, owner,
 *                              mode and geometry, never handed out
 *
 * <daemon> is a hash of the control socket's path, so daemons on different
 * sockets never adopt each other's queues.  The meta record is what the
 * daemon trusts: clients can write any byte of the segment, so its copy of
 * the owner or the name could be forged.
 */
#ifndef SHMQD_REGISTRY_H
#define SHMQD_REGISTRY_H

#include <stddef.h>
#include <stdint.h>

#include "ring.h"
#include "shmq_wire.h"

struct attachment;

/* A queue's record.  Its two names live in the same allocation, after
 * the record, at their own lengths (registry.c's queue_new): the daemon
 * holds one record per queue, and two NAME_MAX buffers were more than
 * half of it. */
struct queue {
	const char *name;
	uint64_t id;
	uint32_t uid, gid, mode;    /* trusted copies (from meta) */
	uint32_t config_flags;      /* SHMQ_CFG_* */
	const char *dead_letter;    /* acked: "" = none */
	struct ring ring;
	void *map;
	size_t map_size;
	unsigned attached;          /* attachments tracked by procs.c */
	struct attachment *attachments;  /* procs.c's list of them */
	int deleted;                /* name removed, kept while attached */
	int broken;                 /* segment truncated under us: never
				       touched again, removed by
				       registry_reap() */
	int counted;                /* charged as one of uid's queues */
	uint64_t reserved;          /* bytes charged to uid (quota.h) */
	int seg_fd;                 /* a deleted or broken queue's segment,
				       kept to free its memory (-1: none) */
	struct queue *next_broken;
	char strings[];             /* name and dead_letter */
};

/* The shape of one queue; how many queues and bytes each user may hold
 * is quota.c's business. */
struct registry_limits {
	uint64_t max_segment;       /* bytes */
	uint32_t max_attach;        /* attachments per queue */
};

/* `identity` is the socket path; it names this daemon's segments. */
int registry_init(const char *identity, const struct registry_limits *lim);
/* Re-adopts the segments a previous daemon on this socket left, charging
 * each to its owner.  Of those it cannot adopt, it removes the ones
 * clients damaged or a crash left half-made, and keeps (counted against
 * the owner their record names, or the daemon's own uid) those of
 * another shmq version: nothing stays in /dev/shm counted against
 * nobody. */
void registry_adopt(void);
void registry_shutdown(void);

struct queue *registry_find(const char *name);
struct queue *registry_find_id(uint64_t id);
size_t registry_count(void);

/* Creates a queue owned by uid, charging it and its bytes to uid's quota
 * (quota.h); on failure `detail` explains which limit, quota or resource
 * refused it.  The queue is uncharged when deleted, its bytes when its
 * memory is freed: at once, or at the last detach if it is still open. */
int registry_create(const struct shmq_wire_create *req, uint32_t uid,
		    uint32_t gid, struct queue **out, char *detail,
		    size_t detail_size);
int registry_delete(struct queue *q);
/* What a segment of `seg_size` bytes and its record take in /dev/shm. */
uint64_t registry_reserved_bytes(uint64_t seg_size);
/* A fresh read-write descriptor of the segment, to hand to a client. */
int registry_segment_fd(const struct queue *q);
/* Called when q->attached dropped: frees a deleted queue nobody uses,
 * its memory in /dev/shm included (the segment is truncated to nothing,
 * so that a mapping or a descriptor that outlived its handle holds no
 * pages and faults with SIGBUS). */
void registry_release(struct queue *q);

/* Runs fn(q, arg), which may read and write q's segment, so that a
 * segment truncated by a client (any access would raise SIGBUS) breaks
 * only that queue: it is marked broken, unlinked, and never touched
 * again.  fn is abandoned at the faulting access, so it must never hold a
 * lock across a segment access and must leave the daemon's own state
 * consistent at each one.  Returns SHMQ_OK, or SHMQ_ECORRUPT for a broken
 * queue. */
int registry_access(struct queue *q, void (*fn)(struct queue *, void *),
		    void *arg);
/* Installs the SIGBUS handler registry_access() relies on. */
void registry_guard_init(void);
/* Removes the queues found broken since the last call.  A broken queue is
 * only marked where it is found (a caller, or a walk of the registry, may
 * still be using it); call this where nobody is: between requests. */
void registry_reap(void);

/* Calls fn for each live queue in name order, starting after `after`
 * ("" = from the first); stops when fn returns non-zero. */
void registry_walk(const char *after, int (*fn)(struct queue *, void *),
		   void *arg);

#endif /* SHMQD_REGISTRY_H */
