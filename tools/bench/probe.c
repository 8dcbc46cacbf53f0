/*
 * probe.c - what a process costs: CPU, context switches, system calls.
 *
 * Owns the window a side of a run measures itself in: getrusage() at both
 * ends, and the kernel's count of the process's own system calls (a perf
 * tracepoint counter, where tracefs and permissions allow).  It must add
 * nothing to the window but the calls it measures and the one that ends
 * it, and perf_init() subtracts even that.
 */
#define _GNU_SOURCE
#include "config.h"

#include <linux/perf_event.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "bench.h"

static int perf_id = -1;        /* raw_syscalls:sys_enter, or -1 */
static uint64_t perf_base;      /* what an empty window counts */

static uint64_t tv_ns(struct timeval tv)
{
	return (uint64_t)tv.tv_sec * 1000000000u + (uint64_t)tv.tv_usec * 1000;
}

/* The kernel's own count of our system calls: a tracepoint counter on
 * this process only, so it costs nothing unless asked for. */
void probe_open(struct probe *p, int syscalls)
{
	struct perf_event_attr a = {
		.type = PERF_TYPE_TRACEPOINT,
		.size = sizeof(a),
		.config = (uint64_t)perf_id,
		.disabled = 1,
	};

	p->fd = -1;
	if (syscalls && perf_id >= 0)
		p->fd = (int)syscall(SYS_perf_event_open, &a, 0, -1, -1,
				     PERF_FLAG_FD_CLOEXEC);
}

/* The counter is switched on last and off first, so that the window
 * holds only the calls it measures and the ioctl that ends it (and
 * perf_init() measures what an empty window counts). */
void probe_start(struct probe *p)
{
	getrusage(RUSAGE_SELF, &p->ru);
	if (p->fd >= 0) {
		ioctl(p->fd, PERF_EVENT_IOC_RESET, 0);
		ioctl(p->fd, PERF_EVENT_IOC_ENABLE, 0);
	}
}

void probe_stop(struct probe *p, struct usage *u)
{
	struct rusage ru;
	uint64_t n;

	u->syscalls = UINT64_MAX;
	if (p->fd >= 0) {
		ioctl(p->fd, PERF_EVENT_IOC_DISABLE, 0);
		if (read(p->fd, &n, sizeof(n)) == (ssize_t)sizeof(n))
			u->syscalls = n >= perf_base ? n - perf_base : 0;
		close(p->fd);
		p->fd = -1;
	}
	getrusage(RUSAGE_SELF, &ru);
	u->user_ns = tv_ns(ru.ru_utime) - tv_ns(p->ru.ru_utime);
	u->sys_ns = tv_ns(ru.ru_stime) - tv_ns(p->ru.ru_stime);
	u->csw = (uint64_t)(ru.ru_nvcsw - p->ru.ru_nvcsw) +
		 (uint64_t)(ru.ru_nivcsw - p->ru.ru_nivcsw);
}

void usage_add(struct usage *sum, const struct usage *u)
{
	sum->user_ns += u->user_ns;
	sum->sys_ns += u->sys_ns;
	sum->csw += u->csw;
	if (u->syscalls == UINT64_MAX || sum->syscalls == UINT64_MAX)
		sum->syscalls = UINT64_MAX;
	else
		sum->syscalls += u->syscalls;
}

void perf_init(void)
{
	long id = read_long("/sys/kernel/tracing/events/raw_syscalls/"
			    "sys_enter/id");
	if (id < 0)
		id = read_long("/sys/kernel/debug/tracing/events/"
			       "raw_syscalls/sys_enter/id");
	perf_id = (int)id;
	if (id >= 0) {
		struct probe p;
		struct usage u;
		probe_open(&p, 1);
		if (p.fd < 0) {
			perf_id = -1;
			return;
		}
		probe_start(&p);
		probe_stop(&p, &u);
		perf_base = u.syscalls;
	}
}

int probe_counts_syscalls(void)
{
	return perf_id >= 0;
}
