"""asyncio: aput, aget, ajoin, `async for`, and the rule that a cancelled
await never loses a message."""
import asyncio
import gc
import random
import threading
import time

import pytest

import shmq

from test_conformance import wait_for


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 30))


def test_aput_aget(name):
    q = shmq.Queue(name, create=True, encoding="utf-8")

    async def main():
        await q.aput("one")
        await q.aput("two")
        return [await q.aget(), await q.aget()]
    assert run(main()) == ["one", "two"]


def test_aget_waits_without_blocking_the_loop(name):
    q = shmq.Queue(name, create=True)

    async def main():
        ticks = 0

        async def ticker():
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1
        t = asyncio.create_task(ticker())
        later = asyncio.get_running_loop().call_later(
            0.3, lambda: shmq.Queue(name).put(b"late"))
        item = await q.aget()
        t.cancel()
        later.cancel()
        return item, ticks
    item, ticks = run(main())
    assert item == b"late"
    assert ticks >= 5


def test_aget_timeout(name):
    q = shmq.Queue(name, create=True)
    with pytest.raises(shmq.Empty):
        run(q.aget(timeout=0.1))
    with pytest.raises(ValueError):
        run(q.aget(timeout=-1))


def test_aput_waits_for_room(name):
    q = shmq.Queue(name, create=True, capacity=1)
    q.put(b"first")

    async def main():
        task = asyncio.create_task(q.aput(b"second"))
        await asyncio.sleep(0.1)
        assert not task.done()
        assert await q.aget() == b"first"
        await asyncio.wait_for(task, 10)
        return await q.aget()
    assert run(main()) == b"second"
    with pytest.raises(shmq.Full):
        q.put(b"x")
        run(q.aput(b"y", timeout=0.1))


def test_async_for_until_end_of_stream(name):
    q = shmq.Queue(name, create=True, encoding="utf-8")

    def producer():
        p = shmq.Queue(name, encoding="utf-8")
        for i in range(50):
            p.put(str(i))
        p.shutdown()

    async def main():
        threading.Thread(target=producer, daemon=True).start()
        return [item async for item in q]
    assert run(main()) == [str(i) for i in range(50)]


def test_async_for_raises_producer_lost(name, procs):
    import subprocess
    import sys
    shmq.Queue(name, create=True, auto_close=True)
    q = shmq.Queue(name)
    p = subprocess.Popen([sys.executable, "-c",
                          "import shmq, time\n"
                          "q = shmq.Queue(%r, role='w')\n"
                          "q.put(b'only')\n"
                          "print('ready', flush=True)\n"
                          "time.sleep(60)\n" % name],
                         stdout=subprocess.PIPE, text=True)
    procs.append(p)
    assert p.stdout.readline() == "ready\n"
    p.kill()
    p.wait(30)

    async def main():
        got = []
        with pytest.raises(shmq.ProducerLost):
            async for item in q:
                got.append(item)
        return got
    assert run(main()) == [b"only"]


def test_cancelled_aget_loses_nothing(name):
    q = shmq.Queue(name, create=True)

    async def main():
        task = asyncio.create_task(q.aget())
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        shmq.Queue(name).put(b"after the cancel")
        return q.get_nowait()
    assert run(main()) == b"after the cancel"


def test_cancel_storm_loses_nothing(name):
    """Awaits cancelled at random moments while a thread puts: every item
    is either received by an await that completed, or still queued."""
    q = shmq.Queue(name, create=True, capacity=8)
    n = 300
    rng = random.Random(7)

    def producer():
        p = shmq.Queue(name)
        for i in range(n):
            p.put(b"%d" % i)

    async def main():
        got = []
        t = threading.Thread(target=producer, daemon=True)
        t.start()
        while len(got) < n:
            task = asyncio.create_task(q.aget())
            await asyncio.sleep(rng.choice([0, 0, 0.0005, 0.002]))
            task.cancel()
            try:
                got.append(await task)
            except asyncio.CancelledError:
                pass
            if not t.is_alive() and len(got) < n:
                try:
                    got.append(q.get_nowait())
                except shmq.Empty:
                    pass
        return got
    got = run(main())
    assert sorted(got, key=int) == [b"%d" % i for i in range(n)]
    assert q.qsize() == 0


def test_cancelled_aput_puts_nothing(name):
    q = shmq.Queue(name, create=True, capacity=1)
    q.put(b"full")

    async def main():
        task = asyncio.create_task(q.aput(b"never"))
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        q.get_nowait()
        await asyncio.sleep(0.1)        # the loop runs on: nothing put
    run(main())
    assert q.qsize() == 0


def test_many_waiters_and_no_thread(name):
    """Waiting coroutines share the Queue's descriptor in the loop; no
    thread waits for them."""
    q = shmq.Queue(name, create=True)
    threads = threading.active_count()

    async def main():
        tasks = [asyncio.create_task(q.aget()) for _ in range(20)]
        await asyncio.sleep(0.05)
        assert threading.active_count() == threads
        q.put_many([b"%d" % i for i in range(20)])
        return await asyncio.gather(*tasks)
    got = run(main())
    assert sorted(got, key=int) == [b"%d" % i for i in range(20)]


def test_no_spin_on_a_closed_acked_queue_with_a_lease_out(name):
    """Closed, drained, but another consumer holds a lease (it may come
    back): aget() waits for it without spinning (before the fix it used
    most of a CPU), and the ack that ends the stream ends the wait."""
    q = shmq.Queue(name, create=True, acked=True)
    holder = shmq.Queue(name)
    q.put(b"job")
    assert holder.get() == b"job"
    q.shutdown()
    waiter = shmq.Queue(name)
    wall, cpu = time.monotonic(), time.process_time()
    with pytest.raises(shmq.Empty):
        run(waiter.aget(timeout=1.5))
    wall, cpu = time.monotonic() - wall, time.process_time() - cpu
    assert wall >= 1.5
    assert cpu < 0.2 * wall, "%.2f s of CPU in %.2f s" % (cpu, wall)

    async def end():
        task = asyncio.create_task(waiter.aget())
        await asyncio.sleep(0.05)
        holder.task_done()
        with pytest.raises(shmq.ShutDown):
            await asyncio.wait_for(task, 10)
    run(end())


def test_dropped_queue_detaches_after_async_use(name):
    """A Queue that waited in aput/aget is detached as soon as it is
    dropped, without the cyclic collector (before the fix the watcher held
    it in a cycle: its handles, an auto_close queue's stream, stayed)."""
    base = shmq.Queue(name, create=True, capacity=1, auto_close=True)

    async def use():
        p = shmq.Queue(name)
        c = shmq.Queue(name)
        await p.aput(b"1")
        try:
            await p.aput(b"2", timeout=0.05)
        except shmq.Full:
            pass
        assert await c.aget() == b"1"
        try:
            await c.aget(timeout=0.05)
        except shmq.Empty:
            pass
        st = base.stat()
        return st.producers, st.consumers
    gc.disable()
    try:
        assert run(use()) >= (1, 1)
        # Detached: shmqd counts it when it hears of it (a message).
        def handles():
            st = base.stat()
            return st.producers, st.consumers
        wait_for(lambda: handles() == (0, 0), 5)
        st = base.stat()
        assert st.state == "closed" and st.auto_closed
    finally:
        gc.enable()


def aget_in_child(q, path):
    with open(path, "wb") as f:
        f.write(asyncio.run(asyncio.wait_for(q.aget(), 30)))


def test_aget_in_a_forked_child(name, procs, tmp_path):
    """A Queue that waited in aget in the parent waits on its own handle's
    descriptor in a multiprocessing child (not the parent's)."""
    import multiprocessing
    q = shmq.Queue(name, create=True)
    with pytest.raises(shmq.Empty):
        run(q.aget(timeout=0.05))
    out = tmp_path / "got"
    p = multiprocessing.get_context("fork").Process(
        target=aget_in_child, args=(q, str(out)))
    procs.append(p)
    p.start()
    wait_for(lambda: q.stat().consumers == 2, 30)   # the child's handle
    q.put(b"for the child")
    p.join(30)
    assert p.exitcode == 0
    assert out.read_bytes() == b"for the child"


def test_a_queue_used_by_two_loops(name):
    q = shmq.Queue(name, create=True)
    for i in range(3):                  # a new loop each time
        later = threading.Timer(0.05, lambda: shmq.Queue(name).put(b"x"))
        later.start()
        assert run(q.aget()) == b"x"
        later.join()


def test_ajoin(name):
    q = shmq.Queue(name, create=True, acked=True)
    q.put(b"job")

    async def main():
        worker = shmq.Queue(name)
        join = asyncio.create_task(q.ajoin())
        await asyncio.sleep(0.05)
        assert not join.done()
        assert await worker.aget() == b"job"
        await asyncio.sleep(0.05)
        assert not join.done()          # leased, not acked
        worker.task_done()
        await asyncio.wait_for(join, 10)
    run(main())
    with pytest.raises(TimeoutError):
        q.put(b"more")
        run(q.ajoin(timeout=0.1))


def test_detach_ends_waiting_coroutines(name):
    q = shmq.Queue(name, create=True)

    async def main():
        task = asyncio.create_task(q.aget())
        await asyncio.sleep(0.05)       # waiting (or, if not yet, it will
        q.detach()                      # find the Queue detached)
        with pytest.raises(ValueError):
            await asyncio.wait_for(task, 10)
    run(main())


def test_detach_in_another_thread_ends_waiting_coroutines(name):
    q = shmq.Queue(name, create=True)

    async def main():
        task = asyncio.create_task(q.aget())
        await asyncio.sleep(0.05)
        t = threading.Thread(target=q.detach)
        t.start()
        with pytest.raises(ValueError):
            await asyncio.wait_for(task, 10)
        t.join()
    run(main())
