/*
 * listener.c - the control socket and the daemon's word to systemd.
 *
 * Owns binding (or inheriting) the listening socket, the lock that keeps
 * two daemons off one socket, and the sd_notify datagrams.  The readiness
 * and socket-activation protocols are small and stable, so they are
 * spoken here directly instead of through libsystemd.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "listener.h"
#include "log.h"

#define SD_LISTEN_FDS_START 3

int listener_inherit(struct listener *l)
{
	const char *pid = getenv("LISTEN_PID");
	const char *fds = getenv("LISTEN_FDS");
	struct sockaddr_un un;
	socklen_t len = sizeof(un);
	int type = 0, listening = 0;
	socklen_t olen = sizeof(int);

	if (pid == NULL || fds == NULL || atol(pid) != (long)getpid())
		return 0;
	unsetenv("LISTEN_PID");
	unsetenv("LISTEN_FDS");
	unsetenv("LISTEN_FDNAMES");
	if (atoi(fds) < 1)
		return 0;
	if (atoi(fds) > 1)
		log_warn("systemd passed %s sockets; using the first", fds);

	l->fd = SD_LISTEN_FDS_START;
	l->lock_fd = -1;
	l->inherited = 1;
	if (getsockopt(l->fd, SOL_SOCKET, SO_TYPE, &type, &olen) < 0 ||
	    type != SOCK_SEQPACKET ||
	    getsockopt(l->fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &olen) < 0 ||
	    !listening ||
	    getsockname(l->fd, (struct sockaddr *)&un, &len) < 0 ||
	    un.sun_family != AF_UNIX || un.sun_path[0] == '\0') {
		log_error("the socket passed by systemd is not a listening "
			  "AF_UNIX SOCK_SEQPACKET socket with a path");
		return -1;
	}
	fcntl(l->fd, F_SETFD, FD_CLOEXEC);
	fcntl(l->fd, F_SETFL, fcntl(l->fd, F_GETFL) | O_NONBLOCK);
	snprintf(l->path, sizeof(l->path), "%.*s",
		 (int)(len - offsetof(struct sockaddr_un, sun_path)),
		 un.sun_path);
	l->path[strcspn(l->path, "\n")] = '\0';
	return 1;
}

int listener_bind(struct listener *l, const char *path, unsigned mode)
{
	struct sockaddr_un un = { .sun_family = AF_UNIX };
	char lock[sizeof(l->path) + 8];

	memset(l, 0, sizeof(*l));
	l->fd = l->lock_fd = -1;
	if (strlen(path) >= sizeof(un.sun_path)) {
		log_error("socket path too long (max %zu bytes): %s",
			  sizeof(un.sun_path) - 1, path);
		return -1;
	}
	strcpy(l->path, path);
	strcpy(un.sun_path, path);

	snprintf(lock, sizeof(lock), "%s.lock", path);
	l->lock_fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (l->lock_fd < 0) {
		log_error("cannot open %s: %s", lock, strerror(errno));
		return -1;
	}
	if (flock(l->lock_fd, LOCK_EX | LOCK_NB) < 0) {
		log_error("another shmqd is running on %s", path);
		goto fail;
	}
	/* We hold the lock, so a socket file left there is stale. */
	unlink(path);
	l->fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC,
		       0);
	if (l->fd < 0 ||
	    bind(l->fd, (struct sockaddr *)&un, sizeof(un)) < 0 ||
	    chmod(path, mode) < 0 || listen(l->fd, 512) < 0) {
		log_error("cannot listen on %s: %s", path, strerror(errno));
		goto fail;
	}
	return 0;
fail:
	if (l->fd >= 0)
		close(l->fd);
	close(l->lock_fd);
	l->fd = l->lock_fd = -1;
	return -1;
}

void listener_close(struct listener *l)
{
	if (l->fd < 0)
		return;
	close(l->fd);
	if (!l->inherited) {
		/* Unlink while still holding the lock, so that a daemon
		 * starting now cannot lose its fresh socket to us. */
		unlink(l->path);
		close(l->lock_fd);
	}
	l->fd = l->lock_fd = -1;
}

void notify_systemd(const char *state)
{
	const char *where = getenv("NOTIFY_SOCKET");
	struct sockaddr_un un = { .sun_family = AF_UNIX };
	size_t n;
	int fd;

	if (where == NULL || (where[0] != '/' && where[0] != '@'))
		return;
	n = strlen(where);
	if (n >= sizeof(un.sun_path))
		return;
	memcpy(un.sun_path, where, n);
	if (un.sun_path[0] == '@')
		un.sun_path[0] = '\0';      /* abstract namespace */
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return;
	if (sendto(fd, state, strlen(state), MSG_NOSIGNAL,
		   (struct sockaddr *)&un,
		   (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n)) < 0)
		log_warn("cannot notify systemd: %s", strerror(errno));
	close(fd);
}
