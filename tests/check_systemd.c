/*
 * check_systemd.c - shmqd under systemd: readiness, socket activation,
 * one daemon per socket.
 *
 * Owns how shmqd meets its service manager: READY=1 on NOTIFY_SOCKET,
 * the listening socket passed as systemd passes it (served, and left in
 * place at exit; one of the wrong type refused loudly), a second daemon
 * on a socket already served refused, and a socket file left by a killed
 * daemon replaced by the next.  The units themselves are checked by
 * tests/systemd-units.sh.
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
#include <limits.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lib/chan.h"
#include "lib/checks.h"
#include "lib/foreign.h"
#include "lib/harness.h"
#include "lib/queue.h"
#include "lib/rawconn.h"
#include "lib/runner.h"
#include "lib/workers.h"

/* ======================================================================= */
/* systemd: readiness, socket activation, one daemon per socket            */

/* Runs shmqd as systemd does for shmqd.socket: the listening socket
 * `lfd` as descriptor 3, LISTEN_FDS=1 and LISTEN_PID naming the daemon
 * itself, which only the child knows before exec. */
static pid_t start_activated(int lfd, const char *notify, const char *log)
{
	char bin[PATH_MAX];
	pid_t pid;

	harness_path("daemon/shmqd", bin, sizeof(bin));
	pid = harness_fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		char me[32];
		int err;

		/* Errors before --log is opened go to stderr: keep them
		 * in the same file. */
		err = open(log, O_WRONLY | O_CREAT | O_APPEND, 0600);
		if (err < 0 || dup2(err, STDERR_FILENO) < 0)
			_exit(126);
		if (lfd != 3) {
			if (dup2(lfd, 3) != 3)
				_exit(126);
			close(lfd);
		} else if (fcntl(3, F_SETFD, 0) < 0) {
			_exit(126);
		}
		snprintf(me, sizeof(me), "%ld", (long)getpid());
		setenv("LISTEN_FDS", "1", 1);
		setenv("LISTEN_PID", me, 1);
		setenv("NOTIFY_SOCKET", notify, 1);
		execl(bin, "shmqd", "--foreground", "--log", log, (char *)NULL);
		_exit(127);
	}
	return pid;
}

static int listening_socket(const char *path, int type)
{
	struct sockaddr_un un = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, type, 0);

	ck_assert_int_ge(fd, 0);
	snprintf(un.sun_path, sizeof(un.sun_path), "%s", path);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&un, sizeof(un)), 0);
	ck_assert_int_eq(listen(fd, 16), 0);
	return fd;
}

START_TEST(test_socket_activation)
{
	char notify[160], log[160];
	struct producer p;
	struct stat sb;
	struct daemon d;
	shmq_t *c;
	int nfd, lfd, status;

	borrow_dir(&d);
	snprintf(notify, sizeof(notify), "%s/act.notify", d.dir);
	snprintf(log, sizeof(log), "%s/act.log", d.dir);
	nfd = notify_socket(notify);
	ck_assert_int_ge(nfd, 0);
	lfd = listening_socket(d.sock, SOCK_SEQPACKET);
	d.pid = start_activated(lfd, notify, log);
	close(lfd);
	ck_assert_msg(notify_ready(nfd, 10000), "no READY=1; see %s", log);
	close(nfd);
	ck_assert(file_contains(log, "[socket activation]"));

	/* Clients reach it on systemd's socket. */
	setenv("SHMQ_SOCKET", d.sock, 1);
	setenv("SHMQ_NO_AUTOSTART", "1", 1);
	create_q("act", 4, 64, 0600, 0);
	c = open_q("act", SHMQ_CONSUMER);
	producer_start(&p, "act", 's', 3);
	chan_cmd(&p.ch, 'p', 'k');
	chan_cmd(&p.ch, 'd', 'k');
	producer_end(&p);
	get_str(c, "s000000");
	get_str(c, "s000001");
	get_str(c, "s000002");
	ck_assert_int_eq(daemon_pid_of(d.sock), d.pid);
	RC_EQ(shmq_detach(c), SHMQ_OK);

	/* The socket is systemd's: the daemon leaves it in place. */
	status = daemon_stop(&d, SIGTERM);
	ck_assert_msg(exited_with(status, 0), "SIGTERM: %s", describe(status));
	ck_assert_int_eq(stat(d.sock, &sb), 0);
	ck_assert(S_ISSOCK(sb.st_mode));
	ck_assert_int_eq(daemon_cleanup(&d), 0);
}
END_TEST

/* A passed socket of the wrong kind is refused at start, loudly. */
START_TEST(test_socket_activation_wrong_type)
{
	char notify[160], log[160];
	struct daemon d;
	int nfd, lfd, status;

	borrow_dir(&d);
	snprintf(notify, sizeof(notify), "%s/act.notify", d.dir);
	snprintf(log, sizeof(log), "%s/act.log", d.dir);
	nfd = notify_socket(notify);
	ck_assert_int_ge(nfd, 0);
	lfd = listening_socket(d.sock, SOCK_STREAM);
	d.pid = start_activated(lfd, notify, log);
	close(lfd);
	status = harness_wait(d.pid, 10000);
	d.pid = 0;
	ck_assert_msg(exited_with(status, 1), "shmqd: %s", describe(status));
	ck_assert_int_eq(notify_ready(nfd, 0), 0);
	close(nfd);
	ck_assert(file_contains(log, "SOCK_SEQPACKET"));
	ck_assert_int_eq(daemon_cleanup(&d), 0);
}
END_TEST

START_TEST(test_second_daemon_refused)
{
	char bin[PATH_MAX], log[160];
	struct daemon d;
	shmq_t *c;
	pid_t pid;
	int status;

	ck_assert_int_eq(daemon_start(&d, NULL), 0);
	create_q("first", 4, 64, 0600, 0);
	c = open_q("first", SHMQ_PRODUCER | SHMQ_CONSUMER);
	put_str(c, "x");

	snprintf(log, sizeof(log), "%s/second.log", d.dir);
	harness_path("daemon/shmqd", bin, sizeof(bin));
	pid = harness_fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		unsetenv("NOTIFY_SOCKET");
		execl(bin, "shmqd", "--foreground", "--socket", d.sock, "--log",
		      log, (char *)NULL);
		_exit(127);
	}
	status = harness_wait(pid, 10000);
	ck_assert_msg(exited_with(status, 1), "second shmqd: %s",
		      describe(status));
	ck_assert(file_contains(log, "another shmqd"));

	/* The first one still owns the socket and its queues. */
	ck_assert_int_eq(daemon_pid_of(d.sock), d.pid);
	ck_assert_uint_eq(stat_name("first").messages, 1);
	get_str(c, "x");
	RC_EQ(shmq_detach(c), SHMQ_OK);
	ck_assert_int_eq(daemon_cleanup(&d), 0);
}
END_TEST

START_TEST(test_stale_socket)
{
	struct shmq_stat st;
	struct stat sb;
	struct daemon d;
	shmq_t *c;
	pid_t old;
	int fd;

	ck_assert_int_eq(daemon_start(&d, NULL), 0);
	create_q("q", 4, 64, 0600, 0);
	c = open_q("q", SHMQ_PRODUCER | SHMQ_CONSUMER);
	put_str(c, "x");
	old = d.pid;
	ck_assert(daemon_stop(&d, SIGKILL) != -1);

	/* A killed daemon leaves its socket file, which nobody answers. */
	ck_assert_int_eq(stat(d.sock, &sb), 0);
	ck_assert(S_ISSOCK(sb.st_mode));
	fd = raw_connect(d.sock);
	ck_assert_int_lt(fd, 0);
	ck_assert_int_eq(errno, ECONNREFUSED);
	RC_EQ(shmq_stat_name("q", &st), SHMQ_ENODAEMON);

	/* The next daemon replaces it. */
	ck_assert_int_eq(daemon_restart(&d), 0);
	ck_assert_int_ne(d.pid, old);
	ck_assert_int_eq(daemon_pid_of(d.sock), d.pid);
	ck_assert_uint_eq(stat_name("q").messages, 1);
	get_str(c, "x");
	RC_EQ(shmq_detach(c), SHMQ_OK);
	ck_assert_int_eq(daemon_cleanup(&d), 0);
}
END_TEST

/* ======================================================================= */

static Suite *systemd_suite(void)
{
	Suite *s = suite_create("systemd");
	TCase *tc;

	tc = tcase_create("systemd");
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_socket_activation);
	tcase_add_test(tc, test_socket_activation_wrong_type);
	tcase_add_test(tc, test_second_daemon_refused);
	tcase_add_test(tc, test_stale_socket);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return run_suite(systemd_suite(), "systemd");
}
