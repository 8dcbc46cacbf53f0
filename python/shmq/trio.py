"""trio channels over a shmq queue.

    import shmq.trio
    send, receive = shmq.trio.open_channel("jobs", encoding="utf-8")
    async with send:
        await send.send("hello")
    async for item in receive:          # until the end of the stream
        ...

The channels have trio's names and behaviour: send/receive (and their
_nowait forms, raising trio.WouldBlock), clone(), aclose()/close(),
`async for`, and statistics() with the fields of
trio.MemoryChannelStatistics (from the queue's numbers, across processes).
receive() raises trio.EndOfChannel at the end of the stream, and
shmq.ProducerLost (not EndOfChannel: the stream may be incomplete) when a
producer died; send() raises trio.BrokenResourceError once the queue is
closed, trio.ClosedResourceError once this channel is.

Each channel owns a shmq.Queue of its own, opened by name with role 'w'
(send) or 'r' (receive): closing a send channel detaches a producer, so on
an auto_close queue the last one to close ends the stream, as closing the
last send channel of a trio memory channel does.

A cancelled send or receive has put or taken nothing: items move only by
non-blocking calls on trio's thread; when one finds nothing to do, it arms
the Queue's descriptor (libshmq's shmq_fd()) and the task waits for it to
become readable (trio.lowlevel.wait_readable), then tries again.  No
thread is involved.  Tasks that send or receive on one channel at once
share its descriptor: one waits on it, the others for that one.

Importing this module imports trio; `import shmq` never does.
"""
import collections
import os

import trio

from . import Queue, ShutDown, ProducerLost

__all__ = ["open_channel", "SendChannel", "ReceiveChannel",
           "ChannelStatistics"]

_NOTHING = object()

ChannelStatistics = collections.namedtuple("ChannelStatistics", [
    "current_buffer_used", "max_buffer_size", "open_send_channels",
    "open_receive_channels", "tasks_waiting_send", "tasks_waiting_receive",
])

def open_channel(queue, **options):
    """(SendChannel, ReceiveChannel) over a queue: a shmq.Queue (its name,
    encoding, errors and serializer are used) or a name with Queue's
    options (create=True etc.: the queue is created, if asked, once)."""
    if isinstance(queue, Queue):
        name = queue.name
        options = dict({"encoding": queue.encoding, "errors": queue.errors,
                        "serializer": queue.serializer}, **options)
    else:
        name = queue
    send = SendChannel(name, **options)
    options.pop("create", None)
    try:
        receive = ReceiveChannel(name, **options)
    except BaseException:
        send.close()
        raise
    return send, receive


class _Channel:
    _direction = None

    def __init__(self, name, role, **options):
        options.pop("role", None)
        self._options = options
        self._fd = -1               # a duplicate of the handle's, ours
        self._fd_pid = None         # the process that made it
        self._waiting = None        # trio.Event while a task waits on it
        self._tasks_waiting = 0
        self._queue = Queue(name, role=role, **options)
        self._closed = False

    def _clone_queue_options(self):
        options = dict(self._options)
        options.pop("create", None)
        return options

    @property
    def queue(self):
        """The shmq.Queue this channel owns."""
        return self._queue

    def close(self):
        """Detach this channel's Queue (idempotent).  Tasks waiting in
        send or receive on it raise trio.ClosedResourceError."""
        if not self._closed:
            self._closed = True
            if self._fd >= 0:
                fd, self._fd = self._fd, -1
                try:
                    trio.lowlevel.notify_closing(fd)
                except RuntimeError:
                    pass            # outside trio: nobody waits on it
                os.close(fd)
            self._queue.detach()

    def __del__(self):
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    async def aclose(self):
        self.close()
        await trio.lowlevel.checkpoint()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _check(self):
        if self._closed:
            raise trio.ClosedResourceError("this channel is closed")

    async def _wait(self):
        """Until the direction may be ready (spurious wake-ups happen: the
        caller tries again), or the channel is closed."""
        self._tasks_waiting += 1
        try:
            if self._waiting is not None:
                # Another task waits on the descriptor (trio allows one).
                await self._waiting.wait()
                return
            if self._fd >= 0 and self._fd_pid != os.getpid():
                os.close(self._fd)  # the parent's handle's (fork)
                self._fd = -1
            if self._fd < 0:
                self._fd = os.dup(self._queue._fd(self._direction))
                self._fd_pid = os.getpid()
            self._waiting = event = trio.Event()
            try:
                await trio.lowlevel.wait_readable(self._fd)
            except trio.ClosedResourceError:
                pass                # closed meanwhile: _check() says so
            finally:
                self._waiting = None
                event.set()
        finally:
            self._tasks_waiting -= 1

    def statistics(self):
        """The queue's numbers under trio.MemoryChannelStatistics' names:
        every process's handles, and the calls blocked in put or get in
        every process plus this channel's tasks waiting in send or
        receive (tasks of other channels wait on descriptors, which the
        queue does not count)."""
        st = self._queue.stat()
        put = self._tasks_waiting if self._direction == "put" else 0
        get = self._tasks_waiting if self._direction == "get" else 0
        return ChannelStatistics(
            current_buffer_used=st.messages, max_buffer_size=st.capacity,
            open_send_channels=st.producers,
            open_receive_channels=st.consumers,
            tasks_waiting_send=st.blocked_put + put,
            tasks_waiting_receive=st.blocked_get + get)


class SendChannel(_Channel, trio.abc.SendChannel):
    """The sending end: a producer of the queue."""

    _direction = "put"

    def __init__(self, name, **options):
        super().__init__(name, "w", **options)

    def clone(self):
        self._check()
        return SendChannel(self._queue.name, **self._clone_queue_options())

    def send_nowait(self, value):
        self._check()
        try:
            length = self._queue._try_put(value)
        except ShutDown:
            raise trio.BrokenResourceError("the queue is closed") from None
        if length is not None:
            raise trio.WouldBlock

    async def send(self, value):
        await trio.lowlevel.checkpoint_if_cancelled()
        while True:
            self._check()
            try:
                length = self._queue._try_put(value)
            except ShutDown:
                raise trio.BrokenResourceError(
                    "the queue is closed") from None
            if length is None:
                await trio.lowlevel.cancel_shielded_checkpoint()
                return
            await self._wait()


class ReceiveChannel(_Channel, trio.abc.ReceiveChannel):
    """The receiving end: a consumer of the queue."""

    _direction = "get"

    def __init__(self, name, **options):
        super().__init__(name, "r", **options)

    def clone(self):
        self._check()
        return ReceiveChannel(self._queue.name,
                              **self._clone_queue_options())

    def _take(self):
        try:
            return self._queue._try_get(_NOTHING)
        except ProducerLost:
            raise
        except ShutDown:
            raise trio.EndOfChannel from None

    def receive_nowait(self):
        self._check()
        item = self._take()
        if item is _NOTHING:
            raise trio.WouldBlock
        return item

    async def receive(self):
        await trio.lowlevel.checkpoint_if_cancelled()
        while True:
            self._check()
            item = self._take()
            if item is not _NOTHING:
                await trio.lowlevel.cancel_shielded_checkpoint()
                return item
            await self._wait()
