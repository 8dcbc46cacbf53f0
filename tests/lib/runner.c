/*
 * runner.c - the main() every Check suite shares (see runner.h).
 */
#include <signal.h>
#include <stdlib.h>

#include "harness.h"
#include "rnd.h"
#include "runner.h"

int run_suite(Suite *s, const char *name)
{
	SRunner *sr;
	int failed;

	harness_init(name);
	signal(SIGPIPE, SIG_IGN);
	rnd_seed_from_env();
	sr = srunner_create(s);
	srunner_set_fork_status(sr, CK_FORK);
	srunner_run_all(sr, CK_ENV);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	harness_sweep();
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
