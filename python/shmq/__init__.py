"""shmq: named, bounded message queues between processes, in shared memory.

shmq.Queue has the methods of queue.Queue, and crosses processes::

    import shmq
    q = shmq.Queue("jobs", create=True, encoding="utf-8")
    q.put("hello")                  # blocks while the queue is full
    q.shutdown()                    # "no more items", for every process

and in another process::

    for item in shmq.Queue("jobs", encoding="utf-8"):   # until end of stream
        print(item)

The queue lives in shared memory handed out by the shmqd daemon (started
on demand for the current user).  Items are bytes by default; encoding=
carries str, serializer=pickle carries Python objects.  Exceptions are the
ones queue.Queue raises (queue.Empty, queue.Full, ShutDown), plus
ProducerLost at the end of a stream whose producer died, and built-in
subclasses (FileNotFoundError, PermissionError, ...) for everything else.

This module owns the Python side of a Queue: its signature, pickling (a
Queue reopens by name in the process that unpickles it), what happens
after fork() and at exit, and the asyncio methods.  The C extension
(shmq._shmq) owns the handles and every call that touches the queue.
"""
import atexit
import importlib
import os
import sys
import threading
import types

from . import _shmq
from ._shmq import (  # noqa: F401 (re-exported)
    Empty, Full, ShutDown, ProducerLost, Error, ForkError, Stat, Status,
    User, InvalidArgument, InvalidName, MessageTooBig, QueueNotFound,
    QueueExists, PermissionDenied, DaemonUnreachable, ProtocolMismatch,
    QueueCorrupt, NoSpace, LimitReached, WrongRole, Interrupted, QueueBusy,
    SystemCallFailed, LeaseExpired, Deadlock, stat, delete, list_queues,
    users, deadlocks, strerror,
)

__all__ = [
    "Queue", "Empty", "Full", "ShutDown", "ProducerLost", "Error",
    "ForkError", "Stat", "Status", "User", "InvalidArgument", "InvalidName",
    "MessageTooBig", "QueueNotFound", "QueueExists", "PermissionDenied",
    "DaemonUnreachable", "ProtocolMismatch", "QueueCorrupt", "NoSpace",
    "LimitReached", "WrongRole", "Interrupted", "QueueBusy",
    "SystemCallFailed", "LeaseExpired", "Deadlock", "stat", "delete",
    "list_queues", "users", "deadlocks", "strerror",
]
__version__ = _shmq.libshmq_version


class Queue(_shmq.Queue):
    """A named, bounded queue shared by processes, with queue.Queue's API.

    Queue(name) opens an existing queue; create=True creates it first
    (exist_ok=False: FileExistsError if it exists).  The creation options
    (capacity, max_msg, max_bytes, mode, auto_close, acked, lease_timeout,
    max_deliveries, dead_letter, on_deadlock) apply only when this call
    creates it.

    A Queue attaches as a producer at its first put and as a consumer at
    its first get, so that a process that only reads never counts as a
    producer (auto_close, ProducerLost); role='r', 'w' or 'rw' attaches up
    front and refuses the other side (WrongRole).

    Items: bytes by default (any bytes-like object in, bytes out);
    encoding='utf-8' (errors=...) for str; serializer=pickle, or any
    object with dumps() and loads(), for Python objects.

    put/get/put_nowait/get_nowait/qsize/empty/full/shutdown/task_done/
    join mean what they mean for queue.Queue; put_many/get_many move
    batches; stat() returns what `qctl stat` shows; iteration gets until
    the end of the stream; `with` detaches at the end; aput/aget/ajoin
    and `async for` serve asyncio (shmq.trio serves trio).

    A Queue may be shared by the threads of a process.  After fork() it
    belongs to the parent: a multiprocessing child reopens it by name (as
    does unpickling it), any other child gets ForkError.  At interpreter
    exit every Queue still open is detached, so a normal exit is never
    mistaken for a lost producer.
    """

    def __init__(self, name, *, create=False, exist_ok=True, capacity=1024,
                 max_msg=4096, max_bytes=0, mode=0o600, auto_close=False,
                 acked=False, lease_timeout=None, max_deliveries=0,
                 dead_letter=None, role=None, encoding=None, errors=None,
                 serializer=None, on_deadlock="report"):
        super().__init__(
            name, create=create, exist_ok=exist_ok, capacity=capacity,
            max_msg=max_msg, max_bytes=max_bytes, mode=mode,
            auto_close=auto_close, acked=acked, lease_timeout=lease_timeout,
            max_deliveries=max_deliveries, dead_letter=dead_letter,
            role=role, encoding=encoding, errors=errors,
            serializer=serializer, on_deadlock=on_deadlock)
        if "multiprocessing.util" in sys.modules:
            _detach_at_multiprocessing_exit()

    __class_getitem__ = classmethod(types.GenericAlias)

    def detach(self):
        """Release this process's handles (the queue stays).  On an
        auto_close queue the last producer's detach closes it.  Coroutines
        waiting in aput/aget on this Queue wake up and raise ValueError."""
        super().detach()
        # Then wake them: they find the Queue detached.  (The loops watch
        # duplicates of the handles' descriptors: never a closed one.)
        aio = sys.modules.get(__name__ + "._aio")
        if aio is not None:
            aio.forget(self)

    close = detach

    def __exit__(self, *exc):
        self.detach()
        return False

    def __repr__(self):
        state = "detached" if self.detached else "attached=%r" % self.attached
        return "<shmq.Queue %r %s>" % (self.name, state)

    # A Queue travels by name: the process that unpickles it opens the
    # queue again with the same role and item options (never creating it).
    def __reduce__(self):
        options = {"role": self.role, "encoding": self.encoding,
                   "errors": self.errors, "serializer": self.serializer}
        if isinstance(self.serializer, types.ModuleType):
            options["serializer"] = _ModuleRef(self.serializer.__name__)
        return (_reopen, (self.name, options))

    # --- asyncio -------------------------------------------------------
    async def aput(self, item, timeout=None):
        """put() for asyncio: waits without blocking the event loop (on
        the Queue's descriptor, in the loop).  A cancelled aput() has put
        nothing."""
        from . import _aio
        await _aio.put(self, item, timeout)

    async def aget(self, timeout=None):
        """get() for asyncio: waits without blocking the event loop (on
        the Queue's descriptor, in the loop).

        A cancelled aget() has taken nothing: the item is taken on the
        event loop's thread, by a call that does not block."""
        from . import _aio
        return await _aio.get(self, timeout)

    async def ajoin(self, timeout=None):
        """join() for asyncio."""
        from . import _aio
        await _aio.join(self, timeout)

    def __aiter__(self):
        return self

    async def __anext__(self):
        try:
            return await self.aget()
        except ProducerLost:
            raise
        except ShutDown:
            raise StopAsyncIteration from None


class _ModuleRef:
    """A serializer module, pickled by name."""

    def __init__(self, name):
        self.name = name


def _reopen(name, options):
    serializer = options.get("serializer")
    if isinstance(serializer, _ModuleRef):
        options = dict(options,
                       serializer=importlib.import_module(serializer.name))
    return Queue(name, **options)


# --- fork, multiprocessing and exit ------------------------------------
#
# A handle is its opener's: the C half sees a fork (pthread_atfork) and
# asks _on_fork() before a child uses an inherited Queue.  A child that
# multiprocessing started reopens it by name (one thread at a time); any
# other gets ForkError.
#
# Exit.  A plain interpreter joins its non-daemon threads, then runs
# atexit: _shmq._detach_all() detaches every Queue still open, and calls
# still blocked in daemon threads never return.  multiprocessing's
# children leave through os._exit(), past atexit, after its exit hooks
# (util._exit_function) and only then threading's join of non-daemon
# threads: detaching in such a hook would strand a non-daemon thread
# blocked in a Queue (it could never return, the child never end).  So
# the hook detaches at once only when no other non-daemon thread runs;
# otherwise a thread of its own joins them and detaches after them, and
# the child's exit waits for that thread as for the others.  The hook is
# registered again after each fork or start of a child (multiprocessing
# clears its hooks there).

class _State:
    mp_child = None         # pid of this process, if multiprocessing made it
    hooked = False          # register_after_fork done (inherited on fork)
    finalizer_pid = None    # process whose multiprocessing exit detaches
    reopen = threading.Lock()   # a new one in each child (after fork)


def _mp_after_fork(_):
    _State.mp_child = os.getpid()
    _State.finalizer_pid = None
    _detach_at_multiprocessing_exit()


def _hook_multiprocessing(util):
    if not _State.hooked:
        util.register_after_fork(_State, _mp_after_fork)
        _State.hooked = True


def _before_fork():
    util = sys.modules.get("multiprocessing.util")
    if util is not None:
        _hook_multiprocessing(util)


def _after_fork_in_child():
    _State.reopen = threading.Lock()


def _detach_at_multiprocessing_exit():
    util = importlib.import_module("multiprocessing.util")
    _hook_multiprocessing(util)
    if _State.finalizer_pid != os.getpid():
        util.Finalize(None, _detach_after_threads, exitpriority=0)
        _State.finalizer_pid = os.getpid()


def _other_threads():
    me, main = threading.current_thread(), threading.main_thread()
    return [t for t in threading.enumerate()
            if t is not me and t is not main and not t.daemon]


def _detach_after_threads():
    if not _shmq._live():
        return
    if not _other_threads():
        _shmq._detach_all()
        return

    def last():
        while True:
            others = _other_threads()
            if not others:
                break
            for t in others:
                t.join()
        _shmq._detach_all()
    try:
        threading.Thread(target=last, name="shmq-exit").start()
    except RuntimeError:            # the interpreter is finalizing
        _shmq._detach_all()


def _on_fork(queue):
    if _State.mp_child == os.getpid():
        with _State.reopen:         # another thread may be reopening it
            queue._reopen()         # nothing to do if it did


_shmq._set_fork_hook(_on_fork)
os.register_at_fork(before=_before_fork, after_in_child=_after_fork_in_child)
atexit.register(_shmq._detach_all)
