/*
 * segment.h - a daemon's queue segment as a client that maps it sees it.
 *
 * Owns the tests' direct look at, and scribbling on, the shared memory of
 * a queue the real daemon created: any client with the queue open could
 * do the same, so this is how tests play the hostile or the dying one.
 */
#ifndef SHMQ_TEST_SEGMENT_H
#define SHMQ_TEST_SEGMENT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "harness.h"
#include "shmq_layout.h"

/* Whether `path` names a queue's ".meta" record, not its segment. */
int segment_is_meta(const char *path);
/* Maps, read-write and shared, the segment of daemon `d`'s only queue
 * (there must be exactly one); its size goes to *size.  munmap() it. */
struct shmq_seg_hdr *segment_map_only(const struct daemon *d, size_t *size);
/* What the attachment entry of process `pid` says it waits for
 * (SHMQ_WAIT_*), read from a mapped segment; UINT32_MAX if it has
 * none. */
uint32_t wait_mark_of(const struct shmq_seg_hdr *h, size_t size, pid_t pid);

/* The segment of queue `name` as this process's own handle mapped it
 * (from /proc/self/maps), or NULL: what a client that has the queue open
 * can write, whoever it is.  Never unmap it. */
struct shmq_seg_hdr *segment_mapped(const char *name);
/* Its attachment table. */
struct shmq_client *segment_clients(struct shmq_seg_hdr *h);

#endif /* SHMQ_TEST_SEGMENT_H */
