/*
 * bridge-helper.c - what tests/bridge.sh needs of libshmq that qctl does
 * not offer: creating an acked queue.
 *
 *   bridge-helper create NAME [--acked] [--auto-close] [--capacity N]
 *                             [--max-msg BYTES]
 *
 * Exits 0, or 1 with the error on stderr.  Test tool only: not installed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <shmq.h>

int main(int argc, char **argv)
{
	struct shmq_attr a;
	int rc;

	if (argc < 3 || strcmp(argv[1], "create") != 0) {
		fprintf(stderr, "usage: bridge-helper create NAME [--acked] "
			"[--auto-close] [--capacity N] [--max-msg BYTES]\n");
		return 2;
	}
	shmq_attr_init(&a);
	for (int i = 3; i < argc; i++) {
		if (strcmp(argv[i], "--acked") == 0)
			a.flags |= SHMQ_ACKED;
		else if (strcmp(argv[i], "--auto-close") == 0)
			a.flags |= SHMQ_AUTO_CLOSE;
		else if (strcmp(argv[i], "--capacity") == 0 && i + 1 < argc)
			a.capacity = (uint32_t)strtoul(argv[++i], NULL, 10);
		else if (strcmp(argv[i], "--max-msg") == 0 && i + 1 < argc)
			a.max_msg = (uint32_t)strtoul(argv[++i], NULL, 10);
		else {
			fprintf(stderr, "bridge-helper: bad argument '%s'\n",
				argv[i]);
			return 2;
		}
	}
	rc = shmq_create(argv[2], &a, 0);
	if (rc != SHMQ_OK) {
		fprintf(stderr, "bridge-helper: %s: %s\n", argv[2],
			shmq_strerror(rc));
		return 1;
	}
	return 0;
}
