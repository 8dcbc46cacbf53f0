/*
 * harness.c - the real shmqd, started in a temporary directory for tests.
 *
 * Readiness is the daemon's own sd_notify READY=1 on a datagram socket we
 * listen on, so no test sleeps waiting for the daemon to come up.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "harness.h"
#include "paths.h"

#ifndef BUILDDIR
#define BUILDDIR "."
#endif

static char scratch[200];       /* this binary's directory */
static pid_t runner;            /* the process that called harness_init */

const char *harness_path(const char *rel, char *buf, size_t size)
{
	const char *top = getenv("SHMQ_BUILDDIR");
	snprintf(buf, size, "%s/%s", top && *top ? top : BUILDDIR, rel);
	return buf;
}

void harness_init(const char *name)
{
	const char *tmp = getenv("TMPDIR");

	runner = getpid();
	snprintf(scratch, sizeof(scratch), "%s/shmq-%s.XXXXXX",
		 tmp && *tmp ? tmp : "/tmp", name);
	if (mkdtemp(scratch) == NULL) {
		perror("mkdtemp");
		exit(99);
	}
	/* Sockets must fit sun_path: keep the scratch path short. */
	if (strlen(scratch) > 60) {
		fprintf(stderr, "harness: TMPDIR too long for sockets\n");
		exit(99);
	}
}

const char *harness_scratch(void)
{
	return scratch;
}

pid_t harness_fork(void)
{
	pid_t parent = getpid();
	pid_t pid = fork();

	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)        /* parent already gone */
			_exit(99);
	}
	return pid;
}

int harness_wait(pid_t pid, int ms)
{
	long until = now_ms() + ms;
	int status;

	for (;;) {
		pid_t r = waitpid(pid, &status, WNOHANG);
		if (r == pid)
			return status;
		if (r < 0)
			return -1;
		if (now_ms() >= until)
			break;
		sleep_ms(2);
	}
	kill(pid, SIGKILL);
	waitpid(pid, &status, 0);
	return -1;
}

/* Every daemon's pid goes into a file in the scratch directory, so that
 * the sweep finds daemons started by a test child that has since died. */
void harness_remember_pid(pid_t pid)
{
	char path[300];
	FILE *f;

	snprintf(path, sizeof(path), "%s/pids", scratch);
	f = fopen(path, "a");
	if (f) {
		fprintf(f, "%ld\n", (long)pid);
		fclose(f);
	}
}

int notify_socket(const char *path)
{
	struct sockaddr_un un = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -1;
	snprintf(un.sun_path, sizeof(un.sun_path), "%s", path);
	unlink(path);
	if (bind(fd, (struct sockaddr *)&un, sizeof(un)) < 0) {
		int e = errno;
		close(fd);
		errno = e;
		return -1;
	}
	return fd;
}

int notify_ready(int fd, int ms)
{
	long until = now_ms() + ms;
	char buf[256];

	do {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		long left = until - now_ms();
		if (poll(&p, 1, left > 0 ? (int)left : 0) <= 0)
			continue;
		ssize_t n = recv(fd, buf, sizeof(buf) - 1, 0);
		if (n <= 0)
			continue;
		buf[n] = '\0';
		if (strstr(buf, "READY=1"))
			return 1;
	} while (now_ms() < until);
	return 0;
}

static int spawn(struct daemon *d)
{
	char notify[108], bin[PATH_MAX];
	char *argv[32];
	int n = 0, fd, ok = 0;

	snprintf(notify, sizeof(notify), "%.90s/notify", d->dir);
	fd = notify_socket(notify);
	if (fd < 0) {
		perror("harness: notify socket");
		return -1;
	}

	argv[n++] = "shmqd";
	argv[n++] = "--foreground";
	argv[n++] = "--socket";
	argv[n++] = d->sock;
	argv[n++] = "--log";
	argv[n++] = d->log;
	for (int i = 0; d->args && d->args[i] && n < 31; i++)
		argv[n++] = d->args[i];
	argv[n] = NULL;
	harness_path("daemon/shmqd", bin, sizeof(bin));

	d->pid = harness_fork();
	if (d->pid == 0) {
		setenv("NOTIFY_SOCKET", notify, 1);
		execv(bin, argv);
		_exit(127);
	}
	if (d->pid < 0) {
		close(fd);
		return -1;
	}
	harness_remember_pid(d->pid);

	/* READY=1 within 10 s, or the daemon exited. */
	long until = now_ms() + 10000;
	while (!ok && now_ms() < until) {
		ok = notify_ready(fd, 50);
		if (!ok && waitpid(d->pid, NULL, WNOHANG) == d->pid) {
			d->pid = 0;
			break;
		}
	}
	close(fd);
	if (!ok) {
		fprintf(stderr, "harness: shmqd did not become ready; log %s\n",
			d->log);
		if (d->pid > 0)
			daemon_stop(d, SIGKILL);
		return -1;
	}
	setenv("SHMQ_SOCKET", d->sock, 1);
	setenv("SHMQ_NO_AUTOSTART", "1", 1);
	return 0;
}

int daemon_start(struct daemon *d, char *const *args)
{
	static int serial;

	memset(d, 0, sizeof(*d));
	snprintf(d->dir, sizeof(d->dir), "%.60s/d%d.%ld", scratch, ++serial,
		 (long)getpid());
	if (mkdir(d->dir, 0700) < 0) {
		perror("harness: mkdir");
		return -1;
	}
	snprintf(d->sock, sizeof(d->sock), "%.90s/s.sock", d->dir);
	snprintf(d->log, sizeof(d->log), "%s/shmqd.log", d->dir);
	paths_segment_prefix(d->sock, d->prefix, sizeof(d->prefix));
	d->args = args;
	return spawn(d);
}

int daemon_restart(struct daemon *d)
{
	if (d->pid > 0)
		daemon_stop(d, SIGKILL);
	return spawn(d);
}

int daemon_stop(struct daemon *d, int sig)
{
	int status = -1;

	if (d->pid <= 0)
		return -1;
	kill(d->pid, sig);
	status = harness_wait(d->pid, 10000);
	d->pid = 0;
	return status;
}

/* Calls fn(path, arg), if not NULL, for each /dev/shm object whose name
 * starts with `prefix`; returns how many there were. */
static int each_object(const char *prefix,
		       void (*fn)(const char *path, void *arg), void *arg)
{
	DIR *dir = opendir("/dev/shm");
	struct dirent *e;
	int n = 0;

	if (dir == NULL)
		return 0;
	while ((e = readdir(dir)) != NULL) {
		char path[300];

		if (strncmp(e->d_name, prefix, strlen(prefix)) != 0)
			continue;
		n++;
		snprintf(path, sizeof(path), "/dev/shm/%s", e->d_name);
		if (fn)
			fn(path, arg);
	}
	closedir(dir);
	return n;
}

static void remove_object(const char *path, void *arg)
{
	(void)arg;
	unlink(path);
}

int daemon_each_segment(const struct daemon *d,
			void (*fn)(const char *path, void *arg), void *arg)
{
	return each_object(d->prefix, fn, arg);
}

int daemon_segments(const struct daemon *d)
{
	return each_object(d->prefix, NULL, NULL);
}

static void remove_tree(const char *path)
{
	DIR *dir = opendir(path);
	struct dirent *e;

	if (dir == NULL) {
		unlink(path);
		return;
	}
	while ((e = readdir(dir)) != NULL) {
		char sub[PATH_MAX];
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		snprintf(sub, sizeof(sub), "%s/%s", path, e->d_name);
		struct stat st;
		if (lstat(sub, &st) == 0 && S_ISDIR(st.st_mode))
			remove_tree(sub);
		else
			unlink(sub);
	}
	closedir(dir);
	rmdir(path);
}

int harness_is_shmqd(pid_t pid)
{
	char exe[64], target[PATH_MAX];
	ssize_t n;

	snprintf(exe, sizeof(exe), "/proc/%ld/exe", (long)pid);
	n = readlink(exe, target, sizeof(target) - 1);
	if (n <= 0)
		return 0;
	target[n] = '\0';
	return strstr(target, "shmqd") != NULL;
}

int file_contains(const char *path, const char *needle)
{
	static char buf[1 << 16];
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return 0;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	return strstr(buf, needle) != NULL;
}

static void show_log(const struct daemon *d)
{
	char line[512];
	FILE *f = fopen(d->log, "r");

	fprintf(stderr, "harness: shmqd did not exit cleanly; its log:\n");
	while (f && fgets(line, sizeof(line), f))
		fprintf(stderr, "  %s", line);
	if (f)
		fclose(f);
}

int daemon_cleanup(struct daemon *d)
{
	int rc = 0;

	if (d->pid > 0) {
		int status = daemon_stop(d, SIGTERM);
		if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
			fprintf(stderr, "harness: shmqd status %d\n", status);
			show_log(d);
			rc = -1;
		}
	}
	if (d->prefix[0])
		each_object(d->prefix, remove_object, NULL);
	if (d->dir[0])
		remove_tree(d->dir);
	return rc;
}

void harness_sweep(void)
{
	char path[300], line[64], prefix[40], sock[300];
	DIR *dir;
	FILE *f;

	if (scratch[0] == '\0' || getpid() != runner)
		return;
	snprintf(path, sizeof(path), "%s/pids", scratch);
	f = fopen(path, "r");
	while (f && fgets(line, sizeof(line), f)) {
		pid_t pid = (pid_t)atol(line);
		/* Only kill what is still a shmqd: the pid may be reused. */
		if (pid > 0 && harness_is_shmqd(pid))
			kill(pid, SIGKILL);
	}
	if (f)
		fclose(f);
	/* Segments of every daemon directory d* under the scratch dir. */
	dir = opendir(scratch);
	while (dir) {
		struct dirent *e = readdir(dir);
		if (e == NULL)
			break;
		if (e->d_name[0] != 'd')
			continue;
		snprintf(sock, sizeof(sock), "%.60s/%.30s/s.sock", scratch,
			 e->d_name);
		paths_segment_prefix(sock, prefix, sizeof(prefix));
		each_object(prefix, remove_object, NULL);
	}
	if (dir)
		closedir(dir);
	remove_tree(scratch);
	scratch[0] = '\0';
}
