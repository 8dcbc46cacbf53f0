/*
 * fuzz_session.c - libFuzzer target: the daemon's request handling.
 *
 * An input is a conversation: packets, each preceded by a 16-bit length,
 * fed to session_handle() exactly as the daemon feeds what it receives,
 * with real segments in /dev/shm behind it.  The first byte chooses the
 * peer's uid (root or not).  After each input every queue is deleted, so
 * inputs do not depend on each other and /dev/shm does not fill up.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "log.h"
#include "paths.h"
#include "procs.h"
#include "quota.h"
#include "registry.h"
#include "session.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct event_base *base;
static char identity[64];
static const struct registry_limits limits = {
	.max_segment = 1u << 20, .max_attach = 4,
};
/* uid 1000 (not the fuzzer's) gets less than everybody, so that both the
 * global limits and the user quotas are reached. */
static const struct quota_limits quotas = {
	.global = { 4u << 20, 4, 16, QUOTA_UNLIMITED },
	.user = { 2u << 20, 3, 8, 6 },
};

static int delete_one(struct queue *q, void *arg)
{
	struct queue **list = arg;
	for (int i = 0; i < 8; i++)
		if (list[i] == NULL) {
			list[i] = q;
			break;
		}
	return 0;
}

static void reset(void)
{
	struct queue *list[8] = { 0 };

	registry_walk("", delete_one, list);
	for (int i = 0; i < 8 && list[i]; i++)
		registry_delete(list[i]);
	procs_shutdown();
	registry_shutdown();
	registry_init(identity, &limits);
}

static void sweep(void)
{
	char prefix[40], cmd[128];

	paths_segment_prefix(identity, prefix, sizeof(prefix));
	snprintf(cmd, sizeof(cmd), "rm -f /dev/shm/%s*", prefix);
	if (system(cmd) != 0)
		fprintf(stderr, "fuzz_session: could not remove segments\n");
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	snprintf(identity, sizeof(identity), "/fuzz/session.%ld",
		 (long)getpid());
	base = event_base_new();
	log_init(-1);
	quota_init(&quotas, 0);
	registry_init(identity, &limits);
	procs_init(base);
	sessions_init(base);
	atexit(sweep);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char out[SHMQ_WIRE_MAX];
	uint32_t groups[1] = { 100 };
	struct peer peer = {
		.pid = (int)getpid(), .gid = 100, .groups = groups,
		.ngroups = 1,
	};

	if (size < 1)
		return 0;
	peer.uid = data[0] & 1 ? 0 : 1000;
	data++;
	size--;
	while (size >= 2) {
		size_t len = (size_t)data[0] | (size_t)data[1] << 8;
		data += 2;
		size -= 2;
		if (len > size)
			len = size;
		/* An exact-size heap copy: overreads show up under ASan. */
		char *pkt = malloc(len ? len : 1);
		int fd, hang_up;
		memcpy(pkt, data, len);
		size_t n = session_handle(&peer, pkt, len, out, &fd, &hang_up);
		registry_reap();
		free(pkt);
		if (fd >= 0)
			close(fd);
		if (n > sizeof(out))
			__builtin_trap();
		if (hang_up || n == 0)
			peer.hello = 0;
		data += len;
		size -= len;
	}
	reset();
	return 0;
}
