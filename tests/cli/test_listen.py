"""The -L daemon: line formats, quiet counts, SIGTERM during a burst, abort, workers."""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Sequence

import pytest
from pydicom.dataset import Dataset

from tests.services.test_listener import open_sender, send_events
from ups.cli.listen import ListenerOptions, listen_options, run_listen, run_listener
from ups.cli.options import build_parser
from ups.dimse.datasets import LazyDataset, encode_dataset
from ups.dimse.messages import NEventReportRSP
from ups.services.events import UPSEvent
from ups.services.listener import EventListener
from ups.services.uids import IMPLICIT_VR_LITTLE_ENDIAN, UPS_PUSH

pytestmark = pytest.mark.timeout(60)
IVR = IMPLICIT_VR_LITTLE_ENDIAN


def _event(event_type: int, ds: Dataset, sop_class: str = UPS_PUSH) -> UPSEvent:
    raw = LazyDataset(encode_dataset(ds, IVR), IVR)
    return UPSEvent(event_type, "1.2.3", sop_class, "ARC", "ME", 1_700_000_000.25, raw, 7)


# ------------------------------------------------------------------------ in process


async def _run(opts: ListenerOptions, out: io.StringIO, work: object) -> tuple[int, EventListener]:
    stop = asyncio.Event()
    started: asyncio.Future[EventListener] = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(run_listener(opts, out, stop=stop, ready=started.set_result))
    listener = await started
    await work(listener)  # type: ignore[operator]
    stop.set()
    return await task, listener


async def test_run_listener_writes_json_lines_before_answering() -> None:
    out = io.StringIO()
    opts = ListenerOptions("ME", "127.0.0.1", 0, output="json")

    async def work(listener: EventListener) -> None:
        sender = await open_sender(listener.port)

        def check(iuid: str, rsp: NEventReportRSP) -> None:
            assert rsp.status == 0 and f'"iuid":"{iuid}"' in out.getvalue()

        await send_events(sender, [f"1.{n}" for n in range(40)], on_response=check)
        await sender.release()

    rc, _ = await _run(opts, out, work)
    assert rc == 0
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [obj["iuid"] for obj in lines] == [f"1.{n}" for n in range(40)]
    assert lines[0]["dataset"]["00741000"]["Value"] == ["IN PROGRESS"]


async def test_quiet_mode_prints_counts() -> None:
    out = io.StringIO()
    opts = ListenerOptions("ME", "127.0.0.1", 0, output="quiet", stats_interval=0.05)

    async def work(listener: EventListener) -> None:
        sender = await open_sender(listener.port)
        await send_events(sender, [f"1.{n}" for n in range(25)])
        while "events=25" not in out.getvalue():
            await asyncio.sleep(0.02)  # waits for the periodic line itself
        await sender.release()

    rc, _ = await _run(opts, out, work)
    assert rc == 0
    lines = out.getvalue().splitlines()
    assert all(" stats events=" in line for line in lines)
    assert "associations_open=1" in next(line for line in lines if "events=25" in line)


async def test_output_failure_answers_processing_failure() -> None:
    class Broken(io.StringIO):
        def write(self, text: str) -> int:
            raise BrokenPipeError("reader went away")

    opts = ListenerOptions("ME", "127.0.0.1", 0)

    async def work(listener: EventListener) -> None:
        sender = await open_sender(listener.port)
        [rsp] = await send_events(sender, ["1.1"])
        assert rsp.status == 0x0110
        await sender.wait_closed()  # the daemon stops and releases

    rc, _ = await _run(opts, Broken(), work)
    assert rc == 1


def test_run_listen_subscribes_then_unsubscribes_on_exit() -> None:
    calls: list[str] = []

    async def then() -> int:
        calls.append("subscribe")
        loop = asyncio.get_running_loop()
        loop.call_soon(os.kill, os.getpid(), signal.SIGTERM)  # our handler is installed
        return 0

    async def cleanup() -> int:
        calls.append("unsubscribe")
        return 0

    args = build_parser().parse_args(
        ["subscribe", "A@127.0.0.1:1", "-aet", "ME", "-L", "ME@127.0.0.1:0", "--quiet"]
        + ["--window", "8"]
    )
    rc = run_listen(args, io.StringIO(), then, cleanup)
    assert rc == 0 and calls == ["subscribe", "unsubscribe"]
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL


# ------------------------------------------------------------------------ the options


def _listen_args(*extra: str) -> argparse.Namespace:
    return build_parser().parse_args(["-L", "ME@127.0.0.1:0", *extra])


def test_listen_options_from_the_command_line() -> None:
    """--buffer, --stats-interval, --grace, --any-called-ae (python -m ups.services.daemon
    had them), with --window, --limits, --accept-aet into one ListenerSettings."""
    args = _listen_args(
        "--json",
        "--buffer",
        "5",
        "--stats-interval",
        "0.5",
        "--grace",
        "2",
        "--any-called-ae",
        "--window",
        "0",
        "--limits",
        "items=7",
        "--accept-aet",
        "PEER",
    )
    opts = listen_options(args)
    assert (opts.ae_title, opts.host, opts.port, opts.output) == ("ME", "127.0.0.1", 0, "json")
    assert (opts.grace, opts.stats_interval) == (2.0, 0.5)
    settings = opts.settings
    assert settings.buffer == 5 and settings.window == 0 and settings.accept_any_called_ae
    assert settings.scan_limits.max_items == 7
    assert settings.calling_ae_titles == frozenset({"PEER"})
    default = listen_options(_listen_args()).settings
    assert (default.buffer, default.window, default.accept_any_called_ae) == (1000, 64, False)


async def test_any_called_ae_option_accepts_another_called_title() -> None:
    opts = listen_options(_listen_args("--json", "--any-called-ae"))
    out = io.StringIO()

    async def work(listener: EventListener) -> None:
        sender = await open_sender(listener.port, called="SOMEONE-ELSE")
        [rsp] = await send_events(sender, ["1.1"])
        assert rsp.status == 0
        await sender.release()

    rc, _ = await _run(opts, out, work)
    assert rc == 0 and '"iuid":"1.1"' in out.getvalue()


@pytest.mark.parametrize("verbose", [False, True])
async def test_verbose_option_logs_on_stderr(verbose: bool) -> None:
    """--verbose: the listener's log lines (here: a peer's abort) go to stderr."""
    daemon = Daemon(["-L", "ME@127.0.0.1:0", *(["--verbose"] if verbose else [])])
    sender = await open_sender(daemon.ports[0])
    sender.abort()
    await sender.wait_closed()
    seen = ""
    if verbose:  # the log line comes once the daemon has read the A-ABORT
        stream = daemon.proc.stderr
        assert stream is not None
        while "abort" not in seen:
            line = await asyncio.wait_for(asyncio.to_thread(stream.readline), 20)
            if not line:
                break
            seen += line.decode()
    daemon.proc.send_signal(signal.SIGTERM)
    rc, _, stderr = await daemon.finish()
    assert rc == 0
    assert ("abort" in seen + stderr) is verbose, seen + stderr


# ------------------------------------------------------------------------ subprocesses


class Daemon:
    """``dcmups -L ...`` (``python -m ups``) with its stdout drained by a thread."""

    def __init__(self, args: Sequence[str]) -> None:
        self.proc, self.ports = _start(args)
        self._chunks: list[bytes] = []
        assert self.proc.stdout is not None
        stdout = self.proc.stdout
        self._reader = threading.Thread(target=lambda: self._chunks.append(stdout.read()))
        self._reader.start()

    async def finish(self, timeout: float = 30) -> tuple[int, bytes, str]:
        rc = await asyncio.to_thread(self.proc.wait, timeout)
        await asyncio.to_thread(self._reader.join, timeout)
        assert self.proc.stderr is not None
        return rc, b"".join(self._chunks), self.proc.stderr.read().decode()


def _start(args: Sequence[str]) -> tuple[subprocess.Popen[bytes], list[int]]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "ups", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stderr is not None
    workers = 1
    if "--workers" in args:
        workers = int(args[list(args).index("--workers") + 1])
    ports = []
    for _ in range(workers):
        line = proc.stderr.readline().decode()
        assert "listening as ME on" in line, line
        ports.append(int(line.rsplit(":", 1)[1]))
    return proc, ports


async def _burst(port: int, associations: int, per: int, acked: list[str]) -> None:
    """Senders that keep going until the daemon stops answering."""

    async def one(index: int) -> None:
        try:
            sender = await open_sender(port, calling=f"S{index}", window=8)
        except Exception:
            return

        def record(iuid: str, rsp: NEventReportRSP) -> None:
            if rsp.status == 0:
                acked.append(iuid)

        try:
            await send_events(sender, [f"9.{index}.{n}" for n in range(per)], on_response=record)
            await sender.release()
        except Exception:
            pass  # the daemon released or went away mid-burst

    await asyncio.gather(*(one(i) for i in range(associations)))


def _check_output(stdout: bytes, acked: Sequence[str]) -> list[str]:
    text = stdout.decode()
    assert text == "" or text.endswith("\n"), "a half-written last line"
    seen = [json.loads(line)["iuid"] for line in text.splitlines()]
    assert len(seen) == len(set(seen)), "an event was written twice"
    missing = set(acked) - set(seen)
    assert not missing, f"{len(missing)} acknowledged events are not in the output"
    return seen


@pytest.mark.parametrize("workers", [1, 2])
async def test_sigterm_during_burst_loses_no_acknowledged_event(workers: int) -> None:
    daemon = Daemon(["-L", "ME@127.0.0.1:0", "--json", "--workers", str(workers)])
    acked: list[str] = []
    burst = asyncio.create_task(_burst(daemon.ports[0], 4, 3000, acked))
    while len(acked) < 100 and not burst.done():
        await asyncio.sleep(0.01)  # polls the test's own progress, not a race
    daemon.proc.send_signal(signal.SIGTERM)
    await asyncio.wait_for(burst, 30)
    rc, stdout, stderr = await daemon.finish()
    assert rc == 0, stderr
    seen = _check_output(stdout, acked)
    assert len(acked) >= 100 and len(seen) < 4 * 3000  # it really stopped mid-burst


async def test_second_signal_aborts_at_once() -> None:
    daemon = Daemon(["-L", "ME@127.0.0.1:0", "--json", "--grace", "60"])
    sender = await open_sender(daemon.ports[0])
    await send_events(sender, ["1.1"])
    sender.pause_receiving()  # never reads the A-RELEASE-RQ: the graceful stop hangs
    daemon.proc.send_signal(signal.SIGTERM)
    await asyncio.sleep(0.3)
    assert daemon.proc.poll() is None  # still waiting for the release
    daemon.proc.send_signal(signal.SIGTERM)
    rc, stdout, _ = await daemon.finish(10)
    assert rc == -signal.SIGTERM or rc == 128 + signal.SIGTERM
    assert json.loads(stdout.decode())["iuid"] == "1.1"
    sender.abort()
