#!/usr/bin/env python3
"""bench.py - shmq.Queue from Python against multiprocessing, in one run.

A producer process sends items to a consumer process through each
transport in turn, with the same items, and the consumer counts every
one (and checks the last): shmq.Queue, multiprocessing.Queue and
multiprocessing.Pipe; 64 B and 4 KiB items; one item per call and
batched (shmq: put_many/get_many; multiprocessing.Queue: a list per put;
Pipe: the batch's bytes in one send_bytes, the best a byte stream does).
Each case runs --runs times (median, min-max); ratios are shmq's rate over
each other transport's.  Also: the cost of one put+get pair from Python
in one thread (no other process), for shmq.Queue and queue.Queue.

    make bench-python           # or, from the build directory:
    PYTHONPATH=python/stage SHMQ_DAEMON=daemon/shmqd \\
        python3 ../python/bench.py [--runs 5] [--scale 0.2] [--output F]

It starts a private shmqd (shmq.testing.Daemon; SHMQ_DAEMON names the
binary).  Figures depend on the machine and on what else runs on it: on a
busy machine they are indicative only.
"""
import argparse
import multiprocessing
import os
import platform
import queue
import statistics
import sys
import time

# This script sits beside the package's sources (python/shmq/, without the
# built extension): take the package from PYTHONPATH, not from there.
_here = os.path.dirname(os.path.abspath(__file__))
sys.path = [p for p in sys.path if os.path.abspath(p or ".") != _here]

import shmq  # noqa: E402
from shmq.testing import Daemon  # noqa: E402

SIZES = (64, 4096)
BATCH = {64: 64, 4096: 16}
# Items per run, at --scale 1: a few tenths of a second each on a 2-CPU VM.
COUNTS = {
    ("shmq", 64, False): 3_000_000, ("shmq", 64, True): 10_000_000,
    ("shmq", 4096, False): 1_000_000, ("shmq", 4096, True): 2_000_000,
    ("mpqueue", 64, False): 200_000, ("mpqueue", 64, True): 3_000_000,
    ("mpqueue", 4096, False): 100_000, ("mpqueue", 4096, True): 100_000,
    ("pipe", 64, False): 300_000, ("pipe", 64, True): 4_000_000,
    ("pipe", 4096, False): 200_000, ("pipe", 4096, True): 300_000,
}
NAMES = {"shmq": "shmq.Queue", "mpqueue": "multiprocessing.Queue",
         "pipe": "multiprocessing.Pipe"}
TARGET_RATIO = 10.0         # shmq / multiprocessing.Queue, 64 B, one per call
TARGET_PAIR_NS = 200


def items_for(size, n):
    """The same item n-1 times, then a last one that says it is last."""
    return b"i" * size, b"L" * size


# --- the two ends of each transport (run in the child processes) --------

def shmq_producer(name, size, n, batch, start, t0):
    q = shmq.Queue(name, role="w")
    item, last = items_for(size, n)
    start.wait()
    t0.value = time.monotonic()
    if batch:
        chunk = [item] * batch
        full, rest = divmod(n - 1, batch)
        put_many = q.put_many
        for _ in range(full):
            put_many(chunk)
        put_many([item] * rest + [last])
    else:
        put = q.put
        for _ in range(n - 1):
            put(item)
        put(last)
    q.shutdown()


def shmq_consumer(name, size, n, batch, t1, count):
    q = shmq.Queue(name, role="r")
    got, last = 0, None
    if batch:
        get_many = q.get_many
        try:
            while True:
                items = get_many(batch)
                got += len(items)
                last = items[-1]
        except shmq.ShutDown:
            pass
    else:
        for last in q:
            got += 1
    t1.value = time.monotonic()
    count.value = got if last == b"L" * size else -1


def mpqueue_producer(q, size, n, batch, start, t0):
    item, last = items_for(size, n)
    start.wait()
    t0.value = time.monotonic()
    put = q.put
    if batch:
        # Distinct objects: pickle would send one object repeated in a
        # list once.
        chunk = [b"i" * size for _ in range(batch)]
        full, rest = divmod(n - 1, batch)
        for _ in range(full):
            put(chunk)
        put(chunk[:rest] + [last])
    else:
        for _ in range(n - 1):
            put(item)
        put(last)
    put(None)
    q.close()
    q.join_thread()


def mpqueue_consumer(q, size, n, batch, t1, count):
    got, last = 0, None
    get = q.get
    while True:
        x = get()
        if x is None:
            break
        if batch:
            got += len(x)
            last = x[-1]
        else:
            got += 1
            last = x
    t1.value = time.monotonic()
    count.value = got if last == b"L" * size else -1


def pipe_producer(conn, size, n, batch, start, t0):
    item, last = items_for(size, n)
    start.wait()
    t0.value = time.monotonic()
    send = conn.send_bytes
    if batch:
        chunk = item * batch
        full, rest = divmod(n - 1, batch)
        for _ in range(full):
            send(chunk)
        send(item * rest + last)
    else:
        for _ in range(n - 1):
            send(item)
        send(last)
    send(b"")
    conn.close()


def pipe_consumer(conn, size, n, batch, t1, count):
    got, last = 0, b""
    recv = conn.recv_bytes
    while True:
        x = recv()
        if not x:
            break
        got += len(x) // size
        last = x
    t1.value = time.monotonic()
    count.value = got if last[-size:] == b"L" * size else -1


# --- running ------------------------------------------------------------

def run_once(ctx, transport, size, batch, n, seq):
    start = ctx.Event()
    t0 = ctx.Value("d", 0.0)
    t1 = ctx.Value("d", 0.0)
    count = ctx.Value("q", 0)
    cleanup = None
    if transport == "shmq":
        name = "bench-py-%d-%d" % (os.getpid(), seq)
        q = shmq.Queue(name, create=True, capacity=1024,
                       max_msg=max(size, 64))
        q.detach()
        pa, ca = (name,), (name,)
        prod, cons = shmq_producer, shmq_consumer
        cleanup = lambda: shmq.delete(name)     # noqa: E731
    elif transport == "mpqueue":
        q = ctx.Queue()
        pa, ca = (q,), (q,)
        prod, cons = mpqueue_producer, mpqueue_consumer
    else:
        r, w = ctx.Pipe(duplex=False)
        pa, ca = (w,), (r,)
        prod, cons = pipe_producer, pipe_consumer
    bsz = BATCH[size] if batch else 0
    c = ctx.Process(target=cons, args=ca + (size, n, bsz, t1, count))
    p = ctx.Process(target=prod, args=pa + (size, n, bsz, start, t0))
    c.start()
    p.start()
    if transport == "pipe":
        w.close()                       # the children hold their ends
        r.close()
    time.sleep(0.05)                    # both are running
    start.set()
    p.join(600)
    c.join(600)
    if cleanup:
        cleanup()
    if p.exitcode != 0 or c.exitcode != 0:
        raise RuntimeError("%s: a process failed" % transport)
    if count.value != n:
        raise RuntimeError("%s: %d of %d items arrived"
                           % (transport, count.value, n))
    return n / (t1.value - t0.value)


def pair_ns(q, n):
    item = b"x" * 64
    put, get = q.put, q.get
    best = None
    for _ in range(5):
        t = time.perf_counter()
        for _ in range(n):
            put(item)
            get()
        dt = (time.perf_counter() - t) / n * 1e9
        best = dt if best is None else min(best, dt)
    return best


def fmt_rate(r):
    if r >= 1e6:
        return "%.2f M/s" % (r / 1e6)
    return "%.0f k/s" % (r / 1e3)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--scale", type=float, default=1.0,
                    help="multiply every item count (0.1: a quick run)")
    ap.add_argument("--output", help="also write the report (markdown)")
    args = ap.parse_args()
    ctx = multiprocessing.get_context("fork")
    lines = []

    def say(s=""):
        print(s, flush=True)
        lines.append(s)

    with Daemon():
        say("# Python: shmq.Queue against multiprocessing")
        say()
        say("Python %s, %s, %d CPUs, load average %.2f at the start; "
            "medians of %d runs.  Indicative: other work on the machine "
            "moves them." % (platform.python_version(), platform.machine(),
                             os.cpu_count(), os.getloadavg()[0], args.runs))
        say()
        say("| case | transport | median (min–max) | shmq ÷ this |")
        say("|---|---|---|---:|")
        results = {}
        seq = 0
        for size in SIZES:
            for batch in (False, True):
                case = "%s %s" % ("64 B" if size == 64 else "4 KiB",
                                  "batch ×%d" % BATCH[size] if batch
                                  else "single")
                for transport in ("shmq", "mpqueue", "pipe"):
                    n = max(1000, int(COUNTS[transport, size, batch]
                                      * args.scale))
                    rates = []
                    for _ in range(args.runs):
                        seq += 1
                        rates.append(run_once(ctx, transport, size, batch,
                                              n, seq))
                    med = statistics.median(rates)
                    results[transport, size, batch] = med
                    ratio = ("—" if transport == "shmq" else "%.1f×" % (
                        results["shmq", size, batch] / med))
                    say("| %s | %s | %s (%s–%s) | %s |" % (
                        case, NAMES[transport], fmt_rate(med),
                        fmt_rate(min(rates)), fmt_rate(max(rates)), ratio))
        say()
        name = "bench-py-pair-%d" % os.getpid()
        q = shmq.Queue(name, create=True)
        shmq_pair = pair_ns(q, int(200_000 * max(args.scale, 0.1)))
        q.detach()
        shmq.delete(name)
        local_pair = pair_ns(queue.Queue(), int(200_000 *
                                                 max(args.scale, 0.1)))
        say("One put+get pair from Python, one thread, 64 B (best of 5): "
            "shmq.Queue %.0f ns, queue.Queue %.0f ns." % (shmq_pair,
                                                          local_pair))
        say()
        ratio = results["shmq", 64, False] / results["mpqueue", 64, False]
        ok1 = ratio >= TARGET_RATIO
        ok2 = shmq_pair <= TARGET_PAIR_NS * 1.5
        say("Targets: 64 B one item per call, shmq.Queue ÷ "
            "multiprocessing.Queue %.1f× (target ≥ %.0f×): %s; a put+get "
            "pair %.0f ns (target about %d ns): %s." % (
                ratio, TARGET_RATIO, "met" if ok1 else "MISSED", shmq_pair,
                TARGET_PAIR_NS, "met" if ok2 else "MISSED"))
    if args.output:
        with open(args.output, "w") as f:
            f.write("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
