/*
 * cpu.h - what the core asks of the processor: a spin-wait hint, a
 * prefetch for writing, and what the machine it runs on offers.
 *
 * Shared by the queue core and the benchmark, so that both spin the same
 * way.  Nothing here makes a system call except the first call of the
 * functions that read the machine's facts (results are kept).
 */
#ifndef SHMQ_CPU_H
#define SHMQ_CPU_H

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

/* 1 if cpu_prefetchw() does what it says (CPUID PRFCHW on x86). */
int cpu_has_prefetchw(void);
/* CPUs online (at least 1). */
long cpus_online(void);

#endif /* SHMQ_CPU_H */
