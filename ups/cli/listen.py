"""The ``-L`` listener as a long-running process: output, signals, counts and workers.

This is what ``dcmups -L aet[@host]:port`` runs (and ``dcmups subscribe ... -L``,
which subscribes once the port is bound and unsubscribes on the way out). It sits on
:func:`ups.services.listener.serve_events` with a plain-function consumer, so every
event is written before its N-EVENT-REPORT-RSP is: a Success the sender saw means
the line is in the output. Each line goes out in one ``write`` (under a lock shared
by the workers when there are several), so lines from concurrent processes never
interleave and a line is never half-written.

Output: one readable line per event (default), one JSON object per line
(``--json``: ``op`` = ``"event"``, the event fields and the Event Information in the
PS3.18 F.2 DICOM JSON model), or only periodic counts (``--quiet``).

Signals: the first SIGINT/SIGTERM stops gracefully — stop accepting, stop reading,
answer what was read, release the associations, flush, exit 0. A second one ends the
process at once (exit 128 + signal number) without answering anything: the events
that never got a response were not acknowledged, so nothing acknowledged is lost.

``--workers N`` forks N listeners bound to the same port with SO_REUSEPORT, so the
kernel spreads associations over N processes (and cores). The parent forwards the
signals and runs the subscribe/unsubscribe steps; each child is tied to it by a
pipe and stops when the parent goes away.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fcntl
import json
import os
import re
import select
import signal
import socket
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from types import FrameType
from typing import Any, Literal, TextIO

from pydicom.datadict import tag_for_keyword
from pydicom.dataset import Dataset

from ups.cli.output import json_line, to_json_model
from ups.dimse.scanner import DEFAULT_SCAN_LIMITS
from ups.net.config import AssociationConfig
from ups.net.errors import NetError
from ups.net.loop import run as run_loop
from ups.pdu.negotiation import IdentityVerifier
from ups.services.access import calling_ae_set, load_users
from ups.services.address import parse_listen
from ups.services.errors import ConfigError
from ups.services.events import UPSEvent
from ups.services.listener import EventListener
from ups.services.settings import DEFAULT_WINDOW, ListenerSettings

__all__ = [
    "JsonLineRenderer",
    "ListenerOptions",
    "event_json",
    "format_event_line",
    "main",
    "run_from_cli",
    "run_listener",
    "run_workers",
]

OutputMode = Literal["text", "json", "quiet"]
Hook = Callable[[], Awaitable[int | None]]

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_NETWORK = 2


@dataclass(frozen=True)
class ListenerOptions:
    """Everything ``run_listener`` needs; the CLI builds one from its options."""

    ae_title: str
    host: str = ""
    port: int = 104
    output: OutputMode = "text"
    settings: ListenerSettings = field(default_factory=ListenerSettings)
    """What the listener accepts and holds (the library's own settings object)."""
    grace: float = 5.0
    """Seconds the associations get to release on shutdown before they are aborted."""
    stats_interval: float = 10.0
    """Quiet mode: seconds between two count lines."""
    after_start: Hook | None = None
    """Run once the port is bound (subscribe); a non-zero result ends the run with it."""
    before_stop: Hook | None = None
    """Run on the way out while still listening (unsubscribe)."""
    worker: int | None = None
    lock_fd: int | None = None
    lifeline_fd: int | None = None
    ready_fd: int | None = None


# ------------------------------------------------------------------------ formatting

_SAFE = re.compile(r"[!#-~\u00a0-\uffff]*")  # printable, no space, no quote
_SUMMARY: dict[int, tuple[str, ...]] = {
    1: ("ProcedureStepState", "InputReadinessState", "ReasonForCancellation"),
    2: ("RequestingAE", "ReasonForCancellation", "ContactDisplayName", "ContactURI"),
    3: ("ProcedureStepProgress", "ProcedureStepProgressDescription"),
    4: ("SCPStatus", "SubscriptionListStatus", "UnifiedProcedureStepListStatus"),
    5: ("HumanPerformerOrganization", "CodeMeaning", "CodeValue"),
}
_NESTED = (
    "ProcedureStepProgressInformationSequence",
    "HumanPerformerCodeSequence",
    "ScheduledStationNameCodeSequence",
)


def _quote(text: str) -> str:
    if text and _SAFE.fullmatch(text) and "=" not in text:
        return text
    return json.dumps(text, ensure_ascii=False)


_stamp: list[tuple[int, str]] = [(-1, ""), (-1, "")]  # (second, text), (millisecond, text)


def _timestamp(t: float) -> str:
    """ISO 8601 UTC with milliseconds. A busy listener stamps dozens of events within one
    millisecond: each second is formatted once, each millisecond's text made once."""
    millis = int(t * 1000)
    cached = _stamp[1]
    if cached[0] == millis:
        return cached[1]
    second = millis // 1000
    seconds = _stamp[0]
    if seconds[0] != second:
        seconds = _stamp[0] = (second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)))
    text = f"{seconds[1]}.{millis % 1000:03d}Z"
    _stamp[1] = (millis, text)
    return text


def _find(ds: Dataset, keyword: str) -> object:
    if keyword in ds:
        return ds.data_element(keyword).value  # type: ignore[union-attr]
    for seq in _NESTED:
        items = ds.get(seq)
        if items and keyword in items[0]:
            return items[0].data_element(keyword).value
    return None


def _model_value(attribute: dict[str, Any] | None) -> object:
    """A JSON model attribute's value as the text line shows it (as pydicom's ``str``)."""
    if not attribute or "Value" not in attribute:
        return None
    values = [_model_text(value) for value in attribute["Value"]]
    return values[0] if len(values) == 1 else "\\".join(str(v) for v in values)


def _model_text(value: object) -> object:
    """A JSON value as text: a PN's alphabetic group; DS "50" (50.0 in JSON) as 50."""
    if isinstance(value, dict):
        return value.get("Alphabetic", "")
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _find_in_model(model: dict[str, Any], keyword: str) -> object:
    tag = _MODEL_KEYS[keyword]
    if tag in model:
        return _model_value(model[tag])
    for seq in _NESTED:
        items = model.get(_MODEL_KEYS[seq], {}).get("Value")
        if items and isinstance(items[0], dict) and tag in items[0]:
            return _model_value(items[0][tag])
    return None


_MODEL_KEYS: dict[str, str] = {
    keyword: f"{tag_for_keyword(keyword):08X}"
    for keyword in {*(k for keys in _SUMMARY.values() for k in keys), *_NESTED}
}


def format_event_line(event: UPSEvent) -> str:
    """One readable line: time, event name, UPS, sender and the attributes that matter.

    Every value is quoted when it holds a space, ``=`` or a control character, so the
    line splits back into ``key=value`` words and never spans two lines. The values
    come from the scanner's JSON model when the listener made one (no pydicom on the
    daemon's per-event path), else from the decoded data set.
    """
    parts = [
        _timestamp(event.received),
        event.name,
        f"iuid={_quote(event.iuid)}",
        f"from={_quote(event.calling_aet)}",
    ]
    if event.family == "trial":
        parts.append("trial")
    if event.has_dataset:
        model = event.dataset_json
        ds = event.dataset if model is None else None
        for keyword in _SUMMARY.get(event.event_type_id, ()):
            value = _find(ds, keyword) if ds is not None else _find_in_model(model or {}, keyword)
            if value is not None and value != "":
                parts.append(f"{keyword}={_quote(str(value))}")
    return " ".join(parts)


def event_json(event: UPSEvent) -> dict[str, Any]:
    """The ``--json`` object of one event; ``dataset`` is the PS3.18 F.2 JSON model."""
    return {
        "op": "event",
        "event_type": event.event_type_id,
        "event_name": event.name,
        "iuid": event.iuid,
        "sop_class_uid": event.sop_class_uid,
        "family": event.family,
        "calling_aet": event.calling_aet,
        "called_aet": event.called_aet,
        "received": _timestamp(event.received),
        "message_id": event.message_id,
        "dataset": _dataset_model(event),
    }


def _dataset_model(event: UPSEvent) -> dict[str, Any]:
    if event.dataset_json is not None:
        return event.dataset_json
    return to_json_model(event.dataset) if event.has_dataset else {}


_quote_json = json.encoder.encode_basestring


def _no_default(value: object) -> Any:
    raise TypeError(f"not JSON: {type(value).__name__}")


def _model_encoder() -> Callable[[dict[str, Any]], str]:
    """json's C encoder made once, not per call as ``JSONEncoder.encode`` makes it:
    compact, UTF-8 kept, NaN refused (the caller falls back to ``json_line``)."""
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:  # a Python without the C accelerator
        return json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode
    iterencode = make(None, _no_default, _quote_json, None, ":", ",", False, False, False)

    def encode(model: dict[str, Any]) -> str:
        return "".join(iterencode(model, 0))

    return encode


_encode_model = _model_encoder()


class JsonLineRenderer:
    """``json_line(event_json(event))``, built faster: the daemon's per-event cost.

    What repeats from event to event (event type and name, SOP class, family, AE
    titles) is rendered once per combination; the rest is joined around the one
    ``json`` call that encodes the data set model. The output is byte-identical to
    ``json_line(event_json(event))`` (a test holds it to that), which stays the
    reference and the fallback for values JSON cannot carry (NaN, Infinity).
    """

    __slots__ = ("_heads", "_middles")

    def __init__(self) -> None:
        self._heads: dict[int, str] = {}
        self._middles: dict[tuple[str, str, str, str], str] = {}

    def __call__(self, event: UPSEvent) -> str:
        head = self._heads.get(event.event_type_id)
        if head is None:
            head = self._heads[event.event_type_id] = (
                f'{{"op":"event","event_type":{event.event_type_id:d},'
                f'"event_name":{_quote_json(event.name)},"iuid":'
            )
        key = (
            event.sop_class_uid,
            event.context_sop_class_uid,
            event.calling_aet,
            event.called_aet,
        )
        middle = self._middles.get(key)
        if middle is None:
            if len(self._middles) > 1024:
                self._middles.clear()
            middle = self._middles[key] = (
                f',"sop_class_uid":{_quote_json(event.sop_class_uid)},'
                f'"family":"{event.family}","calling_aet":{_quote_json(event.calling_aet)},'
                f'"called_aet":{_quote_json(event.called_aet)},"received":"'
            )
        try:
            model = _encode_model(_dataset_model(event))
        except (ValueError, TypeError):  # NaN, Infinity or an odd type: the reference path
            return json_line(event_json(event))
        line = (
            f"{head}{_quote_json(event.iuid)}{middle}{_timestamp(event.received)}"
            f'","message_id":{event.message_id:d},"dataset":{model}}}'
        )
        if "\u2028" in line or "\u2029" in line:
            line = line.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")
        return line


# ------------------------------------------------------------------------ output


class _LineWriter:
    """Writes whole lines: one ``os.write`` per line on a real file, else write+flush."""

    def __init__(self, out: TextIO, lock_fd: int | None = None) -> None:
        self._out = out
        self._lock_fd = lock_fd
        self._fd: int | None = None
        try:
            out.flush()
            self._fd = out.fileno()
        except (AttributeError, OSError, ValueError):
            self._fd = None

    def write(self, line: str) -> None:
        if self._fd is None:
            self._out.write(line + "\n")
            self._out.flush()
            return
        data = memoryview((line + "\n").encode("utf-8", "backslashreplace"))
        lock = self._lock_fd
        if lock is not None:
            fcntl.lockf(lock, fcntl.LOCK_EX)
        try:
            while data:
                written = os.write(self._fd, data)
                data = data[written:]
        finally:
            if lock is not None:
                fcntl.lockf(lock, fcntl.LOCK_UN)

    def flush(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            self._out.flush()


class _LineBatch:
    """The daemon's consumer: render each event as it arrives, write a read's lines at once.

    ``commit`` is one ``os.write`` (one lock, with workers) for every event of a read;
    the listener answers them Success only after it returned (DESIGN.md: writes are
    batched per read).
    """

    def __init__(self, writer: _LineWriter, render: Callable[[UPSEvent], str]) -> None:
        self._writer = writer
        self._render = render
        self._lines: list[str] = []
        self.on_error: Callable[[OSError], None] | None = None

    def add(self, event: UPSEvent) -> None:
        self._lines.append(self._render(event))

    def commit(self) -> None:
        lines, self._lines = self._lines, []
        if not lines:
            return
        try:
            self._writer.write("\n".join(lines))
        except OSError as exc:
            if self.on_error is not None:
                self.on_error(exc)
            raise


def _ignore(event: UPSEvent) -> None:
    """Quiet mode's consumer: the listener's counters are the output."""


class _Counter:
    """Quiet mode's periodic line: totals and the rate since the previous line."""

    def __init__(self, listener: EventListener, opts: ListenerOptions) -> None:
        self._listener = listener
        self._worker = opts.worker
        self._last_events = 0
        self._last_time = time.monotonic()

    def line(self, *, as_json: bool) -> str:
        stats = self._listener.stats
        now = time.monotonic()
        elapsed = max(now - self._last_time, 1e-9)
        rate = (stats.events - self._last_events) / elapsed
        self._last_events, self._last_time = stats.events, now
        fields: dict[str, Any] = {
            "events": stats.events,
            "events_per_s": round(rate, 1),
            "associations_open": stats.associations_open,
            "associations_total": stats.associations_total,
            "failed": stats.failed,
            "refused": stats.refused,
            "dropped": stats.dropped,
        }
        if self._worker is not None:
            fields["worker"] = self._worker
        if as_json:
            return json_line({"op": "stats", "time": _timestamp(time.time()), **fields})
        words = " ".join(f"{key}={value}" for key, value in fields.items())
        return f"{_timestamp(time.time())} stats {words}"


# ------------------------------------------------------------------------ signals


_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def _install_signals(loop: asyncio.AbstractEventLoop, stop: asyncio.Event) -> list[tuple[int, Any]]:
    """First SIGINT/SIGTERM: graceful stop; any further one ends the process at once.

    Plain ``signal.signal`` handlers, not the loop's: Python runs them between
    bytecodes even while a ``write`` to a full pipe blocks the loop (PEP 475 retries
    the write afterwards), so the abort works precisely when the output is stuck.
    Returns what to restore: each signal with the handler it had before.
    """
    installed: list[tuple[int, Any]] = []
    signalled = False

    def handler(signum: int, frame: FrameType | None) -> None:
        nonlocal signalled
        if signalled:
            os._exit(128 + signum)  # unanswered events were never acknowledged
        signalled = True
        loop.call_soon_threadsafe(stop.set)

    for sig in _SIGNALS:
        try:
            previous = signal.signal(sig, handler)
        except ValueError:
            continue  # not the main thread: the caller stops us through ``stop``
        installed.append((int(sig), previous))
    return installed


def _restore_signals(installed: list[tuple[int, Any]]) -> None:
    for sig, previous in installed:
        signal.signal(sig, previous if previous is not None else signal.SIG_DFL)


# ------------------------------------------------------------------------ the run


def _say(line: str) -> None:
    """One line on stderr in one write: workers share the stream, lines must not mix."""
    data = (line + "\n").encode("utf-8", "replace")
    try:
        os.write(2, data)
    except OSError:
        pass


def _describe(opts: ListenerOptions, port: int) -> str:
    host = opts.host or "*"
    if ":" in host:
        host = f"[{host}]"
    who = f"worker {opts.worker} " if opts.worker is not None else ""
    return f"dcmups: {who}listening as {opts.ae_title} on {host}:{port}"


async def run_listener(
    opts: ListenerOptions,
    out: TextIO,
    *,
    stop: asyncio.Event | None = None,
    ready: Callable[[EventListener], None] | None = None,
) -> int:
    """Listen until SIGINT/SIGTERM (or ``stop``), writing each event to ``out``.

    Returns the exit status: 0 after a clean stop, 2 if the port cannot be bound, 1
    if the output went away or a hook failed, or a non-zero ``after_start`` result.
    """
    loop = asyncio.get_running_loop()
    stop = stop or asyncio.Event()
    writer = _LineWriter(out, opts.lock_fd)
    output_error: list[OSError] = []
    as_json = opts.output == "json"

    render = JsonLineRenderer() if as_json else format_event_line
    batch = _LineBatch(writer, render)

    def output_failed(exc: OSError) -> None:
        if not output_error:
            output_error.append(exc)
            stop.set()

    batch.on_error = output_failed
    listener = EventListener(
        (opts.host, opts.port),
        opts.ae_title,
        opts.settings,
        callback=_ignore if opts.output == "quiet" else None,
        consumer=None if opts.output == "quiet" else batch,
        with_json=opts.output != "quiet",
    )
    try:
        await listener.start()
    except NetError as exc:
        _say(f"dcmups: {exc}")
        return EXIT_NETWORK
    installed = _install_signals(loop, stop)
    if opts.lifeline_fd is not None:
        loop.add_reader(opts.lifeline_fd, stop.set)  # readable means EOF: parent gone
    _say(_describe(opts, listener.port))
    if opts.ready_fd is not None:
        os.write(opts.ready_fd, b"r")
        os.close(opts.ready_fd)
    if ready is not None:
        ready(listener)
    counter = _Counter(listener, opts)
    stats_task = (
        loop.create_task(_report_stats(counter, writer, opts, as_json))
        if opts.output == "quiet"
        else None
    )
    rc = EXIT_OK
    try:
        if opts.after_start is not None:
            rc = await opts.after_start() or EXIT_OK
        if rc == EXIT_OK:
            await stop.wait()
    finally:
        if stats_task is not None:
            stats_task.cancel()
        if opts.before_stop is not None:
            rc = await _run_hook(opts.before_stop, "unsubscribe") or rc
        listener.stop(opts.grace)
        await listener.wait_closed()
        if opts.lifeline_fd is not None:
            loop.remove_reader(opts.lifeline_fd)
        if opts.output == "quiet":
            with contextlib.suppress(OSError):
                writer.write(counter.line(as_json=as_json))
        writer.flush()
        _restore_signals(installed)
    if output_error:
        _say(f"dcmups: output closed: {output_error[0]}")
        rc = rc or EXIT_FAILURE
    return rc


async def _report_stats(
    counter: _Counter, writer: _LineWriter, opts: ListenerOptions, as_json: bool
) -> None:
    while True:
        await asyncio.sleep(opts.stats_interval)  # allowed: the operator's periodic count
        writer.write(counter.line(as_json=as_json))


async def _run_hook(hook: Hook, what: str) -> int:
    try:
        return await hook() or EXIT_OK
    except Exception as exc:
        _say(f"dcmups: {what} failed: {exc}")
        return EXIT_FAILURE


# ------------------------------------------------------------------------ workers


def _reserve_port(host: str, port: int) -> socket.socket:
    """Bind (without listening) with SO_REUSEPORT so port 0 becomes one shared port."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host or ("::" if family == socket.AF_INET6 else "0.0.0.0"), port))
    return sock


def _child(opts: ListenerOptions, out: TextIO) -> None:
    """A forked worker: its own process group (signals come from the parent)."""
    code = EXIT_FAILURE
    try:
        os.setpgid(0, 0)
        code = run_loop(run_listener(opts, out))
    except BaseException as exc:  # noqa: BLE001 - a child must always reach _exit
        _say(f"dcmups: worker {opts.worker}: {exc!r}")
    finally:
        with contextlib.suppress(Exception):
            out.flush()
            sys.stderr.flush()
        os._exit(code)


def run_workers(
    n: int,
    opts: ListenerOptions,
    out: TextIO | None = None,
    *,
    ready_timeout: float = 30.0,
) -> int:
    """Run ``n`` listener processes on one port (SO_REUSEPORT); 1 runs in-process.

    ``opts.after_start``/``before_stop`` run once, in the parent, after every worker
    listens and before they are told to stop. Returns 0 when every worker stopped
    cleanly, else the first non-zero status.
    """
    out = out or sys.stdout
    if n <= 1:
        return run_loop(run_listener(opts, out))
    out.flush()
    sys.stderr.flush()
    out.fileno()  # workers write to the file descriptor: a real file is required
    reserved = _reserve_port(opts.host, opts.port)
    port = int(reserved.getsockname()[1])
    lock_file = tempfile.TemporaryFile()  # lockf on it serialises the workers' lines
    lifeline_r, lifeline_w = os.pipe()
    ready_r, ready_w = os.pipe()
    children: list[int] = []
    try:
        for index in range(n):
            pid = os.fork()
            if pid == 0:
                os.close(lifeline_w)
                os.close(ready_r)
                reserved.close()
                child_opts = replace(
                    opts,
                    port=port,
                    settings=replace(opts.settings, reuse_port=True),
                    worker=index,
                    lock_fd=lock_file.fileno(),
                    lifeline_fd=lifeline_r,
                    ready_fd=ready_w,
                    after_start=None,
                    before_stop=None,
                )
                _child(child_opts, out)
            children.append(pid)
        os.close(ready_w)
        os.close(lifeline_r)
        if not _wait_ready(ready_r, n, ready_timeout):
            _say("dcmups: workers did not start")
            _signal_all(children, signal.SIGKILL)
            _reap(children)
            return EXIT_NETWORK
        # The supervisor watches SIGCHLD, which uvloop keeps for itself: asyncio's loop.
        return asyncio.run(_supervise(children, opts))
    finally:
        os.close(ready_r)
        os.close(lifeline_w)
        lock_file.close()
        reserved.close()


def _wait_ready(fd: int, n: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    got = 0
    while got < n:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            return False
        chunk = os.read(fd, n)
        if not chunk:
            return False
        got += len(chunk)
    return True


def _signal_all(children: Sequence[int], sig: int) -> None:
    for pid in children:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


def _reap(children: Sequence[int]) -> list[int]:
    codes = []
    for pid in children:
        _, status = os.waitpid(pid, 0)
        codes.append(os.waitstatus_to_exitcode(status))
    return codes


async def _supervise(children: list[int], opts: ListenerOptions) -> int:
    """The parent: hooks, signal forwarding, and the workers' exit statuses."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    all_exited = asyncio.Event()
    exited: dict[int, int] = {}

    def forward_again(signum: int) -> None:
        _signal_all(children, signal.SIGTERM)  # second signal: the workers abort

    def first(signum: int) -> None:
        stop.set()
        for sig in _SIGNALS:
            loop.add_signal_handler(sig, forward_again, int(sig))

    def child_exited() -> None:
        for pid in children:
            if pid in exited:
                continue
            with contextlib.suppress(ChildProcessError):
                done, status = os.waitpid(pid, os.WNOHANG)
                if done:
                    exited[pid] = os.waitstatus_to_exitcode(status)
        if exited:
            stop.set()
        if len(exited) == len(children):
            all_exited.set()

    for sig in _SIGNALS:
        loop.add_signal_handler(sig, first, int(sig))
    loop.add_signal_handler(signal.SIGCHLD, child_exited)
    child_exited()
    rc = EXIT_OK
    try:
        if opts.after_start is not None:
            rc = await _run_hook(opts.after_start, "operation")
        if rc == EXIT_OK:
            await stop.wait()
        if opts.before_stop is not None:
            rc = await _run_hook(opts.before_stop, "unsubscribe") or rc
    finally:
        _signal_all([pid for pid in children if pid not in exited], signal.SIGTERM)
        child_exited()
        await all_exited.wait()  # SIGCHLD fills ``exited``
        for sig in (*_SIGNALS, signal.SIGCHLD):
            loop.remove_signal_handler(sig)
    failures = [code for code in exited.values() if code != 0]
    return rc or (failures[0] if failures else EXIT_OK)


# ------------------------------------------------------------------------ entry points


def run_from_cli(
    args: argparse.Namespace,
    out: TextIO,
    config: AssociationConfig,
    then: Callable[[], Awaitable[int]] | None = None,
    cleanup: Callable[[], Awaitable[int]] | None = None,
) -> int:
    """What ``dcmups -L`` runs: options from the parsed command line, then the run.

    ``then`` is the operation given with ``-L`` (run once the port is bound; the
    listener keeps running after it succeeds). ``cleanup`` runs on the way out, while
    still listening; when it is missing and the operation was ``subscribe``, a plain
    ``unsubscribe`` of the same ``-aet``/``-iuid`` is sent.
    """
    try:
        aet, host, port = parse_listen(args.L, what="-L")
        calling, verifier = access_from_args(args)
    except (ValueError, ConfigError) as exc:
        _say(f"dcmups: {exc}")
        return 64
    output: OutputMode = (
        "quiet"
        if getattr(args, "quiet", False)
        else "json"
        if getattr(args, "json", False)
        else "text"
    )
    subscribed = False

    async def after_start() -> int:
        nonlocal subscribed
        assert then is not None
        rc = await then()
        subscribed = rc == EXIT_OK and getattr(args, "operation", None) == "subscribe"
        return rc

    async def before_stop() -> int:
        if not subscribed:
            return EXIT_OK
        if cleanup is not None:
            return await cleanup()
        return await _unsubscribe(args, aet, config)

    opts = ListenerOptions(
        ae_title=aet,
        host=host,
        port=port,
        output=output,
        settings=ListenerSettings(
            config=config,
            window=int(getattr(args, "window", DEFAULT_WINDOW)),
            calling_ae_titles=calling,
            verify_identity=verifier,
            scan_limits=getattr(args, "limits", DEFAULT_SCAN_LIMITS),
        ),
        after_start=after_start if then is not None else None,
        before_stop=before_stop if then is not None else None,
    )
    return run_workers(int(getattr(args, "workers", 1) or 1), opts, out)


def access_from_args(
    args: argparse.Namespace,
) -> tuple[frozenset[str] | None, IdentityVerifier | None]:
    """``--accept-aet`` (repeatable) and ``--users FILE`` as policy settings."""
    calling = calling_ae_set(getattr(args, "accept_aet", None))
    users = getattr(args, "users", None)
    return calling, load_users(users) if users else None


async def _unsubscribe(args: argparse.Namespace, aet: str, config: AssociationConfig) -> int:
    from ups.services.scu import SCUOptions, connect

    receiving = getattr(args, "aet", None) or aet
    options = SCUOptions(calling_ae_title=aet, config=config)
    async with connect(args.remote, options) as scu:
        result = await scu.unsubscribe(receiving, getattr(args, "iuid", None))
    return EXIT_OK if result.status in (0x0000, 0xB304, 0xB306) else EXIT_FAILURE


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m ups.cli.listen -L AET@host:port [--json|--quiet] [--workers N]``."""
    parser = argparse.ArgumentParser(prog="ups.cli.listen")
    parser.add_argument("-L", required=True, metavar="<aet[@host]:port>")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--quiet", action="store_true")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--window", type=int, default=64)
    parser.add_argument("--buffer", type=int, default=1000)
    parser.add_argument("--stats-interval", type=float, default=10.0)
    parser.add_argument("--grace", type=float, default=5.0)
    parser.add_argument("--any-called-ae", action="store_true")
    parser.add_argument("--accept-aet", action="append", default=[], metavar="AET")
    parser.add_argument("--users", metavar="FILE")
    args = parser.parse_args(argv)
    try:
        aet, host, port = parse_listen(args.L, what="-L")
        calling, verifier = access_from_args(args)
    except (ValueError, ConfigError) as exc:
        parser.error(str(exc))
    output: OutputMode = "quiet" if args.quiet else "json" if args.json else "text"
    opts = ListenerOptions(
        ae_title=aet,
        host=host,
        port=port,
        output=output,
        settings=ListenerSettings(
            window=args.window,
            buffer=args.buffer,
            accept_any_called_ae=args.any_called_ae,
            calling_ae_titles=calling,
            verify_identity=verifier,
        ),
        grace=args.grace,
        stats_interval=args.stats_interval,
    )
    return run_workers(args.workers, opts)


if __name__ == "__main__":
    raise SystemExit(main())
