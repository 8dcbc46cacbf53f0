/*
 * check_permissions.c - shmqd deciding access from the peer's
 * credentials.
 *
 * Owns who may do what to a queue: the owner and root everything; others
 * by the queue's mode bits (read: consume, observe, stat; write: produce;
 * closing needs write; delete is the owner's), group bits through
 * supplementary groups, a listing that shows only what one may read, a
 * dead-letter queue only for a consumer that may write it,
 * queues owned by whoever created them, and segments out of everyone's
 * reach but the daemon's.  The children run as uid/gid 65534, so the
 * suite needs root.
 *
 * Rules every integration suite keeps (tests/lib/): it runs the real
 * built shmqd (harness.h) and real client processes on real shared
 * memory, nothing mocked; every test is bounded in time (Check's timeout,
 * and a timeout on every blocking call); no verdict rests on a sleep
 * (channels carry handshakes; WAIT_UNTIL polls, with a bound, what offers
 * none); and it leaves nothing behind (daemon_cleanup() in the test,
 * harness_sweep() after a test that died).  Children never call
 * ck_assert: they exit CHILD_FAIL, and the test's CHILD_OK fails.
 */
#define _GNU_SOURCE
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lib/checks.h"
#include "lib/harness.h"
#include "lib/queue.h"
#include "lib/runner.h"
#include "lib/users.h"

/* ======================================================================= */
/* Permissions                                                             */

/* The /dev/shm objects of daemon `d`, each checked with `fn`; returns
 * how many there were, or a negative number if `fn` refused one. */
struct verdicts {
	int (*fn)(const char *path);
	int n;
};

static void judge(const char *path, void *arg)
{
	struct verdicts *v = arg;

	if (v->fn(path) != 0)
		v->n = -1000;
	v->n++;
}

static int each_segment(const struct daemon *d, int (*fn)(const char *))
{
	struct verdicts v = { fn, 0 };

	daemon_each_segment(d, judge, &v);
	return v.n;
}

static int refused_to_others(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd >= 0) {
		close(fd);
		fprintf(stderr, "uid %u could open %s\n", getuid(), path);
		return -1;
	}
	return errno == EACCES ? 0 : -1;
}

static int private_to_daemon(const char *path)
{
	struct stat st;

	if (stat(path, &st) < 0 || !S_ISREG(st.st_mode) ||
	    (st.st_mode & 07777) != 0600 || st.st_uid != geteuid()) {
		fprintf(stderr, "%s: not a 0600 file of uid %u\n", path,
			geteuid());
		return -1;
	}
	return 0;
}

START_TEST(test_permissions)
{
	static const char *const queues[] = { "priv", "ro", "rw", "grp" };
	static const uint32_t modes[] = { 0600, 0644, 0666, 0640 };
	struct shmq_stat st, *list;
	struct daemon d;
	shmq_t *q;
	size_t n;
	pid_t pid;

	ck_assert_int_eq(daemon_start(&d, NULL), 0);
	share_socket(&d);
	for (int i = 0; i < 4; i++) {
		create_q(queues[i], 8, 64, modes[i], 0);
		q = open_q(queues[i], SHMQ_PRODUCER);
		put_str(q, "m");
		RC_EQ(shmq_detach(q), SHMQ_OK);
	}

	/* Another user, in no group of ours. */
	pid = harness_fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		char buf[16];
		size_t len;
		shmq_t *h;

		become_nobody(NULL, 0);
		CHILD_CHECK(access(d.sock, R_OK | W_OK) == 0);

		/* 0600 of root: nothing at all. */
		CHILD_RC(shmq_open("priv", SHMQ_PRODUCER, &h), SHMQ_EACCES);
		CHILD_RC(shmq_open("priv", SHMQ_CONSUMER, &h), SHMQ_EACCES);
		CHILD_RC(shmq_open("priv", 0, &h), SHMQ_EACCES);
		CHILD_RC(shmq_stat_name("priv", &st), SHMQ_EACCES);
		CHILD_RC(shmq_close_name("priv", SHMQ_CLOSE_NOW, NULL),
			 SHMQ_EACCES);
		CHILD_RC(shmq_delete("priv"), SHMQ_EACCES);

		/* 0644: read (consume, observe, stat), not write. */
		CHILD_RC(shmq_stat_name("ro", &st), SHMQ_OK);
		CHILD_CHECK(st.messages == 1 && st.uid == 0);
		CHILD_RC(shmq_open("ro", 0, &h), SHMQ_OK);
		CHILD_RC(shmq_close(h, SHMQ_CLOSE_DRAIN, NULL), SHMQ_EACCES);
		CHILD_RC(shmq_detach(h), SHMQ_OK);
		CHILD_RC(shmq_open("ro", SHMQ_CONSUMER, &h), SHMQ_OK);
		CHILD_RC(shmq_detach(h), SHMQ_OK);
		CHILD_RC(shmq_open("ro", SHMQ_PRODUCER, &h), SHMQ_EACCES);
		CHILD_RC(shmq_open("ro", SHMQ_PRODUCER | SHMQ_CONSUMER, &h),
			 SHMQ_EACCES);
		CHILD_RC(shmq_close_name("ro", SHMQ_CLOSE_DRAIN, NULL),
			 SHMQ_EACCES);
		CHILD_RC(shmq_delete("ro"), SHMQ_EACCES);

		/* 0640 with root's group: others get nothing. */
		CHILD_RC(shmq_open("grp", SHMQ_CONSUMER, &h), SHMQ_EACCES);

		/* 0666: produce and consume; close too; delete is the
		 * owner's alone. */
		CHILD_RC(shmq_open("rw", SHMQ_PRODUCER | SHMQ_CONSUMER, &h),
			 SHMQ_OK);
		CHILD_RC(shmq_put(h, "n", 1, 5000), SHMQ_OK);
		CHILD_RC(shmq_get(h, buf, sizeof(buf), &len, 5000), SHMQ_OK);
		CHILD_CHECK(len == 1 && buf[0] == 'm');
		CHILD_RC(shmq_detach(h), SHMQ_OK);
		CHILD_RC(shmq_delete("rw"), SHMQ_EACCES);
		CHILD_RC(shmq_close_name("rw", SHMQ_CLOSE_DRAIN, NULL),
			 SHMQ_OK);

		/* What this user creates is its own. */
		CHILD_RC(shmq_create("mine", NULL, 0), SHMQ_OK);
		CHILD_RC(shmq_stat_name("mine", &st), SHMQ_OK);
		CHILD_CHECK(st.uid == NOBODY && st.gid == NOBODY);
		CHILD_CHECK(st.mode == 0600);
		CHILD_RC(shmq_create("mine2", NULL, 0), SHMQ_OK);
		CHILD_RC(shmq_delete("mine2"), SHMQ_OK);

		/* The listing shows only what this user may read. */
		CHILD_RC(shmq_list(&list, &n), SHMQ_OK);
		CHILD_CHECK(n == 3);
		CHILD_CHECK(strcmp(list[0].name, "mine") == 0);
		CHILD_CHECK(strcmp(list[1].name, "ro") == 0);
		CHILD_CHECK(strcmp(list[2].name, "rw") == 0);
		free(list);

		/* The segments themselves are out of reach: access goes
		 * through the daemon. */
		CHILD_CHECK(each_segment(&d, refused_to_others) >= 8);
		_exit(0);
	}
	CHILD_OK(pid);

	/* Another user in root's group (supplementary): group bits. */
	pid = harness_fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		static const gid_t root_group[] = { 0 };
		shmq_t *h;

		become_nobody(root_group, 1);
		CHILD_RC(shmq_open("grp", SHMQ_CONSUMER, &h), SHMQ_OK);
		CHILD_RC(shmq_detach(h), SHMQ_OK);
		CHILD_RC(shmq_open("grp", SHMQ_PRODUCER, &h), SHMQ_EACCES);
		CHILD_RC(shmq_open("priv", SHMQ_CONSUMER, &h), SHMQ_EACCES);
		CHILD_RC(shmq_list(&list, &n), SHMQ_OK);
		CHILD_CHECK(n == 4);    /* grp, mine, ro, rw */
		free(list);
		_exit(0);
	}
	CHILD_OK(pid);

	/* Nothing the other user was refused happened anyway. */
	st = stat_name("priv");
	ck_assert_uint_eq(st.messages, 1);
	ck_assert_int_eq(st.state, SHMQ_STATE_OPEN);
	st = stat_name("ro");
	ck_assert_uint_eq(st.messages, 1);
	ck_assert_int_eq(st.state, SHMQ_STATE_OPEN);
	st = stat_name("rw");
	ck_assert_uint_eq(st.messages, 1);
	ck_assert_int_eq(st.state, SHMQ_STATE_CLOSED);
	st = stat_name("mine");
	ck_assert_uint_eq(st.uid, NOBODY);
	ck_assert_uint_eq(st.gid, NOBODY);
	RC_EQ(shmq_stat_name("mine2", &st), SHMQ_ENOENT);
	/* Root may use and delete anybody's queue. */
	q = open_q("mine", SHMQ_PRODUCER | SHMQ_CONSUMER);
	RC_EQ(shmq_detach(q), SHMQ_OK);
	RC_EQ(shmq_list(&list, &n), SHMQ_OK);
	ck_assert_uint_eq(n, 5);
	free(list);
	ck_assert_int_eq(each_segment(&d, private_to_daemon), 10);
	RC_EQ(shmq_delete("mine"), SHMQ_OK);
	ck_assert_int_eq(daemon_cleanup(&d), 0);
}
END_TEST

/* How many queue segments (files under /dev/shm) this process maps. */
static int shm_mappings(void)
{
	FILE *f = fopen("/proc/self/maps", "r");
	char line[512];
	int n = 0;

	if (f == NULL)
		return -1;
	while (fgets(line, sizeof(line), f))
		n += strstr(line, "/dev/shm/") != NULL;
	fclose(f);
	return n;
}

/* A consumer of an acked queue gets its dead-letter queue only if it may
 * write there itself: the handle maps it read-write.  A consumer that
 * may not leaves its dead letters waiting, and one that may moves them. */
START_TEST(test_dead_letter_permission)
{
	struct shmq_stat st;
	struct shmq_attr a;
	struct daemon d;
	char buf[64];
	size_t len;

	ck_assert_int_eq(daemon_start(&d, NULL), 0);
	share_socket(&d);
	create_q("dd", 8, 64, 0600, 0);
	a = attr_of(8, 64, 0644, SHMQ_ACKED);
	a.dead_letter = "dd";
	RC_EQ(shmq_create("w", &a, 0), SHMQ_OK);
	shmq_t *q = open_q("w", SHMQ_PRODUCER);
	put_str(q, "m0");
	put_str(q, "m1");

	pid_t pid = harness_fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		struct shmq_msg m;
		shmq_t *h;

		/* (The mappings inherited from the test count too.) */
		int mapped = shm_mappings();
		become_nobody(NULL, 0);
		CHILD_RC(shmq_open("dd", SHMQ_PRODUCER, &h), SHMQ_EACCES);
		CHILD_RC(shmq_open("w", SHMQ_CONSUMER, &h), SHMQ_OK);
		CHILD_RC(shmq_lease(h, buf, sizeof(buf), &m, 5000), SHMQ_OK);
		CHILD_CHECK(m.len == 2 && memcmp(m.data, "m0", 2) == 0);
		CHILD_RC(shmq_nack(h, &m, SHMQ_NACK_DEAD), SHMQ_OK);
		/* Waiting, not moved: this process never mapped "dd". */
		CHILD_RC(shmq_stat(h, &st), SHMQ_OK);
		CHILD_CHECK(st.dead_lettered == 0 && st.returned == 1);
		CHILD_CHECK(shm_mappings() == mapped + 1);
		CHILD_RC(shmq_detach(h), SHMQ_OK);
		_exit(0);
	}
	CHILD_OK(pid);
	st = stat_name("dd");
	ck_assert_uint_eq(st.messages, 0);
	/* The owner's consumer may: it moves the letter when it is due. */
	shmq_t *c = open_q("w", SHMQ_CONSUMER);
	shmq_t *dl = open_q("dd", SHMQ_CONSUMER);
	get_str(c, "m1");
	ck_assert_msg(WAIT_UNTIL(shmq_get(c, buf, sizeof(buf), &len,
					  SHMQ_NOWAIT) == SHMQ_EAGAIN &&
					 stat_q(c).dead_lettered == 1,
				 WAIT_MS),
		      "the dead letter was never moved");
	get_str(dl, "m0");
	RC_EQ(shmq_detach(dl), SHMQ_OK);
	RC_EQ(shmq_detach(c), SHMQ_OK);
	RC_EQ(shmq_detach(q), SHMQ_OK);
	ck_assert_int_eq(daemon_cleanup(&d), 0);
}
END_TEST

/* ======================================================================= */

static Suite *permissions_suite(void)
{
	Suite *s = suite_create("permissions");
	TCase *tc;

	tc = tcase_create("permissions");
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_permissions);
	tcase_add_test(tc, test_dead_letter_permission);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return run_suite(permissions_suite(), "permissions");
}
