"""The ``-L`` listener as a long-running process: output, signals, counts and workers.

This is what ``dcmups -L aet[@host]:port`` runs (and ``dcmups subscribe ... -L``,
which subscribes once the port is bound and unsubscribes on the way out). It sits on
:class:`ups.services.listener.EventListener` with :class:`~ups.cli.render.LineBatch`
as its batch consumer, so every event is written before its N-EVENT-REPORT-RSP is: a
Success the sender saw means the line is in the output. A read's lines go out in one
``write`` (under a lock shared by the workers when there are several), so lines from
concurrent processes never interleave and a line is never half-written.

Output (:mod:`ups.cli.render`): one readable line per event (default), one JSON
object per line (``--json``: ``op`` = ``"event"``, the event fields and the Event
Information in the PS3.18 F.2 DICOM JSON model), or only periodic counts (``--quiet``).
What the listener accepts and holds is one ``ups.ListenerSettings``.

``--nats URL --subject S`` (:mod:`ups.cli.sinks`) publishes the events to NATS
JetStream instead: the consumer is the library's :class:`~ups.services.sinks.NatsSink`,
each read's events are answered once JetStream acknowledged them (0213 while it cannot),
and nothing is written per event (``--quiet`` still prints the counts; ``--json`` changes
only their form, the payload is always the ``--json`` line). The sink connects before the
port is bound: an unreachable broker exits 3.

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
import os
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

from ups.cli.configure import listen_address, listener_settings
from ups.cli.exits import Exit, UsageError
from ups.cli.output import json_line, log_to_stderr
from ups.cli.render import JsonLineRenderer, LineBatch, LineWriter, format_event_line, timestamp
from ups.cli.sinks import NatsTarget, nats_target, sink_lines_to_stderr
from ups.net.errors import NetError
from ups.net.loop import run as run_loop
from ups.services.events import UPSEvent
from ups.services.listener import EventListener
from ups.services.settings import ListenerSettings
from ups.services.sinks import NatsSink, SinkConnectError

__all__ = [
    "ListenerOptions",
    "listen_options",
    "run_listen",
    "run_listener",
    "run_workers",
    "say",
]

OutputMode = Literal["text", "json", "quiet"]
Hook = Callable[[], Awaitable[int | None]]


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
    nats: NatsTarget | None = None
    """Publish to NATS JetStream instead of writing events to ``out`` (``--nats``)."""
    worker: int | None = None
    lock_fd: int | None = None
    lifeline_fd: int | None = None
    ready_fd: int | None = None


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
            return json_line({"op": "stats", "time": timestamp(time.time()), **fields})
        words = " ".join(f"{key}={value}" for key, value in fields.items())
        return f"{timestamp(time.time())} stats {words}"


# ------------------------------------------------------------------------ signals


SIGNALS = (signal.SIGINT, signal.SIGTERM)


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

    for sig in SIGNALS:
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


def say(line: str) -> None:
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

    Returns the exit status (:class:`~ups.cli.exits.Exit`): 0 after a clean stop, 3 if
    the port cannot be bound, 1 if the output went away or a hook failed, or a non-zero
    ``after_start`` result.
    """
    loop = asyncio.get_running_loop()
    stop = stop or asyncio.Event()
    writer = LineWriter(out, opts.lock_fd)
    output_error: list[OSError] = []
    try:
        sink = await _open_sink(opts)
    except SinkConnectError as exc:
        say(f"dcmups: {exc}")
        return Exit.NETWORK
    listener = _make_listener(opts, writer, stop, output_error, sink)
    try:
        await listener.start()
    except NetError as exc:
        say(f"dcmups: {exc}")
        if sink is not None:
            await sink.close()
        return Exit.NETWORK
    installed = _install_signals(loop, stop)
    if opts.lifeline_fd is not None:
        loop.add_reader(opts.lifeline_fd, stop.set)  # readable means EOF: parent gone
    say(_describe(opts, listener.port))
    if opts.ready_fd is not None:
        os.write(opts.ready_fd, b"r")
        os.close(opts.ready_fd)
    if ready is not None:
        ready(listener)
    counter = _Counter(listener, opts)
    as_json = opts.output == "json"
    stats_task = (
        loop.create_task(_report_stats(counter, writer, opts, as_json))
        if opts.output == "quiet"
        else None
    )
    rc: int = Exit.OK
    try:
        if opts.after_start is not None:
            rc = await opts.after_start() or Exit.OK
        if rc == Exit.OK:
            await stop.wait()
    finally:
        if stats_task is not None:
            stats_task.cancel()
        if opts.before_stop is not None:
            rc = await run_hook(opts.before_stop, "unsubscribe") or rc
        listener.stop(opts.grace)
        await listener.wait_closed()
        if sink is not None:
            await sink.close()  # after the listener: its last commits were answered
        if opts.lifeline_fd is not None:
            loop.remove_reader(opts.lifeline_fd)
        if opts.output == "quiet":
            with contextlib.suppress(OSError):
                writer.write(counter.line(as_json=as_json))
        writer.flush()
        _restore_signals(installed)
    if output_error:
        say(f"dcmups: output closed: {output_error[0]}")
        rc = rc or Exit.FAILURE_STATUS
    return rc


async def _open_sink(opts: ListenerOptions) -> NatsSink | None:
    """``--nats``: the JetStream sink, connected and its stream ready, before we listen."""
    if opts.nats is None:
        return None
    sink_lines_to_stderr(say, opts.worker)
    return await opts.nats.sink().start()


def _make_listener(
    opts: ListenerOptions,
    writer: LineWriter,
    stop: asyncio.Event,
    output_error: list[OSError],
    sink: NatsSink | None = None,
) -> EventListener:
    """The listener with its consumer: the NATS sink (``--nats``; nothing per event on
    ``out``), the counters alone (quiet), else the line batch."""
    address = (opts.host, opts.port)
    if sink is not None:
        return EventListener(address, opts.ae_title, opts.settings, consumer=sink, with_json=True)
    if opts.output == "quiet":
        return EventListener((opts.host, opts.port), opts.ae_title, opts.settings, callback=_ignore)
    render = JsonLineRenderer() if opts.output == "json" else format_event_line
    batch = LineBatch(writer, render)

    def output_failed(exc: OSError) -> None:
        if not output_error:
            output_error.append(exc)
            stop.set()

    batch.on_error = output_failed
    return EventListener(
        (opts.host, opts.port), opts.ae_title, opts.settings, consumer=batch, with_json=True
    )


async def _report_stats(
    counter: _Counter, writer: LineWriter, opts: ListenerOptions, as_json: bool
) -> None:
    while True:
        await asyncio.sleep(opts.stats_interval)  # allowed: the operator's periodic count
        writer.write(counter.line(as_json=as_json))


async def run_hook(hook: Hook, what: str) -> int:
    try:
        return await hook() or Exit.OK
    except Exception as exc:
        say(f"dcmups: {what} failed: {exc}")
        return Exit.FAILURE_STATUS


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
    code: int = Exit.FAILURE_STATUS
    try:
        os.setpgid(0, 0)
        code = run_loop(run_listener(opts, out))
    except BaseException as exc:  # noqa: BLE001 - a child must always reach _exit
        say(f"dcmups: worker {opts.worker}: {exc!r}")
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
            say("dcmups: workers did not start")
            _signal_all(children, signal.SIGKILL)
            _reap(children)
            return Exit.NETWORK
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
        for sig in SIGNALS:
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

    for sig in SIGNALS:
        loop.add_signal_handler(sig, first, int(sig))
    loop.add_signal_handler(signal.SIGCHLD, child_exited)
    child_exited()
    rc: int = Exit.OK
    try:
        if opts.after_start is not None:
            rc = await run_hook(opts.after_start, "operation")
        if rc == Exit.OK:
            await stop.wait()
        if opts.before_stop is not None:
            rc = await run_hook(opts.before_stop, "unsubscribe") or rc
    finally:
        _signal_all([pid for pid in children if pid not in exited], signal.SIGTERM)
        child_exited()
        await all_exited.wait()  # SIGCHLD fills ``exited``
        for sig in (*SIGNALS, signal.SIGCHLD):
            loop.remove_signal_handler(sig)
    failures = [code for code in exited.values() if code != 0]
    return rc or (failures[0] if failures else Exit.OK)


# ------------------------------------------------------------------------ entry points


def listen_options(
    args: argparse.Namespace,
    then: Callable[[], Awaitable[int]] | None = None,
    cleanup: Callable[[], Awaitable[int]] | None = None,
) -> ListenerOptions:
    """What ``dcmups -L`` runs, from its parsed command line.

    ``then`` is the operation given with ``-L`` (run once the port is bound; the
    listener keeps running after it succeeds). ``cleanup`` runs on the way out, while
    still listening, when ``then`` was a ``subscribe`` that succeeded (the unsubscribe).
    """
    aet, host, port = listen_address(args)
    if args.stats_interval <= 0:
        raise UsageError("--stats-interval must be greater than 0")
    if args.grace < 0:
        raise UsageError("--grace must be at least 0")
    subscribed = False

    async def after_start() -> int:
        nonlocal subscribed
        assert then is not None
        rc = await then()
        subscribed = rc == Exit.OK and args.operation == "subscribe"
        return rc

    async def before_stop() -> int:
        if not subscribed or cleanup is None:
            return Exit.OK
        return await cleanup()

    output: OutputMode = "quiet" if args.quiet else "json" if args.json else "text"
    return ListenerOptions(
        ae_title=aet,
        host=host,
        port=port,
        output=output,
        settings=listener_settings(args),
        grace=args.grace,
        stats_interval=args.stats_interval,
        after_start=after_start if then is not None else None,
        before_stop=before_stop if then is not None else None,
        nats=nats_target(args),
    )


def run_listen(
    args: argparse.Namespace,
    out: TextIO,
    then: Callable[[], Awaitable[int]] | None = None,
    cleanup: Callable[[], Awaitable[int]] | None = None,
) -> int:
    """``dcmups -L``: the options, then ``--workers`` listener processes until a signal."""
    if args.workers < 1:
        raise UsageError("--workers must be at least 1")
    opts = listen_options(args, then, cleanup)
    if args.verbose:
        log_to_stderr()
    return run_workers(args.workers, opts, out)
