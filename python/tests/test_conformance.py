"""One suite, three queues: queue.Queue, shmq.Queue and an acked shmq.Queue
must behave the same for every method, timeout and shutdown case that
queue.Queue has (shutdown only where the interpreter's queue.Queue has it,
3.13+; shmq.Queue always).

Items are Python objects: the shmq queues carry them with pickle.  Two
documented differences: join() on a plain shmq queue waits until every item
was taken, not until task_done() was called for it (that is what acked
queues are for), so the test that tells the two apart runs on the others;
and an acked queue's item holds its place (capacity) until task_done().
"""
import pickle
import queue
import threading
import time

import pytest

import shmq

MAXSIZE = 3
SHORT = 0.1             # a timeout that must expire


@pytest.fixture(params=["queue.Queue", "shmq.Queue", "shmq.Queue(acked)"])
def make(request, names):
    """make(maxsize) -> a fresh queue of the kind under test."""
    made = []

    def new(maxsize=MAXSIZE):
        if request.param == "queue.Queue":
            q = queue.Queue(maxsize)
        else:
            q = shmq.Queue(names(), create=True, capacity=maxsize,
                           serializer=pickle,
                           acked=request.param.endswith("(acked)"))
            made.append(q)
        q.kind = request.param
        return q
    yield new
    for q in made:
        q.detach()


def has_shutdown(q):
    return hasattr(q, "shutdown")


def in_thread(fn, *args):
    """Runs fn in a thread; returns (thread, result dict)."""
    out = {}

    def run():
        try:
            out["value"] = fn(*args)
        except BaseException as e:      # noqa: B036 (reported below)
            out["error"] = e
    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t, out


def wait_for(cond, timeout=10):
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "condition never held"
        time.sleep(0.005)


def blocked(q, side):
    """True once some caller waits in put or get of a shmq queue; for
    queue.Queue, once its condition has a waiter."""
    if isinstance(q, shmq.Queue):
        st = q.stat()
        return (st.blocked_get if side == "get" else st.blocked_put) > 0
    cond = q.not_empty if side == "get" else q.not_full
    return len(cond._waiters) > 0


def test_same_exception_classes():
    assert shmq.Empty is queue.Empty
    assert shmq.Full is queue.Full
    if hasattr(queue, "ShutDown"):
        assert shmq.ShutDown is queue.ShutDown
    assert issubclass(shmq.ProducerLost, shmq.ShutDown)


def test_fifo(make):
    q = make()
    for i in range(MAXSIZE):
        q.put(i)
    assert [q.get() for _ in range(MAXSIZE)] == list(range(MAXSIZE))


def test_objects_come_back_equal(make):
    q = make()
    item = {"a": [1, 2.5, None], "b": ("x", b"y")}
    q.put(item)
    assert q.get() == item


def test_qsize_empty_full(make):
    q = make()
    assert q.qsize() == 0 and q.empty() and not q.full()
    q.put(1)
    assert q.qsize() == 1 and not q.empty() and not q.full()
    q.put(2)
    q.put(3)
    assert q.qsize() == MAXSIZE and q.full()
    q.get()
    assert q.qsize() == 2
    if q.kind.endswith("(acked)"):
        assert q.full()                 # leased, not acked yet
        q.task_done()
    assert not q.full()


def test_maxsize(make):
    assert make().maxsize == MAXSIZE


def test_put_nowait_full(make):
    q = make()
    for i in range(MAXSIZE):
        q.put_nowait(i)
    with pytest.raises(queue.Full):
        q.put_nowait(99)
    with pytest.raises(queue.Full):
        q.put(99, block=False)
    with pytest.raises(queue.Full):
        q.put(99, False, 5)             # block=False ignores the timeout
    assert q.qsize() == MAXSIZE


def test_get_nowait_empty(make):
    q = make()
    with pytest.raises(queue.Empty):
        q.get_nowait()
    with pytest.raises(queue.Empty):
        q.get(block=False)
    with pytest.raises(queue.Empty):
        q.get(False, 5)


def test_put_timeout(make):
    q = make()
    for i in range(MAXSIZE):
        q.put(i)
    t = time.monotonic()
    with pytest.raises(queue.Full):
        q.put(99, timeout=SHORT)
    assert time.monotonic() - t >= SHORT * 0.9
    with pytest.raises(queue.Full):
        q.put(99, timeout=0)


def test_get_timeout(make):
    q = make()
    t = time.monotonic()
    with pytest.raises(queue.Empty):
        q.get(timeout=SHORT)
    assert time.monotonic() - t >= SHORT * 0.9
    with pytest.raises(queue.Empty):
        q.get(True, 0)


def test_negative_timeout(make):
    q = make()
    with pytest.raises(ValueError):
        q.get(timeout=-1)
    with pytest.raises(ValueError):
        q.put(1, timeout=-1)
    q.put(1, block=False, timeout=-1)   # ignored without blocking
    assert q.get(block=False, timeout=-1) == 1


def test_blocked_get_wakes(make):
    q = make()
    t, out = in_thread(q.get)
    wait_for(lambda: blocked(q, "get"))
    q.put("x")
    t.join(10)
    assert out == {"value": "x"}


def test_blocked_get_with_timeout_wakes(make):
    q = make()
    t, out = in_thread(lambda: q.get(timeout=30))
    wait_for(lambda: blocked(q, "get"))
    q.put("y")
    t.join(10)
    assert out == {"value": "y"}


def test_blocked_put_wakes(make):
    q = make()
    for i in range(MAXSIZE):
        q.put(i)
    t, out = in_thread(q.put, "last")
    wait_for(lambda: blocked(q, "put"))
    assert q.get() == 0
    if q.kind.endswith("(acked)"):
        q.task_done()                   # a lease holds its slot until acked
    t.join(10)
    assert out == {"value": None}
    assert [q.get() for _ in range(MAXSIZE)] == [1, 2, "last"]


def test_task_done_too_many(make):
    q = make()
    with pytest.raises(ValueError):
        q.task_done()
    q.put(1)
    q.get()
    q.task_done()
    with pytest.raises(ValueError):
        q.task_done()


def test_join_empty_returns(make):
    q = make()
    q.join()
    q.put(1)
    q.get()
    q.task_done()
    q.join()


def test_join_waits_for_consumers(make):
    q = make()
    done = []

    def worker():
        for _ in range(MAXSIZE):
            item = q.get()
            time.sleep(0.01)
            done.append(item)
            q.task_done()
    for i in range(MAXSIZE):
        q.put(i)
    t, out = in_thread(worker)
    q.join()
    t.join(10)
    assert "error" not in out
    assert sorted(done) == list(range(MAXSIZE))


def test_join_waits_for_task_done(make):
    q = make()
    if q.kind == "shmq.Queue":
        pytest.skip("plain shmq queues: join() waits until items are "
                    "taken (documented); acked ones wait for task_done()")
    q.put("work")
    assert q.get() == "work"
    t, out = in_thread(q.join)
    t.join(0.3)
    assert t.is_alive(), "join() returned before task_done()"
    q.task_done()
    t.join(10)
    assert out == {"value": None}


def test_many_threads_exactly_once(make):
    q = make(8)
    n, producers, consumers = 400, 3, 3
    got = []
    lock = threading.Lock()

    def produce(base):
        for i in range(n):
            q.put(base + i)

    def consume():
        while True:
            item = q.get()
            if item is None:
                q.task_done()
                return
            with lock:
                got.append(item)
            q.task_done()
    ps = [in_thread(produce, k * n)[0] for k in range(producers)]
    cs = [in_thread(consume)[0] for _ in range(consumers)]
    for t in ps:
        t.join(30)
    for _ in cs:
        q.put(None)
    for t in cs:
        t.join(30)
    assert sorted(got) == list(range(producers * n))


# --- shutdown (queue.Queue has it from 3.13) -----------------------------

def shut_down_queue(make):
    q = make()
    if not has_shutdown(q):
        pytest.skip("this interpreter's queue.Queue has no shutdown()")
    return q


def test_shutdown_put_raises(make):
    q = shut_down_queue(make)
    q.shutdown()
    with pytest.raises(shmq.ShutDown):
        q.put(1)
    with pytest.raises(shmq.ShutDown):
        q.put_nowait(1)


def test_shutdown_get_drains_then_raises(make):
    q = shut_down_queue(make)
    q.put(1)
    q.put(2)
    q.shutdown()
    assert q.get() == 1
    assert q.get_nowait() == 2
    with pytest.raises(shmq.ShutDown):
        q.get()
    with pytest.raises(shmq.ShutDown):
        q.get_nowait()
    with pytest.raises(shmq.ShutDown):
        q.get(timeout=SHORT)


def test_shutdown_immediate(make):
    q = shut_down_queue(make)
    q.put(1)
    q.put(2)
    q.shutdown(immediate=True)
    with pytest.raises(shmq.ShutDown):
        q.get()
    assert q.qsize() == 0


def test_shutdown_wakes_getters(make):
    q = shut_down_queue(make)
    t, out = in_thread(q.get)
    wait_for(lambda: blocked(q, "get"))
    q.shutdown()
    t.join(10)
    assert isinstance(out.get("error"), shmq.ShutDown)


def test_shutdown_wakes_putters(make):
    q = shut_down_queue(make)
    for i in range(MAXSIZE):
        q.put(i)
    t, out = in_thread(q.put, "x")
    wait_for(lambda: blocked(q, "put"))
    q.shutdown()
    t.join(10)
    assert isinstance(out.get("error"), shmq.ShutDown)


def test_shutdown_idempotent(make):
    q = shut_down_queue(make)
    q.shutdown()
    q.shutdown()
    q.shutdown(immediate=True)
    with pytest.raises(shmq.ShutDown):
        q.get_nowait()
