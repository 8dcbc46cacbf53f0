/*
 * rawconn.h - control connections a test drives packet by packet.
 *
 * Owns the tests' side of the wire protocol when a test must say what the
 * library never would (bad packets, unread replies, descriptors nobody
 * asked for) or watch what the library hides (hang-ups, the daemon's pid).
 * It is built on the real code: the connect and HELLO of client/control.c
 * (control_connect) and the packing and checks of proto/wire.c; it adds
 * only the telling apart of the ways a reply can fail to come.  Also the
 * daemon's side of a connection, for the library's tests against a
 * daemon that misbehaves.
 */
#ifndef SHMQ_TEST_RAWCONN_H
#define SHMQ_TEST_RAWCONN_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "shmq_wire.h"
#include "wire.h"

/* What raw_reply() saw instead of a reply's status. */
#define RAW_EOF     1000        /* the daemon hung up */
#define RAW_TIMEOUT 1001        /* nothing within 5 s */
#define RAW_GARBLED 1002        /* something that is not a sound reply */
#define RAW_RESET   1003        /* ECONNRESET: the daemon hung up on
				   requests it had not read; replies it sent
				   before may still follow */

/* Whether `rc` says the daemon dropped the connection. */
int dropped(int rc);

/* No assertions in these: children use them too. */

/* A connection, without HELLO, with 5 s send and receive timeouts; -1
 * with errno from connect(2) if there is none. */
int raw_connect(const char *path);
int raw_send(int fd, const void *pkt, size_t len);
/* A request with a sound header (wire_pack). */
int raw_request(int fd, uint16_t type, uint32_t seq, const void *body,
		size_t len);
/* Reads one packet and returns the reply's status, or RAW_*.  With
 * `type` non-zero the reply must answer request `type` number `seq`
 * (wire_check_reply); with 0, any sound reply will do.  The body (from
 * the status on) goes to `body`, at most `cap` bytes. */
int raw_reply(int fd, uint16_t type, uint32_t seq, void *body, size_t cap);
/* Says HELLO (number 1); the status, and the daemon's pid if asked. */
int raw_hello(int fd, pid_t *daemon_pid);
/* The pid of the daemon answering on `sock`, or -1. */
pid_t daemon_pid_of(const char *sock);

/* The daemon's side, for a stand-in that fails the way shmqd never
 * would (answers nothing, reads nothing, hangs up half-way through a
 * listing): the library's answer to those is what is tested.
 *
 * A socket listening at `path` (removed first), or -1 with errno. */
int listen_at(const char *path, int backlog);
/* Accepts one connection on `lfd` and answers its HELLO as shmqd does.
 * The connection, or -1. */
int fake_accept(int lfd);
/* Reads one request (checked by wire_check_request): 0 with its type and
 * number, or -1. */
int fake_request(int fd, uint16_t *type, uint32_t *seq);
/* Sends the reply to request `type` number `seq`: 0 or -1. */
int fake_reply(int fd, uint16_t type, uint32_t seq, const void *body,
	       size_t len);

/* In the test: a connection that must succeed, without and with the
 * library's own HELLO. */
int connect_ok(const char *sock);
int connect_hello(const char *sock);
/* Sends `pkt` with `n` (at most 32) descriptors attached. */
void send_with_fds(int sock, const void *pkt, size_t len, const int *fds,
		   int n);

#endif /* SHMQ_TEST_RAWCONN_H */
