"""The -L daemon: line formats, quiet counts, SIGTERM during a burst, abort, workers."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import io
import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Sequence
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydicom.dataset import Dataset

from tests.services.test_listener import open_sender, send_events
from ups.cli.listen import (
    JsonLineRenderer,
    ListenerOptions,
    event_json,
    format_event_line,
    run_from_cli,
    run_listener,
)
from ups.cli.output import json_line
from ups.dimse.datasets import LazyDataset, encode_dataset
from ups.dimse.messages import NEventReportRSP
from ups.dimse.scanner import dataset_json
from ups.services.events import UPSEvent
from ups.services.listener import EventListener
from ups.services.uids import IMPLICIT_VR_LITTLE_ENDIAN, UPS_PUSH, UPS_PUSH_TRIAL

pytestmark = pytest.mark.timeout(60)
IVR = IMPLICIT_VR_LITTLE_ENDIAN


def _event(event_type: int, ds: Dataset, sop_class: str = UPS_PUSH) -> UPSEvent:
    raw = LazyDataset(encode_dataset(ds, IVR), IVR)
    return UPSEvent(event_type, "1.2.3", sop_class, "ARC", "ME", 1_700_000_000.25, raw, 7)


# ------------------------------------------------------------------------ formats


def test_text_line_summarises_and_quotes() -> None:
    ds = Dataset()
    ds.RequestingAE = "WS 1"
    ds.ReasonForCancellation = 'bad\nline "x"'
    line = format_event_line(_event(2, ds))
    assert line.startswith("2023-11-14T22:13:20.250Z UPS Cancel Requested iuid=1.2.3 from=ARC")
    assert 'RequestingAE="WS 1"' in line
    assert "\n" not in line and "\\n" in line
    progress = Dataset()
    item = Dataset()
    item.ProcedureStepProgress = "50"
    progress.ProcedureStepProgressInformationSequence = [item]
    line = format_event_line(_event(3, progress, UPS_PUSH_TRIAL))
    assert "ProcedureStepProgress=50" in line and " trial " in line


def test_json_object_carries_the_dicom_json_model() -> None:
    ds = Dataset()
    ds.ProcedureStepState = "COMPLETED"
    obj = event_json(_event(1, ds))
    assert obj["op"] == "event" and obj["event_type"] == 1
    assert obj["iuid"] == "1.2.3" and obj["calling_aet"] == "ARC"
    assert obj["dataset"] == {"00741000": {"vr": "CS", "Value": ["COMPLETED"]}}
    empty = UPSEvent(4, "1.2.840.10008.5.1.4.34.5", UPS_PUSH, "ARC", "ME", 0.0)
    assert event_json(empty)["dataset"] == {}


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


def test_run_from_cli_subscribes_then_unsubscribes_on_exit() -> None:
    calls: list[str] = []

    async def then() -> int:
        calls.append("subscribe")
        loop = asyncio.get_running_loop()
        loop.call_soon(os.kill, os.getpid(), signal.SIGTERM)  # our handler is installed
        return 0

    async def cleanup() -> int:
        calls.append("unsubscribe")
        return 0

    args = argparse.Namespace(
        L="ME@127.0.0.1:0", json=False, quiet=True, workers=1, window=8, operation="subscribe"
    )
    from ups.net.config import AssociationConfig

    rc = run_from_cli(args, io.StringIO(), AssociationConfig(), then, cleanup)
    assert rc == 0 and calls == ["subscribe", "unsubscribe"]
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL


# ------------------------------------------------------------------------ subprocesses


class Daemon:
    """``python -m ups.cli.listen`` with its stdout drained by a thread."""

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
        [sys.executable, "-m", "ups.cli.listen", *args],
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


# ------------------------------------------------------------------------ the fast renderer

_TEXT = st.text(alphabet=st.characters(codec="utf-8"), max_size=20)
_VALUES = st.one_of(
    st.none(),
    st.integers(-(2**40), 2**40),
    st.floats(allow_nan=True, allow_infinity=True),
    _TEXT,
)
_MODELS = st.dictionaries(
    st.from_regex(r"[0-9A-F]{8}", fullmatch=True),
    st.fixed_dictionaries({"vr": st.sampled_from(["CS", "DS", "FD", "PN", "SQ"])}).flatmap(
        lambda attr: (
            st.just(attr)
            | st.fixed_dictionaries(
                {"vr": st.just(attr["vr"]), "Value": st.lists(_VALUES, max_size=3)}
            )
        )
    ),
    max_size=4,
)


@settings(max_examples=200, deadline=None)
@given(
    event_type=st.integers(1, 5),
    iuid=_TEXT,
    calling=_TEXT,
    called=_TEXT,
    sop_class=st.sampled_from([UPS_PUSH, UPS_PUSH_TRIAL]),
    received=st.floats(0, 4e9),
    message_id=st.integers(0, 0xFFFF),
    model=st.none() | _MODELS,
)
def test_fast_json_renderer_equals_the_reference(
    event_type: int,
    iuid: str,
    calling: str,
    called: str,
    sop_class: str,
    received: float,
    message_id: int,
    model: dict[str, Any] | None,
) -> None:
    """The daemon's per-event renderer writes exactly ``json_line(event_json(event))``."""
    render = JsonLineRenderer()
    event = UPSEvent(
        event_type,
        iuid,
        sop_class,
        calling,
        called,
        received,
        None,
        message_id,
        dataset_json=model,
    )
    for _ in range(2):  # the second time from its caches
        assert render(event) == json_line(event_json(event))


def test_text_line_from_the_scanner_model_matches_the_decoded_one() -> None:
    """The daemon's text lines come from the scanner's model (no pydicom per event);
    they read as the lines made from the decoded data set do."""
    cancel = Dataset()
    cancel.RequestingAE = "WS 1"
    cancel.ReasonForCancellation = 'bad\nline "x"'
    progress = Dataset()
    item = Dataset()
    item.ProcedureStepProgress = "50"
    item.ProcedureStepProgressDescription = "half way"
    progress.ProcedureStepProgressInformationSequence = [item]
    state = Dataset()
    state.ProcedureStepState = "IN PROGRESS"
    state.InputReadinessState = "READY"
    for event_type, ds in ((2, cancel), (3, progress), (1, state)):
        decoded = _event(event_type, ds)
        assert decoded.raw_dataset is not None
        model = dataset_json(decoded.raw_dataset.raw, IVR)
        scanned = dataclasses.replace(decoded, dataset_json=model)
        assert format_event_line(scanned) == format_event_line(decoded)
