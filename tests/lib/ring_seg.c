/*
 * ring_seg.c - one queue segment, formatted and used without a daemon
 * (see ring_seg.h).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "checks.h"
#include "clock.h"
#include "ring_seg.h"

struct seg S;
struct ring R;

uint8_t *map_guarded(int fd, uint64_t size, uint8_t **region,
		     size_t *region_len)
{
	size_t pg = (size_t)sysconf(_SC_PAGESIZE);
	size_t span = (size + pg - 1) / pg * pg;
	size_t len = span + 2 * pg;
	uint8_t *reg = mmap(NULL, len, PROT_NONE,
			    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);

	if (reg == MAP_FAILED)
		return NULL;
	void *mem = mmap(reg + pg, size, PROT_READ | PROT_WRITE,
			 MAP_SHARED | MAP_FIXED, fd, 0);
	if (mem == MAP_FAILED) {
		munmap(reg, len);
		return NULL;
	}
	*region = reg;
	*region_len = len;
	return mem;
}

struct ring_config seg_config(uint32_t capacity, uint32_t max_msg,
			      uint64_t max_bytes, uint32_t flags)
{
	return (struct ring_config){
		.capacity = capacity,
		.max_msg = max_msg,
		.max_bytes = max_bytes,
		.clients = 16,
		.mode = 0640,
		.uid = (uint32_t)getuid(),
		.gid = (uint32_t)getgid(),
		.config_flags = flags,
		.queue_id = 42,
		.name = "test-queue",
	};
}

void seg_create(const struct ring_config *cfg)
{
	static unsigned serial;
	char name[64];
	uint64_t size;

	ck_assert_int_eq(ring_plan(cfg, &size), SHMQ_OK);
	snprintf(name, sizeof(name), "/shmq-test-%d-%u", (int)getpid(),
		 serial++);
	S.fd = shm_open(name, O_RDWR | O_CREAT | O_EXCL, 0600);
	ck_assert_msg(S.fd >= 0, "shm_open %s: %s", name, strerror(errno));
	shm_unlink(name);
	ck_assert_int_eq(ftruncate(S.fd, (off_t)size), 0);
	S.mem = map_guarded(S.fd, size, &S.region, &S.region_len);
	ck_assert_ptr_nonnull(S.mem);
	S.size = size;
	ck_assert_int_eq(ring_format(S.mem, size, cfg), SHMQ_OK);
	ck_assert_int_eq(ring_attach(&R, S.mem, size), SHMQ_OK);
}

void seg_reformat(const struct ring_config *cfg)
{
	memset(S.mem, 0, S.size);
	ck_assert_int_eq(ring_format(S.mem, S.size, cfg), SHMQ_OK);
	ck_assert_int_eq(ring_attach(&R, S.mem, S.size), SHMQ_OK);
}

void seg_setup(void)
{
	memset(&S, 0, sizeof(S));
	memset(&R, 0, sizeof(R));
	S.fd = -1;
}

void seg_release(void)
{
	if (S.region)
		munmap(S.region, S.region_len);
	if (S.fd >= 0)
		close(S.fd);
	S.region = NULL;
	S.fd = -1;
}

struct shmq_stat stat_now(void)
{
	struct shmq_stat st;

	ring_stat(&R, &st);
	return st;
}

uint32_t entry_wait(uint32_t idx)
{
	return __atomic_load_n(&R.clients[idx].wait, __ATOMIC_ACQUIRE);
}

int put_one(struct ring *r, const void *p, size_t len, int timeout)
{
	struct iovec v = { (void *)p, len };
	size_t done = 77;
	int rc = ring_put(r, &v, 1, &done, timeout);

	if (done != (rc == SHMQ_OK ? 1u : 0u))
		return BAD_COUNT;
	return rc;
}

int put_one_str(struct ring *r, const char *s, int timeout)
{
	return put_one(r, s, strlen(s), timeout);
}

int get_one(struct ring *r, void *buf, size_t size, size_t *len,
	    int timeout)
{
	struct iovec out = { NULL, 0 };
	size_t got = 77;
	int rc = ring_get(r, buf, size, &out, 1, &got, timeout);

	if (got != (rc == SHMQ_OK ? 1u : 0u))
		return BAD_COUNT;
	if (rc == SHMQ_OK && out.iov_base != buf)
		return BAD_COUNT;
	if (rc == SHMQ_OK || rc == SHMQ_EMSGSIZE)
		*len = out.iov_len;
	return rc;
}

void expect_msg_at(struct ring *r, const char *want, int line)
{
	char buf[512];
	size_t len = 0;
	int rc = get_one(r, buf, sizeof(buf), &len, WAIT_MS);

	ck_assert_msg(rc == SHMQ_OK, "line %d: get, expecting \"%s\": "
		      "status %d", line, want, rc);
	ck_assert_msg(len == strlen(want) && memcmp(buf, want, len) == 0,
		      "line %d: got \"%.*s\", expected \"%s\"", line,
		      (int)len, buf, want);
}

void expect_empty_at(struct ring *r, int line)
{
	char buf[512];
	size_t len;
	int rc = get_one(r, buf, sizeof(buf), &len, SHMQ_NOWAIT);

	ck_assert_msg(rc == SHMQ_EAGAIN, "line %d: expected an empty queue, "
		      "get: %d", line, rc);
}

void put_ok_at(struct ring *r, const char *s, int line)
{
	int rc = put_one_str(r, s, SHMQ_NOWAIT);

	ck_assert_msg(rc == SHMQ_OK, "line %d: put \"%s\": %d", line, s, rc);
}
