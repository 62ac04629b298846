"""Child processes of a benchmark run: bench workers and DCMTK tools, none left behind.

Every child is started through :func:`spawn`, which registers it so that a normal exit,
an exception, Ctrl-C or SIGTERM all end it (``atexit`` + the harness's ``finally``), and
asks the kernel to SIGKILL it should the orchestrator itself be killed.
"""

from __future__ import annotations

import atexit
import ctypes
import json
import os
import select
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import IO, Any

REPO = Path(__file__).resolve().parent.parent
_LIVE: list[subprocess.Popen[bytes]] = []


def _pdeathsig() -> None:  # runs in the child between fork and exec
    try:
        ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def spawn(
    argv: list[str],
    *,
    env: dict[str, str] | None = None,
    stdin: int | None = subprocess.DEVNULL,
    stdout: int | IO[bytes] | None = None,
    stderr: int | IO[bytes] | None = None,
    unset: tuple[str, ...] = (),
    cwd: Path | None = None,
) -> subprocess.Popen[bytes]:
    """Start ``argv`` in the repository (or ``cwd``) with ``env`` added to (and ``unset``
    removed from) this process's environment."""
    environ = {k: v for k, v in os.environ.items() if k not in unset}
    proc = subprocess.Popen(
        argv,
        stdin=stdin,
        stdout=stdout,
        stderr=stderr,
        cwd=cwd or REPO,
        env={**environ, **(env or {})},
        preexec_fn=_pdeathsig if sys.platform == "linux" else None,
    )
    _LIVE.append(proc)
    return proc


def stop(proc: subprocess.Popen[bytes], grace: float = 5.0) -> None:
    """Wait ``grace`` seconds for ``proc`` to exit, then kill it."""
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    if proc in _LIVE:
        _LIVE.remove(proc)


def kill_all() -> None:
    for proc in list(_LIVE):
        if proc.poll() is None:
            proc.kill()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            pass
        _LIVE.remove(proc)


atexit.register(kill_all)


def install_sigterm() -> None:
    """Turn SIGTERM into SystemExit so every ``finally`` (and so every stop) runs."""

    def on_term(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, on_term)


class WorkerError(Exception):
    """A worker failed to do what it was asked (the measurement is an error, not n/a)."""


class NotAvailable(Exception):
    """The worker says this side cannot be measured (yet); carries the reason."""


class Worker:
    """One ``python -m bench.worker`` process, driven by JSON lines; a context manager."""

    def __init__(self, name: str, loop: str = "auto") -> None:
        self.name = name
        self._log = tempfile.TemporaryFile()
        self.proc = spawn(
            [sys.executable, "-m", "bench.worker", "--loop", loop],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
        )
        self._buf = b""
        hello = self.call("hello", timeout=60)
        self.pid: int = hello["pid"]
        self.loop: str = hello["loop"]

    def __enter__(self) -> Worker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def call(self, op: str, timeout: float = 120.0, **params: Any) -> dict[str, Any]:
        assert self.proc.stdin is not None
        line = json.dumps({"op": op, "params": params, "timeout": timeout}) + "\n"
        try:
            self.proc.stdin.write(line.encode())
            self.proc.stdin.flush()
        except BrokenPipeError as exc:
            raise WorkerError(f"{self.name}: worker gone ({self._tail()})") from exc
        reply = json.loads(self._readline(timeout + 10))
        if reply.get("ok"):
            return reply["result"]  # type: ignore[no-any-return]
        if "na" in reply:
            raise NotAvailable(reply["na"])
        raise WorkerError(f"{self.name}: {op}: {reply.get('error')}")

    def _readline(self, timeout: float) -> bytes:
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        deadline = time.monotonic() + timeout
        while b"\n" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                self.proc.kill()
                raise WorkerError(f"{self.name}: no reply within {timeout:.0f} s")
            ready, _, _ = select.select([fd], [], [], left)
            if ready:
                chunk = os.read(fd, 65536)
                if not chunk:
                    raise WorkerError(f"{self.name}: worker exited ({self._tail()})")
                self._buf += chunk
        line, _, self._buf = self._buf.partition(b"\n")
        return line

    def _tail(self) -> str:
        self._log.seek(0)
        text = self._log.read().decode(errors="replace").strip().splitlines()
        return " | ".join(text[-3:]) or f"exit status {self.proc.poll()}"

    def close(self) -> None:
        if self.proc.poll() is None and self.proc.stdin is not None:
            try:
                self.proc.stdin.write(b'{"op": "quit"}\n')
                self.proc.stdin.close()
            except (BrokenPipeError, ValueError):
                pass
        stop(self.proc, grace=15.0)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self._log.close()


# -- any process, from outside --------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """utime + stime of ``pid`` from /proc (every thread), in seconds."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children(pid: int) -> list[int]:
    """The direct children of ``pid`` (from each process's ``/proc/N/stat`` parent field)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if int(stat[stat.rindex(")") + 2 :].split()[1]) == pid:
            found.append(int(entry.name))
    return found
