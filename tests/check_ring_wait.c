/*
 * check_ring_wait.c - how a waiting put or get waits (common/wait.c,
 * common/cpu.c): from the CPUs the process may use and where the other
 * side runs.
 *
 * Owns the promises of shmq.h's waiting paragraph: a process that may use
 * one CPU (its affinity mask, or its cgroups' CPU quota) never spins; a
 * waiter whose other side last ran on its own CPU gives the CPU up
 * instead of spinning; both facts are read again while a process runs;
 * the quota is read from cgroup v2 and v1 files alike, and a file that
 * says anything else means "no quota".  And that streams between
 * processes that share one CPU, with or without a CPU-bound neighbour,
 * lose no message and no wake-up.
 *
 * Rules of every ring suite (tests/lib/ring_kid.h): processes hand off
 * through pipes and state they publish in the segment, never through
 * timing; every test is bounded (Check's timeout, children's alarm(),
 * timed reads); the segment has no name once formatted, and the fixture
 * reaps every child.  No daemon takes part.  Tests that need two CPUs say
 * so and check the one-CPU answers instead where there is one.
 */
#define _GNU_SOURCE
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cpu.h"
#include "wait.h"

#include "lib/checks.h"
#include "lib/clock.h"
#include "lib/harness.h"
#include "lib/ring_mp.h"
#include "lib/runner.h"

/* ================================================================== */
/* The CPU quota, from files                                          */

/* A fake /proc/self/cgroup, /proc/self/mountinfo and cgroup tree, under a
 * directory of the scratch directory. */
static char top[256];

static void fake_init(void)
{
	static int n;

	snprintf(top, sizeof(top), "%s/fake.%d.%d", harness_scratch(),
		 (int)getpid(), n++);
	ck_assert_int_eq(mkdir(top, 0700), 0);
}

/* mkdir -p of top/rel. */
static void fake_dir(const char *rel)
{
	char path[512];

	snprintf(path, sizeof(path), "%s/%s", top, rel);
	for (char *p = path + strlen(top) + 1; *p; p++)
		if (*p == '/') {
			*p = '\0';
			ck_assert(mkdir(path, 0700) == 0 || errno == EEXIST);
			*p = '/';
		}
	ck_assert(mkdir(path, 0700) == 0 || errno == EEXIST);
}

/* Writes top/rel (its directory made first); "@" stands for top. */
static void fake_file(const char *rel, const char *text)
{
	char path[512], dir[512], body[8192];
	size_t o = 0;

	for (const char *t = text; *t && o + strlen(top) + 1 < sizeof(body);
	     t++) {
		if (*t == '@') {
			memcpy(body + o, top, strlen(top));
			o += strlen(top);
		} else {
			body[o++] = *t;
		}
	}
	snprintf(dir, sizeof(dir), "%s", rel);
	char *slash = strrchr(dir, '/');
	if (slash) {
		*slash = '\0';
		fake_dir(dir);
	}
	snprintf(path, sizeof(path), "%s/%s", top, rel);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, body, o), (ssize_t)o);
	close(fd);
}

static double fake_quota(void)
{
	char cg[300], mi[300];

	snprintf(cg, sizeof(cg), "%s/cgroup", top);
	snprintf(mi, sizeof(mi), "%s/mountinfo", top);
	return cpu_quota(cg, mi);
}

#define V2_MOUNT "30 23 0:27 / @/v2 rw,nosuid shared:9 - cgroup2 cgroup2 rw\n"
#define V1_MOUNT "32 31 0:29 / @/v1 rw,relatime shared:11 - cgroup cgroup " \
		 "rw,cpu,cpuacct\n"
#define OTHER_MOUNTS                                                         \
	"22 1 8:1 / / rw,relatime - ext4 /dev/vda rw\n"                      \
	"33 31 0:30 / @/mem rw - cgroup cgroup rw,memory\n"                  \
	"34 31 0:31 / @/set rw - cgroup cgroup rw,cpuset\n"

/* cgroup v2: the smallest quota from the process's cgroup up to the
 * root, whatever level sets it; "max" is none. */
START_TEST(test_quota_v2)
{
	fake_init();
	fake_file("mountinfo", OTHER_MOUNTS V2_MOUNT);
	fake_file("cgroup", "0::/a/b\n");
	fake_dir("v2/a/b");
	ck_assert(fake_quota() == 0);           /* no cpu.max anywhere */
	fake_file("v2/a/b/cpu.max", "max 100000\n");
	ck_assert(fake_quota() == 0);
	fake_file("v2/a/cpu.max", "150000 100000\n");
	ck_assert(fake_quota() == 1.5);         /* the parent's */
	fake_file("v2/a/b/cpu.max", "50000 100000\n");
	ck_assert(fake_quota() == 0.5);         /* the smaller */
	fake_file("v2/cpu.max", "25000 100000\n");
	ck_assert(fake_quota() == 0.25);        /* up to the mount */
}
END_TEST

/* cgroup v1: cpu.cfs_quota_us over cpu.cfs_period_us of the cpu
 * controller's hierarchy, whatever else it is mounted with; -1 is none. */
START_TEST(test_quota_v1)
{
	fake_init();
	fake_file("mountinfo", OTHER_MOUNTS V1_MOUNT);
	fake_file("cgroup", "5:memory:/m\n4:cpu,cpuacct:/x/y\n3:cpuset:/\n");
	fake_file("v1/x/y/cpu.cfs_quota_us", "-1\n");
	fake_file("v1/x/y/cpu.cfs_period_us", "100000\n");
	ck_assert(fake_quota() == 0);
	fake_file("v1/x/cpu.cfs_quota_us", "200000\n");
	fake_file("v1/x/cpu.cfs_period_us", "100000\n");
	ck_assert(fake_quota() == 2);
	fake_file("v1/x/y/cpu.cfs_quota_us", "100000\n");
	ck_assert(fake_quota() == 1);
}
END_TEST

/* Both hierarchies mounted (v2 without the cpu controller, as on hybrid
 * systems): whichever says there is a quota, the smaller of the two. */
START_TEST(test_quota_hybrid)
{
	fake_init();
	fake_file("mountinfo", V1_MOUNT OTHER_MOUNTS V2_MOUNT);
	fake_file("cgroup", "4:cpu,cpuacct:/x\n0::/s\n");
	fake_dir("v2/s");
	fake_file("v1/x/cpu.cfs_quota_us", "300000\n");
	fake_file("v1/x/cpu.cfs_period_us", "100000\n");
	ck_assert(fake_quota() == 3);
	fake_file("v2/s/cpu.max", "100000 50000\n");
	ck_assert(fake_quota() == 2);
}
END_TEST

/* The mount's root is a cgroup of the hierarchy (a container that sees
 * part of it); mount points are escaped; a process outside the mounted
 * part (or a path with "..") has no quota known. */
START_TEST(test_quota_mount_root)
{
	fake_init();
	fake_file("mountinfo", "40 23 0:27 /kube/pod @/with\\040space rw - "
		  "cgroup2 none rw\n");
	fake_file("with space/c/cpu.max", "100000 100000\n");
	fake_file("cgroup", "0::/kube/pod/c\n");
	ck_assert(fake_quota() == 1);
	fake_file("cgroup", "0::/kube/podx/c\n");
	ck_assert(fake_quota() == 0);
	fake_file("cgroup", "0::/other\n");
	ck_assert(fake_quota() == 0);
	fake_file("cgroup", "0::/kube/pod/../../c\n");
	ck_assert(fake_quota() == 0);
	fake_file("cgroup", "0::/kube/pod\n");
	ck_assert(fake_quota() == 0);           /* the mount's own: none */
}
END_TEST

/* Whatever the files say, an answer and no crash: anything that is not a
 * quota is none.  A line longer than the reader's buffer is skipped, and
 * the lines after it still count. */
START_TEST(test_quota_bad_files)
{
	static const char *const bad[] = {
		"", "\n", "max", "abc 100000", "100000", "-5 100000",
		"100000 0", "100000 abc", " 100000 100000", "100000  100000",
		"99999999999999999999999 1", "0 100000",
	};
	char longline[6000];

	fake_init();
	memset(longline, 'x', sizeof(longline) - 2);
	longline[sizeof(longline) - 2] = '\n';
	longline[sizeof(longline) - 1] = '\0';
	ck_assert(fake_quota() == 0);           /* no files at all */
	fake_file("mountinfo", "garbage\n\n- cgroup2\n1 2 3\n");
	fake_file("cgroup", "nonsense\n::\n0:\n");
	ck_assert(fake_quota() == 0);
	fake_file("cgroup", "0::/a\n");
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char ml[sizeof(longline) + 200];
		snprintf(ml, sizeof(ml), "%s%s", longline, V2_MOUNT);
		fake_file("mountinfo", ml);
		fake_file("v2/a/cpu.max", bad[i]);
		double q = fake_quota();
		ck_assert_msg(q == 0, "cpu.max \"%s\": %g", bad[i], q);
	}
	fake_file("v2/a/cpu.max", "100000 100000");     /* no newline */
	ck_assert(fake_quota() == 1);
}
END_TEST

/* The process's own files: whatever they say, a sane answer. */
START_TEST(test_quota_this_process)
{
	double q = cpu_quota("/proc/self/cgroup", "/proc/self/mountinfo");
	unsigned n = cpu_usable(mono_ns());

	ck_assert(q >= 0);
	ck_assert_uint_ge(n, 1);
	ck_assert_uint_le(n, (unsigned)cpus_online());
}
END_TEST

/* ================================================================== */
/* Where the other side runs, and how many CPUs we have               */

static cpu_set_t saved;

static void pin_self(int cpu)
{
	cpu_set_t one;

	CPU_ZERO(&one);
	CPU_SET(cpu, &one);
	ck_assert_int_eq(sched_setaffinity(0, sizeof(one), &one), 0);
	cpu_facts_forget();
}

static void unpin_self(void)
{
	ck_assert_int_eq(sched_setaffinity(0, sizeof(saved), &saved), 0);
	cpu_facts_forget();
}

/* The CPU we run on, pinned there. */
static int pin_here(void)
{
	int c = sched_getcpu();

	ck_assert_int_ge(c, 0);
	pin_self(c);
	ck_assert_uint_eq(cpu_current(), (uint32_t)c + 1);
	return c;
}

/* Two CPUs or more in our mask and quota: the spin answers can be
 * checked. */
static int two_cpus(void)
{
	ck_assert_int_eq(sched_getaffinity(0, sizeof(saved), &saved), 0);
	cpu_facts_forget();
	if (cpu_usable(mono_ns()) >= 2)
		return 1;
	fprintf(stderr, "check_ring_wait: one usable CPU here: the "
		"two-CPU half of this test is left out\n");
	return 0;
}

#define ELSEWHERE 100000u       /* a CPU (+ 1) no process runs on */

/* Spin while the other side may run elsewhere; on one CPU, hand off when
 * it last ran on ours, sleep at once when it runs elsewhere or hand-offs
 * are left off; with two CPUs and the other side on ours, mostly hand
 * off and now and then sleep (so that the wake-up can part the two); a
 * forged CPU is just another. */
START_TEST(test_wait_how)
{
	struct ring_config c = seg_config(8, 64, 0, 0);
	int two = two_cpus();

	seg_create(&c);
	uint64_t now = mono_ns();
	if (two) {
		R.hdr->put_cpu = 0;
		R.hdr->get_cpu = ELSEWHERE;
		ck_assert_int_eq(wait_how(&R, GET_SIDE, now), WAIT_SPIN);
		ck_assert_int_eq(wait_how(&R, PUT_SIDE, now), WAIT_SPIN);
		R.hdr->put_cpu = UINT32_MAX;
		ck_assert_int_eq(wait_how(&R, GET_SIDE, now), WAIT_SPIN);
		/* The producer on our CPU: hand-offs, and now and then a
		 * sleep (asked again if we moved meanwhile). */
		int sleeps = 0, asked = 0;
		for (int i = 0; i < 1000 && asked < 64; i++) {
			uint32_t me = cpu_current();
			R.hdr->put_cpu = me;
			enum wait_how h = wait_how(&R, GET_SIDE, now);
			if (cpu_current() != me)
				continue;
			ck_assert(h == WAIT_SLEEP || h == WAIT_HANDOFF);
			sleeps += h == WAIT_SLEEP;
			asked++;
		}
		ck_assert_int_eq(asked, 64);
		ck_assert_int_ge(sleeps, 1);
		ck_assert_int_le(sleeps, 8);
	}

	int cpu = pin_here();
	now = mono_ns();
	R.hdr->put_cpu = (uint32_t)cpu + 1;     /* the producer needs our CPU */
	R.hdr->get_cpu = ELSEWHERE;
	ck_assert_int_eq(wait_how(&R, GET_SIDE, now), WAIT_HANDOFF);
	ck_assert_int_eq(wait_how(&R, PUT_SIDE, now), WAIT_SLEEP);
	R.hdr->get_cpu = 0;                     /* not known: try a yield */
	ck_assert_int_eq(wait_how(&R, PUT_SIDE, now), WAIT_HANDOFF);
	R.handoff_after = now + 1000000000u;    /* hand-offs were slow */
	ck_assert_int_eq(wait_how(&R, GET_SIDE, now), WAIT_SLEEP);
	ck_assert_int_eq(wait_how(&R, PUT_SIDE, now), WAIT_SLEEP);
	R.handoff_after = 0;

	/* The mask is read again now and then, not at every wait: unpinned
	 * behind its back, the handle still waits as on one CPU until the
	 * answer is CPU_FACTS_NS old. */
	if (two) {
		ck_assert_uint_eq(cpu_usable(now), 1);  /* read, pinned */
		ck_assert_int_eq(sched_setaffinity(0, sizeof(saved), &saved),
				 0);
		R.hdr->get_cpu = ELSEWHERE;
		ck_assert_int_eq(wait_how(&R, PUT_SIDE, now), WAIT_SLEEP);
		ck_assert_int_eq(wait_how(&R, PUT_SIDE, now + CPU_FACTS_NS),
				 WAIT_SPIN);
	}
	unpin_self();
}
END_TEST

/* A commit says where its side runs; a wait on one CPU while the other
 * side runs elsewhere neither spins (the spin window, which every spin
 * adapts, is left alone) nor fails to end at its deadline. */
START_TEST(test_one_cpu_never_spins)
{
	struct ring_config c = seg_config(8, 64, 0, 0);
	char buf[64];
	size_t len;
	int two = two_cpus();

	seg_create(&c);
	int cpu = pin_here();
	put_ok(&R, "x");
	ck_assert_uint_eq(R.hdr->put_cpu, (uint32_t)cpu + 1);
	expect_msg(&R, "x");
	ck_assert_uint_eq(R.hdr->get_cpu, (uint32_t)cpu + 1);

	uint32_t spin = R.spin_ns;
	R.hdr->put_cpu = ELSEWHERE;
	ck_assert_int_eq(get_one(&R, buf, sizeof(buf), &len, 20),
			 SHMQ_ETIMEDOUT);
	ck_assert_uint_eq(R.spin_ns, spin);
	ck_assert_uint_eq(R.stride_skip[1], 0);
	unpin_self();
	if (two) {
		/* The same wait with two CPUs spins, and the spin that
		 * failed halves the window: the check above can fail. */
		ck_assert_int_eq(get_one(&R, buf, sizeof(buf), &len, 20),
				 SHMQ_ETIMEDOUT);
		ck_assert_uint_lt(R.spin_ns, spin);
	}
}
END_TEST

/* The futex word's sleeper bits, without the epoch. */
static uint32_t sleep_bits(const uint32_t *word)
{
	return __atomic_load_n(word, __ATOMIC_SEQ_CST) &
	       (SHMQ_WAIT_SLEEPER | SHMQ_WAIT_BATCH);
}

/* Batches on a shared CPU (wait.c): a consumer that sleeps in batches on
 * our CPU is left asleep by our puts until half the capacity is in, and
 * woken before we wait ourselves; a plain sleeper, or one that last ran
 * on another CPU, is woken at the first put. */
START_TEST(test_batch_wake)
{
	struct ring_config c = seg_config(8, 64, 0, 0);
	uint32_t *word;

	ck_assert_int_eq(sched_getaffinity(0, sizeof(saved), &saved), 0);
	seg_create(&c);
	word = &R.hdr->data_futex;
	int cpu = pin_here();
	R.hdr->get_cpu = (uint32_t)cpu + 1;

	/* Left asleep for three puts, woken at the fourth (8 / 2). */
	*word = SHMQ_WAIT_SLEEPER | SHMQ_WAIT_BATCH;
	for (int i = 0; i < 3; i++) {
		put_ok(&R, "b");
		ck_assert_uint_eq(sleep_bits(word),
				  SHMQ_WAIT_SLEEPER | SHMQ_WAIT_BATCH);
	}
	put_ok(&R, "b");
	ck_assert_uint_eq(sleep_bits(word), 0);
	ck_assert_uint_ge(*word, SHMQ_WAIT_EPOCH);

	/* A plain sleeper: at once. */
	*word = SHMQ_WAIT_SLEEPER;
	put_ok(&R, "p");
	ck_assert_uint_eq(sleep_bits(word), 0);

	/* A batch sleeper that last ran elsewhere: at once. */
	R.hdr->get_cpu = ELSEWHERE;
	*word = SHMQ_WAIT_SLEEPER | SHMQ_WAIT_BATCH;
	put_ok(&R, "e");
	ck_assert_uint_eq(sleep_bits(word), 0);

	/* Left asleep by the put that fills the queue (7 of 8), then woken
	 * by the put that must wait for room. */
	R.hdr->get_cpu = (uint32_t)cpu + 1;
	put_ok(&R, "x");
	*word = SHMQ_WAIT_SLEEPER | SHMQ_WAIT_BATCH;
	put_ok(&R, "f");
	ck_assert_uint_eq(sleep_bits(word),
			  SHMQ_WAIT_SLEEPER | SHMQ_WAIT_BATCH);
	ck_assert_int_eq(put_one_str(&R, "w", 20), SHMQ_ETIMEDOUT);
	ck_assert_uint_eq(sleep_bits(word), 0);
	unpin_self();
}
END_TEST

/* A consumer whose stream was busy sleeps in batches when the producer
 * last ran on its CPU and it may use one CPU; a batch sleeper that nobody
 * wakes looks again after SHMQ_BATCH_SLEEP_NS, not after a second; with
 * one message per wait (a request and its reply) it never sleeps so. */
START_TEST(test_batch_sleep_bounded)
{
	struct ring_config c = seg_config(64, 64, 0, 0);
	char buf[64];
	size_t len;

	ck_assert_int_eq(sched_getaffinity(0, sizeof(saved), &saved), 0);
	seg_create(&c);
	int cpu = pin_here();
	for (int i = 0; i < 16; i++)
		put_ok(&R, "s");
	for (int i = 0; i < 16; i++)
		expect_msg(&R, "s");
	R.hdr->put_cpu = (uint32_t)cpu + 1;
	R.handoff_after = mono_ns() + 1000000000u;  /* no hand-offs */
	/* 16 messages since the last wait: a batch sleep, 200 µs at a
	 * time, until the timeout. */
	uint64_t t0 = mono_ns();
	ck_assert_int_eq(get_one(&R, buf, sizeof(buf), &len, 50),
			 SHMQ_ETIMEDOUT);
	ck_assert_uint_ge(mono_ns() - t0, 50000000u);
	/* Nothing since: a plain sleep, the word says so. */
	ck_assert_uint_eq(R.hdr->data_futex & SHMQ_WAIT_BATCH, 0);
	unpin_self();
}
END_TEST

/* ================================================================== */
/* Streams on one CPU                                                 */

/* Producers and consumers that share one CPU (every child inherits our
 * mask): hand-offs by yielding, sleeps and wake-ups, and every message
 * exactly once and in order; on a queue of one, every message is a
 * hand-off. */
START_TEST(test_one_cpu_streams)
{
	ck_assert_int_eq(sched_getaffinity(0, sizeof(saved), &saved), 0);
	pin_here();
	mp_run(1, 1, 20000, 16, 0);
	mp_run(1, 1, 20000, 1, 0);
	mp_run(3, 2, 5000, 8, 0);
	unpin_self();
}
END_TEST

/* A CPU-bound process on our CPU (it inherits our mask), dying with the
 * test at the latest. */
static pid_t busy_start(void)
{
	pid_t pid = harness_fork();

	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		alarm(KID_ALARM_S);
		for (volatile uint64_t n = 0;; n++)
			;
	}
	return pid;
}

/* The same with a CPU-bound process on that CPU: waiters must sleep until
 * the other side acts rather than hand their time to the busy one, or
 * these take far longer than the test case's timeout (each yield that
 * runs the busy loop costs it a time slice). */
START_TEST(test_one_cpu_busy_neighbour)
{
	ck_assert_int_eq(sched_getaffinity(0, sizeof(saved), &saved), 0);
	pin_here();
	pid_t busy = busy_start();
	mp_run(1, 1, 10000, 1, 0);
	mp_run(1, 1, 20000, 64, 0);
	kill(busy, SIGKILL);
	int status = harness_wait(busy, WAIT_MS);
	ck_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
	unpin_self();
}
END_TEST

/* ================================================================== */

static Suite *ring_wait_suite(void)
{
	Suite *s = suite_create("ring wait");
	TCase *tc;

	tc = tcase_create("quota");
	tcase_set_timeout(tc, 30);
	suite_add_tcase(s, tc);
	tcase_add_test(tc, test_quota_v2);
	tcase_add_test(tc, test_quota_v1);
	tcase_add_test(tc, test_quota_hybrid);
	tcase_add_test(tc, test_quota_mount_root);
	tcase_add_test(tc, test_quota_bad_files);
	tcase_add_test(tc, test_quota_this_process);

	tc = ring_tcase(s, "how", 30);
	tcase_add_test(tc, test_wait_how);
	tcase_add_test(tc, test_one_cpu_never_spins);
	tcase_add_test(tc, test_batch_wake);
	tcase_add_test(tc, test_batch_sleep_bounded);

	tc = ring_tcase(s, "one cpu", 60);
	tcase_add_test(tc, test_one_cpu_streams);
	/* Under a second here; a waiter that yields to the busy loop instead
	 * of sleeping (as shmq did) takes over twenty. */
	tc = ring_tcase(s, "busy neighbour", 15);
	tcase_add_test(tc, test_one_cpu_busy_neighbour);
	return s;
}

int main(void)
{
	return run_suite(ring_wait_suite(), "ring_wait");
}
