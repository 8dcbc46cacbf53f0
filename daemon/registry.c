/*
 * registry.c - the daemon's queues: names, segments, limits, adoption.
 *
 * Owns the shared-memory objects (see registry.h) and the two indexes over
 * the queues, by name and by id.  It must never trust a segment's header
 * for who owns a queue, and never hand a segment to anyone: session.c
 * decides that, with registry_segment_fd().
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <search.h>
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "paths.h"
#include "quota.h"
#include "registry.h"
#include "wire.h"

#define SHM_DIR      "/dev/shm"
#define META_MAGIC   UINT64_C(0x4154454d51514853)   /* "SHQQMETA" */
#define META_VERSION 2u

/* The daemon's trusted record of a queue (the .meta object). */
struct meta {
	uint64_t magic;
	uint32_t version;
	uint32_t size;
	uint64_t id;
	uint64_t max_bytes;
	uint32_t capacity, max_msg, clients, config_flags;
	uint32_t mode, uid, gid, pad;
	char     name[SHMQ_NAME_MAX + 1];
	uint32_t lease_timeout_ms, max_deliveries;
	char     dead_letter[SHMQ_NAME_MAX + 1];
	uint64_t check;             /* FNV-1a of everything before it */
};

static char prefix[32];         /* "shmq.<hash>." */
static struct registry_limits limits;
static void *by_name;           /* tsearch roots */
static void *by_id;
static size_t nqueues;          /* live (not deleted) queues */

static uint64_t fnv1a(const void *p, size_t n, uint64_t h)
{
	const unsigned char *b = p;
	for (size_t i = 0; i < n; i++) {
		h ^= b[i];
		h *= UINT64_C(0x100000001b3);
	}
	return h;
}
#define FNV_INIT UINT64_C(0xcbf29ce484222325)

static int cmp_name(const void *a, const void *b)
{
	return strcmp(((const struct queue *)a)->name,
		      ((const struct queue *)b)->name);
}

static int cmp_id(const void *a, const void *b)
{
	uint64_t x = ((const struct queue *)a)->id;
	uint64_t y = ((const struct queue *)b)->id;
	return x < y ? -1 : x > y;
}

static void shm_name(char *buf, size_t size, uint64_t id, int meta)
{
	snprintf(buf, size, "/%s%016" PRIx64 "%s", prefix, id,
		 meta ? ".meta" : "");
}

int registry_init(const char *identity, const struct registry_limits *lim)
{
	paths_segment_prefix(identity, prefix, sizeof(prefix));
	limits = *lim;
	return SHMQ_OK;
}

struct queue *registry_find(const char *name)
{
	struct queue key = { .name = name }, *q;
	void *node;

	node = tfind(&key, &by_name, cmp_name);
	q = node ? *(struct queue **)node : NULL;
	return q && !q->broken ? q : NULL;
}

struct queue *registry_find_id(uint64_t id)
{
	struct queue key = { .id = id };
	void *node = tfind(&key, &by_id, cmp_id);
	return node ? *(struct queue **)node : NULL;
}

size_t registry_count(void)
{
	return nqueues;
}

static int insert(struct queue *q)
{
	if (tsearch(q, &by_id, cmp_id) == NULL)
		return SHMQ_ENOMEM;
	if (tsearch(q, &by_name, cmp_name) == NULL) {
		tdelete(q, &by_id, cmp_id);
		return SHMQ_ENOMEM;
	}
	nqueues++;
	return SHMQ_OK;
}

/* A zeroed record holding copies of `name` and `dead_letter` (NULL:
 * none). */
static struct queue *queue_new(const char *name, const char *dead_letter)
{
	size_t nlen = strlen(name) + 1;
	size_t dlen = dead_letter ? strlen(dead_letter) + 1 : 1;
	struct queue *q = calloc(1, sizeof(*q) + nlen + dlen);
	char *s;

	if (q == NULL)
		return NULL;
	s = q->strings;
	memcpy(s, name, nlen);
	q->name = s;
	s += nlen;
	if (dead_letter)
		memcpy(s, dead_letter, dlen);
	q->dead_letter = s;
	q->seg_fd = -1;
	return q;
}

static uint64_t page_round(uint64_t n)
{
	uint64_t page = (uint64_t)sysconf(_SC_PAGESIZE);

	return (n + page - 1) / page * page;
}

/* The queue's name is gone, and its record with it: it no longer counts
 * as one of its owner's queues, nor does the record's page among its
 * bytes.  The segment's bytes count while its memory lives. */
static void uncount(struct queue *q)
{
	uint64_t meta = page_round(sizeof(struct meta));

	if (!q->counted)
		return;
	quota_give(q->uid, QUOTA_QUEUES, 1);
	q->counted = 0;
	if (q->reserved >= meta) {
		quota_give(q->uid, QUOTA_BYTES, meta);
		q->reserved -= meta;
	}
}

static void destroy(struct queue *q)
{
	if (q->seg_fd >= 0)
		close(q->seg_fd);
	uncount(q);
	if (q->reserved) {
		quota_give(q->uid, QUOTA_BYTES, q->reserved);
		q->reserved = 0;
	}
	if (q->map)
		munmap(q->map, q->map_size);
	free(q);
}

static void meta_fill(struct meta *m, const struct ring_config *cfg)
{
	memset(m, 0, sizeof(*m));
	m->magic = META_MAGIC;
	m->version = META_VERSION;
	m->size = sizeof(*m);
	m->id = cfg->queue_id;
	m->max_bytes = cfg->max_bytes;
	m->capacity = cfg->capacity;
	m->max_msg = cfg->max_msg;
	m->clients = cfg->clients;
	m->config_flags = cfg->config_flags;
	m->mode = cfg->mode;
	m->uid = cfg->uid;
	m->gid = cfg->gid;
	strcpy(m->name, cfg->name);
	m->lease_timeout_ms = cfg->lease_timeout_ms;
	m->max_deliveries = cfg->max_deliveries;
	if (cfg->dead_letter)
		strcpy(m->dead_letter, cfg->dead_letter);
	m->check = fnv1a(m, offsetof(struct meta, check), FNV_INIT);
}

static int meta_write(uint64_t id, const struct meta *m)
{
	char path[64];
	int fd, rc = SHMQ_OK;

	shm_name(path, sizeof(path), id, 1);
	fd = shm_open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0)
		return errno == ENOSPC ? SHMQ_ENOSPC : SHMQ_ESYS;
	if (fchmod(fd, 0600) < 0 ||
	    pwrite(fd, m, sizeof(*m), 0) != (ssize_t)sizeof(*m))
		rc = errno == ENOSPC ? SHMQ_ENOSPC : SHMQ_ESYS;
	close(fd);
	if (rc != SHMQ_OK)
		shm_unlink(path);
	return rc;
}

static void unlink_both(uint64_t id)
{
	char path[64];

	shm_name(path, sizeof(path), id, 0);
	shm_unlink(path);
	shm_name(path, sizeof(path), id, 1);
	shm_unlink(path);
}

static int map_segment(struct queue *q, int fd, uint64_t size)
{
	q->map = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (q->map == MAP_FAILED) {
		q->map = NULL;
		return errno == ENOMEM ? SHMQ_ENOMEM : SHMQ_ESYS;
	}
	q->map_size = size;
	return SHMQ_OK;
}

uint64_t registry_reserved_bytes(uint64_t seg_size)
{
	return page_round(seg_size) + page_round(sizeof(struct meta));
}

/* The bytes an acked queue reserves for the copies of its leased
 * messages (0 for a plain queue): capacity x max-msg, whatever its byte
 * budget, which users do not expect. */
static uint64_t lease_area(const struct ring_config *cfg, uint64_t size)
{
	struct ring_config plain = *cfg;
	uint64_t plain_size;

	if (!(cfg->config_flags & SHMQ_CFG_ACKED))
		return 0;
	plain.config_flags &= ~SHMQ_CFG_ACKED;
	plain.lease_timeout_ms = plain.max_deliveries = 0;
	plain.dead_letter = NULL;
	if (ring_plan(&plain, &plain_size) != SHMQ_OK || plain_size > size)
		return 0;
	return size - plain_size;
}

/* Charges a queue to its owner.  An adopted queue is charged whatever
 * the quotas say: it exists.  `leases`: the bytes of its lease area, to
 * name in the refusal if they are what does not fit. */
static int charge(struct queue *q, uint64_t seg_size, uint64_t leases,
		  unsigned flags, char *detail, size_t detail_size)
{
	uint64_t bytes = registry_reserved_bytes(seg_size);
	int rc = quota_take(q->uid, QUOTA_QUEUES, 1, flags, detail,
			    detail_size);

	if (rc != SHMQ_OK)
		return rc;
	q->counted = 1;
	rc = quota_take(q->uid, QUOTA_BYTES, bytes, flags, detail,
			detail_size);
	if (rc != SHMQ_OK) {
		/* Would it fit without the lease area?  (A take given back
		 * at once: the daemon does one thing at a time.) */
		if (rc == SHMQ_ELIMIT && leases &&
		    quota_take(q->uid, QUOTA_BYTES, bytes - leases, flags,
			       NULL, 0) == SHMQ_OK) {
			char who[32] = "daemon";
			quota_give(q->uid, QUOTA_BYTES, bytes - leases);
			if (strncmp(detail, "daemon", 6) != 0)
				snprintf(who, sizeof(who), "uid %u", q->uid);
			snprintf(detail, detail_size,
				 "%s byte quota: %" PRIu64 " bytes asked, %"
				 PRIu64 " are leased copies (acked: capacity x "
				 "max-msg)", who, bytes, leases);
		}
		uncount(q);
		return rc;
	}
	q->reserved = bytes;
	return SHMQ_OK;
}

static uint64_t fresh_id(void)
{
	uint64_t id;

	do {
		if (getrandom(&id, sizeof(id), 0) != sizeof(id))
			id = fnv1a(&id, sizeof(id), (uint64_t)getpid() ^
						       (uint64_t)time(NULL));
	} while (id == 0 || registry_find_id(id));
	return id;
}

int registry_create(const struct shmq_wire_create *req, uint32_t uid,
		    uint32_t gid, struct queue **out, char *detail,
		    size_t detail_size)
{
	struct ring_config cfg = {
		.capacity = req->capacity,
		.max_msg = req->max_msg,
		.max_bytes = req->max_bytes,
		.clients = limits.max_attach,
		.mode = req->mode,
		.uid = uid,
		.gid = gid,
		.config_flags = req->config_flags,
		.name = req->name,
		.lease_timeout_ms = req->lease_timeout_ms,
		.max_deliveries = req->max_deliveries,
		.dead_letter = req->dead_letter,
	};
	struct queue *q = NULL;
	struct meta m;
	char path[64];
	uint64_t size;
	int fd = -1, rc, e;

	if (registry_find(req->name))
		return SHMQ_EEXIST;
	rc = ring_plan(&cfg, &size);
	if (rc != SHMQ_OK) {
		if (!(cfg.config_flags & SHMQ_CFG_ACKED) &&
		    (cfg.lease_timeout_ms || cfg.max_deliveries ||
		     cfg.dead_letter[0]))
			snprintf(detail, detail_size,
				 "lease timeout, max deliveries and a "
				 "dead-letter queue need an acked queue");
		else
			snprintf(detail, detail_size,
				 "need 1 <= capacity <= %u, max-msg <= %u, "
				 "max-bytes 0 or >= max-msg, and capacity x "
				 "max-msg under 4 GiB",
				 SHMQ_CAPACITY_MAX, SHMQ_MSG_MAX);
		return rc;
	}
	uint64_t leases = lease_area(&cfg, size);
	if (size > limits.max_segment) {
		if (leases && size - leases <= limits.max_segment)
			snprintf(detail, detail_size,
				 "segment of %" PRIu64 " bytes > --max-segment "
				 "%" PRIu64 "; %" PRIu64 " are leased copies "
				 "(acked: capacity x max-msg)", size,
				 limits.max_segment, leases);
		else
			snprintf(detail, detail_size,
				 "segment of %" PRIu64 " bytes exceeds the "
				 "limit of %" PRIu64, size, limits.max_segment);
		return SHMQ_ELIMIT;
	}
	q = queue_new(req->name, req->dead_letter);
	if (q == NULL)
		return SHMQ_ENOMEM;
	q->uid = uid;
	/* Before anything is allocated: a refused create leaves nothing. */
	rc = charge(q, size, leases, 0, detail, detail_size);
	if (rc != SHMQ_OK) {
		free(q);
		return rc;
	}
	cfg.queue_id = q->id = fresh_id();
	q->gid = gid;
	q->mode = req->mode;
	q->config_flags = req->config_flags;

	shm_name(path, sizeof(path), q->id, 0);
	fd = shm_open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0) {
		rc = errno == EMFILE || errno == ENFILE ? SHMQ_ELIMIT
							 : SHMQ_ESYS;
		snprintf(detail, detail_size, "shm_open: %s", strerror(errno));
		static struct log_limit said;
		if (rc == SHMQ_ELIMIT)
			log_warn_limited(&said, "cannot create queue '%s': %s",
					 req->name, detail);
		goto fail;
	}
	/* Reserve every page now: a full /dev/shm must fail here, not as a
	 * SIGBUS in the middle of somebody's put. */
	if (fchmod(fd, 0600) < 0 ||
	    (e = posix_fallocate(fd, 0, (off_t)size)) != 0) {
		rc = SHMQ_ENOSPC;
		snprintf(detail, detail_size,
			 "cannot reserve %" PRIu64 " bytes in " SHM_DIR,
			 size);
		goto fail_unlink;
	}
	rc = map_segment(q, fd, size);
	if (rc == SHMQ_OK)
		rc = ring_format(q->map, size, &cfg);
	if (rc == SHMQ_OK)
		rc = ring_attach(&q->ring, q->map, size);
	if (rc != SHMQ_OK) {
		snprintf(detail, detail_size, "cannot map the segment");
		goto fail_unlink;
	}
	ring_set_daemon_netns(&q->ring);
	meta_fill(&m, &cfg);
	rc = meta_write(q->id, &m);
	if (rc != SHMQ_OK) {
		snprintf(detail, detail_size, "cannot write the queue record");
		goto fail_unlink;
	}
	rc = insert(q);
	if (rc != SHMQ_OK)
		goto fail_unlink;
	close(fd);
	*out = q;
	return SHMQ_OK;

fail_unlink:
	unlink_both(q->id);
fail:
	if (fd >= 0)
		close(fd);
	destroy(q);
	return rc;
}

/* Keeps a descriptor of the segment of a queue about to lose its name,
 * so that its memory can be freed when nobody has it open any more:
 * unlinking alone would leave the pages to whatever still maps the
 * segment or holds a descriptor of it (a child forked by a client, a
 * client that kept the descriptor it was passed), counted against
 * nobody. */
static void hold_segment(struct queue *q)
{
	if (q->seg_fd >= 0)
		return;
	q->seg_fd = registry_segment_fd(q);
	if (q->seg_fd < 0)
		log_warn("queue '%s': cannot keep its segment open (%s): its "
			 "memory will be freed through the daemon's mapping "
			 "only", q->name, strerror(errno));
}

/* Frees the memory of a deleted queue nobody has open.  Truncated to
 * nothing, the segment holds no page whoever still maps it: a stray
 * mapping faults (SIGBUS) rather than keep the memory.  Without a
 * descriptor, the pages are punched out through the daemon's own
 * mapping; a stray mapping that touches them again would get fresh
 * ones. */
static void free_memory(struct queue *q)
{
	if (q->seg_fd >= 0) {
		if (ftruncate(q->seg_fd, 0) < 0)
			log_warn("queue '%s': cannot free its segment: %s",
				 q->name, strerror(errno));
		close(q->seg_fd);
		q->seg_fd = -1;
	} else if (q->map &&
		   madvise(q->map, q->map_size, MADV_REMOVE) < 0) {
		log_warn("queue '%s': cannot free its segment: %s", q->name,
			 strerror(errno));
	}
}

/* Under registry_access(): tells the handles still attached that the
 * queue is gone (an acked queue's consumers then stop putting dead letters
 * where nobody will read them, and open the new queue of that name). */
static void mark_deleted(struct queue *q, void *arg)
{
	(void)arg;
	__atomic_fetch_or(&q->ring.hdr->state_flags, SHMQ_ST_DELETED,
			  __ATOMIC_SEQ_CST);
}

int registry_delete(struct queue *q)
{
	if (q->deleted)
		return SHMQ_ENOENT;
	registry_access(q, mark_deleted, NULL);
	hold_segment(q);
	unlink_both(q->id);
	tdelete(q, &by_name, cmp_name);
	q->deleted = 1;
	nqueues--;
	uncount(q);
	registry_release(q);
	return SHMQ_OK;
}

void registry_release(struct queue *q)
{
	if (!q->deleted || q->attached > 0)
		return;
	tdelete(q, &by_id, cmp_id);
	free_memory(q);
	destroy(q);
}

int registry_segment_fd(const struct queue *q)
{
	char path[64];

	shm_name(path, sizeof(path), q->id, 0);
	return shm_open(path, O_RDWR | O_CLOEXEC, 0);
}

/* --- touching segments ------------------------------------------------ */

/* A client holds a read-write descriptor of its queue's segment and may
 * ftruncate() it; the daemon's next access to the lost pages would raise
 * SIGBUS.  Every access runs under this guard instead, which turns the
 * signal into "this queue is broken". */
static sigjmp_buf bus_jmp;
static volatile sig_atomic_t bus_armed;

static void on_sigbus(int sig, siginfo_t *si, void *uc)
{
	(void)si;
	(void)uc;
	if (bus_armed) {
		bus_armed = 0;
		siglongjmp(bus_jmp, 1);
	}
	signal(sig, SIG_DFL);
	raise(sig);
}

void registry_guard_init(void)
{
	struct sigaction sa = { .sa_sigaction = on_sigbus,
				.sa_flags = SA_SIGINFO };

	sigemptyset(&sa.sa_mask);
	sigaction(SIGBUS, &sa, NULL);
}

static struct queue *broken_list;

/* Only marks: the caller (or a walk in progress) may still hold q. */
static void break_queue(struct queue *q)
{
	q->broken = 1;
	log_error("queue '%s': its segment was truncated by a client; the "
		  "queue is unusable and removed", q->name);
	hold_segment(q);
	unlink_both(q->id);
	q->next_broken = broken_list;
	broken_list = q;
}

void registry_reap(void)
{
	while (broken_list) {
		struct queue *q = broken_list;
		broken_list = q->next_broken;
		if (!q->deleted) {
			tdelete(q, &by_name, cmp_name);
			q->deleted = 1;
			nqueues--;
			uncount(q);
		}
		registry_release(q);
	}
}

int registry_access(struct queue *q, void (*fn)(struct queue *, void *),
		    void *arg)
{
	if (q->broken)
		return SHMQ_ECORRUPT;
	if (sigsetjmp(bus_jmp, 1) != 0) {
		break_queue(q);
		return SHMQ_ECORRUPT;
	}
	bus_armed = 1;
	fn(q, arg);
	bus_armed = 0;
	/* The daemon touches a queue only while serving a request: give the
	 * pages back (the segment keeps them), so that holding ten thousand
	 * queues costs no resident memory between requests. */
	size_t touched = q->ring.data ? (size_t)(q->ring.data -
						 (uint8_t *)q->map)
				      : q->map_size;
	madvise(q->map, touched, MADV_DONTNEED);
	return SHMQ_OK;
}

/* --- walking ----------------------------------------------------------- */

struct walk {
	const char *after;
	int (*fn)(struct queue *, void *);
	void *arg;
	int stopped;
};

static void walk_node(const void *node, VISIT which, void *closure)
{
	struct walk *w = closure;
	struct queue *q = *(struct queue *const *)node;

	if (w->stopped || (which != postorder && which != leaf) || q->broken)
		return;
	if (w->after[0] && strcmp(q->name, w->after) <= 0)
		return;
	w->stopped = w->fn(q, w->arg);
}

void registry_walk(const char *after, int (*fn)(struct queue *, void *),
		   void *arg)
{
	struct walk w = { after, fn, arg, 0 };
	twalk_r(by_name, walk_node, &w);
}

/* --- adoption ---------------------------------------------------------- */

/* Opens one of our objects, refusing anything we did not create: another
 * user could plant a file with our prefix in the world-writable /dev/shm. */
static int open_own(const char *path, struct stat *st)
{
	int fd = shm_open(path, O_RDWR | O_CLOEXEC | O_NOFOLLOW, 0);

	if (fd < 0)
		return -1;
	if (fstat(fd, st) < 0 || !S_ISREG(st->st_mode) ||
	    st->st_uid != geteuid() || (st->st_mode & 077) != 0) {
		close(fd);
		errno = EPERM;
		return -1;
	}
	return fd;
}

/* Reads a queue's record: SHMQ_OK; SHMQ_ESYS if it is not one of ours
 * (see open_own); SHMQ_ENOENT if it is empty (a create cut short before
 * writing it); SHMQ_EPROTO if it cannot be read (another version's). */
static int meta_read(uint64_t id, struct meta *m)
{
	char path[64];
	struct stat st;
	int fd, rc = SHMQ_EPROTO;

	shm_name(path, sizeof(path), id, 1);
	fd = open_own(path, &st);
	if (fd < 0)
		return SHMQ_ESYS;
	if (st.st_size == 0)
		rc = SHMQ_ENOENT;
	else if (st.st_size == (off_t)sizeof(*m) &&
	    pread(fd, m, sizeof(*m), 0) == (ssize_t)sizeof(*m) &&
	    m->magic == META_MAGIC && m->version == META_VERSION &&
	    m->size == sizeof(*m) && m->id == id &&
	    m->check == fnv1a(m, offsetof(struct meta, check), FNV_INIT) &&
	    wire_check_name(m->name, sizeof(m->name), 0) == SHMQ_OK &&
	    wire_check_name(m->dead_letter, sizeof(m->dead_letter), 1) ==
		    SHMQ_OK)
		rc = SHMQ_OK;
	close(fd);
	return rc;
}

struct adopt_check {
	uint64_t size;
	const struct meta *meta;
	int rc;
	int consistent;
	uint64_t messages;
};

/* Under registry_access(): the segment must be the queue its record says. */
static void check_adopted(struct queue *q, void *arg)
{
	struct adopt_check *ac = arg;
	const struct meta *m = ac->meta;
	struct shmq_stat s;

	ac->rc = ring_attach(&q->ring, q->map, ac->size);
	if (ac->rc != SHMQ_OK)
		return;
	if (q->ring.capacity != m->capacity || q->ring.max_msg != m->max_msg ||
	    q->ring.max_bytes != m->max_bytes ||
	    q->ring.nclients != m->clients || q->ring.queue_id != m->id ||
	    q->ring.config_flags != m->config_flags ||
	    q->ring.lease_timeout_ms != m->lease_timeout_ms ||
	    q->ring.max_deliveries != m->max_deliveries) {
		ac->rc = SHMQ_ECORRUPT;
		return;
	}
	ac->consistent = ring_check(&q->ring) == SHMQ_OK;
	/* This daemon may run in another network namespace than the one
	 * before it: descriptors made from now on must be in this one. */
	ring_set_daemon_netns(&q->ring);
	ring_stat(&q->ring, &s);
	ac->messages = s.messages;
}

/* What one of our objects takes in /dev/shm (0 if it is gone). */
static uint64_t object_bytes(uint64_t id, int meta)
{
	char path[64];
	struct stat st;
	int fd;

	shm_name(path, sizeof(path), id, meta);
	fd = open_own(path, &st);
	if (fd < 0)
		return 0;
	close(fd);
	return (uint64_t)st.st_blocks * 512;
}

/* A queue this daemon cannot serve but must not remove: one of another
 * layout or record version, which a daemon of that version could still
 * adopt.  It stays in /dev/shm, and so stays counted: as a queue and its
 * bytes of the owner its record names, or, if the record cannot be read,
 * as bytes of the daemon's own uid (in the total).  Removing its two
 * objects by hand frees it; the next start then no longer counts it. */
static void keep_unserved(uint64_t id, const struct meta *m,
			  const char *why)
{
	uint32_t uid = m ? m->uid : quota_daemon_uid();
	uint64_t bytes = object_bytes(id, 0) + object_bytes(id, 1);
	char path[64];

	shm_name(path, sizeof(path), id, 0);
	if (m)
		quota_take(uid, QUOTA_QUEUES, 1, QUOTA_FORCE, NULL, 0);
	quota_take(uid, QUOTA_BYTES, bytes, QUOTA_FORCE, NULL, 0);
	log_warn("cannot adopt %s%s%s" SHM_DIR "%s: %s; kept for the shmq "
		 "version that made it, not served, and its %" PRIu64 " bytes "
		 "counted against uid %u until it and its .meta are removed",
		 m ? "queue '" : "the queue in ", m ? m->name : "",
		 m ? "' in " : "", path, why, bytes, uid);
}

/* A queue whose segment a client damaged (its header, its size) holds
 * nothing this daemon can recover: its objects are removed.  The segment
 * is not truncated: processes that still map it (attached under the last
 * daemon) go on until they detach, and free its memory then. */
static void remove_damaged(uint64_t id, const struct meta *m,
			   const char *why)
{
	log_error("cannot adopt queue '%s' (%016" PRIx64 ") of uid %u: %s; "
		  "removed", m->name, id, m->uid, why);
	unlink_both(id);
}

static void adopt_one(uint64_t id)
{
	struct ring_config cfg;
	struct queue *q;
	struct stat st;
	struct meta m;
	char path[64], detail[SHMQ_WIRE_DETAIL];
	uint64_t size;
	int fd, rc;

	rc = meta_read(id, &m);
	if (rc == SHMQ_ESYS) {
		log_warn("ignoring queue record %016" PRIx64 ": not this "
			 "daemon's", id);
		return;
	}
	if (rc == SHMQ_ENOENT) {
		log_info("removing queue %016" PRIx64 ": its create was cut "
			 "short", id);
		unlink_both(id);
		return;
	}
	if (rc != SHMQ_OK) {
		keep_unserved(id, NULL, "its record is unreadable");
		return;
	}
	if (registry_find(m.name)) {
		keep_unserved(id, &m, "another queue has its name");
		return;
	}
	cfg = (struct ring_config){
		.capacity = m.capacity, .max_msg = m.max_msg,
		.max_bytes = m.max_bytes, .clients = m.clients,
		.config_flags = m.config_flags, .queue_id = id,
		.lease_timeout_ms = m.lease_timeout_ms,
		.max_deliveries = m.max_deliveries,
		.dead_letter = m.dead_letter,
	};
	if (ring_plan(&cfg, &size) != SHMQ_OK) {
		keep_unserved(id, &m, "its geometry is not this version's");
		return;
	}
	shm_name(path, sizeof(path), id, 0);
	fd = open_own(path, &st);
	if (fd < 0) {
		log_warn("queue '%s' has no segment: removing its record",
			 m.name);
		unlink_both(id);
		return;
	}
	q = queue_new(m.name, m.dead_letter);
	if (q == NULL) {
		close(fd);
		keep_unserved(id, &m, "out of memory");
		return;
	}
	q->id = id;
	q->uid = m.uid;
	q->gid = m.gid;
	q->mode = m.mode;
	q->config_flags = m.config_flags;
	struct adopt_check ac = { .size = size, .meta = &m };
	rc = SHMQ_ECORRUPT;
	if ((uint64_t)st.st_size == size &&
	    (rc = map_segment(q, fd, size)) == SHMQ_OK &&
	    (rc = registry_access(q, check_adopted, &ac)) == SHMQ_OK)
		rc = ac.rc;
	close(fd);
	if (q->broken) {
		/* Truncated under us while we looked: the reaper frees it,
		 * as a deleted queue nobody has attached. */
		q->deleted = 1;
		registry_reap();
		return;
	}
	if (rc == SHMQ_OK)
		rc = insert(q);
	if (rc != SHMQ_OK) {
		/* Not in the registry: it leaves nothing to give back. */
		destroy(q);
		if (rc == SHMQ_ECORRUPT && (uint64_t)st.st_size != size)
			remove_damaged(id, &m, "its segment was truncated or "
				       "grown");
		else if (rc == SHMQ_ECORRUPT)
			remove_damaged(id, &m, "its segment's header is "
				       "damaged");
		else
			keep_unserved(id, &m, rc == SHMQ_EPROTO
				      ? "its segment is of another layout "
					"version"
				      : shmq_strerror(rc));
		return;
	}
	charge(q, size, 0, QUOTA_FORCE, detail, sizeof(detail));
	if (!ac.consistent)
		log_warn("queue '%s': shared state is inconsistent", m.name);
	log_info("adopted queue '%s' (%" PRIu64 " messages queued)", q->name,
		 ac.messages);
}

/* Parses "<prefix><16 hex>[.meta]". */
static int parse_entry(const char *name, uint64_t *id, int *is_meta)
{
	size_t plen = strlen(prefix);
	char *end;

	if (strncmp(name, prefix, plen) != 0)
		return -1;
	name += plen;
	if (strlen(name) < 16)
		return -1;
	errno = 0;
	*id = strtoull(name, &end, 16);
	if (errno || end != name + 16)
		return -1;
	if (*end == '\0')
		*is_meta = 0;
	else if (strcmp(end, ".meta") == 0)
		*is_meta = 1;
	else
		return -1;
	return 0;
}

void registry_adopt(void)
{
	DIR *d = opendir(SHM_DIR);
	struct dirent *e;
	uint64_t id;
	int is_meta;

	if (d == NULL) {
		log_warn("cannot scan " SHM_DIR ": %s", strerror(errno));
		return;
	}
	while ((e = readdir(d)) != NULL)
		if (parse_entry(e->d_name, &id, &is_meta) == 0 && is_meta &&
		    registry_find_id(id) == NULL)
			adopt_one(id);
	/* A segment without a record is a create that died half-way: no
	 * client ever had it.  One with a record was kept above, or is
	 * gone. */
	rewinddir(d);
	while ((e = readdir(d)) != NULL)
		if (parse_entry(e->d_name, &id, &is_meta) == 0 && !is_meta &&
		    registry_find_id(id) == NULL) {
			char path[64];
			struct stat st;
			shm_name(path, sizeof(path), id, 1);
			int fd = open_own(path, &st);
			if (fd >= 0) {
				close(fd);      /* kept, and counted, above */
				continue;
			}
			log_info("removing orphan segment %s", e->d_name);
			shm_name(path, sizeof(path), id, 0);
			shm_unlink(path);
		}
	closedir(d);
}

static void noop_free(void *p)
{
	(void)p;
}

static void queue_free(void *p)
{
	destroy(p);
}

void registry_shutdown(void)
{
	tdestroy(by_name, noop_free);
	tdestroy(by_id, queue_free);
	by_name = by_id = NULL;
	nqueues = 0;
}
