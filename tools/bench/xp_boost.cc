/*
 * xp_boost.cc - Boost.Interprocess's message_queue as a transport of the
 * bench (C++; built only where configure found its headers).
 *
 * Owns the comparison the second speed round (sizes, one CPU,
 * containers) was measured against: a bounded queue of fixed-size slots
 * in POSIX shared memory, under a process-shared mutex
 * and two condition variables, with no crash safety (a process killed
 * holding its mutex wedges it).  The parent creates it before fork and
 * the children use the inherited mapping, as they do a pipe's descriptors;
 * it is removed from /dev/shm when the run ends.  It has no batch call:
 * batch cases run single calls, and their rows say so.  No exception may
 * leave this file: each becomes the run's error.
 */
#include "config.h"

#include <boost/interprocess/ipc/message_queue.hpp>
#include <boost/version.hpp>
#include <cstdio>
#include <unistd.h>

extern "C" {
#include "bench.h"
}

namespace ipc = boost::interprocess;

static ipc::message_queue *mq_of(struct chan *c)
{
	return static_cast<ipc::message_queue *>(c->priv);
}

static int fail(struct chan *c, const char *what, const std::exception &e)
{
	snprintf(c->why, sizeof(c->why), "%s: %s", what, e.what());
	return -1;
}

static int boost_create(struct chan *c)
{
	static unsigned serial;

	snprintf(c->name, sizeof(c->name), "shmq-bench-boost.%d.%u",
		 (int)getpid(), serial++);
	try {
		ipc::message_queue::remove(c->name);
		c->priv = new ipc::message_queue(ipc::create_only, c->name,
						 c->capacity, c->size);
	} catch (const std::exception &e) {
		return fail(c, "message_queue", e);
	}
	return 0;
}

static int boost_send(struct chan *c, const void *m)
{
	try {
		mq_of(c)->send(m, c->size, 0);
	} catch (const std::exception &e) {
		return fail(c, "send", e);
	}
	return 0;
}

static int boost_recv(struct chan *c, void *buf, size_t *len)
{
	ipc::message_queue::size_type got = 0;
	unsigned prio = 0;

	try {
		mq_of(c)->receive(buf, c->size, got, prio);
	} catch (const std::exception &e) {
		return fail(c, "receive", e);
	}
	*len = got;
	return 0;
}

static int boost_sendv(struct chan *c, const struct iovec *v, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		if (boost_send(c, v[i].iov_base))
			return -1;
	return 0;
}

static int boost_recvv(struct chan *c, void *buf, struct iovec *v,
		       unsigned n, unsigned *got)
{
	(void)n;
	v[0].iov_base = buf;
	*got = 1;
	return boost_recv(c, buf, &v[0].iov_len);
}

static void boost_destroy(struct chan *c)
{
	delete mq_of(c);
	c->priv = NULL;
	try {
		ipc::message_queue::remove(c->name);
	} catch (const std::exception &) {
	}
}

static struct xport make_boost(void)
{
	struct xport x = {};

	x.name = "Boost.Interprocess";
	x.option = "boost";
	x.batch_how = "none: one send / receive per message";
	x.create = boost_create;
	x.open = no_open;
	x.send = boost_send;
	x.recv = boost_recv;
	x.sendv = boost_sendv;
	x.recvv = boost_recvv;
	x.leave = no_leave;
	x.destroy = boost_destroy;
	return x;
}

extern "C" {
const struct xport xp_boost = make_boost();
const char *const boost_missing = NULL;
const int boost_version = BOOST_VERSION;
}
