/*
 * cpu.c - the machine's facts the core adapts to (see cpu.h).
 *
 * What the processor offers is read once per process.  What the process
 * may use of the machine (its affinity mask, its cgroups' CPU quota) can
 * change under a running process, so it is read again now and then, per
 * thread, never per message.  Reading it must never fail a queue
 * operation: a file that cannot be read means "no limit known".
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

/* ------------------------------------------------------------------ */
/* Files                                                              */

/* Reads a small file into buf (NUL-terminated); its length, or -1. */
ssize_t sys_read_small(const char *path, char *buf, size_t size)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	ssize_t n;

	if (fd < 0)
		return -1;
	do
		n = read(fd, buf, size - 1);
	while (n < 0 && errno == EINTR);
	close(fd);
	if (n < 0)
		return -1;
	buf[n] = '\0';
	return n;
}

/* Calls fn on each line of a file (without its newline) until fn returns
 * non-zero; lines longer than the buffer are skipped.  -1 if the file
 * cannot be read. */
static int each_line(const char *path, int (*fn)(char *line, void *ctx),
		     void *ctx)
{
	char buf[4096];
	size_t have = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY), skip = 0;

	if (fd < 0)
		return -1;
	for (;;) {
		ssize_t n = read(fd, buf + have, sizeof(buf) - 1 - have);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		have += (size_t)n;
		buf[have] = '\0';
		char *line = buf, *nl;
		while ((nl = memchr(line, '\n', have - (size_t)(line - buf)))) {
			*nl = '\0';
			if (!skip && fn(line, ctx)) {
				close(fd);
				return 0;
			}
			skip = 0;
			line = nl + 1;
		}
		have -= (size_t)(line - buf);
		memmove(buf, line, have);
		if (have == sizeof(buf) - 1) {
			have = 0;       /* a line longer than buf */
			skip = 1;
		}
	}
	close(fd);
	if (have && !skip) {
		buf[have] = '\0';
		fn(buf, ctx);
	}
	return 0;
}

/* Splits off the next space-separated field of *s. */
static char *next_field(char **s)
{
	char *f = *s, *e;

	if (f == NULL || *f == '\0')
		return NULL;
	e = strchr(f, ' ');
	if (e) {
		*e = '\0';
		*s = e + 1;
	} else {
		*s = NULL;
	}
	return f;
}

/* Is `tok` one of the comma-separated words of `list`? */
static int has_word(const char *list, const char *tok)
{
	size_t n = strlen(tok);

	while (list && *list) {
		if (strncmp(list, tok, n) == 0 &&
		    (list[n] == ',' || list[n] == '\0'))
			return 1;
		list = strchr(list, ',');
		if (list)
			list++;
	}
	return 0;
}

/* mountinfo escapes space, tab, newline and backslash as \ooo. */
static void unescape(char *s)
{
	char *d = s;

	for (; *s; s++) {
		if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' &&
		    s[2] >= '0' && s[2] <= '7' && s[3] >= '0' && s[3] <= '7') {
			*d++ = (char)((s[1] - '0') * 64 + (s[2] - '0') * 8 +
				      (s[3] - '0'));
			s += 3;
		} else {
			*d++ = *s;
		}
	}
	*d = '\0';
}

/* ------------------------------------------------------------------ */
/* cgroup CPU quota                                                   */

enum { CG_V2, CG_V1, CG_N };

/* Paths longer than this are taken for "no quota known": the walk runs
 * inside a wait, on the caller's stack. */
#define CG_PATH 512

struct cg_find {
	char dir[CG_N][CG_PATH];       /* where the hierarchy is mounted */
	char root[CG_N][CG_PATH];      /* which of its cgroups that is */
	char path[CG_N][CG_PATH];      /* our cgroup in it */
};

/* A mountinfo line: "id parent maj:min root mountpoint opts [tags] -
 * fstype source superopts". */
static int mount_line(char *line, void *ctx)
{
	struct cg_find *f = ctx;
	char *s = line, *root, *dir, *fs, *super, *x;
	int i;

	for (i = 0; i < 3 && next_field(&s); i++)
		;
	root = next_field(&s);
	dir = next_field(&s);
	while ((x = next_field(&s)) && strcmp(x, "-") != 0)
		;
	fs = next_field(&s);
	next_field(&s);
	super = next_field(&s);
	if (x == NULL || fs == NULL)
		return 0;
	if (strcmp(fs, "cgroup2") == 0)
		i = CG_V2;
	else if (strcmp(fs, "cgroup") == 0 && super && has_word(super, "cpu"))
		i = CG_V1;
	else
		return 0;
	if (f->dir[i][0] || strlen(dir) >= CG_PATH || strlen(root) >= CG_PATH)
		return 0;       /* the first mount of a hierarchy is enough */
	unescape(dir);
	unescape(root);
	strcpy(f->dir[i], dir);
	strcpy(f->root[i], root);
	return 0;
}

/* A /proc/self/cgroup line: "hierarchy:controllers:path"; v2's is
 * "0::path", v1's cpu controller is named in its list. */
static int cgroup_line(char *line, void *ctx)
{
	struct cg_find *f = ctx;
	char *c = strchr(line, ':'), *p;
	int i;

	if (c == NULL || (p = strchr(c + 1, ':')) == NULL)
		return 0;
	*p++ = '\0';
	if (strncmp(line, "0:", 2) == 0 && c[1] == '\0')
		i = CG_V2;
	else if (has_word(c + 1, "cpu"))
		i = CG_V1;
	else
		return 0;
	if (strlen(p) < CG_PATH)
		strcpy(f->path[i], p);
	return 0;
}

static int parse_u64(const char *s, char **end, uint64_t *v)
{
	if (*s < '0' || *s > '9')
		return -1;
	errno = 0;
	*v = strtoull(s, end, 10);
	return errno ? -1 : 0;
}

/* The quota of the cgroup in directory `dir`, in CPUs; 0 if none. */
static double level_quota(int kind, char *dir, size_t len)
{
	char buf[64], *end;
	uint64_t q, p;

	if (kind == CG_V2) {
		snprintf(dir + len, CG_PATH - len, "/cpu.max");
		if (sys_read_small(dir, buf, sizeof(buf)) <= 0 ||
		    parse_u64(buf, &end, &q) || *end != ' ' ||
		    parse_u64(end + 1, &end, &p))
			return 0;       /* "max PERIOD", or unreadable */
	} else {
		snprintf(dir + len, CG_PATH - len, "/cpu.cfs_quota_us");
		if (sys_read_small(dir, buf, sizeof(buf)) <= 0 ||
		    parse_u64(buf, &end, &q))
			return 0;       /* -1: none */
		snprintf(dir + len, CG_PATH - len, "/cpu.cfs_period_us");
		if (sys_read_small(dir, buf, sizeof(buf)) <= 0 ||
		    parse_u64(buf, &end, &p))
			return 0;
	}
	dir[len] = '\0';
	return p ? (double)q / (double)p : 0;
}

/* The smallest quota from our cgroup up to the hierarchy's mount. */
static double hierarchy_quota(const struct cg_find *f, int kind)
{
	const char *path = f->path[kind], *root = f->root[kind];
	size_t rl = strcmp(root, "/") == 0 ? 0 : strlen(root);
	char dir[CG_PATH];
	double best = 0;

	if (!f->dir[kind][0] || path[0] != '/' || strstr(path, "/..") ||
	    strncmp(path, root, rl) != 0 || (path[rl] != '/' && path[rl]))
		return 0;       /* not under the mounted part */
	size_t base = strlen(f->dir[kind]);
	if (snprintf(dir, sizeof(dir), "%s%s", f->dir[kind], path + rl) >=
	    (int)sizeof(dir) - 32)
		return 0;
	size_t len = strlen(dir);
	while (len > base && dir[len - 1] == '/')
		dir[--len] = '\0';
	for (;;) {
		double q = level_quota(kind, dir, len);
		if (q > 0 && (best == 0 || q < best))
			best = q;
		if (len <= base)
			break;
		while (len > base && dir[len - 1] != '/')
			len--;
		while (len > base && dir[len - 1] == '/')
			len--;
		dir[len] = '\0';
	}
	return best;
}

double cpu_quota(const char *cgroup_file, const char *mountinfo_file)
{
	struct cg_find f;
	double best = 0;

	memset(&f, 0, sizeof(f));
	if (each_line(mountinfo_file, mount_line, &f) == 0 &&
	    each_line(cgroup_file, cgroup_line, &f) == 0)
		for (int k = 0; k < CG_N; k++) {
			double q = hierarchy_quota(&f, k);
			if (q > 0 && (best == 0 || q < best))
				best = q;
		}
	return best;
}

/* ------------------------------------------------------------------ */
/* What this thread may use                                           */

static __thread struct {
	uint64_t next;          /* read again from then on */
	unsigned cpus;          /* 0: never read */
} usable;

void cpu_facts_forget(void)
{
	usable.cpus = 0;
}

unsigned cpu_usable(uint64_t now)
{
	if (usable.cpus && now < usable.next)
		return usable.cpus;

	cpu_set_t set;
	long n = cpus_online();
	/* (Fails with EINVAL on machines of more than CPU_SETSIZE CPUs: the
	 * CPUs online then.) */
	if (sched_getaffinity(0, sizeof(set), &set) == 0 && CPU_COUNT(&set) > 0)
		n = CPU_COUNT(&set);
	double q = cpu_quota("/proc/self/cgroup", "/proc/self/mountinfo");
	if (q > 0 && q < (double)n)
		n = q < 1 ? 1 : (long)q;
	usable.cpus = (unsigned)n;
	usable.next = now + CPU_FACTS_NS;
	return usable.cpus;
}

int cpu_cgroup_mount(int v1, char *dir, size_t size)
{
	struct cg_find f;
	int k = v1 ? CG_V1 : CG_V2;

	memset(&f, 0, sizeof(f));
	if (each_line("/proc/self/mountinfo", mount_line, &f) < 0 ||
	    !f.dir[k][0] || strlen(f.dir[k]) >= size)
		return -1;
	strcpy(dir, f.dir[k]);
	return 0;
}
