"""Fixtures of the Python binding's tests.

One real shmqd for the session (shmq.testing.Daemon), in the directory
run-tests.sh sweeps ($SHMQ_PYTEST_TMP), with its segment prefix written
down there so that even a killed run leaves nothing behind.  Every test
gets fresh queue names (deleted afterwards), a time limit (SIGALRM raises
in the main thread; faulthandler ends the process if that does not help),
and a `procs` list whose processes are killed when it ends.
"""
import faulthandler
import itertools
import os
import signal
import sys

import pytest

import shmq
from shmq.testing import Daemon

TEST_SECONDS = int(os.environ.get("SHMQ_TEST_SECONDS", "60"))


class TestTimeout(Exception):
    pass


@pytest.fixture(scope="session", autouse=True)
def daemon():
    tmp = os.environ.get("SHMQ_PYTEST_TMP")
    d = Daemon(directory=tmp)
    d.start()
    if tmp:
        with open(os.path.join(tmp, "segments"), "a") as f:
            f.write(d.prefix + "\n")
    yield d
    rc = d.cleanup()
    assert rc == 0, "shmqd exited with status %r" % rc


_names = itertools.count()


@pytest.fixture
def names(request):
    """names() -> a fresh queue name; every one is deleted at the end."""
    made = []

    def new():
        base = "".join(c if c.isalnum() else "-" for c in request.node.name)
        n = "py-%s-%d-%d" % (base[:60], os.getpid(), next(_names))
        made.append(n)
        return n
    yield new
    for n in made:
        try:
            shmq.delete(n)
        except (FileNotFoundError, ConnectionError):
            pass


@pytest.fixture
def name(names):
    return names()


@pytest.fixture
def procs():
    """Processes (multiprocessing or subprocess) to kill at the end."""
    started = []
    yield started
    for p in started:
        if hasattr(p, "kill"):
            try:
                p.kill()
            except (OSError, ValueError, AttributeError):
                pass
        if hasattr(p, "join"):
            p.join(5)
        elif hasattr(p, "wait"):
            try:
                p.wait(5)
            except Exception:
                pass


@pytest.fixture(autouse=True)
def time_limit():
    def expired(signum, frame):
        raise TestTimeout("the test ran for more than %d s" % TEST_SECONDS)
    old = signal.signal(signal.SIGALRM, expired)
    signal.alarm(TEST_SECONDS)
    faulthandler.dump_traceback_later(TEST_SECONDS + 15, exit=True,
                                      file=sys.stderr)
    yield
    faulthandler.cancel_dump_traceback_later()
    signal.alarm(0)
    signal.signal(signal.SIGALRM, old)
