/*
 * poll.c - waiting without taking: a handle's pollable descriptors, and
 * the wait that says when a get or put would not block.
 *
 * Owns, per handle and direction, the descriptor an event loop watches
 * (an epoll set of a datagram socket, which wake-ups make readable, and
 * a timer, for a lock that stays held and for lease deadlines), arming
 * it, and the wake-up datagrams that make armed descriptors readable.
 * Why no wake-up is lost is told in proto/shmq_layout.h (struct
 * shmq_client) and wait.h.
 *
 * It must never take a queue's lock, never change the queue, and never
 * send to an address read from shared memory: a socket's name is computed
 * from the handle's own copy of the queue id, so a damaged segment can at
 * worst wake sockets of the same queue.  Nothing here runs while a
 * handle's calls find something to do: only a call that would block arms,
 * and only a commit that finds the poll bit set sends.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <sys/un.h>
#include <unistd.h>

#include "ring_impl.h"
#include "wait.h"

/* An armed getter of an acked queue on which leases are held looks at
 * least this often: a lease that times out is returned by whichever
 * getter looks next, as a sleeping getter's capped sleep does. */
#define LEASE_LOOK_NS  1000000000ll
#define BIND_TRIES     4

static uint32_t *side_word(struct ring *r, enum side side)
{
	return side == PUT_SIDE ? &r->hdr->space_futex : &r->hdr->data_futex;
}

/* The abstract name of entry `index`'s socket for `side`.  Everything in
 * it but the queue id is the entry's, and only selects among this queue's
 * handles. */
static socklen_t poll_name(struct sockaddr_un *a, uint64_t queue_id,
			   uint32_t index, uint32_t gen, uint32_t nonce,
			   enum side side)
{
	a->sun_family = AF_UNIX;
	a->sun_path[0] = '\0';
	int n = snprintf(a->sun_path + 1, sizeof(a->sun_path) - 1,
			 "shmq-poll.%016" PRIx64 ".%" PRIx32 ".%" PRIx32
			 ".%08" PRIx32 ".%c",
			 queue_id, index, gen, nonce,
			 side == PUT_SIDE ? 'p' : 'g');
	return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 +
			   (size_t)n);
}

/* Empties the socket: whatever it held is about wake-ups that came
 * before this arming.  One call takes a whole queue of them (at most
 * net.unix.max_dgram_qlen, 10 by default). */
#define DRAIN_BATCH 16

static int drain(int sock)
{
	char buf[DRAIN_BATCH];
	struct iovec iov[DRAIN_BATCH];
	struct mmsghdr mm[DRAIN_BATCH];

	memset(mm, 0, sizeof(mm));
	for (int i = 0; i < DRAIN_BATCH; i++) {
		iov[i] = (struct iovec){ &buf[i], 1 };
		mm[i].msg_hdr.msg_iov = &iov[i];
		mm[i].msg_hdr.msg_iovlen = 1;
	}
	int n, all = 0;
	while ((n = recvmmsg(sock, mm, DRAIN_BATCH, MSG_DONTWAIT, NULL)) > 0) {
		all += n;
		if (n < DRAIN_BATCH)
			break;
	}
	return all;
}

/* ------------------------------------------------------------------ */
/* Sending                                                            */

/*
 * One unbound datagram socket per process sends every wake-up.  It is
 * made on first use and checked before each wake-up: a program may close
 * every descriptor it did not open (as daemons do after fork) and may
 * have reused the number, and sending on a number that is now somebody
 * else's connected stream socket would write into that stream.  So the
 * state holds the number and the socket's inode (sockfs inode numbers
 * are 32 bits), and a number whose inode differs is forgotten, never
 * closed: it is not ours any more.
 */
static uint64_t sender_state;           /* ino << 32 | (fd + 1), or 0 */

static int sockfs_ino(int fd, uint32_t *ino)
{
	struct stat st;

	if (fstat(fd, &st) != 0 || !S_ISSOCK(st.st_mode))
		return -1;
	*ino = (uint32_t)st.st_ino;
	return 0;
}

/* The process's sender, checked, or a new one; -1 if none can be had
 * (out of descriptors, say). */
static int sender_get(void)
{
	uint64_t s = __atomic_load_n(&sender_state, __ATOMIC_ACQUIRE);

	for (;;) {
		uint32_t ino;
		int fd = (int)(uint32_t)s - 1;
		if (s && sockfs_ino(fd, &ino) == 0 && ino == (uint32_t)(s >> 32))
			return fd;
		int n = socket(AF_UNIX,
			       SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
		if (n < 0)
			return -1;
		if (sockfs_ino(n, &ino) != 0) {
			close(n);
			return -1;
		}
		uint64_t mine = (uint64_t)ino << 32 | (uint32_t)(n + 1);
		if (__atomic_compare_exchange_n(&sender_state, &s, mine, 0,
						__ATOMIC_ACQ_REL,
						__ATOMIC_ACQUIRE))
			return n;
		close(n);       /* another thread was first: check its one */
	}
}

/* Was the wake-up delivered, or is there nobody to deliver it to? */
static int wake_done(int e)
{
	/* ECONNREFUSED, ENOENT: the receiver is gone (its process died);
	 * the entry's arming is stale. */
	return e == ECONNREFUSED || e == ENOENT;
}

/*
 * One byte to one armed socket: 0 when it was delivered or nobody is
 * there to get it, -1 when it could not be sent for a reason of ours (no
 * socket to send from): then the caller leaves the entry armed, for the
 * next waker.  EAGAIN is ambiguous: the receiver's queue is full (it is
 * readable: fine), or our shared socket's buffer is, since a datagram
 * counts against its sender's buffer until it is read and receivers
 * (slow ones, or hostile ones that never read) may hold many.  That
 * wake-up is sent again from a socket of its own, whose buffer is empty:
 * EAGAIN there is the receiver's.  Any other error of the shared socket
 * means it is not what we think (closed or replaced under us since the
 * check): it is checked again, and the send tried once more.
 */
static int send_wake(int *sender, const struct sockaddr_un *a,
		     socklen_t len)
{
	for (int i = 0; i < 2; i++) {
		if (*sender < 0)
			*sender = sender_get();
		if (*sender < 0)
			break;
		if (sendto(*sender, "w", 1, MSG_DONTWAIT | MSG_NOSIGNAL,
			   (const struct sockaddr *)a, len) == 1 ||
		    wake_done(errno))
			return 0;
		if (errno == EAGAIN || errno == ENOBUFS)
			break;
		*sender = -1;
	}
	int once = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK,
			  0);
	if (once < 0)
		return -1;
	int rc = sendto(once, "w", 1, MSG_DONTWAIT | MSG_NOSIGNAL,
			(const struct sockaddr *)a, len) == 1 ||
		 wake_done(errno) || errno == EAGAIN ? 0 : -1;
	close(once);
	return rc;
}

/* Sends to every armed entry of `side`, clearing each arming it sent
 * to: -1 if some could not be sent (they stay armed). */
static int send_all(struct ring *r, enum side side)
{
	uint32_t hi = LOAD_SC(r->hdr->poll_hi);
	int sender = -1, lost = 0;

	if (hi > r->nclients)
		hi = r->nclients;
	for (uint32_t i = 0; i < hi; i++) {
		struct shmq_client *c = &r->clients[i];
		uint32_t armed = LOAD_SC(c->armed[side]);
		if (armed == 0)
			continue;
		struct sockaddr_un a;
		socklen_t len = poll_name(&a, r->queue_id, i, READ_ONCE(c->gen),
					  READ_ONCE(c->poll_nonce[side]),
					  side);
		/* Send first, clear after: a waker stopped or killed in
		 * between leaves the entry armed, and the next one sends
		 * again.  An entry armed again meanwhile keeps its new
		 * value (values are unique), and one we could not send to
		 * stays armed. */
		HOOK(RING_HOOK_POLL_SEND);
		if (send_wake(&sender, &a, len) != 0) {
			lost = 1;
			continue;
		}
		__atomic_compare_exchange_n(&c->armed[side], &armed, 0, 0,
					    __ATOMIC_SEQ_CST, __ATOMIC_RELAXED);
	}
	return lost ? -1 : 0;
}

/*
 * The poll bit is cleared last, and only if the word has not changed
 * since it was read before the entries: every arming changes the word
 * (poll_arm), and an arming that changed it before that read had marked
 * its entry before, so the loop saw it.  A waker stopped or killed
 * anywhere in here leaves the bit set, and the next change of the queue
 * in this direction sends again.  So does one that could not send (no
 * socket): the bit stays, or is set again after a wake-up of everybody.
 * Two wakers at once may both send to an entry: a spurious wake-up, at
 * most one per waker.
 */
void poll_wake(struct ring *r, enum side side, int all)
{
	uint32_t *word = side_word(r, side);
	uint32_t w = LOAD_SC(*word);

	if (!all && !(w & SHMQ_WAIT_POLLER))
		return;         /* another waker has been through */
	if (send_all(r, side) != 0) {
		if (!(w & SHMQ_WAIT_POLLER))
			__atomic_fetch_or(word, SHMQ_WAIT_POLLER,
					  __ATOMIC_SEQ_CST);
		return;
	}
	if (w & SHMQ_WAIT_POLLER)
		__atomic_compare_exchange_n(word, &w, w & ~SHMQ_WAIT_POLLER, 0,
					    __ATOMIC_SEQ_CST,
					    __ATOMIC_RELAXED);
}

/* Makes our own descriptor for `side` readable, from its own socket,
 * which is ours for sure.  Emptied first, so that the datagram always
 * fits and is always news: an edge-triggered loop sees every kick. */
void poll_kick(struct ring *r, enum side side)
{
	struct ring_poller *p = &r->poll[side];
	struct sockaddr_un a;

	if (!__atomic_load_n(&p->open, __ATOMIC_ACQUIRE))
		return;
	drain(p->sock);
	(void)sendto(p->sock, "k", 1, MSG_DONTWAIT | MSG_NOSIGNAL,
		     (const struct sockaddr *)&a,
		     poll_name(&a, r->queue_id, r->self_index, r->self_gen,
			       p->nonce, side));
}

/* ------------------------------------------------------------------ */
/* Arming                                                             */

/* Sets the descriptor's timer to fire at `at` (CLOCK_MONOTONIC ns), or
 * stops it (0).  Setting it also makes it unreadable.  A timer known to
 * be stopped costs no system call. */
static void set_timer(struct ring_poller *p, uint64_t at)
{
	struct itimerspec its = { 0 };

	if (at == 0 && !__atomic_load_n(&p->timer_set, __ATOMIC_RELAXED))
		return;
	__atomic_store_n(&p->timer_set, at != 0, __ATOMIC_RELAXED);
	if (at)
		ns_to_ts(at, &its.it_value);
	(void)timerfd_settime(p->timer, TFD_TIMER_ABSTIME, &its, NULL);
}

/* The get side of an acked queue: the timer fires when a lease another
 * handle holds may have to be returned (at most LEASE_LOOK_NS from now),
 * and is stopped when no lease is held.  Read after the arming's last
 * look (which read head, and a lease raises `leased` and lowers
 * next_deadline before it moves head): a lease taken before that look
 * is seen here, one taken after it comes from a message put (or nacked)
 * after our arming, and that wakes us anyway. */
static void set_lease_timer(struct ring *r, struct ring_poller *p)
{
	uint64_t at = 0;

	if (LOAD_SC(r->hdr->leased) > 0) {
		int64_t dl = LOAD_SC(r->hdr->next_deadline);
		at = mono_ns() + LEASE_LOOK_NS;
		if (dl > 0 && (uint64_t)dl < at)
			at = (uint64_t)dl;
	}
	set_timer(p, at);
}

static int poll_arm(struct ring *r, enum side side, uint64_t len)
{
	struct ring_poller *p = &r->poll[side];
	struct shmq_client *c = r->self;
	uint32_t *word = side_word(r, side);

	int drained = drain(p->sock);
	HOOK(RING_HOOK_POLL_ARM);

	/* The entry says who to wake, and is marked before the bit that
	 * makes a waker look at entries; a waker that cleared the bit before
	 * we set it had committed before our look below (see wait.h).  The
	 * value is the queue's next, never one a delayed waker may still
	 * hold for an earlier arming of this entry, by this handle or by
	 * one that had the entry before: clearing that one must fail. */
	uint32_t v;
	do
		v = __atomic_add_fetch(&r->hdr->arm_seq, 1, __ATOMIC_RELAXED);
	while (v == 0);
	uint32_t hi = LOAD_SC(r->hdr->poll_hi);
	while (hi <= r->self_index &&
	       !__atomic_compare_exchange_n(&r->hdr->poll_hi, &hi,
					    r->self_index + 1, 0,
					    __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST))
		;
	__atomic_store_n(&c->armed[side], v, __ATOMIC_SEQ_CST);
	/* The bit, and a new epoch even if the bit was set: a waker that
	 * read the word before this and is still sending must not clear
	 * the bit (poll_wake), for its loop may have passed our entry. */
	uint32_t w = LOAD_SC(*word);
	while (!__atomic_compare_exchange_n(word, &w,
					    (w | SHMQ_WAIT_POLLER) +
						    SHMQ_WAIT_EPOCH,
					    0, __ATOMIC_SEQ_CST,
					    __ATOMIC_SEQ_CST))
		;
	if (!ring_ready(r, side, len)) {
		/* Armed.  The timer is for what no committer announces: a
		 * lease that times out; else it is stopped (a retry it
		 * was set for is not needed any more). */
		if (side == GET_SIDE && r->leases)
			set_lease_timer(r, p);
		else
			set_timer(p, 0);
		return 0;
	}
	/* Ready after all: the caller tries again, and this arming is not
	 * needed (a wake-up already on its way only costs a spurious one).
	 * But the call will not return SHMQ_EAGAIN, so the descriptor must
	 * be as readable as it was (its timer was left alone): a
	 * level-triggered loop that takes one message per wake-up relies on
	 * it. */
	__atomic_compare_exchange_n(&c->armed[side], &v, 0, 0,
				    __ATOMIC_SEQ_CST, __ATOMIC_RELAXED);
	if (drained)
		poll_kick(r, side);
	return 1;
}

/* A lock held this long is held by a zero-copy call between its view
 * (or reserve) and its take (or commit), or by a stalled process: it
 * wakes nobody when it lets go.  So the descriptor fires again after a
 * delay that doubles from POLL_RETRY_MIN_MS to POLL_RETRY_MAX_MS while
 * the lock stays held: an event loop neither blocks nor spins.  Emptied
 * first, so that it is not readable before then, and fires as news. */
#define POLL_RETRY_MIN_MS 1u
#define POLL_RETRY_MAX_MS 32u

void poll_busy(struct ring *r, enum side side)
{
	struct ring_poller *p = &r->poll[side];
	uint32_t ms = __atomic_load_n(&p->retry_ms, __ATOMIC_RELAXED);

	if (!__atomic_load_n(&p->open, __ATOMIC_ACQUIRE))
		return;
	ms = ms == 0 ? POLL_RETRY_MIN_MS
		     : ms * 2 > POLL_RETRY_MAX_MS ? POLL_RETRY_MAX_MS : ms * 2;
	__atomic_store_n(&p->retry_ms, ms, __ATOMIC_RELAXED);
	drain(p->sock);
	set_timer(p, mono_ns() + (uint64_t)ms * 1000000u);
}

int poll_nowait(struct ring *r, enum side side, uint64_t len, int *tries)
{
	if (!__atomic_load_n(&r->poll[side].open, __ATOMIC_ACQUIRE))
		return SHMQ_EAGAIN;
	/* A queue that looks ready every time but never lets the call
	 * through (only a damaged one does) must not keep us here: the
	 * caller comes back a little later. */
	if (++*tries > POLL_TRIES) {
		poll_busy(r, side);
		return SHMQ_EAGAIN;
	}
	return poll_arm(r, side, len) ? SHMQ_OK : SHMQ_EAGAIN;
}

/* ------------------------------------------------------------------ */
/* Descriptors                                                        */

static uint32_t fresh_nonce(void)
{
	uint32_t n = 0;

	if (getrandom(&n, sizeof(n), GRND_NONBLOCK) != (ssize_t)sizeof(n))
		n = (uint32_t)(mono_ns() ^ ((uint64_t)getpid() << 16));
	return n ? n : 1;
}

/* The handle's socket for `side`, bound under a name with a nonce of its
 * own: the name of the other direction's socket (anybody can read it in
 * /proc/net/unix) says nothing about this one, so nobody can take it
 * first.  A name already taken (by someone who guessed 32 random bits,
 * or a handle of another daemon's queue with the same id and nonce) is
 * tried again with a new nonce; the entry learns the nonce once the name
 * is ours. */
static int bound_socket(struct ring *r, enum side side)
{
	for (int i = 0; i < BIND_TRIES; i++) {
		struct sockaddr_un a;
		uint32_t nonce = fresh_nonce();
		int s = socket(AF_UNIX,
			       SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
		if (s < 0)
			return -1;
		socklen_t len = poll_name(&a, r->queue_id, r->self_index,
					  r->self_gen, nonce, side);
		if (bind(s, (const struct sockaddr *)&a, len) == 0) {
			r->poll[side].nonce = nonce;
			__atomic_store_n(&r->self->poll_nonce[side], nonce,
					 __ATOMIC_RELEASE);
			return s;
		}
		int e = errno;
		close(s);
		errno = e;
		if (e != EADDRINUSE)
			return -1;
	}
	return -1;
}

static int status_of_errno(void)
{
	return errno == ENOMEM || errno == ENOBUFS ? SHMQ_ENOMEM
	       : errno == EMFILE || errno == ENFILE ? SHMQ_ELIMIT
						    : SHMQ_ESYS;
}

static int side_of(unsigned dir, enum side *side)
{
	if (dir == SHMQ_POLL_GET)
		*side = GET_SIDE;
	else if (dir == SHMQ_POLL_PUT)
		*side = PUT_SIDE;
	else
		return SHMQ_EINVAL;
	return SHMQ_OK;
}

int ring_poll_fd(struct ring *r, unsigned dir, int *fd)
{
	enum side side;
	int rc = side_of(dir, &side);

	if (rc != SHMQ_OK || r->self == NULL)
		return SHMQ_EINVAL;
	struct ring_poller *p = &r->poll[side];
	if (p->open) {
		*fd = p->fd;
		return SHMQ_OK;
	}
	/* Abstract names exist per network namespace: in another one than
	 * shmqd's, the wake-ups it sends (for a death, an auto-close)
	 * would never arrive.  Better no descriptor than a silent hang. */
	uint64_t dns = READ_ONCE(r->hdr->daemon_netns), mine = ring_netns();
	if (dns && mine && dns != mine) {
		errno = EXDEV;
		return SHMQ_ESYS;
	}
	int sock = bound_socket(r, side), timer = -1, ep = -1;
	if (sock < 0)
		return status_of_errno();
	/* One descriptor to watch for both: an epoll set is itself readable
	 * while any of its members is. */
	struct epoll_event ev = { .events = EPOLLIN };
	timer = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
	ep = epoll_create1(EPOLL_CLOEXEC);
	if (timer < 0 || ep < 0 ||
	    epoll_ctl(ep, EPOLL_CTL_ADD, sock, &ev) < 0 ||
	    epoll_ctl(ep, EPOLL_CTL_ADD, timer, &ev) < 0) {
		rc = status_of_errno();
		int e = errno;
		close(sock);
		if (timer >= 0)
			close(timer);
		if (ep >= 0)
			close(ep);
		errno = e;
		return rc;
	}
	p->sock = sock;
	p->timer = timer;
	p->timer_set = 0;
	p->retry_ms = 0;
	p->fd = ep;
	__atomic_store_n(&p->open, 1, __ATOMIC_RELEASE);
	/* A new descriptor starts readable: the loop's first wake-up makes
	 * the call that arms it. */
	poll_kick(r, side);
	*fd = p->fd;
	return SHMQ_OK;
}

void ring_poll_close(struct ring *r)
{
	for (int side = PUT_SIDE; side <= GET_SIDE; side++) {
		struct ring_poller *p = &r->poll[side];
		if (!p->open)
			continue;
		__atomic_store_n(&p->open, 0, __ATOMIC_RELEASE);
		if (r->self)
			__atomic_store_n(&r->self->armed[side], 0,
					 __ATOMIC_SEQ_CST);
		close(p->fd);
		close(p->timer);
		close(p->sock);
	}
}

/* ------------------------------------------------------------------ */
/* Waiting without taking                                             */

int ring_wait(struct ring *r, unsigned dir, uint64_t len, int timeout_ms)
{
	struct wait_call wc = { 0 };
	enum side side;
	struct timeout to;
	int rc = side_of(dir, &side), tries = 0;

	if (rc != SHMQ_OK)
		return rc;
	if (side == PUT_SIDE && len > r->max_msg)
		return SHMQ_E2BIG;
	if (side == GET_SIDE)
		len = 0;
	timeout_init(&to, timeout_ms);
	for (;;) {
		if (ring_ready(r, side, len)) {
			rc = SHMQ_OK;
			break;
		}
		if (to.ms == SHMQ_NOWAIT) {
			rc = poll_nowait(r, side, len, &tries);
			if (rc != SHMQ_OK)
				break;
			continue;
		}
		/* A wait like a blocking put's or get's, recorded as one for
		 * deadlock detection (wait.c). */
		rc = wait_for(r, side, len, &to, &wc);
		if (rc != SHMQ_OK)
			break;
	}
	if (wc.recorded)
		rc = ring_client_wait_end(r, side, &wc, rc);
	return rc;
}
