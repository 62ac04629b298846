"""The events group: the N-EVENT-REPORTs each step must cause (PS3.4 CC.2.3, CC.2.4.3).

The probe subscribes its own inbox (:mod:`ups.services.probe.inbox`) with its
Receiving AE, then acts and waits for what :data:`~ups.services.conformance.EVENT_SEQUENCES`
says must follow: the initial UPS State Report on subscription, the state reports of a
claim and a completion in that order, UPS Cancel Requested with the requester's
attributes, progress reports, and the reports of global and filtered global
subscriptions. That an event does *not* come (after unsubscribe, after suspend, for a
UPS a filter excludes) is judged against a marker: an event that must come, caused
after the one that must not, then ``quiet_period`` more. Every expected event's delay
after the response that caused it is recorded (``events.latency``).

An SCP that does not know the probe's AE answers a subscription with C308; the checks
are then not applicable, and the report says which AE and address the SCP must know.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable, Sequence

from pydicom.dataset import Dataset

from ups.dimse.errors import DatasetError
from ups.dimse.status import Status
from ups.services.conformance import EVENT_SEQUENCES, ExpectedEvent
from ups.services.probe.cases import cancel_request
from ups.services.probe.context import ProbeContext, succeeded
from ups.services.probe.datasets import progress_attributes, quiet_pydicom, subscription
from ups.services.probe.inbox import Arrival
from ups.services.probe.model import Check, Judgement, NotApplicable, Verdict, hex4
from ups.services.probe.session import Tracked
from ups.services.uids import (
    UPS_FILTERED_GLOBAL_SUBSCRIPTION_INSTANCE,
    UPS_GLOBAL_SUBSCRIPTION_INSTANCE,
    ActionType,
    ProcedureStepState,
    Role,
)

__all__ = ["CHECKS", "sequence_matched"]

GROUP = "events"
_Run = Callable[[ProbeContext], Awaitable[Judgement]]
_UNKNOWN_AE = Status.UPS_UNKNOWN_RECEIVING_AE


def _info(arrival: Arrival) -> Dataset:
    with quiet_pydicom():
        try:
            return arrival.event.dataset
        except DatasetError:
            return Dataset()


def _has(ds: Dataset, path: str) -> bool:
    outer, _, inner = path.partition(">")
    if not inner:
        return outer in ds
    return any(inner in item for item in ds.get(outer) or [])


def _fits(arrival: Arrival, expected: ExpectedEvent) -> bool:
    if arrival.event.event_type_id != expected.event_type:
        return False
    if expected.state is None:
        return True
    return str(_info(arrival).get("ProcedureStepState", "")).strip() == expected.state


def sequence_matched(
    arrivals: Sequence[Arrival], sequence: Sequence[ExpectedEvent]
) -> list[Arrival] | None:
    """The arrivals that match the required events of ``sequence`` in order, or None."""
    matched: list[Arrival] = []
    position = 0
    for expected in sequence:
        if expected.optional:
            continue
        for index in range(position, len(arrivals)):
            if _fits(arrivals[index], expected):
                matched.append(arrivals[index])
                position = index + 1
                break
        else:
            return None
    return matched


def _describe(arrivals: Sequence[Arrival], t0: float) -> str:
    parts = []
    for arrival in arrivals:
        state = str(_info(arrival).get("ProcedureStepState", "")).strip()
        name = arrival.event.name.removeprefix("UPS ")
        delay = arrival.at - t0
        after = f" (+{delay * 1000:.0f} ms)" if delay >= 0 else ""
        parts.append(f"{name}{' ' + state if state else ''}{after}")
    return ", ".join(parts) or "no event"


async def _expect(
    ctx: ProbeContext, iuid: str, names: Sequence[str], mark: int, t0: float
) -> Judgement:
    """Wait for the sequences ``names`` (concatenated) for ``iuid``; judge what came."""
    sequence = [event for name in names for event in EVENT_SEQUENCES[name]]

    def done(arrivals: list[Arrival]) -> bool:
        return sequence_matched([a for a in arrivals if a.iuid == iuid], sequence) is not None

    await ctx.inbox.wait_for(done, mark, ctx.options.event_timeout)
    arrivals = ctx.inbox.since(mark, iuid)
    observed = _describe(arrivals, t0)
    matched = sequence_matched(arrivals, sequence)
    if matched is None:
        wanted = " then ".join(_name(e) for e in sequence if not e.optional)
        return Judgement(Verdict.FAIL, observed, f"expected {wanted}")
    ctx.latencies.extend(a.at - t0 for a in matched)
    required = [e for e in sequence if not e.optional]
    missing = [
        f"{_name(e)}: {path}"
        for arrival, e in zip(matched, required, strict=True)
        for path in e.attributes
        if not _has(_info(arrival), path)
    ]
    if missing:
        return Judgement(Verdict.FAIL, observed, "missing " + "; ".join(missing))
    return Judgement(Verdict.PASS, observed)


def _name(expected: ExpectedEvent) -> str:
    text = expected.event_type.label.removeprefix("UPS ")
    return f"{text} {expected.state}" if expected.state else text


async def _subscribed(ctx: ProbeContext, iuid: str, *, lock: bool = False) -> None:
    """Subscribe the inbox to ``iuid`` (a UPS or a global instance); NotApplicable on C308."""
    ds = subscription(ctx.receiving_ae, lock)
    answer = await ctx.session.action(iuid, ActionType.SUBSCRIBE, ds, Role.WATCH)
    _require(ctx, answer.status, "subscribing")


def _require(ctx: ProbeContext, status: int, what: str) -> None:
    if status == _UNKNOWN_AE:
        raise NotApplicable(
            f"C308: the SCP does not know AE {ctx.receiving_ae} (configure it, see --listen)"
        )
    if not succeeded(status):
        raise _Refused(f"{what} answered {hex4(status)}")


class _Refused(Exception):
    pass


async def _watched(ctx: ProbeContext, purpose: str, **values: object) -> Tracked:
    """A new UPS with the inbox subscribed, after its initial report (or the timeout)."""
    item = await ctx.create(purpose, **values)
    mark = ctx.inbox.mark()
    await _subscribed(ctx, item.iuid)

    def initial(arrivals: list[Arrival]) -> bool:
        return any(a.iuid == item.iuid for a in arrivals)

    await ctx.inbox.wait_for(initial, mark, ctx.options.event_timeout)
    return item


def _guarded(run: _Run) -> _Run:
    async def guarded(ctx: ProbeContext) -> Judgement:
        try:
            return await run(ctx)
        except _Refused as exc:
            return Judgement(Verdict.FAIL, str(exc))

    return guarded


# ----------------------------------------------------------------- the checks


async def _initial(ctx: ProbeContext) -> Judgement:
    item = await ctx.create("events initial report")
    mark = ctx.inbox.mark()
    await _subscribed(ctx, item.iuid)
    return await _expect(ctx, item.iuid, ["subscribe"], mark, time.monotonic())


async def _order(ctx: ProbeContext) -> Judgement:
    item = await _watched(ctx, "events state order")
    mark = ctx.inbox.mark()
    await ctx.claim(item)
    t0 = time.monotonic()
    await ctx.finish(item, ProcedureStepState.COMPLETED)
    return await _expect(ctx, item.iuid, ["claim", "complete"], mark, t0)


async def _claimed(ctx: ProbeContext, item: Tracked) -> None:
    """Claim ``item`` and wait for its report, so that later marks see only what follows."""
    mark = ctx.inbox.mark()
    await ctx.claim(item)
    sequence = EVENT_SEQUENCES["claim"]

    def reported(arrivals: list[Arrival]) -> bool:
        return sequence_matched([a for a in arrivals if a.iuid == item.iuid], sequence) is not None

    await ctx.inbox.wait_for(reported, mark, ctx.options.event_timeout)


async def _cancel_requested(ctx: ProbeContext) -> Judgement:
    item = await _watched(ctx, "events cancel requested")
    await _claimed(ctx, item)
    mark = ctx.inbox.mark()
    ds = cancel_request(ctx.options.calling_ae)
    answer = await ctx.session.action(item.iuid, ActionType.REQUEST_CANCEL, ds, Role.PUSH)
    if answer.status in (Status.UPS_PERFORMER_UNREACHABLE, Status.UPS_PERFORMER_DECLINES):
        raise NotApplicable(f"the SCP refused to pass the request on ({hex4(answer.status)})")
    _require(ctx, answer.status, "Request UPS Cancel")
    outcome = await _expect(ctx, item.iuid, ["request-cancel-in-progress"], mark, time.monotonic())
    if outcome.verdict is Verdict.PASS:
        first = [a for a in ctx.inbox.since(mark, item.iuid) if a.event.event_type_id == 2]
        requester = str(_info(first[0]).get("RequestingAE", "")).strip()
        if requester != ctx.options.calling_ae:
            return Judgement(Verdict.WARN, outcome.observed, f"Requesting AE {requester!r}")
    return outcome


async def _cancel_scheduled(ctx: ProbeContext) -> Judgement:
    item = await _watched(ctx, "events cancel scheduled")
    mark = ctx.inbox.mark()
    ds = cancel_request(ctx.options.calling_ae)
    answer = await ctx.session.action(item.iuid, ActionType.REQUEST_CANCEL, ds, Role.PUSH)
    _require(ctx, answer.status, "Request UPS Cancel")
    return await _expect(ctx, item.iuid, ["request-cancel-scheduled"], mark, time.monotonic())


async def _progress(ctx: ProbeContext) -> Judgement:
    item = await _watched(ctx, "events progress")
    await _claimed(ctx, item)
    mark = ctx.inbox.mark()
    status = await ctx.set(item, progress_attributes(50, "dcmups probe halfway"))
    _require(ctx, status, "N-SET of the progress")
    return await _expect(ctx, item.iuid, ["progress"], mark, time.monotonic())


async def _unsubscribe_global(ctx: ProbeContext, instance: str) -> None:
    ds = subscription(ctx.receiving_ae, None)
    await ctx.session.action(instance, ActionType.UNSUBSCRIBE, ds, Role.WATCH)


async def _global(ctx: ProbeContext) -> Judgement:
    await _subscribed(ctx, UPS_GLOBAL_SUBSCRIPTION_INSTANCE)
    try:
        mark = ctx.inbox.mark()
        item = await ctx.create("events global")
        return await _expect(ctx, item.iuid, ["create-global"], mark, time.monotonic())
    finally:
        await _unsubscribe_global(ctx, UPS_GLOBAL_SUBSCRIPTION_INSTANCE)


async def _quiet(ctx: ProbeContext, silent: str, mark: int, marker: Tracked) -> Judgement:
    """After ``marker``'s state report and a quiet period, ``silent`` must have had none."""
    t0 = time.monotonic()
    seen = await ctx.inbox.wait_for(
        lambda arrivals: any(a.iuid == marker.iuid for a in arrivals),
        mark,
        ctx.options.event_timeout,
    )
    if not seen:
        return Judgement(Verdict.FAIL, "the marker event never came")
    await asyncio.sleep(ctx.options.quiet_period)
    extra = ctx.inbox.since(mark, silent)
    if extra:
        return Judgement(Verdict.FAIL, _describe(extra, t0))
    return Judgement(Verdict.PASS, "no event (marker event received)")


async def _filtered(ctx: ProbeContext) -> Judgement:
    wanted = f"PROBE-F-{ctx.session.run_id}"[:64]
    ds = subscription(ctx.receiving_ae, False)
    ds.PatientID = wanted
    instance = UPS_FILTERED_GLOBAL_SUBSCRIPTION_INSTANCE
    answer = await ctx.session.action(instance, ActionType.SUBSCRIBE, ds, Role.WATCH)
    _require(ctx, answer.status, "the filtered subscription")
    try:
        mark = ctx.inbox.mark()
        excluded = await ctx.create("events filtered out", PatientID=f"{wanted}-NOT")
        matching = await ctx.create("events filtered in", PatientID=wanted)
        outcome = await _expect(ctx, matching.iuid, ["create-global"], mark, time.monotonic())
        if outcome.verdict is not Verdict.PASS:
            return outcome
        quiet = await _quiet(ctx, excluded.iuid, mark, matching)
        if quiet.verdict is not Verdict.PASS:
            return Judgement(Verdict.FAIL, f"an excluded UPS was reported: {quiet.observed}")
        return Judgement(Verdict.PASS, f"{outcome.observed}; none for the excluded UPS")
    finally:
        await _unsubscribe_global(ctx, instance)


async def _unsubscribe(ctx: ProbeContext) -> Judgement:
    dropped = await _watched(ctx, "events unsubscribed")
    marker = await _watched(ctx, "events unsubscribe marker")
    ds = subscription(ctx.receiving_ae, None)
    answer = await ctx.session.action(dropped.iuid, ActionType.UNSUBSCRIBE, ds, Role.WATCH)
    _require(ctx, answer.status, "unsubscribing")
    mark = ctx.inbox.mark()
    await ctx.claim(dropped)
    await ctx.claim(marker)
    return await _quiet(ctx, dropped.iuid, mark, marker)


async def _suspend(ctx: ProbeContext) -> Judgement:
    await _subscribed(ctx, UPS_GLOBAL_SUBSCRIPTION_INSTANCE)
    try:
        mark = ctx.inbox.mark()
        kept = await ctx.create("events suspend kept")
        outcome = await _expect(ctx, kept.iuid, ["create-global"], mark, time.monotonic())
        if outcome.verdict is not Verdict.PASS:
            return Judgement(Verdict.FAIL, f"no report before suspending: {outcome.observed}")
        ds = subscription(ctx.receiving_ae, None)
        instance = UPS_GLOBAL_SUBSCRIPTION_INSTANCE
        answer = await ctx.session.action(instance, ActionType.SUSPEND_GLOBAL, ds, Role.WATCH)
        _require(ctx, answer.status, "suspending")
        mark = ctx.inbox.mark()
        new = await ctx.create("events suspend new")
        await ctx.claim(kept)
        return await _quiet(ctx, new.iuid, mark, kept)
    finally:
        await _unsubscribe_global(ctx, UPS_GLOBAL_SUBSCRIPTION_INSTANCE)


async def _deletion_lock(ctx: ProbeContext) -> Judgement:
    item = await ctx.create("events deletion lock")
    await _subscribed(ctx, item.iuid, lock=True)
    await ctx.claim(item)
    await ctx.finish(item, ProcedureStepState.COMPLETED)
    status, state = await ctx.session.state_of(item.iuid)
    observed = f"N-GET after COMPLETED: {hex4(status)}{', ' + state if state else ''}"
    ds = subscription(ctx.receiving_ae, None)
    await ctx.session.action(item.iuid, ActionType.UNSUBSCRIBE, ds, Role.WATCH)
    ok = succeeded(status) and state == ProcedureStepState.COMPLETED
    return Judgement(Verdict.PASS if ok else Verdict.FAIL, observed)


async def _latency(ctx: ProbeContext) -> Judgement:
    if not ctx.latencies:
        return Judgement(Verdict.NA, "no event was received")
    ms = sorted(x * 1000 for x in ctx.latencies)
    observed = f"{len(ms)} events: median {statistics.median(ms):.1f} ms, max {ms[-1]:.1f} ms"
    slow = ms[-1] > ctx.options.event_timeout * 500
    return Judgement(Verdict.WARN if slow else Verdict.PASS, observed)


_CC243 = "PS3.4 CC.2.4.3, Table CC.2.4-1"
_ROWS: tuple[tuple[str, str, str, str, _Run], ...] = (
    ("initial-state-report", "PS3.4 CC.2.3.2, CC.2.4.3", "State Report SCHEDULED",
     "N-ACTION 3 (subscribe, no lock) to a new UPS", _initial),
    ("state-reports-in-order", _CC243, "State Report IN PROGRESS, then COMPLETED",
     "claim, N-SET of the Final State attributes, COMPLETED", _order),
    ("cancel-requested", _CC243, "Cancel Requested with the requester's attributes",
     "N-ACTION 2 with reason, code, contact to an IN PROGRESS UPS", _cancel_requested),
    ("cancel-scheduled", "PS3.4 Table CC.1.1-2, CC.2.4.3", "State Report CANCELED",
     "N-ACTION 2 to a SCHEDULED UPS", _cancel_scheduled),
    ("progress-report", _CC243, "Progress Report with Procedure Step Progress",
     "N-SET of Procedure Step Progress 50", _progress),
    ("global-subscription", "PS3.4 CC.2.3.2, CC.2.4.3", "State Report SCHEDULED of a new UPS",
     "subscribe to the Global Subscription instance, then N-CREATE", _global),
    ("filtered-global-subscription", "PS3.4 CC.2.3.2, CC.2.3.3.1",
     "a report for the matching new UPS only",
     "subscribe to the Filtered Global instance (Patient ID), two N-CREATEs", _filtered),
    ("unsubscribe", "PS3.4 CC.2.3.2", "no event after N-ACTION 4",
     "N-ACTION 4 (unsubscribe), then claim it and a still-watched marker UPS", _unsubscribe),
    ("suspend", "PS3.4 CC.2.3.2", "no report of new UPSs; subscribed ones still reported",
     "global subscription, N-ACTION 5 (suspend), N-CREATE, claim of a watched UPS", _suspend),
    ("deletion-lock", "PS3.4 CC.2.3.2, CC.2.1.3", "N-GET after COMPLETED: 0000, COMPLETED",
     "subscribe with Deletion Lock TRUE, complete, N-GET", _deletion_lock),
    ("latency", "-", "every expected event within the event timeout",
     "(measured over the checks above)", _latency),
)  # fmt: skip

CHECKS: tuple[Check, ...] = tuple(
    Check(f"{GROUP}.{name}", GROUP, ref, expected, _guarded(run), sends=sends)
    for name, ref, expected, sends, run in _ROWS
)
