/*
 * check_quota.c - one user cannot exhaust shmqd for the others.
 *
 * Owns the per-user quotas and the global byte limit (daemon/quota.c):
 * a second uid (65534) reserving shared memory, owning queues, holding
 * connections and open handles up to its quota and no further, with a
 * refusal that names the quota, the usage and the limit and harms nothing
 * queued; the daemon's own uid still served; usage given back at delete,
 * detach and exit; every user recounted by a daemon restarted after
 * kill -9; the defaults (a quarter of /dev/shm and of each limit); who
 * may see whose usage; one log line per quota hit; bad option values.
 *
 * The byte tests run in a private mount namespace with a small tmpfs on
 * /dev/shm (as tests/exhaustion.sh does): what the daemon counts must
 * match what /dev/shm really holds, and a quarter of it is quickly
 * reached.  The suite switches uids and mounts, so it needs root; it is
 * skipped (77) otherwise.  The rules of every integration suite hold
 * (tests/lib/): real shmqd, real processes, bounded waits, no verdict
 * from a sleep, nothing left behind.
 */
#define _GNU_SOURCE
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lib/chan.h"
#include "lib/checks.h"
#include "lib/clock.h"
#include "lib/harness.h"
#include "lib/queue.h"
#include "lib/rawconn.h"
#include "lib/runner.h"
#include "lib/segment.h"
#include "lib/users.h"

#define OTHER ((uid_t)65533)    /* a third user */
#define MIB (UINT64_C(1) << 20)

/* ======================================================================= */
/* Helpers                                                                 */

/* Mounts a tmpfs of `size` on /dev/shm in a mount namespace of this test
 * process alone: the daemon it starts inherits it, and it vanishes with
 * the last of them. */
static void private_shm(const char *size)
{
	char opts[64];

	snprintf(opts, sizeof(opts), "size=%s,mode=1777", size);
	ck_assert_msg(unshare(CLONE_NEWNS) == 0, "unshare: %s",
		      strerror(errno));
	ck_assert_int_eq(mount("none", "/", NULL, MS_REC | MS_PRIVATE, NULL),
			 0);
	ck_assert_msg(mount("tmpfs", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV,
			    opts) == 0, "mount: %s", strerror(errno));
}

/* What /dev/shm holds now, as the kernel counts it. */
static uint64_t shm_used(void)
{
	struct statvfs sv;

	if (statvfs("/dev/shm", &sv) < 0)
		return UINT64_MAX;
	return (uint64_t)(sv.f_blocks - sv.f_bfree) * sv.f_frsize;
}

/* The entry of `uid` in shmq_users() (zeroed with the uid if it is not
 * listed), and the totals.  No assertion: children use it. */
static int user_of(uid_t uid, struct shmq_user *u, struct shmq_user *total)
{
	struct shmq_user *list;
	size_t n;
	int rc = shmq_users(&list, &n, total);

	memset(u, 0, sizeof(*u));
	u->uid = uid;
	if (rc != SHMQ_OK)
		return rc;
	for (size_t i = 0; i < n; i++)
		if (list[i].uid == uid)
			*u = list[i];
	free(list);
	return SHMQ_OK;
}

static struct shmq_user usage_of(uid_t uid)
{
	struct shmq_user u;

	RC_EQ(user_of(uid, &u, NULL), SHMQ_OK);
	return u;
}

/* How many lines of the file at `path` contain `needle`. */
static int lines_with(const char *path, const char *needle)
{
	char line[1024];
	FILE *f = fopen(path, "re");
	int n = 0;

	if (f == NULL)
		return -1;
	while (fgets(line, sizeof(line), f))
		n += strstr(line, needle) != NULL;
	fclose(f);
	return n;
}

static int has(const char *s, const char *needle)
{
	return strstr(s, needle) != NULL;
}

/* A queue of about 290 KiB: 16 messages of 16 KiB. */
static int create_mid(const char *name, uint32_t mode)
{
	struct shmq_attr a = attr_of(16, 16384, mode, 0);

	return shmq_create(name, &a, 0);
}

/* A queue of 16 KiB or so. */
static int create_small(const char *name)
{
	struct shmq_attr a = attr_of(8, 64, 0600, 0);

	return shmq_create(name, &a, 0);
}

/* ======================================================================= */
/* Bytes                                                                   */

/* What quotas are for: on an 8 MiB /dev/shm, with a 2 MiB quota, the
 * second uid creates queues until refused, never past its quota; the
 * daemon's owner creates afterwards; a delete lets the user create
 * again; and the first hit, not each refusal, is logged. */
START_TEST(test_bytes_quota)
{
	char *const args[] = { "--user-max-bytes", "2M", NULL };
	struct shmq_user u, total;
	struct shmq_stat st;
	struct daemon d;
	pid_t pid;

	private_shm("8m");
	ck_assert_int_eq(daemon_start(&d, args), 0);
	share_socket(&d);
	ck_assert_uint_eq(shm_used(), 0);

	pid = harness_fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		char name[32];
		shmq_t *q;
		int rc, i;

		become_nobody(NULL, 0);
		for (i = 0; i < 100; i++) {
			snprintf(name, sizeof(name), "n%d", i);
			rc = create_mid(name, 0600);
			if (rc != SHMQ_OK)
				break;
			/* Never past the quota; and what the daemon counts
			 * is what /dev/shm holds (it holds nothing else). */
			CHILD_RC(user_of(NOBODY, &u, NULL), SHMQ_OK);
			CHILD_CHECK(u.bytes <= 2 * MIB);
			CHILD_CHECK(u.max_bytes == 2 * MIB);
			CHILD_EQ(u.bytes, shm_used());
			CHILD_EQ(u.queues, i + 1);
			if (i == 0) {
				CHILD_RC(shmq_open("n0", SHMQ_PRODUCER, &q),
					 SHMQ_OK);
				CHILD_RC(shmq_put(q, "kept", 4, 1000), SHMQ_OK);
				CHILD_RC(shmq_detach(q), SHMQ_OK);
			}
		}
		CHILD_RC(rc, SHMQ_ELIMIT);
		CHILD_CHECK(i >= 4);
		char why[SHMQ_WIRE_DETAIL];
		snprintf(why, sizeof(why), "%s", shmq_error_detail());
		fprintf(stderr, "# refused after %d queues: %s\n", i, why);
		CHILD_CHECK(has(why, "uid 65534"));
		CHILD_CHECK(has(why, "--user-max-bytes"));
		CHILD_CHECK(has(why, "> 2097152"));
		/* The usage is named too. */
		CHILD_RC(user_of(NOBODY, &u, NULL), SHMQ_OK);
		snprintf(name, sizeof(name), ": %llu reserved",
			 (unsigned long long)u.bytes);
		CHILD_CHECK(has(why, name));
		/* Refused again and again: nothing more is logged. */
		CHILD_RC(create_mid("x1", 0600), SHMQ_ELIMIT);
		CHILD_RC(create_mid("x2", 0600), SHMQ_ELIMIT);
		CHILD_RC(shmq_stat_name("x1", &st), SHMQ_ENOENT);
		_exit(0);
	}
	CHILD_OK(pid);

	u = usage_of(NOBODY);
	ck_assert_uint_le(u.bytes, 2 * MIB);
	ck_assert_uint_gt(u.bytes, 2 * MIB - 300 * 1024);   /* filled up */
	ck_assert_uint_eq(u.bytes, shm_used());
	ck_assert_int_eq(u.flags & SHMQ_USER_EXEMPT, 0);
	/* Nothing queued was harmed. */
	st = stat_name("n0");
	ck_assert_uint_eq(st.messages, 1);
	ck_assert_uint_eq(st.uid, NOBODY);
	ck_assert_int_eq(lines_with(d.log, "uid 65534 over its byte quota"),
			 1);

	/* The daemon's owner is not bound by the user's quota. */
	struct shmq_attr big = attr_of(64, 32768, 0600, 0);
	RC_EQ(shmq_create("root-big", &big, 0), SHMQ_OK);
	RC_EQ(user_of(0, &u, &total), SHMQ_OK);
	ck_assert_uint_gt(u.bytes, 2 * MIB);
	ck_assert_int_ne(u.flags & SHMQ_USER_EXEMPT, 0);
	ck_assert_uint_eq(total.bytes, shm_used());

	/* A delete gives the bytes back at once. */
	pid = harness_fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		become_nobody(NULL, 0);
		CHILD_RC(create_mid("again", 0600), SHMQ_ELIMIT);
		CHILD_RC(shmq_delete("n1"), SHMQ_OK);
		CHILD_RC(create_mid("again", 0600), SHMQ_OK);
		CHILD_RC(create_mid("again2", 0600), SHMQ_ELIMIT);
		_exit(0);
	}
	CHILD_OK(pid);
	/* Refused, fell, hit again within the minute: still one line. */
	ck_assert_int_eq(lines_with(d.log, "uid 65534 over its byte quota"),
			 1);
	RC_EQ(user_of(NOBODY, &u, &total), SHMQ_OK);
	ck_assert_uint_le(u.bytes, 2 * MIB);
	ck_assert_uint_eq(total.bytes, shm_used());
	ck_assert_int_eq(daemon_cleanup(&d), 0);
}
END_TEST

/* A deleted queue that is still open keeps its memory, so it stays
 * charged until the last handle detaches; its place among the user's
 * queues is free at once. */
START_TEST(test_bytes_deleted_open)
{
	char *const args[] = { "--user-max-queues", "1", NULL };
	/* The record's bytes: one page. */
	uint64_t page = (uint64_t)sysconf(_SC_PAGESIZE);
	struct shmq_user u;
	struct daemon d;
	shmq_t *q;
	uint64_t one;

	private_shm("8m");
	ck_assert_int_eq(daemon_start(&d, args), 0);
	share_socket(&d);
	pid_t pid = harness_fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		become_nobody(NULL, 0);
		CHILD_RC(create_mid("a", 0600), SHMQ_OK);
		CHILD_RC(create_mid("b", 0600), SHMQ_ELIMIT);
		CHILD_CHECK(has(shmq_error_detail(),
				"uid 65534 at its queue quota "
				"(--user-max-queues): 1 of 1 in use"));
		CHILD_RC(user_of(NOBODY, &u, NULL), SHMQ_OK);
		one = u.bytes;
		CHILD_RC(shmq_open("a", SHMQ_CONSUMER, &q), SHMQ_OK);
		CHILD_RC(shmq_delete("a"), SHMQ_OK);
		/* Its record is gone, its segment still mapped: held. */
		CHILD_RC(user_of(NOBODY, &u, NULL), SHMQ_OK);
		CHILD_EQ(u.queues, 0);
		CHILD_EQ(u.bytes, shm_used());
		CHILD_EQ(u.bytes, one - page);
		CHILD_EQ(u.handles, 1);
		CHILD_RC(create_mid("b", 0600), SHMQ_OK);
		CHILD_RC(user_of(NOBODY, &u, NULL), SHMQ_OK);
		CHILD_EQ(u.bytes, 2 * one - page);
		CHILD_EQ(u.bytes, shm_used());
		/* The detach asks for no reply, but the daemon reads this
		 * connection in order: it has freed the memory before it
		 * answers the next request. */
		CHILD_RC(shmq_detach(q), SHMQ_OK);
		CHILD_RC(user_of(NOBODY, &u, NULL), SHMQ_OK);
		CHILD_EQ(u.bytes, one);
		CHILD_EQ(u.handles, 0);
		CHILD_EQ(shm_used(), one);
		_exit(0);
	}
	CHILD_OK(pid);
	ck_assert_int_eq(daemon_cleanup(&d), 0);
}
END_TEST

/* Whether this process maps an object of daemon `d` (its queues'
 * segments show in /proc/self/maps under their /dev/shm names). */
static int maps_segment_of(const struct daemon *d)
{
	char line[512];
	FILE *f = fopen("/proc/self/maps", "re");
	int found = 0;

	if (f == NULL)
		return -1;
	while (fgets(line, sizeof(line), f))
		found |= strstr(line, d->prefix) != NULL;
	fclose(f);
	return found;
}

/* The reviewer's fork trick, round after round: create, open, fork a
 * child that sleeps, detach and delete in the parent.  The child gets no
 * copy of the mapping (libshmq maps with MADV_DONTFORK), so the memory
 * of each deleted queue is freed when the daemon gives it back: /dev/shm
 * holds what the daemon counts, and never more than the quota. */
START_TEST(test_bytes_fork)
{
	char *const args[] = { "--user-max-bytes", "1M", NULL };
	struct daemon d;
	pid_t pid;

	private_shm("8m");
	ck_assert_int_eq(daemon_start(&d, args), 0);
	share_socket(&d);
	pid = harness_fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		pid_t kids[12];
		struct shmq_user u;
		char name[32], c;
		shmq_t *q;
		int p[2];

		become_nobody(NULL, 0);
		for (int i = 0; i < 12; i++) {
			snprintf(name, sizeof(name), "f%d", i);
			CHILD_RC(create_mid(name, 0600), SHMQ_OK);
			CHILD_RC(shmq_open(name, SHMQ_CONSUMER, &q), SHMQ_OK);
			CHILD_CHECK(maps_segment_of(&d) == 1);
			CHILD_CHECK(pipe(p) == 0);
			kids[i] = harness_fork();
			CHILD_CHECK(kids[i] >= 0);
			if (kids[i] == 0) {
				/* Says whether it inherited the mapping,
				 * then sleeps until killed. */
				c = maps_segment_of(&d) == 0 ? 'n' : 'y';
				if (write(p[1], &c, 1) != 1)
					_exit(CHILD_FAIL);
				pause();
				_exit(0);
			}
			close(p[1]);
			CHILD_CHECK(read(p[0], &c, 1) == 1);
			close(p[0]);
			CHILD_CHECK(c == 'n');
			CHILD_RC(shmq_detach(q), SHMQ_OK);
			CHILD_RC(shmq_delete(name), SHMQ_OK);
			CHILD_RC(user_of(NOBODY, &u, NULL), SHMQ_OK);
			CHILD_EQ(u.bytes, 0);
			CHILD_EQ(shm_used(), 0);
		}
		for (int i = 0; i < 12; i++) {
			kill(kids[i], SIGKILL);
			harness_wait(kids[i], WAIT_MS);
		}
		_exit(0);
	}
	CHILD_OK(pid);
	ck_assert_uint_eq(shm_used(), 0);
	ck_assert_int_eq(daemon_cleanup(&d), 0);
}
END_TEST

/* The exit status of a process that took SIGBUS. */
#define SIGBUS_EXIT 66

static void on_sigbus_exit(int sig)
{
	(void)sig;
	_exit(SIGBUS_EXIT);
}

/* A mapping that outlived its handle, made without libshmq (here the
 * test's own, of the segment's file): when the queue is deleted and
 * nobody has it open, the daemon truncates the segment, so the mapping
 * holds no memory and faults; the owner's bytes and /dev/shm agree. */
START_TEST(test_bytes_stray_mapping)
{
	struct shmq_seg_hdr *hdr;
	struct shmq_user u;
	struct daemon d;
	size_t size;
	pid_t pid;

	private_shm("8m");
	ck_assert_int_eq(daemon_start(&d, NULL), 0);
	share_socket(&d);
	pid = harness_fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		become_nobody(NULL, 0);
		CHILD_RC(create_mid("stray", 0600), SHMQ_OK);
		_exit(0);
	}
	CHILD_OK(pid);
	hdr = segment_map_only(&d, &size);
	((volatile char *)hdr)[size - 1] = 'x';        /* in use */
	u = usage_of(NOBODY);
	ck_assert_uint_gt(u.bytes, size);
	ck_assert_uint_eq(shm_used(), u.bytes);

	pid = harness_fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		become_nobody(NULL, 0);
		CHILD_RC(shmq_delete("stray"), SHMQ_OK);
		_exit(0);
	}
	CHILD_OK(pid);
	u = usage_of(NOBODY);
	ck_assert_uint_eq(u.bytes, 0);
	ck_assert_uint_eq(shm_used(), 0);
	/* The stray mapping is left with nothing behind it. */
	pid = harness_fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		/* Its own handler: the sanitizers would report the signal
		 * and exit 1, like any other failure. */
		signal(SIGBUS, on_sigbus_exit);
		volatile uint64_t magic = hdr->magic;
		(void)magic;
		_exit(0);
	}
	int st = harness_wait(pid, WAIT_MS);
	ck_assert_msg(exited_with(st, SIGBUS_EXIT),
		      "touching the stray mapping: %s", describe(st));
	munmap(hdr, size);
	ck_assert_int_eq(daemon_cleanup(&d), 0);
}
END_TEST

/* All of shmq together stays under --max-bytes (by default three
 * quarters of /dev/shm), the daemon's own uid included; and a user under
 * its quota can be refused by it, which names the global limit. */
START_TEST(test_global_bytes)
{
	char *const args[] = { "--max-bytes", "50%", NULL };
	struct shmq_user u, total;
	struct daemon d;
	char name[32];
	int rc, i;

	private_shm("8m");
	ck_assert_int_eq(daemon_start(&d, args), 0);
	share_socket(&d);
	for (i = 0; i < 100; i++) {
		snprintf(name, sizeof(name), "r%d", i);
		rc = create_mid(name, 0600);
		if (rc != SHMQ_OK)
			break;
		ck_assert_uint_le(shm_used(), 4 * MIB);
	}
	RC_EQ(rc, SHMQ_ELIMIT);
	ck_assert_msg(has(shmq_error_detail(), "daemon byte limit "
					       "(--max-bytes)") &&
		      has(shmq_error_detail(), "> 4194304"),
		      "detail: %s", shmq_error_detail());
	RC_EQ(user_of(0, &u, &total), SHMQ_OK);
	ck_assert_uint_eq(total.max_bytes, 4 * MIB);
	ck_assert_uint_eq(u.max_bytes, 4 * MIB);
	ck_assert_uint_eq(total.bytes, shm_used());
	ck_assert_uint_eq(total.max_handles, SHMQ_UNLIMITED);

	/* Another user, far under its own quota, meets the same wall. */
	pid_t pid = harness_fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		become_nobody(NULL, 0);
		CHILD_RC(create_mid("mine", 0600), SHMQ_ELIMIT);
		CHILD_CHECK(has(shmq_error_detail(), "--max-bytes"));
		_exit(0);
	}
	CHILD_OK(pid);
	RC_EQ(shmq_delete("r0"), SHMQ_OK);
	pid = harness_fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		become_nobody(NULL, 0);
		CHILD_RC(create_mid("mine", 0600), SHMQ_OK);
		_exit(0);
	}
	CHILD_OK(pid);
	ck_assert_int_eq(daemon_cleanup(&d), 0);
}
END_TEST

/* N% of `whole`, as shmqd computes it. */
static uint64_t pct(uint64_t whole, uint64_t n)
{
	return whole / 100 * n + whole % 100 * n / 100;
}

/* A tmpfs mounted without a size limit (size=0: statvfs counts no
 * blocks) can take all of the machine's memory: sizes in percent are of
 * the physical memory then, the default limits with them, and the daemon
 * says so.  (They used to resolve to 0 bytes, refusing every create.) */
START_TEST(test_unlimited_shm)
{
	uint64_t ram = (uint64_t)sysconf(_SC_PHYS_PAGES) *
		       (uint64_t)sysconf(_SC_PAGESIZE);
	struct shmq_user u, total;
	struct statvfs sv;
	struct daemon d;
	char want[200];
	pid_t pid;

	private_shm("0");
	ck_assert_int_eq(statvfs("/dev/shm", &sv), 0);
	ck_assert_uint_eq(sv.f_blocks, 0);
	ck_assert_int_eq(daemon_start(&d, NULL), 0);
	share_socket(&d);
	snprintf(want, sizeof(want), "sizes in %% are of physical memory "
		 "(/dev/shm has no size limit), %llu bytes",
		 (unsigned long long)ram);
	ck_assert_msg(file_contains(d.log, want), "no '%s' in the log", want);
	RC_EQ(create_mid("mine", 0600), SHMQ_OK);
	RC_EQ(user_of(0, &u, &total), SHMQ_OK);
	ck_assert_uint_eq(total.max_bytes, pct(ram, 75));
	pid = harness_fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		become_nobody(NULL, 0);
		CHILD_RC(user_of(NOBODY, &u, NULL), SHMQ_OK);
		CHILD_EQ(u.max_bytes, pct(ram, 25));
		CHILD_RC(create_mid("theirs", 0600), SHMQ_OK);
		_exit(0);
	}
	CHILD_OK(pid);
	ck_assert_int_eq(daemon_cleanup(&d), 0);
}
END_TEST

/* Without a quota option a second uid gets a quarter of /dev/shm, of the
 * queue limit and of the connection limit, and four handles for each
 * connection it may hold. */
START_TEST(test_defaults)
{
	char *const small[] = { "--max-queues", "8", "--max-clients", "12",
				NULL };
	struct shmq_user u;
	struct daemon d;
	pid_t pid;

	private_shm("8m");
	ck_assert_int_eq(daemon_start(&d, NULL), 0);
	share_socket(&d);
	ck_assert(file_contains(d.log, "limits: 6291456 bytes, 16384 queues, "
				       "4096 clients in all; each uid but 0: "
				       "2097152 bytes, 4096 queues, 1024 "
				       "clients, 4096 handles; sizes in % "
				       "are of /dev/shm, 8388608 bytes"));
	pid = harness_fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		char name[32];
		int rc, i;

		become_nobody(NULL, 0);
		CHILD_RC(user_of(NOBODY, &u, NULL), SHMQ_OK);
		CHILD_EQ(u.max_bytes, 2 * MIB);
		CHILD_EQ(u.max_queues, 4096);
		CHILD_EQ(u.max_clients, 1024);
		CHILD_EQ(u.max_handles, 4096);
		CHILD_EQ(u.clients, 1);         /* this very call's */
		for (i = 0; i < 100; i++) {
			snprintf(name, sizeof(name), "d%d", i);
			if ((rc = create_mid(name, 0600)) != SHMQ_OK)
				break;
			CHILD_CHECK(shm_used() <= 2 * MIB);
		}
		CHILD_RC(rc, SHMQ_ELIMIT);
		CHILD_CHECK(has(shmq_error_detail(), "--user-max-bytes"));
		_exit(0);
	}
	CHILD_OK(pid);
	u = usage_of(NOBODY);
	ck_assert_uint_le(u.bytes, 2 * MIB);
	ck_assert_uint_eq(u.bytes, shm_used());
	ck_assert_int_eq(daemon_cleanup(&d), 0);

	/* The counts follow the global limits they are a quarter of. */
	ck_assert_int_eq(daemon_start(&d, small), 0);
	share_socket(&d);
	pid = harness_fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		become_nobody(NULL, 0);
		CHILD_RC(user_of(NOBODY, &u, NULL), SHMQ_OK);
		CHILD_EQ(u.max_queues, 2);
		CHILD_EQ(u.max_clients, 3);
		CHILD_EQ(u.max_handles, 12);
		CHILD_RC(create_small("q1"), SHMQ_OK);
		CHILD_RC(create_small("q2"), SHMQ_OK);
		CHILD_RC(create_small("q3"), SHMQ_ELIMIT);
		CHILD_CHECK(has(shmq_error_detail(),
				"uid 65534 at its queue quota "
				"(--user-max-queues): 2 of 2 in use"));
		_exit(0);
	}
	CHILD_OK(pid);
	/* The daemon's owner may go on to the global limit. */
	for (int i = 0; i < 6; i++) {
		char name[16];
		snprintf(name, sizeof(name), "r%d", i);
		RC_EQ(create_small(name), SHMQ_OK);
	}
	RC_EQ(create_small("r6"), SHMQ_ELIMIT);
	ck_assert_msg(has(shmq_error_detail(),
			  "limit of 8 queues reached (--max-queues)"),
		      "detail: %s", shmq_error_detail());
	ck_assert_int_eq(daemon_cleanup(&d), 0);
}
END_TEST

/* ======================================================================= */
/* Connections                                                             */

/* A HELLO on a fresh connection; the status, and the detail if refused. */
static int hello_detail(const char *sock, char *detail, size_t size, int *fd)
{
	struct shmq_wire_hello h = {
		.wire_version = SHMQ_WIRE_VERSION,
		.layout_version = SHMQ_LAYOUT_VERSION,
	};
	struct shmq_wire_hello_reply r;
	int rc;

	*fd = raw_connect(sock);
	if (*fd < 0)
		return RAW_EOF;
	memset(&r, 0, sizeof(r));
	if (raw_request(*fd, SHMQ_MSG_HELLO, 1, &h, sizeof(h)) < 0)
		return RAW_EOF;
	rc = raw_reply(*fd, SHMQ_MSG_HELLO, 1, &r, sizeof(r));
	snprintf(detail, size, "%s", r.st.detail);
	return rc;
}

/* Whether the daemon has hung up on `fd` (no request sent on it). */
static int hung_up(int fd)
{
	char c;
	ssize_t n = recv(fd, &c, 1, MSG_DONTWAIT | MSG_PEEK);

	return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK);
}

#define EXTRA 80        /* connections past the quota */

/* With --max-clients 8 a second uid holds at most 2 connections (its
 * quarter); every further one gets one clear answer and is dropped; the
 * daemon's owner and a third uid still connect; a connection closed makes
 * room; and connecting in a loop pins at most 4 refused connections. */
START_TEST(test_connections)
{
	char *const args[] = { "--max-clients", "8", NULL };
	struct chan c;
	struct daemon d;
	struct shmq_user u;
	pid_t pid, other;

	ck_assert_int_eq(daemon_start(&d, args), 0);
	share_socket(&d);
	chan_init(&c);
	pid = harness_fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		static int extra[EXTRA];
		char why[SHMQ_WIRE_DETAIL];
		int fds[10], ok = 0, refused = 0, rc, fd;

		chan_child(&c);
		become_nobody(NULL, 0);
		for (int i = 0; i < 10; i++) {
			rc = hello_detail(d.sock, why, sizeof(why), &fds[i]);
			if (rc == SHMQ_OK) {
				ok++;
				continue;
			}
			CHILD_RC(rc, SHMQ_ELIMIT);
			CHILD_CHECK(has(why, "uid 65534 at its connection quota "
					     "(--user-max-clients): 2 of 2 in "
					     "use"));
			/* One answer, then the daemon hangs up. */
			CHILD_CHECK(dropped(raw_reply(fds[i], 0, 0, NULL, 0)));
			close(fds[i]);
			fds[i] = -1;
			refused++;
		}
		CHILD_EQ(ok, 2);
		CHILD_EQ(refused, 8);
		/* Through the library: the same refusal, in its detail. */
		CHILD_RC(shmq_create("mine", NULL, 0), SHMQ_ELIMIT);
		CHILD_CHECK(has(shmq_error_detail(), "--user-max-clients"));
		child_say(&c, 'H');             /* holding two */
		CHILD_EQ(child_hear(&c), 'C');

		/* One closed: room for one more. */
		close(fds[0]);
		CHILD_CHECK(WAIT_UNTIL(hello_detail(d.sock, why, sizeof(why),
						    &fd) == SHMQ_OK ||
					       (close(fd), 0),
				       WAIT_MS));
		/* Refused connections that do not speak at once: the daemon
		 * keeps at most 4 of one user waiting for an answer (for two
		 * seconds), and closes the rest. */
		for (int i = 0; i < EXTRA; i++)
			CHILD_CHECK((extra[i] = raw_connect(d.sock)) >= 0);
		CHILD_CHECK(WAIT_UNTIL(({
			int closed = 0;
			for (int i = 0; i < EXTRA; i++)
				closed += hung_up(extra[i]);
			closed >= EXTRA - 4;
		}), WAIT_MS));
		int answered = 0;
		for (int i = 0; i < EXTRA; i++) {
			rc = raw_hello(extra[i], NULL);
			CHILD_CHECK(rc == SHMQ_ELIMIT || dropped(rc));
			answered += rc == SHMQ_ELIMIT;
		}
		CHILD_CHECK(answered <= 4);
		child_say(&c, 'D');
		CHILD_EQ(child_hear(&c), 'E');
		_exit(0);
	}
	chan_parent(&c);
	chan_expect(&c, 'H');
	/* The daemon's owner and a third uid are not affected. */
	close(connect_hello(d.sock));
	u = usage_of(NOBODY);
	ck_assert_uint_eq(u.clients, 2);
	ck_assert_uint_eq(u.max_clients, 2);
	other = harness_fork();
	ck_assert_int_ge(other, 0);
	if (other == 0) {
		int fd;
		become_user(OTHER, OTHER, NULL, 0);
		CHILD_RC(raw_hello(fd = raw_connect(d.sock), NULL), SHMQ_OK);
		CHILD_RC(shmq_create("others", NULL, 0), SHMQ_OK);
		close(fd);
		_exit(0);
	}
	CHILD_OK(other);
	chan_cmd(&c, 'C', 'D');
	/* Still serving everybody else. */
	close(connect_hello(d.sock));
	chan_cmd(&c, 'E', -1);
	CHILD_OK(pid);
	chan_done(&c);
	ck_assert(WAIT_UNTIL(usage_of(NOBODY).clients == 0, WAIT_MS));
	/* Logged when first hit, not for each of the ninety refusals, nor
	 * again when hit after a connection closed (within the minute). */
	ck_assert_int_eq(lines_with(d.log, "uid 65534 at its connection "
					   "quota"), 1);
	ck_assert_int_eq(daemon_cleanup(&d), 0);
}
END_TEST

/* One user holding refused connections that never speak (the
 * reviewer's pin.py: 66 of them) cannot keep the others from hearing
 * their own refusal: at most 4 refused connections of a uid wait for
 * their answer, each for two seconds; past that they are closed at
 * once.
 * The pinner reconnects whatever is closed, all along. */
START_TEST(test_refused_pinning)
{
	char *const args[] = { "--max-clients", "8", NULL };
	struct chan c;
	struct daemon d;
	pid_t pinner, other;

	ck_assert_int_eq(daemon_start(&d, args), 0);
	share_socket(&d);
	chan_init(&c);
	pinner = harness_fork();
	ck_assert_int_ge(pinner, 0);
	if (pinner == 0) {
		enum { PINS = 70 };
		static int pin[PINS];
		int held[2], stop = 0;

		chan_child(&c);
		become_nobody(NULL, 0);
		for (int i = 0; i < 2; i++)     /* its quota, held */
			CHILD_RC(raw_hello(held[i] = raw_connect(d.sock),
					   NULL), SHMQ_OK);
		for (int i = 0; i < PINS; i++)
			CHILD_CHECK((pin[i] = raw_connect(d.sock)) >= 0);
		child_say(&c, 'P');
		while (!stop) {
			for (int i = 0; i < PINS; i++)
				if (hung_up(pin[i])) {
					close(pin[i]);
					pin[i] = raw_connect(d.sock);
					CHILD_CHECK(pin[i] >= 0);
				}
			stop = byte_read(c.down[0], 10) == 'X';
		}
		/* Those still open are closed by the daemon in two seconds. */
		CHILD_CHECK(WAIT_UNTIL(({
			int open = 0;
			for (int i = 0; i < PINS; i++)
				open += !hung_up(pin[i]);
			open == 0;
		}), WAIT_MS));
		CHILD_CHECK(!hung_up(held[0]) && !hung_up(held[1]));
		child_say(&c, 'D');
		_exit(0);
	}
	chan_parent(&c);
	chan_expect(&c, 'P');
	other = harness_fork();
	ck_assert_int_ge(other, 0);
	if (other == 0) {
		char why[SHMQ_WIRE_DETAIL];
		int fd[2], extra;

		become_user(OTHER, OTHER, NULL, 0);
		for (int i = 0; i < 2; i++)
			CHILD_RC(raw_hello(fd[i] = raw_connect(d.sock), NULL),
				 SHMQ_OK);
		for (int i = 0; i < 20; i++) {
			CHILD_RC(hello_detail(d.sock, why, sizeof(why), &extra),
				 SHMQ_ELIMIT);
			CHILD_CHECK(has(why, "uid 65533 at its connection quota "
					     "(--user-max-clients): 2 of 2 in "
					     "use"));
			close(extra);
		}
		/* What qctl would print, rather than a reset connection. */
		CHILD_RC(shmq_create("mine", NULL, 0), SHMQ_ELIMIT);
		CHILD_CHECK(has(shmq_error_detail(), "--user-max-clients"));
		_exit(0);
	}
	CHILD_OK(other);
	/* The daemon's own uid is served all along. */
	close(connect_hello(d.sock));
	chan_cmd(&c, 'X', 'D');
	CHILD_OK(pinner);
	chan_done(&c);
	ck_assert_int_eq(daemon_cleanup(&d), 0);
}
END_TEST

/* Refusals in a flood, each of which a client can repeat at will, make
 * a bounded number of log lines: the reviewer's flood.py (connect, get
 * refused, close, at the limit of one connection, 2000 times: one line
 * each, as every close made the usage "fall"), creates with bad
 * attributes, opens past the handles of a queue or past a user's share
 * of another's queue. */
START_TEST(test_log_flood)
{
	char *const args[] = { "--user-max-clients", "1", "--max-attach", "2",
			       NULL };
	struct daemon d;
	pid_t pid;

	ck_assert_int_eq(daemon_start(&d, args), 0);
	share_socket(&d);
	create_q("pub", 8, 64, 0666, 0);
	pid = harness_fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		char why[SHMQ_WIRE_DETAIL];
		struct shmq_attr bad = attr_of(0, 64, 0600, 0);
		int refused = 0, a, b;
		shmq_t *h, *own[2], *no;

		become_nobody(NULL, 0);
		for (int i = 0; i < 300; i++) {
			/* The close of the last round's first connection may
			 * be seen after this one's connect: both refused. */
			refused += hello_detail(d.sock, why, sizeof(why), &a) ==
				   SHMQ_ELIMIT;
			refused += hello_detail(d.sock, why, sizeof(why), &b) ==
				   SHMQ_ELIMIT;
			close(b);
			close(a);
		}
		CHILD_CHECK(refused >= 300);
		/* Through the library's one connection, once it is back. */
		CHILD_CHECK(WAIT_UNTIL(shmq_open("pub", SHMQ_PRODUCER, &h) ==
				       SHMQ_OK, WAIT_MS));
		CHILD_RC(create_small("own"), SHMQ_OK);
		CHILD_RC(shmq_open("own", SHMQ_PRODUCER, &own[0]), SHMQ_OK);
		CHILD_RC(shmq_open("own", SHMQ_CONSUMER, &own[1]), SHMQ_OK);
		for (int i = 0; i < 200; i++) {
			CHILD_RC(shmq_create("bad", &bad, 0), SHMQ_EINVAL);
			CHILD_RC(shmq_open("own", SHMQ_CONSUMER, &no),
				 SHMQ_ELIMIT);
			CHILD_RC(shmq_open("pub", SHMQ_CONSUMER, &no),
				 SHMQ_ELIMIT);
		}
		CHILD_RC(shmq_detach(h), SHMQ_OK);
		CHILD_RC(shmq_detach(own[0]), SHMQ_OK);
		CHILD_RC(shmq_detach(own[1]), SHMQ_OK);
		_exit(0);
	}
	CHILD_OK(pid);
	ck_assert_int_eq(lines_with(d.log, "uid 65534 at its connection "
					   "quota"), 1);
	ck_assert_int_eq(lines_with(d.log, "cannot create queue 'bad'"), 1);
	ck_assert_int_eq(lines_with(d.log, "attachments in use"), 1);
	ck_assert_int_eq(lines_with(d.log, "handles of this queue, a user's "
					   "most"), 1);
	ck_assert_int_eq(daemon_cleanup(&d), 0);
}
END_TEST

/* ======================================================================= */
/* Handles                                                                 */

/* Open handles count for the uid of the process, across its processes
 * and queues; the daemon's own uid opens freely; a detach, or a death,
 * makes room. */
START_TEST(test_handles)
{
	char *const args[] = { "--user-max-handles", "3", NULL };
	struct shmq_user u;
	struct chan c;
	struct daemon d;
	pid_t holder, pid;

	ck_assert_int_eq(daemon_start(&d, args), 0);
	share_socket(&d);
	create_q("pub", 8, 64, 0666, 0);
	create_q("pub2", 8, 64, 0666, 0);
	chan_init(&c);
	holder = harness_fork();
	ck_assert_int_ge(holder, 0);
	if (holder == 0) {
		shmq_t *h[4];

		chan_child(&c);
		become_nobody(NULL, 0);
		CHILD_RC(shmq_open("pub", SHMQ_PRODUCER, &h[0]), SHMQ_OK);
		CHILD_RC(shmq_open("pub", SHMQ_CONSUMER, &h[1]), SHMQ_OK);
		CHILD_RC(shmq_open("pub2", 0, &h[2]), SHMQ_OK);
		CHILD_RC(shmq_open("pub2", SHMQ_CONSUMER, &h[3]), SHMQ_ELIMIT);
		CHILD_CHECK(has(shmq_error_detail(),
				"uid 65534 at its handle quota "
				"(--user-max-handles): 3 of 3 in use"));
		/* The detach asks for no reply, but the daemon reads this
		 * connection in order: the open comes after it. */
		CHILD_RC(shmq_detach(h[2]), SHMQ_OK);
		CHILD_RC(shmq_open("pub2", SHMQ_CONSUMER, &h[3]), SHMQ_OK);
		CHILD_RC(shmq_put(h[0], "x", 1, 1000), SHMQ_OK);
		child_say(&c, 'H');
		child_hear(&c);         /* killed meanwhile */
		_exit(0);
	}
	chan_parent(&c);
	chan_expect(&c, 'H');
	u = usage_of(NOBODY);
	ck_assert_uint_eq(u.handles, 3);
	ck_assert_uint_eq(u.max_handles, 3);

	/* Another process of the same user: the same quota. */
	pid = harness_fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		shmq_t *h;
		become_nobody(NULL, 0);
		CHILD_RC(shmq_open("pub", SHMQ_CONSUMER, &h), SHMQ_ELIMIT);
		_exit(0);
	}
	CHILD_OK(pid);
	/* The daemon's own uid is not bound by it. */
	shmq_t *mine[4];
	for (int i = 0; i < 4; i++)
		mine[i] = open_q("pub", SHMQ_CONSUMER);
	for (int i = 0; i < 4; i++)
		RC_EQ(shmq_detach(mine[i]), SHMQ_OK);

	/* The holder dies: its handles are given back. */
	kill(holder, SIGKILL);
	int st = harness_wait(holder, WAIT_MS);
	ck_assert_msg(st > 0 && WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL,
		      "holder: %s", describe(st));
	chan_done(&c);
	ck_assert(WAIT_UNTIL(usage_of(NOBODY).handles == 0, WAIT_MS));
	pid = harness_fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		shmq_t *h;
		become_nobody(NULL, 0);
		CHILD_RC(shmq_open("pub", SHMQ_CONSUMER, &h), SHMQ_OK);
		char buf[8];
		size_t len;
		CHILD_RC(shmq_get(h, buf, sizeof(buf), &len, 1000), SHMQ_OK);
		CHILD_CHECK(len == 1 && buf[0] == 'x');
		_exit(0);
	}
	CHILD_OK(pid);
	ck_assert_int_eq(daemon_cleanup(&d), 0);
}
END_TEST

/* In a child as `uid`: opens `name` until refused; how many it got,
 * checked against `want`, and the refusal's detail must contain `says`.
 * It then holds them until told 'X' on `c`. */
static pid_t hog(struct chan *c, uid_t uid, const char *name, int want,
		 const char *says)
{
	pid_t pid;

	chan_init(c);
	pid = harness_fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		shmq_t *h;
		int n = 0, rc;

		chan_child(c);
		become_user(uid, uid, NULL, 0);
		while ((rc = shmq_open(name, SHMQ_CONSUMER, &h)) == SHMQ_OK &&
		       n < 100)
			n++;
		CHILD_RC(rc, SHMQ_ELIMIT);
		CHILD_EQ(n, want);
		CHILD_CHECK(has(shmq_error_detail(), says));
		child_say(c, 'H');
		CHILD_EQ(child_hear(c), 'X');
		_exit(0);
	}
	chan_parent(c);
	chan_expect(c, 'H');
	return pid;
}

/* A queue's handle places are shared out (the reviewer's hog.c: uid
 * 65534 opened a 0644 queue 256 times and its owner could not put): a
 * user other than the owner may hold a quarter of them, such users
 * together three quarters, and the last quarter is the owner's (root's,
 * the daemon's).  With --max-attach 8: 2 each, 6 in all. */
START_TEST(test_attach_share)
{
	char *const args[] = { "--max-attach", "8", NULL };
	static const uid_t users[] = { NOBODY, OTHER, 65532, 65531 };
	struct chan c[4];
	struct daemon d;
	pid_t pid[4];
	shmq_t *mine[2];

	ck_assert_int_eq(daemon_start(&d, args), 0);
	share_socket(&d);
	create_q("pub", 8, 64, 0644, 0);
	for (int i = 0; i < 3; i++)
		pid[i] = hog(&c[i], users[i], "pub", 2,
			     "holds 2 of the 8 handles of this queue, a user's "
			     "most (a quarter; shmqd --max-attach)");
	pid[3] = hog(&c[3], users[3], "pub", 0,
		     "the last 2 of this queue's 8 handles are kept for its "
		     "owner, uid 0 (shmqd --max-attach)");
	/* The owner still opens, and puts. */
	mine[0] = open_q("pub", SHMQ_PRODUCER);
	mine[1] = open_q("pub", SHMQ_PRODUCER);
	put_str(mine[0], "owner's");
	for (int i = 0; i < 4; i++) {
		chan_cmd(&c[i], 'X', -1);
		CHILD_OK(pid[i]);
		chan_done(&c[i]);
	}
	RC_EQ(shmq_detach(mine[0]), SHMQ_OK);
	RC_EQ(shmq_detach(mine[1]), SHMQ_OK);

	/* A user's own queue: all its places. */
	pid[0] = harness_fork();
	ck_assert_int_ge(pid[0], 0);
	if (pid[0] == 0) {
		shmq_t *h[9];
		become_nobody(NULL, 0);
		CHILD_RC(create_small("nq"), SHMQ_OK);
		for (int i = 0; i < 8; i++)
			CHILD_RC(shmq_open("nq", 0, &h[i]), SHMQ_OK);
		CHILD_RC(shmq_open("nq", 0, &h[8]), SHMQ_ELIMIT);
		CHILD_CHECK(has(shmq_error_detail(), "all attachments"));
		_exit(0);
	}
	CHILD_OK(pid[0]);
	ck_assert_int_eq(daemon_cleanup(&d), 0);
}
END_TEST

/* ======================================================================= */
/* Restart                                                                 */

/* A daemon killed with -9 and started again recounts every user from the
 * queues it adopts and the handles still held: the same quotas hold; and
 * a quota lowered meanwhile leaves the user over it, refused until back
 * under. */
START_TEST(test_restart)
{
	char *const args[] = { "--user-max-queues", "3",
			       "--user-max-handles", "4", NULL };
	char *const lower[] = { "--user-max-queues", "2",
				"--user-max-handles", "4", NULL };
	struct shmq_user before, after, total0, total1;
	struct chan c;
	struct daemon d;
	pid_t holder, pid;

	private_shm("16m");
	ck_assert_int_eq(daemon_start(&d, args), 0);
	share_socket(&d);
	create_q("rootq", 8, 64, 0600, 0);
	chan_init(&c);
	holder = harness_fork();
	ck_assert_int_ge(holder, 0);
	if (holder == 0) {
		shmq_t *h[2];

		chan_child(&c);
		become_nobody(NULL, 0);
		CHILD_RC(create_mid("n1", 0600), SHMQ_OK);
		CHILD_RC(create_mid("n2", 0600), SHMQ_OK);
		CHILD_RC(create_mid("n3", 0600), SHMQ_OK);
		CHILD_RC(create_mid("n4", 0600), SHMQ_ELIMIT);
		CHILD_RC(shmq_open("n1", SHMQ_PRODUCER, &h[0]), SHMQ_OK);
		CHILD_RC(shmq_open("n1", SHMQ_CONSUMER, &h[1]), SHMQ_OK);
		CHILD_RC(shmq_put(h[0], "survives", 8, 1000), SHMQ_OK);
		child_say(&c, 'H');
		CHILD_EQ(child_hear(&c), 'X');
		_exit(0);
	}
	chan_parent(&c);
	chan_expect(&c, 'H');
	RC_EQ(user_of(NOBODY, &before, &total0), SHMQ_OK);
	ck_assert_uint_eq(before.queues, 3);
	ck_assert_uint_eq(before.handles, 2);
	ck_assert_uint_eq(total0.bytes, shm_used());

	daemon_stop(&d, SIGKILL);
	ck_assert_int_eq(daemon_restart(&d), 0);
	share_socket(&d);
	RC_EQ(user_of(NOBODY, &after, &total1), SHMQ_OK);
	ck_assert_uint_eq(after.queues, 3);
	ck_assert_uint_eq(after.bytes, before.bytes);
	ck_assert_uint_eq(after.handles, 2);
	ck_assert_uint_eq(total1.bytes, total0.bytes);
	ck_assert_uint_eq(total1.queues, 4);

	pid = harness_fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		shmq_t *h[3];
		become_nobody(NULL, 0);
		CHILD_RC(create_mid("n4", 0600), SHMQ_ELIMIT);
		CHILD_CHECK(has(shmq_error_detail(), "3 of 3 in use"));
		/* The holder's two handles count: two more, not four. */
		CHILD_RC(shmq_open("n2", SHMQ_CONSUMER, &h[0]), SHMQ_OK);
		CHILD_RC(shmq_open("n2", SHMQ_CONSUMER, &h[1]), SHMQ_OK);
		CHILD_RC(shmq_open("n2", SHMQ_CONSUMER, &h[2]), SHMQ_ELIMIT);
		CHILD_CHECK(has(shmq_error_detail(), "4 of 4 in use"));
		CHILD_RC(shmq_detach(h[0]), SHMQ_OK);
		CHILD_RC(shmq_detach(h[1]), SHMQ_OK);
		CHILD_RC(shmq_delete("n3"), SHMQ_OK);
		CHILD_RC(create_mid("n4", 0600), SHMQ_OK);
		_exit(0);
	}
	CHILD_OK(pid);
	chan_cmd(&c, 'X', -1);
	CHILD_OK(holder);
	chan_done(&c);
	ck_assert(WAIT_UNTIL(usage_of(NOBODY).handles == 0, WAIT_MS));

	/* Restarted with a lower quota: counted all the same, over it. */
	daemon_stop(&d, SIGKILL);
	d.args = lower;
	ck_assert_int_eq(daemon_restart(&d), 0);
	share_socket(&d);
	after = usage_of(NOBODY);
	ck_assert_uint_eq(after.queues, 3);
	ck_assert_uint_eq(after.max_queues, 2);
	ck_assert(file_contains(d.log, "uid 65534 holds more than its queue "
				       "quota"));
	pid = harness_fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		become_nobody(NULL, 0);
		CHILD_RC(create_mid("n5", 0600), SHMQ_ELIMIT);
		CHILD_RC(shmq_delete("n4"), SHMQ_OK);
		CHILD_RC(create_mid("n5", 0600), SHMQ_ELIMIT);  /* 2 of 2 */
		CHILD_RC(shmq_delete("n2"), SHMQ_OK);
		CHILD_RC(create_mid("n5", 0600), SHMQ_OK);
		_exit(0);
	}
	CHILD_OK(pid);
	shmq_t *q = open_q("n1", SHMQ_CONSUMER);
	get_str(q, "survives");
	RC_EQ(shmq_detach(q), SHMQ_OK);
	ck_assert_int_eq(daemon_cleanup(&d), 0);
}
END_TEST

/* In a child as uid 65534: creates a queue of about 290 KiB. */
static void nobody_creates(const char *name, int want)
{
	pid_t pid = harness_fork();

	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		become_nobody(NULL, 0);
		CHILD_RC(create_mid(name, 0600), want);
		_exit(0);
	}
	CHILD_OK(pid);
}

/* Scribbles on the only queue's segment header, as its client could. */
static void scribble_header(const struct daemon *d, int magic)
{
	size_t size;
	struct shmq_seg_hdr *h = segment_map_only(d, &size);

	if (magic)
		h->magic = 0;
	else
		h->version = SHMQ_LAYOUT_VERSION + 1;
	munmap(h, size);
}

static void damage_record(const char *path, void *arg)
{
	char c = '!';
	int fd;

	(void)arg;
	if (!segment_is_meta(path))
		return;
	fd = open(path, O_RDWR | O_CLOEXEC);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(pwrite(fd, &c, 1, 64), 1);     /* in the name */
	close(fd);
}

static void remove_object(const char *path, void *arg)
{
	(void)arg;
	ck_assert_int_eq(unlink(path), 0);
}

/* Everything the daemon counts is what /dev/shm holds. */
static void assert_counted(void)
{
	struct shmq_user u, total;

	RC_EQ(user_of(0, &u, &total), SHMQ_OK);
	ck_assert_uint_eq(total.bytes, shm_used());
}

/* Queues a restarted daemon cannot adopt are removed or stay counted,
 * never left in /dev/shm counted against nobody: a segment whose header
 * its client scribbled (then the daemon was killed) holds nothing to
 * recover and is removed; one of another layout version is kept for that
 * version, counted against the owner its record names, until removed by
 * hand; a queue whose record cannot be read is kept, counted in the
 * total as the daemon's own. */
START_TEST(test_restart_unadoptable)
{
	char *const args[] = { "--user-max-queues", "2", NULL };
	struct shmq_user u;
	struct shmq_stat st;
	struct daemon d;

	private_shm("8m");
	ck_assert_int_eq(daemon_start(&d, args), 0);
	share_socket(&d);

	/* Damaged: removed, its bytes and place given back. */
	nobody_creates("q1", SHMQ_OK);
	scribble_header(&d, 1);
	daemon_stop(&d, SIGKILL);
	ck_assert_int_eq(daemon_restart(&d), 0);
	share_socket(&d);
	ck_assert(file_contains(d.log, "cannot adopt queue 'q1'"));
	ck_assert(file_contains(d.log, "header is damaged; removed"));
	ck_assert_int_eq(daemon_segments(&d), 0);
	ck_assert_uint_eq(shm_used(), 0);
	u = usage_of(NOBODY);
	ck_assert_uint_eq(u.queues, 0);
	ck_assert_uint_eq(u.bytes, 0);
	assert_counted();

	/* Another layout version: kept, counted, not served. */
	nobody_creates("q1", SHMQ_OK);
	scribble_header(&d, 0);
	daemon_stop(&d, SIGKILL);
	ck_assert_int_eq(daemon_restart(&d), 0);
	share_socket(&d);
	ck_assert(file_contains(d.log, "of another layout version; kept"));
	ck_assert_int_eq(daemon_segments(&d), 2);
	RC_EQ(shmq_stat_name("q1", &st), SHMQ_ENOENT);
	u = usage_of(NOBODY);
	ck_assert_uint_eq(u.queues, 1);
	ck_assert_uint_eq(u.bytes, shm_used());
	assert_counted();
	nobody_creates("q1", SHMQ_OK);          /* the name is free */
	nobody_creates("q2", SHMQ_ELIMIT);      /* 2 of 2 */
	RC_EQ(shmq_delete("q1"), SHMQ_OK);
	assert_counted();
	/* Removed by hand: the next start no longer counts it. */
	daemon_stop(&d, SIGKILL);
	ck_assert_int_eq(daemon_each_segment(&d, remove_object, NULL), 2);
	ck_assert_int_eq(daemon_restart(&d), 0);
	share_socket(&d);
	u = usage_of(NOBODY);
	ck_assert_uint_eq(u.queues, 0);
	ck_assert_uint_eq(u.bytes, 0);
	ck_assert_uint_eq(shm_used(), 0);

	/* An unreadable record: kept, counted as the daemon's own. */
	nobody_creates("q3", SHMQ_OK);
	daemon_stop(&d, SIGKILL);
	daemon_each_segment(&d, damage_record, NULL);
	ck_assert_int_eq(daemon_restart(&d), 0);
	share_socket(&d);
	ck_assert(file_contains(d.log, "its record is unreadable; kept"));
	ck_assert_uint_eq(usage_of(NOBODY).queues, 0);
	u = usage_of(0);
	ck_assert_uint_gt(u.bytes, 0);
	ck_assert_uint_eq(u.bytes, shm_used());
	assert_counted();
	ck_assert_int_eq(daemon_cleanup(&d), 0);
}
END_TEST

/* ======================================================================= */
/* Visibility                                                              */

/* Root and the daemon's uid see every user that holds anything; another
 * uid sees itself alone, even holding nothing but its connection; the
 * totals are everybody's. */
START_TEST(test_visibility)
{
	struct shmq_user *list, total;
	struct daemon d;
	struct chan c;
	size_t n;
	pid_t holder, pid;

	ck_assert_int_eq(daemon_start(&d, NULL), 0);
	share_socket(&d);
	create_q("rootq", 8, 64, 0666, 0);
	chan_init(&c);
	holder = harness_fork();
	ck_assert_int_ge(holder, 0);
	if (holder == 0) {
		chan_child(&c);
		become_nobody(NULL, 0);
		CHILD_RC(shmq_create("nq", NULL, 0), SHMQ_OK);
		CHILD_RC(shmq_users(&list, &n, &total), SHMQ_OK);
		CHILD_EQ(n, 1);
		CHILD_EQ(list[0].uid, NOBODY);
		CHILD_EQ(list[0].queues, 1);
		CHILD_EQ(list[0].clients, 1);
		CHILD_EQ(list[0].flags, 0);
		CHILD_EQ(total.uid, UINT32_MAX);
		CHILD_EQ(total.queues, 2);
		free(list);
		child_say(&c, 'H');
		CHILD_EQ(child_hear(&c), 'X');
		_exit(0);
	}
	chan_parent(&c);
	chan_expect(&c, 'H');

	RC_EQ(shmq_users(&list, &n, &total), SHMQ_OK);
	ck_assert_uint_eq(n, 2);                /* root, 65534, in uid order */
	ck_assert_uint_eq(list[0].uid, 0);
	ck_assert_uint_eq(list[0].flags, SHMQ_USER_EXEMPT);
	ck_assert_uint_eq(list[0].queues, 1);
	ck_assert_uint_eq(list[0].max_queues, 16384);   /* the global limit */
	ck_assert_uint_eq(list[1].uid, NOBODY);
	ck_assert_uint_eq(list[1].queues, 1);
	ck_assert_uint_eq(list[1].clients, 1);
	ck_assert_uint_eq(total.queues, 2);
	ck_assert_uint_eq(total.bytes, list[0].bytes + list[1].bytes);
	ck_assert_uint_eq(total.clients, 2);
	ck_assert_uint_eq(total.max_clients, 4096);
	free(list);

	pid = harness_fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		become_user(OTHER, OTHER, NULL, 0);
		CHILD_RC(shmq_users(&list, &n, &total), SHMQ_OK);
		CHILD_EQ(n, 1);                 /* not 65534, not root */
		CHILD_EQ(list[0].uid, OTHER);
		CHILD_EQ(list[0].queues, 0);
		CHILD_EQ(list[0].bytes, 0);
		CHILD_EQ(list[0].clients, 1);
		CHILD_EQ(list[0].max_queues, 4096);
		free(list);
		CHILD_RC(shmq_users(NULL, &n, NULL), SHMQ_EINVAL);
		_exit(0);
	}
	CHILD_OK(pid);

	chan_cmd(&c, 'X', -1);
	CHILD_OK(holder);
	chan_done(&c);
	ck_assert_int_eq(daemon_cleanup(&d), 0);
}
END_TEST

/* A user quota of 0 forbids, to every uid but the daemon's; 'unlimited'
 * lifts a quota, and only the global limit binds. */
START_TEST(test_zero_and_unlimited)
{
	char *const args[] = { "--user-max-queues", "0",
			       "--user-max-handles", "0",
			       "--user-max-clients", "unlimited",
			       "--max-clients", "4", NULL };
	struct daemon d;
	pid_t pid;

	ck_assert_int_eq(daemon_start(&d, args), 0);
	share_socket(&d);
	create_q("pub", 8, 64, 0666, 0);       /* root holds one */
	pid = harness_fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		struct shmq_user u;
		int fd[3];
		shmq_t *q;

		become_nobody(NULL, 0);
		CHILD_RC(create_small("mine"), SHMQ_ELIMIT);
		CHILD_CHECK(has(shmq_error_detail(), "0 of 0 in use"));
		CHILD_RC(shmq_open("pub", SHMQ_PRODUCER, &q), SHMQ_ELIMIT);
		CHILD_CHECK(has(shmq_error_detail(), "--user-max-handles"));
		CHILD_RC(user_of(NOBODY, &u, NULL), SHMQ_OK);
		CHILD_EQ(u.max_clients, 4);     /* the global limit */
		/* Root's, the library's here and two more: four. */
		for (int i = 0; i < 2; i++)
			CHILD_RC(raw_hello(fd[i] = raw_connect(d.sock), NULL),
				 SHMQ_OK);
		CHILD_RC(raw_hello(fd[2] = raw_connect(d.sock), NULL),
			 SHMQ_ELIMIT);
		_exit(0);
	}
	CHILD_OK(pid);
	ck_assert_int_eq(daemon_cleanup(&d), 0);
}
END_TEST

/* ======================================================================= */
/* Options                                                                 */

/* Runs shmqd with `argv` (after its name); its exit status, and what it
 * wrote on standard error in `err`. */
static int run_shmqd(const char *const *argv, char *err, size_t size)
{
	char bin[512];
	char *av[16];
	int p[2], n = 0;
	ssize_t got;
	size_t len = 0;

	av[n++] = "shmqd";
	while (*argv && n < 15)
		av[n++] = (char *)*argv++;
	av[n] = NULL;
	harness_path("daemon/shmqd", bin, sizeof(bin));
	ck_assert_int_eq(pipe(p), 0);
	pid_t pid = harness_fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		dup2(p[1], STDERR_FILENO);
		dup2(p[1], STDOUT_FILENO);
		close(p[0]);
		execv(bin, av);
		_exit(127);
	}
	close(p[1]);
	while (len + 1 < size &&
	       (got = read(p[0], err + len, size - 1 - len)) > 0)
		len += (size_t)got;
	err[len] = '\0';
	close(p[0]);
	int st = harness_wait(pid, WAIT_MS);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

START_TEST(test_bad_options)
{
	static const char *const bad[][2] = {
		{ "--user-max-bytes", "120%" },
		{ "--user-max-bytes", "0%" },
		{ "--user-max-bytes", "abc" },
		{ "--user-max-bytes", "-1" },
		{ "--user-max-bytes", "1T" },
		{ "--user-max-bytes", "%" },
		{ "--user-max-bytes", "" },
		{ "--max-bytes", "unlimited" },
		{ "--max-bytes", "100" },
		{ "--max-bytes", "101%" },
		{ "--max-bytes", "0" },
		{ "--user-max-queues", "1.5" },
		{ "--user-max-queues", "99999999999" },
		{ "--user-max-clients", "2x" },
		{ "--user-max-clients", "5%%" },
		{ "--user-max-handles", "5%" },
		{ "--user-max-handles", "lots" },
		/* What strtoull would take (common/units.c refuses it). */
		{ "--max-queues", "0x10" },
		{ "--max-queues", "+5" },
		{ "--max-clients", " 5" },
		{ "--user-max-bytes", "-5%" },
		{ "--user-max-queues", "+5%" },
		/* What strtod would take, and seconds out of range. */
		{ "--deadlock-timeout", "1e3" },
		{ "--deadlock-timeout", "0x10" },
		{ "--deadlock-timeout", "-1" },
		{ "--deadlock-timeout", "0.001" },
		{ "--deadlock-timeout", "3600.5" },
		{ "--deadlock-timeout", "." },
	};
	static const char *const good[][2] = {
		{ "--user-max-bytes", "10%" },
		{ "--user-max-bytes", "64M" },
		{ "--user-max-bytes", "0" },
		{ "--user-max-bytes", "unlimited" },
		{ "--max-bytes", "100%" },
		{ "--max-bytes", "1G" },
		{ "--user-max-queues", "50%" },
		{ "--user-max-queues", "unlimited" },
		{ "--user-max-clients", "1" },
		{ "--user-max-handles", "0" },
		{ "--deadlock-timeout", "0" },
		{ "--deadlock-timeout", "0.25" },
		{ "--deadlock-timeout", "3600" },
	};
	char err[8192], want[128];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		const char *argv[] = { bad[i][0], bad[i][1], "--help", NULL };
		int rc = run_shmqd(argv, err, sizeof(err));
		snprintf(want, sizeof(want), "shmqd: bad value for %s: '%s' "
			 "(want ", bad[i][0], bad[i][1]);
		ck_assert_msg(rc == 2 && has(err, want),
			      "%s '%s': exit %d, said: %s", bad[i][0],
			      bad[i][1], rc, err);
	}
	/* Good values pass parsing: --help, after them, then exits 0. */
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		const char *argv[] = { good[i][0], good[i][1], "--help", NULL };
		int rc = run_shmqd(argv, err, sizeof(err));
		ck_assert_msg(rc == 0 && has(err, "--user-max-bytes SIZE"),
			      "%s '%s': exit %d, said: %s", good[i][0],
			      good[i][1], rc, err);
	}
}
END_TEST

/* ======================================================================= */

static Suite *quota_suite(void)
{
	Suite *s = suite_create("quota");
	TCase *tc;

	tc = tcase_create("bytes");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_bytes_quota);
	tcase_add_test(tc, test_bytes_deleted_open);
	tcase_add_test(tc, test_bytes_fork);
	tcase_add_test(tc, test_bytes_stray_mapping);
	tcase_add_test(tc, test_global_bytes);
	tcase_add_test(tc, test_defaults);
	tcase_add_test(tc, test_unlimited_shm);
	suite_add_tcase(s, tc);

	tc = tcase_create("counts");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_connections);
	tcase_add_test(tc, test_refused_pinning);
	tcase_add_test(tc, test_log_flood);
	tcase_add_test(tc, test_handles);
	tcase_add_test(tc, test_attach_share);
	tcase_add_test(tc, test_restart);
	tcase_add_test(tc, test_restart_unadoptable);
	tcase_add_test(tc, test_visibility);
	tcase_add_test(tc, test_zero_and_unlimited);
	suite_add_tcase(s, tc);

	tc = tcase_create("options");
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_bad_options);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	if (geteuid() != 0) {
		fprintf(stderr, "check_quota: needs root (other uids, mount "
				"namespaces): skipped\n");
		return 77;
	}
	return run_suite(quota_suite(), "quota");
}
