"""``dcmups bench``: drive echo, find, get or event sending against a remote AE.

For users benchmarking other DICOM systems: C associations, each with up to W
requests in flight (the Asynchronous Operations Window is proposed when W > 1), for
N operations or T seconds in total. The report gives operations per second, latency
percentiles, and failures counted by status code (or by network cause).

Latency is measured per request from just before it is handed to the association to
the moment its final response arrives, on the event loop's monotonic clock.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import sys
import time
from array import array
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import TextIO

from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from ups.cli.attrpath import build_dataset
from ups.cli.checks import check_dataset, check_uid
from ups.cli.configure import scu_options
from ups.cli.exits import Exit, UsageError
from ups.cli.output import json_line
from ups.dimse.datasets import encode_dataset
from ups.dimse.messages import CEchoRQ, CFindRQ, NEventReportRQ, NGetRQ, Request
from ups.dimse.status import StatusCategory, status_info
from ups.dimse.values import quiet_pydicom
from ups.net.association import Association
from ups.net.config import AssociationConfig
from ups.net.errors import NetError
from ups.net.loop import run as run_loop
from ups.net.requestor import build_request, connect
from ups.services.address import parse_remote
from ups.services.uids import (
    DEFAULT_TRANSFER_SYNTAXES,
    FINAL,
    TRIAL,
    VERIFICATION,
)

OPERATIONS = ("echo", "find", "get", "event")


@dataclass(frozen=True, slots=True)
class BenchOptions:
    operation: str
    remote: str
    count: int | None = 1000
    duration: float | None = None
    associations: int = 1
    window: int = 1
    calling_ae_title: str = "DCMUPSBENCH"
    config: AssociationConfig = field(default_factory=AssociationConfig)
    iuid: str | None = None
    """get: the UPS to read; event: the UPS the events are about (a new UID if None)."""
    query: Dataset | None = None
    """find: the identifier (ProcedureStepState=SCHEDULED if None)."""
    transfer_syntaxes: tuple[str, ...] = DEFAULT_TRANSFER_SYNTAXES


@dataclass(slots=True)
class BenchReport:
    operation: str
    completed: int = 0
    elapsed: float = 0.0
    latencies: array[float] = field(default_factory=lambda: array("d"))
    statuses: Counter[int] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)

    @property
    def failures(self) -> int:
        failed = sum(
            n
            for code, n in self.statuses.items()
            if status_info(code).category in (StatusCategory.FAILURE, StatusCategory.CANCEL)
        )
        return failed + sum(self.errors.values())

    @property
    def ops_per_second(self) -> float:
        return self.completed / self.elapsed if self.elapsed > 0 else 0.0

    def percentile(self, p: float) -> float:
        """Latency at percentile ``p`` (0-100) in seconds, nearest-rank."""
        if not self.latencies:
            return math.nan
        ordered = sorted(self.latencies)
        rank = max(0, min(len(ordered) - 1, math.ceil(p / 100 * len(ordered)) - 1))
        return ordered[rank]

    def as_dict(self) -> dict[str, object]:
        ms = 1000.0
        return {
            "op": "bench",
            "operation": self.operation,
            "completed": self.completed,
            "elapsed_s": round(self.elapsed, 6),
            "ops_per_s": round(self.ops_per_second, 1),
            "latency_ms": {
                "p50": round(self.percentile(50) * ms, 3),
                "p90": round(self.percentile(90) * ms, 3),
                "p99": round(self.percentile(99) * ms, 3),
                "max": round(max(self.latencies, default=math.nan) * ms, 3),
            },
            "statuses": {f"{code:04X}": n for code, n in sorted(self.statuses.items())},
            "errors": dict(self.errors),
            "failures": self.failures,
        }

    def render(self) -> str:
        d = self.as_dict()
        lat = d["latency_ms"]
        assert isinstance(lat, dict)
        lines = [
            f"{self.operation}: {self.completed} operations in {self.elapsed:.3f} s"
            f" = {self.ops_per_second:,.1f} ops/s",
            f"latency ms: p50 {lat['p50']}  p90 {lat['p90']}  p99 {lat['p99']}  max {lat['max']}",
        ]
        if self.statuses:
            lines.append(
                "statuses: "
                + ", ".join(f"{code:04X} x{n}" for code, n in sorted(self.statuses.items()))
            )
        if self.errors:
            lines.append("errors: " + ", ".join(f"{why} x{n}" for why, n in self.errors.items()))
        return "\n".join(lines)


def _contexts(operation: str, syntaxes: Sequence[str]) -> list[tuple[str, Sequence[str]]]:
    if operation == "echo":
        return [(VERIFICATION, syntaxes)]
    roles: tuple[str, ...]
    if operation == "find":
        roles = ("pull", "watch", "query")
    elif operation == "get":
        roles = ("push", "pull", "watch")
    else:
        roles = ("event",)
    out: list[tuple[str, Sequence[str]]] = []
    for family in (FINAL, TRIAL):
        for role in roles:
            uid = getattr(family, role)
            if uid is not None:
                out.append((uid, syntaxes))
    return out


class _Budget:
    """Shared between workers: who may start the next operation."""

    def __init__(self, count: int | None, deadline: float | None) -> None:
        self.remaining = count
        self.deadline = deadline

    def take(self, now: float) -> bool:
        if self.deadline is not None and now >= self.deadline:
            return False
        if self.remaining is None:
            return True
        if self.remaining <= 0:
            return False
        self.remaining -= 1
        return True


def _request_factory(
    options: BenchOptions, association: Association
) -> tuple[int, Callable[[int], Request]]:
    """The context to use and a function building the request for a Message ID."""
    negotiated = association.negotiated
    assert negotiated is not None
    for abstract, _ in _contexts(options.operation, options.transfer_syntaxes):
        context = negotiated.context_for(abstract)
        if context is not None:
            break
    else:
        raise NetError(f"{negotiated.remote_ae_title} accepted no context for {options.operation}")
    syntax = context.transfer_syntax
    if options.operation == "echo":
        return context.context_id, lambda mid: CEchoRQ(mid)
    family = FINAL if context.abstract_syntax in FINAL else TRIAL
    if options.operation == "get":
        iuid = options.iuid
        if iuid is None:
            raise NetError("bench get needs -iuid")
        return context.context_id, lambda mid: NGetRQ(mid, family.push, iuid)
    if options.operation == "find":
        query = options.query
        if query is None:
            query = Dataset()
            query.ProcedureStepState = "SCHEDULED"
            query.SOPInstanceUID = ""
        identifier = encode_dataset(query, syntax)
        uid = context.abstract_syntax
        return context.context_id, lambda mid: CFindRQ(mid, uid, dataset=identifier)
    event = Dataset()
    event.ProcedureStepState = "SCHEDULED"
    event.InputReadinessState = "READY"
    info = encode_dataset(event, syntax)
    iuid = options.iuid or str(generate_uid())
    push = family.push
    return context.context_id, lambda mid: NEventReportRQ(mid, push, iuid, 1, info)


async def _one(association: Association, context_id: int, request: Request, find: bool) -> int:
    if find:
        assert isinstance(request, CFindRQ)
        status = 0
        async for match in association.find(request, context_id):
            status = match.status
        return status
    response = await association.request(request, context_id)
    return response.status


async def _worker(
    options: BenchOptions, budget: _Budget, report: BenchReport, progress: list[int]
) -> None:
    called, host, port = parse_remote(options.remote)
    window = max(1, options.window)
    config = options.config
    if window > 1:
        config = replace(config, max_ops_invoked=window)
    rq = build_request(
        called,
        options.calling_ae_title,
        _contexts(options.operation, options.transfer_syntaxes),
        config,
    )
    try:
        association = await connect(host, port, rq, config)
    except NetError as exc:
        report.errors[type(exc).__name__] += 1
        return
    try:
        context_id, make = _request_factory(options, association)
    except NetError as exc:
        report.errors[str(exc)] += 1
        association.abort()
        await association.wait_closed()
        return
    loop = asyncio.get_running_loop()
    find = options.operation == "find"
    latencies = report.latencies
    statuses = report.statuses

    async def lane() -> None:
        while budget.take(loop.time()):
            start = loop.time()
            try:
                status = await _one(
                    association, context_id, make(association.new_message_id()), find
                )
            except NetError as exc:
                report.errors[type(exc).__name__] += 1
                return
            latencies.append(loop.time() - start)
            statuses[status] += 1
            report.completed += 1
            progress[0] += 1

    await asyncio.gather(*(lane() for _ in range(window)))
    try:
        if association.is_established:
            await association.release()
    except NetError:
        pass


async def run(options: BenchOptions, *, progress_to: TextIO | None = None) -> BenchReport:
    """Run the benchmark and return its report (no output except the progress bar)."""
    if options.operation not in OPERATIONS:
        raise ValueError(f"bench operation must be one of {', '.join(OPERATIONS)}")
    loop = asyncio.get_running_loop()
    start = loop.time()
    deadline = None if options.duration is None else start + options.duration
    budget = _Budget(options.count, deadline)
    report = BenchReport(options.operation)
    progress = [0]
    bar: asyncio.TimerHandle | None = None

    def draw() -> None:
        nonlocal bar
        assert progress_to is not None
        done = progress[0]
        total = options.count
        elapsed = loop.time() - start
        rate = done / elapsed if elapsed > 0 else 0.0
        if total:
            width = 30
            filled = int(width * min(done, total) / total)
            text = f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total} {rate:,.0f} ops/s"
        else:
            text = f"\r{done} ops {elapsed:.1f} s {rate:,.0f} ops/s"
        progress_to.write(text)
        progress_to.flush()
        bar = loop.call_later(0.25, draw)

    if progress_to is not None:
        bar = loop.call_later(0.25, draw)
    try:
        await asyncio.gather(
            *(_worker(options, budget, report, progress) for _ in range(options.associations))
        )
    finally:
        if bar is not None:
            bar.cancel()
            assert progress_to is not None
            progress_to.write("\r" + " " * 70 + "\r")
            progress_to.flush()
    report.elapsed = loop.time() - start
    return report


def run_blocking(options: BenchOptions, out: TextIO, *, as_json: bool) -> int:
    """The CLI's entry: run, print, exit 0 if every operation succeeded, 1 otherwise."""
    progress = sys.stderr if sys.stderr.isatty() and not as_json else None
    started = time.perf_counter()
    report = run_loop(run(options, progress_to=progress))
    if report.elapsed <= 0:
        report.elapsed = time.perf_counter() - started
    out.write((json_line(report.as_dict()) if as_json else report.render()) + "\n")
    out.flush()
    if report.completed == 0:
        causes = ", ".join(report.errors) or "nothing was sent"
        print(f"dcmups: bench: no operation completed ({causes})", file=sys.stderr)
        return Exit.NETWORK
    return Exit.OK if report.failures == 0 else Exit.FAILURE_STATUS


def run_from_args(args: argparse.Namespace, out: TextIO) -> int:
    """``dcmups bench <operation> <aet>@<host>:<port> [--ops N | --seconds T] ...``."""
    operation, remote = args.remote, args.target
    if operation not in OPERATIONS or not remote:
        raise UsageError(
            f"bench requires an operation ({', '.join(OPERATIONS)}) and <aet>@<host>:<port>"
        )
    parse_remote(remote)
    if operation == "get" and not args.iuid:
        raise UsageError("bench get requires -iuid")
    check_uid("-iuid", args.iuid)
    for name in ("ops", "assocs", "window"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise UsageError(f"--{name} must be at least 1")
    if args.seconds is not None and args.seconds <= 0:
        raise UsageError("--seconds must be greater than 0")
    options = scu_options(args)
    query = None
    if args.q or args.r:
        with quiet_pydicom():
            query = check_dataset(build_dataset(args.q, args.r), "-q", "find")
    bench = BenchOptions(
        operation=operation,
        remote=remote,
        count=args.ops if args.ops is not None or args.seconds is None else 1000,
        duration=args.seconds,
        associations=args.assocs,
        window=args.window or 1,
        calling_ae_title=options.calling_ae_title,
        config=options.config,
        iuid=args.iuid,
        query=query,
        transfer_syntaxes=options.transfer_syntaxes,
    )
    return run_blocking(bench, out, as_json=args.json)
