/*
 * rnd.c - reproducible randomness (see rnd.h).
 */
#include <stdlib.h>

#include "rnd.h"

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

uint64_t rnd(void)
{
	uint64_t x = rng_state;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	rng_state = x;
	return x * 0x2545f4914f6cdd1dull;
}

void rnd_seed_from_env(void)
{
	const char *seed = getenv("SHMQ_TEST_SEED");

	if (seed)
		rng_state = strtoull(seed, NULL, 0) | 1;
}
