/*
 * cpu.c - the machine's facts the core adapts to (see cpu.h).
 *
 * Each is read once per process and kept: the answers do not change under
 * a running queue often enough to be worth a system call per wait.
 */
#define _GNU_SOURCE
#include <unistd.h>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

#include "cpu.h"

int cpu_has_prefetchw(void)
{
#if defined(__x86_64__) || defined(__i386__)
	static int known;       /* 0 unknown, 1 no, 2 yes */
	int v = __atomic_load_n(&known, __ATOMIC_RELAXED);
	if (v == 0) {
		unsigned a, b, c, d;
		v = (__get_cpuid(0x80000001u, &a, &b, &c, &d) &&
		     (c & bit_PRFCHW)) ? 2 : 1;
		__atomic_store_n(&known, v, __ATOMIC_RELAXED);
	}
	return v == 2;
#else
	return 1;
#endif
}

long cpus_online(void)
{
	static long n;
	long v = __atomic_load_n(&n, __ATOMIC_RELAXED);
	if (v == 0) {
		v = sysconf(_SC_NPROCESSORS_ONLN);
		if (v < 1)
			v = 1;
		__atomic_store_n(&n, v, __ATOMIC_RELAXED);
	}
	return v;
}
