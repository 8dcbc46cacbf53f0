/*
 * env.c - the bench's private shmqd, its children, and everything cleanup
 * must undo.
 *
 * Owns the temporary directory, the daemon (started, asked HELLO, stopped
 * with its queues deleted), the registry of live children that a signal
 * kills, and cleanup(): after it, no process, segment, queue, changed
 * setting or directory of ours is left.  It must never touch another
 * daemon's queues: only segments with our socket's prefix are removed.
 */
#define _GNU_SOURCE
#include "config.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"
#include "paths.h"
#include "../privd.h"

struct environment env;
volatile sig_atomic_t interrupted;

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

void kids_add(pid_t pid)
{
	for (int i = 0; i < MAX_KIDS; i++)
		if (env.kids[i] == 0) {
			env.kids[i] = pid;
			return;
		}
}

void kids_forget(pid_t pid)
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

long read_long(const char *path)
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

int write_long(const char *path, long v)
{
	FILE *f = fopen(path, "we");
	int rc;

	if (f == NULL)
		return -1;
	rc = fprintf(f, "%ld\n", v) < 0;
	rc |= fclose(f) != 0;
	return rc ? -1 : 0;
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

/* Undoes everything; safe to call twice, and only the main process may. */
void cleanup(void)
{
	if (getpid() != env.main_pid)
		return;
	kids_kill_all();
	awake_stop();
	onecpu_cleanup();
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

void fatal(const char *fmt, ...)
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

void signals_init(void)
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
void child_signals(int deathsig)
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

/* In the daemon's child, before the exec: its own process group, so that
 * a ^C to the terminal does not stop it before our cleanup has deleted
 * the queues through it. */
static void daemon_prep(void)
{
	setpgid(0, 0);
	child_signals(SIGTERM);
}

/* Starts shmqd in the foreground (tools/privd.c) and waits until it
 * answers. */
static void daemon_start(void)
{
	const char *bin = getenv("SHMQ_DAEMON");
	char log[160];
	pid_t other = 0;
	int status;

	if (bin == NULL || *bin == '\0')
		bin = "shmqd";
	snprintf(log, sizeof(log), "%s/shmqd.log", env.dir);
	pid_t pid = privd_start(bin, env.sock, log, daemon_prep);
	if (pid < 0)
		fatal("fork: %s", strerror(errno));
	env.daemon = pid;
	switch (privd_wait_ready(pid, env.sock, 10000, &interrupted, &status,
				 &other)) {
	case PRIVD_READY:
		return;
	case PRIVD_OTHER:
		fatal("another process (%d) answers on %s", (int)other,
		      env.sock);
	case PRIVD_EXITED:
		env.daemon = 0;
		fatal("%s did not start (see its messages above, or set "
		      "SHMQ_DAEMON)", bin);
	case PRIVD_STOPPED:
		fatal("interrupted");
	case PRIVD_TIMEOUT:
		break;
	}
	fatal("%s did not answer on %s within 10 s", bin, env.sock);
}

void env_init(void)
{
	struct rlimit rl;

	env.main_pid = getpid();
	snprintf(env.dir, sizeof(env.dir), "/tmp/shmq-bench.XXXXXX");
	if (mkdtemp(env.dir) == NULL) {
		env.dir[0] = '\0';
		fatal("mkdtemp: %s", strerror(errno));
	}
	snprintf(env.sock, sizeof(env.sock), "%s/s.sock", env.dir);
	/* The daemon names its segments after its socket: that is how we
	 * find ours and only ours. */
	paths_segment_prefix(env.sock, env.seg_prefix,
			     sizeof(env.seg_prefix));
	setenv("SHMQ_SOCKET", env.sock, 1);
	setenv("SHMQ_NO_AUTOSTART", "1", 1);
	/* The control-plane test holds a thousand connections. */
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	daemon_start();
}
