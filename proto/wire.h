/*
 * wire.h - building and checking control packets (see shmq_wire.h).
 *
 * Both ends use these: shmqd to check requests, libshmq to check replies.
 * Nothing here does I/O.  A packet is trusted only after wire_check_*()
 * returned SHMQ_OK for it.
 */
#ifndef SHMQ_WIRE_CODEC_H
#define SHMQ_WIRE_CODEC_H

#include <stddef.h>
#include <stdint.h>

#include "shmq.h"
#include "shmq_wire.h"

/* Writes header and body into buf (SHMQ_WIRE_MAX bytes); returns the packet
 * length. */
size_t wire_pack(void *buf, uint16_t type, uint32_t seq, const void *body,
		 size_t body_len);

/* Checks a request packet.  SHMQ_OK: *type, *seq and *body are set and the
 * body is well formed.  SHMQ_EINVAL/SHMQ_ENAME: the header is sound (so
 * *type and *seq are set and an error reply can be sent) but the body is
 * not.  SHMQ_EPROTO: the header itself is bad; drop the connection. */
int wire_check_request(const void *pkt, size_t len, uint16_t *type,
		       uint32_t *seq, const void **body);

/* Is `type` a request that gets no reply (a DETACH or a BLOCKED with
 * SHMQ_MSG_NOREPLY)? */
int wire_noreply(uint16_t type);

/* Checks a reply to request `type` number `seq`.  On SHMQ_OK *body points
 * at the body (starting with struct shmq_wire_status) of *body_len bytes. */
int wire_check_reply(const void *pkt, size_t len, uint16_t type,
		     uint32_t seq, const void **body, size_t *body_len);

/* SHMQ_OK if the `cap`-byte field holds a NUL-terminated valid queue name
 * (or, with allow_empty, the empty string). */
int wire_check_name(const char *field, size_t cap, int allow_empty);

void wire_stat_pack(struct shmq_wire_stat *w, const struct shmq_stat *s);
void wire_stat_unpack(struct shmq_stat *s, const struct shmq_wire_stat *w);
void wire_dl_unpack(struct shmq_deadlock_wait *d,
		    const struct shmq_wire_dl_wait *w);

#endif /* SHMQ_WIRE_CODEC_H */
