/*
 * queue.h - queues through libshmq, as the integration tests use them.
 *
 * Owns the one-line forms of the public API that tests repeat (create,
 * open, stat, put and get a string, each asserting success) and the
 * numbered messages "<tag><6 digits>" that let a consumer check each
 * producer's order and that nothing is lost or repeated.  Only the
 * parent asserts through these; children call the API themselves.
 */
#ifndef SHMQ_TEST_QUEUE_H
#define SHMQ_TEST_QUEUE_H

#include <stddef.h>
#include <stdint.h>

#include "shmq.h"

struct shmq_attr attr_of(uint32_t capacity, uint32_t max_msg, uint32_t mode,
			 uint32_t flags);
void create_q(const char *name, uint32_t capacity, uint32_t max_msg,
	      uint32_t mode, uint32_t flags);
shmq_t *open_q(const char *name, unsigned flags);
struct shmq_stat stat_name(const char *name);
struct shmq_stat stat_q(shmq_t *q);
/* Put `s` (5 s at most); get a message that must be `want`. */
void put_str(shmq_t *q, const char *s);
void get_str(shmq_t *q, const char *want);

/* Numbered messages: one tag per producer. */
#define SEQ_LEN 7

void seq_msg(char *buf, char tag, unsigned seq);
/* 0 and *tag, *seq if `buf` is such a message; -1 otherwise.  No
 * assertion: children use it. */
int seq_parse(const char *buf, size_t len, unsigned char *tag,
	      unsigned *seq);

/* What a consumer has seen so far, per producer. */
struct seqs {
	unsigned next[256];
	unsigned count;
};

/* Takes one message: it must be the next one of its producer. */
void seqs_take(struct seqs *s, const char *buf, size_t len);
/* Gets until the stream ends (or a get fails); returns how it ended. */
int drain(shmq_t *q, struct seqs *s);

#endif /* SHMQ_TEST_QUEUE_H */
