/*
 * foreign.c - daemons the test did not start as its own children (see
 * foreign.h).
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "checks.h"
#include "clock.h"
#include "foreign.h"

int lock_holders(const char *sock, pid_t *holder)
{
	char lock[PATH_MAX], path[PATH_MAX], target[PATH_MAX];
	DIR *proc = opendir("/proc");
	struct dirent *e;
	int n = 0;

	snprintf(lock, sizeof(lock), "%s.lock", sock);
	while (proc && (e = readdir(proc)) != NULL) {
		if (e->d_name[0] < '1' || e->d_name[0] > '9')
			continue;
		snprintf(path, sizeof(path), "/proc/%s/fd", e->d_name);
		DIR *fds = opendir(path);
		struct dirent *f;
		while (fds && (f = readdir(fds)) != NULL) {
			char link[PATH_MAX];
			snprintf(link, sizeof(link), "/proc/%s/fd/%s",
				 e->d_name, f->d_name);
			ssize_t m = readlink(link, target, sizeof(target) - 1);
			if (m <= 0)
				continue;
			target[m] = '\0';
			if (strcmp(target, lock) == 0) {
				n++;
				if (holder)
					*holder = (pid_t)atol(e->d_name);
				break;
			}
		}
		if (fds)
			closedir(fds);
	}
	if (proc)
		closedir(proc);
	return n;
}

int daemons_on(const char *sock, pid_t *pids, int max)
{
	DIR *proc = opendir("/proc");
	struct dirent *e;
	int n = 0;

	while (proc && (e = readdir(proc)) != NULL) {
		char path[300], args[4096];
		ssize_t len;
		int fd;

		if (e->d_name[0] < '1' || e->d_name[0] > '9')
			continue;
		snprintf(path, sizeof(path), "/proc/%s/cmdline", e->d_name);
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			continue;
		len = read(fd, args, sizeof(args) - 1);
		close(fd);
		if (len <= 0)
			continue;
		args[len] = '\0';
		/* NUL-separated: look for "--socket" followed by sock. */
		for (char *a = args; a < args + len; a += strlen(a) + 1) {
			char *next = a + strlen(a) + 1;
			if (strcmp(a, "--socket") == 0 && next < args + len &&
			    strcmp(next, sock) == 0 &&
			    harness_is_shmqd((pid_t)atol(e->d_name))) {
				if (n < max)
					pids[n] = (pid_t)atol(e->d_name);
				n++;
				break;
			}
		}
	}
	if (proc)
		closedir(proc);
	return n;
}

pid_t sole_daemon(const struct daemon *d)
{
	pid_t pids[16] = { 0 };
	int n = daemons_on(d->sock, pids, 16);

	for (int i = 0; i < n && i < 16; i++)
		harness_remember_pid(pids[i]);
	ck_assert_msg(WAIT_UNTIL((n = daemons_on(d->sock, pids, 16)) == 1,
				 10000),
		      "%d daemons serve %s", n, d->sock);
	return pids[0];
}

int stop_foreign(pid_t pid)
{
	int pfd = (int)syscall(SYS_pidfd_open, pid, 0);
	struct pollfd p;
	int r;

	if (pfd < 0)
		return 0;
	p.fd = pfd;
	p.events = POLLIN;
	kill(pid, SIGTERM);
	r = poll(&p, 1, 10000);
	if (r <= 0) {
		kill(pid, SIGKILL);
		poll(&p, 1, 5000);
	}
	close(pfd);
	return r > 0;
}

void borrow_dir(struct daemon *d)
{
	int st;

	ck_assert_int_eq(daemon_start(d, NULL), 0);
	st = daemon_stop(d, SIGTERM);
	ck_assert_msg(exited_with(st, 0), "shmqd on SIGTERM: %s",
		      describe(st));
	ck_assert_int_ne(access(d->sock, F_OK), 0);
}
