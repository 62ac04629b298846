"""A ``dcmups scp`` or ``dcmups -L`` child process for tests: started, awaited, stopped.

The child prints one line once it listens (``scp`` on stdout, ``-L`` on stderr) naming
its port; :func:`running` waits for that line (bounded), yields the process, and stops
it with SIGTERM (SIGKILL if it does not go) in ``finally``. What it wrote is in
``Child.out`` and ``Child.err`` afterwards.
"""

from __future__ import annotations

import os
import selectors
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

READY_TIMEOUT = 20.0
STOP_TIMEOUT = 20.0


def command() -> list[str]:
    found = shutil.which("dcmups")
    return [found] if found else [sys.executable, "-m", "ups"]


@dataclass
class Child:
    proc: subprocess.Popen[str]
    port: int = 0
    out: str = ""
    err: str = ""

    @property
    def pid(self) -> int:
        return self.proc.pid

    def err_lines(self, start: str) -> list[str]:
        return [line for line in self.err.splitlines() if line.startswith(start)]


def _ready_line(stream: IO[str], proc: subprocess.Popen[str]) -> str:
    """The first line of ``stream``, within READY_TIMEOUT, or a failure with its stderr."""
    selector = selectors.DefaultSelector()
    selector.register(stream, selectors.EVENT_READ)
    deadline = time.monotonic() + READY_TIMEOUT
    try:
        while time.monotonic() < deadline:
            if selector.select(timeout=deadline - time.monotonic()):
                return stream.readline()
        raise AssertionError("dcmups did not report listening in time")
    finally:
        selector.close()


@contextmanager
def running(
    kind: str,
    argv: Sequence[str],
    tmp_path: Path,
    *,
    env: Mapping[str, str] | None = None,
) -> Iterator[Child]:
    """``kind`` "scp" or "listener"; ``argv`` are the options after the address."""
    if kind == "scp":
        head = ["scp", "UPSSCP@127.0.0.1:0", "--db", str(tmp_path / "scp.sqlite")]
    else:
        head = ["-L", "LISTENER@127.0.0.1:0"]
    proc = subprocess.Popen(
        [*command(), *head, *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
    )
    child = Child(proc)
    try:
        stream = proc.stdout if kind == "scp" else proc.stderr
        assert stream is not None
        line = _ready_line(stream, proc)
        if "listening" not in line:
            proc.kill()
            out, err = proc.communicate(timeout=STOP_TIMEOUT)
            raise AssertionError(f"dcmups did not start: {line}{out}{err}")
        address = line.split(" on ", 1)[1].split()[0]
        child.port = int(address.rsplit(":", 1)[1])
        yield child
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            out, err = proc.communicate(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
        child.out += out
        child.err += err
