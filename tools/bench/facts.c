/*
 * facts.c - the machine the bench runs on, and the report's section on it.
 *
 * Owns what the report says about the machine and the settings: CPU,
 * kernel, load, source revision, the default buffers, and the costs that
 * bound every transport here (memcpy, one spin-wait pause, a cache line
 * between CPUs, waking a blocked process), and the --keep-awake spinners.
 * The children it forks to measure are gone before each function returns
 * (the spinners: at cleanup).
 */
#define _GNU_SOURCE
#include "config.h"

#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"
#include "cpu.h"

static struct {
	char cpu[128], kernel[256], date[64], load0[64], load1[64];
	long cores;
	int pipe_buf, sock_snd, sock_rcv;
	double memcpy_hot, memcpy_cold;         /* GB/s */
	double pause_ns;                        /* one spin-loop pause */
	double wake_med, wake_p90;              /* ns; 0 if not measured */
	double line_ns;                         /* one cache-line transfer */
	double lines[NCASES + 1];               /* again before each case */
	int nlines;
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
		uint64_t t0 = mono_ns();
		for (int i = 0; i < reps; i++) {
			memcpy(b, a, size);
			__asm__ __volatile__("" : : "r"(b) : "memory");
		}
		gbs = (double)size * reps / (double)(mono_ns() - t0);
	}
	free(a);
	free(b);
	return gbs;
}

/* What one pause instruction (x86's cpu_relax()) costs: it paces every
 * spin-wait loop, and varies from ~10 to ~140 cycles between CPU
 * generations. */
static double pause_cost(void)
{
#if defined(__x86_64__) || defined(__i386__)
	const int n = 1000000;
	uint64_t t0 = mono_ns();

	for (int i = 0; i < n; i++)
		cpu_relax();
	return (double)(mono_ns() - t0) / n;
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
		lat[i] = mono_ns() - t;
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
			uint64_t t = mono_ns();
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
 * of these, so they bound what a shared-memory queue can do.  On a VM the
 * figure moves within minutes (the host moves the vCPUs), so it is taken
 * again before each case. */
static double line_transfer(void)
{
	double ns = 0;
	volatile uint64_t *v = (volatile uint64_t *)&sh->t0;
	const uint64_t n = opt.quick ? 20000 : 200000;
	int status;

	if (facts.cores < 2)
		return 0;
	*v = 0;
	pid_t pid = fork();
	if (pid == 0) {
		child_signals(SIGKILL);
		pin_to(1);
		for (uint64_t i = 1; i < 2 * n; i += 2) {
			while (*v != i)
				cpu_relax();
			*v = i + 1;
		}
		_exit(0);
	}
	if (pid < 0)
		return 0;
	kids_add(pid);
	cpu_set_t old;
	sched_getaffinity(0, sizeof(old), &old);
	pin_to(0);
	uint64_t t0 = mono_ns(), spins = 0;
	for (uint64_t i = 0; i < 2 * n && spins < (1u << 28); i += 2) {
		*v = i + 1;
		while (*v != i + 2 && ++spins < (1u << 28))
			cpu_relax();
	}
	uint64_t t = mono_ns() - t0;
	sched_setaffinity(0, sizeof(old), &old);
	if (spins >= (1u << 28))
		kill(pid, SIGKILL);     /* it is not answering: give up */
	if (waitpid(pid, &status, 0) == pid && WIFEXITED(status) &&
	    WEXITSTATUS(status) == 0)
		ns = (double)t / (double)n / 2;
	kids_forget(pid);
	return ns;
}

double facts_line(void)
{
	double ns = line_transfer();

	if (ns > 0 && facts.nlines < (int)(sizeof(facts.lines) /
					   sizeof(facts.lines[0])))
		facts.lines[facts.nlines++] = ns;
	return ns;
}

/* Nanoseconds per message of shmq's 1->1 single rows, in line transfers. */
static void line_costs(void)
{
	int any = 0;

	for (int ci = C_16S; ci <= C_64KS; ci += 2) {
		double m = agg_median(ci, T_SHMQ, 0);
		if (m <= 0)
			continue;
		say("%s %s %.0f ns = %.1f", any ? ";" : "\n  shmq 1→1 single, "
		    "time per message (in line transfers):",
		    cases[ci].label + strlen("1→1 "), NS / m,
		    NS / m / facts.line_ns);
		any = 1;
	}
	say("%s", any ? ".\n" : "\n");
}

void report_line(void)
{
	double lo, hi;

	if (facts.nlines == 0)
		return;
	min_max(facts.lines, facts.nlines, &lo, &hi);
	say("**This machine, this run: one cache line passes between CPU 0 and "
	    "CPU 1 in %.0f ns** (a ping-pong on one line; median of %d "
	    "measurements, one at the start and one before each case: "
	    "%.0f–%.0f ns). A message between processes costs a few of these "
	    "(docs/performance.md says how many), so a slow figure here means "
	    "a slow machine, not a slow transport.",
	    median(facts.lines, facts.nlines), facts.nlines, lo, hi);
	facts.line_ns = median(facts.lines, facts.nlines);
	line_costs();
	say("\n");
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
				cpu_relax();
		}
		if (pid > 0)
			env.awake[env.nawake++] = pid;
	}
}

/* Which revision is measured: the library may be edited between runs.
 * The paths are from the top of the tree (":/"), since make bench runs
 * in the build directory. */
static void source_revision(void)
{
	FILE *f = popen("git describe --always --dirty 2>/dev/null && "
			"git status --porcelain -- :/client :/common :/proto "
			":/daemon 2>/dev/null | tr '\\n' ' '", "r");
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

void facts_init(void)
{
	struct utsname u;
	time_t now = time(NULL);
	int p[2], s[2];
	socklen_t len = sizeof(int);

	read_line("/proc/cpuinfo", "model name", facts.cpu, sizeof(facts.cpu));
	facts.cores = cpus_online();
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
	facts_line();
	facts.line_ns = facts.nlines ? facts.lines[0] : 0;
}

void facts_end(void)
{
	read_line("/proc/loadavg", NULL, facts.load1, sizeof(facts.load1));
}

void report_machine(void)
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
	if (opt.only & SEC_ONECPU)
		say("- One-CPU cases: every process pinned to CPU %d (\"one "
		    "CPU\"; \"+ busy loop\": with a CPU-bound process pinned "
		    "there too, at the same priority); \"one CPU of quota\": "
		    "not pinned, in %s\n", onecpu_cpu(), quota_how());
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
	mq_say_limits();
	if (boost_missing)
		say("- Boost.Interprocess message_queue: %s.\n", boost_missing);
	else
		say("- Boost.Interprocess message_queue (Boost %d.%d): a "
		    "bounded queue of fixed-size slots under a process-shared "
		    "mutex and condition variables, without crash safety; the "
		    "same capacity as shmq; no batch call.\n",
		    boost_version / 100000, boost_version / 100 % 1000);
}
