"""Leaving the worklist as found: every workitem the probe made ends COMPLETED or CANCELED.

A shared worklist must not keep the probe's SCHEDULED or IN PROGRESS workitems: each one
recorded by the session is looked at (N-GET) and, unless final or gone, claimed with
the probe's own Transaction UID (or the one it already holds) and canceled with the
Final State attributes of Table CC.2.5-3; where the probe cannot claim it, it asks for
cancellation (Request UPS Cancel). Its subscriptions end with a global unsubscribe of
the probe's Receiving AE (CC.2.3.2: that also ends every specific one), which lets the
SCP delete the finished workitems whenever it likes.
"""

from __future__ import annotations

from ups.net.errors import NetError
from ups.services.probe.cases import cancel_request
from ups.services.probe.context import ProbeContext, succeeded
from ups.services.probe.datasets import subscription
from ups.services.probe.model import Judgement, NotApplicable, SetupFailed, Verdict
from ups.services.probe.session import Tracked
from ups.services.uids import (
    UPS_GLOBAL_SUBSCRIPTION_INSTANCE,
    ActionType,
    ProcedureStepState,
    Role,
)

__all__ = ["cleanup"]

_FINAL = (ProcedureStepState.COMPLETED.value, ProcedureStepState.CANCELED.value)


async def _finish(ctx: ProbeContext, item: Tracked) -> str:
    """Drive one workitem to a final state: "final", "gone" or "left <state>"."""
    session = ctx.session
    status, state = await session.state_of(item.iuid)
    if not succeeded(status):
        return "gone"
    if state not in _FINAL:
        try:
            if item.tuid is None:
                await ctx.claim(item)
            await ctx.finish(item, ProcedureStepState.CANCELED)
        except SetupFailed:
            ds = cancel_request(ctx.options.calling_ae)
            await session.action(item.iuid, ActionType.REQUEST_CANCEL, ds, Role.PUSH)
        status, state = await session.state_of(item.iuid)
        if not succeeded(status):
            return "gone"
    return "final" if state in _FINAL else f"left {state or 'in an unknown state'}"


async def cleanup(ctx: ProbeContext) -> Judgement:
    """Finish every workitem of the run, then drop the probe's subscriptions."""
    counts = {"final": 0, "gone": 0}
    left: list[str] = []
    for item in list(ctx.session.created.values()):
        try:
            fate = await _finish(ctx, item)
        except (NetError, NotApplicable, TimeoutError) as exc:
            fate = f"left ({exc})"
        if fate in counts:
            counts[fate] += 1
        else:
            left.append(f"{item.purpose} ({item.iuid}) {fate}")
    try:
        ds = subscription(ctx.receiving_ae, None)
        await ctx.session.action(
            UPS_GLOBAL_SUBSCRIPTION_INSTANCE, ActionType.UNSUBSCRIBE, ds, Role.WATCH
        )
    except (NetError, NotApplicable, TimeoutError):
        pass
    total = len(ctx.session.created)
    observed = f"{total} workitems made: {counts['final']} final, {counts['gone']} no longer there"
    if left:
        return Judgement(Verdict.WARN, f"{observed}, {len(left)} left", "; ".join(left[:10]))
    return Judgement(Verdict.PASS, observed)
