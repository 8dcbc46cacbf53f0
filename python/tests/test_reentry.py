"""Python code that runs inside a call of shmq.Queue — dumps(), loads(), a
codec, a finalizer — and changes the Queue or the call's own arguments
meanwhile: a batch that is emptied while it is encoded, a batch with an
item that cannot be decoded, a get or a detach from inside loads(), a
detach from inside dumps(), a Queue cleared by the garbage collector, and
__init__ called again.  None of it may crash, lose an item, or mix up
whose lease is whose."""
import pickle
import sys

import pytest

import shmq

from test_processes import TIMEOUT, run_python


# --- a batch changed while it is encoded -------------------------------------

def test_put_many_of_a_list_that_dumps_empties(name, procs):
    """dumps() empties the list put_many() is encoding: the batch is the
    list as it was at the call (in a child: before the fix it crashed)."""
    shmq.Queue(name, create=True, capacity=2048)
    p = run_python("""
        import pickle, shmq
        items = [b"a"] * 1000 + [b"b"]
        class S:
            @staticmethod
            def dumps(obj):
                items.clear()
                return pickle.dumps(obj)
            loads = staticmethod(pickle.loads)
        q = shmq.Queue(%r, serializer=S)
        q.put_many(items)
        print(q.qsize(), q.get_many(2048)[-2:], flush=True)
    """ % name, procs)
    out, err = p.communicate(timeout=TIMEOUT)
    assert p.returncode == 0, err
    assert out == "1001 [b'a', b'b']\n"


def test_put_many_of_a_list_that_dumps_grows(name):
    items = [1, 2, 3]

    class S:
        @staticmethod
        def dumps(obj):
            items.append(obj)
            return pickle.dumps(obj)
        loads = staticmethod(pickle.loads)
    q = shmq.Queue(name, create=True, serializer=S)
    q.put_many(items)
    assert q.get_many() == [1, 2, 3]


# --- items that cannot be decoded in a batch ----------------------------------

def test_get_many_keeps_what_follows_an_undecodable_item(name):
    """The items before the bad one are returned; the bad one raises at the
    next call; the items after it come at the call after that."""
    q = shmq.Queue(name, create=True, serializer=pickle)
    raw = shmq.Queue(name)
    q.put_many([1, 2, 3])
    raw.put(b"not a pickle")
    q.put_many([4, 5, 6])
    assert q.get_many(10) == [1, 2, 3]
    assert q.qsize() == 4 and not q.empty()     # taken, not yet delivered
    with pytest.raises(pickle.UnpicklingError):
        q.get_many(10)
    assert q.get_many(10) == [4, 5, 6]
    # The first of a batch is the bad one: it raises at once.
    raw.put(b"bad")
    q.put_many([7, 8])
    with pytest.raises(pickle.UnpicklingError):
        q.get_many(10)
    assert q.get() == 7                         # get() takes what is kept
    assert q.get_nowait() == 8
    with pytest.raises(shmq.Empty):
        q.get_nowait()
    assert q.qsize() == 0
    for _ in range(8):                          # the items delivered
        q.task_done()
    with pytest.raises(ValueError):
        q.task_done()


def test_get_many_on_an_acked_queue_nacks_only_the_undecodable_item(name):
    q = shmq.Queue(name, create=True, acked=True, serializer=pickle,
                   max_deliveries=2)
    raw = shmq.Queue(name)
    q.put_many([1, 2])
    raw.put(b"bad")
    q.put_many([3])
    assert q.get_many(10) == [1, 2]
    st = q.stat()
    assert st.returned == 1 and st.leased == 3  # bad back; 1, 2, 3 held
    with pytest.raises(pickle.UnpicklingError):
        q.get_many(10)
    assert q.get_many(10) == [3]
    for _ in range(3):
        q.task_done()
    assert q.stat().total_acked == 3
    with pytest.raises(ValueError):
        q.task_done()
    # The bad one comes back once more and is dropped (max_deliveries).
    with pytest.raises(pickle.UnpicklingError):
        q.get_many(10, timeout=TIMEOUT)
    st = q.stat()
    assert st.dropped == 1 and st.leased == 0 and st.returned == 0
    with pytest.raises(shmq.Empty):
        q.get_many(10, timeout=0.05)


def test_undecodable_text_in_a_batch(name):
    q = shmq.Queue(name, create=True, encoding="utf-8")
    raw = shmq.Queue(name)
    q.put("a")
    raw.put(b"\xff")
    q.put("b")
    assert q.get_many() == ["a"]
    with pytest.raises(UnicodeDecodeError):
        q.get_many()
    assert q.get_many() == ["b"]


def test_detach_drops_what_was_kept(name):
    """Items kept after an undecodable one: an acked queue's go back to
    the queue with the handle's leases when the Queue detaches."""
    q = shmq.Queue(name, create=True, acked=True, serializer=pickle)
    raw = shmq.Queue(name)
    raw.put(b"bad")
    q.put_many([1, 2])
    with pytest.raises(pickle.UnpicklingError):
        q.get_many()
    q.detach()
    assert sorted(raw.get_many(timeout=TIMEOUT)) == sorted(
        [b"bad", pickle.dumps(1), pickle.dumps(2)])


# --- a get or a detach from inside loads() ------------------------------------

class Reentrant:
    """loads() of b"bad" runs `action` (this serializer's queue), then
    raises."""
    queue = None
    action = None
    seen = []

    @staticmethod
    def dumps(obj):
        return obj

    @classmethod
    def loads(cls, data):
        if data == b"bad":
            cls.seen.append(cls.action(cls.queue))
            raise RuntimeError("cannot decode")
        return data


def test_a_get_inside_loads_keeps_the_leases_straight(name):
    """While loads() fails on one lease, the same Queue takes another: the
    failed one is nacked, the other stays held, and task_done() acks it."""
    q = shmq.Queue(name, create=True, acked=True, serializer=Reentrant)
    Reentrant.queue, Reentrant.seen = q, []
    Reentrant.action = lambda q: q.get_nowait()
    q.put(b"bad")
    q.put(b"good")
    with pytest.raises(RuntimeError):
        q.get()
    assert Reentrant.seen == [b"good"]
    st = q.stat()
    assert st.leased == 1 and st.returned == 1
    q.task_done()                               # acks "good"
    assert q.stat().total_acked == 1
    with pytest.raises(ValueError):
        q.task_done()
    assert shmq.Queue(name).get(timeout=TIMEOUT) == b"bad"


def test_a_detach_inside_loads(name):
    q = shmq.Queue(name, create=True, acked=True, serializer=Reentrant)
    Reentrant.queue, Reentrant.seen = q, []
    Reentrant.action = lambda q: q.detach()
    q.put(b"bad")
    with pytest.raises(RuntimeError):
        q.get()
    assert q.detached
    other = shmq.Queue(name)
    assert other.get(timeout=TIMEOUT) == b"bad"  # returned by the detach
    other.task_done()
    assert other.stat().leased == 0


# --- a detach from inside dumps() -----------------------------------------------

class Detaching:
    queue = None

    @classmethod
    def dumps(cls, obj):
        cls.queue.detach()
        return pickle.dumps(obj)

    loads = staticmethod(pickle.loads)


@pytest.mark.parametrize("call", ["put", "put_nowait", "put_many"])
def test_a_detach_inside_dumps_says_detached(name, call):
    q = shmq.Queue(name, create=True, serializer=Detaching)
    Detaching.queue = q
    q.put_nowait                        # noqa: B018 (attach lazily later)
    with pytest.raises(ValueError) as e:
        if call == "put_many":
            q.put_many([1, 2])
        else:
            getattr(q, call)(1)
    assert not isinstance(e.value, shmq.InvalidArgument)
    assert "detached" in str(e.value)
    assert shmq.stat(name).messages == 0


# --- the garbage collector and __init__ -----------------------------------------

def test_a_queue_cleared_by_the_collector_raises(name, procs):
    """tp_clear (what the collector calls on a Queue in a reference cycle)
    drops the serializer; a finalizer that puts afterwards gets an error,
    not a crash (in a child: before the fix it crashed)."""
    shmq.Queue(name, create=True)
    p = run_python("""
        import ctypes, pickle, shmq
        get_slot = ctypes.pythonapi.PyType_GetSlot
        get_slot.restype = ctypes.c_void_p
        get_slot.argtypes = [ctypes.py_object, ctypes.c_int]
        Py_tp_clear = 51
        clear = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.py_object)(
            get_slot(shmq._shmq.Queue, Py_tp_clear))
        q = shmq.Queue(%r, serializer=pickle)
        q.put(1)
        clear(q)
        for call in (lambda: q.put(1), lambda: q.get_nowait(),
                     lambda: q.put_many([1])):
            try:
                call()
                print("no error")
            except ValueError as e:
                print(e)
    """ % name, procs)
    out, err = p.communicate(timeout=TIMEOUT)
    assert p.returncode == 0, err
    assert out.count("collected") == 3, out


def test_init_again_after_a_failure_leaks_nothing(name):
    def dumps(obj):
        return pickle.dumps(obj)

    class S:
        pass
    S.dumps, S.loads = staticmethod(dumps), staticmethod(pickle.loads)
    encoding = "".join(["lat", "in-1"])     # an object of its own
    q = shmq.Queue.__new__(shmq.Queue)
    before = sys.getrefcount(dumps), sys.getrefcount(encoding)
    for _ in range(10):
        with pytest.raises(FileNotFoundError):
            q.__init__(name, serializer=S)
        with pytest.raises(FileNotFoundError):
            q.__init__(name, encoding=encoding)
    with pytest.raises(FileNotFoundError):
        q.__init__(name)                # holds neither any more
    assert (sys.getrefcount(dumps), sys.getrefcount(encoding)) == before
    shmq.Queue(name, create=True)
    q.__init__(name, serializer=S)
    q.put(1)
    assert q.get() == 1
    with pytest.raises(RuntimeError):
        q.__init__(name)                # once initialised, never again
