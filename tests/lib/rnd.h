/*
 * rnd.h - reproducible randomness for the fuzz loops of the suites.
 *
 * Owns the one generator (xorshift64*) the suites draw from.  Every test
 * starts from the same state (Check forks it from the runner, which never
 * draws), so a failure replays; SHMQ_TEST_SEED picks another sequence.
 */
#ifndef SHMQ_TEST_RND_H
#define SHMQ_TEST_RND_H

#include <stdint.h>

uint64_t rnd(void);
/* Seeds from SHMQ_TEST_SEED if it is set (run_suite() calls this). */
void rnd_seed_from_env(void);

#endif /* SHMQ_TEST_RND_H */
