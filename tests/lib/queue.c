/*
 * queue.c - queues through libshmq, as the integration tests use them
 * (see queue.h).
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <string.h>

#include "checks.h"
#include "queue.h"

struct shmq_attr attr_of(uint32_t capacity, uint32_t max_msg, uint32_t mode,
			 uint32_t flags)
{
	struct shmq_attr a;

	shmq_attr_init(&a);
	a.capacity = capacity;
	a.max_msg = max_msg;
	a.mode = mode;
	a.flags = flags;
	return a;
}

void create_q(const char *name, uint32_t capacity, uint32_t max_msg,
	      uint32_t mode, uint32_t flags)
{
	struct shmq_attr a = attr_of(capacity, max_msg, mode, flags);

	RC_EQ(shmq_create(name, &a, 0), SHMQ_OK);
}

shmq_t *open_q(const char *name, unsigned flags)
{
	shmq_t *q = NULL;

	RC_EQ(shmq_open(name, flags, &q), SHMQ_OK);
	ck_assert_ptr_nonnull(q);
	return q;
}

struct shmq_stat stat_name(const char *name)
{
	struct shmq_stat st;

	RC_EQ(shmq_stat_name(name, &st), SHMQ_OK);
	return st;
}

struct shmq_stat stat_q(shmq_t *q)
{
	struct shmq_stat st;

	RC_EQ(shmq_stat(q, &st), SHMQ_OK);
	return st;
}

void put_str(shmq_t *q, const char *s)
{
	RC_EQ(shmq_put(q, s, strlen(s), 5000), SHMQ_OK);
}

void get_str(shmq_t *q, const char *want)
{
	char buf[4096];
	size_t len = 0;

	RC_EQ(shmq_get(q, buf, sizeof(buf), &len, 5000), SHMQ_OK);
	ck_assert_msg(len == strlen(want) && memcmp(buf, want, len) == 0,
		      "got '%.*s', want '%s'", (int)len, buf, want);
}

void seq_msg(char *buf, char tag, unsigned seq)
{
	snprintf(buf, SEQ_LEN + 1, "%c%06u", tag, seq % 1000000u);
}

int seq_parse(const char *buf, size_t len, unsigned char *tag,
	      unsigned *seq)
{
	unsigned v = 0;

	if (len != SEQ_LEN)
		return -1;
	for (size_t i = 1; i < SEQ_LEN; i++) {
		if (buf[i] < '0' || buf[i] > '9')
			return -1;
		v = v * 10 + (unsigned)(buf[i] - '0');
	}
	*tag = (unsigned char)buf[0];
	*seq = v;
	return 0;
}

void seqs_take(struct seqs *s, const char *buf, size_t len)
{
	unsigned char tag;
	unsigned seq;

	ck_assert_msg(seq_parse(buf, len, &tag, &seq) == 0,
		      "unexpected message '%.*s'", (int)len, buf);
	ck_assert_msg(seq == s->next[tag], "producer '%c': got %u, want %u",
		      tag, seq, s->next[tag]);
	s->next[tag]++;
	s->count++;
}

int drain(shmq_t *q, struct seqs *s)
{
	char buf[64];
	size_t len;
	int rc;

	while ((rc = shmq_get(q, buf, sizeof(buf), &len, 5000)) == SHMQ_OK)
		seqs_take(s, buf, len);
	return rc;
}
