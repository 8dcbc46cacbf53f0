/*
 * cmd-work.c - qctl work: a worker pool in one command.  Until end of
 * stream it leases a message, runs COMMAND with the message on its
 * standard input, acks the message if the command exits 0 and gives it
 * back (nack) otherwise; up to -j commands at once.
 *
 * Owns the pool's life, in two threads.  The leaser blocks in
 * shmq_lease(), a wait that only a message, the end of the stream or a
 * signal ends, and hands each message to the main thread through a pipe,
 * in a memfd the command reads as its standard input.  The main thread
 * polls that pipe and a signalfd (SIGCHLD, SIGINT, SIGTERM, SIGHUP),
 * starts commands (each in a process group of its own, which a signal
 * passed on reaches whole, and each killed by the kernel if work dies:
 * its message then goes to another worker, and must not be worked on
 * twice at once), settles their messages when they exit, and
 * extends the leases of those still running at half the queue's lease
 * timeout: a slow but live worker keeps its message, and the timeout is
 * left to catch workers that are stuck or gone.
 *
 * It must never ack a message whose command did not exit 0, nor exit
 * holding a lease: on SIGINT, SIGTERM or SIGHUP it stops leasing, passes
 * the signal on to the commands running, waits for them (a second signal
 * kills them), settles each message by its command's status, and then
 * dies of the signal itself, as a shell expects.
 */
#define _GNU_SOURCE
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "qctl.h"

#define JOBS_MAX     1024       /* -j at most */
#define LEASE_SLICE  1000       /* ms: the leaser looks at `stop` at least
				   this often, should a wake-up be lost */
#define STOPPED      1000       /* the leaser's result: it was stopped */

extern char **environ;

/* What the leaser hands the main thread, one write(2) on a pipe. */
struct lease_result {
	int rc;                 /* SHMQ_*, QCTL_EWRITE (the memfd), STOPPED */
	int fd;                 /* the message for standard input, or -1 */
	int64_t at;             /* when it was leased (CLOCK_MONOTONIC ms) */
	struct shmq_msg m;      /* m.data is the leaser's: not to be read */
};

struct job {
	pid_t pid;              /* 0: free */
	struct shmq_msg m;
	int64_t extend_at;      /* ms; INT64_MAX: never */
	int lost;               /* the lease ended under it */
};

struct pool {
	const struct args *a;
	shmq_t *q;
	char delim;
	int timeout;            /* ms for a wait for a message, or -1 */
	int64_t half;           /* half the lease timeout in ms, or 0 */
	char **argv;            /* COMMAND [ARG...] */
	char **env;             /* environ without our three variables */
	size_t nenv;
	/* The leaser, and what it is asked under `mu`. */
	pthread_t leaser;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int asked;              /* one message wanted */
	int stop;               /* no more leases (also read without mu) */
	int res[2];             /* its results: read end, write end */
	/* The main thread's. */
	struct job *jobs;
	unsigned njobs, running;
	int outstanding;        /* asked, result not read yet */
	unsigned given_back;    /* messages given back (or lost) so far */
	unsigned asked_at;      /* given_back when the leaser was asked */
	int eos;                /* SHMQ_EOS/_LOST seen, 0 */
	int ending;             /* take no more messages */
	int status;             /* exit status if not QX_OK */
	int signal;             /* the first of SIGINT/TERM/HUP, or 0 */
	int killed;             /* a second signal: SIGKILL sent */
};

/* ------------------------------------------------------------------ */
/* The leaser                                                         */

static void wake_leaser(int sig)
{
	(void)sig;      /* only there to make shmq_lease() return EINTR */
}

/* The message, and its delimiter, in a memfd positioned at 0. */
static int message_file(const struct pool *p, const struct shmq_msg *m)
{
	int fd = memfd_create("qctl-work", MFD_CLOEXEC);
	const char *b = m->data;
	size_t left = m->len;

	if (fd < 0)
		return -1;
	while (left > 0) {
		ssize_t n = write(fd, b, left);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			goto fail;
		b += n;
		left -= (size_t)n;
	}
	if (write(fd, &p->delim, 1) != 1 || lseek(fd, 0, SEEK_SET) != 0)
		goto fail;
	return fd;
fail:
	close(fd);
	return -1;
}

/* One message, waited for as long as --timeout says: in slices, so that
 * a stop is seen even if the signal that should interrupt the wait came
 * just before it began. */
static int lease_one(struct pool *p, void *buf, size_t size,
		     struct shmq_msg *m)
{
	int64_t until = p->timeout >= 0 ? mono_ms() + p->timeout : -1;

	for (;;) {
		int slice = LEASE_SLICE, rc;
		if (__atomic_load_n(&p->stop, __ATOMIC_ACQUIRE))
			return STOPPED;
		if (until >= 0) {
			int64_t left = until - mono_ms();
			slice = left <= 0 ? SHMQ_NOWAIT
			      : left < LEASE_SLICE ? (int)left : LEASE_SLICE;
		}
		rc = shmq_lease(p->q, buf, size, m, slice);
		if (rc == SHMQ_EINTR)
			continue;
		if (rc == SHMQ_ETIMEDOUT || rc == SHMQ_EAGAIN) {
			if (until < 0 || mono_ms() < until)
				continue;
			return SHMQ_ETIMEDOUT;
		}
		return rc;
	}
}

static void *leaser_main(void *arg)
{
	struct pool *p = arg;
	size_t size = shmq_max_msg(p->q);
	char *buf = malloc(size + 1);
	sigset_t usr1;

	sigemptyset(&usr1);
	sigaddset(&usr1, SIGUSR1);
	pthread_sigmask(SIG_UNBLOCK, &usr1, NULL);
	for (;;) {
		struct lease_result r = { .fd = -1 };

		pthread_mutex_lock(&p->mu);
		while (!p->asked && !p->stop)
			pthread_cond_wait(&p->cv, &p->mu);
		if (p->stop) {
			pthread_mutex_unlock(&p->mu);
			break;
		}
		p->asked = 0;
		pthread_mutex_unlock(&p->mu);

		r.rc = buf ? lease_one(p, buf, size, &r.m) : SHMQ_ENOMEM;
		r.at = mono_ms();
		if (r.rc == SHMQ_OK &&
		    __atomic_load_n(&p->stop, __ATOMIC_ACQUIRE)) {
			shmq_nack(p->q, &r.m, 0);
			r.rc = STOPPED;
		} else if (r.rc == SHMQ_OK &&
			   (r.fd = message_file(p, &r.m)) < 0) {
			shmq_nack(p->q, &r.m, 0);
			r.rc = QCTL_EWRITE;
		}
		r.m.data = NULL;
		/* Far below PIPE_BUF: one write, never torn. */
		if (write(p->res[1], &r, sizeof(r)) != (ssize_t)sizeof(r)) {
			if (r.rc == SHMQ_OK)
				shmq_nack(p->q, &r.m, 0);
			break;
		}
	}
	free(buf);
	return NULL;
}

static void ask(struct pool *p)
{
	pthread_mutex_lock(&p->mu);
	p->asked = 1;
	pthread_cond_signal(&p->cv);
	pthread_mutex_unlock(&p->mu);
	p->outstanding = 1;
	p->asked_at = p->given_back;
}

static void stop_leaser(struct pool *p)
{
	pthread_mutex_lock(&p->mu);
	__atomic_store_n(&p->stop, 1, __ATOMIC_RELEASE);
	pthread_cond_signal(&p->cv);
	pthread_mutex_unlock(&p->mu);
	pthread_kill(p->leaser, SIGUSR1);
}

/* ------------------------------------------------------------------ */
/* Commands                                                           */

/* Whether COMMAND can be run at all, before anything is leased for it:
 * a message must not be spent on a typo. */
static int runnable(const char *cmd, int *err)
{
	const char *path = getenv("PATH");
	char buf[4096];

	*err = ENOENT;
	if (*cmd == '\0')
		return 0;
	if (strchr(cmd, '/')) {
		if (access(cmd, X_OK) == 0)
			return 1;
		*err = errno;
		return 0;
	}
	if (path == NULL)
		path = "/usr/local/bin:/usr/bin:/bin";
	for (const char *d = path;; d = strchr(d, ':') + 1) {
		size_t n = strcspn(d, ":");
		struct stat st;
		int len = snprintf(buf, sizeof(buf), "%.*s/%s", (int)n, d, cmd);
		if (n == 0)
			len = snprintf(buf, sizeof(buf), "./%s", cmd);
		if (len > 0 && (size_t)len < sizeof(buf) &&
		    stat(buf, &st) == 0 && S_ISREG(st.st_mode)) {
			if (access(buf, X_OK) == 0)
				return 1;
			*err = EACCES;
		}
		if (d[n] == '\0')
			return 0;
	}
}

/* environ without SHMQ_QUEUE, SHMQ_DELIVERY and SHMQ_SEQ, with room for
 * them and the NULL. */
static int build_env(struct pool *p)
{
	size_t n = 0;

	for (char **e = environ; *e; e++)
		n++;
	p->env = calloc(n + 4, sizeof(*p->env));
	if (p->env == NULL)
		return -1;
	for (char **e = environ; *e; e++)
		if (strncmp(*e, "SHMQ_QUEUE=", 11) != 0 &&
		    strncmp(*e, "SHMQ_DELIVERY=", 14) != 0 &&
		    strncmp(*e, "SHMQ_SEQ=", 9) != 0)
			p->env[p->nenv++] = *e;
	return 0;
}

static int spawn(struct pool *p, const struct lease_result *r, pid_t *pid)
{
	char queue[sizeof("SHMQ_QUEUE=") + SHMQ_NAME_MAX_LEN];
	char delivery[32], seq[40];
	sigset_t none;
	int ends[2], rc;

	snprintf(queue, sizeof(queue), "SHMQ_QUEUE=%s", p->a->name);
	snprintf(delivery, sizeof(delivery), "SHMQ_DELIVERY=%" PRIu32,
		 r->m.deliveries);
	snprintf(seq, sizeof(seq), "SHMQ_SEQ=%" PRIu64, r->m.seq);
	p->env[p->nenv] = queue;
	p->env[p->nenv + 1] = delivery;
	p->env[p->nenv + 2] = seq;
	p->env[p->nenv + 3] = NULL;

	/* The child reports a failed exec on a pipe that the exec closes. */
	if (pipe2(ends, O_CLOEXEC) < 0)
		return errno;
	sigemptyset(&none);
	pid_t parent = getpid();
	*pid = fork();
	if (*pid == 0) {
		/* Only async-signal-safe calls until the exec: the leaser
		 * thread may hold a lock of libc's. */
		struct sigaction dfl = { .sa_handler = SIG_DFL };
		int e;
		close(ends[0]);
		/* Its own process group, so that a signal passed on reaches
		 * everything it started ("sh -c 'a | b'"), not just the
		 * shell; and it dies with work, whose lease on its message
		 * ends then (the message comes back to another worker).
		 * The death signal comes when the thread that forked exits:
		 * this is the main thread, which lives as long as work. */
		if (setpgid(0, 0) < 0 || prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 ||
		    getppid() != parent || dup2(r->fd, 0) < 0) {
			e = errno;
			if (write(ends[1], &e, sizeof(e)) < 0)
				_exit(127);
			_exit(127);
		}
		for (int s = 1; s < NSIG; s++)
			if (s != SIGKILL && s != SIGSTOP)
				sigaction(s, &dfl, NULL);
		sigprocmask(SIG_SETMASK, &none, NULL);
		execvpe(p->argv[0], p->argv, p->env);
		e = errno;
		if (write(ends[1], &e, sizeof(e)) < 0)
			_exit(127);
		_exit(127);
	}
	rc = *pid < 0 ? errno : 0;
	close(ends[1]);
	if (*pid > 0) {
		ssize_t n;
		do
			n = read(ends[0], &rc, sizeof(rc));
		while (n < 0 && errno == EINTR);
		if (n != sizeof(rc)) {
			rc = 0;         /* closed by the exec: running */
		} else {
			while (waitpid(*pid, NULL, 0) < 0 && errno == EINTR)
				;
			*pid = 0;
		}
	}
	close(ends[0]);
	return rc;
}

static void lease_lost(struct pool *p, struct job *j, const char *when)
{
	report(p->a, "warning: the lease of message %" PRIu64 " ended %s: "
	       "it will be delivered again", j->m.seq, when);
	j->lost = 1;
	/* It is back in the queue: the stream has not ended for us. */
	p->eos = 0;
	p->given_back++;
}

/* A command exited: ack its message if it succeeded, else give it back. */
static void settle(struct pool *p, struct job *j, int wstatus)
{
	int ok = WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == 0;
	int rc;

	if (!j->lost) {
		rc = ok ? shmq_ack(p->q, &j->m) : shmq_nack(p->q, &j->m, 0);
		if (rc == SHMQ_ELEASE)
			lease_lost(p, j, "before its command finished");
		else if (rc != SHMQ_OK && p->status == QX_OK)
			p->status = report_fail(p->a, rc);
		else if (!ok) {
			p->eos = 0;     /* given back: it comes again */
			p->given_back++;
		}
	}
	j->pid = 0;
	p->running--;
}

static void reap(struct pool *p)
{
	for (unsigned i = 0; i < p->njobs; i++) {
		struct job *j = &p->jobs[i];
		int wstatus;
		pid_t r;

		if (j->pid == 0)
			continue;
		do
			r = waitpid(j->pid, &wstatus, WNOHANG);
		while (r < 0 && errno == EINTR);
		if (r == j->pid)
			settle(p, j, wstatus);
	}
}

static void start(struct pool *p, const struct lease_result *r)
{
	struct job *j = NULL;
	int rc;

	for (unsigned i = 0; i < p->njobs && j == NULL; i++)
		if (p->jobs[i].pid == 0)
			j = &p->jobs[i];
	if (j == NULL) {        /* never asked for more than fit */
		shmq_nack(p->q, &r->m, 0);
		close(r->fd);
		return;
	}
	rc = spawn(p, r, &j->pid);
	close(r->fd);
	if (rc != 0) {
		/* Not this message's fault: give it back and stop. */
		shmq_nack(p->q, &r->m, 0);
		j->pid = 0;
		report(p->a, "cannot run '%s': %s", p->argv[0], strerror(rc));
		p->ending = 1;
		if (p->status == QX_OK)
			p->status = QX_ERROR;
		return;
	}
	j->m = r->m;
	j->lost = 0;
	j->extend_at = p->half ? r->at + p->half : INT64_MAX;
	p->running++;
}

/* Extends the leases that are half-way to their deadline; returns the
 * poll timeout until the next one is due (-1: none). */
static int extend_due(struct pool *p)
{
	int64_t now = mono_ms(), next = INT64_MAX;

	for (unsigned i = 0; i < p->njobs; i++) {
		struct job *j = &p->jobs[i];
		if (j->pid == 0 || j->lost || j->extend_at == INT64_MAX)
			continue;
		if (j->extend_at <= now) {
			int rc = shmq_extend(p->q, &j->m, 0);
			if (rc == SHMQ_ELEASE) {
				lease_lost(p, j, "while its command ran");
				continue;
			}
			j->extend_at = now + p->half;
		}
		if (j->extend_at < next)
			next = j->extend_at;
	}
	if (next == INT64_MAX)
		return -1;
	return next - now > 60000 ? 60000 : (int)(next - now);
}

/* ------------------------------------------------------------------ */
/* The main loop                                                      */

static void on_signal(struct pool *p, int sig)
{
	if (sig == SIGCHLD) {
		reap(p);
		return;
	}
	if (p->signal == 0) {
		p->signal = sig;
		p->ending = 1;
		stop_leaser(p);
	} else {
		p->killed = 1;
	}
	for (unsigned i = 0; i < p->njobs; i++)
		if (p->jobs[i].pid)
			kill(-p->jobs[i].pid, p->killed ? SIGKILL : sig);
}

static void on_result(struct pool *p, const struct lease_result *r)
{
	p->outstanding = 0;
	switch (r->rc) {
	case SHMQ_OK:
		if (p->ending) {        /* a signal came meanwhile */
			shmq_nack(p->q, &r->m, 0);
			close(r->fd);
		} else {
			start(p, r);
		}
		break;
	case SHMQ_EOS:
	case SHMQ_EOS_LOST:
		/* Final only once none of ours may come back: an end seen
		 * before we gave a message back (the leaser may have looked
		 * just before our nack) is no end; ask again. */
		if (p->given_back == p->asked_at)
			p->eos = r->rc;
		break;
	case STOPPED:
		break;
	default:
		p->ending = 1;
		if (p->status == QX_OK)
			p->status = report_fail(p->a, r->rc);
	}
}

static int run(struct pool *p, int sigfd)
{
	for (;;) {
		if (!p->ending && !p->eos && !p->outstanding &&
		    p->running < p->njobs)
			ask(p);
		if (!p->outstanding && p->running == 0 &&
		    (p->ending || p->eos))
			return 0;

		struct pollfd pfd[2] = {
			{ .fd = sigfd, .events = POLLIN },
			{ .fd = p->res[0], .events = POLLIN },
		};
		int n = poll(pfd, 2, extend_due(p));
		if (n < 0 && errno != EINTR)
			return -1;
		if (n <= 0)
			continue;
		if (pfd[0].revents & POLLIN) {
			struct signalfd_siginfo si;
			if (read(sigfd, &si, sizeof(si)) == (ssize_t)sizeof(si))
				on_signal(p, (int)si.ssi_signo);
		}
		if (pfd[1].revents & POLLIN) {
			struct lease_result r;
			if (read(p->res[0], &r, sizeof(r)) != (ssize_t)sizeof(r))
				return -1;
			on_result(p, &r);
		}
	}
}

/* After the leaser stopped: a result it sent that was never read may
 * still hold a lease. */
static void drain_results(struct pool *p)
{
	struct lease_result r;

	while (read(p->res[0], &r, sizeof(r)) == (ssize_t)sizeof(r))
		if (r.rc == SHMQ_OK) {
			shmq_nack(p->q, &r.m, 0);
			close(r.fd);
		}
}

/* The signals the main thread takes from its signalfd, and SIGUSR1, which
 * only the leaser takes (to interrupt its wait). */
static int block_signals(sigset_t *set)
{
	struct sigaction sa = { .sa_handler = wake_leaser };

	sigemptyset(set);
	sigaddset(set, SIGCHLD);
	sigaddset(set, SIGINT);
	sigaddset(set, SIGTERM);
	sigaddset(set, SIGHUP);
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGUSR1, &sa, NULL) < 0)      /* no SA_RESTART */
		return -1;
	sigset_t all = *set;
	sigaddset(&all, SIGUSR1);
	return pthread_sigmask(SIG_BLOCK, &all, NULL) == 0 ? 0 : -1;
}

/* Dies of the signal that stopped us, as an interrupted command should
 * (a shell running us in a loop then stops too). */
static void die_of(int sig)
{
	sigset_t set;

	signal(sig, SIG_DFL);
	sigemptyset(&set);
	sigaddset(&set, sig);
	raise(sig);
	pthread_sigmask(SIG_UNBLOCK, &set, NULL);
}

static int exec_work(struct args *a)
{
	struct pool p = { .a = a, .delim = a->opt[OPT_NUL] ? '\0' : '\n',
			  .res = { -1, -1 }, .njobs = 1 };
	struct shmq_stat st;
	sigset_t set;
	int status, rc, err, sigfd = -1, started = 0;

	if ((status = num_opt_timeout(a, &p.timeout)) ||
	    (status = num_opt_u32(a, OPT_JOBS, 1, &p.njobs)))
		return status;
	if (p.njobs > JOBS_MAX)
		return num_bad(a, OPT_JOBS, "too large (at most 1024)");
	p.argv = a->argv;
	if (!runnable(p.argv[0], &err)) {
		char buf[CLEAN_MAX];
		report(a, "cannot run '%s': %s",
		       report_clean(p.argv[0], buf, sizeof(buf)), strerror(err));
		return QX_USAGE;
	}
	rc = shmq_open(a->name, SHMQ_CONSUMER, &p.q);
	if (rc != SHMQ_OK)
		return report_fail(a, rc);
	signal(SIGPIPE, SIG_IGN);
	if (shmq_stat(p.q, &st) == SHMQ_OK && st.lease_timeout_ms)
		p.half = st.lease_timeout_ms / 2 ? st.lease_timeout_ms / 2 : 1;
	p.jobs = calloc(p.njobs, sizeof(*p.jobs));
	pthread_mutex_init(&p.mu, NULL);
	pthread_cond_init(&p.cv, NULL);
	if (p.jobs == NULL || build_env(&p) < 0 || block_signals(&set) < 0 ||
	    (sigfd = signalfd(-1, &set, SFD_CLOEXEC)) < 0 ||
	    pipe2(p.res, O_CLOEXEC) < 0 ||
	    pthread_create(&p.leaser, NULL, leaser_main, &p) != 0) {
		status = report_fail(a, errno == ENOMEM ? SHMQ_ENOMEM
							: SHMQ_ESYS);
		goto out;
	}
	started = 1;
	if (run(&p, sigfd) < 0 && p.status == QX_OK)
		p.status = report_fail(a, SHMQ_ESYS);
	status = p.status;
	if (status == QX_OK && p.eos == SHMQ_EOS_LOST) {
		report(a, "%s", shmq_strerror(SHMQ_EOS_LOST));
		status = QX_EOS_LOST;
	}
out:
	if (started) {
		stop_leaser(&p);
		pthread_join(p.leaser, NULL);
		fcntl(p.res[0], F_SETFL, O_NONBLOCK);
		drain_results(&p);
	}
	if (sigfd >= 0)
		close(sigfd);
	if (p.res[0] >= 0) {
		close(p.res[0]);
		close(p.res[1]);
	}
	free(p.env);
	free(p.jobs);
	shmq_detach(p.q);
	if (p.signal)
		die_of(p.signal);
	return status;
}

static const struct cmd_opt work_opts[] = {
	{ OPT_JOBS, "jobs", 'j', "N", NULL,
	  "run up to N commands at once (default 1)" },
	{ OPT_NUL, "null", '0', NULL, NULL,
	  "end the message on COMMAND's input with NUL, not newline" },
	{ OPT_TIMEOUT, "timeout", 0, "SECONDS", NULL,
	  "stop (status 5) if no message comes for this long" },
	{ OPT_NONE }
};

const struct cmd_entry cmd_work_entry = {
	.name = "work",
	.usage = "NAME [-0] [-j N] [--timeout SECONDS] [--] COMMAND [ARG...]",
	.summary = "run COMMAND for each message, ack it if it succeeds",
	.help =
"Until queue NAME is closed and drained, take a message and run COMMAND\n"
"with the message on its standard input, followed by a newline (with -0, a\n"
"NUL), and in its environment SHMQ_QUEUE (NAME), SHMQ_DELIVERY (1 the\n"
"first time the message is delivered, 2 the next...) and SHMQ_SEQ (the\n"
"message's position in the queue, 0 for the first ever put).  On an acked\n"
"queue the message is acked if COMMAND exits 0, and given back otherwise,\n"
"to be delivered again (until --max-deliveries sends it to the dead-letter\n"
"queue); if work or its machine dies, the message comes back too.  On a\n"
"plain queue taking the message is final, whatever COMMAND does.  With -j\n"
"N, up to N commands run at once.  Options end at COMMAND.\n"
"\n"
"While COMMAND runs, work extends its lease every half lease timeout: a\n"
"slow command keeps its message as long as work lives (bound a command's\n"
"time with timeout(1) in COMMAND).  With --timeout, once no message has\n"
"come for SECONDS, work takes no more, waits for the commands running and\n"
"exits with status 5.  SIGINT, SIGTERM or SIGHUP: work takes no more, sends\n"
"the signal to the commands running (each runs in a process group of its\n"
"own), waits for them (a second signal kills them), acks or gives back\n"
"each message by its command's status, and dies of the signal.  If work is\n"
"killed (SIGKILL), the commands running are killed with it (their\n"
"messages go to other workers); a process a command starts and does not\n"
"exec into may outlive it: exec the last command, or use timeout(1).  The\n"
"exit status is that of cat: 0, or 10 if a producer died without\n"
"detaching; a COMMAND's failures do not change it.\n",
	.opts = work_opts,
	.min_args = 2,
	.max_args = -1,
	.flags = CMD_QUEUE | CMD_ARGV | CMD_TO_END,
	.exits = X_COMMON | X(QX_TIMEOUT) | X(QX_NOENT) | X(QX_ACCESS) |
		 X(QX_EOS_LOST) | X(QX_DEADLOCK),
	.exec = exec_work,
};
