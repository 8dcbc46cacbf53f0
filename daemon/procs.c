/*
 * procs.c - client processes and what each of them has attached.
 *
 * Owns the process records and their pidfd events, and how a queue's
 * attachment places are shared out among users.  It must never release
 * an attachment of a live process, and must release every attachment of a
 * dead one: that is what auto-close and "producer lost" rest on.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <search.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <event2/event.h>

#include "cpu.h"
#include "deadlock.h"
#include "log.h"
#include "procs.h"
#include "quota.h"

struct proc;

/* One attachment, on two lists: its process's (next) and its queue's
 * (q->attachments, qnext/qprev), so that deadlock detection can ask
 * which entries of a queue shmqd handed out, and to whom. */
struct attachment {
	struct queue *q;
	struct proc *proc;
	uint32_t index;
	uint32_t gen;
	uint32_t role;          /* SHMQ_ROLE_*, as handed out */
	uint32_t uid;           /* charged one handle (quota.h) */
	struct attachment *next;
	struct attachment *qnext, **qprev;
};

struct proc {
	pid_t pid;
	uint64_t start_time;
	int pidfd;
	struct event *ev;
	struct attachment *att;
};

/* How many attachments one uid holds on one queue. */
struct share {
	const struct queue *q;
	uint32_t uid;
	uint32_t n;
};

static void queue_link(struct attachment *a)
{
	struct queue *q = a->q;

	a->qnext = q->attachments;
	if (a->qnext)
		a->qnext->qprev = &a->qnext;
	a->qprev = &q->attachments;
	q->attachments = a;
}

static void queue_unlink(struct attachment *a)
{
	*a->qprev = a->qnext;
	if (a->qnext)
		a->qnext->qprev = a->qprev;
}

static struct event_base *evbase;
static void *by_pid;
static size_t nprocs;
static void *by_share;          /* tsearch root of struct share */

static int cmp_pid(const void *a, const void *b)
{
	pid_t x = ((const struct proc *)a)->pid;
	pid_t y = ((const struct proc *)b)->pid;
	return x < y ? -1 : x > y;
}

int procs_info(pid_t pid, struct proc_info *pi)
{
	char path[64], buf[1024];
	unsigned long long t;
	long threads;
	ssize_t n;
	int fd;

	memset(pi, 0, sizeof(*pi));
	snprintf(path, sizeof(path), "/proc/%ld/stat", (long)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = '\0';
	/* Field 2 is the command name in parentheses; it may contain spaces
	 * and parentheses itself: it ends at the last ')'. */
	char *open_paren = strchr(buf, '('), *p = strrchr(buf, ')');
	if (open_paren == NULL || p == NULL || p < open_paren)
		return -1;
	size_t len = (size_t)(p - open_paren - 1);
	if (len >= sizeof(pi->comm))
		len = sizeof(pi->comm) - 1;
	memcpy(pi->comm, open_paren + 1, len);
	pi->comm[len] = '\0';
	/* p is at the space before field 3, the state; 20 is the number of
	 * threads, 22 the start time. */
	p++;
	if (p[0] != ' ' || p[1] == '\0')
		return -1;
	pi->state = p[1];
	for (int field = 3; field < 20 && p; field++)
		p = strchr(p + 1, ' ');
	if (p == NULL || sscanf(p, " %ld", &threads) != 1 || threads < 1)
		return -1;
	for (int field = 20; field < 22 && p; field++)
		p = strchr(p + 1, ' ');
	if (p == NULL || sscanf(p, " %llu", &t) != 1)
		return -1;
	pi->threads = threads > UINT32_MAX ? UINT32_MAX : (uint32_t)threads;
	pi->start_time = t;
	return 0;
}

/* Where the cgroup file systems are mounted (from our own mountinfo,
 * once): the v2 hierarchy, and the v1 one with the freezer. */
static char cgroup2_at[256], freezer_at[256];
static int mounts_read;

static void read_mounts(void)
{
	FILE *f = fopen("/proc/self/mountinfo", "re");
	char line[1024];

	mounts_read = 1;
	if (f == NULL)
		return;
	while (fgets(line, sizeof(line), f)) {
		char at[256], type[64], opts[512];
		const char *dash = strstr(line, " - ");
		if (dash == NULL ||
		    sscanf(line, "%*s %*s %*s %*s %255s", at) != 1 ||
		    sscanf(dash + 3, "%63s %*s %511s", type, opts) != 2)
			continue;
		if (strcmp(type, "cgroup2") == 0 && cgroup2_at[0] == '\0')
			snprintf(cgroup2_at, sizeof(cgroup2_at), "%s", at);
		else if (strcmp(type, "cgroup") == 0 &&
			 strstr(opts, "freezer") != NULL)
			snprintf(freezer_at, sizeof(freezer_at), "%s", at);
	}
	fclose(f);
}

int procs_frozen(pid_t pid)
{
	char path[640], buf[4096], state[256];
	int frozen = 0;

	if (!mounts_read)
		read_mounts();
	snprintf(path, sizeof(path), "/proc/%ld/cgroup", (long)pid);
	if (sys_read_small(path, buf, sizeof(buf)) < 0)
		return 0;
	/* One line per hierarchy: "ID:CONTROLLERS:PATH"; v2 is "0::PATH". */
	char *save = NULL;
	for (char *line = strtok_r(buf, "\n", &save); line && !frozen;
	     line = strtok_r(NULL, "\n", &save)) {
		char *c1 = strchr(line, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : 0;
		if (c2 == NULL || strstr(c2, "/..") != NULL)
			continue;
		*c1 = *c2 = '\0';      /* line: the id, c1 + 1: controllers */
		if (strcmp(line, "0") == 0 && c1[1] == '\0' && cgroup2_at[0]) {
			snprintf(path, sizeof(path), "%s%s/cgroup.events",
				 cgroup2_at, c2 + 1);
			frozen = sys_read_small(path, state, sizeof(state)) > 0 &&
				 strstr(state, "frozen 1") != NULL;
		} else if (strstr(c1 + 1, "freezer") && freezer_at[0]) {
			snprintf(path, sizeof(path), "%s%s/freezer.state",
				 freezer_at, c2 + 1);
			frozen = sys_read_small(path, state, sizeof(state)) > 0 &&
				 strncmp(state, "THAWED", 6) != 0;
		}
	}
	return frozen;
}

/* Field 22 of /proc/PID/stat: when the process started, in clock ticks
 * since boot.  With the pid it names one process for good. */
static uint64_t start_time_of(pid_t pid)
{
	struct proc_info pi;

	return procs_info(pid, &pi) == 0 ? pi.start_time : 0;
}

/* The effective uid of a live process, from /proc (never from the
 * segment, where a client could write any uid); -1 if unknown. */
static int64_t uid_of(pid_t pid)
{
	char path[64], buf[2048];
	unsigned long real, eff;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%ld/status", (long)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = '\0';
	const char *line = strstr(buf, "\nUid:");
	if (line == NULL || sscanf(line + 5, "%lu %lu", &real, &eff) != 2 ||
	    eff > UINT32_MAX)
		return -1;
	return (int64_t)eff;
}

static int pidfd_open_(pid_t pid)
{
	return (int)syscall(SYS_pidfd_open, pid, 0);
}

static int pidfd_exited(int pidfd)
{
	struct pollfd p = { .fd = pidfd, .events = POLLIN };
	return poll(&p, 1, 0) > 0;
}

static int cmp_share(const void *a, const void *b)
{
	const struct share *x = a, *y = b;

	if (x->q != y->q)
		return (uintptr_t)x->q < (uintptr_t)y->q ? -1 : 1;
	return x->uid < y->uid ? -1 : x->uid > y->uid;
}

static struct share *share_find(const struct queue *q, uint32_t uid)
{
	struct share key = { q, uid, 0 };
	void *node = tfind(&key, &by_share, cmp_share);

	return node ? *(struct share **)node : NULL;
}

static uint32_t share_of(const struct queue *q, uint32_t uid)
{
	struct share *s = share_find(q, uid);

	return s ? s->n : 0;
}

static int share_add(const struct queue *q, uint32_t uid)
{
	struct share *s = share_find(q, uid), **node;

	if (s) {
		s->n++;
		return SHMQ_OK;
	}
	s = malloc(sizeof(*s));
	if (s == NULL)
		return SHMQ_ENOMEM;
	*s = (struct share){ q, uid, 1 };
	node = tsearch(s, &by_share, cmp_share);
	if (node == NULL || *node != s) {
		free(s);
		return SHMQ_ENOMEM;
	}
	return SHMQ_OK;
}

static void share_drop(const struct queue *q, uint32_t uid)
{
	struct share *s = share_find(q, uid);

	if (s && --s->n == 0) {
		tdelete(s, &by_share, cmp_share);
		free(s);
	}
}

/* Who may use every attachment place of q: its owner, root and the
 * daemon's own uid. */
static int privileged(const struct queue *q, uint32_t uid)
{
	return uid == q->uid || uid == 0 || uid == quota_daemon_uid();
}

/* A queue's attachment places (--max-attach) are shared out, so that no
 * user who may merely read or write a queue can take them all from its
 * owner: each other uid may hold a quarter of them (at least one), and
 * the other uids together three quarters; the last quarter is kept for
 * the privileged (see above).  SHMQ_OK, or SHMQ_ELIMIT with `why`. */
static int share_check(const struct queue *q, uint32_t uid, pid_t pid,
		       char *why, size_t why_size)
{
	static struct log_limit said_share, said_reserve;
	uint32_t places = q->ring.nclients, kept = places / 4;
	uint32_t each = kept ? kept : 1, others = q->attached;

	if (privileged(q, uid))
		return SHMQ_OK;
	if (share_of(q, uid) >= each) {
		snprintf(why, why_size, "uid %u holds %u of the %u handles of "
			 "this queue, a user's most (a quarter; shmqd "
			 "--max-attach)", uid, each, places);
		log_warn_limited(&said_share, "pid %d cannot open '%s': %s",
				 pid, q->name, why);
		return SHMQ_ELIMIT;
	}
	others -= share_of(q, q->uid);
	if (q->uid != 0)
		others -= share_of(q, 0);
	if (quota_daemon_uid() != q->uid && quota_daemon_uid() != 0)
		others -= share_of(q, quota_daemon_uid());
	if (others >= places - kept) {
		snprintf(why, why_size, "the last %u of this queue's %u "
			 "handles are kept for its owner, uid %u (shmqd "
			 "--max-attach)", kept, places, q->uid);
		log_warn_limited(&said_reserve, "pid %d cannot open '%s': %s",
				 pid, q->name, why);
		return SHMQ_ELIMIT;
	}
	return SHMQ_OK;
}

static struct proc *find(pid_t pid)
{
	struct proc key = { .pid = pid };
	void *node = tfind(&key, &by_pid, cmp_pid);
	return node ? *(struct proc **)node : NULL;
}

static void forget(struct proc *p)
{
	tdelete(p, &by_pid, cmp_pid);
	nprocs--;
	if (p->ev)
		event_free(p->ev);
	if (p->pidfd >= 0)
		close(p->pidfd);
	free(p);
}

struct removal {
	uint32_t index;
	int died;
};

static void remove_entry(struct queue *q, void *arg)
{
	const struct removal *rm = arg;
	ring_client_remove(&q->ring, rm->index, rm->died);
}

static void release(struct attachment *a, int died)
{
	struct queue *q = a->q;
	struct removal rm = { a->index, died };

	registry_access(q, remove_entry, &rm);
	queue_unlink(a);
	q->attached--;
	share_drop(q, a->uid);
	quota_give(a->uid, QUOTA_HANDLES, 1);
	registry_release(q);
	free(a);
}

static void died(struct proc *p)
{
	unsigned n = 0;

	while (p->att) {
		struct attachment *a = p->att;
		p->att = a->next;
		log_info("pid %ld died attached to '%s': released", (long)p->pid,
			 a->q->name);
		release(a, 1);
		n++;
	}
	log_debug("pid %ld gone (%u attachments released)", (long)p->pid, n);
	deadlock_gone(p->pid);
	forget(p);
}

static void on_exit_event(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	died(arg);
	registry_reap();
}

/* Starts watching a process; NULL if it is gone or cannot be watched. */
static struct proc *watch(pid_t pid, uint64_t want_start)
{
	struct proc *p = find(pid);
	uint64_t st;
	int fd;

	if (p)
		return (want_start && p->start_time != want_start) ? NULL : p;
	fd = pidfd_open_(pid);
	if (fd < 0)
		return NULL;
	/* Read the start time after opening the pidfd: if it still matches,
	 * the pidfd is the process we mean and not a reuse of its pid. */
	st = start_time_of(pid);
	if (st == 0 || (want_start && st != want_start) || pidfd_exited(fd)) {
		close(fd);
		return NULL;
	}
	p = calloc(1, sizeof(*p));
	if (p == NULL) {
		close(fd);
		return NULL;
	}
	p->pid = pid;
	p->start_time = st;
	p->pidfd = fd;
	p->ev = event_new(evbase, fd, EV_READ, on_exit_event, p);
	if (p->ev == NULL || event_add(p->ev, NULL) < 0 ||
	    tsearch(p, &by_pid, cmp_pid) == NULL) {
		if (p->ev)
			event_free(p->ev);
		close(fd);
		free(p);
		return NULL;
	}
	nprocs++;
	return p;
}

/* The handle must have been charged to uid already. */
static int link_attachment(struct proc *p, struct queue *q, uint32_t index,
			   uint32_t gen, uint32_t role, uint32_t uid)
{
	struct attachment *a = calloc(1, sizeof(*a));

	if (a == NULL || share_add(q, uid) != SHMQ_OK) {
		free(a);
		return SHMQ_ENOMEM;
	}
	a->q = q;
	a->proc = p;
	a->index = index;
	a->gen = gen;
	a->role = role;
	a->uid = uid;
	a->next = p->att;
	p->att = a;
	queue_link(a);
	q->attached++;
	return SHMQ_OK;
}

struct addition {
	uint32_t pid, role, index, gen;
	uint64_t start_time;
	int rc;
};

static void add_entry(struct queue *q, void *arg)
{
	struct addition *ad = arg;
	ad->rc = ring_client_add(&q->ring, ad->pid, ad->start_time, ad->role,
				 &ad->index, &ad->gen);
}

int procs_attach(pid_t pid, uint32_t uid, struct queue *q, uint32_t role,
		 uint32_t *index, uint32_t *gen, char *why, size_t why_size)
{
	struct proc *p;
	int rc;

	/* The quota first: a refused open costs the daemon nothing. */
	rc = quota_take(uid, QUOTA_HANDLES, 1, 0, why, why_size);
	if (rc != SHMQ_OK)
		return rc;
	rc = share_check(q, uid, pid, why, why_size);
	if (rc != SHMQ_OK) {
		quota_give(uid, QUOTA_HANDLES, 1);
		return rc;
	}
	p = watch(pid, 0);
	if (p == NULL) {
		if (errno == EMFILE || errno == ENFILE) {
			static struct log_limit said;
			snprintf(why, why_size, "the daemon is out of file "
				 "descriptors (pid %d)", pid);
			log_warn_limited(&said, "pid %d cannot open '%s': out "
					 "of file descriptors", pid, q->name);
			rc = SHMQ_ELIMIT;
		} else {
			snprintf(why, why_size, "cannot watch the client "
				 "process (pid %d): %s", pid, strerror(errno));
			rc = SHMQ_ESYS;
		}
		quota_give(uid, QUOTA_HANDLES, 1);
		return rc;
	}
	struct addition ad = { .pid = (uint32_t)pid, .role = role,
			       .start_time = p->start_time };
	rc = registry_access(q, add_entry, &ad);
	if (rc != SHMQ_OK) {
		snprintf(why, why_size, "the queue's segment was destroyed");
	} else if ((rc = ad.rc) != SHMQ_OK) {
		static struct log_limit said;
		snprintf(why, why_size, "all attachments of the queue are in "
			 "use (pid %d, limit %u per queue)", pid,
			 q->ring.nclients);
		log_warn_limited(&said, "pid %d cannot open '%s': all %u "
				 "attachments in use", pid, q->name,
				 q->ring.nclients);
	} else {
		*index = ad.index;
		*gen = ad.gen;
		rc = link_attachment(p, q, *index, *gen, role, uid);
		if (rc != SHMQ_OK) {
			struct removal rm = { *index, 0 };
			registry_access(q, remove_entry, &rm);
			snprintf(why, why_size, "out of memory");
		}
	}
	if (rc != SHMQ_OK)
		quota_give(uid, QUOTA_HANDLES, 1);
	if (p->att == NULL)
		forget(p);
	return rc;
}

int procs_detach(pid_t pid, uint64_t queue_id, uint32_t index, uint32_t gen)
{
	struct proc *p = find(pid);

	if (p == NULL)
		return SHMQ_ENOENT;
	for (struct attachment **ap = &p->att; *ap; ap = &(*ap)->next) {
		struct attachment *a = *ap;
		if (a->q->id != queue_id || a->index != index || a->gen != gen)
			continue;
		*ap = a->next;
		release(a, 0);
		if (p->att == NULL)
			forget(p);
		return SHMQ_OK;
	}
	return SHMQ_ENOENT;
}

struct queue *procs_attachment(pid_t pid, uint64_t queue_id, uint32_t index,
				uint32_t gen)
{
	struct proc *p = find(pid);

	for (struct attachment *a = p ? p->att : NULL; a; a = a->next)
		if (a->q->id == queue_id && a->index == index && a->gen == gen)
			return a->q;
	return NULL;
}

size_t procs_entries(const struct queue *q, struct procs_entry *out,
		     size_t cap)
{
	size_t n = 0;

	for (const struct attachment *a = q->attachments; a; a = a->qnext) {
		if (n < cap)
			out[n] = (struct procs_entry){
				.pid = a->proc->pid,
				.start_time = a->proc->start_time,
				.index = a->index,
				.gen = a->gen,
				.role = a->role,
			};
		n++;
	}
	return n;
}

/* Under registry_access(): one pass over an adopted queue's table. */
static void adopt_entries(struct queue *q, void *arg)
{
	struct ring *r = &q->ring;

	(void)arg;
	for (uint32_t i = 0; i < r->nclients; i++) {
		struct shmq_client *c = &r->clients[i];
		uint32_t pid = __atomic_load_n(&c->pid, __ATOMIC_ACQUIRE);
		uint32_t gen = __atomic_load_n(&c->gen, __ATOMIC_ACQUIRE);
		uint64_t st = __atomic_load_n(&c->start_time,
					      __ATOMIC_RELAXED);
		/* The role too is what the segment says: nothing else is
		 * left of the daemon that handed it out. */
		uint32_t role = __atomic_load_n(&c->role, __ATOMIC_RELAXED) &
				(SHMQ_ROLE_PRODUCER | SHMQ_ROLE_CONSUMER |
				 SHMQ_ROLE_RELAY);
		if (pid == 0)
			continue;
		/* Detached while no daemon could be told: release it now,
		 * live process or not. */
		if (__atomic_load_n(&c->detached, __ATOMIC_ACQUIRE) ==
		    SHMQ_CLIENT_DETACHED) {
			ring_client_remove(r, i, 0);
			continue;
		}
		struct proc *p = NULL;
		int64_t uid = -1;
		if (pid <= INT32_MAX && st != 0)
			p = watch((pid_t)pid, st);
		/* Read after watch() matched the start time: the uid is the
		 * live process's.  It was attached: charged even over quota. */
		if (p)
			uid = uid_of((pid_t)pid);
		if (uid >= 0 &&
		    quota_take((uint32_t)uid, QUOTA_HANDLES, 1, QUOTA_FORCE,
			       NULL, 0) != SHMQ_OK)
			uid = -1;
		if (uid >= 0 &&
		    link_attachment(p, q, i, gen, role, (uint32_t)uid) !=
			    SHMQ_OK) {
			quota_give((uint32_t)uid, QUOTA_HANDLES, 1);
			uid = -1;
		}
		if (uid >= 0) {
			log_debug("queue '%s': pid %u still attached", q->name,
				  pid);
			continue;
		}
		log_info("queue '%s': pid %u died while no daemon ran: released",
			 q->name, pid);
		ring_client_remove(r, i, 1);
		if (p && p->att == NULL)
			forget(p);
	}
	ring_client_recount(r);
	/* Whatever happened while nobody watched, let every sleeper look. */
	ring_wake_all(r);
}

void procs_adopt(struct queue *q)
{
	registry_access(q, adopt_entries, NULL);
}

void procs_check(pid_t pid)
{
	struct proc *p = find(pid);

	if (p && pidfd_exited(p->pidfd))
		died(p);
}

size_t procs_count(void)
{
	return nprocs;
}

static void proc_free(void *arg)
{
	struct proc *p = arg;

	while (p->att) {
		struct attachment *a = p->att;
		p->att = a->next;
		queue_unlink(a);
		share_drop(a->q, a->uid);
		quota_give(a->uid, QUOTA_HANDLES, 1);
		free(a);
	}
	if (p->ev)
		event_free(p->ev);
	if (p->pidfd >= 0)
		close(p->pidfd);
	free(p);
}

void procs_init(struct event_base *base)
{
	evbase = base;
}

void procs_shutdown(void)
{
	tdestroy(by_pid, proc_free);
	by_pid = NULL;
	nprocs = 0;
	tdestroy(by_share, free);       /* emptied by proc_free */
	by_share = NULL;
}
