/*
 * waiter.c - a waiter blocked longer than the spin window, and the
 * report's section on it.
 *
 * Owns the measurement of what a process blocked in shmq_get (on an empty
 * queue) or shmq_put (on a full one) costs while it waits: its CPU time
 * across the call, and what shmq_stat counts meanwhile.  Its child and its
 * queue are gone before it returns.
 */
#define _GNU_SOURCE
#include "config.h"

#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"

struct waiter_res waiter[2];

static int waiter_child(const char *name, int put, int ready)
{
	struct side_res *res = &sh->cons[0];
	uint8_t buf[64] = { 0 };
	shmq_t *q;
	size_t len;
	char c = 'r';
	int rc = shmq_open(name, put ? SHMQ_PRODUCER : SHMQ_CONSUMER, &q);

	if (rc != SHMQ_OK) {
		snprintf(res->err, sizeof(res->err), "%s", shmq_strerror(rc));
		c = 'x';
	}
	if (write(ready, &c, 1) != 1 || c == 'x')
		return -1;
	uint64_t c0 = cpu_ns(), w0 = mono_ns();
	rc = put ? shmq_put(q, buf, sizeof(buf), SHMQ_FOREVER)
		 : shmq_get(q, buf, sizeof(buf), &len, SHMQ_FOREVER);
	res->u.user_ns = cpu_ns() - c0;
	res->msgs = mono_ns() - w0;
	if (rc != SHMQ_OK) {
		snprintf(res->err, sizeof(res->err), "%s", shmq_strerror(rc));
		return -1;
	}
	shmq_detach(q);
	return 0;
}

/* The parent wakes the waiter after opt.wait_s: a get by a put, a put
 * (on a full queue of capacity 1) by a get. */
static int waiter_wake(shmq_t *q, int put, struct waiter_res *w)
{
	uint8_t buf[64] = { 0 };
	struct shmq_stat st;
	size_t len;

	sleep_ns((uint64_t)(opt.wait_s * NS));
	if (shmq_stat(q, &st) == SHMQ_OK)
		w->blocked = put ? st.put_blocked : st.get_blocked;
	int rc = put ? shmq_get(q, buf, sizeof(buf), &len, 1000)
		     : shmq_put(q, buf, sizeof(buf), 1000);
	if (rc != SHMQ_OK)
		snprintf(w->err, sizeof(w->err), "waking: %s",
			 shmq_strerror(rc));
	return rc == SHMQ_OK ? 0 : -1;
}

void waiter_test(int put, struct waiter_res *w)
{
	const char *name = put ? "bench.wait.put" : "bench.wait.get";
	struct shmq_attr a;
	shmq_t *q = NULL;
	uint8_t m[64] = { 0 };
	int ready[2], status = 0;
	char c = 0;
	pid_t pid = -1;

	memset(sh, 0, sizeof(*sh));
	shmq_attr_init(&a);
	a.capacity = put ? 1 : 4;
	a.max_msg = sizeof(m);
	int rc = shmq_create(name, &a, 0);
	if (rc == SHMQ_OK)
		rc = shmq_open(name, SHMQ_PRODUCER | SHMQ_CONSUMER, &q);
	if (rc == SHMQ_OK && put)
		rc = shmq_put(q, m, sizeof(m), SHMQ_NOWAIT);    /* full */
	if (rc != SHMQ_OK || pipe(ready) < 0) {
		snprintf(w->err, sizeof(w->err), "setup: %s",
			 shmq_strerror(rc));
		goto out;
	}
	pid = fork();
	if (pid == 0) {
		child_signals(SIGKILL);
		close(ready[0]);
		_exit(waiter_child(name, put, ready[1]) ? 1 : 0);
	}
	kids_add(pid);
	close(ready[1]);
	if (pid < 0 || read(ready[0], &c, 1) != 1 || c != 'r')
		snprintf(w->err, sizeof(w->err), "waiter: %.180s",
			 sh->cons[0].err[0] ? sh->cons[0].err : "failed");
	else
		waiter_wake(q, put, w);
	close(ready[0]);
	if (pid > 0) {
		if (w->err[0])
			kill(pid, SIGKILL);
		while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
			;
		kids_forget(pid);
	}
	if (!w->err[0] && (!WIFEXITED(status) || WEXITSTATUS(status)))
		snprintf(w->err, sizeof(w->err), "waiter: %.180s",
			 sh->cons[0].err[0] ? sh->cons[0].err : "failed");
	w->ok = !w->err[0];
	w->wall_ns = (double)sh->cons[0].msgs;
	w->cpu_ns = (double)sh->cons[0].u.user_ns;
out:
	shmq_detach(q);
	shmq_delete(name);
	progress("%-24s  %.3f ms CPU in %.2f s %s\n",
		 put ? "waiter blocked in put" : "waiter blocked in get",
		 w->cpu_ns / 1e6, w->wall_ns / NS, w->ok ? "" : w->err);
}

void report_waiter(void)
{
	if (!(opt.only & SEC_WAITER))
		return;
	say("## A blocked waiter\n\n"
	    "A process blocked in shmq_get on an empty queue (or shmq_put on "
	    "a full one) for %.1f s, far longer than the spin window; its "
	    "CPU time (CLOCK_PROCESS_CPUTIME_ID) across the call.\n\n"
	    "| waiter | blocked | CPU used | share of the wait | "
	    "shmq_stat: blocked |\n|---|---:|---:|---:|---:|\n", opt.wait_s);
	for (int i = 0; i < 2; i++) {
		const struct waiter_res *w = &waiter[i];
		if (!w->ok) {
			say("| %s | **FAILED**: %s | | | |\n",
			    i ? "put" : "get", w->err);
			continue;
		}
		say("| %s | %.2f s | %.3f ms | %.4f %% | %u |\n",
		    i ? "put (full queue)" : "get (empty queue)",
		    w->wall_ns / NS, w->cpu_ns / 1e6,
		    100 * w->cpu_ns / w->wall_ns, w->blocked);
	}
	say("\n");
}
