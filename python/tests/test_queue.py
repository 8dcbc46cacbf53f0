"""shmq.Queue in one process: items, errors, roles, batches, acked queues,
iteration, detaching, threads, signals, fork and pickling."""
import array
import io
import os
import pickle
import signal
import threading
import time

import pytest

import shmq

from test_conformance import in_thread, wait_for


def blocked_get(q):
    return q.stat().blocked_get > 0


def blocked_put(q):
    return q.stat().blocked_put > 0


# --- items ----------------------------------------------------------------

def test_bytes_in_any_buffer_out_bytes(name):
    q = shmq.Queue(name, create=True)
    items = [b"", b"plain", bytearray(b"array"), memoryview(b"view"),
             array.array("i", [1, 2, 3]),
             memoryview(b"abcdef")[::2]]        # not contiguous
    for item in items:
        q.put(item)
    for item in items:
        got = q.get()
        assert type(got) is bytes
        assert got == bytes(item)


def test_str_needs_an_encoding(name):
    q = shmq.Queue(name, create=True)
    with pytest.raises(TypeError, match="encoding"):
        q.put("text")
    with pytest.raises(TypeError):
        q.put(42)
    assert q.qsize() == 0


def test_str_utf8(name):
    q = shmq.Queue(name, create=True, encoding="utf-8")
    for s in ["", "ascii", "héllo wörld", "日本語", "\U0001f600"]:
        q.put(s)
        assert q.get() == s
    with pytest.raises(TypeError):
        q.put(b"bytes")
    with pytest.raises(UnicodeEncodeError):
        q.put("\udc80")                 # a lone surrogate


def test_str_other_codec_and_errors(name):
    q = shmq.Queue(name, create=True, encoding="latin-1", errors="replace")
    q.put("café €")
    assert q.get() == "café ?"
    raw = shmq.Queue(name)
    q.put("é")
    assert raw.get() == b"\xe9"
    with pytest.raises(LookupError):
        shmq.Queue(name, encoding="no-such-codec")


def test_pickle_serializer(name):
    q = shmq.Queue(name, create=True, serializer=pickle)
    items = [None, 1, 2.5, "s", b"b", [1, {"k": (1, 2)}], {1, 2}]
    for item in items:
        q.put(item)
    assert [q.get() for _ in items] == items


def test_any_serializer(name):
    class Upper:
        @staticmethod
        def dumps(obj):
            return obj.upper().encode()

        @staticmethod
        def loads(data):
            return data.decode().lower()
    q = shmq.Queue(name, create=True, serializer=Upper)
    q.put("hello")
    assert shmq.Queue(name).get() == b"HELLO"
    q.put("world")
    assert q.get() == "world"
    with pytest.raises(TypeError, match="dumps"):
        shmq.Queue(name, serializer=object())
    with pytest.raises(ValueError):
        shmq.Queue(name, serializer=pickle, encoding="utf-8")


def test_undecodable_item_on_acked_queue_goes_back(name):
    class Fussy:
        fail = True

        @staticmethod
        def dumps(obj):
            return obj

        @classmethod
        def loads(cls, data):
            if cls.fail:
                raise RuntimeError("cannot decode")
            return data
    q = shmq.Queue(name, create=True, acked=True, serializer=Fussy)
    q.put(b"x")
    with pytest.raises(RuntimeError):
        q.get()
    st = q.stat()
    assert st.leased == 0 and st.messages == 1      # returned, not lost
    Fussy.fail = False
    assert q.get() == b"x"


def test_too_big(name):
    q = shmq.Queue(name, create=True, max_msg=100)
    q.put(b"x" * 100)                   # exactly the maximum fits
    with pytest.raises(shmq.MessageTooBig) as e:
        q.put(b"x" * 101)
    assert isinstance(e.value, ValueError)
    assert isinstance(e.value, shmq.Error)
    assert e.value.status == shmq.Status.E2BIG
    assert "101" in str(e.value) and "100" in str(e.value)
    assert e.value.queue == name
    assert q.qsize() == 1
    with pytest.raises(shmq.MessageTooBig) as e:
        q.put_many([b"a", b"y" * 500, b"c"])
    assert e.value.count == 1
    assert q.get_many() == [b"x" * 100, b"a"]


def test_byte_budget(name):
    q = shmq.Queue(name, create=True, capacity=100, max_msg=64,
                   max_bytes=64)
    q.put(b"x" * 40)
    assert not q.full()
    with pytest.raises(shmq.Full):
        q.put(b"y" * 40, timeout=0.05)
    q.put(b"z" * 24)
    assert q.full()


# --- errors ---------------------------------------------------------------

def test_errors_are_builtins(name):
    with pytest.raises(FileNotFoundError) as e:
        shmq.Queue(name)
    assert isinstance(e.value, shmq.QueueNotFound)
    assert e.value.status == shmq.Status.ENOENT == -8
    assert type(e.value.status) is shmq.Status
    assert e.value.queue == name
    assert e.value.errno == 2
    assert str(e.value).startswith("[Errno 2] ")
    shmq.Queue(name, create=True).detach()
    with pytest.raises(FileExistsError) as e:
        shmq.Queue(name, create=True, exist_ok=False)
    assert e.value.status == shmq.Status.EEXIST
    shmq.Queue(name, create=True)              # exist_ok=True is the default
    with pytest.raises(ValueError) as e:
        shmq.Queue("bad/name", create=True)
    assert isinstance(e.value, shmq.InvalidName)
    with pytest.raises(ValueError):
        shmq.Queue(".hidden")
    with pytest.raises(ValueError):
        shmq.Queue(name + "x", create=True, capacity=0)
    with pytest.raises(ValueError):
        shmq.Queue(name, create=True, capacity=-1)
    with pytest.raises(ValueError):
        shmq.Queue(name, create=True, capacity=2 ** 40)
    with pytest.raises(ValueError):
        shmq.Queue(name, create=True, mode=0o1777)
    with pytest.raises(TypeError):
        shmq.Queue(b"bytes-name")
    with pytest.raises(TypeError):
        shmq.Queue(name, "positional")
    with pytest.raises(ValueError):
        shmq.Queue(name, role="x")


def test_oserror_without_errno_reads_well(name):
    q = shmq.Queue(name, create=True, role="r")
    with pytest.raises(shmq.WrongRole) as e:
        q.put(b"x")
    assert isinstance(e.value, OSError) and e.value.errno is None
    assert "Errno" not in str(e.value) and "None" not in str(e.value)
    assert name in str(e.value) and "role='r'" in str(e.value)
    assert e.value.status is shmq.Status.EROLE


def test_statuses():
    assert shmq.Status.EDEADLK == -22
    assert issubclass(shmq.Deadlock, OSError)
    assert issubclass(shmq.Deadlock, shmq.Error)
    assert pickle.loads(pickle.dumps(shmq.Status.ENOENT)) is \
        shmq.Status.ENOENT


def test_users(name):
    shmq.Queue(name, create=True)
    users, total = shmq.users()
    mine = [u for u in users if u.uid == os.geteuid()]
    assert len(mine) == 1 and isinstance(mine[0], shmq.User)
    assert mine[0].queues >= 1 and mine[0].clients >= 1
    assert total.uid is None and total.max_handles is None
    assert total.queues >= mine[0].queues


@pytest.mark.skipif(os.geteuid() != 0,
                    reason="needs root, to become another user")
def test_permission_error(daemon, names):
    private, shared = names(), names()
    shmq.Queue(private, create=True)                # 0600: the owner's
    shmq.Queue(shared, create=True, mode=0o644)     # others may read
    # Let uid 65534 reach this per-user daemon (0700 directory, 0600
    # socket): the daemon checks each queue's own mode.
    for d in {os.path.dirname(daemon.dir), daemon.dir}:
        os.chmod(d, 0o711)
    os.chmod(daemon.socket, 0o666)
    pid = os.fork()
    if pid == 0:                        # the child: never back into pytest
        code = 1
        try:
            os.setgroups([])
            os.setresgid(65534, 65534, 65534)
            os.setresuid(65534, 65534, 65534)
            checks = []
            try:
                shmq.Queue(private)
            except PermissionError as e:
                checks.append(e.status == shmq.Status.EACCES)
            q = shmq.Queue(shared)
            try:
                q.get_nowait()          # reading is allowed
            except shmq.Empty:
                checks.append(True)
            try:
                q.put(b"x")
            except PermissionError as e:
                checks.append(isinstance(e, shmq.PermissionDenied))
            try:
                q.shutdown()
            except PermissionError:
                checks.append(True)
            code = 0 if checks == [True] * 4 else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert shmq.stat(shared).state == "open"


def test_daemon_unreachable(tmp_path):
    import subprocess
    import sys
    code = ("import shmq\n"
            "try:\n"
            "    shmq.Queue('x', create=True)\n"
            "except ConnectionError as e:\n"
            "    assert isinstance(e, shmq.DaemonUnreachable), e\n"
            "    assert e.status == shmq.Status.ENODAEMON\n"
            "    print('ok', e)\n")
    env = dict(os.environ, SHMQ_SOCKET=str(tmp_path / "none.sock"),
               SHMQ_NO_AUTOSTART="1")
    r = subprocess.run([sys.executable, "-c", code], env=env, timeout=30,
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("ok")


def test_status_strings():
    assert "no such queue" in shmq.strerror(shmq.Status.ENOENT)
    assert shmq.Status.EOS == 1


# --- roles ----------------------------------------------------------------

def test_roles_attach_lazily(name):
    q = shmq.Queue(name, create=True)
    st = q.stat()
    assert (st.producers, st.consumers) == (0, 0)
    assert q.attached == ""
    with pytest.raises(shmq.Empty):
        q.get_nowait()
    st = q.stat()
    assert (st.producers, st.consumers) == (0, 1)
    q.put(b"x")
    st = q.stat()
    assert (st.producers, st.consumers) == (1, 1)
    assert q.attached == "rw"


def test_role_up_front(names):
    a = names()
    w = shmq.Queue(a, create=True, role="w")
    assert w.stat().producers == 1
    with pytest.raises(io.UnsupportedOperation) as e:
        w.get()
    assert isinstance(e.value, shmq.WrongRole)
    r = shmq.Queue(a, role="r")
    assert r.stat().consumers == 1
    with pytest.raises(shmq.WrongRole):
        r.put(b"x")
    w.put(b"x")
    assert r.get() == b"x"
    assert (r.role, w.role) == ("r", "w")


def test_reader_is_no_producer_for_auto_close(names):
    a = names()
    w = shmq.Queue(a, create=True, auto_close=True)
    r = shmq.Queue(a)
    w.put(b"1")
    assert r.get() == b"1"              # a reader: never a producer
    w.detach()                          # the last producer: closes it
    wait_for(lambda: r.stat().state == "closed")
    with pytest.raises(shmq.ShutDown) as e:
        r.get(timeout=5)
    assert type(e.value) is shmq.ShutDown           # clean, not lost


# --- batches, iteration, with ---------------------------------------------

def test_put_many_get_many(name):
    q = shmq.Queue(name, create=True, capacity=10, encoding="utf-8")
    q.put_many(["m%d" % i for i in range(7)])
    assert q.get_many(3) == ["m0", "m1", "m2"]
    assert q.get_many() == ["m3", "m4", "m5", "m6"]
    with pytest.raises(shmq.Empty):
        q.get_many(block=False)
    with pytest.raises(shmq.Full) as e:
        q.put_many(["x%d" % i for i in range(15)], block=False)
    assert e.value.count == 10
    with pytest.raises(shmq.Full) as e:
        q.put_many(["y"], timeout=0.05)
    assert e.value.count == 0
    assert len(q.get_many(100)) == 10
    q.put_many(iter(["a", "b"]))        # any iterable
    assert q.get_many(max_items=5) == ["a", "b"]
    with pytest.raises(ValueError):
        q.get_many(0)


def test_get_many_waits_for_one(name):
    q = shmq.Queue(name, create=True)
    t, out = in_thread(q.get_many)
    wait_for(lambda: blocked_get(q))
    q.put(b"late")
    t.join(10)
    assert out == {"value": [b"late"]}


def test_put_many_blocks_until_all_are_in(name):
    q = shmq.Queue(name, create=True, capacity=4)
    t, out = in_thread(q.put_many, [b"%d" % i for i in range(10)])
    got = []
    while len(got) < 10:
        got.extend(q.get_many(timeout=10))
    t.join(10)
    assert out == {"value": None}
    assert got == [b"%d" % i for i in range(10)]


def test_iterate_until_end_of_stream(name):
    q = shmq.Queue(name, create=True, encoding="utf-8")
    for i in range(5):
        q.put(str(i))
    q.shutdown()
    assert list(q) == ["0", "1", "2", "3", "4"]
    assert list(q) == []


def test_with_detaches(name):
    with shmq.Queue(name, create=True) as q:
        q.put(b"x")
        assert q.stat().producers == 1
    assert q.detached
    with pytest.raises(ValueError, match="detached"):
        q.put(b"y")
    with pytest.raises(ValueError):
        q.qsize()
    q.detach()                          # idempotent
    assert shmq.stat(name).producers == 0
    assert shmq.stat(name).messages == 1


def test_stat(name):
    q = shmq.Queue(name, create=True, capacity=5, max_msg=100, mode=0o640,
                   auto_close=True)
    q.put(b"abc")
    st = q.stat()
    assert isinstance(st, tuple) and isinstance(st, shmq.Stat)
    assert st.name == name and st.capacity == 5 and st.max_msg == 100
    assert st.mode == 0o640 and st.auto_close and not st.acked
    assert st.messages == 1 and st.bytes == 3 and st.total_put == 1
    assert st.state == "open" and st.closed is None
    assert abs(st.created - time.time()) < 60
    assert shmq.stat(name).messages == 1
    assert name in [s.name for s in shmq.list_queues()]
    assert q.maxsize == 5 and q.max_msg == 100 and q.name == name


def test_delete(name):
    q = shmq.Queue(name, create=True, role="rw")
    lazy = shmq.Queue(name)
    shmq.delete(name)
    q.put(b"still works")               # until it detaches
    assert q.get() == b"still works"
    with pytest.raises(FileNotFoundError):
        shmq.Queue(name)
    with pytest.raises(FileNotFoundError):
        lazy.put(b"x")                  # a role is opened by name


# --- acked queues ---------------------------------------------------------

def test_acked_get_leases_task_done_acks(name):
    q = shmq.Queue(name, create=True, acked=True, capacity=4)
    assert q.acked
    q.put_many([b"a", b"b", b"c"])
    assert q.get() == b"a"
    assert q.get_many(2) == [b"b", b"c"]
    st = q.stat()
    assert st.leased == 3 and st.messages == 0
    q.task_done()
    q.task_done()
    st = q.stat()
    assert st.leased == 1 and st.total_acked == 2
    q.task_done()
    q.join(timeout=5)
    with pytest.raises(ValueError):
        q.task_done()


def test_acked_detach_returns_leases(name):
    q = shmq.Queue(name, create=True, acked=True)
    q.put(b"work")
    worker = shmq.Queue(name)
    assert worker.get() == b"work"
    assert q.stat().leased == 1
    worker.detach()                     # without task_done: it comes back
    assert q.get(timeout=10) == b"work"
    st = q.stat()
    assert st.leased == 1 and st.total_acked == 0


def test_acked_lease_timeout(name):
    q = shmq.Queue(name, create=True, acked=True, lease_timeout=0.05)
    assert q.stat().lease_timeout == pytest.approx(0.05)
    q.put(b"slow")
    assert q.get() == b"slow"
    time.sleep(0.1)
    other = shmq.Queue(name)
    assert other.get(timeout=5) == b"slow"      # delivered again
    with pytest.raises(shmq.LeaseExpired) as e:
        q.task_done()
    assert isinstance(e.value, TimeoutError)
    other.task_done()


def test_acked_dead_letter(names):
    dlq, main = names(), names()
    shmq.Queue(dlq, create=True)
    q = shmq.Queue(main, create=True, acked=True, max_deliveries=1,
                   dead_letter=dlq)
    st = q.stat()
    assert st.max_deliveries == 1
    q.put(b"poison")
    assert q.get() == b"poison"
    q.detach()                          # returned: its one delivery is used
    q = shmq.Queue(main)
    with pytest.raises(shmq.Empty):
        q.get(timeout=0.1)
    assert shmq.Queue(dlq).get(timeout=5) == b"poison"


def test_join_timeout(name):
    q = shmq.Queue(name, create=True)
    q.put(b"x")
    with pytest.raises(TimeoutError):
        q.join(timeout=0.05)
    q.get()
    q.join(timeout=5)


# --- threads --------------------------------------------------------------

def test_other_threads_run_while_one_blocks(name):
    q = shmq.Queue(name, create=True)
    t, out = in_thread(q.get)
    wait_for(lambda: blocked_get(q))
    # The blocked get holds no GIL: this loop makes progress meanwhile.
    n, end = 0, time.monotonic() + 0.3
    while time.monotonic() < end:
        n += 1
    assert n > 10000
    assert t.is_alive()
    q.put(b"now")
    t.join(10)
    assert out == {"value": b"now"}


def test_detach_wakes_a_blocked_thread(name):
    q = shmq.Queue(name, create=True)
    t, out = in_thread(q.get)
    wait_for(lambda: blocked_get(q))
    start = time.monotonic()
    q.detach()                          # waits for the blocked call to leave
    t.join(10)
    assert time.monotonic() - start < 5
    assert isinstance(out.get("error"), ValueError)
    assert q.detached


def test_threads_share_one_queue(name):
    q = shmq.Queue(name, create=True, capacity=16)
    n = 2000
    got = []

    def consume():
        while True:
            item = q.get()
            if item == b"end":
                return
            got.append(item)
    cs = [in_thread(consume)[0] for _ in range(3)]
    ps = [in_thread(lambda k=k: [q.put(b"%d-%d" % (k, i))
                                 for i in range(n)])[0] for k in range(3)]
    for t in ps:
        t.join(30)
    for _ in cs:
        q.put(b"end")
    for t in cs:
        t.join(30)
    assert sorted(got) == sorted(b"%d-%d" % (k, i)
                                 for k in range(3) for i in range(n))


# --- signals --------------------------------------------------------------

def kill_when(cond, sig):
    def run():
        wait_for(cond)
        os.kill(os.getpid(), sig)
    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


def test_ctrl_c_interrupts_a_blocked_get(name):
    q = shmq.Queue(name, create=True)
    kill_when(lambda: blocked_get(q), signal.SIGINT)
    start = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        q.get(timeout=30)
    assert time.monotonic() - start < 10
    q.put(b"after")                     # nothing was taken by the interrupt
    assert q.get() == b"after"
    assert q.stat().total_got == 1


def test_ctrl_c_interrupts_a_blocked_put(name):
    q = shmq.Queue(name, create=True, capacity=1)
    q.put(b"first")
    kill_when(lambda: blocked_put(q), signal.SIGINT)
    with pytest.raises(KeyboardInterrupt):
        q.put(b"second")
    assert q.qsize() == 1 and q.stat().total_put == 1   # nothing put
    assert q.get() == b"first"


def test_signal_handler_runs_and_the_get_goes_on(name):
    q = shmq.Queue(name, create=True)
    seen = []
    old = signal.signal(signal.SIGUSR1, lambda s, f: seen.append(s))
    try:
        def run():
            wait_for(lambda: blocked_get(q))
            os.kill(os.getpid(), signal.SIGUSR1)
            wait_for(lambda: seen)
            wait_for(lambda: blocked_get(q))     # waiting again
            q.put(b"later")
        t = threading.Thread(target=run, daemon=True)
        t.start()
        assert q.get(timeout=30) == b"later"
        t.join(10)
        assert seen == [signal.SIGUSR1]
    finally:
        signal.signal(signal.SIGUSR1, old)


def test_a_raising_handler_ends_the_call(name):
    class Stop(Exception):
        pass

    def handler(s, f):
        raise Stop
    q = shmq.Queue(name, create=True)
    old = signal.signal(signal.SIGUSR2, handler)
    try:
        kill_when(lambda: blocked_get(q), signal.SIGUSR2)
        with pytest.raises(Stop):
            q.get()
    finally:
        signal.signal(signal.SIGUSR2, old)


# --- fork and pickling ----------------------------------------------------

def test_fork_guard(name):
    q = shmq.Queue(name, create=True)
    q.put(b"parent's")
    before = q.stat()
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:                        # the child: never back into pytest
        code = 1
        try:
            try:
                q.get_nowait()
            except shmq.ForkError as e:
                if "fork" in str(e) and name in str(e):
                    code = 0
            shmq._shmq._detach_all()     # as at its exit: leaves them alone
            q.detach()
            os.write(w, b"%d" % code)
        finally:
            os._exit(code)
    os.close(w)
    _, status = os.waitpid(pid, 0)
    assert os.read(r, 16) == b"0"
    os.close(r)
    assert os.waitstatus_to_exitcode(status) == 0
    after = q.stat()                    # the parent's attachment is intact
    assert (after.producers, after.consumers) == (before.producers,
                                                  before.consumers)
    assert q.get_nowait() == b"parent's"
    q.put(b"again")
    assert q.get() == b"again"


def test_pickle_reopens_by_name(name):
    q = shmq.Queue(name, create=True, serializer=pickle, role="w")
    q2 = pickle.loads(pickle.dumps(q))
    assert q2 is not q and q2.name == name
    assert q2.role == "w" and q2.serializer is pickle
    q.put({"x": 1})
    r = pickle.loads(pickle.dumps(shmq.Queue(name, serializer=pickle)))
    assert r.get() == {"x": 1}
    assert q.stat().producers == 2


def test_generic_alias():
    assert shmq.Queue[bytes].__origin__ is shmq.Queue


def test_repr(name):
    q = shmq.Queue(name, create=True)
    assert name in repr(q)
    q.detach()
    assert "detached" in repr(q)


def test_on_deadlock_and_stat_fields(name, names):
    q = shmq.Queue(name, create=True)
    st = q.stat()
    assert st.on_deadlock == "report" and st.deadlocked is False
    other = names()
    f = shmq.Queue(other, create=True, on_deadlock="fail")
    assert f.stat().on_deadlock == "fail"
    assert shmq.stat(other).on_deadlock == "fail"
    with pytest.raises(ValueError, match="on_deadlock"):
        shmq.Queue(name + "x", create=True, on_deadlock="panic")
    with pytest.raises(FileNotFoundError):
        shmq.Queue(name + "x")          # nothing was created
    assert len(st) == 33
