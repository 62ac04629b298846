"""Running the suite: the groups in order, each check bounded, cleanup, then the report.

:func:`probe` is the coroutine; :func:`run_probe` runs it on a new event loop for the
command line. The exit status is 0 when no check failed and 1 otherwise, so that a CI
pipeline can gate on it; an SCP that cannot be reached at all raises the network error
(the command line's exit 3). Progress goes to ``err`` as each check finishes, unless
``quiet``.
"""

from __future__ import annotations

import asyncio
import secrets
import sys
import time
from collections.abc import Sequence
from datetime import datetime
from typing import TextIO

from ups.dimse.errors import DimseError
from ups.dimse.status import Status
from ups.net.errors import NetError
from ups.services.probe import (
    group_association,
    group_contexts,
    group_events,
    group_find,
    group_robustness,
    group_state,
)
from ups.services.probe.cleanup import cleanup
from ups.services.probe.context import ProbeContext
from ups.services.probe.inbox import Inbox
from ups.services.probe.model import (
    Check,
    CheckResult,
    Judgement,
    NotApplicable,
    SetupFailed,
    Verdict,
)
from ups.services.probe.options import GROUPS, ProbeOptions
from ups.services.probe.rawlink import LinkClosed
from ups.services.probe.report import RunInfo, markdown, summary, write_json, write_table
from ups.services.probe.session import Session

__all__ = ["ALL_CHECKS", "probe", "run_probe", "selected_checks", "ProbeRun"]

ALL_CHECKS: dict[str, tuple[Check, ...]] = {
    "association": group_association.CHECKS,
    "state": group_state.CHECKS,
    "contexts": group_contexts.CHECKS,
    "events": group_events.CHECKS,
    "find": group_find.CHECKS,
    "robustness": group_robustness.CHECKS,
}
assert tuple(ALL_CHECKS) == GROUPS


def selected_checks(options: ProbeOptions) -> list[Check]:
    return [check for group in GROUPS if options.wants(group) for check in ALL_CHECKS[group]]


def _run_id() -> str:
    return datetime.now().strftime("%Y%m%d%H%M%S") + "-" + secrets.token_hex(2)


async def _ask(ctx: ProbeContext, check: Check) -> CheckResult:
    """Run one check within ``check_timeout``; any error is its verdict, never the run's."""
    started = time.monotonic()
    limit = ctx.options.check_timeout
    try:
        async with asyncio.timeout(limit):
            outcome = await check.run(ctx)
    except NotApplicable as exc:
        outcome = Judgement(Verdict.NA, str(exc))
    except SetupFailed as exc:
        outcome = Judgement(Verdict.NA, f"set-up failed: {exc}")
    except TimeoutError:
        outcome = Judgement(Verdict.FAIL, f"not finished within {limit:g} s")
    except (NetError, LinkClosed, OSError, DimseError) as exc:
        outcome = Judgement(Verdict.FAIL, f"{type(exc).__name__}: {exc}")
    return CheckResult(
        check.name,
        check.group,
        check.reference,
        check.expected,
        outcome.observed,
        outcome.verdict,
        time.monotonic() - started,
        outcome.detail,
        check.sends,
    )


class ProbeRun:
    """The results of one run, for callers that want more than the exit status."""

    def __init__(self) -> None:
        self.results: list[CheckResult] = []
        self.latencies: list[float] = []
        self.run_id = ""

    def failed(self) -> list[str]:
        return [r.name for r in self.results if r.verdict is Verdict.FAIL]

    def verdicts(self) -> dict[str, Verdict]:
        return {r.name: r.verdict for r in self.results}


def _say(options: ProbeOptions, err: TextIO, text: str) -> None:
    if not options.quiet:
        err.write(f"dcmups probe: {text}\n")
        err.flush()


async def probe(
    options: ProbeOptions, out: TextIO, err: TextIO | None = None, run: ProbeRun | None = None
) -> int:
    """Run the suite against ``options``' SCP; 0 when nothing failed, else 1."""
    err = err or sys.stderr
    run = run if run is not None else ProbeRun()
    run.run_id = options.run_id or _run_id()
    started, clock = datetime.now().astimezone(), time.monotonic()
    inbox = await Inbox(options.receiving_ae).start(options.listen_host, options.listen_port)
    session = Session(options, run.run_id)
    ctx = ProbeContext(options, session, inbox, run.latencies)
    listening = inbox.port
    try:
        await session.connect()
        target = f"{options.called_ae}@{options.host}:{options.port}"
        _say(options, err, f"{target} as {options.calling_ae}, run {run.run_id}; events to "
             f"{options.receiving_ae} on port {listening}")  # fmt: skip
        checks = selected_checks(options)
        for index, check in enumerate(checks, 1):
            result = await _ask(ctx, check)
            run.results.append(result)
            _say(options, err, f"[{index}/{len(checks)}] {check.name}: {result.verdict} "
                 f"({result.seconds * 1000:.0f} ms)")  # fmt: skip
        run.results.append(await _ask(ctx, _CLEANUP))
        if ctx.lock_refused == Status.UPS_UNKNOWN_RECEIVING_AE:
            hint = f"the SCP does not know AE {options.receiving_ae}: configure it there"
            _say(options, err, hint + " and --listen at that address (events, Deletion Locks)")
    finally:
        await session.close()
        await inbox.close()
    _write(options, out, run.results)
    if options.report is not None:
        info = RunInfo(
            target, options.calling_ae, f"{options.receiving_ae} (port {listening})",
            run.run_id, session.family.name, started, time.monotonic() - clock, options.hostile,
        )  # fmt: skip
        options.report.write_text(markdown(run.results, info, run.latencies), encoding="utf-8")
    _say(options, err, summary(run.results))
    return 1 if run.failed() else 0


def _write(options: ProbeOptions, out: TextIO, results: Sequence[CheckResult]) -> None:
    if options.json:
        write_json(results, out)
    else:
        write_table(results, out)
    out.flush()


async def _cleanup_run(ctx: ProbeContext) -> Judgement:
    return await cleanup(ctx)


_CLEANUP = Check(
    "cleanup.final-state",
    "cleanup",
    "PS3.4 CC.1.1 (final states)",
    "every workitem made is COMPLETED, CANCELED or gone",
    _cleanup_run,
    sends="N-GET, then claim and CANCELED (or Request UPS Cancel) for each unfinished one",
)


def run_probe(options: ProbeOptions, out: TextIO, err: TextIO | None = None) -> int:
    """``dcmups probe``: run the suite on a new event loop; the exit status."""
    return asyncio.run(probe(options, out, err))
