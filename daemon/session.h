/*
 * session.h - connections from clients: requests in, replies out.
 */
#ifndef SHMQD_SESSION_H
#define SHMQD_SESSION_H

#include <stddef.h>
#include <stdint.h>

#include "shmq_wire.h"

struct event_base;

/* How many connections each user may hold is quota.c's business. */
void sessions_init(struct event_base *base);
/* Accepts every pending connection on the listening socket `lfd`. */
void sessions_accept(int lfd);
void sessions_shutdown(void);
size_t sessions_count(void);

/* Handles one request packet from a client with the given credentials and
 * writes the reply packet into `out` (SHMQ_WIRE_MAX bytes).  Returns the
 * reply length, 0 if the connection must be dropped without a reply; *fd
 * is set to a descriptor to pass with the reply, or -1.  This is the
 * daemon's whole request logic, without sockets, so that it can be fuzzed
 * directly. */
struct peer {
	int pid;
	uint32_t uid;
	uint32_t gid;
	uint32_t *groups;
	int ngroups;
	int hello;          /* HELLO accepted */
	int refused;        /* over the client limit or the user's quota */
	char refused_why[SHMQ_WIRE_DETAIL];     /* and which, in words */
};
size_t session_handle(struct peer *peer, const void *pkt, size_t len,
		      void *out, int *fd, int *hang_up);

#endif /* SHMQD_SESSION_H */
