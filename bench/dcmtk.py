"""DCMTK's C++ tools as a reference peer: ``echoscu --repeat N`` against ``storescp``.

pynetdicom installs Python scripts with the same names (``echoscu``, ``storescp``) and they
may come first on PATH, so the real tools are found by checking for an ELF executable.
DCMTK disables Nagle when the environment variable ``TCP_NODELAY`` is set to 1 (it logs
"disabling Nagle algorithm as requested at runtime" at debug level). With ``nodelay=False``
the tools run with their default sockets (``TCP_NODELAY`` removed from the environment:
Nagle on): scenario 10's peers that leave Nagle on.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from pathlib import Path

from bench import procs

NODELAY_ENV = {"TCP_NODELAY": "1"}


def _spawn(argv: list[str], nodelay: bool, stderr: int) -> subprocess.Popen[bytes]:
    """Start a DCMTK tool with TCP_NODELAY=1, or with no TCP_NODELAY at all (its default)."""
    if nodelay:
        return procs.spawn(argv, env=NODELAY_ENV, stdout=subprocess.DEVNULL, stderr=stderr)
    return procs.spawn(argv, unset=("TCP_NODELAY",), stdout=subprocess.DEVNULL, stderr=stderr)


def find(tool: str) -> str | None:
    """The first ``tool`` on PATH that is a native executable, not a Python script."""
    for directory in os.environ.get("PATH", "").split(os.pathsep):
        path = Path(directory) / tool
        try:
            if os.access(path, os.X_OK) and path.read_bytes()[:4] == b"\x7fELF":
                return str(path)
        except OSError:
            continue
    return None


def unavailable() -> str | None:
    missing = [tool for tool in ("echoscu", "storescp") if find(tool) is None]
    return f"DCMTK not installed ({', '.join(missing)} not on PATH)" if missing else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_listening(port: int, proc: subprocess.Popen[bytes], timeout: float) -> None:
    """storescp has no readiness signal we can read, so probe the port (bounded).

    This is the one place the harness waits by polling: the backoff starts at 1 ms.
    """
    deadline = time.monotonic() + timeout
    delay = 0.001
    while True:
        if proc.poll() is not None:
            raise procs.WorkerError(f"storescp exited with status {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise procs.WorkerError("storescp did not start listening") from None
            time.sleep(delay)
            delay = min(delay * 2, 0.1)


class StoreSCP:
    """``storescp --ignore`` on a free loopback port; a context manager."""

    def __init__(self, timeout: float = 30.0, *, nodelay: bool = True) -> None:
        exe = find("storescp")
        assert exe is not None
        self.port = _free_port()
        self.proc = _spawn(
            [exe, "--ignore", "-aet", "ANY-SCP", str(self.port)], nodelay, subprocess.DEVNULL
        )
        try:
            _wait_listening(self.port, self.proc, timeout)
        except BaseException:
            self.close()
            raise

    def __enter__(self) -> StoreSCP:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
        procs.stop(self.proc, grace=5.0)


def echoscu(
    port: int, repeat: int, timeout: float = 120.0, *, aec: str = "ANY-SCP", nodelay: bool = True
) -> float:
    """Wall-clock seconds for one ``echoscu --repeat`` run (process start included)."""
    exe = find("echoscu")
    assert exe is not None
    t0 = time.perf_counter()
    proc = _spawn(
        [exe, "--repeat", str(repeat), "-aec", aec, "127.0.0.1", str(port)],
        nodelay,
        subprocess.PIPE,
    )
    try:
        _, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        raise procs.WorkerError(
            f"echoscu --repeat {repeat}: not done within {timeout:.0f} s"
        ) from None
    finally:
        if proc.poll() is None:
            proc.kill()
        procs.stop(proc, grace=1.0)
    elapsed = time.perf_counter() - t0
    if proc.returncode != 0:
        raise procs.WorkerError(f"echoscu failed: {err.decode(errors='replace').strip()}")
    return elapsed


def echo_rate(port: int, repeat: int) -> float:
    """Echoes per second with process start and association set-up subtracted:
    (repeat - 1) / (t(repeat) - t(1))."""
    t_one = min(echoscu(port, 1) for _ in range(2))
    t_many = echoscu(port, repeat)
    spent = t_many - t_one
    return (repeat - 1) / spent if spent > 0 else float("nan")


def echo_ms(port: int, repeat: int, *, aec: str, nodelay: bool) -> float:
    """Milliseconds per C-ECHO, process start and association set-up subtracted:
    (t(repeat) - t(1)) / (repeat - 1)."""
    timeout = 30 + repeat * 0.5  # bounded even when every echo stalls
    t_one = min(echoscu(port, 1, aec=aec, nodelay=nodelay) for _ in range(2))
    t_many = echoscu(port, repeat, timeout, aec=aec, nodelay=nodelay)
    return (t_many - t_one) / (repeat - 1) * 1e3
