/*
 * cpu.h - what the core asks of the processor: a spin-wait hint, prefetches,
 * which CPU it runs on, and what the machine it runs on offers.
 *
 * Shared by the queue core and the benchmark, so that both spin the same
 * way.  Nothing here makes a system call except the functions that read
 * the machine's facts, and those only now and then (results are kept).
 */
#ifndef SHMQ_CPU_H
#define SHMQ_CPU_H

#include <sched.h>
#include <sys/types.h>
#include <stdint.h>

/* The pause of a spin loop: lets the sibling hyperthread run and keeps the
 * loop from flooding the memory system with speculative loads. */
static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ __volatile__("yield" ::: "memory");
#else
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
#endif
}

/* Asks for the line holding `p` in a writable state.  On x86 only
 * PREFETCHW does that (a read prefetch brings it shared, and the store
 * still waits); call it only where cpu_has_prefetchw() said yes. */
static inline void cpu_prefetchw(const void *p)
{
#if defined(__x86_64__) || defined(__i386__)
	__asm__("prefetchw %0" : : "m"(*(const char *)p));
#else
	__builtin_prefetch(p, 1, 3);
#endif
}

/* Asks for the line holding `p` for reading.  A prefetch never faults, but
 * callers still only pass addresses inside their own mapping. */
static inline void cpu_prefetch(const void *p)
{
	__builtin_prefetch(p, 0, 3);
}

/* The CPU this thread runs on now, + 1; 0 if the system cannot say.  (glibc
 * reads it from the thread's rseq area: a load, no system call.) */
static inline uint32_t cpu_current(void)
{
	int c = sched_getcpu();

	return c >= 0 ? (uint32_t)c + 1 : 0;
}

/* 1 if cpu_prefetchw() does what it says (CPUID PRFCHW on x86). */
/* Reads a small /proc or /sys file whole into buf (at most size - 1
 * bytes, then a NUL): the bytes read, or -1.  Retries an interrupted
 * read; never follows a controlling terminal. */
ssize_t sys_read_small(const char *path, char *buf, size_t size);

int cpu_has_prefetchw(void);
/* CPUs online (at least 1). */
long cpus_online(void);

/*
 * The CPUs this thread may use: those of its affinity mask, fewer if the
 * CPU quota of its cgroups allows fewer (whole CPUs, at least 1).  A
 * process pinned to one CPU, or limited to one CPU's worth of time, has
 * one CPU whatever the machine has.  Both can change while a process
 * runs, so the answer is read again when it is older than CPU_FACTS_NS
 * (`now`: CLOCK_MONOTONIC ns); in between, this thread's last answer,
 * without a system call.
 */
#define CPU_FACTS_NS 1000000000ull
unsigned cpu_usable(uint64_t now);
/* Makes this thread's next cpu_usable() read the facts again. */
void cpu_facts_forget(void);

/*
 * The CPU quota of the cgroups a process is in, in CPUs (quota / period,
 * the smallest along the path from its cgroup to the root, cgroup v2's
 * cpu.max and v1's cpu.cfs_quota_us alike), from its cgroup file
 * (/proc/self/cgroup) and its mount table (/proc/self/mountinfo).  0 if
 * there is no quota or nothing can be read.  Tests pass files of their
 * own, the cgroup directories they name included.
 */
double cpu_quota(const char *cgroup_file, const char *mountinfo_file);
/* Where this process sees the cgroup v2 hierarchy (v1 0) or the v1
 * hierarchy of the cpu controller (v1 1) mounted: 0, or -1 if it is not
 * (the benchmark makes its one-CPU cgroup there). */
int cpu_cgroup_mount(int v1, char *dir, size_t size);

#endif /* SHMQ_CPU_H */
