/*
 * fuzz_wire.c - libFuzzer target: the packet checks of proto/wire.c.
 *
 * Every byte string must be either accepted with sane fields or refused;
 * nothing may read outside the packet.  Run with `make fuzz`.
 */
#include <stdint.h>
#include <string.h>

#include "wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* Exactly `size` bytes on the heap, so ASan sees any overread. */
	static _Alignas(16) char pkt[SHMQ_WIRE_MAX];
	const void *body;
	size_t body_len;
	uint16_t type = 0;
	uint32_t seq = 0;

	if (size > sizeof(pkt))
		return 0;
	memcpy(pkt, data, size);
	if (wire_check_request(pkt, size, &type, &seq, &body) == SHMQ_OK &&
	    ((const char *)body < pkt || (const char *)body > pkt + size))
		__builtin_trap();
	if (size >= sizeof(struct shmq_wire_hdr)) {
		struct shmq_wire_hdr h;
		memcpy(&h, pkt, sizeof(h));
		if (wire_check_reply(pkt, size, h.type & ~SHMQ_MSG_REPLY, h.seq,
				     &body, &body_len) == SHMQ_OK &&
		    (const char *)body + body_len > pkt + size)
			__builtin_trap();
	}
	return 0;
}
