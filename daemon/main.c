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
#include <sys/statvfs.h>
#include <unistd.h>

#include <event2/event.h>

#include "deadlock.h"
#include "listener.h"
#include "log.h"
#include "paths.h"
#include "procs.h"
#include "quota.h"
#include "registry.h"
#include "session.h"
#include "units.h"

/* A limit as given: a number, a percentage (of /dev/shm for bytes, of
 * the global limit for counts), or none. */
struct amount {
	enum { AMOUNT_DEFAULT, AMOUNT_ABS, AMOUNT_PERCENT,
	       AMOUNT_UNLIMITED } kind;
	uint64_t v;
};

/* What sizes in percent are of (size_base()). */
struct size_base {
	uint64_t bytes;         /* 0: unknown, no percentage limits */
	const char *of;
};

struct options {
	const char *socket;
	const char *log;
	const char *pid_file;
	int foreground;
	int system;
	int verbose;
	struct registry_limits limits;
	uint32_t max_queues;
	uint32_t max_clients;
	struct amount max_bytes;
	struct amount user[QUOTA_KINDS];
	int64_t deadlock_timeout_ns;
};

#define SHM_DIR "/dev/shm"
/* Defaults, in percent.  Everything of shmq together may take three
 * quarters of /dev/shm: the last quarter stays for the other programs
 * that use POSIX shared memory (glibc's named semaphores, PipeWire,
 * browsers, PostgreSQL's dynamic shared memory), whatever shmq's users
 * do.  Each user but the daemon's own may take a quarter of /dev/shm and
 * of the queue and connection limits, so that it takes at least four
 * users acting together to exhaust the daemon. */
#define DEFAULT_MAX_BYTES_PCT  75
#define DEFAULT_USER_PCT       25
/* Open handles per user, by default: four for each connection the user
 * may hold (4096 with the defaults), more than a process needs with a
 * few queues open.  It bounds what one user makes the daemon keep: about
 * 100 bytes per handle, and one pidfd per process that holds one. */
#define DEFAULT_HANDLES_PER_CLIENT 4

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
"      --max-bytes SIZE    most shared memory all queues together may\n"
"                          reserve (default 75%%)\n"
"      --max-segment BYTES\n"
"                          largest queue segment (default 1G)\n"
"      --max-attach N      most open handles per queue (default 256); a\n"
"                          quarter each for users other than its owner\n"
"      --user-max-bytes SIZE\n"
"                          shared memory one user's queues may reserve\n"
"                          (default 25%%)\n"
"      --user-max-queues N queues one user may own (default 25%%)\n"
"      --user-max-clients N\n"
"                          connections of one user, that is processes\n"
"                          using shmq at once (default 25%%)\n"
"      --user-max-handles N\n"
"                          open handles of one user (default 4 for each\n"
"                          connection it may hold: 4096)\n"
"      --deadlock-timeout SECONDS\n"
"                          report processes that wait for each other in\n"
"                          shmq for this long (default 1, fractions\n"
"                          allowed; 0: never look)\n"
"  -v, --verbose           log every request\n"
"  -h, --help              show this help\n"
"  -V, --version           show the version\n"
"\n"
"SIZE is bytes with an optional K, M or G, or N%% of /dev/shm (its size\n"
"at start; of the physical memory if /dev/shm has no size limit).  N%%\n"
"for a user's queues or clients is of --max-queues or --max-clients.\n"
"A user quota of 0 forbids that thing to every uid but the daemon's;\n"
"'unlimited' lifts the quota (the global limits still bind).\n"
"\n"
"Quotas bind every uid but the daemon's own, which only the global\n"
"limits bind.  A queue counts for its owner, its bytes until its memory\n"
"is freed; a connection or a handle for the uid of the process holding\n"
"it.  By default one user may take a quarter of /dev/shm, of the queues\n"
"and of the connections, and all of shmq three quarters of /dev/shm.\n"
"\n"
"Queues survive the daemon: a restarted shmqd re-adopts them with their\n"
"messages.  With systemd, shmqd.socket passes the socket (LISTEN_FDS) and\n"
"READY=1 is sent once the socket listens (Type=notify).\n");
}

/* Parses a count or a size with an optional K, M or G suffix (units.h),
 * at most `max`: 0, or -1 if it is none. */
static int parse_size(const char *s, uint64_t max, uint64_t *out)
{
	return units_size(s, max, out) == UNITS_OK ? 0 : -1;
}

/* Parses a limit: a count or size (parse_size), N% (1-100) if
 * `percent`, and "unlimited" if `unlimited`. */
static int parse_amount(const char *s, uint64_t max, int percent,
			int unlimited, struct amount *a)
{
	if (unlimited && strcmp(s, "unlimited") == 0) {
		a->kind = AMOUNT_UNLIMITED;
		return 0;
	}
	if (percent && units_is_percent(s)) {
		if (units_percent(s, &a->v) != UNITS_OK)
			return -1;
		a->kind = AMOUNT_PERCENT;
		return 0;
	}
	if (parse_size(s, max, &a->v))
		return -1;
	a->kind = AMOUNT_ABS;
	return 0;
}

/* Parses seconds (fractions allowed; units.h): 0, or from 0.01 to 3600;
 * in ns. */
static int parse_seconds(const char *s, int64_t *ns)
{
	uint64_t v;

	if (units_seconds(s, UINT64_C(3600000000000), &v) != UNITS_OK ||
	    (v != 0 && v < 10000000u))
		return -1;
	*ns = (int64_t)v;
	return 0;
}

static int parse_options(int argc, char **argv, struct options *o)
{
	enum { OPT_SYSTEM = 256, OPT_QUEUES, OPT_CLIENTS, OPT_SEGMENT,
	       OPT_ATTACH, OPT_BYTES, OPT_USER_BYTES, OPT_USER_QUEUES,
	       OPT_USER_CLIENTS, OPT_USER_HANDLES, OPT_DEADLOCK };
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
		{ "max-bytes", required_argument, NULL, OPT_BYTES },
		{ "user-max-bytes", required_argument, NULL, OPT_USER_BYTES },
		{ "user-max-queues", required_argument, NULL, OPT_USER_QUEUES },
		{ "user-max-clients", required_argument, NULL,
		  OPT_USER_CLIENTS },
		{ "user-max-handles", required_argument, NULL,
		  OPT_USER_HANDLES },
		{ "deadlock-timeout", required_argument, NULL, OPT_DEADLOCK },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	const char *want = "a positive number";
	uint64_t v;
	int c;

	while ((c = getopt_long(argc, argv, "fs:l:p:vhV", longopts, NULL)) != -1) {
		want = "a positive number";
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
			o->max_queues = (uint32_t)v;
			break;
		case OPT_CLIENTS:
			if (parse_size(optarg, 1u << 20, &v) || v == 0)
				goto bad;
			o->max_clients = (uint32_t)v;
			break;
		case OPT_SEGMENT:
			want = "bytes (at least 4096) with an optional K, M or G";
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
		case OPT_BYTES:
			want = "bytes (at least 4096) with an optional K, M or "
			       "G, or 1-100% of " SHM_DIR;
			if (parse_amount(optarg, UINT64_C(1) << 50, 1, 0,
					 &o->max_bytes) ||
			    (o->max_bytes.kind == AMOUNT_ABS &&
			     o->max_bytes.v < 4096))
				goto bad;
			break;
		case OPT_USER_BYTES:
			want = "bytes with an optional K, M or G, 1-100% of "
			       SHM_DIR ", or 'unlimited'";
			if (parse_amount(optarg, UINT64_C(1) << 50, 1, 1,
					 &o->user[QUOTA_BYTES]))
				goto bad;
			break;
		case OPT_USER_QUEUES:
			want = "a number, 1-100% of --max-queues, or "
			       "'unlimited'";
			if (parse_amount(optarg, 1u << 24, 1, 1,
					 &o->user[QUOTA_QUEUES]))
				goto bad;
			break;
		case OPT_USER_CLIENTS:
			want = "a number, 1-100% of --max-clients, or "
			       "'unlimited'";
			if (parse_amount(optarg, 1u << 20, 1, 1,
					 &o->user[QUOTA_CLIENTS]))
				goto bad;
			break;
		case OPT_USER_HANDLES:
			want = "a number or 'unlimited'";
			if (parse_amount(optarg, UINT32_MAX, 0, 1,
					 &o->user[QUOTA_HANDLES]))
				goto bad;
			break;
		case OPT_DEADLOCK:
			want = "seconds: 0, or 0.01 to 3600";
			if (parse_seconds(optarg, &o->deadlock_timeout_ns))
				goto bad;
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
			fprintf(stderr, "shmqd: bad value for --%s: '%s' "
				"(want %s)\n", opt->name, optarg, want);
	return -1;
}

static uint64_t percent_of(uint64_t whole, uint64_t pct)
{
	return whole / 100 * pct + whole % 100 * pct / 100;
}

/* A count quota: N, N% of the global limit (at least 1), or none. */
static uint64_t resolve_count(const struct amount *a, uint64_t global,
			      uint64_t dflt)
{
	uint64_t v;

	switch (a->kind) {
	case AMOUNT_ABS:       return a->v;
	case AMOUNT_UNLIMITED: return QUOTA_UNLIMITED;
	case AMOUNT_PERCENT:   v = percent_of(global, a->v); break;
	default:               v = dflt; break;
	}
	return v ? v : 1;
}

/* A size: N bytes, N% of `shm` (none if `shm` is unknown, 0), or none. */
static uint64_t resolve_bytes(const struct amount *a, uint64_t shm,
			      uint64_t dflt_pct)
{
	switch (a->kind) {
	case AMOUNT_ABS:       return a->v;
	case AMOUNT_UNLIMITED: return QUOTA_UNLIMITED;
	case AMOUNT_PERCENT:   return shm ? percent_of(shm, a->v)
					  : QUOTA_UNLIMITED;
	default:               return shm ? percent_of(shm, dflt_pct)
					  : QUOTA_UNLIMITED;
	}
}

/* What sizes in percent are of: the size of /dev/shm, or, for a tmpfs
 * mounted without a size limit (statvfs() counts no blocks), the
 * machine's physical memory, which such a tmpfs can fill (tmpfs's own
 * default is half of it).  If that is unknown too, no size is limited by
 * a percentage (0).  -1 if /dev/shm cannot be measured. */
static int size_base(struct size_base *b)
{
	struct statvfs sv;
	long pages, page;

	if (statvfs(SHM_DIR, &sv) < 0) {
		fprintf(stderr, "shmqd: cannot measure " SHM_DIR ": %s\n",
			strerror(errno));
		return -1;
	}
	b->bytes = (uint64_t)sv.f_blocks * sv.f_frsize;
	b->of = SHM_DIR;
	if (b->bytes)
		return 0;
	pages = sysconf(_SC_PHYS_PAGES);
	page = sysconf(_SC_PAGESIZE);
	b->of = "physical memory (" SHM_DIR " has no size limit)";
	b->bytes = pages > 0 && page > 0 ? (uint64_t)pages * (uint64_t)page
					 : 0;
	if (b->bytes == 0)
		b->of = "nothing (neither " SHM_DIR " nor physical memory has "
			"a known size): no percentage limits";
	return 0;
}

/* Turns the options into numbers: percentages of `base` (/dev/shm as it
 * is now), and every default. */
static void resolve_quotas(const struct options *o,
			   const struct size_base *base,
			   struct quota_limits *q)
{
	uint64_t shm = base->bytes;

	q->global[QUOTA_BYTES] = resolve_bytes(&o->max_bytes, shm,
					       DEFAULT_MAX_BYTES_PCT);
	q->global[QUOTA_QUEUES] = o->max_queues;
	q->global[QUOTA_CLIENTS] = o->max_clients;
	q->global[QUOTA_HANDLES] = QUOTA_UNLIMITED;
	q->user[QUOTA_BYTES] = resolve_bytes(&o->user[QUOTA_BYTES], shm,
					     DEFAULT_USER_PCT);
	q->user[QUOTA_QUEUES] = resolve_count(
		&o->user[QUOTA_QUEUES], o->max_queues,
		percent_of(o->max_queues, DEFAULT_USER_PCT));
	q->user[QUOTA_CLIENTS] = resolve_count(
		&o->user[QUOTA_CLIENTS], o->max_clients,
		percent_of(o->max_clients, DEFAULT_USER_PCT));
	q->user[QUOTA_HANDLES] = resolve_count(
		&o->user[QUOTA_HANDLES], 0,
		q->user[QUOTA_CLIENTS] == QUOTA_UNLIMITED
			? QUOTA_UNLIMITED
			: q->user[QUOTA_CLIENTS] * DEFAULT_HANDLES_PER_CLIENT);
	if (shm && q->global[QUOTA_BYTES] != QUOTA_UNLIMITED &&
	    q->global[QUOTA_BYTES] > shm)
		fprintf(stderr, "shmqd: note: --max-bytes %" PRIu64 " is more "
			"than %s holds (%" PRIu64 ")\n",
			q->global[QUOTA_BYTES], base->of, shm);
}

static void log_limits(const struct quota_limits *q,
		       const struct size_base *base)
{
	char u[QUOTA_KINDS][24], bytes[24];

	for (int k = 0; k < QUOTA_KINDS; k++) {
		if (q->user[k] == QUOTA_UNLIMITED)
			snprintf(u[k], sizeof(u[k]), "unlimited");
		else
			snprintf(u[k], sizeof(u[k]), "%" PRIu64, q->user[k]);
	}
	if (q->global[QUOTA_BYTES] == QUOTA_UNLIMITED)
		snprintf(bytes, sizeof(bytes), "unlimited");
	else
		snprintf(bytes, sizeof(bytes), "%" PRIu64,
			 q->global[QUOTA_BYTES]);
	log_info("limits: %s bytes, %" PRIu64 " queues, %" PRIu64
		 " clients in all; each uid but %u: %s bytes, %s queues, %s "
		 "clients, %s handles; sizes in %% are of %s, %" PRIu64
		 " bytes", bytes, q->global[QUOTA_QUEUES],
		 q->global[QUOTA_CLIENTS], (unsigned)geteuid(), u[QUOTA_BYTES],
		 u[QUOTA_QUEUES], u[QUOTA_CLIENTS], u[QUOTA_HANDLES], base->of,
		 base->bytes);
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
	deadlock_take(q);
	return 0;
}

int main(int argc, char **argv)
{
	struct options o = {
		.limits = { .max_segment = UINT64_C(1) << 30,
			    .max_attach = 256 },
		.max_queues = 16384,
		.max_clients = 4096,
		.deadlock_timeout_ns = 1000000000,
	};
	struct quota_limits quotas;
	struct size_base sizes;
	struct listener l = { .fd = -1, .lock_fd = -1 };
	struct event_base *base = NULL;
	struct event *ev_accept = NULL, *ev_term = NULL, *ev_int = NULL;
	char path[108], logpath[128];
	int ready_fd = -1, rc = 1, inherited;

	if (parse_options(argc, argv, &o) < 0)
		return 2;
	if (size_base(&sizes) < 0)
		return 1;
	resolve_quotas(&o, &sizes, &quotas);
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
	quota_init(&quotas, (uint32_t)geteuid());
	registry_init(l.path, &o.limits);
	procs_init(base);
	deadlock_init(base, o.deadlock_timeout_ns);
	sessions_init(base);
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
	log_info("listening on %s (%zu queues adopted; deadlock timeout "
		 "%.3g s%s)%s", l.path, registry_count(),
		 (double)o.deadlock_timeout_ns / 1e9,
		 o.deadlock_timeout_ns ? "" : ": off",
		 inherited ? " [socket activation]" : "");
	log_limits(&quotas, &sizes);
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
	deadlock_shutdown();
	procs_shutdown();
	registry_shutdown();
	quota_shutdown();
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
