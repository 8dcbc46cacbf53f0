/*
 * paths.c - where the control socket lives (see paths.h).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "paths.h"
#include "shmq.h"

static int fits_sun_path(const char *p, size_t size)
{
	struct sockaddr_un un;
	size_t n = strlen(p);
	return n > 0 && n < sizeof(un.sun_path) && n < size;
}

int paths_user_socket(char *buf, size_t size)
{
	const char *env = getenv("SHMQ_SOCKET");
	const char *xdg = getenv("XDG_RUNTIME_DIR");
	int n;

	if (env && *env) {
		if (!fits_sun_path(env, size))
			return SHMQ_EINVAL;
		strcpy(buf, env);
		return SHMQ_OK;
	}
	if (xdg && xdg[0] == '/')
		n = snprintf(buf, size, "%s/shmq/shmqd.sock", xdg);
	else
		n = snprintf(buf, size, "/tmp/shmq-%u/shmqd.sock",
			     (unsigned)getuid());
	if (n < 0 || !fits_sun_path(buf, size))
		return SHMQ_EINVAL;
	return SHMQ_OK;
}

int paths_client_socket(char *buf, size_t size, int *per_user)
{
	const char *env = getenv("SHMQ_SOCKET");
	struct stat st;

	*per_user = 1;
	if (!(env && *env) && stat(SHMQ_SYSTEM_SOCKET, &st) == 0 &&
	    S_ISSOCK(st.st_mode)) {
		if (size <= strlen(SHMQ_SYSTEM_SOCKET))
			return SHMQ_EINVAL;
		strcpy(buf, SHMQ_SYSTEM_SOCKET);
		*per_user = 0;
		return SHMQ_OK;
	}
	return paths_user_socket(buf, size);
}

int paths_make_dir(const char *sock, unsigned mode)
{
	char dir[sizeof(((struct sockaddr_un *)0)->sun_path)];
	char *slash;

	if (strlen(sock) >= sizeof(dir))
		return SHMQ_EINVAL;
	strcpy(dir, sock);
	slash = strrchr(dir, '/');
	if (slash == NULL || slash == dir)
		return SHMQ_OK;
	*slash = '\0';
	if (mkdir(dir, mode) < 0 && errno != EEXIST)
		return SHMQ_ESYS;
	/* A directory that is there already must be one we can trust with
	 * our socket: ours (or root's), and nobody else's to write in unless
	 * it is sticky like /tmp.  Otherwise another user who made
	 * /tmp/shmq-UID first could put a socket of theirs in our place. */
	struct stat st;
	if (lstat(dir, &st) < 0)
		return SHMQ_ESYS;
	if (!S_ISDIR(st.st_mode)) {
		errno = ENOTDIR;
		return SHMQ_ESYS;
	}
	if ((st.st_uid != geteuid() && st.st_uid != 0) ||
	    ((st.st_mode & 022) && !(st.st_mode & S_ISVTX))) {
		errno = EPERM;
		return SHMQ_EACCES;
	}
	return SHMQ_OK;
}

void paths_segment_prefix(const char *sock, char *buf, size_t size)
{
	uint64_t h = UINT64_C(0xcbf29ce484222325);      /* FNV-1a */

	for (const unsigned char *p = (const unsigned char *)sock; *p; p++) {
		h ^= *p;
		h *= UINT64_C(0x100000001b3);
	}
	snprintf(buf, size, "shmq.%016" PRIx64 ".", h);
}
