"""Running the probe in tests: our SCP as a child process, free ports, bounded runs.

``reference_scp`` starts ``python -m ups scp PROBESCP@127.0.0.1:0 --db <tmp>/ups.sqlite
--ae PROBE=127.0.0.1:<listen port>`` (as bench/daemons.py does), reads the port from its
"listening" line within a deadline, and stops it with SIGTERM (SIGKILL if it lingers)
in ``finally``.
"""

from __future__ import annotations

import asyncio
import io
import re
import selectors
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ups.services.probe import ProbeOptions, ProbeRun, Verdict, probe

SCP_AE = "PROBESCP"
PROBE_AE = "PROBE"
_LISTENING = re.compile(r"UPS SCP \S+ listening on \S+:(\d+)")
READY_TIMEOUT = 20.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _first_line(proc: subprocess.Popen[str], timeout: float) -> str:
    assert proc.stdout is not None
    selector = selectors.DefaultSelector()
    selector.register(proc.stdout, selectors.EVENT_READ)
    try:
        if selector.select(timeout=timeout):
            return proc.stdout.readline()
    finally:
        selector.close()
    return ""


@contextmanager
def reference_scp(tmp_path: Path, listen_port: int, *extra: str) -> Iterator[int]:
    """Our ``dcmups scp``, knowing AE PROBE at ``listen_port``; yields its port.

    ``extra`` options go on its command line (``--retain 0``).
    """
    argv = [
        sys.executable, "-m", "ups", "scp", f"{SCP_AE}@127.0.0.1:0",
        "--db", str(tmp_path / "ups.sqlite"), "--ae", f"{PROBE_AE}=127.0.0.1:{listen_port}",
        *extra,
    ]  # fmt: skip
    proc = subprocess.Popen(
        argv,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
        text=True,
    )
    try:
        line = _first_line(proc, READY_TIMEOUT)
        found = _LISTENING.search(line)
        assert found, f"dcmups scp did not report listening: {line!r}"
        yield int(found.group(1))
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
        if proc.stdout is not None:
            proc.stdout.close()


def options(port: int, *, called: str = SCP_AE, **kw: Any) -> ProbeOptions:
    base: dict[str, Any] = dict(
        called_ae=called,
        host="127.0.0.1",
        port=port,
        calling_ae=PROBE_AE,
        listen_host="127.0.0.1",
        event_timeout=2.0,
        quiet_period=0.3,
        check_timeout=30.0,
    )
    base.update(kw)
    return ProbeOptions(**base)


def run_probe(opts: ProbeOptions, timeout: float = 90.0) -> tuple[int, ProbeRun, str]:
    """Run the suite on a new loop, bounded; (exit status, results, standard output)."""
    run = ProbeRun()
    out = io.StringIO()

    async def bounded() -> int:
        async with asyncio.timeout(timeout):
            return await probe(opts, out, io.StringIO(), run)

    started = time.monotonic()
    status = asyncio.run(bounded())
    assert time.monotonic() - started < timeout
    return status, run, out.getvalue()


def by_verdict(run: ProbeRun, verdict: Verdict, group: str | None = None) -> set[str]:
    return {
        r.name for r in run.results if r.verdict is verdict and (group is None or r.group == group)
    }
