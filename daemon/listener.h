/*
 * listener.h - the control socket and the daemon's word to systemd.
 */
#ifndef SHMQD_LISTENER_H
#define SHMQD_LISTENER_H

#include <stddef.h>

struct listener {
	int fd;
	int lock_fd;            /* flock on PATH.lock; -1 if systemd's */
	int inherited;          /* from socket activation */
	char path[108];
};

/* Takes the socket systemd passed (LISTEN_FDS), if any: 1 taken, 0 none,
 * -1 on a socket that is not a listening AF_UNIX SOCK_SEQPACKET one. */
int listener_inherit(struct listener *l);
/* Locks PATH.lock, replaces a stale socket and listens on PATH with
 * `mode`.  Fails if another daemon holds the lock. */
int listener_bind(struct listener *l, const char *path, unsigned mode);
void listener_close(struct listener *l);

/* sd_notify(3) without libsystemd: one datagram to $NOTIFY_SOCKET. */
void notify_systemd(const char *state);

#endif /* SHMQD_LISTENER_H */
