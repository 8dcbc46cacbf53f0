/*
 * onecpu.c - the settings of the one-CPU cases: the CPU they pin to, the
 * cgroup that gives their processes one CPU's worth of quota, and the
 * busy loop that shares their CPU.
 *
 * A process pinned to one CPU, in a container limited to one CPU, or on a
 * busy machine, has one CPU whatever the machine has; these cases show
 * what shmq does there, against a pipe in the same setting.  The cgroup is
 * made only where the bench may (root, a cgroup hierarchy with the cpu
 * controller); where it cannot, the cases say why instead of running.  It
 * must never leave the cgroup (or the controller it enabled) behind:
 * onecpu_cleanup() runs at cleanup, once the cgroup's processes are gone.
 */
#define _GNU_SOURCE
#include "config.h"

#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"
#include "cpu.h"

/* One CPU's worth: as much time as the period, per period. */
#define QUOTA_US 100000

static struct {
	int tried, ok;
	int v2;
	int enabled_cpu;        /* we wrote +cpu into the root's subtree */
	char root[256];         /* the hierarchy's mount */
	char dir[320];          /* our cgroup */
	char how[1024];         /* what the report says */
} cg;

int onecpu_cpu(void)
{
	static int cpu = -1;
	cpu_set_t set;

	if (cpu >= 0)
		return cpu;
	cpu = 0;
	if (sched_getaffinity(0, sizeof(set), &set) == 0)
		for (int c = 0; c < CPU_SETSIZE; c++)
			if (CPU_ISSET(c, &set))
				cpu = c;
	return cpu;
}

static int write_str(const char *dir, const char *file, const char *v)
{
	char path[512];
	int fd, rc = -1;

	snprintf(path, sizeof(path), "%s/%s", dir, file);
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	if (write(fd, v, strlen(v)) == (ssize_t)strlen(v))
		rc = 0;
	if (close(fd) != 0)
		rc = -1;
	return rc;
}

static int read_str(const char *dir, const char *file, char *buf, size_t n)
{
	char path[512];
	int fd;
	ssize_t r;

	snprintf(path, sizeof(path), "%s/%s", dir, file);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	r = read(fd, buf, n - 1);
	close(fd);
	if (r < 0)
		return -1;
	buf[r] = '\0';
	buf[strcspn(buf, "\n")] = '\0';
	return 0;
}

/* Is `w` one of the space-separated words of `list`? */
static int has_word(const char *list, const char *w)
{
	size_t n = strlen(w);

	for (const char *p = list; (p = strstr(p, w)) != NULL; p += n)
		if ((p == list || p[-1] == ' ') && (p[n] == ' ' || !p[n]))
			return 1;
	return 0;
}

/* cgroup v2: a child of the hierarchy's root (the root may hold
 * processes and still give controllers to its children) with cpu.max
 * "100000 100000". */
static int make_v2(char *why, size_t n)
{
	char buf[256];

	if (cpu_cgroup_mount(0, cg.root, sizeof(cg.root)) < 0) {
		snprintf(why, n, "no cgroup v2 hierarchy is mounted");
		return -1;
	}
	if (read_str(cg.root, "cgroup.controllers", buf, sizeof(buf)) < 0 ||
	    !has_word(buf, "cpu")) {
		snprintf(why, n, "the cgroup v2 hierarchy at %.160s has no cpu "
			 "controller (it is bound to a v1 hierarchy)", cg.root);
		return -1;
	}
	if (read_str(cg.root, "cgroup.subtree_control", buf,
		     sizeof(buf)) < 0) {
		snprintf(why, n, "%.160s/cgroup.subtree_control: %s", cg.root,
			 strerror(errno));
		return -1;
	}
	if (!has_word(buf, "cpu")) {
		if (write_str(cg.root, "cgroup.subtree_control", "+cpu") < 0) {
			snprintf(why, n, "enabling the cpu controller in %.160s: %s",
				 cg.root, strerror(errno));
			return -1;
		}
		cg.enabled_cpu = 1;
	}
	snprintf(cg.dir, sizeof(cg.dir), "%s/shmq-bench.%d", cg.root,
		 (int)getpid());
	if (mkdir(cg.dir, 0755) < 0) {
		snprintf(why, n, "mkdir %.160s: %s", cg.dir, strerror(errno));
		cg.dir[0] = '\0';
		return -1;
	}
	snprintf(buf, sizeof(buf), "%d %d", QUOTA_US, QUOTA_US);
	if (write_str(cg.dir, "cpu.max", buf) < 0) {
		snprintf(why, n, "%.160s/cpu.max: %s", cg.dir, strerror(errno));
		return -1;
	}
	cg.v2 = 1;
	snprintf(cg.how, sizeof(cg.how), "cgroup v2 %s, cpu.max \"%d %d\"",
		 cg.dir, QUOTA_US, QUOTA_US);
	return 0;
}

/* cgroup v1: a child of the cpu controller's root, with
 * cpu.cfs_quota_us = cpu.cfs_period_us. */
static int make_v1(char *why, size_t n)
{
	char q[32];

	if (cpu_cgroup_mount(1, cg.root, sizeof(cg.root)) < 0) {
		snprintf(why, n, "no cgroup v1 cpu hierarchy is mounted");
		return -1;
	}
	snprintf(cg.dir, sizeof(cg.dir), "%s/shmq-bench.%d", cg.root,
		 (int)getpid());
	if (mkdir(cg.dir, 0755) < 0) {
		snprintf(why, n, "mkdir %.160s: %s", cg.dir, strerror(errno));
		cg.dir[0] = '\0';
		return -1;
	}
	snprintf(q, sizeof(q), "%d", QUOTA_US);
	if (write_str(cg.dir, "cpu.cfs_period_us", q) < 0 ||
	    write_str(cg.dir, "cpu.cfs_quota_us", q) < 0) {
		snprintf(why, n, "%.160s/cpu.cfs_quota_us: %s", cg.dir,
			 strerror(errno));
		return -1;
	}
	snprintf(cg.how, sizeof(cg.how), "cgroup v1 %s, cpu.cfs_quota_us %d "
		 "per cpu.cfs_period_us %d", cg.dir, QUOTA_US, QUOTA_US);
	return 0;
}

int quota_ready(void)
{
	char why2[400], why1[400];

	if (cg.tried)
		return cg.ok ? 0 : -1;
	cg.tried = 1;
	if (make_v2(why2, sizeof(why2)) == 0) {
		cg.ok = 1;
		return 0;
	}
	onecpu_cleanup();
	if (make_v1(why1, sizeof(why1)) == 0) {
		cg.ok = 1;
		snprintf(cg.how + strlen(cg.how), sizeof(cg.how) - strlen(cg.how),
			 " (v2: %s)", why2);
		return 0;
	}
	onecpu_cleanup();
	snprintf(cg.how, sizeof(cg.how), "no cgroup with a CPU quota could be "
		 "made here (v2: %s; v1: %s)", why2, why1);
	return -1;
}

const char *quota_how(void)
{
	return cg.how[0] ? cg.how : "not tried";
}

int quota_join(void)
{
	char pid[32];

	snprintf(pid, sizeof(pid), "%d", (int)getpid());
	return cg.ok ? write_str(cg.dir, "cgroup.procs", pid) : -1;
}

void onecpu_cleanup(void)
{
	if (cg.dir[0] && rmdir(cg.dir) < 0 && errno != ENOENT)
		progress("shmq-bench: rmdir %s: %s\n", cg.dir, strerror(errno));
	cg.dir[0] = '\0';
	if (cg.enabled_cpu)
		write_str(cg.root, "cgroup.subtree_control", "-cpu");
	cg.enabled_cpu = 0;
}

pid_t busy_start(int cpu)
{
	pid_t pid = fork();

	if (pid == 0) {
		child_signals(SIGKILL);
		pin_to(cpu);
		for (volatile uint64_t n = 0;; n++)
			;
	}
	if (pid > 0)
		kids_add(pid);
	return pid;
}

void busy_stop(pid_t pid)
{
	if (pid <= 0)
		return;
	kill(pid, SIGKILL);
	while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
		;
	kids_forget(pid);
}
