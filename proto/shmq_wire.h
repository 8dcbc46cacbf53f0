/*
 * shmq_wire.h - the control protocol between libshmq and shmqd.
 *
 * This is one of the two contracts between shmqd and libshmq (the other is
 * shmq_layout.h).  Bump SHMQ_WIRE_VERSION when anything here changes.
 *
 * Transport: an AF_UNIX SOCK_SEQPACKET connection, so every request and
 * every reply is one packet and needs no framing of its own.  A packet is a
 * struct shmq_wire_hdr followed by exactly the body its type names below;
 * any other length is malformed.  Strings are fixed-size, NUL-terminated
 * fields.  Integers are in host byte order: both ends share one machine.
 *
 * The client sends HELLO first; the daemon answers every request with one
 * reply of type (request | SHMQ_MSG_REPLY) that echoes its seq and starts
 * with struct shmq_wire_status.  A malformed packet gets an error reply
 * when its header can be trusted, and the connection is dropped when not.
 * The only file descriptor ever passed is the queue segment, from the
 * daemon to the client, with the reply to OPEN (SCM_RIGHTS).
 */
#ifndef SHMQ_WIRE_H
#define SHMQ_WIRE_H

#include <assert.h>
#include <stddef.h>
#include <stdint.h>

#include "shmq_layout.h"

#define SHMQ_WIRE_MAGIC    UINT32_C(0x51514d53)   /* "SMQQ" */
#define SHMQ_WIRE_VERSION  8u
#define SHMQ_WIRE_MAX      65536u                 /* largest packet */
#define SHMQ_WIRE_NAME     (SHMQ_NAME_MAX + 1)

struct shmq_wire_hdr {
	uint32_t magic;
	uint16_t version;
	uint16_t type;          /* enum shmq_msgtype */
	uint32_t len;           /* whole packet, header included */
	uint32_t seq;           /* chosen by the client, echoed in the reply */
};

enum shmq_msgtype {
	/* Session. */
	SHMQ_MSG_HELLO = 100,       /* struct shmq_wire_hello */

	/* Queue lifecycle. */
	SHMQ_MSG_CREATE = 200,      /* struct shmq_wire_create */
	SHMQ_MSG_OPEN,              /* struct shmq_wire_open;
				       reply carries the segment fd */
	SHMQ_MSG_DETACH,            /* struct shmq_wire_detach */
	SHMQ_MSG_DELETE = 204,      /* struct shmq_wire_name */
	/* Closing is done by clients in the segment itself, never by the
	 * daemon: it must not take a queue's locks in its event loop. */

	/* Inspection. */
	SHMQ_MSG_STAT = 300,        /* struct shmq_wire_name */
	SHMQ_MSG_LIST,              /* struct shmq_wire_list */
	SHMQ_MSG_USERS,             /* struct shmq_wire_users */

	/* Deadlock detection. */
	SHMQ_MSG_BLOCKED = 400,     /* struct shmq_wire_detach: a call on
				       this attachment has been blocked for
				       a report period (see shmq_layout.h,
				       "Wait records"); sent NOREPLY */
	SHMQ_MSG_DEADLOCKS,         /* struct shmq_wire_deadlocks */
};

/* Set in the type of every reply. */
#define SHMQ_MSG_REPLY 0x8000u
/* Set by the client in a DETACH or a BLOCKED (the only requests allowed
 * it): the daemon sends no reply.  The handle has marked itself detached
 * in the segment already, so the client need not wait, and open+detach
 * costs one round trip instead of two; a blocked call must never wait
 * for the daemon. */
#define SHMQ_MSG_NOREPLY 0x4000u

/* --- request bodies ---------------------------------------------------- */

struct shmq_wire_hello {
	uint32_t wire_version;      /* SHMQ_WIRE_VERSION */
	uint32_t layout_version;    /* SHMQ_LAYOUT_VERSION */
};

struct shmq_wire_name {
	char name[SHMQ_WIRE_NAME];
};

#define SHMQ_WIRE_EXIST_OK 0x1u
struct shmq_wire_create {
	char     name[SHMQ_WIRE_NAME];
	uint32_t capacity;
	uint32_t max_msg;
	uint64_t max_bytes;
	uint32_t mode;
	uint32_t config_flags;      /* SHMQ_CFG_* */
	uint32_t flags;             /* SHMQ_WIRE_EXIST_OK */
	uint32_t pad;
	/* Acked queues (SHMQ_CFG_ACKED) only; 0 and "" otherwise. */
	uint32_t lease_timeout_ms;
	uint32_t max_deliveries;
	char     dead_letter[SHMQ_WIRE_NAME];   /* "" = none */
};

/* With SHMQ_WIRE_DEAD_LETTER (alone), the request opens, as a relay
 * producer (SHMQ_ROLE_PRODUCER | SHMQ_ROLE_RELAY), the dead-letter queue
 * of acked queue `name`, for a peer that may read `name` and may itself
 * write the dead-letter queue. */
#define SHMQ_WIRE_DEAD_LETTER 0x100u
struct shmq_wire_open {
	char     name[SHMQ_WIRE_NAME];
	uint32_t role;              /* SHMQ_ROLE_* (0: observe only;
				       SHMQ_ROLE_RELAY only with
				       SHMQ_ROLE_PRODUCER), or
				       SHMQ_WIRE_DEAD_LETTER */
	uint32_t pad;
};

struct shmq_wire_detach {
	uint64_t queue_id;
	uint32_t client;            /* attachment table index */
	uint32_t gen;               /* its generation, proves ownership */
};

struct shmq_wire_list {
	char     after[SHMQ_WIRE_NAME];  /* "" for the first page */
};

/* Users from `from` on, in uid order.  Root and the daemon's own uid see
 * every user that holds anything; any other uid sees only itself. */
struct shmq_wire_users {
	uint32_t from;              /* 0 for the first page */
	uint32_t pad;
};

struct shmq_wire_deadlocks {
	uint32_t flags;             /* 0 */
	uint32_t pad;
};

/* --- reply bodies ------------------------------------------------------ */

/* Every reply starts with this; `status` is an SHMQ_* code and `detail`
 * a NUL-terminated human explanation of an error ("" when none). */
#define SHMQ_WIRE_DETAIL 120u
struct shmq_wire_status {
	int32_t  status;
	uint32_t pad;
	char     detail[SHMQ_WIRE_DETAIL];
};

struct shmq_wire_hello_reply {
	struct shmq_wire_status st;
	uint32_t wire_version;
	uint32_t layout_version;
	uint32_t daemon_pid;
	uint32_t pad;
};

#define SHMQ_ACCESS_READ  0x1u
#define SHMQ_ACCESS_WRITE 0x2u
struct shmq_wire_open_reply {
	struct shmq_wire_status st;
	uint64_t queue_id;
	uint64_t seg_size;
	uint32_t client;
	uint32_t gen;
	uint32_t access;            /* SHMQ_ACCESS_* granted */
	uint32_t uid;               /* owner, group and mode from the */
	uint32_t gid;               /* daemon's own record: the copy in */
	uint32_t mode;              /* the segment can be forged */
};

struct shmq_wire_stat {
	char     name[SHMQ_WIRE_NAME];
	uint32_t capacity;
	uint32_t max_msg;
	uint64_t max_bytes;
	uint32_t mode, uid, gid, flags;
	uint64_t messages, bytes;
	uint32_t producers, consumers, put_blocked, get_blocked;
	uint64_t total_put, total_got, discarded;
	uint32_t state;
	uint32_t auto_closed;
	uint32_t producer_lost;
	uint32_t deadlocked;
	int64_t  created_ns, closed_ns;
	/* Acked queues. */
	uint32_t leased, returned;
	uint64_t acked, dead_lettered, dropped;
	uint32_t lease_timeout_ms, max_deliveries;
	char     dead_letter[SHMQ_WIRE_NAME];
};

struct shmq_wire_stat_reply {
	struct shmq_wire_status st;
	struct shmq_wire_stat stat;
};

/* One page of a listing, in name order; ask again with `after` set to the
 * last name until `more` is 0. */
#define SHMQ_WIRE_LIST_PAGE 64u
struct shmq_wire_list_reply {
	struct shmq_wire_status st;
	uint32_t count;
	uint32_t more;
	struct shmq_wire_stat entries[SHMQ_WIRE_LIST_PAGE];
};

/* One user's usage and the limits that bind it, or (in `total`)
 * everybody's against the daemon's global limits.  A limit of
 * SHMQ_WIRE_UNLIMITED is none. */
#define SHMQ_WIRE_UNLIMITED   UINT64_MAX
#define SHMQ_WIRE_USER_EXEMPT 0x1u  /* the daemon's uid: global limits only */
#define SHMQ_WIRE_USER_TOTAL  0x2u  /* the `total` entry */
struct shmq_wire_user {
	uint32_t uid;
	uint32_t flags;             /* SHMQ_WIRE_USER_* */
	uint64_t bytes, max_bytes;  /* shared memory reserved */
	uint64_t queues, max_queues;
	uint64_t clients, max_clients;  /* connections */
	uint64_t handles, max_handles;  /* open handles */
};

#define SHMQ_WIRE_USERS_PAGE 256u
struct shmq_wire_users_reply {
	struct shmq_wire_status st;
	uint32_t count;
	uint32_t more;              /* ask again from the last uid + 1 */
	struct shmq_wire_user total;
	struct shmq_wire_user entries[SHMQ_WIRE_USERS_PAGE];
};

/* The deadlocks shmqd found at its last look, one row per wait of a
 * process in one: the rows of one deadlock share `deadlock` (0, 1, ...)
 * and come together, the processes of its cycle(s) first, then those
 * blocked behind it.  At most SHMQ_WIRE_DL_MAX rows; `more` says how
 * many were left off.  A wait on a queue the asker may not read comes
 * without the queue: `queue` is "" and messages, capacity, bytes,
 * max_bytes and the FAIL flag are 0. */
#define SHMQ_WIRE_DL_MAX     128u
#define SHMQ_WIRE_DL_FREERS  8u
#define SHMQ_WIRE_DL_PUT     0x1u   /* blocked in put (else in get) */
#define SHMQ_WIRE_DL_BEHIND  0x2u   /* blocked behind the deadlock */
#define SHMQ_WIRE_DL_FAIL    0x4u   /* the queue's policy is fail */
#define SHMQ_WIRE_DL_VICTIM  0x8u   /* shmqd chose this wait to fail */
struct shmq_wire_dl_wait {
	char     queue[SHMQ_WIRE_NAME];
	char     comm[16];          /* the process's command name */
	uint32_t deadlock;
	uint32_t pid;
	uint32_t flags;             /* SHMQ_WIRE_DL_* */
	uint32_t threads;           /* of the process, blocked in this wait */
	uint32_t messages;          /* queued (and leased) at the last look */
	uint32_t capacity;
	int64_t  blocked_ns;        /* since the latest of them began */
	uint32_t nfreers;           /* processes that could end the wait */
	uint32_t freers[SHMQ_WIRE_DL_FREERS];  /* the first of them */
	uint32_t pad;
	int64_t  ends_in_ns;        /* > 0: a timeout ends the (earliest of
				       the) call(s) this long after the look;
				       0: none has a timeout */
	uint64_t bytes;             /* queued at the last look, if known */
	uint64_t max_bytes;         /* the byte budget; 0: none */
};

struct shmq_wire_deadlocks_reply {
	struct shmq_wire_status st;
	uint32_t count;
	uint32_t more;
	uint32_t timeout_ms;        /* shmqd --deadlock-timeout; 0 = off */
	uint32_t pad;
	struct shmq_wire_dl_wait rows[SHMQ_WIRE_DL_MAX];
};

static_assert(sizeof(struct shmq_wire_hdr) == 16, "header size");
static_assert(sizeof(struct shmq_wire_create) == 552, "create size");
static_assert(sizeof(struct shmq_wire_open) == 264, "open size");
static_assert(sizeof(struct shmq_wire_detach) == 16, "detach size");
static_assert(sizeof(struct shmq_wire_stat) == 672, "stat size");
static_assert(sizeof(struct shmq_wire_status) == 128, "status size");
static_assert(sizeof(struct shmq_wire_hdr) +
		      sizeof(struct shmq_wire_list_reply) <= SHMQ_WIRE_MAX,
	      "a list page fits one packet");
static_assert(sizeof(struct shmq_wire_user) == 72, "user size");
static_assert(sizeof(struct shmq_wire_hdr) +
		      sizeof(struct shmq_wire_users_reply) <= SHMQ_WIRE_MAX,
	      "a users page fits one packet");
static_assert(sizeof(struct shmq_wire_dl_wait) == 368, "deadlock row size");
static_assert(sizeof(struct shmq_wire_hdr) +
		      sizeof(struct shmq_wire_deadlocks_reply) <= SHMQ_WIRE_MAX,
	      "the deadlocks fit one packet");

#endif /* SHMQ_WIRE_H */
