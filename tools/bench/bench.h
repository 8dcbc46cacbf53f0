/*
 * bench.h - what the files of shmq-bench share (internal to tools/bench/).
 *
 * shmq-bench owns shmq's performance numbers.  It runs shmq, a
 * pipe, an AF_UNIX SOCK_SEQPACKET socket pair and a POSIX message queue
 * through the same cases on the same machine in the same run, and prints
 * (and writes to --output) a markdown report: median and min-max of
 * several runs, the ratio of shmq to each peer, the targets with
 * PASS/MISS, where the CPU goes, and the machine it ran on.  It also
 * measures what no peer has: the system calls per message, the CPU of a
 * blocked waiter, and the control plane (open+detach rate, 1000 clients,
 * 10000 queues, shmqd's RSS).
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
 *
 * The files:
 *   main.c          options, and the order in which everything runs
 *   env.c           the private shmqd (started by tools/privd.c, which
 *                   shmq-torture shares), the children, signals, cleanup
 *   facts.c         the machine's facts and the report's "Machine" section
 *   probe.c         what a process costs: CPU, context switches, syscalls
 *   xports.c        the transport table, the report's row order, chan_create
 *   xp_shmq.c       shmq (also at POSIX mq's capacity, zero copy, and an
 *                   acked queue: lease and ack)
 *   xp_shmq_poll.c  shmq driven by epoll (pollable descriptors)
 *   xp_pipe.c       a pipe (also grown to the queues' capacity in bytes)
 *   xp_seqpacket.c  an AF_UNIX SOCK_SEQPACKET socket pair
 *   xp_mq.c         a POSIX message queue, and the limits it runs under
 *   xp_boost.cc     Boost.Interprocess's message_queue, where configure
 *                   found its headers (C++; xports.c says why not else)
 *   cases.c         the cases, which transports run them, the statistics
 *   onecpu.c        the one-CPU settings: the CPU they pin to, the cgroup
 *                   with one CPU of quota, the busy neighbour
 *   jobs.c          the children of a run: producers, consumers, ping-pong
 *   run.c           the parent's side of one run, and its verification
 *   syscalls.c      system calls per message (and its report section)
 *   waiter.c        a blocked waiter's CPU (and its report section)
 *   control.c       the control plane, shmqd (and its report section)
 *   report.c        the report: its buffer, the result and CPU tables
 *   targets.c       the speed targets (both rounds), PASS or MISS
 *
 * To add a transport: a file xp_NAME.c defining a struct xport (its
 * capacity, the cases it runs and its rows' label are its own), a T_
 * constant and its declaration below, its line in xports.c (the table and
 * the report's row order), and the file in Makefile.am.  To add a case: a
 * C_ constant below and its line in cases.c (its transports, and the CPUs
 * its processes get, are fields of the line).  A target is a few lines in
 * targets.c.
 */
#ifndef SHMQ_BENCH_H
#define SHMQ_BENCH_H

#include <errno.h>
#include <mqueue.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <time.h>

#include "clock.h"
#include "shmq.h"

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

/* --- time (mono_ns and the sleeps are common/clock.h's) ---------------- */

static inline uint64_t cpu_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* --- options (main.c) ------------------------------------------------- */

enum section {
	SEC_TPUT = 1, SEC_PING = 2, SEC_MPMC = 4, SEC_SYSCALLS = 8,
	SEC_WAITER = 16, SEC_CONTROL = 32, SEC_ONECPU = 64, SEC_ALL = 127,
};
#define NSECTIONS 7

struct options {
	int runs;
	double seconds;         /* length of one throughput run */
	unsigned pp_count;      /* round trips per ping-pong run */
	unsigned pp_warm;       /* round trips not counted */
	double wait_s;          /* how long the waiter test blocks */
	unsigned clients;       /* raw connections held by the daemon */
	unsigned queues;        /* small queues created at once */
	unsigned only;          /* enum section mask */
	unsigned transports;    /* mask of 1 << T_*; 0: all */
	const char *match;      /* run only cases whose label has this */
	int quick;
	int pin;
	int keep_awake;         /* SCHED_IDLE spinners keep CPUs from halting */
	const char *output;
};

extern struct options opt;

/* --- the environment (env.c) ------------------------------------------ */

struct environment {
	pid_t main_pid;
	char dir[64];                   /* our temporary directory */
	char sock[128];                 /* the daemon's socket in it */
	char seg_prefix[64];            /* its segments in /dev/shm */
	pid_t daemon;
	volatile pid_t kids[MAX_KIDS];  /* children of the current run */
	volatile pid_t awake[64];       /* --keep-awake spinners */
	int nawake;
	sigset_t chld;                  /* {SIGCHLD}, blocked in the parent */
};

extern struct environment env;
extern volatile sig_atomic_t interrupted;

void signals_init(void);
void env_init(void);
/* Undoes everything; safe to call twice, and only the main process may. */
void cleanup(void);
__attribute__((format(printf, 1, 2), noreturn))
void fatal(const char *fmt, ...);
/* In every child: default signals, and death with the parent. */
void child_signals(int deathsig);
void kids_add(pid_t pid);
void kids_forget(pid_t pid);
long read_long(const char *path);
int write_long(const char *path, long v);

/* --- the report's text (report.c) ------------------------------------- */

/* Appends to the report, printed and written at the end. */
__attribute__((format(printf, 1, 2)))
void say(const char *fmt, ...);
/* Progress goes to stderr, so that stdout carries only the report. */
__attribute__((format(printf, 1, 2)))
void progress(const char *fmt, ...);

/* --- messages --------------------------------------------------------- */

/*
 * Every message starts with this header; messages of 32 bytes or more
 * also end with ~seq, so a copy that is cut short or shifted is caught
 * too.  The rest of the payload is a fixed pattern written once: stamping
 * or checking all of a 64 KiB message would measure memset, not transport.
 * Inline: producers stamp every message.
 */
struct msg_hdr {
	uint64_t seq;
	uint32_t producer;      /* or STOP_ID */
	uint32_t tag;           /* msg_tag(seq, producer) */
};

static inline uint32_t msg_tag(uint64_t seq, uint32_t producer)
{
	return (uint32_t)((seq * UINT64_C(0x9e3779b97f4a7c15)) >> 32) ^
	       producer;
}

static inline void msg_stamp(uint8_t *m, size_t size, uint32_t producer,
			     uint64_t seq)
{
	struct msg_hdr h = { seq, producer, msg_tag(seq, producer) };

	memcpy(m, &h, sizeof(h));
	if (size >= 2 * sizeof(h)) {
		uint64_t t = ~seq;
		memcpy(m + size - sizeof(t), &t, sizeof(t));
	}
}

/* n messages of `size` bytes, touched (jobs.c). */
uint8_t *msg_buffer(size_t size, unsigned n);

/* --- what a process costs (probe.c) ----------------------------------- */

struct usage {
	uint64_t user_ns, sys_ns;
	uint64_t csw;           /* voluntary + involuntary */
	uint64_t syscalls;      /* UINT64_MAX: not counted */
};

struct probe {
	struct rusage ru;
	int fd;                 /* perf counter of raw_syscalls:sys_enter */
};

void perf_init(void);
/* 1 if system calls can be counted here. */
int probe_counts_syscalls(void);
void probe_open(struct probe *p, int syscalls);
void probe_start(struct probe *p);
void probe_stop(struct probe *p, struct usage *u);
void usage_add(struct usage *sum, const struct usage *u);

/* --- transports (xports.c, xp_*.c) ------------------------------------ */

enum role { TX, RX };

struct xport;
struct bcase;
struct agg;

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
	void *priv;             /* a transport's own object */
	struct iovec *mio;
	struct shmq_msg *lease; /* shmq acked: the leases of a batch */
	char why[128];
	int kind;               /* the case's enum kind */
};

struct xport {
	const char *name;       /* in progress lines and default labels */
	const char *option;     /* the --transport name that selects it */
	const char *batch_how;  /* how its batch mode is done */
	int shmq;               /* one of shmq's own rows: no ratio */
	/* Its capacity for `size`-byte messages; NULL: SHMQ_CAP. */
	unsigned (*capacity)(size_t size);
	/* Whether it runs case k (a->note may say why not); NULL: all. */
	int (*applies)(const struct bcase *k, struct agg *a);
	/* Writes its rows' label and returns 1, or returns 0 for the
	 * default "name (batch_how)"; NULL: the default. */
	int (*label)(char *b, size_t n, const struct bcase *k,
		     const struct agg *a);
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

/* The order of the table is the order transports run in, each run. */
enum {
	T_SHMQ, T_PIPE, T_SOCK, T_MQ, T_SHMQ_SMALL, T_SHMQ_ZC, T_PIPE_BIG,
	T_SHMQ_POLL, T_SHMQ_ACKED, T_BOOST, NT
};

extern const struct xport *const xports[NT];
/* The order of a case's rows in the report. */
extern const int row_order[NT];

extern const struct xport xp_shmq, xp_shmq_small, xp_shmq_zc, xp_shmq_poll;
extern const struct xport xp_shmq_acked;
extern const struct xport xp_pipe, xp_pipe_big;
extern const struct xport xp_sock;
extern const struct xport xp_mq;
extern const struct xport xp_boost;
/* Why there is no Boost row, or NULL if there is; BOOST_VERSION. */
extern const char *const boost_missing;
extern const int boost_version;

/* Shared by the transports' files. */
int fail_errno(struct chan *c, const char *what);
int fail_shmq(struct chan *c, const char *what, int rc);
int no_open(struct chan *c, enum role r);
void no_leave(struct chan *c);
void fds_close(struct chan *c);

unsigned xport_capacity(int t, size_t size);
int chan_create(struct chan *c, int t, const struct bcase *k);

/* shmq_getv starts each message 16-aligned in buf: consumers allocate
 * batch_stride() bytes per message. */
static inline size_t batch_stride(size_t size)
{
	return (size + 15) & ~(size_t)15;
}

/* The grown pipe's buffer, in bytes, for `capacity` messages. */
size_t pipe_big_size(size_t msg, unsigned capacity);

/* POSIX mq's limits (xp_mq.c). */
void mq_init(void);
/* Puts the system settings mq_init() raised back. */
void mq_restore(void);
/* The capacity a POSIX queue of `size`-byte messages was allowed (0:
 * none), and the same where it is below SHMQ_CAP, else SHMQ_CAP. */
unsigned mq_cap(size_t size);
unsigned mq_cap_below(size_t size);
/* The report's paragraph on them. */
void mq_say_limits(void);

/* --- cases (cases.c) -------------------------------------------------- */

enum kind { TPUT, PING };

/* The CPUs a case's processes get. */
enum cpus {
	CPUS_ALL,       /* the machine's (--pin: 1->1 on CPUs 0 and 1) */
	CPUS_PIN1,      /* every process pinned to one CPU (onecpu_cpu()) */
	CPUS_QUOTA1,    /* a cgroup with one CPU's worth of quota */
	CPUS_BUSY1,     /* pinned to one CPU, with a busy loop pinned there */
};

struct bcase {
	const char *label;
	enum kind kind;
	size_t size;
	unsigned producers, consumers;
	unsigned batch;         /* messages per call; 0: single calls */
	unsigned section;
	enum cpus cpus;
	unsigned xmask;         /* 1 << T_* of the transports; 0: all */
};

/* The size sweep runs 1->1, single and batch, at every size; the first
 * round's four sizes on every transport, the others on shmq, the pipe
 * and Boost.  So do the one-CPU cases. */
enum {
	C_16S, C_16B, C_32S, C_32B, C_64S, C_64B, C_128S, C_128B,
	C_256S, C_256B, C_512S, C_512B, C_1KS, C_1KB, C_4KS, C_4KB,
	C_16KS, C_16KB, C_64KS, C_64KB,
	C_PING, C_M256S, C_M256B,
	C_PIN_16S, C_PIN_4KS, C_PIN_PING,
	C_QUOTA_16S, C_QUOTA_4KS, C_QUOTA_PING,
	C_BUSY_16S, C_BUSY_4KS, C_BUSY_PING,
	NCASES
};
#define NSWEEP 10       /* sizes: C_16S, C_32S ... C_64KS, two cases apart */

extern const struct bcase cases[NCASES];

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

extern struct agg results[NCASES][NT];

/* Whether --only and --case chose case ci. */
int case_selected(int ci);
void run_case(int ci);
double median(const double *v, int n);
void min_max(const double *v, int n, double *lo, double *hi);
int cmp_u64(const void *a, const void *b);

/* --- the processes of a run (jobs.c, run.c) --------------------------- */

/* What one consumer saw, per producer: for one consumer exactly
 * 0, 1, 2 ...; for several, a rising subsequence each, and the parent
 * checks that the counts, sums and sums of squares add up to 0..sent-1. */
struct tally {
	uint64_t next[MAXP];
	uint64_t cnt[MAXP], sum[MAXP], sq[MAXP];
};

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

extern struct shared *sh;

struct job {
	const struct bcase *k;
	struct chan *ch;        /* [0]: data, or ping; [1]: pong */
	unsigned index;
	int ready_fd, go_fd;    /* the start barrier */
	int syscalls;           /* count them */
	int cpu;                /* pin to it, or -1 */
	int quota;              /* join the one-CPU cgroup */
	struct side_res *res;
};

typedef int (*job_fn)(struct job *j);

int producer(struct job *j);
int consumer(struct job *j);
int pp_client(struct job *j);
int pp_server(struct job *j);
int send_stop(struct chan *c, uint8_t *buf);

/* Maps the shared page. */
void run_init(void);
/* One run of case k on transport t, its system calls counted or not. */
void run_once(const struct bcase *k, int t, int syscalls, struct sample *s);
void pin_to(int cpu);

/* --- one CPU (onecpu.c) ----------------------------------------------- */

/* The CPU the one-CPU cases pin to: the last one we may use. */
int onecpu_cpu(void);
/* Makes the cgroup with one CPU of quota, the first time; 0, or -1 (then
 * quota_how() says why it cannot be made here). */
int quota_ready(void);
/* How the quota is set (which cgroup, which file), or why not. */
const char *quota_how(void);
/* In a child: moves the calling process into that cgroup; 0 or -1. */
int quota_join(void);
/* A CPU-bound process pinned to `cpu`, in the registry of children. */
pid_t busy_start(int cpu);
void busy_stop(pid_t pid);
/* Removes the cgroup (cleanup: its processes are gone by then). */
void onecpu_cleanup(void);

/* --- what no peer has (syscalls.c, waiter.c, control.c) --------------- */

struct sys_result {
	int ran, ok;
	char err[200];
	double pair_ns, pair_sys;       /* put+get, one process */
	double batch_ns, batch_sys;     /* per message, putv+getv of 64 */
	uint64_t n;                     /* messages in each loop */
	/* shmq, shmq polled (epoll), pipe: separate processes, and the
	 * ping-pong */
	struct sample xs[3];
	struct sample ping[3];
};

extern struct sys_result sys_res;

void syscalls_test(void);
void report_syscalls(void);

struct waiter_res {
	int ok;
	char err[200];
	double wall_ns, cpu_ns;
	uint32_t blocked;       /* what shmq_stat saw while it waited */
};

extern struct waiter_res waiter[2];     /* get, put */

void waiter_test(int put, struct waiter_res *w);
void report_waiter(void);

struct rss {
	long rss, anon, shmem;  /* kB; -1 unknown */
};

struct ctl_result {
	int ran;
	char err[200];
	double open_rate[MAX_RUNS];
	int n_open;
	unsigned clients_held;
	int clients_served;     /* open+detach still works while held */
	unsigned queues_made, queues_listed;
	double create_rate, delete_rate;
	struct rss fresh, with_clients, with_queues, after;
};

extern struct ctl_result ctl;

/* Notes shmqd's RSS while it is fresh. */
void control_fresh(void);
void control_test(void);
void report_control(void);

/* --- the machine (facts.c) -------------------------------------------- */

void facts_init(void);
/* Measures the cache-line transfer again (before each case); ns. */
double facts_line(void);
/* Notes the load average at the end. */
void facts_end(void);
void report_machine(void);
/* The cache-line row printed above the results table. */
void report_line(void);

/* --- the report (report.c, targets.c) --------------------------------- */

/* The median of case ci on transport t (p99: of the RTT's p99s); 0 if
 * it has none. */
double agg_median(int ci, int t, int p99);
/* How many times faster shmq is than transport t in case ci; 0 if
 * unknown. */
double ratio(int ci, int t, int p99);
double per_msg(uint64_t v, uint64_t msgs);
void report_targets(void);
void report(void);
int write_output(void);

#endif /* SHMQ_BENCH_H */
