"""shmq.Queue across processes: several producers and consumers exactly
once, multiprocessing (fork and spawn), clean exits against lost
producers, a SIGKILLed producer, and signals to a blocked process."""
import multiprocessing
import multiprocessing.util
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest

import shmq

from test_conformance import wait_for

TIMEOUT = 30


def run_python(code, procs, **kw):
    """Starts `python -c code` (the test environment: PYTHONPATH, the
    daemon's SHMQ_SOCKET) with pipes; registered for the kill at the end."""
    p = subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True, **kw)
    procs.append(p)
    return p


# --- multiprocessing children (module level: spawn imports them) ---------

def produce(q, base, n):
    for i in range(n):
        q.put(b"%d" % (base + i))


def consume_to_file(q, path):
    with open(path, "w") as f:
        for item in q:
            f.write(item.decode() + "\n")


def put_and_return(q, n):
    """Puts n items and returns without detaching: the exit must."""
    for i in range(n):
        q.put(b"child-%d" % i)


def get_one(q, path):
    with open(path, "wb") as f:
        f.write(q.get(timeout=TIMEOUT))


def leave_a_thread_blocked(q, path, finalized):
    """Returns while a non-daemon thread waits in q.get(); tells the
    parent once multiprocessing's exit hooks have run."""
    q.qsize()                           # reopened (fork) by this thread

    def worker():
        item = q.get(timeout=TIMEOUT)
        with open(path, "wb") as f:
            f.write(item)
    threading.Thread(target=worker).start()
    multiprocessing.util.Finalize(None, finalized.set, exitpriority=-100)


def reopen_from_threads(q, path, n):
    """n threads first touch the inherited Queue at the same moment."""
    barrier = threading.Barrier(n)

    def put(i):
        barrier.wait()
        q.put(b"%d" % i)
    ts = [threading.Thread(target=put, args=(i,)) for i in range(n)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    with open(path, "w") as f:
        f.write("%d" % q.stat().producers)


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_producers_and_consumers_exactly_once(name, procs, tmp_path,
                                              method):
    ctx = multiprocessing.get_context(method)
    q = shmq.Queue(name, create=True, capacity=64)
    n, producers, consumers = 3000, 3, 3
    ps = [ctx.Process(target=produce, args=(q, k * n, n))
          for k in range(producers)]
    files = [tmp_path / ("c%d" % k) for k in range(consumers)]
    cs = [ctx.Process(target=consume_to_file, args=(q, str(f)))
          for f in files]
    procs.extend(ps + cs)
    for p in cs + ps:
        p.start()
    for p in ps:
        p.join(TIMEOUT)
        assert p.exitcode == 0
    q.shutdown()                        # no more items: consumers end
    for p in cs:
        p.join(TIMEOUT)
        assert p.exitcode == 0
    got = []
    for f in files:
        mine = [int(x) for x in f.read_text().split()]
        for k in range(producers):      # each producer's order is kept
            theirs = [x for x in mine if k * n <= x < (k + 1) * n]
            assert theirs == sorted(theirs)
        got.extend(mine)
    assert sorted(got) == list(range(producers * n))
    st = q.stat()
    assert st.total_put == st.total_got == producers * n
    assert not st.producer_lost


@pytest.mark.parametrize("method", ["fork", "spawn", "forkserver"])
def test_multiprocessing_child_reopens_and_detaches(name, procs, method):
    ctx = multiprocessing.get_context(method)
    q = shmq.Queue(name, create=True, auto_close=True)
    reader = shmq.Queue(name)
    p = ctx.Process(target=put_and_return, args=(q, 3))
    procs.append(p)
    p.start()
    p.join(TIMEOUT)
    assert p.exitcode == 0
    # The child was the only producer: its exit detached it, which closed
    # the queue, cleanly (no ProducerLost).
    assert list(reader) == [b"child-0", b"child-1", b"child-2"]
    assert not reader.stat().producer_lost


def test_multiprocessing_child_gets(name, procs, tmp_path):
    ctx = multiprocessing.get_context("fork")
    q = shmq.Queue(name, create=True)
    q.put(b"parent's")                  # attached as a producer here
    out = tmp_path / "got"
    p = ctx.Process(target=get_one, args=(q, str(out)))
    procs.append(p)
    p.start()
    p.join(TIMEOUT)
    assert p.exitcode == 0
    assert out.read_bytes() == b"parent's"
    q.put(b"still mine")                # the parent's handle is intact
    assert q.get() == b"still mine"


@pytest.mark.parametrize("method", ["fork", "spawn", "forkserver"])
def test_multiprocessing_child_waits_for_its_threads(name, procs, tmp_path,
                                                     method):
    """A child whose target returned while a non-daemon thread waits in a
    Queue: the child waits for the thread, as any interpreter does, and
    detaches after it (before the fix it hung forever)."""
    ctx = multiprocessing.get_context(method)
    q = shmq.Queue(name, create=True)
    out = tmp_path / "got"
    finalized = ctx.Event()
    p = ctx.Process(target=leave_a_thread_blocked,
                    args=(q, str(out), finalized))
    procs.append(p)
    p.start()
    # The child's exit hooks have run; its thread still waits.
    assert finalized.wait(TIMEOUT)
    q.put(b"for the thread")
    p.join(TIMEOUT)
    assert p.exitcode == 0
    assert out.read_bytes() == b"for the thread"
    wait_for(lambda: q.stat().consumers == 0, TIMEOUT)   # shmqd heard
    assert not q.stat().producer_lost


def test_threads_of_a_child_reopen_an_inherited_queue_once(name, procs,
                                                           tmp_path):
    """Threads that first touch an inherited Queue at the same moment open
    one handle between them (before the fix each could open its own, and
    all but one leaked: a lost producer at the child's exit)."""
    ctx = multiprocessing.get_context("fork")
    q = shmq.Queue(name, create=True, capacity=64, role="w")
    out = tmp_path / "producers"
    for _ in range(3):
        p = ctx.Process(target=reopen_from_threads, args=(q, str(out), 8))
        procs.append(p)
        p.start()
        p.join(TIMEOUT)
        assert p.exitcode == 0
        assert out.read_text() == "2"   # the parent's and the child's
    wait_for(lambda: q.stat().producers == 1, TIMEOUT)
    st = q.stat()
    assert st.messages == 24 and not st.producer_lost


def test_normal_exit_is_not_a_lost_producer(name, procs):
    shmq.Queue(name, create=True, auto_close=True)
    reader = shmq.Queue(name)
    p = run_python("""
        import shmq
        q = shmq.Queue(%r)
        for i in range(3):
            q.put(b"x%%d" %% i)
        # no detach: the interpreter's exit does it
    """ % name, procs)
    out, err = p.communicate(timeout=TIMEOUT)
    assert p.returncode == 0, err
    assert list(reader) == [b"x0", b"x1", b"x2"]
    assert not reader.stat().producer_lost


def test_exit_with_a_thread_blocked_in_put(name, procs):
    """A daemon thread still blocked in put at exit: the exit detaches the
    Queue all the same (the thread never returns), and promptly."""
    shmq.Queue(name, create=True, capacity=1, auto_close=True)
    reader = shmq.Queue(name)
    p = run_python("""
        import threading, shmq
        q = shmq.Queue(%r)
        q.put(b"in")
        threading.Thread(target=q.put, args=(b"never",), daemon=True).start()
        while q.stat().blocked_put == 0:
            pass
        print("blocked", flush=True)
    """ % name, procs)
    out, err = p.communicate(timeout=TIMEOUT)
    assert p.returncode == 0, err
    assert out == "blocked\n"
    assert list(reader) == [b"in"]
    assert not reader.stat().producer_lost


def test_sigkilled_producer_ends_the_loop_with_producer_lost(name, procs):
    shmq.Queue(name, create=True, auto_close=True)
    reader = shmq.Queue(name)
    p = run_python("""
        import sys, time, shmq
        q = shmq.Queue(%r, role="w")
        for i in range(5):
            q.put(b"m%%d" %% i)
        print("ready", flush=True)
        time.sleep(60)
    """ % name, procs)
    assert p.stdout.readline() == "ready\n"
    p.send_signal(signal.SIGKILL)
    p.wait(TIMEOUT)
    got = []
    with pytest.raises(shmq.ProducerLost) as e:
        for item in reader:
            got.append(item)
    assert got == [b"m%d" % i for i in range(5)]
    assert isinstance(e.value, shmq.ShutDown)
    assert name in str(e.value)
    assert reader.stat().producer_lost


def test_consumer_in_another_process_sees_shutdown(name, procs):
    q = shmq.Queue(name, create=True)
    p = run_python("""
        import shmq
        n = sum(1 for _ in shmq.Queue(%r))
        print(n, flush=True)
    """ % name, procs)
    q.put(b"a")
    q.put(b"b")
    wait_for(lambda: q.stat().blocked_get > 0, TIMEOUT)
    q.shutdown()
    out, err = p.communicate(timeout=TIMEOUT)
    assert p.returncode == 0, err
    assert out == "2\n"


def test_ctrl_c_in_another_process_takes_nothing(name, procs):
    q = shmq.Queue(name, create=True)
    p = run_python("""
        import shmq
        q = shmq.Queue(%r)
        print("waiting", flush=True)
        try:
            q.get()
        except KeyboardInterrupt:
            print("interrupted", flush=True)
    """ % name, procs)
    assert p.stdout.readline() == "waiting\n"
    wait_for(lambda: q.stat().blocked_get > 0, TIMEOUT)
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=TIMEOUT)
    assert p.returncode == 0, err
    assert out == "interrupted\n"
    q.put(b"kept")
    assert q.get_nowait() == b"kept"
    st = q.stat()
    assert st.total_got == 1 and not st.producer_lost


def test_blocked_producer_process_wakes_when_consumed(name, procs):
    q = shmq.Queue(name, create=True, capacity=2)
    p = run_python("""
        import shmq
        q = shmq.Queue(%r)
        for i in range(6):
            q.put(b"%%d" %% i)
    """ % name, procs)
    got = [q.get(timeout=TIMEOUT) for _ in range(6)]
    out, err = p.communicate(timeout=TIMEOUT)
    assert p.returncode == 0, err
    assert got == [b"%d" % i for i in range(6)]


def test_daemon_restart_keeps_queues(name, daemon, procs):
    """While shmqd restarts, a Queue already open keeps working."""
    q = shmq.Queue(name, create=True, role="rw")
    q.put(b"before")
    rc = daemon.stop(signal.SIGKILL)
    assert rc == -signal.SIGKILL
    try:
        q.put(b"during")
        assert q.get() == b"before"
    finally:
        daemon.start()
    assert q.get() == b"during"
    assert shmq.stat(name).messages == 0


def test_detach_waits_for_the_daemon_without_the_gil(name, daemon):
    """A detach after a daemon restart reconnects (a round trip): other
    threads run meanwhile, even while the daemon does not answer."""
    q = shmq.Queue(name, create=True, role="rw")
    daemon.stop(signal.SIGKILL)
    daemon.start()                      # q's connection is the old one's
    os.kill(daemon.pid, signal.SIGSTOP)
    try:
        t = threading.Thread(target=q.detach, daemon=True)
        t.start()
        ran, end = 0, time.monotonic() + 0.5
        while time.monotonic() < end:
            time.sleep(0.01)
            ran += 1
        still_detaching = t.is_alive()
    finally:
        os.kill(daemon.pid, signal.SIGCONT)
    t.join(TIMEOUT)
    assert still_detaching and ran > 10
    assert q.detached
    wait_for(lambda: shmq.stat(name).producers == 0, TIMEOUT)
