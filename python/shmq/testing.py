"""A private shmqd for tests and benchmarks.

    from shmq.testing import Daemon
    with Daemon() as d:         # SHMQ_SOCKET etc. point at it meanwhile
        q = shmq.Queue("jobs", create=True)
        ...
    # stopped; its queues' shared memory and its directory removed

The daemon runs in the foreground as a child of this process, on a socket
in a fresh temporary directory, and this process's environment points
libshmq at it (SHMQ_SOCKET, SHMQ_NO_AUTOSTART=1, SHMQ_DAEMON), so that
child processes use it too.  It never touches any other daemon or queue.
"""
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

__all__ = ["Daemon", "segment_prefix"]

_ENV = ("SHMQ_SOCKET", "SHMQ_NO_AUTOSTART", "SHMQ_DAEMON")


def segment_prefix(socket_path):
    """The prefix of a daemon's shared memory objects in /dev/shm: the
    FNV-1a-64 of its socket path, as libshmq names them."""
    h = 0xcbf29ce484222325
    for b in os.fsencode(socket_path):
        h = ((h ^ b) * 0x100000001b3) & 0xffffffffffffffff
    return "shmq.%016x." % h


class Daemon:
    """shmqd in a temporary directory; start() / stop() / cleanup(), or
    `with`.  shmqd: the binary (default $SHMQ_DAEMON, else shmqd on
    PATH); args: more options for it; keep_env: leave os.environ alone."""

    def __init__(self, shmqd=None, args=(), directory=None, keep_env=False):
        self.shmqd = (shmqd or os.environ.get("SHMQ_DAEMON")
                      or shutil.which("shmqd"))
        if not self.shmqd:
            raise FileNotFoundError("no shmqd: set SHMQ_DAEMON")
        self.args = list(args)
        self.parent = directory
        self.keep_env = keep_env
        self.dir = self.socket = self.proc = None
        self._saved_env = None

    @property
    def prefix(self):
        return segment_prefix(self.socket)

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def start(self, timeout=10):
        if self.dir is None:
            self.dir = tempfile.mkdtemp(prefix="shmqd.", dir=self.parent)
            self.socket = os.path.join(self.dir, "shmqd.sock")
        notify_path = os.path.join(self.dir, "notify")
        notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            if os.path.exists(notify_path):
                os.unlink(notify_path)
            notify.bind(notify_path)
            env = dict(os.environ, NOTIFY_SOCKET=notify_path)
            log = open(os.path.join(self.dir, "shmqd.log"), "ab")
            try:
                self.proc = subprocess.Popen(
                    [self.shmqd, "--foreground", "--socket", self.socket,
                     "--pid-file", os.path.join(self.dir, "shmqd.pid")]
                    + self.args,
                    env=env, stdin=subprocess.DEVNULL, stdout=log,
                    stderr=log)
            finally:
                log.close()
            deadline = time.monotonic() + timeout
            while True:
                left = deadline - time.monotonic()
                if left <= 0 or self.proc.poll() is not None:
                    self.stop()
                    raise RuntimeError("shmqd did not start: see %s"
                                       % os.path.join(self.dir,
                                                      "shmqd.log"))
                notify.settimeout(min(left, 0.5))
                try:
                    if b"READY=1" in notify.recv(4096):
                        break
                except socket.timeout:
                    pass
        finally:
            notify.close()
            if os.path.exists(notify_path):
                os.unlink(notify_path)
        if not self.keep_env and self._saved_env is None:
            self._saved_env = {k: os.environ.get(k) for k in _ENV}
            os.environ["SHMQ_SOCKET"] = self.socket
            os.environ["SHMQ_NO_AUTOSTART"] = "1"
            os.environ["SHMQ_DAEMON"] = self.shmqd
        return self

    def stop(self, sig=signal.SIGTERM, timeout=10):
        """Sends sig and waits (SIGKILL after timeout); the exit status."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        rc, self.proc = self.proc.returncode, None
        return rc

    def segments(self):
        """Names of this daemon's objects in /dev/shm."""
        prefix = self.prefix
        try:
            return sorted(n for n in os.listdir("/dev/shm")
                          if n.startswith(prefix))
        except FileNotFoundError:
            return []

    def cleanup(self):
        """Stop, remove the segments and the directory, restore the
        environment."""
        rc = self.stop()
        if self.socket:
            for name in self.segments():
                try:
                    os.unlink(os.path.join("/dev/shm", name))
                except FileNotFoundError:
                    pass
        if self.dir:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None
        if self._saved_env is not None:
            for k, v in self._saved_env.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
            self._saved_env = None
        return rc

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.cleanup()
