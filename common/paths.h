/*
 * paths.h - where the control socket lives (shared by libshmq and shmqd).
 *
 *   SHMQ_SOCKET, if set                  explicit choice, always wins
 *   /run/shmq/shmqd.sock                 the system daemon, if it exists
 *   $XDG_RUNTIME_DIR/shmq/shmqd.sock     the per-user daemon
 *   /tmp/shmq-UID/shmqd.sock             per-user, without XDG_RUNTIME_DIR
 */
#ifndef SHMQ_PATHS_H
#define SHMQ_PATHS_H

#include <stddef.h>

#define SHMQ_SYSTEM_SOCKET "/run/shmq/shmqd.sock"

/* Which socket a client should use; *per_user is set when the answer is
 * the per-user default (the one a client may start a daemon for). */
int paths_client_socket(char *buf, size_t size, int *per_user);
/* The per-user default (or SHMQ_SOCKET): what shmqd listens on unless told
 * otherwise. */
int paths_user_socket(char *buf, size_t size);
/* Creates the parent directory of `sock` (with `mode`) if it is missing,
 * and checks the one it finds: SHMQ_EACCES (errno EPERM) if it belongs to
 * another user (root excepted) or others may write in it without the
 * sticky bit; SHMQ_ESYS with errno otherwise. */
int paths_make_dir(const char *sock, unsigned mode);

/* "shmq.<hash>.": the prefix of every /dev/shm object of the daemon on
 * socket `sock`, so that daemons on different sockets never share. */
void paths_segment_prefix(const char *sock, char *buf, size_t size);

#endif /* SHMQ_PATHS_H */
