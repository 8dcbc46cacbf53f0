/*
 * main.c - shmq-bridge: carries a local shmq queue over NATS JetStream.
 *
 * Owns the program's frame: which direction runs, --help and --version,
 * the signals that stop it (SIGINT, SIGTERM: finish the batch in hand,
 * leave the rest queued, exit 0), how a line goes to stderr, and the
 * exit status of a shmq error.  The directions live in out.c and in.c.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "bridge.h"
#include "clock.h"

volatile sig_atomic_t bridge_stop;

static void on_signal(int sig)
{
	(void)sig;
	bridge_stop = 1;
}

void bridge_say(const char *fmt, ...)
{
	char line[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	/* One write: lines from libnats's threads do not interleave. */
	fprintf(stderr, "shmq-bridge: %s\n", line);
}

int bridge_shmq_exit(int rc)
{
	switch (rc) {
	case SHMQ_EOS:       return BX_OK;
	case SHMQ_EOS_LOST:  return BX_LOST;
	case SHMQ_EINVAL:
	case SHMQ_ENAME:     return BX_USAGE;
	case SHMQ_ECLOSED:   return BX_CLOSED;
	case SHMQ_ENOENT:    return BX_NOENT;
	case SHMQ_EACCES:
	case SHMQ_EROLE:     return BX_ACCES;
	case SHMQ_ENODAEMON: return BX_UNREACH;
	case SHMQ_E2BIG:
	case SHMQ_EMSGSIZE:  return BX_2BIG;
	default:             return BX_ERROR;
	}
}

void bridge_nap(int64_t ms)
{
	/* In slices, so that a stop is seen within 50 ms. */
	while (ms > 0 && !bridge_stop) {
		int64_t step = ms < 50 ? ms : 50;
		sleep_ms((long)step);
		ms -= step;
	}
}

int main(int argc, char **argv)
{
	struct bridge_opts o;
	struct sigaction sa;
	int rc;

	memset(&o, 0, sizeof(o));
	if (argc >= 2 && (strcmp(argv[1], "--help") == 0 ||
			  strcmp(argv[1], "-h") == 0)) {
		opts_usage(stdout);
		return BX_OK;
	}
	if (argc >= 2 && strcmp(argv[1], "--version") == 0) {
		printf("shmq-bridge %s (libshmq %s, libnats %s)\n",
		       SHMQ_VERSION_STRING, shmq_version(), nats_GetVersion());
		return BX_OK;
	}
	if (argc < 2 || (strcmp(argv[1], "out") != 0 &&
			 strcmp(argv[1], "in") != 0)) {
		fprintf(stderr, "shmq-bridge: %s%s%s (shmq-bridge --help)\n",
			argc < 2 ? "out or in?" : "unknown direction '",
			argc < 2 ? "" : argv[1], argc < 2 ? "" : "'");
		return BX_USAGE;
	}
	for (int i = 2; i < argc; i++)
		if (strcmp(argv[i], "--help") == 0) {
			opts_usage(stdout);
			return BX_OK;
		}
	o.out = strcmp(argv[1], "out") == 0;
	rc = opts_parse(argc - 2, argv + 2, &o);
	if (rc != -1)
		return rc;

	/* No SA_RESTART: a blocked shmq call returns SHMQ_EINTR and the
	 * loop looks at bridge_stop. */
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	rc = o.out ? out_run(&o) : in_run(&o);
	/* Waits for libnats's threads (and their last callbacks). */
	nats_CloseAndWait(2000);
	return rc;
}
