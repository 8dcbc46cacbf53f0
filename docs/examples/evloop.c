/*
 * evloop.c - two queues and a timer in one libevent loop.
 *
 * An example of shmq in an event loop: each queue's descriptor
 * (shmq_fd) is an ordinary libevent read event next to a timer.  When a
 * descriptor fires, the callback takes messages with SHMQ_NOWAIT until
 * shmq_get returns SHMQ_EAGAIN, which arms the descriptor again; the
 * loop ends when both queues have reached end of stream.  No thread
 * blocks in shmq, so the same loop could serve sockets, signals and
 * more queues.
 *
 *   cc evloop.c $(pkg-config --cflags --libs shmq libevent) -o evloop
 *   qctl create a; qctl create b
 *   ./evloop a b &
 *   qctl put a hello; qctl put b world; qctl close a; qctl close b
 *
 * It prints each message as "QUEUE: MESSAGE" on standard output, and
 * once a second how many came from each queue on standard error.  Exit
 * status: 0 when both queues ended, 10 if a producer of either died
 * without detaching (the stream may be incomplete), 1 on an error.
 */
#include <shmq.h>

#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>

struct source {
	const char *name;
	shmq_t *q;
	struct event *ev;
	char *buf;
	size_t size;
	unsigned long count;
	int status;             /* 0 while running; then SHMQ_EOS... */
};

static struct source sources[2];
static struct event_base *base;

static int running(void)
{
	return sources[0].status == 0 || sources[1].status == 0;
}

/* The descriptor is readable: a get may proceed.  Take until the queue
 * says SHMQ_EAGAIN (the descriptor is armed again) or ends. */
static void on_readable(evutil_socket_t fd, short what, void *arg)
{
	struct source *s = arg;
	size_t len;
	int rc;

	(void)fd;
	(void)what;
	while ((rc = shmq_get(s->q, s->buf, s->size, &len, SHMQ_NOWAIT)) ==
	       SHMQ_OK) {
		printf("%s: %.*s\n", s->name, (int)len, s->buf);
		s->count++;
	}
	if (rc == SHMQ_EAGAIN)
		return;
	if (rc < 0)
		fprintf(stderr, "evloop: %s: %s\n", s->name,
			shmq_strerror(rc));
	s->status = rc;
	/* Out of the loop before shmq_detach closes the descriptor. */
	event_del(s->ev);
	if (!running())
		event_base_loopexit(base, NULL);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	fprintf(stderr, "evloop: %s %lu, %s %lu\n", sources[0].name,
		sources[0].count, sources[1].name, sources[1].count);
}

static int source_open(struct source *s, const char *name)
{
	int fd, rc;

	s->name = name;
	if ((rc = shmq_open(name, SHMQ_CONSUMER, &s->q)) != SHMQ_OK ||
	    (rc = shmq_fd(s->q, SHMQ_POLL_GET, &fd)) != SHMQ_OK) {
		fprintf(stderr, "evloop: %s: %s\n", name, shmq_strerror(rc));
		return -1;
	}
	s->size = shmq_max_msg(s->q);
	s->buf = malloc(s->size ? s->size : 1);
	/* Level-triggered (EV_PERSIST without EV_ET); with EV_ET the
	 * callback above is just as right, since it takes until
	 * SHMQ_EAGAIN. */
	s->ev = event_new(base, fd, EV_READ | EV_PERSIST, on_readable, s);
	if (s->buf == NULL || s->ev == NULL || event_add(s->ev, NULL) < 0) {
		fprintf(stderr, "evloop: %s: out of memory\n", name);
		return -1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct timeval second = { 1, 0 };
	struct event *timer;
	int status = 0;

	if (argc != 3) {
		fprintf(stderr, "usage: evloop QUEUE1 QUEUE2\n");
		return 2;
	}
	base = event_base_new();
	if (base == NULL)
		return 1;
	timer = event_new(base, -1, EV_PERSIST, on_timer, NULL);
	if (timer == NULL || event_add(timer, &second) < 0)
		return 1;
	if (source_open(&sources[0], argv[1]) == 0 &&
	    source_open(&sources[1], argv[2]) == 0)
		event_base_dispatch(base);
	else
		status = 1;
	for (int i = 0; i < 2; i++) {
		struct source *s = &sources[i];
		if (s->status <= 0)     /* an error, or never ran */
			status = 1;
		else if (s->status == SHMQ_EOS_LOST && status == 0)
			status = 10;
		if (s->ev)
			event_free(s->ev);
		shmq_detach(s->q);
		free(s->buf);
	}
	on_timer(-1, 0, NULL);
	event_free(timer);
	event_base_free(base);
	return status;
}
