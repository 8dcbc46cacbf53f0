"""asyncio for shmq.Queue: aput, aget, ajoin and `async for`.

The rule that keeps a cancelled await from losing a message: an item is
only ever taken (or put) on the event loop's thread, by a call that does
not block (Queue._try_get / _try_put), and only once a wait that takes
nothing (Queue._wait) says the call would not block.  The wait runs in a
watcher thread, one per Queue and direction while coroutines wait on it;
cancelling an await only drops the coroutine's interest in the next
wake-up.  The watcher's waits end within a slice (a fraction of a
second), so it never outlives its waiters for long.

This module must never call a blocking put or get.
"""
import asyncio
import threading
import time
from queue import Empty, Full

_SLICE = 0.25           # seconds a watcher waits at a time
_LINGER = 1.0           # seconds an idle watcher stays for new waiters
_NOTHING = object()


class _Watcher:
    """Wakes the coroutines waiting for one direction of one Queue."""

    def __init__(self, queue, direction):
        self.queue = queue
        self.direction = direction
        self.cond = threading.Condition()
        self.waiters = []       # (loop, future, length)
        self.running = False

    def wait(self, length=0):
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        with self.cond:
            self.waiters.append((loop, future, length))
            if self.running:
                self.cond.notify()
            else:
                self.running = True
                threading.Thread(
                    target=self._run, daemon=True,
                    name="shmq-%s-%s" % (self.direction, self.queue.name),
                ).start()
        return future

    def _run(self):
        while True:
            with self.cond:
                self.waiters = [w for w in self.waiters if not w[1].done()]
                if not self.waiters:
                    self.cond.wait(_LINGER)
                    self.waiters = [w for w in self.waiters
                                    if not w[1].done()]
                    if not self.waiters:
                        self.running = False
                        return
                length = min(w[2] for w in self.waiters)
            try:
                ready = self.queue._wait(self.direction, _SLICE, length)
            except BaseException:
                ready = True    # the caller's own call reports it
            if not ready:
                continue
            with self.cond:
                woken, self.waiters = self.waiters, []
            for loop, future, _ in woken:
                try:
                    loop.call_soon_threadsafe(_wake, future)
                except RuntimeError:
                    pass        # that loop is closed


def _wake(future):
    if not future.done():
        future.set_result(None)


def _watcher(queue, direction):
    watchers = queue.__dict__.setdefault("_shmq_watchers", {})
    w = watchers.get(direction)
    if w is None:
        w = watchers.setdefault(direction, _Watcher(queue, direction))
    return w


def _deadline(timeout):
    if timeout is None:
        return None
    if timeout < 0:
        raise ValueError("'timeout' must be a non-negative number")
    return time.monotonic() + timeout


async def _until_ready(queue, direction, deadline, length=0):
    """True once the direction may be ready, False at the deadline."""
    future = _watcher(queue, direction).wait(length)
    if deadline is None:
        await future
        return True
    left = deadline - time.monotonic()
    try:
        await asyncio.wait_for(future, max(left, 0))
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
        length = queue._try_put(item)
        if length is None:
            return
        if not await _until_ready(queue, "put", deadline, length):
            if queue._try_put(item) is None:
                return
            raise Full


async def join(queue, timeout):
    """join() in short waits on a worker thread: it takes nothing, so a
    cancelled ajoin() leaves at most one short wait behind."""
    deadline = _deadline(timeout)
    loop = asyncio.get_running_loop()
    while True:
        step = _SLICE
        if deadline is not None:
            step = min(step, max(deadline - time.monotonic(), 0))
        try:
            await loop.run_in_executor(None, queue.join, step)
            return
        except TimeoutError:
            if deadline is not None and time.monotonic() >= deadline:
                raise
