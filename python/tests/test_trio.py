"""The trio channel adapter (shmq.trio): run only where trio is installed
(Debian: python3-trio, which tools/deps.sh installs for the tests)."""
import subprocess
import sys
import threading
import time

import pytest

import shmq

trio = pytest.importorskip("trio")
import shmq.trio  # noqa: E402  (needs trio)


def run(fn, *args):
    async def bounded():
        with trio.fail_after(30):
            return await fn(*args)
    return trio.run(bounded)


def test_send_receive(name):
    async def main():
        send, receive = shmq.trio.open_channel(name, create=True,
                                               encoding="utf-8")
        async with send, receive:
            await send.send("hello")
            send.send_nowait("world")
            return [await receive.receive(), receive.receive_nowait()]
    assert run(main) == ["hello", "world"]


def test_channels_of_a_queue(name):
    q = shmq.Queue(name, create=True, serializer=__import__("pickle"))

    async def main():
        send, receive = shmq.trio.open_channel(q)
        with send, receive:
            await send.send({"k": 1})
            assert send.queue.role == "w" and receive.queue.role == "r"
            return await receive.receive()
    assert run(main) == {"k": 1}


def test_would_block(name):
    async def main():
        send, receive = shmq.trio.open_channel(name, create=True,
                                               capacity=1)
        with send, receive:
            with pytest.raises(trio.WouldBlock):
                receive.receive_nowait()
            send.send_nowait(b"x")
            with pytest.raises(trio.WouldBlock):
                send.send_nowait(b"y")
    run(main)


def test_receive_waits_for_another_thread(name):
    async def main():
        send, receive = shmq.trio.open_channel(name, create=True)
        with send, receive:
            threading.Timer(0.2, lambda: shmq.Queue(name).put(b"late"))\
                .start()
            return await receive.receive()
    assert run(main) == b"late"


def test_send_waits_for_room(name):
    async def main():
        send, receive = shmq.trio.open_channel(name, create=True,
                                               capacity=1)
        with send, receive:
            await send.send(b"1")
            async with trio.open_nursery() as n:
                n.start_soon(send.send, b"2")
                await trio.sleep(0.1)
                assert await receive.receive() == b"1"
            return await receive.receive()
    assert run(main) == b"2"


def test_end_of_channel_when_the_last_sender_closes(name):
    async def main():
        send, receive = shmq.trio.open_channel(name, create=True,
                                               auto_close=True)
        other = send.clone()
        await send.send(b"a")
        await send.aclose()
        await other.send(b"b")
        await other.aclose()            # the last producer: the end
        got = [item async for item in receive]
        with pytest.raises(trio.EndOfChannel):
            await receive.receive()
        await receive.aclose()
        with pytest.raises(trio.ClosedResourceError):
            await receive.receive()
        with pytest.raises(trio.ClosedResourceError):
            await other.send(b"c")
        return got
    assert run(main) == [b"a", b"b"]


def test_send_to_a_closed_queue_is_broken(name):
    async def main():
        send, receive = shmq.trio.open_channel(name, create=True)
        with send, receive:
            send.queue.shutdown()
            with pytest.raises(trio.BrokenResourceError):
                await send.send(b"x")
    run(main)


def test_producer_lost_is_not_end_of_channel(name, procs):
    shmq.Queue(name, create=True, auto_close=True)
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
        receive = shmq.trio.ReceiveChannel(name)
        with receive:
            assert await receive.receive() == b"only"
            with pytest.raises(shmq.ProducerLost):
                await receive.receive()
    run(main)


def test_cancelled_receive_takes_nothing(name):
    async def main():
        send, receive = shmq.trio.open_channel(name, create=True)
        with send, receive:
            with trio.move_on_after(0.1) as scope:
                await receive.receive()
            assert scope.cancelled_caught
            await send.send(b"kept")
            return receive.receive_nowait()
    assert run(main) == b"kept"


def test_statistics(name):
    async def main():
        send, receive = shmq.trio.open_channel(name, create=True,
                                               capacity=7)
        with send, receive:
            await send.send(b"x")
            return send.statistics()
    st = run(main)
    assert st.current_buffer_used == 1 and st.max_buffer_size == 7
    assert st.open_send_channels == 1 and st.open_receive_channels == 1
    assert st.tasks_waiting_send == 0 and st.tasks_waiting_receive == 0


def test_concurrent_receives_on_one_channel(name):
    """Tasks receiving on one channel at once share its descriptor."""
    async def main():
        send, receive = shmq.trio.open_channel(name, create=True)
        got = []
        with send, receive:
            async def one():
                got.append(await receive.receive())
            async with trio.open_nursery() as n:
                for _ in range(5):
                    n.start_soon(one)
                await trio.sleep(0.05)
                assert threading.active_count() == threads
                for i in range(5):
                    await send.send(b"%d" % i)
        return sorted(got)
    threads = threading.active_count()
    assert run(main) == [b"%d" % i for i in range(5)]


def test_no_spin_on_a_closed_acked_queue_with_a_lease_out(name):
    q = shmq.Queue(name, create=True, acked=True)
    holder = shmq.Queue(name)
    q.put(b"job")
    assert holder.get() == b"job"
    q.shutdown()

    async def main():
        receive = shmq.trio.ReceiveChannel(name)
        with receive:
            with trio.move_on_after(1.5):
                await receive.receive()
            wall[1], cpu[1] = time.monotonic(), time.process_time()
            with trio.fail_after(10):
                async with trio.open_nursery() as n:
                    n.start_soon(trio.to_thread.run_sync, holder.task_done)
                    with pytest.raises(trio.EndOfChannel):
                        await receive.receive()
    wall, cpu = [time.monotonic(), 0], [time.process_time(), 0]
    run(main)
    wall, cpu = wall[1] - wall[0], cpu[1] - cpu[0]
    assert cpu < 0.2 * wall, "%.2f s of CPU in %.2f s" % (cpu, wall)


def test_close_wakes_a_waiting_receive(name):
    async def main():
        send, receive = shmq.trio.open_channel(name, create=True)
        with send:
            async with trio.open_nursery() as n:
                async def closer():
                    await trio.sleep(0.05)
                    receive.close()
                n.start_soon(closer)
                with pytest.raises(trio.ClosedResourceError):
                    await receive.receive()
    run(main)
