/*
 * ring_seg.h - one queue segment, formatted and used without a daemon.
 *
 * Owns the ring suites' segment under test: a shared memory object
 * formatted with ring_format(), mapped between two PROT_NONE guard pages
 * (a read or write just outside faults instead of landing in another
 * mapping) and unlinked at once (a failing test leaves no name behind),
 * and the test process's view R of it.  Also the one-message forms of
 * ring_put and ring_get the tests repeat.  No daemon is involved: the
 * suites play its part (ring_format, ring_client_add/remove) themselves.
 */
#ifndef SHMQ_TEST_RING_SEG_H
#define SHMQ_TEST_RING_SEG_H

#include <stddef.h>
#include <stdint.h>

#include "ring.h"

#define BAD_COUNT (-999)        /* a helper saw an inconsistent count */

struct seg {
	int fd;
	uint8_t *region;        /* guard page, segment, guard page */
	size_t region_len;
	uint8_t *mem;
	uint64_t size;
};

extern struct seg S;            /* this test's segment */
extern struct ring R;           /* the test process's view of it */

/* Maps `size` bytes of `fd` between two guard pages; NULL on failure. */
uint8_t *map_guarded(int fd, uint64_t size, uint8_t **region,
		     size_t *region_len);

/* A queue "test-queue" of the test's user, with 16 attachment entries. */
struct ring_config seg_config(uint32_t capacity, uint32_t max_msg,
			      uint64_t max_bytes, uint32_t flags);
/* Creates, formats and attaches this test's queue.  Children reach the
 * segment through the inherited S.fd. */
void seg_create(const struct ring_config *cfg);
/* Starts over on the same segment: the corruption tests reformat it
 * before every mutation. */
void seg_reformat(const struct ring_config *cfg);
/* Forgets the segment (run before each test) and unmaps it (after). */
void seg_setup(void);
void seg_release(void);

struct shmq_stat stat_now(void);
/* What attachment entry `idx` says it waits for (SHMQ_WAIT_*). */
uint32_t entry_wait(uint32_t idx);

/* One message, one call; BAD_COUNT if the count disagrees with the
 * status.  get_one's *len is the length on SHMQ_OK and SHMQ_EMSGSIZE. */
int put_one(struct ring *r, const void *p, size_t len, int timeout);
int put_one_str(struct ring *r, const char *s, int timeout);
int get_one(struct ring *r, void *buf, size_t size, size_t *len,
	    int timeout);

/* Assertions that name the caller's line (Check reports the helper's):
 * the next message is the string `want`; the queue is empty (and open)
 * right now; `s` goes in without waiting. */
#define expect_msg(r, want) expect_msg_at((r), (want), __LINE__)
#define expect_empty(r)     expect_empty_at((r), __LINE__)
#define put_ok(r, s)        put_ok_at((r), (s), __LINE__)
void expect_msg_at(struct ring *r, const char *want, int line);
void expect_empty_at(struct ring *r, int line);
void put_ok_at(struct ring *r, const char *s, int line);

#endif /* SHMQ_TEST_RING_SEG_H */
