/*
 * main.c - shmqd: options, the event loop, start-up and shutdown.
 *
 * Kept as small as libevent's hello-world: parse options, take the socket,
 * adopt what a previous daemon left, serve until SIGTERM, tear down.
 * Shutting down never deletes a queue: queues outlive the daemon.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/event.h>

#include "listener.h"
#include "log.h"
#include "paths.h"
#include "procs.h"
#include "registry.h"
#include "session.h"

struct options {
	const char *socket;
	const char *log;
	const char *pid_file;
	int foreground;
	int system;
	int verbose;
	struct registry_limits limits;
	uint32_t max_clients;
};

static void usage(FILE *f)
{
	fprintf(f,
"Usage: shmqd [OPTION]...\n"
"The shmq broker: creates and owns message queues in POSIX shared memory,\n"
"hands clients access to them over a Unix socket, and notices when a\n"
"client process dies.  It is never on the data path.\n"
"\n"
"  -f, --foreground        stay in the foreground (for systemd); otherwise\n"
"                          fork into the background once listening\n"
"  -s, --socket PATH       control socket (default: $SHMQ_SOCKET, else\n"
"                          $XDG_RUNTIME_DIR/shmq/shmqd.sock, else\n"
"                          /tmp/shmq-UID/shmqd.sock)\n"
"      --system            the system daemon: " SHMQ_SYSTEM_SOCKET ",\n"
"                          reachable by every local user\n"
"  -l, --log FILE          append the log to FILE (default in the\n"
"                          background: the socket path + \".log\")\n"
"  -p, --pid-file FILE     write the daemon's pid to FILE once listening\n"
"      --max-queues N      most queues at once (default 16384)\n"
"      --max-clients N     most connected clients (default 4096)\n"
"      --max-segment BYTES\n"
"                          largest queue segment (default 1G)\n"
"      --max-attach N      most open handles per queue (default 256)\n"
"  -v, --verbose           log every request\n"
"  -h, --help              show this help\n"
"  -V, --version           show the version\n"
"\n"
"Queues survive the daemon: a restarted shmqd re-adopts them with their\n"
"messages.  With systemd, shmqd.socket passes the socket (LISTEN_FDS) and\n"
"READY=1 is sent once the socket listens (Type=notify).\n");
}

/* Parses a count or a size with an optional K, M or G suffix. */
static int parse_size(const char *s, uint64_t max, uint64_t *out)
{
	char *end;
	unsigned long long v;

	if (*s < '0' || *s > '9')
		return -1;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno)
		return -1;
	int shift = 0;
	switch (*end) {
	case 'K': case 'k': shift = 10; end++; break;
	case 'M': case 'm': shift = 20; end++; break;
	case 'G': case 'g': shift = 30; end++; break;
	}
	if (*end != '\0' || v > (max >> shift))
		return -1;
	*out = (uint64_t)v << shift;
	return 0;
}

static int parse_options(int argc, char **argv, struct options *o)
{
	enum { OPT_SYSTEM = 256, OPT_QUEUES, OPT_CLIENTS, OPT_SEGMENT,
	       OPT_ATTACH };
	static const struct option longopts[] = {
		{ "foreground", no_argument, NULL, 'f' },
		{ "socket", required_argument, NULL, 's' },
		{ "system", no_argument, NULL, OPT_SYSTEM },
		{ "log", required_argument, NULL, 'l' },
		{ "pid-file", required_argument, NULL, 'p' },
		{ "max-queues", required_argument, NULL, OPT_QUEUES },
		{ "max-clients", required_argument, NULL, OPT_CLIENTS },
		{ "max-segment", required_argument, NULL, OPT_SEGMENT },
		{ "max-attach", required_argument, NULL, OPT_ATTACH },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	uint64_t v;
	int c;

	while ((c = getopt_long(argc, argv, "fs:l:p:vhV", longopts, NULL)) != -1) {
		switch (c) {
		case 'f': o->foreground = 1; break;
		case 's': o->socket = optarg; break;
		case OPT_SYSTEM: o->system = 1; break;
		case 'l': o->log = optarg; break;
		case 'p': o->pid_file = optarg; break;
		case 'v': o->verbose = 1; break;
		case 'h': usage(stdout); exit(0);
		case 'V': printf("shmqd (shmq) %s\n", PACKAGE_VERSION); exit(0);
		case OPT_QUEUES:
			if (parse_size(optarg, 1u << 24, &v) || v == 0)
				goto bad;
			o->limits.max_queues = (uint32_t)v;
			break;
		case OPT_CLIENTS:
			if (parse_size(optarg, 1u << 20, &v) || v == 0)
				goto bad;
			o->max_clients = (uint32_t)v;
			break;
		case OPT_SEGMENT:
			if (parse_size(optarg, UINT64_C(1) << 46, &v) ||
			    v < 4096)
				goto bad;
			o->limits.max_segment = v;
			break;
		case OPT_ATTACH:
			if (parse_size(optarg, SHMQ_CLIENTS_MAX, &v) || v == 0)
				goto bad;
			o->limits.max_attach = (uint32_t)v;
			break;
		default:
			usage(stderr);
			return -1;
		}
	}
	if (optind != argc) {
		fprintf(stderr, "shmqd: unexpected argument '%s'\n",
			argv[optind]);
		return -1;
	}
	if (o->system && o->socket) {
		fprintf(stderr, "shmqd: --system and --socket exclude each "
				"other\n");
		return -1;
	}
	return 0;
bad:
	for (const struct option *opt = longopts; opt->name; opt++)
		if (opt->val == c)
			fprintf(stderr, "shmqd: bad value for --%s: '%s'\n",
				opt->name, optarg);
	return -1;
}

/* Forks into the background.  The parent stays until the child reports
 * (through `ready_fd`) that it listens, so that whoever started us can
 * connect as soon as we return; it exits 1 if the child failed. */
static int daemonize(int *ready_fd)
{
	int p[2];
	char c;

	if (pipe2(p, O_CLOEXEC) < 0)
		return -1;
	pid_t pid = fork();
	if (pid < 0)
		return -1;
	if (pid > 0) {
		close(p[1]);
		ssize_t n;
		do
			n = read(p[0], &c, 1);
		while (n < 0 && errno == EINTR);
		_exit(n == 1 ? 0 : 1);
	}
	close(p[0]);
	setsid();
	if (chdir("/") < 0)
		return -1;
	int null = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (null >= 0) {
		dup2(null, STDIN_FILENO);
		dup2(null, STDOUT_FILENO);
		close(null);
	}
	*ready_fd = p[1];
	return 0;
}

/* Many clients each hold one descriptor here: take what the hard limit
 * allows. */
static void raise_fd_limit(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

static int write_pid_file(const char *path)
{
	FILE *f = fopen(path, "we");

	if (f == NULL)
		return -1;
	fprintf(f, "%ld\n", (long)getpid());
	return fclose(f);
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
	(void)what;
	log_info("%s: shutting down", strsignal((int)sig));
	event_base_loopbreak(arg);
}

static void on_accept(evutil_socket_t fd, short what, void *arg)
{
	(void)what;
	(void)arg;
	sessions_accept(fd);
}

static int adopt_one(struct queue *q, void *arg)
{
	(void)arg;
	procs_adopt(q);
	return 0;
}

int main(int argc, char **argv)
{
	struct options o = {
		.limits = { .max_queues = 16384, .max_segment = UINT64_C(1) << 30,
			    .max_attach = 256 },
		.max_clients = 4096,
	};
	struct listener l = { .fd = -1, .lock_fd = -1 };
	struct event_base *base = NULL;
	struct event *ev_accept = NULL, *ev_term = NULL, *ev_int = NULL;
	char path[108], logpath[128];
	int ready_fd = -1, rc = 1, inherited;

	if (parse_options(argc, argv, &o) < 0)
		return 2;
	signal(SIGPIPE, SIG_IGN);
	registry_guard_init();
	log_init(o.verbose);

	inherited = listener_inherit(&l);
	if (inherited < 0)
		return 1;
	if (!inherited) {
		/* Whatever the starter left open (a pipe's write end, say)
		 * must not be held open for the daemon's lifetime. */
		closefrom(3);
		if (o.system)
			snprintf(path, sizeof(path), "%s", SHMQ_SYSTEM_SOCKET);
		else if (o.socket)
			snprintf(path, sizeof(path), "%s", o.socket);
		else if (paths_user_socket(path, sizeof(path)) != SHMQ_OK) {
			log_error("cannot work out a socket path; use --socket");
			return 1;
		}
		if (path[0] != '/') {
			log_error("socket path must be absolute: %s", path);
			return 1;
		}
		int dir_rc = paths_make_dir(path, o.system ? 0755 : 0700);
		if (dir_rc == SHMQ_EACCES) {
			log_error("refusing the directory of %s: it belongs to "
				  "another user, or others may write in it",
				  path);
			return 1;
		}
		if (dir_rc != SHMQ_OK) {
			log_error("cannot create the directory of %s: %s", path,
				  strerror(errno));
			return 1;
		}
	}
	if (!o.foreground && !inherited) {
		if (o.log == NULL) {
			snprintf(logpath, sizeof(logpath), "%s.log", path);
			o.log = logpath;
		}
		if (daemonize(&ready_fd) < 0) {
			log_error("cannot fork into the background: %s",
				  strerror(errno));
			return 1;
		}
	}
	if (log_open(o.log) < 0) {
		log_error("cannot open log %s: %s", o.log, strerror(errno));
		goto out;
	}
	raise_fd_limit();
	if (!inherited && listener_bind(&l, path, o.system ? 0666 : 0600) < 0)
		goto out;

	base = event_base_new();
	if (base == NULL) {
		log_error("cannot create the event loop");
		goto out;
	}
	registry_init(l.path, &o.limits);
	procs_init(base);
	sessions_init(base, o.max_clients);
	registry_adopt();
	registry_walk("", adopt_one, NULL);
	registry_reap();

	ev_accept = event_new(base, l.fd, EV_READ | EV_PERSIST, on_accept,
			      NULL);
	ev_term = evsignal_new(base, SIGTERM, on_signal, base);
	ev_int = evsignal_new(base, SIGINT, on_signal, base);
	if (!ev_accept || !ev_term || !ev_int || event_add(ev_accept, NULL) ||
	    event_add(ev_term, NULL) || event_add(ev_int, NULL)) {
		log_error("cannot register events");
		goto out;
	}

	if (o.pid_file && write_pid_file(o.pid_file) < 0) {
		log_error("cannot write %s: %s", o.pid_file, strerror(errno));
		goto out;
	}
	log_info("listening on %s (%zu queues adopted)%s", l.path,
		 registry_count(), inherited ? " [socket activation]" : "");
	notify_systemd("READY=1\nSTATUS=listening");
	if (ready_fd >= 0) {
		if (write(ready_fd, "R", 1) != 1)
			log_warn("cannot report readiness to the parent");
		close(ready_fd);
		ready_fd = -1;
	}

	rc = event_base_dispatch(base) < 0 ? 1 : 0;
	notify_systemd("STOPPING=1");
out:
	if (ev_accept)
		event_free(ev_accept);
	if (ev_term)
		event_free(ev_term);
	if (ev_int)
		event_free(ev_int);
	sessions_shutdown();
	procs_shutdown();
	registry_shutdown();
	listener_close(&l);
	if (base)
		event_base_free(base);
	if (ready_fd >= 0)
		close(ready_fd);
	if (o.pid_file && rc == 0)
		unlink(o.pid_file);
	if (rc == 0)
		log_info("stopped");
	return rc;
}
