/*
 * segment.c - a daemon's queue segment as a client that maps it sees it
 * (see segment.h).
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "checks.h"
#include "segment.h"

int segment_is_meta(const char *path)
{
	size_t len = strlen(path);

	return len > 5 && strcmp(path + len - 5, ".meta") == 0;
}

struct found {
	char path[300];
	int n;
};

static void note_segment(const char *path, void *arg)
{
	struct found *f = arg;

	if (segment_is_meta(path))
		return;
	snprintf(f->path, sizeof(f->path), "%s", path);
	f->n++;
}

struct shmq_seg_hdr *segment_map_only(const struct daemon *d, size_t *size)
{
	struct found f = { "", 0 };
	struct stat sb;
	void *map;
	int fd;

	daemon_each_segment(d, note_segment, &f);
	ck_assert_int_eq(f.n, 1);
	fd = open(f.path, O_RDWR | O_CLOEXEC);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(fstat(fd, &sb), 0);
	*size = (size_t)sb.st_size;
	map = mmap(NULL, *size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	close(fd);
	ck_assert(map != MAP_FAILED);
	return map;
}

uint32_t wait_mark_of(const struct shmq_seg_hdr *h, size_t size, pid_t pid)
{
	uint64_t off = h->clients_off;
	uint32_t n = h->clients;
	const struct shmq_client *c;

	ck_assert(off <= size && n <= (size - off) / sizeof(*c));
	c = (const struct shmq_client *)((const char *)h + off);
	for (uint32_t i = 0; i < n; i++)
		if (__atomic_load_n(&c[i].pid, __ATOMIC_ACQUIRE) == (uint32_t)pid)
			return __atomic_load_n(&c[i].wait, __ATOMIC_ACQUIRE);
	return UINT32_MAX;
}

struct shmq_seg_hdr *segment_mapped(const char *name)
{
	FILE *f = fopen("/proc/self/maps", "r");
	struct shmq_seg_hdr *found = NULL;
	char line[512];

	if (f == NULL)
		return NULL;
	while (found == NULL && fgets(line, sizeof(line), f)) {
		unsigned long lo, hi;
		char *path = strstr(line, "/dev/shm/shmq.");
		if (path == NULL || strstr(path, ".meta") ||
		    sscanf(line, "%lx-%lx", &lo, &hi) != 2 ||
		    hi - lo < sizeof(struct shmq_seg_hdr))
			continue;
		struct shmq_seg_hdr *h = (struct shmq_seg_hdr *)lo;
		/* Several mappings may share a file (the data ring twice):
		 * the header is in the one at its offset 0. */
		unsigned long off;
		if (sscanf(strchr(line, ' ') + 1, "%*s %lx", &off) == 1 &&
		    off == 0 && h->magic == SHMQ_LAYOUT_MAGIC &&
		    strcmp(h->name, name) == 0)
			found = h;
	}
	fclose(f);
	return found;
}

struct shmq_client *segment_clients(struct shmq_seg_hdr *h)
{
	return (struct shmq_client *)((char *)h + h->clients_off);
}
