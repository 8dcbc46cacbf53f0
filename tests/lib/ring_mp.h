/*
 * ring_mp.h - streams of numbered messages between many children on the
 * ring suites' segment.
 *
 * Owns the producers and consumers that run flat out (the many-process
 * tests, the kill storm) and the receipt table that proves every message
 * arrived exactly once.  A message says who sent it and its number, and
 * its filler's length and bytes follow from both, so a torn or mixed-up
 * message cannot pass for a good one.
 */
#ifndef SHMQ_TEST_RING_MP_H
#define SHMQ_TEST_RING_MP_H

#include <stddef.h>
#include <stdint.h>

#include "ring_kid.h"

#define MP_FILL_MAX  40
#define MP_MSG_MAX   (8 + MP_FILL_MAX)  /* the longest message */
#define MP_MAX_PROD  64
#define MP_SEQ_MAX   65536u     /* per producer: the receipt table's row */

struct mp {
	uint32_t id;            /* producer id of this child */
	uint32_t per_producer;  /* messages each producer puts (0: endless) */
	uint32_t producers;     /* ids are < producers */
	int strict;             /* one consumer: seqs must be consecutive */
	int nospin;             /* sleep at once instead of spinning first */
	uint8_t *seen;          /* shared: receipts per [id][seq], atomic */
};

/* Bodies for kid_start() with a struct mp.  The producer puts singly and
 * in batches of up to 8, in sequence; with per_producer 0 it runs until
 * the queue closes, idling once it has put MP_SEQ_MAX messages.  The
 * consumer gets singly, in batches and now and then into a buffer too
 * small, checks each message and each producer's order, and counts
 * every receipt in the shared table, until end of stream. */
int kid_produce(struct kctx *c);
int kid_consume(struct kctx *c);

/* Runs `np` producers and `nc` consumers (at most 16) of `per` messages
 * each over one auto-close queue of `capacity` and checks that every
 * message arrived exactly once; `nospin` as in struct mp.  The test
 * plays the daemon, removing each producer as it exits, so the queue
 * closes after the last one and the consumers drain to end of stream. */
void mp_run(uint32_t np, uint32_t nc, uint32_t per, uint32_t capacity,
	    int nospin);
/* The first receipt count in seen[0..n) that is not `want` (or, with
 * want 2, that is 2 or more), or SIZE_MAX.  One assertion per table, not
 * one per entry: each passing Check assertion records a checkpoint. */
size_t receipts_not(const uint8_t *seen, size_t n, unsigned want);
/* Zeroed memory the children share with the test (munmap it). */
void *shared_alloc(size_t len);

#endif /* SHMQ_TEST_RING_MP_H */
