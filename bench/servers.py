"""Real servers the benchmarks (and the tests) start: ``nats-server -js`` on a free port.

``nats()`` runs ``nats-server -js`` on a free 127.0.0.1 port with its store in a temporary
directory and stops it (SIGTERM, then SIGKILL) and removes the store afterwards; ``Nats``
can stop and start it again on the same port (a broker outage). ``nats_bin()`` is None
when the binary is missing, so a caller can skip. The tests' ``tests/servers.py`` (which
adds a throwaway PostgreSQL) re-exports these: the tests import bench, never the reverse.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

__all__ = ["START_TIMEOUT", "Nats", "free_port", "nats", "nats_bin", "wait_port"]

START_TIMEOUT = 30.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_port(port: int, proc: subprocess.Popen[bytes] | None, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    delay = 0.005
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before listening")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return
        time.sleep(delay)  # bounded back-off while a child process starts
        delay = min(delay * 2, 0.2)
    raise RuntimeError(f"nothing listening on 127.0.0.1:{port} after {timeout:.0f} s")


def nats_bin() -> str | None:
    return shutil.which("nats-server")


@dataclass
class Nats:
    url: str
    port: int
    store: Path
    proc: subprocess.Popen[bytes]

    def stop(self) -> None:
        """Stop the server (a broker outage); ``start`` brings it back on the same port."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def start(self) -> None:
        if self.proc.poll() is None:
            return
        self.proc = _start_nats(self.port, self.store)


def _start_nats(port: int, store: Path) -> subprocess.Popen[bytes]:
    exe = nats_bin()
    if exe is None:
        raise RuntimeError("nats-server is not installed")
    proc = subprocess.Popen(
        [exe, "-js", "-a", "127.0.0.1", "-p", str(port), "-sd", str(store)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_port(port, proc, START_TIMEOUT)
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    return proc


@contextlib.contextmanager
def nats() -> Iterator[Nats]:
    """``nats-server -js`` on a free 127.0.0.1 port with its store in a temporary folder."""
    store = Path(tempfile.mkdtemp(prefix="dcmups-nats-"))
    port = free_port()
    server = Nats(f"nats://127.0.0.1:{port}", port, store, _start_nats(port, store))
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(store, ignore_errors=True)
