"""Our programs as users run them: ``dcmups -L`` and ``dcmups scp`` as child processes.

``python -m ups -L ANY-SCP@127.0.0.1:0 --json`` (or ``--quiet``, ``--workers N``) runs
with its standard output redirected to a file in a temporary directory; it is ready when
its standard error says ``dcmups: listening as ... on 127.0.0.1:PORT`` (one line per
worker), which also gives the port it bound. ``python -m ups scp UPSSCP@127.0.0.1:0
--db DIR/ups.sqlite`` says ``UPS SCP ... listening on 127.0.0.1:PORT`` on its standard
output. Both are stopped with SIGTERM and must exit 0; every wait is bounded and the
process is killed in ``finally`` (see ``bench.procs``).

From outside the process: CPU time from ``/proc/PID/stat`` (every thread; with workers,
parent plus children), VmRSS and VmHWM from ``/proc/PID/status``, and the lines the
listener wrote to its output file.
"""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import IO

from bench import procs

LISTENER_AET = "ANY-SCP"
SCP_AET = "UPSSCP"
LISTENING = re.compile(r"dcmups: (?:worker \d+ )?listening as \S+ on \S+:(\d+)")
SCP_LISTENING = re.compile(r"UPS SCP \S+ listening on \S+:(\d+)")
QUIET_EVENTS = re.compile(rb'\bevents"?\s*[=:]\s*(\d+)')  # text or JSON count line


class _Lines:
    """Reads a child's stream in a thread: readiness lines, and the tail for errors."""

    def __init__(self, stream: IO[bytes]) -> None:
        self.lines: list[str] = []
        self.eof = False
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._thread.start()

    def _read(self, stream: IO[bytes]) -> None:
        try:
            for raw in stream:
                with self._cond:
                    self.lines.append(raw.decode(errors="replace").rstrip())
                    del self.lines[:-200]
                    self._cond.notify_all()
        except (OSError, ValueError):  # closed under us: the process is gone anyway
            pass
        finally:
            with self._cond:
                self.eof = True
                self._cond.notify_all()

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)

    def wait_for(self, pattern: re.Pattern[str], count: int, timeout: float) -> list[int]:
        """The first group of the first ``count`` lines matching ``pattern`` (as ints)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                found = [int(m.group(1)) for line in self.lines if (m := pattern.search(line))]
                if len(found) >= count:
                    return found[:count]
                left = deadline - time.monotonic()
                if self.eof or left <= 0:
                    raise procs.WorkerError(f"not ready within {timeout:.0f} s: {self.tail()}")
                self._cond.wait(left)

    def tail(self) -> str:
        return " | ".join(self.lines[-3:]) or "no output"


class Program:
    """One of our programs as a child process; a context manager that insists, on a clean
    exit, that SIGTERM stops it with status 0."""

    def __init__(
        self,
        argv: list[str],
        *,
        ready: re.Pattern[str],
        ready_on: str,
        count: int = 1,
        timeout: float = 60.0,
        name: str = "",
        tree: Path | None = None,
    ) -> None:
        self.name = name or " ".join(argv[:2])
        self.dir = Path(tempfile.mkdtemp(prefix="dcmups-bench-"))
        argv = [arg.replace("{dir}", str(self.dir)) for arg in argv]
        self.output = self.dir / "stdout"
        other = self.dir / "stderr"
        # O_APPEND: several worker processes share this file description.
        self._out = open(self.output if ready_on == "stderr" else other, "ab")
        pipe = subprocess.PIPE
        self.proc = procs.spawn(  # ``tree``: another source tree's ups (e.g. main, "before")
            [sys.executable, "-m", "ups", *argv],
            stdout=self._out if ready_on == "stderr" else pipe,
            stderr=pipe if ready_on == "stderr" else self._out,
            cwd=tree,
            env=None if tree is None else {"PYTHONPATH": str(tree)},
        )
        self.pid = self.proc.pid
        stream = self.proc.stderr if ready_on == "stderr" else self.proc.stdout
        assert stream is not None
        self._lines = _Lines(stream)
        self.returncode: int | None = None
        self.after_stop: list[Callable[[], None]] = []
        """Checks run after a clean exit's SIGTERM stop (what the program wrote at exit)."""
        self._offset = 0
        try:
            self.port = self._lines.wait_for(ready, count, timeout)[0]
            self.pids = [self.pid, *procs.children(self.pid)] if count > 1 else [self.pid]
            if count > 1 and len(self.pids) != count + 1:
                raise procs.WorkerError(
                    f"{self.name}: {count} workers announced, {len(self.pids) - 1} found"
                )
        except BaseException:
            self.close()
            raise

    def __enter__(self) -> Program:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if exc_type is None and self.returncode is None:
                self.stop(check=True)
                for check in self.after_stop:
                    check()
        finally:
            self.close()

    # -- from outside ---------------------------------------------------------------------

    def cpu_seconds(self) -> float:
        return sum(procs.cpu_seconds(pid) for pid in self.pids)

    def memory_mb(self, key: str = "VmRSS") -> float:
        """VmRSS (or VmHWM, the peak) of the main process in MiB; NaN once it is gone."""
        try:
            for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
                if line.startswith(key + ":"):
                    return int(line.split()[1]) / 1024
        except OSError:
            pass
        return float("nan")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def new_lines(self) -> int:
        """Lines written to standard output since the last call."""
        with open(self.output, "rb") as f:
            f.seek(self._offset)
            data = f.read()
        self._offset += len(data)
        return data.count(b"\n")

    def last_line(self) -> bytes:
        data = self.output.read_bytes().rstrip(b"\n")
        return data[data.rfind(b"\n") + 1 :]

    def tail(self) -> str:
        return self._lines.tail()

    # -- stopping -----------------------------------------------------------------------------

    def stop(self, *, check: bool = False, grace: float = 30.0) -> int:
        """SIGTERM, then wait up to ``grace`` s (then SIGKILL); the exit status. With
        ``check``, anything but 0 is a WorkerError."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.returncode = self.proc.wait(grace)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise procs.WorkerError(
                f"{self.name}: still running {grace:.0f} s after SIGTERM ({self.tail()})"
            ) from None
        if check and self.returncode != 0:
            raise procs.WorkerError(
                f"{self.name}: exit status {self.returncode} after SIGTERM ({self.tail()})"
            )
        return self.returncode

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        procs.stop(self.proc, grace=10.0)
        self._lines.join(5.0)  # EOF follows the exit (unless a grandchild holds the pipe)
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()
        self._out.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def listener(*options: str, workers: int = 1, timeout: float = 60.0) -> Program:
    """``dcmups -L ANY-SCP@127.0.0.1:0 OPTIONS``, events to a file."""
    argv = ["-L", f"{LISTENER_AET}@127.0.0.1:0", *options]
    if workers > 1:
        argv += ["--workers", str(workers)]
    return Program(
        argv,
        ready=LISTENING,
        ready_on="stderr",
        count=workers,
        timeout=timeout,
        name=f"dcmups -L {' '.join(argv[2:])}",
    )


def scp(
    timeout: float = 60.0, *, db: Path | str | None = None, tree: Path | None = None
) -> Program:
    """``dcmups scp UPSSCP@127.0.0.1:0 --db TMP/ups.sqlite`` (a fresh database, or ``db``:
    a file or a ``postgresql://`` URL), from this tree or ``tree``."""
    return Program(
        ["scp", f"{SCP_AET}@127.0.0.1:0", "--db", str(db or "{dir}/ups.sqlite")],
        ready=SCP_LISTENING,
        ready_on="stdout",
        timeout=timeout,
        name="dcmups scp" + (f" ({tree})" if tree else ""),
        tree=tree,
    )
