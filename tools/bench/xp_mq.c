/*
 * xp_mq.c - the POSIX message queue transport, and the limits it runs
 * under.
 *
 * Owns the probe of how large a POSIX queue the system allows for each
 * message size (raising fs.mqueue's settings where root may, and putting
 * them back: mq_restore() is part of cleanup), and the transport itself.
 * A queue is unlinked as soon as it is open, so none is left behind.
 */
#define _GNU_SOURCE
#include "config.h"

#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

#include "bench.h"

/*
 * msg_max (default 10) and msgsize_max (8192) bound mq_maxmsg and
 * mq_msgsize unless the caller has CAP_SYS_RESOURCE; root may raise them
 * through /proc, and we put them back at exit.  RLIMIT_MSGQUEUE bounds the
 * bytes of all of a user's queues and only CAP_SYS_RESOURCE raises its hard
 * limit: where it is too small, a queue gets the largest capacity it allows
 * and the report says so.
 */
static struct {
	size_t size[8];
	unsigned cap[8];        /* 0: cannot hold such messages at all */
	char why[8][96];
	int n;
	long msg_max, msgsize_max;
	rlim_t rlimit;
} mqlim;

static const char *const mq_sysctl[2] = {
	"/proc/sys/fs/mqueue/msg_max",
	"/proc/sys/fs/mqueue/msgsize_max",
};

static long mq_orig[2] = { -1, -1 };    /* msg_max, msgsize_max; -1 = kept */
static long mq_set[2];                  /* what we wrote */

static int mq_try(unsigned cap, size_t size)
{
	struct mq_attr a = { .mq_maxmsg = cap, .mq_msgsize = (long)size };
	char name[64];

	snprintf(name, sizeof(name), "/shmq-bench.%d.probe", (int)getpid());
	mqd_t q = mq_open(name, O_RDWR | O_CREAT | O_EXCL, 0600, &a);
	if (q == (mqd_t)-1)
		return errno;
	mq_unlink(name);
	mq_close(q);
	return 0;
}

static void mq_raise_sysctl(int i, long want)
{
	long cur = read_long(mq_sysctl[i]);

	if (cur < 0 || cur >= want)
		return;
	if (write_long(mq_sysctl[i], want) == 0) {
		mq_orig[i] = cur;
		mq_set[i] = want;
	}
}

/* The largest capacity up to MQ_WANT the system allows for `size`. */
static void mq_probe(size_t size)
{
	int i = mqlim.n++;
	unsigned lo = 0, hi = MQ_WANT;
	int e = mq_try(hi, size), e_first = e;

	mqlim.size[i] = size;
	if (e == 0) {
		mqlim.cap[i] = hi;
		return;
	}
	/* Bisect on "mq_open succeeds": the limit is in bytes. */
	while (lo < hi) {
		unsigned mid = lo + (hi - lo + 1) / 2;
		if (mq_try(mid, size) == 0)
			lo = mid;
		else
			hi = mid - 1;
	}
	mqlim.cap[i] = lo;
	snprintf(mqlim.why[i], sizeof(mqlim.why[i]), "%s",
		 e_first == EMFILE ? "RLIMIT_MSGQUEUE" : strerror(e_first));
}

void mq_init(void)
{
	static const size_t sizes[] = { 16, 64, 256, 4096, 65536 };
	struct rlimit rl;

	mq_raise_sysctl(0, MQ_WANT);
	mq_raise_sysctl(1, 65536);
	if (getrlimit(RLIMIT_MSGQUEUE, &rl) == 0) {
		if (rl.rlim_cur < rl.rlim_max) {
			rl.rlim_cur = rl.rlim_max;
			setrlimit(RLIMIT_MSGQUEUE, &rl);
		}
		mqlim.rlimit = rl.rlim_cur;
	}
	mqlim.msg_max = read_long(mq_sysctl[0]);
	mqlim.msgsize_max = read_long(mq_sysctl[1]);
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++)
		mq_probe(sizes[i]);
}

unsigned mq_cap(size_t size)
{
	for (int i = 0; i < mqlim.n; i++)
		if (mqlim.size[i] == size)
			return mqlim.cap[i];
	return 0;
}

unsigned mq_cap_below(size_t size)
{
	unsigned mc = mq_cap(size);

	return mc > 0 && mc < SHMQ_CAP ? mc : SHMQ_CAP;
}

void mq_say_limits(void)
{
	say("- POSIX mq: asked for %u messages; fs.mqueue.msg_max = %ld, "
	    "msgsize_max = %ld during the run%s; RLIMIT_MSGQUEUE = %llu "
	    "bytes. Capacity granted per message size:", MQ_WANT,
	    mqlim.msg_max, mqlim.msgsize_max,
	    mq_orig[0] >= 0 || mq_orig[1] >= 0
		    ? " (raised by this run, restored at exit)" : "",
	    (unsigned long long)mqlim.rlimit);
	for (int i = 0; i < mqlim.n; i++)
		say(" %zu B → %u%s%s%s", mqlim.size[i], mqlim.cap[i],
		    mqlim.why[i][0] ? " (limited by " : "", mqlim.why[i],
		    mqlim.why[i][0] ? ")" : "");
	say(". Where it is below %u, the system does not allow more, and "
	    "the row says so; shmq then also runs at mq's capacity (the "
	    "\"as mq\" rows), its zero-copy row runs only at that capacity, "
	    "and the ratio to mq is taken at equal capacity. For 64 KiB "
	    "messages a pipe grown to the same capacity in bytes (as far as "
	    "fs/pipe-max-size allows) is shown for reference.\n\n", MQ_WANT);
}

void mq_restore(void)
{
	for (int i = 0; i < 2; i++) {
		if (mq_orig[i] < 0)
			continue;
		/* Someone else changed it since: theirs now, leave it. */
		if (read_long(mq_sysctl[i]) == mq_set[i])
			write_long(mq_sysctl[i], mq_orig[i]);
		mq_orig[i] = -1;
	}
}

/* --- the transport: no batch call exists ----------------------------- */

static int mq_create(struct chan *c)
{
	static unsigned serial;
	struct mq_attr a = { .mq_maxmsg = c->capacity,
			     .mq_msgsize = (long)c->size };

	snprintf(c->name, sizeof(c->name), "/shmq-bench.%d.%u",
		 (int)getpid(), serial++);
	c->mq = mq_open(c->name, O_RDWR | O_CREAT | O_EXCL, 0600, &a);
	if (c->mq == (mqd_t)-1)
		return fail_errno(c, "mq_open");
	/* Nameless from now on: nothing to leave behind. */
	mq_unlink(c->name);
	return 0;
}

static int mq_send_one(struct chan *c, const void *m)
{
	while (mq_send(c->mq, m, c->size, 0) < 0)
		if (errno != EINTR)
			return fail_errno(c, "mq_send");
	return 0;
}

static int mq_recv_one(struct chan *c, void *buf, size_t *len)
{
	ssize_t r;

	do
		r = mq_receive(c->mq, buf, c->size, NULL);
	while (r < 0 && errno == EINTR);
	if (r < 0)
		return fail_errno(c, "mq_receive");
	*len = (size_t)r;
	return 0;
}

static int mq_sendv(struct chan *c, const struct iovec *v, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		if (mq_send_one(c, v[i].iov_base))
			return -1;
	return 0;
}

static int mq_recvv(struct chan *c, void *buf, struct iovec *v, unsigned n,
		    unsigned *got)
{
	(void)n;
	v[0].iov_base = buf;
	*got = 1;
	return mq_recv_one(c, buf, &v[0].iov_len);
}

static void mq_destroy(struct chan *c)
{
	mq_close(c->mq);
}

#define MQ_BATCH_HOW "none: one mq_send / mq_receive per message"

static int mq_applies(const struct bcase *k, struct agg *a)
{
	if (mq_cap(k->size) == 0) {
		snprintf(a->note, sizeof(a->note), "not run: no POSIX queue "
			 "of %zu-byte messages allowed (msgsize_max %ld)",
			 k->size, mqlim.msgsize_max);
		return 0;
	}
	return 1;
}

/* Where the system held its capacity below shmq's, the row says so. */
static int mq_label(char *b, size_t n, const struct bcase *k,
		    const struct agg *a)
{
	if (a->capacity == 0 || a->capacity >= SHMQ_CAP)
		return 0;
	snprintf(b, n, "POSIX mq, capacity %u only%s%s", a->capacity,
		 k->batch ? "; batch: " : "", k->batch ? MQ_BATCH_HOW : "");
	return 1;
}

const struct xport xp_mq = {
	.name = "POSIX mq", .option = "mq", .batch_how = MQ_BATCH_HOW,
	.capacity = mq_cap, .applies = mq_applies, .label = mq_label,
	.create = mq_create, .open = no_open, .send = mq_send_one,
	.recv = mq_recv_one, .sendv = mq_sendv, .recvv = mq_recvv,
	.leave = no_leave, .destroy = mq_destroy,
};
