"""Deadlock detection sees Python calls: two processes in a cycle of two
capacity-1 queues, each blocked in put for good, against the session's
shmqd (its default --deadlock-timeout, 1 s: longer than the binding's
200 ms slices, so each slice is seen as the same wait only because the
slices continue one call, shmq_wait_continue).

The test process creates the queues and lets go of them: a process with
a queue open could free its waiters (it could close it), and then there
would be no deadlock to find."""
import subprocess
import sys
import textwrap
import time

import pytest

import shmq

TIMEOUT = 30

# argv: the queue it puts to, the queue it gets from, the put's timeout
# ("none" for none).  It fills its out queue, says "ready", and blocks in
# a second put.  If that put fails with Deadlock it says so and drains its
# in queue (which lets the other put through); if it completes it says so.
CHILD = textwrap.dedent("""
    import sys
    import shmq
    out = shmq.Queue(sys.argv[1], role="w")
    inq = shmq.Queue(sys.argv[2], role="r")
    timeout = None if sys.argv[3] == "none" else float(sys.argv[3])
    out.put(b"first")
    print("ready", flush=True)
    try:
        out.put(b"second", timeout=timeout)
    except shmq.Deadlock:
        print("deadlock", flush=True)
        inq.get(timeout=%d)
        print("drained", flush=True)
        sys.exit(3)
    print("put", flush=True)
""" % TIMEOUT)


def cycle(names, procs, on_deadlock, timeout="none"):
    """Two processes in a cycle of two capacity-1 queues, each blocked in
    its second put: (a, b), [process putting to a, process putting to b]."""
    a, b = names(), names()
    for n in (a, b):
        shmq.Queue(n, create=True, capacity=1,
                   on_deadlock=on_deadlock).detach()
    kids = []
    for out, inq in ((a, b), (b, a)):
        p = subprocess.Popen([sys.executable, "-c", CHILD, out, inq, timeout],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True)
        procs.append(p)
        kids.append(p)
    for p in kids:
        assert p.stdout.readline() == "ready\n", p.stderr.read()
    return (a, b), kids


def wait_for_rows(pids, deadline):
    """shmq.deadlocks()' rows once they name every pid of `pids`."""
    while True:
        rows = shmq.deadlocks()
        if {r["pid"] for r in rows} >= set(pids):
            return rows
        assert time.monotonic() < deadline, \
            "no deadlock of %s listed: %r" % (pids, rows)
        time.sleep(0.05)


def test_python_cycle_reported(names, procs):
    (a, b), kids = cycle(names, procs, "report")
    pids = [p.pid for p in kids]
    rows = wait_for_rows(pids, time.monotonic() + TIMEOUT)
    mine = [r for r in rows if r["pid"] in pids]
    assert len(mine) == 2
    by_pid = {r["pid"]: r for r in mine}
    assert by_pid[pids[0]]["queue"] == a and by_pid[pids[1]]["queue"] == b
    for r, other in ((by_pid[pids[0]], pids[1]), (by_pid[pids[1]], pids[0])):
        assert r["op"] == "put" and not r["behind"]
        assert r["messages"] == 1 and r["capacity"] == 1
        assert r["threads"] == 1
        assert r["ends_in_seconds"] is None       # untimed, as in C
        assert r["blocked_seconds"] >= 0.5       # counted from the call
        assert r["on_deadlock"] == "report" and not r["victim"]
        assert r["freed_by"] == [other]
    assert mine[0]["deadlock"] == mine[1]["deadlock"]
    # shmqd marks the queues.  A look that falls between two slices sees
    # the process running and withdraws the mark until the next look:
    # eventually, not at once.
    deadline = time.monotonic() + TIMEOUT
    while not (shmq.stat(a).deadlocked and shmq.stat(b).deadlocked):
        assert time.monotonic() < deadline, "queues never marked deadlocked"
        time.sleep(0.05)
    # Reporting fails nobody.
    for p in kids:
        assert p.poll() is None


def test_python_cycle_timed_call_counts_with_its_deadline(names, procs):
    (a, b), kids = cycle(names, procs, "report", timeout="600")
    pids = [p.pid for p in kids]
    rows = wait_for_rows(pids, time.monotonic() + TIMEOUT)
    for r in rows:
        if r["pid"] in pids:
            # The call's own deadline, not its 200 ms slice's.
            assert r["ends_in_seconds"] is not None
            assert 500 < r["ends_in_seconds"] <= 600


def test_python_cycle_broken(names, procs):
    (a, b), kids = cycle(names, procs, "fail")
    outs = []
    for p in kids:
        try:
            out, err = p.communicate(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            pytest.fail("still blocked: %r" % shmq.deadlocks())
        outs.append((p.returncode, out, err))
    said = sorted(o[1] for o in outs)
    assert said == ["deadlock\ndrained\n", "put\n"], outs
    assert sorted(o[0] for o in outs) == [0, 3], outs
