/*
 * shmq-bench.c - shmq against the kernel's own transports, in one run.
 *
 * Owns the performance numbers of issue 4.  It runs shmq, a pipe, an
 * AF_UNIX SOCK_SEQPACKET socket pair and a POSIX message queue through the
 * same cases on the same machine in the same run, and prints (and writes
 * to --output) a markdown report: median and min-max of several runs, the
 * ratio of shmq to each peer, the targets with PASS/MISS, where the CPU
 * goes, and the machine it ran on.  It also measures what no peer has: the
 * system calls per message, the CPU of a blocked waiter, and the control
 * plane (open+detach rate, 1000 clients, 10000 queues, shmqd's RSS).
 *
 * Producers and consumers are always separate processes, and every message
 * carries a per-producer sequence number that its consumer checks, so a
 * transport that loses, duplicates, reorders or corrupts messages is
 * reported as FAILED, never as fast.
 *
 * It starts its own private shmqd in a temporary directory.  It must never
 * leave a process, a queue segment, a POSIX queue, a changed system setting
 * or its directory behind, also when interrupted (SIGINT, SIGTERM, SIGHUP).
 * It must never touch another daemon's queues: it sets SHMQ_SOCKET and
 * SHMQ_NO_AUTOSTART for itself and its children.
 */
#define _GNU_SOURCE
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <linux/perf_event.h>
#include <mqueue.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "shmq.h"
#include "shmq_wire.h"

#define MAXP        4           /* producers per case, at most */
#define MAXC        4           /* consumers per case, at most */
#define MAX_BATCH   64          /* messages per batch call, at most */
#define MAX_KIDS    (MAXP + MAXC + 2)
#define MAX_RUNS    100         /* --runs, at most */
#define STOP_ID     UINT32_MAX  /* producer id of an end-of-run message */
#define SHMQ_CAP    1024u       /* shmq's capacity in every case */
#define MQ_WANT     SHMQ_CAP    /* the capacity POSIX mq is asked for */
#define SETUP_S     10          /* children must be ready within this */
#define RUN_SLACK_S 30          /* a run may overrun its length by this */
#define NS          1000000000.0

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint64_t cpu_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void sleep_ns(uint64_t ns)
{
	struct timespec ts = { (time_t)(ns / 1000000000u),
			       (long)(ns % 1000000000u) };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* ------------------------------------------------------------------ */
/* Options                                                            */

enum section {
	SEC_TPUT = 1, SEC_PING = 2, SEC_MPMC = 4, SEC_SYSCALLS = 8,
	SEC_WAITER = 16, SEC_CONTROL = 32, SEC_ALL = 63,
};

static struct {
	int runs;
	double seconds;         /* length of one throughput run */
	unsigned pp_count;      /* round trips per ping-pong run */
	unsigned pp_warm;       /* round trips not counted */
	double wait_s;          /* how long the waiter test blocks */
	unsigned clients;       /* raw connections held by the daemon */
	unsigned queues;        /* small queues created at once */
	unsigned only;          /* enum section mask */
	unsigned transports;    /* mask of 1 << T_*, set after the T_* */
	const char *match;      /* run only cases whose label has this */
	int quick;
	int pin;
	int keep_awake;         /* SCHED_IDLE spinners keep CPUs from halting */
	const char *output;
} opt = {
	.runs = 5, .seconds = 0.5, .pp_count = 20000, .pp_warm = 2000,
	.wait_s = 2.0, .clients = 1000, .queues = 10000, .only = SEC_ALL,
};

static void usage(FILE *f)
{
	fprintf(f,
"Usage: shmq-bench [OPTION]...\n"
"Runs shmq, a pipe, an AF_UNIX SOCK_SEQPACKET socket pair and a POSIX\n"
"message queue through the same cases and prints a markdown report.\n"
"Starts its own shmqd ($SHMQ_DAEMON, else shmqd from $PATH).\n"
"\n"
"  -o, --output FILE   also write the report to FILE\n"
"  -r, --runs N        runs per case (default 5, at most 100); medians\n"
"                      and min-max\n"
"  -s, --seconds S     length of one throughput run (default 0.5)\n"
"  -q, --quick         smoke mode: one short run of everything\n"
"      --only LIST     comma-separated: tput,ping,mpmc,syscalls,waiter,\n"
"                      control (default: all)\n"
"      --transport LIST  comma-separated: shmq,pipe,seqpacket,mq\n"
"                      (default: all; ratios need shmq and the peer)\n"
"      --case TEXT     run only the cases whose name contains TEXT,\n"
"                      e.g. --case '16 B single'\n"
"      --pin           pin 1->1 producer/consumer to CPUs 0 and 1\n"
"      --keep-awake    run a SCHED_IDLE spinner on every CPU, so that idle\n"
"                      CPUs never halt (on a VM, waking a halted vCPU costs\n"
"                      tens of µs and slows every transport that blocks)\n"
"  -h, --help          show this help\n");
}

/* A comma-separated list of names, as a mask of their indexes. */
static unsigned parse_list(const char *s, const char *const *names,
			   unsigned n)
{
	char *copy = strdup(s), *save = NULL, *tok;
	unsigned mask = 0;

	for (tok = strtok_r(copy, ",", &save); tok;
	     tok = strtok_r(NULL, ",", &save)) {
		unsigned i;
		for (i = 0; i < n; i++)
			if (strcmp(tok, names[i]) == 0)
				break;
		if (i == n) {
			fprintf(stderr, "shmq-bench: unknown name '%s'\n", tok);
			mask = 0;
			break;
		}
		mask |= 1u << i;
	}
	free(copy);
	return mask;
}

static int parse_options(int argc, char **argv)
{
	static const char *const sections[] = { "tput", "ping", "mpmc",
						"syscalls", "waiter",
						"control" };
	/* In the order of the T_* constants. */
	static const char *const transports[] = { "shmq", "pipe",
						  "seqpacket", "mq" };
	enum { OPT_ONLY = 256, OPT_PIN, OPT_TRANSPORT, OPT_CASE, OPT_AWAKE };
	static const struct option longopts[] = {
		{ "output", required_argument, NULL, 'o' },
		{ "runs", required_argument, NULL, 'r' },
		{ "seconds", required_argument, NULL, 's' },
		{ "quick", no_argument, NULL, 'q' },
		{ "only", required_argument, NULL, OPT_ONLY },
		{ "pin", no_argument, NULL, OPT_PIN },
		{ "transport", required_argument, NULL, OPT_TRANSPORT },
		{ "case", required_argument, NULL, OPT_CASE },
		{ "keep-awake", no_argument, NULL, OPT_AWAKE },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int runs = 0, c;
	double secs = 0;
	char *end;

	while ((c = getopt_long(argc, argv, "o:r:s:qh", longopts, NULL)) != -1) {
		switch (c) {
		case 'o': opt.output = optarg; break;
		case 'q': opt.quick = 1; break;
		case OPT_PIN: opt.pin = 1; break;
		case OPT_CASE: opt.match = optarg; break;
		case OPT_AWAKE: opt.keep_awake = 1; break;
		case 'h': usage(stdout); exit(0);
		case 'r':
			runs = (int)strtol(optarg, &end, 10);
			if (*end || runs < 1 || runs > MAX_RUNS)
				goto bad;
			break;
		case 's':
			secs = strtod(optarg, &end);
			if (*end || secs < 0.001 || secs > 600)
				goto bad;
			break;
		case OPT_ONLY:
			opt.only = parse_list(optarg, sections, 6);
			if (opt.only == 0)
				return -1;
			break;
		case OPT_TRANSPORT:
			opt.transports = parse_list(optarg, transports, 4);
			if (opt.transports == 0)
				return -1;
			break;
		default:
			usage(stderr);
			return -1;
		}
	}
	if (optind != argc)
		goto bad;
	if (opt.quick) {
		/* Every code path, small counts: for the test suite. */
		opt.runs = 1;
		opt.seconds = 0.02;
		opt.pp_count = 500;
		opt.pp_warm = 100;
		opt.wait_s = 0.2;
		opt.clients = 100;
		opt.queues = 500;
	}
	if (runs)
		opt.runs = runs;
	if (secs > 0)
		opt.seconds = secs;
	return 0;
bad:
	fprintf(stderr, "shmq-bench: bad argument: %s\n",
		optind < argc ? argv[optind] : optarg ? optarg : "?");
	usage(stderr);
	return -1;
}

/* ------------------------------------------------------------------ */
/* The report: one growing string, printed and written at the end     */

static struct {
	char *s;
	size_t len, cap;
} out;

__attribute__((format(printf, 1, 2)))
static void say(const char *fmt, ...)
{
	va_list ap;
	int n;

	for (;;) {
		va_start(ap, fmt);
		n = vsnprintf(out.s ? out.s + out.len : NULL,
			      out.s ? out.cap - out.len : 0, fmt, ap);
		va_end(ap);
		if (n < 0)
			return;
		if (out.s && out.len + (size_t)n < out.cap)
			break;
		size_t cap = (out.cap ? out.cap * 2 : 65536) + (size_t)n;
		char *s = realloc(out.s, cap);
		if (s == NULL)
			return;
		out.s = s;
		out.cap = cap;
	}
	out.len += (size_t)n;
}

/* Progress goes to stderr, so that stdout carries only the report. */
__attribute__((format(printf, 1, 2)))
static void progress(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
}

/* ------------------------------------------------------------------ */
/* Environment: the private daemon, and everything cleanup must undo    */

static struct {
	pid_t main_pid;
	char dir[64];                   /* our temporary directory */
	char sock[128];                 /* the daemon's socket in it */
	char seg_prefix[64];            /* its segments in /dev/shm */
	pid_t daemon;
	volatile pid_t kids[MAX_KIDS];  /* children of the current run */
	volatile pid_t awake[64];       /* --keep-awake spinners */
	int nawake;
	long mq_orig[2];                /* msg_max, msgsize_max; -1 = kept */
	long mq_set[2];                 /* what we wrote */
	int perf_id;                    /* raw_syscalls:sys_enter, or -1 */
	uint64_t perf_base;             /* what an empty window counts */
	sigset_t chld;                  /* {SIGCHLD}, blocked in the parent */
} env = { .mq_orig = { -1, -1 }, .perf_id = -1 };

static volatile sig_atomic_t interrupted;

static const char *const mq_sysctl[2] = {
	"/proc/sys/fs/mqueue/msg_max",
	"/proc/sys/fs/mqueue/msgsize_max",
};

/* Children die with the run: no process may outlive an interrupt. */
static void on_signal(int sig)
{
	interrupted = sig;
	for (int i = 0; i < MAX_KIDS; i++)
		if (env.kids[i] > 0)
			kill(env.kids[i], SIGKILL);
	for (int i = 0; i < env.nawake; i++)
		if (env.awake[i] > 0)
			kill(env.awake[i], SIGKILL);
}

static void kids_add(pid_t pid)
{
	for (int i = 0; i < MAX_KIDS; i++)
		if (env.kids[i] == 0) {
			env.kids[i] = pid;
			return;
		}
}

static void kids_forget(pid_t pid)
{
	for (int i = 0; i < MAX_KIDS; i++)
		if (env.kids[i] == pid)
			env.kids[i] = 0;
}

static void awake_stop(void)
{
	for (int i = 0; i < env.nawake; i++) {
		kill(env.awake[i], SIGKILL);
		while (waitpid(env.awake[i], NULL, 0) < 0 && errno == EINTR)
			;
	}
	env.nawake = 0;
}

static void kids_kill_all(void)
{
	for (int i = 0; i < MAX_KIDS; i++) {
		pid_t pid = env.kids[i];
		if (pid <= 0)
			continue;
		kill(pid, SIGKILL);
		while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
			;
		env.kids[i] = 0;
	}
}

static long read_long(const char *path)
{
	FILE *f = fopen(path, "re");
	long v = -1;

	if (f) {
		if (fscanf(f, "%ld", &v) != 1)
			v = -1;
		fclose(f);
	}
	return v;
}

static int write_long(const char *path, long v)
{
	FILE *f = fopen(path, "we");
	int rc;

	if (f == NULL)
		return -1;
	rc = fprintf(f, "%ld\n", v) < 0;
	rc |= fclose(f) != 0;
	return rc ? -1 : 0;
}

/* The daemon names its segments after the socket path (FNV-1a), as
 * paths_segment_prefix() does: that is how we find ours and only ours. */
static void seg_prefix(const char *sock, char *buf, size_t size)
{
	uint64_t h = UINT64_C(0xcbf29ce484222325);

	for (const unsigned char *p = (const unsigned char *)sock; *p; p++) {
		h ^= *p;
		h *= UINT64_C(0x100000001b3);
	}
	snprintf(buf, size, "shmq.%016" PRIx64 ".", h);
}

/* Removes and counts what is left of our queues in /dev/shm. */
static int remove_segments(void)
{
	DIR *d = opendir("/dev/shm");
	struct dirent *e;
	size_t n = strlen(env.seg_prefix);
	int found = 0;

	if (d == NULL || n == 0)
		return d ? (closedir(d), 0) : 0;
	while ((e = readdir(d)) != NULL) {
		if (strncmp(e->d_name, env.seg_prefix, n) != 0)
			continue;
		char path[512];
		snprintf(path, sizeof(path), "/dev/shm/%s", e->d_name);
		if (unlink(path) == 0)
			found++;
	}
	closedir(d);
	return found;
}

static void remove_dir(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;

	if (d == NULL)
		return;
	while ((e = readdir(d)) != NULL) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		char path[512];
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		unlink(path);
	}
	closedir(d);
	rmdir(dir);
}

static int wait_pid_ms(pid_t pid, int ms)
{
	for (int waited = 0; waited < ms; waited += 10) {
		pid_t r = waitpid(pid, NULL, WNOHANG);
		if (r == pid || (r < 0 && errno == ECHILD))
			return 0;
		sleep_ns(10000000);
	}
	return -1;
}

static void delete_all_queues(void)
{
	struct shmq_stat *list;
	size_t n;

	if (shmq_list(&list, &n) != SHMQ_OK)
		return;
	for (size_t i = 0; i < n; i++)
		shmq_delete(list[i].name);
	free(list);
}

static void daemon_stop(void)
{
	if (env.daemon <= 0)
		return;
	delete_all_queues();
	kill(env.daemon, SIGTERM);
	if (wait_pid_ms(env.daemon, 5000) < 0) {
		kill(env.daemon, SIGKILL);
		wait_pid_ms(env.daemon, 5000);
	}
	env.daemon = 0;
}

static void mq_restore(void)
{
	for (int i = 0; i < 2; i++) {
		if (env.mq_orig[i] < 0)
			continue;
		/* Someone else changed it since: theirs now, leave it. */
		if (read_long(mq_sysctl[i]) == env.mq_set[i])
			write_long(mq_sysctl[i], env.mq_orig[i]);
		env.mq_orig[i] = -1;
	}
}

/* Undoes everything; safe to call twice, and only the main process may. */
static void cleanup(void)
{
	if (getpid() != env.main_pid)
		return;
	kids_kill_all();
	awake_stop();
	daemon_stop();
	int left = remove_segments();
	if (left)
		progress("shmq-bench: removed %d segment(s) the daemon left "
			 "in /dev/shm\n", left);
	mq_restore();
	if (env.dir[0]) {
		remove_dir(env.dir);
		env.dir[0] = '\0';
	}
}

__attribute__((format(printf, 1, 2), noreturn))
static void fatal(const char *fmt, ...)
{
	va_list ap;

	fputs("shmq-bench: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	cleanup();
	exit(1);
}

static void signals_init(void)
{
	struct sigaction sa = { .sa_handler = on_signal };

	/* No SA_RESTART: a wait must notice the interrupt. */
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	/* Child exits are collected with sigtimedwait(), so the parent
	 * sleeps while a run goes on instead of polling. */
	sigemptyset(&env.chld);
	sigaddset(&env.chld, SIGCHLD);
	sigprocmask(SIG_BLOCK, &env.chld, NULL);
}

/* In every child: default signals, and death with the parent. */
static void child_signals(int deathsig)
{
	sigset_t none;

	signal(SIGINT, SIG_DFL);
	signal(SIGTERM, SIG_DFL);
	signal(SIGHUP, SIG_DFL);
	signal(SIGPIPE, SIG_DFL);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	prctl(PR_SET_PDEATHSIG, deathsig);
	if (getppid() != env.main_pid)
		_exit(1);
}

static int connect_sock(const char *path)
{
	struct sockaddr_un un = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -1;
	if (strlen(path) >= sizeof(un.sun_path)) {
		close(fd);
		errno = ENAMETOOLONG;
		return -1;
	}
	memcpy(un.sun_path, path, strlen(path) + 1);
	if (connect(fd, (struct sockaddr *)&un, sizeof(un)) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* A HELLO by hand (proto/shmq_wire.h), as any client's first packet:
 * the control-plane test holds many connections without many processes. */
static int hello(int fd, uint32_t seq)
{
	struct {
		struct shmq_wire_hdr h;
		struct shmq_wire_hello b;
	} req = {
		{ SHMQ_WIRE_MAGIC, SHMQ_WIRE_VERSION, SHMQ_MSG_HELLO,
		  sizeof(req), seq },
		{ SHMQ_WIRE_VERSION, SHMQ_LAYOUT_VERSION },
	};
	struct {
		struct shmq_wire_hdr h;
		struct shmq_wire_hello_reply b;
	} rep;
	struct timeval tv = { .tv_sec = 5 };

	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (send(fd, &req, sizeof(req), MSG_NOSIGNAL) != (ssize_t)sizeof(req))
		return -1;
	if (recv(fd, &rep, sizeof(rep), 0) != (ssize_t)sizeof(rep))
		return -1;
	if (rep.h.magic != SHMQ_WIRE_MAGIC || rep.h.seq != seq ||
	    rep.h.type != (SHMQ_MSG_HELLO | SHMQ_MSG_REPLY) ||
	    rep.b.st.status != SHMQ_OK)
		return -1;
	return (int)rep.b.daemon_pid;
}

static void daemon_exec(const char *bin, const char *log)
{
	int fd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);

	/* Its own process group: a ^C to the terminal must not stop it
	 * before our cleanup has deleted the queues through it. */
	setpgid(0, 0);
	child_signals(SIGTERM);
	if (fd >= 0) {
		dup2(fd, STDOUT_FILENO);
		dup2(fd, STDERR_FILENO);
	}
	execlp(bin, "shmqd", "--foreground", "--socket", env.sock,
	       (char *)NULL);
	_exit(127);
}

/* Starts shmqd in the foreground and waits until it answers. */
static void daemon_start(void)
{
	const char *bin = getenv("SHMQ_DAEMON");
	char log[160];

	if (bin == NULL || *bin == '\0')
		bin = "shmqd";
	snprintf(log, sizeof(log), "%s/shmqd.log", env.dir);
	pid_t pid = fork();
	if (pid < 0)
		fatal("fork: %s", strerror(errno));
	if (pid == 0)
		daemon_exec(bin, log);
	env.daemon = pid;
	for (int waited = 0; waited < 10000; waited += 5) {
		int fd = connect_sock(env.sock);
		if (fd >= 0) {
			int dpid = hello(fd, 1);
			close(fd);
			if (dpid == pid)
				return;
			fatal("another process (%d) answers on %s", dpid,
			      env.sock);
		}
		if (waitpid(pid, NULL, WNOHANG) == pid) {
			env.daemon = 0;
			fatal("%s did not start (see its log above, or set "
			      "SHMQ_DAEMON)", bin);
		}
		if (interrupted)
			fatal("interrupted");
		sleep_ns(5000000);
	}
	fatal("%s did not answer on %s within 10 s", bin, env.sock);
}

static void env_init(void)
{
	struct rlimit rl;

	env.main_pid = getpid();
	snprintf(env.dir, sizeof(env.dir), "/tmp/shmq-bench.XXXXXX");
	if (mkdtemp(env.dir) == NULL) {
		env.dir[0] = '\0';
		fatal("mkdtemp: %s", strerror(errno));
	}
	snprintf(env.sock, sizeof(env.sock), "%s/s.sock", env.dir);
	seg_prefix(env.sock, env.seg_prefix, sizeof(env.seg_prefix));
	setenv("SHMQ_SOCKET", env.sock, 1);
	setenv("SHMQ_NO_AUTOSTART", "1", 1);
	/* The control-plane test holds a thousand connections. */
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	daemon_start();
}

/* ------------------------------------------------------------------ */
/* POSIX message queue limits                                          */

/*
 * msg_max (default 10) and msgsize_max (8192) bound mq_maxmsg and
 * mq_msgsize unless the caller has CAP_SYS_RESOURCE; root may raise them
 * through /proc, and we put them back at exit.  RLIMIT_MSGQUEUE bounds the
 * bytes of all of a user's queues and only CAP_SYS_RESOURCE raises its hard
 * limit: where it is too small, a queue gets the largest capacity it allows
 * and the report says so.
 */
static struct {
	size_t size[8];
	unsigned cap[8];        /* 0: cannot hold such messages at all */
	char why[8][96];
	int n;
	long msg_max, msgsize_max;
	rlim_t rlimit;
} mqlim;

static int mq_try(unsigned cap, size_t size)
{
	struct mq_attr a = { .mq_maxmsg = cap, .mq_msgsize = (long)size };
	char name[64];

	snprintf(name, sizeof(name), "/shmq-bench.%d.probe", (int)getpid());
	mqd_t q = mq_open(name, O_RDWR | O_CREAT | O_EXCL, 0600, &a);
	if (q == (mqd_t)-1)
		return errno;
	mq_unlink(name);
	mq_close(q);
	return 0;
}

static void mq_raise_sysctl(int i, long want)
{
	long cur = read_long(mq_sysctl[i]);

	if (cur < 0 || cur >= want)
		return;
	if (write_long(mq_sysctl[i], want) == 0) {
		env.mq_orig[i] = cur;
		env.mq_set[i] = want;
	}
}

/* The largest capacity up to MQ_WANT the system allows for `size`. */
static void mq_probe(size_t size)
{
	int i = mqlim.n++;
	unsigned lo = 0, hi = MQ_WANT;
	int e = mq_try(hi, size), e_first = e;

	mqlim.size[i] = size;
	if (e == 0) {
		mqlim.cap[i] = hi;
		return;
	}
	/* Bisect on "mq_open succeeds": the limit is in bytes. */
	while (lo < hi) {
		unsigned mid = lo + (hi - lo + 1) / 2;
		if (mq_try(mid, size) == 0)
			lo = mid;
		else
			hi = mid - 1;
	}
	mqlim.cap[i] = lo;
	snprintf(mqlim.why[i], sizeof(mqlim.why[i]), "%s",
		 e_first == EMFILE ? "RLIMIT_MSGQUEUE" : strerror(e_first));
}

static void mq_init(void)
{
	static const size_t sizes[] = { 16, 64, 256, 4096, 65536 };
	struct rlimit rl;

	mq_raise_sysctl(0, MQ_WANT);
	mq_raise_sysctl(1, 65536);
	if (getrlimit(RLIMIT_MSGQUEUE, &rl) == 0) {
		if (rl.rlim_cur < rl.rlim_max) {
			rl.rlim_cur = rl.rlim_max;
			setrlimit(RLIMIT_MSGQUEUE, &rl);
		}
		mqlim.rlimit = rl.rlim_cur;
	}
	mqlim.msg_max = read_long(mq_sysctl[0]);
	mqlim.msgsize_max = read_long(mq_sysctl[1]);
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++)
		mq_probe(sizes[i]);
}

static unsigned mq_cap(size_t size)
{
	for (int i = 0; i < mqlim.n; i++)
		if (mqlim.size[i] == size)
			return mqlim.cap[i];
	return 0;
}

/* ------------------------------------------------------------------ */
/* Messages                                                           */

/*
 * Every message starts with this header; messages of 32 bytes or more
 * also end with ~seq, so a copy that is cut short or shifted is caught
 * too.  The rest of the payload is a fixed pattern written once: stamping
 * or checking all of a 64 KiB message would measure memset, not transport.
 */
struct msg_hdr {
	uint64_t seq;
	uint32_t producer;      /* or STOP_ID */
	uint32_t tag;           /* msg_tag(seq, producer) */
};

static uint32_t msg_tag(uint64_t seq, uint32_t producer)
{
	return (uint32_t)((seq * UINT64_C(0x9e3779b97f4a7c15)) >> 32) ^
	       producer;
}

static void msg_stamp(uint8_t *m, size_t size, uint32_t producer,
		      uint64_t seq)
{
	struct msg_hdr h = { seq, producer, msg_tag(seq, producer) };

	memcpy(m, &h, sizeof(h));
	if (size >= 2 * sizeof(h)) {
		uint64_t t = ~seq;
		memcpy(m + size - sizeof(t), &t, sizeof(t));
	}
}

static uint8_t *msg_buffer(size_t size, unsigned n)
{
	uint8_t *b = malloc(size * n);

	/* Touched now, so that page faults are not part of a run. */
	if (b)
		for (size_t i = 0; i < size * n; i++)
			b[i] = (uint8_t)(i * 7 + 1);
	return b;
}

/* What one consumer saw, per producer: for one consumer exactly
 * 0, 1, 2 ...; for several, a rising subsequence each, and the parent
 * checks that the counts, sums and sums of squares add up to 0..sent-1. */
struct tally {
	uint64_t next[MAXP];
	uint64_t cnt[MAXP], sum[MAXP], sq[MAXP];
};

struct checker {
	struct tally t;
	size_t size;
	unsigned producers;
	int exact;
	char *err;
	size_t err_size;
};

/* 1: a data message, 0: a stop, -1: wrong (err says why). */
static int check_msg(struct checker *ck, const uint8_t *m, size_t len)
{
	struct msg_hdr h;
	uint64_t trailer;

	if (len != ck->size) {
		snprintf(ck->err, ck->err_size, "message of %zu bytes, "
			 "expected %zu", len, ck->size);
		return -1;
	}
	memcpy(&h, m, sizeof(h));
	if (h.producer == STOP_ID)
		return 0;
	if (h.producer >= ck->producers || h.tag != msg_tag(h.seq, h.producer))
		goto corrupt;
	if (len >= 2 * sizeof(h)) {
		memcpy(&trailer, m + len - sizeof(trailer), sizeof(trailer));
		if (trailer != ~h.seq)
			goto corrupt;
	}
	uint32_t p = h.producer;
	if (h.seq < ck->t.next[p] || (ck->exact && h.seq != ck->t.next[p])) {
		snprintf(ck->err, ck->err_size, "producer %u: got message %"
			 PRIu64 ", expected %s%" PRIu64, p, h.seq,
			 ck->exact ? "" : ">= ", ck->t.next[p]);
		return -1;
	}
	ck->t.next[p] = h.seq + 1;
	ck->t.cnt[p]++;
	ck->t.sum[p] += h.seq;
	ck->t.sq[p] += h.seq * h.seq;
	return 1;
corrupt:
	snprintf(ck->err, ck->err_size, "corrupt message (seq %" PRIu64
		 ", producer %u)", h.seq, h.producer);
	return -1;
}

/* ------------------------------------------------------------------ */
/* What a process costs: CPU, context switches, system calls           */

struct usage {
	uint64_t user_ns, sys_ns;
	uint64_t csw;           /* voluntary + involuntary */
	uint64_t syscalls;      /* UINT64_MAX: not counted */
};

struct probe {
	struct rusage ru;
	int fd;                 /* perf counter of raw_syscalls:sys_enter */
};

static uint64_t tv_ns(struct timeval tv)
{
	return (uint64_t)tv.tv_sec * 1000000000u + (uint64_t)tv.tv_usec * 1000;
}

/* The kernel's own count of our system calls: a tracepoint counter on
 * this process only, so it costs nothing unless asked for. */
static void probe_open(struct probe *p, int syscalls)
{
	struct perf_event_attr a = {
		.type = PERF_TYPE_TRACEPOINT,
		.size = sizeof(a),
		.config = (uint64_t)env.perf_id,
		.disabled = 1,
	};

	p->fd = -1;
	if (syscalls && env.perf_id >= 0)
		p->fd = (int)syscall(SYS_perf_event_open, &a, 0, -1, -1,
				     PERF_FLAG_FD_CLOEXEC);
}

/* The counter is switched on last and off first, so that the window
 * holds only the calls it measures and the ioctl that ends it (and
 * perf_init() measures what an empty window counts). */
static void probe_start(struct probe *p)
{
	getrusage(RUSAGE_SELF, &p->ru);
	if (p->fd >= 0) {
		ioctl(p->fd, PERF_EVENT_IOC_RESET, 0);
		ioctl(p->fd, PERF_EVENT_IOC_ENABLE, 0);
	}
}

static void probe_stop(struct probe *p, struct usage *u)
{
	struct rusage ru;
	uint64_t n;

	u->syscalls = UINT64_MAX;
	if (p->fd >= 0) {
		ioctl(p->fd, PERF_EVENT_IOC_DISABLE, 0);
		if (read(p->fd, &n, sizeof(n)) == (ssize_t)sizeof(n))
			u->syscalls = n >= env.perf_base ? n - env.perf_base
							 : 0;
		close(p->fd);
		p->fd = -1;
	}
	getrusage(RUSAGE_SELF, &ru);
	u->user_ns = tv_ns(ru.ru_utime) - tv_ns(p->ru.ru_utime);
	u->sys_ns = tv_ns(ru.ru_stime) - tv_ns(p->ru.ru_stime);
	u->csw = (uint64_t)(ru.ru_nvcsw - p->ru.ru_nvcsw) +
		 (uint64_t)(ru.ru_nivcsw - p->ru.ru_nivcsw);
}

static void usage_add(struct usage *sum, const struct usage *u)
{
	sum->user_ns += u->user_ns;
	sum->sys_ns += u->sys_ns;
	sum->csw += u->csw;
	if (u->syscalls == UINT64_MAX || sum->syscalls == UINT64_MAX)
		sum->syscalls = UINT64_MAX;
	else
		sum->syscalls += u->syscalls;
}

static void perf_init(void)
{
	long id = read_long("/sys/kernel/tracing/events/raw_syscalls/"
			    "sys_enter/id");
	if (id < 0)
		id = read_long("/sys/kernel/debug/tracing/events/"
			       "raw_syscalls/sys_enter/id");
	env.perf_id = (int)id;
	if (id >= 0) {
		struct probe p;
		struct usage u;
		probe_open(&p, 1);
		if (p.fd < 0) {
			env.perf_id = -1;
			return;
		}
		probe_start(&p);
		probe_stop(&p, &u);
		env.perf_base = u.syscalls;
	}
}

/* ------------------------------------------------------------------ */
/* Transports                                                         */

enum role { TX, RX };

/* One direction of one transport, created by the parent before fork. */
struct chan {
	const struct xport *x;
	size_t size;            /* every message has exactly this size */
	unsigned capacity;      /* messages (shmq, mq) */
	unsigned batch;         /* most messages per batch call */
	int timeout_ms;         /* shmq: children wait forever, the parent
				   (sending stops) not */
	int fd[2];              /* pipe: read, write; socket: tx, rx */
	mqd_t mq;
	shmq_t *q;
	char name[64];
	struct mmsghdr *mm;     /* sendmmsg/recvmmsg scratch */
	struct iovec *mio;
	char why[128];
};

struct xport {
	const char *name;
	const char *batch_how;  /* how its batch mode is done */
	int (*create)(struct chan *c);
	int (*open)(struct chan *c, enum role r);
	int (*send)(struct chan *c, const void *m);
	int (*recv)(struct chan *c, void *buf, size_t *len);
	int (*sendv)(struct chan *c, const struct iovec *v, unsigned n);
	/* At least one message; v[i] points into buf. */
	int (*recvv)(struct chan *c, void *buf, struct iovec *v, unsigned n,
		     unsigned *got);
	void (*leave)(struct chan *c);
	void (*destroy)(struct chan *c);
};

static int fail_errno(struct chan *c, const char *what)
{
	snprintf(c->why, sizeof(c->why), "%s: %s", what, strerror(errno));
	return -1;
}

static int fail_shmq(struct chan *c, const char *what, int rc)
{
	snprintf(c->why, sizeof(c->why), "%s: %s", what, shmq_strerror(rc));
	return -1;
}

static int no_open(struct chan *c, enum role r)
{
	(void)c;
	(void)r;
	return 0;
}

static void no_leave(struct chan *c)
{
	(void)c;
}

/* --- pipe: a byte stream, so whole messages are read in a loop -------- */

static int pipe_create(struct chan *c)
{
	return pipe(c->fd) < 0 ? fail_errno(c, "pipe") : 0;
}

/* The pipe's buffer grown to the queues' capacity in bytes, as far as
 * fs/pipe-max-size lets an unprivileged process (1 MiB by default). */
static size_t pipe_big_size(size_t msg, unsigned capacity)
{
	long max = read_long("/proc/sys/fs/pipe-max-size");
	size_t want = msg * capacity;

	if (max > 0 && want > (size_t)max)
		want = (size_t)max;
	return want;
}

static int pipe_big_create(struct chan *c)
{
	if (pipe_create(c))
		return -1;
	if (fcntl(c->fd[1], F_SETPIPE_SZ,
		  (int)pipe_big_size(c->size, c->capacity)) < 0) {
		fail_errno(c, "fcntl F_SETPIPE_SZ");
		close(c->fd[0]);
		close(c->fd[1]);
		c->fd[0] = c->fd[1] = -1;
		return -1;
	}
	return 0;
}

static int write_full(struct chan *c, int fd, const void *p, size_t n)
{
	while (n) {
		ssize_t w = write(fd, p, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return fail_errno(c, "write");
		}
		p = (const uint8_t *)p + w;
		n -= (size_t)w;
	}
	return 0;
}

static int read_full(struct chan *c, int fd, void *p, size_t n)
{
	while (n) {
		ssize_t r = read(fd, p, n);
		if (r <= 0) {
			if (r < 0 && errno == EINTR)
				continue;
			return r ? fail_errno(c, "read")
				 : (snprintf(c->why, sizeof(c->why),
					     "read: end of file"), -1);
		}
		p = (uint8_t *)p + r;
		n -= (size_t)r;
	}
	return 0;
}

static int pipe_send(struct chan *c, const void *m)
{
	return write_full(c, c->fd[1], m, c->size);
}

static int pipe_recv(struct chan *c, void *buf, size_t *len)
{
	*len = c->size;
	return read_full(c, c->fd[0], buf, c->size);
}

/* writev() of the whole batch; a pipe may take it in parts. */
static int pipe_sendv(struct chan *c, const struct iovec *v, unsigned n)
{
	struct iovec iov[MAX_BATCH];
	struct iovec *p = iov;

	memcpy(iov, v, n * sizeof(*v));
	while (n) {
		ssize_t w = writev(c->fd[1], p, (int)n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return fail_errno(c, "writev");
		}
		while (n && (size_t)w >= p->iov_len) {
			w -= (ssize_t)p->iov_len;
			p++;
			n--;
		}
		if (n) {
			p->iov_base = (uint8_t *)p->iov_base + w;
			p->iov_len -= (size_t)w;
		}
	}
	return 0;
}

/* One large read; a message cut at its end is completed by reading the
 * rest of it, which its writer is writing.  Writes of whole messages of at
 * most PIPE_BUF bytes are atomic, so with several readers (4->4) every read
 * of a multiple of the message size returns whole messages. */
static int pipe_recvv(struct chan *c, void *buf, struct iovec *v, unsigned n,
		      unsigned *got)
{
	ssize_t r;

	do
		r = read(c->fd[0], buf, c->size * n);
	while (r < 0 && errno == EINTR);
	if (r <= 0)
		return r ? fail_errno(c, "read")
			 : (snprintf(c->why, sizeof(c->why), "read: end of file"),
			    -1);
	size_t rem = (size_t)r % c->size;
	if (rem && read_full(c, c->fd[0], (uint8_t *)buf + r, c->size - rem))
		return -1;
	*got = (unsigned)(((size_t)r + c->size - 1) / c->size);
	for (unsigned i = 0; i < *got; i++) {
		v[i].iov_base = (uint8_t *)buf + i * c->size;
		v[i].iov_len = c->size;
	}
	return 0;
}

static void fds_close(struct chan *c)
{
	close(c->fd[0]);
	close(c->fd[1]);
}

static const struct xport xp_pipe = {
	"pipe", "writev / one large read",
	pipe_create, no_open, pipe_send, pipe_recv, pipe_sendv, pipe_recvv,
	no_leave, fds_close,
};

static const struct xport xp_pipe_big = {
	"pipe, grown", "writev / one large read",
	pipe_big_create, no_open, pipe_send, pipe_recv, pipe_sendv,
	pipe_recvv, no_leave, fds_close,
};

/* --- AF_UNIX SOCK_SEQPACKET: boundaries kept, batches via *mmsg() ----- */

static int sock_create(struct chan *c)
{
	if (socketpair(AF_UNIX, SOCK_SEQPACKET, 0, c->fd) < 0)
		return fail_errno(c, "socketpair");
	return 0;
}

static int sock_open(struct chan *c, enum role r)
{
	(void)r;
	c->mm = calloc(MAX_BATCH, sizeof(*c->mm));
	c->mio = calloc(MAX_BATCH, sizeof(*c->mio));
	if (c->mm == NULL || c->mio == NULL)
		return fail_errno(c, "calloc");
	return 0;
}

static int sock_send(struct chan *c, const void *m)
{
	ssize_t w;

	do
		w = send(c->fd[0], m, c->size, MSG_NOSIGNAL);
	while (w < 0 && errno == EINTR);
	return w == (ssize_t)c->size ? 0 : fail_errno(c, "send");
}

static int sock_recv(struct chan *c, void *buf, size_t *len)
{
	ssize_t r;

	do
		r = recv(c->fd[1], buf, c->size, 0);
	while (r < 0 && errno == EINTR);
	if (r < 0)
		return fail_errno(c, "recv");
	*len = (size_t)r;
	return 0;
}

static int sock_sendv(struct chan *c, const struct iovec *v, unsigned n)
{
	unsigned done = 0;

	for (unsigned i = 0; i < n; i++) {
		c->mio[i] = v[i];
		c->mm[i].msg_hdr = (struct msghdr){ .msg_iov = &c->mio[i],
						    .msg_iovlen = 1 };
	}
	while (done < n) {
		int w = sendmmsg(c->fd[0], c->mm + done, n - done,
				 MSG_NOSIGNAL);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return fail_errno(c, "sendmmsg");
		}
		done += (unsigned)w;
	}
	return 0;
}

static int sock_recvv(struct chan *c, void *buf, struct iovec *v, unsigned n,
		      unsigned *got)
{
	int r;

	for (unsigned i = 0; i < n; i++) {
		c->mio[i].iov_base = (uint8_t *)buf + i * c->size;
		c->mio[i].iov_len = c->size;
		c->mm[i].msg_hdr = (struct msghdr){ .msg_iov = &c->mio[i],
						    .msg_iovlen = 1 };
	}
	do
		r = recvmmsg(c->fd[1], c->mm, n, MSG_WAITFORONE, NULL);
	while (r < 0 && errno == EINTR);
	if (r <= 0)
		return fail_errno(c, "recvmmsg");
	for (int i = 0; i < r; i++) {
		v[i].iov_base = c->mio[i].iov_base;
		v[i].iov_len = c->mm[i].msg_len;
	}
	*got = (unsigned)r;
	return 0;
}

static void sock_leave(struct chan *c)
{
	free(c->mm);
	free(c->mio);
}

static const struct xport xp_sock = {
	"seqpacket", "sendmmsg / recvmmsg",
	sock_create, sock_open, sock_send, sock_recv, sock_sendv, sock_recvv,
	sock_leave, fds_close,
};

/* --- POSIX message queue: no batch call exists ------------------------ */

static int mq_create(struct chan *c)
{
	static unsigned serial;
	struct mq_attr a = { .mq_maxmsg = c->capacity,
			     .mq_msgsize = (long)c->size };

	snprintf(c->name, sizeof(c->name), "/shmq-bench.%d.%u",
		 (int)getpid(), serial++);
	c->mq = mq_open(c->name, O_RDWR | O_CREAT | O_EXCL, 0600, &a);
	if (c->mq == (mqd_t)-1)
		return fail_errno(c, "mq_open");
	/* Nameless from now on: nothing to leave behind. */
	mq_unlink(c->name);
	return 0;
}

static int mq_send_one(struct chan *c, const void *m)
{
	while (mq_send(c->mq, m, c->size, 0) < 0)
		if (errno != EINTR)
			return fail_errno(c, "mq_send");
	return 0;
}

static int mq_recv_one(struct chan *c, void *buf, size_t *len)
{
	ssize_t r;

	do
		r = mq_receive(c->mq, buf, c->size, NULL);
	while (r < 0 && errno == EINTR);
	if (r < 0)
		return fail_errno(c, "mq_receive");
	*len = (size_t)r;
	return 0;
}

static int mq_sendv(struct chan *c, const struct iovec *v, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		if (mq_send_one(c, v[i].iov_base))
			return -1;
	return 0;
}

static int mq_recvv(struct chan *c, void *buf, struct iovec *v, unsigned n,
		    unsigned *got)
{
	(void)n;
	v[0].iov_base = buf;
	*got = 1;
	return mq_recv_one(c, buf, &v[0].iov_len);
}

static void mq_destroy(struct chan *c)
{
	mq_close(c->mq);
}

static const struct xport xp_mq = {
	"POSIX mq", "none: one mq_send / mq_receive per message",
	mq_create, no_open, mq_send_one, mq_recv_one, mq_sendv, mq_recvv,
	no_leave, mq_destroy,
};

/* --- shmq ------------------------------------------------------------- */

/* The parent keeps a producer handle of its own: it sends the stops that
 * release the second and later consumers of a 4->4 run. */
static int shmq_create_chan(struct chan *c)
{
	static unsigned serial;
	struct shmq_attr a;
	int rc;

	shmq_attr_init(&a);
	a.capacity = c->capacity;
	a.max_msg = (uint32_t)c->size;
	snprintf(c->name, sizeof(c->name), "bench.%u", serial++);
	if ((rc = shmq_create(c->name, &a, 0)) != SHMQ_OK)
		return fail_shmq(c, "shmq_create", rc);
	if ((rc = shmq_open(c->name, SHMQ_PRODUCER | SHMQ_PREFAULT,
			    &c->q)) != SHMQ_OK) {
		shmq_delete(c->name);
		return fail_shmq(c, "shmq_open", rc);
	}
	return 0;
}

/* In a child: its own handle (handles do not cross fork).  The parent's
 * handle, still mapped here, is simply never used. */
static int shmq_open_chan(struct chan *c, enum role r)
{
	/* Warm mappings, as a long-running pipeline's are: a fresh ring
	 * would otherwise fault in its pages during the short timed runs. */
	int rc = shmq_open(c->name, (r == TX ? SHMQ_PRODUCER : SHMQ_CONSUMER) |
					    SHMQ_PREFAULT, &c->q);

	return rc == SHMQ_OK ? 0 : fail_shmq(c, "shmq_open", rc);
}

static int shmq_send(struct chan *c, const void *m)
{
	int rc = shmq_put(c->q, m, c->size, c->timeout_ms);

	return rc == SHMQ_OK ? 0 : fail_shmq(c, "shmq_put", rc);
}

static int shmq_recv(struct chan *c, void *buf, size_t *len)
{
	int rc = shmq_get(c->q, buf, c->size, len, c->timeout_ms);

	return rc == SHMQ_OK ? 0 : fail_shmq(c, "shmq_get", rc);
}

static int shmq_sendv(struct chan *c, const struct iovec *v, unsigned n)
{
	size_t done;
	int rc = shmq_putv(c->q, v, n, &done, c->timeout_ms);

	return rc == SHMQ_OK ? 0 : fail_shmq(c, "shmq_putv", rc);
}

/* shmq_getv starts each message 16-aligned in buf: consumers allocate
 * batch_stride() bytes per message. */
static size_t batch_stride(size_t size)
{
	return (size + 15) & ~(size_t)15;
}

static int shmq_recvv(struct chan *c, void *buf, struct iovec *v, unsigned n,
		      unsigned *got)
{
	size_t k = 0;
	int rc = shmq_getv(c->q, buf, batch_stride(c->size) * n, v, n, &k,
			   c->timeout_ms);

	*got = (unsigned)k;
	return rc == SHMQ_OK ? 0 : fail_shmq(c, "shmq_getv", rc);
}

static void shmq_leave(struct chan *c)
{
	shmq_detach(c->q);
}

static void shmq_destroy(struct chan *c)
{
	shmq_detach(c->q);
	shmq_delete(c->name);
}

static const struct xport xp_shmq = {
	"shmq", "shmq_putv / shmq_getv",
	shmq_create_chan, shmq_open_chan, shmq_send, shmq_recv, shmq_sendv,
	shmq_recvv, shmq_leave, shmq_destroy,
};

/* Zero copy: the producer still copies its message in (reserve, copy,
 * commit), the consumer checks it where it lies (view, take) instead of
 * copying it out.  The checker sees the same header and trailer the other
 * transports hand it: those are the bytes it checks in every message. */
static int zc_send(struct chan *c, const void *m)
{
	void *p;
	int rc = shmq_put_reserve(c->q, c->size, &p, c->timeout_ms);

	if (rc != SHMQ_OK)
		return fail_shmq(c, "shmq_put_reserve", rc);
	memcpy(p, m, c->size);
	rc = shmq_put_commit(c->q);
	return rc == SHMQ_OK ? 0 : fail_shmq(c, "shmq_put_commit", rc);
}

static int zc_recv(struct chan *c, void *buf, size_t *len)
{
	const uint8_t *p;
	const size_t head = sizeof(struct msg_hdr), tail = sizeof(uint64_t);
	int rc = shmq_get_view(c->q, (const void **)&p, len, c->timeout_ms);

	if (rc != SHMQ_OK)
		return fail_shmq(c, "shmq_get_view", rc);
	memcpy(buf, p, *len < head ? *len : head);
	if (*len >= head + tail)
		memcpy((uint8_t *)buf + *len - tail, p + *len - tail, tail);
	rc = shmq_get_take(c->q);
	return rc == SHMQ_OK ? 0 : fail_shmq(c, "shmq_get_take", rc);
}

static const struct xport xp_shmq_zc = {
	"shmq zero copy", "",
	shmq_create_chan, shmq_open_chan, zc_send, zc_recv, shmq_sendv,
	shmq_recvv, shmq_leave, shmq_destroy,
};

/* ------------------------------------------------------------------ */
/* Cases                                                              */

enum kind { TPUT, PING };

/* T_SHMQ_SMALL is shmq with the capacity the POSIX queue was allowed,
 * where that is smaller than SHMQ_CAP, so that shmq meets mq at the same
 * capacity.  T_SHMQ_ZC, the zero-copy calls, runs at that capacity too.
 * T_PIPE_BIG is a pipe whose buffer holds as many bytes as those queues
 * (as far as fs/pipe-max-size allows): the default pipe holds a single
 * 64 KiB message, and this row shows what a larger buffer buys it. */
enum {
	T_SHMQ, T_PIPE, T_SOCK, T_MQ, T_SHMQ_SMALL, T_SHMQ_ZC, T_PIPE_BIG, NT
};

static const struct xport *const xports[NT] = {
	&xp_shmq, &xp_pipe, &xp_sock, &xp_mq, &xp_shmq, &xp_shmq_zc,
	&xp_pipe_big,
};

/* The capacity transport `t` gets for `size`-byte messages. */
static unsigned case_capacity(int t, size_t size)
{
	unsigned mc = mq_cap(size);

	switch (t) {
	case T_MQ:
	case T_SHMQ_SMALL:
		return mc;
	case T_SHMQ_ZC:
	case T_PIPE_BIG:
		return mc > 0 && mc < SHMQ_CAP ? mc : SHMQ_CAP;
	default:
		return SHMQ_CAP;
	}
}

struct bcase {
	const char *label;
	enum kind kind;
	size_t size;
	unsigned producers, consumers;
	unsigned batch;         /* messages per call; 0: single calls */
	unsigned section;
};

enum {
	C_16S, C_16B, C_256S, C_256B, C_4KS, C_4KB, C_64KS, C_64KB,
	C_PING, C_M256S, C_M256B, NCASES
};

/* Batches of 16 at 4->4: 16 x 256 B is PIPE_BUF, the most a pipe writes
 * atomically, and every transport gets the same batch. */
static const struct bcase cases[NCASES] = {
	[C_16S]   = { "1→1 16 B single", TPUT, 16, 1, 1, 0, SEC_TPUT },
	[C_16B]   = { "1→1 16 B batch ×64", TPUT, 16, 1, 1, 64, SEC_TPUT },
	[C_256S]  = { "1→1 256 B single", TPUT, 256, 1, 1, 0, SEC_TPUT },
	[C_256B]  = { "1→1 256 B batch ×64", TPUT, 256, 1, 1, 64, SEC_TPUT },
	[C_4KS]   = { "1→1 4 KiB single", TPUT, 4096, 1, 1, 0, SEC_TPUT },
	[C_4KB]   = { "1→1 4 KiB batch ×64", TPUT, 4096, 1, 1, 64, SEC_TPUT },
	[C_64KS]  = { "1→1 64 KiB single", TPUT, 65536, 1, 1, 0, SEC_TPUT },
	[C_64KB]  = { "1→1 64 KiB batch ×64", TPUT, 65536, 1, 1, 64,
		      SEC_TPUT },
	[C_PING]  = { "ping-pong 64 B", PING, 64, 1, 1, 0, SEC_PING },
	[C_M256S] = { "4→4 256 B single", TPUT, 256, 4, 4, 0, SEC_MPMC },
	[C_M256B] = { "4→4 256 B batch ×16", TPUT, 256, 4, 4, 16, SEC_MPMC },
};

/* One run's outcome. */
struct sample {
	int ok;
	char err[200];
	double value;           /* msgs/s, or median RTT in ns */
	double p99;             /* p99 RTT in ns */
	uint64_t msgs;
	uint64_t calls;         /* receive calls */
	double other;           /* CPUs busy with other work meanwhile */
	struct usage prod, cons;
};

/* All runs of one case on one transport. */
struct agg {
	int ran;
	int failed;
	char note[200];         /* why skipped, or the first failure */
	unsigned capacity;
	int n;
	double v[MAX_RUNS], p99[MAX_RUNS], other[MAX_RUNS];
	uint64_t msgs, calls;
	struct usage prod, cons;
};

static struct agg results[NCASES][NT];

/* ------------------------------------------------------------------ */
/* The processes of a run                                              */

struct side_res {
	uint64_t msgs;          /* producer: sent; consumer: data received */
	uint64_t calls;         /* consumer: receive calls that returned */
	uint64_t t_stop;        /* consumer: when its stop arrived */
	struct tally t;
	uint64_t rtt_med, rtt_p99;
	struct usage u;
	char err[200];
};

/* Shared by the parent and the children of a run (MAP_SHARED). */
struct shared {
	uint64_t t0;            /* the start, CLOCK_MONOTONIC */
	uint64_t deadline;      /* producers stop putting */
	uint32_t producers_left;
	struct side_res prod[MAXP], cons[MAXC];
};

static struct shared *sh;

struct job {
	const struct bcase *k;
	struct chan *ch;        /* [0]: data, or ping; [1]: pong */
	unsigned index;
	int ready_fd, go_fd;    /* the start barrier */
	int syscalls;           /* count them */
	int cpu;                /* pin to it, or -1 */
	struct side_res *res;
};

typedef int (*job_fn)(struct job *j);

static int job_fail(struct job *j, const char *why)
{
	snprintf(j->res->err, sizeof(j->res->err), "%s", why);
	return -1;
}

/* Ready, then wait for the parent to close the go pipe. */
static int job_barrier(struct job *j)
{
	char c = 'r';
	ssize_t r;

	if (write(j->ready_fd, &c, 1) != 1)
		return job_fail(j, "barrier: write failed");
	close(j->ready_fd);
	do
		r = read(j->go_fd, &c, 1);
	while (r < 0 && errno == EINTR);
	close(j->go_fd);
	return 0;
}

/* A child that fails before the barrier says so, so that the parent does
 * not wait for it. */
static int job_setup_failed(struct job *j, const char *why)
{
	char c = 'x';

	job_fail(j, why);
	if (write(j->ready_fd, &c, 1) != 1)
		_exit(1);
	return -1;
}

static int send_stop(struct chan *c, uint8_t *buf)
{
	msg_stamp(buf, c->size, STOP_ID, 0);
	return c->x->send(c, buf);
}

static int produce_single(struct job *j, struct chan *c, uint8_t *buf,
			  uint64_t *sent)
{
	const uint64_t deadline = __atomic_load_n(&sh->deadline,
						  __ATOMIC_ACQUIRE);
	uint64_t seq;

	/* Reading the clock costs ~20 ns: once per 32 messages. */
	for (seq = 0; (seq & 31) || now_ns() < deadline; seq++) {
		msg_stamp(buf, c->size, j->index, seq);
		if (c->x->send(c, buf)) {
			*sent = seq;
			return job_fail(j, c->why);
		}
	}
	*sent = seq;
	return 0;
}

static int produce_batch(struct job *j, struct chan *c, uint8_t *buf,
			 uint64_t *sent)
{
	const uint64_t deadline = __atomic_load_n(&sh->deadline,
						  __ATOMIC_ACQUIRE);
	struct iovec iov[MAX_BATCH];
	unsigned b = j->k->batch;
	uint64_t seq = 0;

	for (unsigned i = 0; i < b; i++)
		iov[i] = (struct iovec){ buf + i * c->size, c->size };
	while (now_ns() < deadline) {
		for (unsigned i = 0; i < b; i++)
			msg_stamp(buf + i * c->size, c->size, j->index,
				  seq + i);
		if (c->x->sendv(c, iov, b)) {
			*sent = seq;
			return job_fail(j, c->why);
		}
		seq += b;
	}
	*sent = seq;
	return 0;
}

static int producer(struct job *j)
{
	struct chan *c = &j->ch[0];
	unsigned b = j->k->batch ? j->k->batch : 1;
	uint8_t *buf = msg_buffer(c->size, b);
	struct probe pr;
	int rc;

	if (buf == NULL)
		return job_setup_failed(j, "out of memory");
	if (c->x->open(c, TX))
		return job_setup_failed(j, c->why);
	probe_open(&pr, j->syscalls);
	if (job_barrier(j))
		return -1;
	probe_start(&pr);
	if (j->k->batch)
		rc = produce_batch(j, c, buf, &j->res->msgs);
	else
		rc = produce_single(j, c, buf, &j->res->msgs);
	probe_stop(&pr, &j->res->u);
	if (rc)
		return rc;
	/* The last producer out sends the first stop: every data message
	 * of every producer is queued before it. */
	if (__atomic_sub_fetch(&sh->producers_left, 1, __ATOMIC_SEQ_CST) == 0 &&
	    send_stop(c, buf))
		return job_fail(j, c->why);
	c->x->leave(c);
	return 0;
}

/* 1 on a stop, 0 to go on, -1 on an error. */
static int consume_some(struct job *j, struct chan *c, struct checker *ck,
			uint8_t *buf, struct iovec *v)
{
	unsigned got = 1;
	int stopped = 0;

	if (j->k->batch) {
		if (c->x->recvv(c, buf, v, j->k->batch, &got))
			return job_fail(j, c->why);
	} else {
		v[0].iov_base = buf;
		if (c->x->recv(c, buf, &v[0].iov_len))
			return job_fail(j, c->why);
	}
	for (unsigned i = 0; i < got; i++) {
		int r = check_msg(ck, v[i].iov_base, v[i].iov_len);
		if (r < 0 || (r > 0 && stopped))
			return job_fail(j, r < 0 ? ck->err
					       : "message after the stop");
		if (r == 0)
			stopped = 1;
	}
	j->res->msgs += got - (unsigned)stopped;
	j->res->calls++;
	return stopped;
}

static int consumer(struct job *j)
{
	struct chan *c = &j->ch[0];
	unsigned b = j->k->batch ? j->k->batch : 1;
	uint8_t *buf = msg_buffer(batch_stride(c->size), b);
	struct iovec v[MAX_BATCH];
	struct checker ck = {
		.size = c->size, .producers = j->k->producers,
		.exact = j->k->consumers == 1, .err = j->res->err,
		.err_size = sizeof(j->res->err),
	};
	struct probe pr;
	int r;

	if (buf == NULL)
		return job_setup_failed(j, "out of memory");
	if (c->x->open(c, RX))
		return job_setup_failed(j, c->why);
	probe_open(&pr, j->syscalls);
	if (job_barrier(j))
		return -1;
	probe_start(&pr);
	while ((r = consume_some(j, c, &ck, buf, v)) == 0)
		;
	j->res->t_stop = now_ns();
	probe_stop(&pr, &j->res->u);
	if (r < 0)
		return -1;
	j->res->t = ck.t;
	c->x->leave(c);
	return 0;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* One round trip: ping on ch[0], the same bytes back on ch[1]. */
static int round_trip(struct job *j, uint8_t *buf, uint64_t seq,
		      uint64_t *rtt)
{
	struct msg_hdr h;
	size_t len;
	uint64_t t1 = now_ns();

	msg_stamp(buf, j->k->size, 0, seq);
	if (j->ch[0].x->send(&j->ch[0], buf))
		return job_fail(j, j->ch[0].why);
	if (j->ch[1].x->recv(&j->ch[1], buf, &len))
		return job_fail(j, j->ch[1].why);
	*rtt = now_ns() - t1;
	memcpy(&h, buf, sizeof(h));
	if (len != j->k->size || h.seq != seq || h.producer != 0 ||
	    h.tag != msg_tag(seq, 0))
		return job_fail(j, "ping-pong: wrong reply");
	return 0;
}

static int pp_client(struct job *j)
{
	uint8_t *buf = msg_buffer(j->k->size, 1);
	uint64_t *rtt = calloc(opt.pp_count, sizeof(*rtt));
	uint64_t n = (uint64_t)opt.pp_warm + opt.pp_count, t;
	struct probe pr;

	if (buf == NULL || rtt == NULL)
		return job_setup_failed(j, "out of memory");
	if (j->ch[0].x->open(&j->ch[0], TX) || j->ch[1].x->open(&j->ch[1], RX))
		return job_setup_failed(j, j->ch[0].why[0] ? j->ch[0].why
							   : j->ch[1].why);
	probe_open(&pr, j->syscalls);
	if (job_barrier(j))
		return -1;
	probe_start(&pr);
	for (uint64_t i = 0; i < n; i++) {
		if (round_trip(j, buf, i, &t))
			return -1;
		if (i >= opt.pp_warm)
			rtt[i - opt.pp_warm] = t;
	}
	probe_stop(&pr, &j->res->u);
	if (send_stop(&j->ch[0], buf))
		return job_fail(j, j->ch[0].why);
	qsort(rtt, opt.pp_count, sizeof(*rtt), cmp_u64);
	j->res->rtt_med = rtt[opt.pp_count / 2];
	j->res->rtt_p99 = rtt[(size_t)opt.pp_count * 99 / 100];
	j->res->msgs = n;       /* the usage window holds the warm-up too */
	j->ch[0].x->leave(&j->ch[0]);
	j->ch[1].x->leave(&j->ch[1]);
	return 0;
}

static int pp_server(struct job *j)
{
	uint8_t *buf = msg_buffer(j->k->size, 1);
	struct probe pr;
	struct msg_hdr h;
	size_t len;

	if (buf == NULL)
		return job_setup_failed(j, "out of memory");
	if (j->ch[0].x->open(&j->ch[0], RX) || j->ch[1].x->open(&j->ch[1], TX))
		return job_setup_failed(j, j->ch[0].why[0] ? j->ch[0].why
							   : j->ch[1].why);
	probe_open(&pr, j->syscalls);
	if (job_barrier(j))
		return -1;
	probe_start(&pr);
	for (;;) {
		if (j->ch[0].x->recv(&j->ch[0], buf, &len))
			return job_fail(j, j->ch[0].why);
		memcpy(&h, buf, sizeof(h));
		if (len != j->k->size)
			return job_fail(j, "ping-pong: wrong size");
		if (h.producer == STOP_ID)
			break;
		if (j->ch[1].x->send(&j->ch[1], buf))
			return job_fail(j, j->ch[1].why);
		j->res->msgs++;
	}
	probe_stop(&pr, &j->res->u);
	j->ch[0].x->leave(&j->ch[0]);
	j->ch[1].x->leave(&j->ch[1]);
	return 0;
}

/* ------------------------------------------------------------------ */
/* The parent's side of a run                                          */

/* Clock ticks the --keep-awake spinners have used: not "other load". */
static uint64_t awake_ticks(void)
{
	uint64_t sum = 0;

	for (int i = 0; i < env.nawake; i++) {
		char path[64], buf[512];
		unsigned long ut = 0, st = 0;
		snprintf(path, sizeof(path), "/proc/%d/stat", (int)env.awake[i]);
		FILE *f = fopen(path, "re");
		if (f == NULL)
			continue;
		char *p = fgets(buf, sizeof(buf), f) ? strrchr(buf, ')') : NULL;
		/* Fields 14 and 15, after "pid (comm) state ...". */
		if (p && sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u "
				"%*u %*u %lu %lu", &ut, &st) == 2)
			sum += ut + st;
		fclose(f);
	}
	return sum;
}

/* CPU time the whole machine spent busy (steal included: a hypervisor
 * that runs someone else took it from us), in ns. */
static uint64_t machine_busy_ns(void)
{
	unsigned long long v[8] = { 0 };
	FILE *f = fopen("/proc/stat", "re");
	int n = 0;

	if (f) {
		n = fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu",
			   &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &v[6],
			   &v[7]);
		fclose(f);
	}
	if (n != 8)
		return 0;
	uint64_t busy = v[0] + v[1] + v[2] + v[5] + v[6] + v[7];
	uint64_t spun = awake_ticks();
	busy = busy > spun ? busy - spun : 0;
	return busy * (1000000000u / (uint64_t)sysconf(_SC_CLK_TCK));
}

/* How many CPUs' worth of other work ran during a run: the machine's busy
 * time minus our children's.  Clock ticks make it coarse (10 ms). */
static double other_load(uint64_t busy0, uint64_t t0, const struct sample *s)
{
	uint64_t busy = machine_busy_ns() - busy0, wall = now_ns() - t0;
	double ours = (double)(s->prod.user_ns + s->prod.sys_ns +
			       s->cons.user_ns + s->cons.sys_ns);
	double other = ((double)busy - ours) / (double)wall;

	return busy0 == 0 || wall == 0 ? -1 : other < 0 ? 0 : other;
}

struct run {
	const struct bcase *k;
	struct chan ch[2];
	int nch;
	pid_t pid[MAX_KIDS];
	int consumer[MAX_KIDS];         /* is kid i a consumer */
	struct side_res *res[MAX_KIDS];
	int n, alive, consumers_alive;
	int failed;
	char err[200];
	uint8_t *stop;
};

__attribute__((format(printf, 2, 3)))
static void run_fail(struct run *r, const char *fmt, ...)
{
	va_list ap;

	if (r->failed++)
		return;
	va_start(ap, fmt);
	vsnprintf(r->err, sizeof(r->err), fmt, ap);
	va_end(ap);
}

static void pin_to(int cpu)
{
	cpu_set_t set;

	if (cpu < 0)
		return;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	sched_setaffinity(0, sizeof(set), &set);
}

static pid_t spawn(struct run *r, job_fn fn, struct job *j, int consumer,
		   int parent_fds[2])
{
	pid_t pid = fork();

	if (pid < 0) {
		run_fail(r, "fork: %s", strerror(errno));
		return -1;
	}
	if (pid == 0) {
		child_signals(SIGKILL);
		close(parent_fds[0]);
		close(parent_fds[1]);
		pin_to(j->cpu);
		_exit(fn(j) ? 1 : 0);
	}
	kids_add(pid);
	r->pid[r->n] = pid;
	r->consumer[r->n] = consumer;
	r->res[r->n] = j->res;
	r->n++;
	r->alive++;
	r->consumers_alive += consumer;
	return pid;
}

static void kill_run(struct run *r)
{
	for (int i = 0; i < r->n; i++) {
		if (r->pid[i] <= 0)
			continue;
		kill(r->pid[i], SIGKILL);
		while (waitpid(r->pid[i], NULL, 0) < 0 && errno == EINTR)
			;
		kids_forget(r->pid[i]);
		r->pid[i] = 0;
		r->alive--;
	}
}

static void kid_exited(struct run *r, int i, int status)
{
	kids_forget(r->pid[i]);
	r->pid[i] = 0;
	r->alive--;
	r->consumers_alive -= r->consumer[i];
	if (WIFSIGNALED(status)) {
		run_fail(r, "a %s was killed by signal %d",
			 r->consumer[i] ? "consumer" : "producer",
			 WTERMSIG(status));
		return;
	}
	if (WEXITSTATUS(status) != 0) {
		run_fail(r, "%s", r->res[i]->err[0] ? r->res[i]->err
						    : "a child failed");
		return;
	}
	/* One stop at a time: a batch receive can then never swallow a stop
	 * meant for another consumer. */
	if (r->consumer[i] && r->k->kind == TPUT && r->consumers_alive > 0 &&
	    send_stop(&r->ch[0], r->stop))
		run_fail(r, "sending a stop: %s", r->ch[0].why);
}

/* Collects the children; kills them all on the first failure, on the
 * deadline, or on an interrupt. */
static void reap(struct run *r, uint64_t deadline)
{
	while (r->alive > 0) {
		int reaped = 0, status;

		for (int i = 0; i < r->n; i++)
			if (r->pid[i] > 0 &&
			    waitpid(r->pid[i], &status, WNOHANG) == r->pid[i]) {
				kid_exited(r, i, status);
				reaped = 1;
			}
		if (interrupted)
			run_fail(r, "interrupted");
		else if (!reaped && r->alive && now_ns() >= deadline)
			run_fail(r, "timed out");
		if (r->failed) {
			kill_run(r);
			break;
		}
		if (reaped || r->alive == 0)
			continue;
		uint64_t left = deadline - now_ns();
		if (left > 1000000000u)
			left = 1000000000u;
		struct timespec ts = { 0, (long)left };
		if (left == 1000000000u)
			ts = (struct timespec){ 1, 0 };
		sigtimedwait(&env.chld, NULL, &ts);
	}
}

/* Waits for every child's ready byte ('x' if it failed to set up). */
static int await_ready(struct run *r, int fd)
{
	uint64_t end = now_ns() + SETUP_S * 1000000000ull;
	int need = r->n;

	while (need > 0 && !r->failed) {
		struct pollfd p = { fd, POLLIN, 0 };
		uint64_t now = now_ns();
		char buf[MAX_KIDS];
		if (interrupted || now >= end) {
			run_fail(r, interrupted ? "interrupted"
						: "children not ready in time");
			break;
		}
		int rc = poll(&p, 1, (int)((end - now) / 1000000) + 1);
		if (rc <= 0)
			continue;
		ssize_t n = read(fd, buf, (size_t)need);
		if (n <= 0) {
			run_fail(r, "a child died while setting up");
			break;
		}
		for (ssize_t i = 0; i < n; i++)
			if (buf[i] != 'r')
				for (int k = 0; k < r->n; k++)
					if (r->res[k]->err[0])
						run_fail(r, "%s", r->res[k]->err);
		need -= (int)n;
	}
	return r->failed ? -1 : 0;
}

static int chan_create(struct chan *c, int t, const struct bcase *k)
{
	memset(c, 0, sizeof(*c));
	c->x = xports[t];
	c->size = k->size;
	c->capacity = case_capacity(t, k->size);
	c->batch = k->batch ? k->batch : 1;
	c->timeout_ms = SHMQ_FOREVER;
	c->fd[0] = c->fd[1] = -1;
	return c->x->create(c);
}

static void spawn_all(struct run *r, struct job *jobs, int syscalls,
		      int barrier[2][2])
{
	const struct bcase *k = r->k;
	int pin = opt.pin && k->producers == 1 && k->consumers == 1 &&
		  sysconf(_SC_NPROCESSORS_ONLN) >= 2;
	int parent_fds[2] = { barrier[0][0], barrier[1][1] };
	unsigned np = k->kind == PING ? 1 : k->producers;
	unsigned nc = k->kind == PING ? 1 : k->consumers;

	for (unsigned i = 0; i < np + nc && !r->failed; i++) {
		struct job *j = &jobs[i];
		int cons = i >= np;
		*j = (struct job){
			.k = k, .ch = r->ch, .index = cons ? i - np : i,
			.ready_fd = barrier[0][1], .go_fd = barrier[1][0],
			.syscalls = syscalls, .cpu = pin ? cons : -1,
			.res = cons ? &sh->cons[i - np] : &sh->prod[i],
		};
		job_fn fn = k->kind == PING ? (cons ? pp_server : pp_client)
					    : (cons ? consumer : producer);
		spawn(r, fn, j, cons, parent_fds);
	}
}

static uint64_t sum_to(uint64_t n)
{
	return n % 2 ? n * ((n - 1) / 2) : (n / 2) * (n - 1);
}

static uint64_t sum_sq_to(uint64_t n)
{
	unsigned __int128 v = (unsigned __int128)n * (n ? n - 1 : 0);

	return n ? (uint64_t)(v * (2 * n - 1) / 6) : 0;
}

/* Every producer's 0..sent-1 arrived exactly once: the counts, sums and
 * sums of squares of what the consumers saw must say so. */
static void verify(struct run *r, struct sample *s)
{
	const struct bcase *k = r->k;
	uint64_t total = 0, t_end = UINT64_MAX;

	for (unsigned p = 0; p < k->producers; p++) {
		uint64_t sent = sh->prod[p].msgs, cnt = 0, sum = 0, sq = 0;
		for (unsigned c = 0; c < k->consumers; c++) {
			cnt += sh->cons[c].t.cnt[p];
			sum += sh->cons[c].t.sum[p];
			sq += sh->cons[c].t.sq[p];
		}
		if (cnt != sent || sum != sum_to(sent) || sq != sum_sq_to(sent))
			run_fail(r, "producer %u sent %" PRIu64 " messages, "
				 "%" PRIu64 " arrived (or not each once)",
				 p, sent, cnt);
		total += sent;
		usage_add(&s->prod, &sh->prod[p].u);
	}
	for (unsigned c = 0; c < k->consumers; c++) {
		if (sh->cons[c].t_stop && sh->cons[c].t_stop < t_end)
			t_end = sh->cons[c].t_stop;
		s->calls += sh->cons[c].calls;
		usage_add(&s->cons, &sh->cons[c].u);
	}
	if (r->failed || t_end <= sh->t0 || total == 0) {
		run_fail(r, "no messages");
		return;
	}
	/* The first stop is taken once every data message has been. */
	s->value = (double)total * NS / (double)(t_end - sh->t0);
	s->msgs = total;
}

static void run_sample(struct run *r, struct sample *s)
{
	memset(s, 0, sizeof(*s));
	if (r->k->kind == PING) {
		s->value = (double)sh->prod[0].rtt_med;
		s->p99 = (double)sh->prod[0].rtt_p99;
		s->msgs = sh->prod[0].msgs;
		s->prod = sh->prod[0].u;
		s->cons = sh->cons[0].u;
	} else {
		verify(r, s);
	}
	s->ok = !r->failed;
	if (r->failed)
		snprintf(s->err, sizeof(s->err), "%s", r->err);
}

/* Waits (up to a second) for a 50 ms window in which other processes
 * kept less than a third of a CPU busy: a shared machine has bursts of
 * load (a compile, a test) that a run need not land in. */
static void settle(void)
{
	uint64_t give_up = now_ns() + 1000000000u;

	if (opt.quick)
		return;
	do {
		uint64_t b0 = machine_busy_ns(), t0 = now_ns();
		sleep_ns(50000000);
		double busy = (double)(machine_busy_ns() - b0) /
			      (double)(now_ns() - t0);
		if (busy < 0.34 || b0 == 0)
			return;
	} while (now_ns() < give_up && !interrupted);
}

static void run_once(const struct bcase *k, int t, int syscalls,
		     struct sample *s)
{
	struct run r = { .k = k, .nch = k->kind == PING ? 2 : 1 };
	struct job jobs[MAX_KIDS];
	int barrier[2][2] = { { -1, -1 }, { -1, -1 } };  /* ready, go */
	uint64_t busy0 = 0, t0 = 0;
	int made = 0;

	settle();
	memset(sh, 0, sizeof(*sh));
	sh->producers_left = k->producers;
	r.stop = msg_buffer(k->size, 1);
	for (; made < r.nch; made++)
		if (chan_create(&r.ch[made], t, k)) {
			run_fail(&r, "%s", r.ch[made].why);
			goto out;
		}
	if (r.stop == NULL || pipe(barrier[0]) < 0 || pipe(barrier[1]) < 0) {
		run_fail(&r, "setup: %s", strerror(errno));
		goto out;
	}
	spawn_all(&r, jobs, syscalls, barrier);
	close(barrier[0][1]);
	close(barrier[1][0]);
	barrier[0][1] = barrier[1][0] = -1;
	for (int i = 0; i < r.nch; i++)
		r.ch[i].timeout_ms = 5000;
	if (r.failed || await_ready(&r, barrier[0][0])) {
		kill_run(&r);
		goto out;
	}
	busy0 = machine_busy_ns();
	t0 = now_ns();
	sh->t0 = t0;
	__atomic_store_n(&sh->deadline, t0 + (uint64_t)(opt.seconds * NS),
			 __ATOMIC_RELEASE);
	close(barrier[1][1]);           /* go */
	barrier[1][1] = -1;
	reap(&r, t0 + (uint64_t)((opt.seconds + RUN_SLACK_S) * NS));
out:
	run_sample(&r, s);
	s->other = t0 ? other_load(busy0, t0, s) : -1;
	for (int i = 0; i < 2; i++)
		for (int e = 0; e < 2; e++)
			if (barrier[i][e] >= 0)
				close(barrier[i][e]);
	while (made-- > 0)
		r.ch[made].x->destroy(&r.ch[made]);
	free(r.stop);
}

/* ------------------------------------------------------------------ */
/* Running the cases                                                  */

static double median(const double *v, int n)
{
	double s[MAX_RUNS];

	if (n == 0)
		return 0;
	memcpy(s, v, (size_t)n * sizeof(*v));
	for (int i = 1; i < n; i++)             /* n is small */
		for (int j = i; j > 0 && s[j - 1] > s[j]; j--) {
			double x = s[j];
			s[j] = s[j - 1];
			s[j - 1] = x;
		}
	return n % 2 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
}

static void min_max(const double *v, int n, double *lo, double *hi)
{
	*lo = *hi = n ? v[0] : 0;
	for (int i = 1; i < n; i++) {
		if (v[i] < *lo)
			*lo = v[i];
		if (v[i] > *hi)
			*hi = v[i];
	}
}

static int applicable(const struct bcase *k, int t, struct agg *a)
{
	unsigned mc = mq_cap(k->size);

	if (opt.transports &&
	    !(opt.transports &
	      (1u << (t == T_SHMQ_SMALL || t == T_SHMQ_ZC ? T_SHMQ
			 : t == T_PIPE_BIG		   ? T_PIPE
							   : t))))
		return 0;
	if (t == T_PIPE_BIG)
		return k->kind == TPUT && k->producers == 1 && !k->batch &&
		       k->size >= 65536;
	/* Zero copy only matters where copying costs: large messages. */
	if (t == T_SHMQ_ZC)
		return k->kind == TPUT && k->producers == 1 && !k->batch &&
		       k->size >= 65536;
	if (t == T_SHMQ_SMALL)
		return k->kind == TPUT && k->producers == 1 && mc > 0 &&
		       mc < SHMQ_CAP;
	if (t == T_MQ && mc == 0) {
		snprintf(a->note, sizeof(a->note), "not run: no POSIX queue "
			 "of %zu-byte messages allowed (msgsize_max %ld)",
			 k->size, mqlim.msgsize_max);
		return 0;
	}
	return 1;
}

static void agg_add(struct agg *a, const struct sample *s)
{
	a->ran++;
	if (!s->ok) {
		if (!a->failed++)
			snprintf(a->note, sizeof(a->note), "%s", s->err);
		return;
	}
	a->v[a->n] = s->value;
	a->p99[a->n] = s->p99;
	a->other[a->n] = s->other;
	a->n++;
	a->msgs += s->msgs;
	a->calls += s->calls;
	usage_add(&a->prod, &s->prod);
	usage_add(&a->cons, &s->cons);
}

static void case_progress(int ci)
{
	const struct bcase *k = &cases[ci];

	progress("%s:", k->label);
	for (int t = 0; t < NT; t++) {
		struct agg *a = &results[ci][t];
		if (!a->ran)
			continue;
		double m = median(a->v, a->n);
		if (a->failed)
			progress("  %s FAILED", xports[t]->name);
		else if (k->kind == PING)
			progress("  %s%s %.2f µs", xports[t]->name,
				 t == T_SHMQ_SMALL ? "(small)" : "", m / 1000);
		else
			progress("  %s%s %.3g/s", xports[t]->name,
				 t == T_SHMQ_SMALL ? "(small)" : "", m);
	}
	double other[NT * MAX_RUNS];
	int n = 0;
	for (int t = 0; t < NT; t++)
		for (int i = 0; i < results[ci][t].n; i++)
			other[n++] = results[ci][t].other[i];
	progress("  [other load %.2f CPUs]\n",
		 median(other, n < MAX_RUNS ? n : MAX_RUNS));
}

/* Runs are interleaved (run 1 of every transport, then run 2...) and the
 * order rotates, so that a burst of load from elsewhere on the machine
 * does not land on one transport only. */
static void run_case(int ci)
{
	const struct bcase *k = &cases[ci];
	int ts[NT], nt = 0;

	for (int t = 0; t < NT; t++) {
		struct agg *a = &results[ci][t];
		a->capacity = case_capacity(t, k->size);
		if (applicable(k, t, a))
			ts[nt++] = t;
	}
	for (int run = 0; run < opt.runs && !interrupted; run++)
		for (int i = 0; i < nt && !interrupted; i++) {
			int t = ts[(i + run) % nt];
			struct sample s;
			run_once(k, t, 0, &s);
			if (interrupted)
				break;  /* a killed run is no result */
			agg_add(&results[ci][t], &s);
		}
	case_progress(ci);
}

/* ------------------------------------------------------------------ */
/* System calls per message                                            */

static struct {
	int ran, ok;
	char err[200];
	double pair_ns, pair_sys;       /* put+get, one process */
	double batch_ns, batch_sys;     /* per message, putv+getv of 64 */
	uint64_t n;                     /* messages in each loop */
	struct sample xs[2];            /* shmq, pipe: separate processes */
	struct sample ping[2];          /* shmq, pipe: ping-pong */
} sys_res;

static int steady_loop(shmq_t *q, uint64_t n, unsigned b, double *ns,
		       double *sys)
{
	uint8_t buf[MAX_BATCH * 16], in[MAX_BATCH * 16];
	struct iovec v[MAX_BATCH], o[MAX_BATCH];
	struct probe pr;
	struct usage u;
	size_t k;
	int rc = SHMQ_OK;

	for (unsigned i = 0; i < b; i++)
		v[i] = (struct iovec){ buf + 16 * i, 16 };
	probe_open(&pr, 1);
	probe_start(&pr);
	uint64_t t1 = now_ns();
	for (uint64_t i = 0; i < n && rc == SHMQ_OK; i += b) {
		msg_stamp(buf, 16, 0, i);
		if (b == 1) {
			rc = shmq_put(q, buf, 16, SHMQ_FOREVER);
			if (rc == SHMQ_OK)
				rc = shmq_get(q, in, sizeof(in), &k,
					      SHMQ_FOREVER);
		} else {
			rc = shmq_putv(q, v, b, &k, SHMQ_FOREVER);
			/* A getv may return fewer than are queued: take
			 * until the queue is back to half full. */
			for (unsigned got = 0; rc == SHMQ_OK && got < b;
			     got += (unsigned)k)
				rc = shmq_getv(q, in, sizeof(in), o, b - got,
					       &k, SHMQ_FOREVER);
		}
	}
	uint64_t t2 = now_ns();
	probe_stop(&pr, &u);
	*ns = (double)(t2 - t1) / (double)n;
	*sys = u.syscalls == UINT64_MAX ? -1 : (double)u.syscalls / (double)n;
	return rc;
}

/*
 * The contract: no system call while the queue is neither full nor empty.
 * Between processes a queue keeps running full or empty, so the strict
 * check is made in one process that keeps it half full (a put, then a get,
 * never waiting); the cross-process runs then show what a real 1->1 costs.
 */
static void syscalls_test(void)
{
	struct shmq_attr a;
	shmq_t *q = NULL;
	uint8_t m[16];
	uint64_t n = opt.quick ? 100000 : 2000000;
	int rc;

	sys_res.ran = 1;
	sys_res.n = n;
	shmq_attr_init(&a);
	a.capacity = SHMQ_CAP;
	a.max_msg = 16;
	rc = shmq_create("bench.steady", &a, 0);
	if (rc == SHMQ_OK)
		rc = shmq_open("bench.steady", SHMQ_PRODUCER | SHMQ_CONSUMER,
			       &q);
	for (unsigned i = 0; rc == SHMQ_OK && i < SHMQ_CAP / 2; i++) {
		msg_stamp(m, sizeof(m), 0, i);
		rc = shmq_put(q, m, sizeof(m), SHMQ_NOWAIT);
	}
	if (rc == SHMQ_OK)
		rc = steady_loop(q, n, 1, &sys_res.pair_ns, &sys_res.pair_sys);
	if (rc == SHMQ_OK)
		rc = steady_loop(q, n, 64, &sys_res.batch_ns,
				 &sys_res.batch_sys);
	if (rc != SHMQ_OK)
		snprintf(sys_res.err, sizeof(sys_res.err), "%s",
			 shmq_strerror(rc));
	sys_res.ok = rc == SHMQ_OK;
	shmq_detach(q);
	shmq_delete("bench.steady");

	run_once(&cases[C_16S], T_SHMQ, 1, &sys_res.xs[0]);
	run_once(&cases[C_16S], T_PIPE, 1, &sys_res.xs[1]);
	run_once(&cases[C_PING], T_SHMQ, 1, &sys_res.ping[0]);
	run_once(&cases[C_PING], T_PIPE, 1, &sys_res.ping[1]);
	progress("%-24s  one process: %.1f ns per put+get, %.3g syscalls; "
		 "separate processes: %s\n", "syscalls per message",
		 sys_res.pair_ns, sys_res.pair_sys,
		 sys_res.xs[0].ok ? "ok" : sys_res.xs[0].err);
}

/* ------------------------------------------------------------------ */
/* A waiter blocked longer than the spin window                        */

struct waiter_res {
	int ok;
	char err[200];
	double wall_ns, cpu_ns;
	uint32_t blocked;       /* what shmq_stat saw while it waited */
};

static struct waiter_res waiter[2];     /* get, put */

static int waiter_child(const char *name, int put, int ready)
{
	struct side_res *res = &sh->cons[0];
	uint8_t buf[64] = { 0 };
	shmq_t *q;
	size_t len;
	char c = 'r';
	int rc = shmq_open(name, put ? SHMQ_PRODUCER : SHMQ_CONSUMER, &q);

	if (rc != SHMQ_OK) {
		snprintf(res->err, sizeof(res->err), "%s", shmq_strerror(rc));
		c = 'x';
	}
	if (write(ready, &c, 1) != 1 || c == 'x')
		return -1;
	uint64_t c0 = cpu_ns(), w0 = now_ns();
	rc = put ? shmq_put(q, buf, sizeof(buf), SHMQ_FOREVER)
		 : shmq_get(q, buf, sizeof(buf), &len, SHMQ_FOREVER);
	res->u.user_ns = cpu_ns() - c0;
	res->msgs = now_ns() - w0;
	if (rc != SHMQ_OK) {
		snprintf(res->err, sizeof(res->err), "%s", shmq_strerror(rc));
		return -1;
	}
	shmq_detach(q);
	return 0;
}

/* The parent wakes the waiter after opt.wait_s: a get by a put, a put
 * (on a full queue of capacity 1) by a get. */
static int waiter_wake(shmq_t *q, int put, struct waiter_res *w)
{
	uint8_t buf[64] = { 0 };
	struct shmq_stat st;
	size_t len;

	sleep_ns((uint64_t)(opt.wait_s * NS));
	if (shmq_stat(q, &st) == SHMQ_OK)
		w->blocked = put ? st.put_blocked : st.get_blocked;
	int rc = put ? shmq_get(q, buf, sizeof(buf), &len, 1000)
		     : shmq_put(q, buf, sizeof(buf), 1000);
	if (rc != SHMQ_OK)
		snprintf(w->err, sizeof(w->err), "waking: %s",
			 shmq_strerror(rc));
	return rc == SHMQ_OK ? 0 : -1;
}

static void waiter_test(int put, struct waiter_res *w)
{
	const char *name = put ? "bench.wait.put" : "bench.wait.get";
	struct shmq_attr a;
	shmq_t *q = NULL;
	uint8_t m[64] = { 0 };
	int ready[2], status = 0;
	char c = 0;
	pid_t pid = -1;

	memset(sh, 0, sizeof(*sh));
	shmq_attr_init(&a);
	a.capacity = put ? 1 : 4;
	a.max_msg = sizeof(m);
	int rc = shmq_create(name, &a, 0);
	if (rc == SHMQ_OK)
		rc = shmq_open(name, SHMQ_PRODUCER | SHMQ_CONSUMER, &q);
	if (rc == SHMQ_OK && put)
		rc = shmq_put(q, m, sizeof(m), SHMQ_NOWAIT);    /* full */
	if (rc != SHMQ_OK || pipe(ready) < 0) {
		snprintf(w->err, sizeof(w->err), "setup: %s",
			 shmq_strerror(rc));
		goto out;
	}
	pid = fork();
	if (pid == 0) {
		child_signals(SIGKILL);
		close(ready[0]);
		_exit(waiter_child(name, put, ready[1]) ? 1 : 0);
	}
	kids_add(pid);
	close(ready[1]);
	if (pid < 0 || read(ready[0], &c, 1) != 1 || c != 'r')
		snprintf(w->err, sizeof(w->err), "waiter: %.180s",
			 sh->cons[0].err[0] ? sh->cons[0].err : "failed");
	else
		waiter_wake(q, put, w);
	close(ready[0]);
	if (pid > 0) {
		if (w->err[0])
			kill(pid, SIGKILL);
		while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
			;
		kids_forget(pid);
	}
	if (!w->err[0] && (!WIFEXITED(status) || WEXITSTATUS(status)))
		snprintf(w->err, sizeof(w->err), "waiter: %.180s",
			 sh->cons[0].err[0] ? sh->cons[0].err : "failed");
	w->ok = !w->err[0];
	w->wall_ns = (double)sh->cons[0].msgs;
	w->cpu_ns = (double)sh->cons[0].u.user_ns;
out:
	shmq_detach(q);
	shmq_delete(name);
	progress("%-24s  %.3f ms CPU in %.2f s %s\n",
		 put ? "waiter blocked in put" : "waiter blocked in get",
		 w->cpu_ns / 1e6, w->wall_ns / NS, w->ok ? "" : w->err);
}

/* ------------------------------------------------------------------ */
/* Control plane                                                       */

struct rss {
	long rss, anon, shmem;  /* kB; -1 unknown */
};

static struct {
	int ran;
	char err[200];
	double open_rate[MAX_RUNS];
	int n_open;
	unsigned clients_held;
	int clients_served;     /* open+detach still works while held */
	unsigned queues_made, queues_listed;
	double create_rate, delete_rate;
	struct rss fresh, with_clients, with_queues, after;
} ctl;

static struct rss daemon_rss(void)
{
	struct rss r = { -1, -1, -1 };
	char path[64], line[256];
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)env.daemon);
	if ((f = fopen(path, "re")) == NULL)
		return r;
	while (fgets(line, sizeof(line), f)) {
		sscanf(line, "VmRSS: %ld", &r.rss);
		sscanf(line, "RssAnon: %ld", &r.anon);
		sscanf(line, "RssShmem: %ld", &r.shmem);
	}
	fclose(f);
	return r;
}

static double open_detach_rate(const char *name)
{
	uint64_t n = 0, t0 = now_ns(), end = t0 + (uint64_t)(opt.seconds * NS);
	shmq_t *q;
	int rc;

	do {
		rc = shmq_open(name, SHMQ_PRODUCER, &q);
		if (rc != SHMQ_OK) {
			snprintf(ctl.err, sizeof(ctl.err), "open: %s (%s)",
				 shmq_strerror(rc), shmq_error_detail());
			return 0;
		}
		shmq_detach(q);
		n++;
	} while (now_ns() < end && !interrupted);
	return (double)n * NS / (double)(now_ns() - t0);
}

static int open_detach_once(const char *name)
{
	shmq_t *q;

	if (shmq_open(name, SHMQ_PRODUCER, &q) != SHMQ_OK)
		return 0;
	return shmq_detach(q) == SHMQ_OK;
}

static void hold_clients(int *fds)
{
	for (unsigned i = 0; i < opt.clients && !interrupted; i++) {
		fds[i] = connect_sock(env.sock);
		if (fds[i] < 0 || hello(fds[i], i + 2) < 0) {
			snprintf(ctl.err, sizeof(ctl.err), "client %u: %s", i,
				 fds[i] < 0 ? strerror(errno)
					    : "no HELLO reply");
			break;
		}
		ctl.clients_held++;
	}
}

static void make_queues(void)
{
	struct shmq_attr a;
	struct shmq_stat *list;
	char name[64];
	size_t n;
	uint64_t t0 = now_ns();

	shmq_attr_init(&a);
	a.capacity = 1;
	a.max_msg = 16;
	for (unsigned i = 0; i < opt.queues && !interrupted; i++) {
		snprintf(name, sizeof(name), "bench.many.%05u", i);
		int rc = shmq_create(name, &a, 0);
		if (rc != SHMQ_OK) {
			snprintf(ctl.err, sizeof(ctl.err), "queue %u: %s (%s)",
				 i, shmq_strerror(rc), shmq_error_detail());
			break;
		}
		ctl.queues_made++;
	}
	ctl.create_rate = ctl.queues_made * NS / (double)(now_ns() - t0);
	if (shmq_list(&list, &n) == SHMQ_OK) {
		for (size_t i = 0; i < n; i++)
			ctl.queues_listed += !strncmp(list[i].name,
						      "bench.many.", 11);
		free(list);
	}
}

static void delete_queues(void)
{
	char name[64];
	uint64_t t0 = now_ns();

	for (unsigned i = 0; i < ctl.queues_made; i++) {
		snprintf(name, sizeof(name), "bench.many.%05u", i);
		shmq_delete(name);
	}
	ctl.delete_rate = ctl.queues_made * NS / (double)(now_ns() - t0);
}

static void control_test(void)
{
	const char *name = "bench.ctl";
	int *fds = malloc(opt.clients * sizeof(*fds));
	struct shmq_attr a;

	ctl.ran = 1;
	shmq_attr_init(&a);
	a.capacity = 64;
	a.max_msg = 64;
	if (fds == NULL || shmq_create(name, &a, 0) != SHMQ_OK) {
		snprintf(ctl.err, sizeof(ctl.err), "setup failed");
		free(fds);
		return;
	}
	for (int r = 0; r < opt.runs && !interrupted && !ctl.err[0]; r++)
		ctl.open_rate[ctl.n_open++] = open_detach_rate(name);
	for (unsigned i = 0; i < opt.clients; i++)
		fds[i] = -1;
	hold_clients(fds);
	ctl.clients_served = open_detach_once(name);
	ctl.with_clients = daemon_rss();
	make_queues();
	sleep_ns(200000000);            /* idle: nothing in flight */
	ctl.with_queues = daemon_rss();
	delete_queues();
	for (unsigned i = 0; i < opt.clients; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	free(fds);
	shmq_delete(name);
	sleep_ns(200000000);
	ctl.after = daemon_rss();
	progress("%-24s  %.0f open+detach/s; %u clients, %u queues held; "
		 "RSS %ld kB fresh, %ld kB loaded %s\n", "control plane",
		 median(ctl.open_rate, ctl.n_open), ctl.clients_held,
		 ctl.queues_listed, ctl.fresh.rss, ctl.with_queues.rss,
		 ctl.err);
}

/* ------------------------------------------------------------------ */
/* The machine                                                        */

static struct {
	char cpu[128], kernel[256], date[64], load0[64], load1[64];
	long cores;
	int pipe_buf, sock_snd, sock_rcv;
	double memcpy_hot, memcpy_cold;         /* GB/s */
	double pause_ns;                        /* one spin-loop pause */
	double wake_med, wake_p90;              /* ns; 0 if not measured */
	double line_ns;                         /* one cache-line transfer */
	char idle[160];                         /* cpuidle driver, polling */
	char rev[128];                          /* source revision */
} facts;

static void read_line(const char *path, const char *key, char *buf,
		      size_t size)
{
	FILE *f = fopen(path, "re");
	char line[256];

	snprintf(buf, size, "?");
	if (f == NULL)
		return;
	while (fgets(line, sizeof(line), f)) {
		if (key && strncmp(line, key, strlen(key)) != 0)
			continue;
		char *v = key ? strchr(line, ':') : line;
		if (v == NULL)
			continue;
		v += key ? 1 : 0;
		v += strspn(v, " \t");
		v[strcspn(v, "\n")] = '\0';
		snprintf(buf, size, "%s", v);
		break;
	}
	fclose(f);
}

/* How fast this machine copies: the ceiling of any queue that copies a
 * message in and out, shmq included. */
static double memcpy_gbs(size_t size, int reps)
{
	uint8_t *a = malloc(size), *b = malloc(size);
	double gbs = 0;

	if (a && b) {
		memset(a, 1, size);
		memset(b, 2, size);
		uint64_t t0 = now_ns();
		for (int i = 0; i < reps; i++) {
			memcpy(b, a, size);
			__asm__ __volatile__("" : : "r"(b) : "memory");
		}
		gbs = (double)size * reps / (double)(now_ns() - t0);
	}
	free(a);
	free(b);
	return gbs;
}

/* The spin-wait hint, as the ring's cpu_relax(). */
static inline void relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ __volatile__("yield" ::: "memory");
#else
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
#endif
}

/* What one pause instruction costs: it paces every spin-wait loop, and
 * varies from ~10 to ~140 cycles between CPU generations. */
static double pause_cost(void)
{
#if defined(__x86_64__) || defined(__i386__)
	const int n = 1000000;
	uint64_t t0 = now_ns();

	for (int i = 0; i < n; i++)
		__builtin_ia32_pause();
	return (double)(now_ns() - t0) / n;
#else
	return 0;
#endif
}

static void wake_sleeper(int rfd, unsigned n)
{
	uint64_t *lat = calloc(n, sizeof(*lat)), t;

	pin_to(1);
	for (unsigned i = 0; lat && i < n; i++) {
		if (read(rfd, &t, sizeof(t)) != (ssize_t)sizeof(t))
			_exit(1);
		lat[i] = now_ns() - t;
	}
	if (lat == NULL)
		_exit(1);
	qsort(lat, n, sizeof(*lat), cmp_u64);
	sh->cons[0].rtt_med = lat[n / 2];
	sh->cons[0].rtt_p99 = lat[n * 9 / 10];
	_exit(0);
}

/*
 * How long a process blocked in read() on another CPU takes to run after a
 * write, both CPUs having been idle for 1 ms.  On a VM whose idle vCPUs
 * halt, this is a trip through the hypervisor; it is what every transport
 * that blocks pays per hand-off when the machine is otherwise idle, and why
 * the kernel transports' numbers move with the load of the machine.
 */
static void wake_latency(void)
{
	unsigned n = opt.quick ? 20 : 200;
	cpu_set_t old, cpu0;
	int p[2], status;

	if (facts.cores < 2 || pipe(p) < 0)
		return;
	memset(sh, 0, sizeof(*sh));
	pid_t pid = fork();
	if (pid == 0) {
		child_signals(SIGKILL);
		close(p[1]);
		wake_sleeper(p[0], n);
	}
	close(p[0]);
	if (pid > 0) {
		kids_add(pid);
		sched_getaffinity(0, sizeof(old), &old);
		CPU_ZERO(&cpu0);
		CPU_SET(0, &cpu0);
		sched_setaffinity(0, sizeof(cpu0), &cpu0);
		for (unsigned i = 0; i < n && !interrupted; i++) {
			sleep_ns(1000000);
			uint64_t t = now_ns();
			if (write(p[1], &t, sizeof(t)) != (ssize_t)sizeof(t))
				break;
		}
		sched_setaffinity(0, sizeof(old), &old);
	}
	close(p[1]);
	if (pid > 0 && waitpid(pid, &status, 0) == pid && WIFEXITED(status) &&
	    WEXITSTATUS(status) == 0) {
		facts.wake_med = (double)sh->cons[0].rtt_med;
		facts.wake_p90 = (double)sh->cons[0].rtt_p99;
	}
	kids_forget(pid);
}

/* How long one cache line takes to move between CPU 0 and CPU 1: two
 * processes bounce a counter.  Any message between processes costs a few
 * of these, so they bound what a shared-memory queue can do. */
static void line_transfer(void)
{
	volatile uint64_t *v = (volatile uint64_t *)&sh->t0;
	const uint64_t n = opt.quick ? 20000 : 200000;
	int status;

	if (facts.cores < 2)
		return;
	*v = 0;
	pid_t pid = fork();
	if (pid == 0) {
		child_signals(SIGKILL);
		pin_to(1);
		for (uint64_t i = 1; i < 2 * n; i += 2) {
			while (*v != i)
				relax();
			*v = i + 1;
		}
		_exit(0);
	}
	if (pid < 0)
		return;
	kids_add(pid);
	cpu_set_t old;
	sched_getaffinity(0, sizeof(old), &old);
	pin_to(0);
	uint64_t t0 = now_ns(), spins = 0;
	for (uint64_t i = 0; i < 2 * n && spins < (1u << 28); i += 2) {
		*v = i + 1;
		while (*v != i + 2 && ++spins < (1u << 28))
			relax();
	}
	uint64_t t = now_ns() - t0;
	sched_setaffinity(0, sizeof(old), &old);
	if (spins >= (1u << 28))
		kill(pid, SIGKILL);     /* it is not answering: give up */
	if (waitpid(pid, &status, 0) == pid && WIFEXITED(status) &&
	    WEXITSTATUS(status) == 0)
		facts.line_ns = (double)t / (double)n / 2;
	kids_forget(pid);
}

/* One spinner per CPU at SCHED_IDLE: it runs only when nothing else
 * wants the CPU, and keeps the CPU from halting. */
static void awake_start(void)
{
	struct sched_param sp = { 0 };

	for (long c = 0; c < facts.cores && env.nawake < 64; c++) {
		pid_t pid = fork();
		if (pid == 0) {
			child_signals(SIGKILL);
			pin_to((int)c);
			if (sched_setscheduler(0, SCHED_IDLE, &sp) < 0)
				_exit(1);
			for (;;)
				relax();
		}
		if (pid > 0)
			env.awake[env.nawake++] = pid;
	}
}

/* Which revision is measured: the library may be edited between runs. */
static void source_revision(void)
{
	FILE *f = popen("git describe --always --dirty 2>/dev/null && "
			"git status --porcelain -- client proto daemon "
			"2>/dev/null | tr '\\n' ' '", "r");
	char a[64] = "", b[64] = "";

	snprintf(facts.rev, sizeof(facts.rev), "unknown (not a git tree)");
	if (f == NULL)
		return;
	if (fgets(a, sizeof(a), f)) {
		a[strcspn(a, "\n")] = '\0';
		if (fgets(b, sizeof(b), f) == NULL)
			b[0] = '\0';
		char *m = b + strspn(b, " ");
		for (size_t e = strlen(m); e > 0 && m[e - 1] == ' '; e--)
			m[e - 1] = '\0';
		m[strcspn(m, "\n")] = '\0';
		snprintf(facts.rev, sizeof(facts.rev), "%s%s%s", a,
			 *m ? "; modified: " : "", m);
	}
	pclose(f);
}

static void facts_init(void)
{
	struct utsname u;
	time_t now = time(NULL);
	int p[2], s[2];
	socklen_t len = sizeof(int);

	read_line("/proc/cpuinfo", "model name", facts.cpu, sizeof(facts.cpu));
	facts.cores = sysconf(_SC_NPROCESSORS_ONLN);
	if (uname(&u) == 0)
		snprintf(facts.kernel, sizeof(facts.kernel), "%.64s %.64s %.64s",
			 u.sysname, u.release, u.machine);
	strftime(facts.date, sizeof(facts.date), "%Y-%m-%d %H:%M:%S %Z",
		 localtime(&now));
	read_line("/proc/loadavg", NULL, facts.load0, sizeof(facts.load0));
	if (pipe(p) == 0) {
		facts.pipe_buf = fcntl(p[0], F_GETPIPE_SZ);
		close(p[0]);
		close(p[1]);
	}
	if (socketpair(AF_UNIX, SOCK_SEQPACKET, 0, s) == 0) {
		getsockopt(s[0], SOL_SOCKET, SO_SNDBUF, &facts.sock_snd, &len);
		len = sizeof(int);
		getsockopt(s[1], SOL_SOCKET, SO_RCVBUF, &facts.sock_rcv, &len);
		close(s[0]);
		close(s[1]);
	}
	facts.memcpy_hot = memcpy_gbs(65536, opt.quick ? 2000 : 20000);
	facts.memcpy_cold = memcpy_gbs(64u << 20, opt.quick ? 1 : 4);
	facts.pause_ns = pause_cost();
	char drv[64], poll[64];
	read_line("/sys/devices/system/cpu/cpuidle/current_driver", NULL, drv,
		  sizeof(drv));
	read_line("/sys/module/haltpoll/parameters/guest_halt_poll_ns", NULL,
		  poll, sizeof(poll));
	snprintf(facts.idle, sizeof(facts.idle), "%s%s%s", drv,
		 strcmp(poll, "?") ? ", guest_halt_poll_ns = " : "",
		 strcmp(poll, "?") ? poll : "");
	source_revision();
	if (opt.keep_awake)
		awake_start();
	wake_latency();
	line_transfer();
}

/* ------------------------------------------------------------------ */
/* The report                                                         */

static const int row_order[] = { T_SHMQ, T_SHMQ_SMALL, T_SHMQ_ZC, T_PIPE,
				  T_PIPE_BIG, T_SOCK, T_MQ };

static int shown(int ci)
{
	return (cases[ci].section & opt.only) != 0 &&
	       (opt.match == NULL || strstr(cases[ci].label, opt.match));
}

/* "2.05 M (1.98–2.10)": min and max in the median's unit. */
static void fmt_value(char *b, size_t n, double med, double lo, double hi,
		      int rtt)
{
	double div = 1;
	const char *unit = "";

	if (rtt) {
		unit = med >= 1000 ? " µs" : " ns";
		div = med >= 1000 ? 1000 : 1;
	} else if (med >= 1e6) {
		unit = " M/s";
		div = 1e6;
	} else if (med >= 1e3) {
		unit = " k/s";
		div = 1e3;
	} else {
		unit = " /s";
	}
	int prec = med / div < 10 ? 2 : med / div < 100 ? 1 : 0;
	snprintf(b, n, "%.*f%s (%.*f–%.*f)", prec, med / div, unit, prec,
		 lo / div, prec, hi / div);
}

static void transport_label(char *b, size_t n, const struct bcase *k, int t,
			    const struct agg *a)
{
	const char *how = k->batch && t != T_SHMQ && t != T_SHMQ_SMALL &&
				  t != T_SHMQ_ZC
				  ? xports[t]->batch_how : NULL;

	if (t == T_SHMQ_SMALL)
		snprintf(b, n, "shmq, capacity %u (as mq)", a->capacity);
	else if (t == T_SHMQ_ZC && a->capacity < SHMQ_CAP)
		snprintf(b, n, "shmq zero copy (put_reserve/commit, "
			 "get_view/take), capacity %u (as mq)", a->capacity);
	else if (t == T_SHMQ_ZC)
		snprintf(b, n, "shmq zero copy (put_reserve/commit, "
			 "get_view/take)");
	else if (t == T_PIPE_BIG)
		snprintf(b, n, "pipe, %zu KiB buffer (F_SETPIPE_SZ; for "
			 "reference)", pipe_big_size(k->size, a->capacity) >> 10);
	else if (t == T_MQ && a->capacity && a->capacity < SHMQ_CAP)
		snprintf(b, n, "POSIX mq, capacity %u only%s%s", a->capacity,
			 how ? "; batch: " : "", how ? how : "");
	else
		snprintf(b, n, "%s%s%s%s", xports[t]->name, how ? " (" : "",
			 how ? how : "", how ? ")" : "");
}

static double agg_median(int ci, int t, int p99)
{
	const struct agg *a = &results[ci][t];

	if (!a->ran || a->failed || a->n == 0)
		return 0;
	return median(p99 ? a->p99 : a->v, a->n);
}

/* How many times faster shmq is than the peer; 0 if unknown.  POSIX mq
 * is compared with shmq at mq's capacity where that had to be smaller. */
static double ratio(int ci, int t, int p99)
{
	int st = t == T_MQ && results[ci][T_SHMQ_SMALL].ran ? T_SHMQ_SMALL
							    : T_SHMQ;
	double s = agg_median(ci, st, p99), p = agg_median(ci, t, p99);

	if (s <= 0 || p <= 0)
		return 0;
	return cases[ci].kind == PING ? p / s : s / p;
}

static void report_row(int ci, int t, int p99)
{
	const struct bcase *k = &cases[ci];
	const struct agg *a = &results[ci][t];
	char label[256], val[96], mbs[32] = "", rat[32] = "—";
	double lo, hi, med = agg_median(ci, t, p99);

	transport_label(label, sizeof(label), k, t, a);
	if (!a->ran || a->failed) {
		say("| %s%s | %s | %s%s | | |\n", k->label,
		    k->kind == PING ? (p99 ? " — RTT p99" : " — RTT median")
				    : "",
		    label, a->failed ? "**FAILED**: " : "", a->note);
		return;
	}
	min_max(p99 ? a->p99 : a->v, a->n, &lo, &hi);
	fmt_value(val, sizeof(val), med, lo, hi, k->kind == PING);
	if (k->kind == TPUT)
		snprintf(mbs, sizeof(mbs), "%.0f", med * (double)k->size / 1e6);
	if (t != T_SHMQ && t != T_SHMQ_SMALL && t != T_SHMQ_ZC &&
	    ratio(ci, t, p99) > 0)
		snprintf(rat, sizeof(rat), "%.2f×", ratio(ci, t, p99));
	say("| %s%s | %s | %s | %s | %s |\n", k->label,
	    k->kind == PING ? (p99 ? " — RTT p99" : " — RTT median") : "",
	    label, val, mbs, rat);
}

static void report_results(void)
{
	say("## Results\n\n"
	    "Median of %d run%s (min–max). Throughput rows: messages per "
	    "second from the start barrier to the consumers' last message; "
	    "MB/s counts payload (10^6 B). Ping-pong rows: round-trip time "
	    "of one 64 B message. **shmq ÷ peer**: how many times faster "
	    "shmq is (throughput ratio, or the peer's RTT over shmq's).\n\n",
	    opt.runs, opt.runs > 1 ? "s" : "");
	say("| case | transport | msgs/s or RTT: median (min–max) | MB/s | "
	    "shmq ÷ peer |\n|---|---|---|---:|---:|\n");
	for (int ci = 0; ci < NCASES; ci++) {
		if (!shown(ci))
			continue;
		for (int p99 = 0; p99 <= (cases[ci].kind == PING); p99++)
			for (size_t i = 0; i < NT; i++) {
				int t = row_order[i];
				if (results[ci][t].ran || results[ci][t].note[0])
					report_row(ci, t, p99);
			}
	}
	say("\n");
}

static double per_msg(uint64_t v, uint64_t msgs)
{
	return msgs ? (double)v / (double)msgs : 0;
}

static void report_cpu(void)
{
	say("## Where the CPU goes\n\n"
	    "Per message (ping-pong: per round trip), summed over the "
	    "successful runs: user + system CPU of the producer side and of "
	    "the consumer side (getrusage, between the start barrier and "
	    "the end), and context switches of both sides. Two cores: a "
	    "side that is busy all the run spends ~1 s of CPU per second. "
	    "**msgs per receive**: messages a consumer got per receive call "
	    "(getv, read, recvmmsg...). **other load**: CPUs kept busy by "
	    "other processes during the runs (from /proc/stat, minus ours; "
	    "median and min–max): with 2 cores, anything near 1 means a run "
	    "shared its cores with someone else.\n\n"
	    "| case | transport | producer user + sys ns | consumer user + "
	    "sys ns | context switches per 1000 | msgs per receive | other "
	    "load, CPUs |\n|---|---|---:|---:|---:|---:|---:|\n");
	for (int ci = 0; ci < NCASES; ci++) {
		if (!shown(ci))
			continue;
		for (size_t i = 0; i < NT; i++) {
			int t = row_order[i];
			const struct agg *a = &results[ci][t];
			char label[256];
			if (!a->n)
				continue;
			transport_label(label, sizeof(label), &cases[ci], t, a);
			double lo, hi;
			min_max(a->other, a->n, &lo, &hi);
			say("| %s | %s | %.0f + %.0f | %.0f + %.0f | %.1f | "
			    "%.1f | %.2f (%.2f–%.2f) |\n", cases[ci].label,
			    label,
			    per_msg(a->prod.user_ns, a->msgs),
			    per_msg(a->prod.sys_ns, a->msgs),
			    per_msg(a->cons.user_ns, a->msgs),
			    per_msg(a->cons.sys_ns, a->msgs),
			    1000 * per_msg(a->prod.csw + a->cons.csw, a->msgs),
			    cases[ci].kind == PING ? 1.0
						   : per_msg(a->msgs, a->calls),
			    median(a->other, a->n), lo, hi);
		}
	}
	say("\n");
}

static void fmt_sys(char *b, size_t n, uint64_t calls, uint64_t msgs)
{
	if (calls == UINT64_MAX)
		snprintf(b, n, "n/a");
	else
		snprintf(b, n, "%.4f", per_msg(calls, msgs));
}

/* The cross-process runs counted with the probe: 1->1 and ping-pong. */
static void report_sys_xproc(void)
{
	char p[32], c[32];

	say("- Separate processes, 1→1 16 B single, one run of %.2f s (the "
	    "queue runs full or empty at times, so waits are included):\n\n"
	    "| transport | msgs/s | producer syscalls/msg | consumer "
	    "syscalls/msg | context switches/msg |\n|---|---:|---:|---:|---:|\n",
	    opt.seconds);
	for (int i = 0; i < 2; i++) {
		const struct sample *s = &sys_res.xs[i];
		fmt_sys(p, sizeof(p), s->prod.syscalls, s->msgs);
		fmt_sys(c, sizeof(c), s->cons.syscalls, s->msgs);
		if (!s->ok)
			say("| %s | **FAILED**: %s | | | |\n",
			    i ? "pipe" : "shmq", s->err);
		else
			say("| %s | %.3g | %s | %s | %.4f |\n",
			    i ? "pipe" : "shmq", s->value, p, c,
			    per_msg(s->prod.csw + s->cons.csw, s->msgs));
	}
	say("\n- Ping-pong 64 B, one run: a pipe needs a write and a read "
	    "per side and round trip; for shmq, any call is a futex wake or "
	    "sleep (the partner was not caught spinning).\n\n"
	    "| transport | median RTT | client syscalls/RTT | server "
	    "syscalls/RTT | context switches/RTT | client CPU/RTT |\n"
	    "|---|---:|---:|---:|---:|---:|\n");
	for (int i = 0; i < 2; i++) {
		const struct sample *s = &sys_res.ping[i];
		fmt_sys(p, sizeof(p), s->prod.syscalls, s->msgs);
		fmt_sys(c, sizeof(c), s->cons.syscalls, s->msgs);
		if (!s->ok)
			say("| %s | **FAILED**: %s | | | | |\n",
			    i ? "pipe" : "shmq", s->err);
		else
			say("| %s | %.2f µs | %s | %s | %.2f | %.2f µs |\n",
			    i ? "pipe" : "shmq", s->value / 1000, p, c,
			    per_msg(s->prod.csw + s->cons.csw, s->msgs),
			    per_msg(s->prod.user_ns + s->prod.sys_ns,
				    s->msgs) / 1000);
	}
	say("\n");
}

static void report_syscalls(void)
{
	if (!sys_res.ran)
		return;
	say("## System calls per message\n\n"
	    "Counted by the kernel (perf tracepoint raw_syscalls:sys_enter "
	    "on the process itself%s).\n\n", env.perf_id < 0
	    ? " — **not available here**: no tracefs or no permission" : "");
	if (sys_res.ok)
		say("- One process keeping a 16 B queue half full (neither full "
		    "nor empty), %" PRIu64 " × (put, get): **%.0f** system "
		    "calls in all, %.1f ns per put+get; %" PRIu64 " messages "
		    "by putv/getv of 64: **%.0f** system calls, %.1f ns per "
		    "message.\n", sys_res.n, sys_res.pair_sys * sys_res.n,
		    sys_res.pair_ns, sys_res.n,
		    sys_res.batch_sys * sys_res.n, sys_res.batch_ns);
	else
		say("- One process: **FAILED**: %s\n", sys_res.err);
	report_sys_xproc();
}

static void report_waiter(void)
{
	if (!(opt.only & SEC_WAITER))
		return;
	say("## A blocked waiter\n\n"
	    "A process blocked in shmq_get on an empty queue (or shmq_put on "
	    "a full one) for %.1f s, far longer than the spin window; its "
	    "CPU time (CLOCK_PROCESS_CPUTIME_ID) across the call.\n\n"
	    "| waiter | blocked | CPU used | share of the wait | "
	    "shmq_stat: blocked |\n|---|---:|---:|---:|---:|\n", opt.wait_s);
	for (int i = 0; i < 2; i++) {
		const struct waiter_res *w = &waiter[i];
		if (!w->ok) {
			say("| %s | **FAILED**: %s | | | |\n",
			    i ? "put" : "get", w->err);
			continue;
		}
		say("| %s | %.2f s | %.3f ms | %.4f %% | %u |\n",
		    i ? "put (full queue)" : "get (empty queue)",
		    w->wall_ns / NS, w->cpu_ns / 1e6,
		    100 * w->cpu_ns / w->wall_ns, w->blocked);
	}
	say("\n");
}

static void say_rss(const char *what, struct rss r)
{
	say("| shmqd RSS, %s | %ld kB (anon %ld kB, shmem %ld kB) |\n", what,
	    r.rss, r.anon, r.shmem);
}

static void report_control(void)
{
	double lo, hi;

	if (!ctl.ran)
		return;
	min_max(ctl.open_rate, ctl.n_open, &lo, &hi);
	say("## Control plane (shmqd)\n\n| measurement | result |\n|---|---|\n"
	    "| shmq_open + shmq_detach per second, one process | %.0f "
	    "(%.0f–%.0f) |\n", median(ctl.open_rate, ctl.n_open), lo, hi);
	say("| connections held (connect + HELLO each) | %u of %u; daemon "
	    "%s serving |\n", ctl.clients_held, opt.clients,
	    ctl.clients_served ? "still" : "**not**");
	say("| queues (capacity 1, max-msg 16) created, then listed | %u, "
	    "%u (%.0f creates/s, %.0f deletes/s) |\n", ctl.queues_made,
	    ctl.queues_listed, ctl.create_rate, ctl.delete_rate);
	say_rss("fresh, no queues, idle", ctl.fresh);
	say_rss("holding the connections", ctl.with_clients);
	say_rss("holding the connections and the queues, idle",
		ctl.with_queues);
	say_rss("after deleting them and closing the connections", ctl.after);
	if (ctl.err[0])
		say("| error | %s |\n", ctl.err);
	say("\n");
}

/* --- targets ---------------------------------------------------------- */

static void target(const char *what, int known, int pass, const char *fmt,
		   ...) __attribute__((format(printf, 4, 5)));

/* Targets without a measurement (their case was not selected, or failed
 * and said so above) are listed after the table instead of as rows. */
static const char *unmeasured[32];
static unsigned n_unmeasured;

static void target(const char *what, int known, int pass, const char *fmt,
		   ...)
{
	char m[256];
	va_list ap;

	if (!known) {
		if (n_unmeasured < sizeof(unmeasured) / sizeof(unmeasured[0]))
			unmeasured[n_unmeasured++] = what;
		return;
	}
	va_start(ap, fmt);
	vsnprintf(m, sizeof(m), fmt, ap);
	va_end(ap);
	say("| %s | %s | %s |\n", what, m, pass ? "PASS" : "**MISS**");
}

static void target_ratio(const char *what, int ci, int t, double want)
{
	double r = ratio(ci, t, 0);

	target(what, shown(ci) && r > 0, r >= want, "%.2f×", r);
}

/* shmq in case `ci` against the peer's single-message case `cj`. */
static double cross_ratio(int ci, int cj, int t)
{
	double s = agg_median(ci, T_SHMQ, 0), p = agg_median(cj, t, 0);

	return s > 0 && p > 0 ? s / p : 0;
}

/* shmq's row `st` in case `ci` against transport `t`. */
static double row_ratio(int ci, int st, int t)
{
	double s = agg_median(ci, st, 0), p = agg_median(ci, t, 0);

	return s > 0 && p > 0 ? s / p : 0;
}

static void targets_throughput(void)
{
	double r, x;

	target_ratio("1→1 16 B single ≥ 5× pipe", C_16S, T_PIPE, 5);
	target_ratio("1→1 256 B single ≥ 3× pipe", C_256S, T_PIPE, 3);
	r = ratio(C_16B, T_PIPE, 0);
	x = cross_ratio(C_16B, C_16S, T_PIPE);
	target("1→1 16 B batch calls ≥ 15× pipe", shown(C_16B) && x > 0,
	       x >= 15, "%.2f× (a pipe that batches too: %.2f×)", x, r);
	/* shmq's zero-copy calls count as shmq: the best of its rows. */
	r = ratio(C_64KS, T_PIPE, 0);
	double rs = row_ratio(C_64KS, T_SHMQ_SMALL, T_PIPE);
	x = row_ratio(C_64KS, T_SHMQ_ZC, T_PIPE);
	double xb = row_ratio(C_64KS, T_SHMQ_ZC, T_PIPE_BIG);
	unsigned scap = results[C_64KS][T_SHMQ_SMALL].capacity;
	unsigned zcap = results[C_64KS][T_SHMQ_ZC].capacity;
	target("1→1 64 KiB single ≥ 30× pipe", shown(C_64KS) && r > 0,
	       r >= 30 || rs >= 30 || x >= 30,
	       "%.2f× (capacity %u: %.2f×; zero copy, capacity %u: %.2f×, "
	       "against a %zu KiB pipe %.2f×)",
	       r, scap, rs, zcap, x, pipe_big_size(65536, zcap) >> 10, xb);
	/* At the same capacity: shmq's rows at mq's. */
	r = ratio(C_64KS, T_MQ, 0);
	x = row_ratio(C_64KS, T_SHMQ_ZC, T_MQ);
	target("1→1 64 KiB single ≥ 3× POSIX mq", shown(C_64KS) && r > 0,
	       r >= 3 || x >= 3, "%.2f× (zero copy: %.2f×; both at capacity "
	       "%u, mq's limit)", r, x, results[C_64KS][T_MQ].capacity);
}

static void targets_latency(void)
{
	double r = ratio(C_PING, T_PIPE, 0);
	double s99 = agg_median(C_PING, T_SHMQ, 1);
	double p99 = agg_median(C_PING, T_PIPE, 1);

	target("ping-pong 64 B median RTT ≤ 1/40 of pipe's", shown(C_PING) &&
	       r > 0, r >= 40, "1/%.1f (%.0f ns vs %.0f ns)", r,
	       agg_median(C_PING, T_SHMQ, 0), agg_median(C_PING, T_PIPE, 0));
	target("ping-pong 64 B p99 RTT ≤ pipe's p99", shown(C_PING) &&
	       s99 > 0 && p99 > 0, s99 <= p99, "%.0f ns vs %.0f ns", s99, p99);
}

static void targets_mpmc(void)
{
	double r = ratio(C_M256B, T_PIPE, 0);
	double x = cross_ratio(C_M256B, C_M256S, T_PIPE);

	target_ratio("4→4 256 B single ≥ 2× pipe", C_M256S, T_PIPE, 2);
	target("4→4 256 B batch calls ≥ 8× pipe", shown(C_M256B) && x > 0,
	       x >= 8, "%.2f× (a pipe that batches too: %.2f×)", x, r);
}

static void targets_other(void)
{
	double wg = waiter[0].ok ? 100 * waiter[0].cpu_ns / waiter[0].wall_ns
				 : -1;
	double wp = waiter[1].ok ? 100 * waiter[1].cpu_ns / waiter[1].wall_ns
				 : -1;
	double od = median(ctl.open_rate, ctl.n_open);
	int sys_known = sys_res.ok && sys_res.pair_sys >= 0;

	target("blocked waiter uses ~0 CPU (< 1 % of the wait)",
	       waiter[0].ok && waiter[1].ok, wg < 1 && wp < 1,
	       "get %.4f %%, put %.4f %%", wg, wp);
	target("0 system calls per message, 1→1, neither full nor empty",
	       sys_known, sys_res.pair_sys == 0 && sys_res.batch_sys == 0,
	       "%.0f in %" PRIu64 " put+get, %.0f in %" PRIu64 " by "
	       "putv/getv", sys_res.pair_sys * sys_res.n, sys_res.n,
	       sys_res.batch_sys * sys_res.n, sys_res.n);
	target("control plane ≥ 10,000 open+detach/s", ctl.n_open > 0,
	       od >= 10000, "%.0f /s", od);
	target("shmqd holds 1,000 connected clients", ctl.ran,
	       ctl.clients_held >= 1000 && ctl.clients_served,
	       "%u held, %s", ctl.clients_held,
	       ctl.clients_served ? "still serving" : "not serving");
	target("shmqd holds 10,000 queues", ctl.ran,
	       ctl.queues_listed >= 10000, "%u created and listed",
	       ctl.queues_listed);
	target("idle shmqd RSS < 10 MB (fresh)", ctl.fresh.rss > 0,
	       ctl.fresh.rss < 10240, "%.1f MB", ctl.fresh.rss / 1024.0);
	target("idle shmqd RSS < 10 MB (holding the clients and queues)",
	       ctl.ran && ctl.with_queues.rss > 0,
	       ctl.with_queues.rss < 10240, "%.1f MB",
	       ctl.with_queues.rss / 1024.0);
}

static void report_targets(void)
{
	say("## Targets (issue 4)\n\n%sRatios of shmq's batch calls are "
	    "taken against the pipe's one-message-per-call row, and the ratio "
	    "to a pipe that batches too (writev of the whole batch, one large "
	    "read: a byte stream at its best) is shown beside it. At 16 B, 15× "
	    "a batching pipe would be ~2 ns per message, sequence check "
	    "included, on each of two cores.\n\n| target | measured | result |\n"
	    "|---|---|---|\n", opt.quick ? "*Quick mode: counts too small "
	    "for these to mean anything.*\n\n" : "");
	n_unmeasured = 0;
	targets_throughput();
	targets_latency();
	targets_mpmc();
	targets_other();
	say("\n");
	if (n_unmeasured) {
		say("Not measured in this run:");
		for (unsigned i = 0; i < n_unmeasured; i++)
			say("%s %s", i ? ";" : "", unmeasured[i]);
		say(".\n\n");
	}
}

static void report_machine(void)
{
	say("## Machine and settings\n\n");
	say("- CPU: %s; %ld cores online; %s\n", facts.cpu, facts.cores,
	    facts.kernel);
	say("- Date: %s; load average at start: %s; at end: %s\n",
	    facts.date, facts.load0, facts.load1);
	say("- Source: %s\n", facts.rev);
	say("- shmq %s; its own shmqd; %d run%s per case, %.2f s per "
	    "throughput run, %u round trips per ping-pong run (after %u "
	    "warm-up)%s\n", shmq_version(), opt.runs, opt.runs > 1 ? "s" : "",
	    opt.seconds, opt.pp_count, opt.pp_warm,
	    opt.pin ? "; 1→1 sides pinned to CPUs 0 and 1" : "");
	if (opt.keep_awake)
		say("- **--keep-awake**: a SCHED_IDLE spinner ran on every CPU, "
		    "so idle CPUs never halted (its CPU time is not counted as "
		    "other load)\n");
	say("- memcpy on this machine: %.1f GB/s for 64 KiB in cache, %.1f "
	    "GB/s for 64 MiB: the ceiling of any copy-in, copy-out queue\n",
	    facts.memcpy_hot, facts.memcpy_cold);
	if (facts.pause_ns > 0)
		say("- One x86 `pause` (the spin-wait hint) takes %.1f ns "
		    "here\n", facts.pause_ns);
	if (facts.line_ns > 0)
		say("- A cache line moves between CPU 0 and CPU 1 in %.0f ns "
		    "(two processes bouncing a counter): every message between "
		    "processes costs a few of these\n", facts.line_ns);
	if (facts.wake_med > 0)
		say("- Waking a process blocked in read() on the other CPU "
		    "(both pinned, idle for 1 ms): median %.1f µs, p90 %.1f µs "
		    "(cpuidle: %s). A transport that blocks pays about this per "
		    "hand-off across CPUs; where the scheduler can run both "
		    "sides on one CPU (a busy machine, or --keep-awake) it pays "
		    "a few µs instead, so the kernel transports' numbers move "
		    "with the load of the machine.\n",
		    facts.wake_med / 1000, facts.wake_p90 / 1000, facts.idle);
	say("- Capacity: shmq %u messages in every case, and POSIX mq's "
	    "where that is smaller (max-msg = the message size). Pipe and "
	    "socket: the default buffers — pipe "
	    "%d bytes, SOCK_SEQPACKET SO_SNDBUF %d / SO_RCVBUF %d bytes.\n",
	    SHMQ_CAP, facts.pipe_buf, facts.sock_snd, facts.sock_rcv);
	say("- POSIX mq: asked for %u messages; fs.mqueue.msg_max = %ld, "
	    "msgsize_max = %ld during the run%s; RLIMIT_MSGQUEUE = %llu "
	    "bytes. Capacity granted per message size:", MQ_WANT,
	    mqlim.msg_max, mqlim.msgsize_max,
	    env.mq_orig[0] >= 0 || env.mq_orig[1] >= 0
		    ? " (raised by this run, restored at exit)" : "",
	    (unsigned long long)mqlim.rlimit);
	for (int i = 0; i < mqlim.n; i++)
		say(" %zu B → %u%s%s%s", mqlim.size[i], mqlim.cap[i],
		    mqlim.why[i][0] ? " (limited by " : "", mqlim.why[i],
		    mqlim.why[i][0] ? ")" : "");
	say(". Where it is below %u, the system does not allow more, and "
	    "the row says so; shmq then also runs at mq's capacity (the "
	    "\"as mq\" rows), its zero-copy row runs only at that capacity, "
	    "and the ratio to mq is taken at equal capacity. For 64 KiB "
	    "messages a pipe grown to the same capacity in bytes (as far as "
	    "fs/pipe-max-size allows) is shown for reference.\n\n", MQ_WANT);
}

static void report(void)
{
	say("# shmq benchmark\n\n");
	if (interrupted)
		say("**Interrupted: the tables are incomplete.**\n\n");
	report_machine();
	report_results();
	report_targets();
	report_cpu();
	report_syscalls();
	report_waiter();
	report_control();
	say("Every message carries a per-producer sequence number; every "
	    "consumer checks it (and a tag, and a trailer from 32 B on), and "
	    "the counts, sums and sums of squares must show each message "
	    "arrived exactly once. Producers and consumers are separate "
	    "processes, started together by a barrier.\n");
}

static int any_failed(void)
{
	for (int ci = 0; ci < NCASES; ci++)
		for (int t = 0; t < NT; t++)
			if (results[ci][t].failed)
				return 1;
	return (sys_res.ran && !sys_res.ok) || ctl.err[0] ||
	       ((opt.only & SEC_WAITER) && (!waiter[0].ok || !waiter[1].ok));
}

static int write_output(void)
{
	fwrite(out.s, 1, out.len, stdout);
	fflush(stdout);
	if (opt.output == NULL)
		return 0;
	FILE *f = fopen(opt.output, "we");
	if (f == NULL || fwrite(out.s, 1, out.len, f) != out.len ||
	    fclose(f) != 0) {
		fprintf(stderr, "shmq-bench: cannot write %s: %s\n", opt.output,
			strerror(errno));
		return -1;
	}
	progress("report written to %s\n", opt.output);
	return 0;
}

int main(int argc, char **argv)
{
	if (parse_options(argc, argv) < 0)
		return 2;
	signals_init();
	env_init();
	ctl.fresh = daemon_rss();
	sh = mmap(NULL, sizeof(*sh), PROT_READ | PROT_WRITE,
		  MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (sh == MAP_FAILED)
		fatal("mmap: %s", strerror(errno));
	mq_init();
	perf_init();
	facts_init();
	for (int ci = 0; ci < NCASES && !interrupted; ci++)
		if (shown(ci))
			run_case(ci);
	if ((opt.only & SEC_SYSCALLS) && !interrupted)
		syscalls_test();
	for (int i = 0; i < 2 && (opt.only & SEC_WAITER) && !interrupted; i++)
		waiter_test(i, &waiter[i]);
	if ((opt.only & SEC_CONTROL) && !interrupted)
		control_test();
	read_line("/proc/loadavg", NULL, facts.load1, sizeof(facts.load1));
	cleanup();
	report();
	if (write_output() < 0)
		return 1;
	return interrupted ? 130 : any_failed() ? 1 : 0;
}
