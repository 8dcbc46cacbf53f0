"""asyncio for shmq.Queue: aput, aget, ajoin and `async for`.

The rule that keeps a cancelled await from losing a message: an item is
only ever taken (or put) on the event loop's thread, by a call that does
not block (Queue._try_get / _try_put).  When that call finds nothing to
do it arms the Queue's descriptor for that direction (libshmq's
shmq_fd()), and the coroutine waits for the descriptor to become readable
in the loop (loop.add_reader), then tries again.  Cancelling an await only
drops the coroutine's interest in the next wake-up; no thread is involved.

Each Queue, direction and loop has one _Poller: the loop watches a
duplicate of the handle's descriptor (ours to close: the handle's own is
closed by its detach, which may happen in any thread), only while some
coroutine waits on it.  The pollers live in the Queue's __dict__ and hold
no reference to the Queue, so a dropped Queue is detached at once.

This module must never call a blocking put or get.
"""
import asyncio
import os
import time
from queue import Empty, Full

_NOTHING = object()
_POLLERS = "_shmq_pollers"


class _Poller:
    """Wakes the coroutines of one loop waiting for one direction of one
    Queue, when its descriptor becomes readable."""

    __slots__ = ("loop", "fd", "source", "waiters", "watching")

    def __init__(self, loop, source):
        self.loop = loop
        self.source = source            # the handle's descriptor
        self.fd = os.dup(source)        # the loop's
        self.waiters = set()
        self.watching = False

    def wait(self):
        future = self.loop.create_future()
        self.waiters.add(future)
        future.add_done_callback(self._forget)
        if not self.watching:
            self.loop.add_reader(self.fd, self._ready)
            self.watching = True
        return future

    def _unwatch(self):
        if self.watching:
            self.watching = False
            self.loop.remove_reader(self.fd)

    def _forget(self, future):
        self.waiters.discard(future)
        if not self.waiters:
            self._unwatch()

    def _ready(self):
        # Readable: every waiter tries again (the descriptor stays
        # readable until one of them finds nothing and arms it).
        self._unwatch()
        for future in list(self.waiters):
            if not future.done():
                future.set_result(None)

    def close(self):
        """In the loop's thread: stop watching, wake every waiter (they
        try again and see why), close the descriptor."""
        if not self.loop.is_closed():
            self._ready()
        self.watching = False
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __del__(self):
        # Unreachable: no loop watches it any more (or the loop is gone).
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


class _Pollers(dict):
    """A Queue's pollers, by (direction, loop), in one process."""

    def __init__(self):
        super().__init__()
        self.pid = os.getpid()


def _poller(queue, direction):
    loop = asyncio.get_running_loop()
    pollers = queue.__dict__.get(_POLLERS)
    if pollers is None or pollers.pid != os.getpid():
        # First use, or inherited through fork: the descriptors there
        # were the parent's handles'.
        pollers = queue.__dict__[_POLLERS] = _Pollers()
    source = queue._fd(direction)
    p = pollers.get((direction, loop))
    if p is not None and p.source == source and p.fd >= 0:
        return p
    if p is not None:
        p.close()
    # Loops that are gone (asyncio.run makes one per call) leave theirs.
    for key in [k for k in pollers if k[1].is_closed()]:
        pollers.pop(key).close()
    p = pollers[direction, loop] = _Poller(loop, source)
    return p


def forget(queue):
    """Once the Queue is detached: its pollers stop watching, and the
    coroutines waiting try again (and find the Queue detached)."""
    pollers = queue.__dict__.pop(_POLLERS, None)
    if not pollers or pollers.pid != os.getpid():
        return
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    for (_, loop), p in pollers.items():
        if loop is running or loop.is_closed():
            p.close()
        else:
            try:
                loop.call_soon_threadsafe(p.close)
            except RuntimeError:        # closed meanwhile
                p.close()


def _deadline(timeout):
    if timeout is None:
        return None
    if timeout < 0:
        raise ValueError("'timeout' must be a non-negative number")
    return time.monotonic() + timeout


async def _until_ready(queue, direction, deadline):
    """True once the direction may be ready, False at the deadline."""
    future = _poller(queue, direction).wait()
    if deadline is None:
        await future
        return True
    try:
        await asyncio.wait_for(future, max(deadline - time.monotonic(), 0))
    except asyncio.TimeoutError:
        return False
    return True


async def get(queue, timeout):
    deadline = _deadline(timeout)
    while True:
        item = queue._try_get(_NOTHING)
        if item is not _NOTHING:
            return item
        if not await _until_ready(queue, "get", deadline):
            item = queue._try_get(_NOTHING)     # the last look
            if item is not _NOTHING:
                return item
            raise Empty


async def put(queue, item, timeout):
    deadline = _deadline(timeout)
    while True:
        if queue._try_put(item) is None:
            return
        if not await _until_ready(queue, "put", deadline):
            if queue._try_put(item) is None:
                return
            raise Full


async def join(queue, timeout):
    """join() in short waits on a worker thread (libshmq has no descriptor
    for it): it takes nothing, so a cancelled ajoin() leaves at most one
    short wait behind."""
    deadline = _deadline(timeout)
    loop = asyncio.get_running_loop()
    while True:
        step = 0.25
        if deadline is not None:
            step = min(step, max(deadline - time.monotonic(), 0))
        try:
            await loop.run_in_executor(None, queue.join, step)
            return
        except TimeoutError:
            if deadline is not None and time.monotonic() >= deadline:
                raise
