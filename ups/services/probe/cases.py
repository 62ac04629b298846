"""Running one :class:`~ups.services.conformance.StatusCase` against the SCP.

The case says where the UPS starts, what is sent and what must come back; this module
sets the UPS up (:meth:`ProbeContext.make`), sends exactly that request, and returns
the status and, when the case asks, the state an N-GET shows afterwards. Judging is
the caller's (:func:`ups.services.probe.model.judge_status`), so that the reference
SCP's own tests can assert the raw status against the same table.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import generate_uid

from ups.services.conformance import FINAL_STATES, RequestKind, StatusCase, Tuid, Variant
from ups.services.probe.context import ProbeContext, succeeded
from ups.services.probe.datasets import (
    cancel_attributes,
    code_item,
    create_dataset,
    final_state_attributes,
    quiet_pydicom,
    state_change,
    subscription,
)
from ups.services.probe.model import NotApplicable
from ups.services.probe.session import DEFAULT_ROLES, Answer, Tracked
from ups.services.uids import (
    UPS_GLOBAL_SUBSCRIPTION_INSTANCE,
    ActionType,
    ProcedureStepState,
    Role,
)

__all__ = ["CaseRun", "run_case", "cancel_request", "UNKNOWN_AE"]

UNKNOWN_AE = "DCMUPS-NOBODY"
_UNKNOWN_ACTION = 99


@dataclass(frozen=True, slots=True)
class CaseRun:
    """What the SCP answered, and (when looked at) the state N-GET showed afterwards."""

    status: int
    state: str | None = None
    state_status: int | None = None
    locked: bool = False
    """Whether the probe held a Deletion Lock on the UPS (the case asked, the SCP agreed)."""
    comment: str | None = None
    """The Error Comment (0000,0902) of the answer, when it had one."""


def cancel_request(requesting_ae: str) -> Dataset:
    """Request UPS Cancel information with every optional attribute (CC.2.2.1)."""
    ds = Dataset()
    ds.RequestingAE = requesting_ae
    ds.ReasonForCancellation = "dcmups probe"
    ds.ProcedureStepDiscontinuationReasonCodeSequence = Sequence(
        [code_item("110513", "Discontinued for unspecified reason", "DCM")]
    )
    ds.ContactURI = "mailto:probe@example.invalid"
    ds.ContactDisplayName = "dcmups probe"
    return ds


def _tuid(kind: Tuid, item: Tracked) -> str | None:
    if kind is Tuid.NONE:
        return None
    if kind is Tuid.OTHER:
        return str(generate_uid()) if item.tuid else None
    return item.tuid or str(generate_uid())


def _role(case: StatusCase) -> Role:
    return case.role or DEFAULT_ROLES.get(case.action.value, Role.WATCH)


async def run_case(ctx: ProbeContext, case: StatusCase) -> CaseRun:
    """Set up, send, and look at the state afterwards; SetupFailed if set-up failed."""
    item = await ctx.make(case.start, case.name, lock=case.lock and case.start is not None)
    if case.lock and case.start in FINAL_STATES and not item.locked:
        # No Deletion Lock (refused): the SCP may purge a finished UPS at once, and may.
        status, _ = await ctx.session.state_of(item.iuid)
        if not succeeded(status):
            raise NotApplicable(f"the {case.start} UPS is gone; no Deletion Lock was granted")
    answer = await _send(ctx, case, item)
    status, locked = answer.status, item.locked
    comment = getattr(answer.response, "error_comment", None)
    if case.action is RequestKind.GET and case.then is not None:
        state = None
        if answer.dataset is not None and "ProcedureStepState" in answer.dataset:
            state = str(answer.dataset.ProcedureStepState)
        return CaseRun(status, state, status, locked, comment)
    if case.then is None:
        return CaseRun(status, locked=locked, comment=comment)
    state_status, state = await ctx.session.state_of(item.iuid)
    return CaseRun(status, state, state_status, locked, comment)


async def _send(ctx: ProbeContext, case: StatusCase, item: Tracked) -> Answer:
    action = case.action
    role = _role(case)
    session = ctx.session
    if action is RequestKind.CREATE:
        return await _create(ctx, case, item, role)
    if action is RequestKind.SET:
        ds = Dataset()
        ds.ProcedureStepLabel = ctx.label(f"{case.name} set")
        if case.variant is Variant.SET_STATE_SCHEDULED:
            ds.ProcedureStepState = ProcedureStepState.SCHEDULED.value
        elif case.variant is Variant.SET_SOP_INSTANCE_UID:
            ds.SOPInstanceUID = str(generate_uid())
        tuid = _tuid(case.tuid, item)
        if tuid is not None:
            with quiet_pydicom():
                ds.TransactionUID = tuid
        return await session.set(item.iuid, ds, role)
    if action is RequestKind.GET:
        return await session.get(item.iuid, role=role)
    if action is RequestKind.CHANGE_STATE:
        return await _change_state(ctx, case, item, role)
    if action is RequestKind.REQUEST_CANCEL:
        ds = cancel_request(ctx.options.calling_ae)
        return await session.action(item.iuid, ActionType.REQUEST_CANCEL, ds, role)
    if action in (RequestKind.SUBSCRIBE, RequestKind.UNSUBSCRIBE, RequestKind.SUSPEND):
        return await _subscription(ctx, case, item, role)
    if action is RequestKind.UNKNOWN_ACTION:
        return await session.action(item.iuid, _UNKNOWN_ACTION, None, role)
    query = Dataset()
    query.ProcedureStepLabel = ctx.label(case.name)
    if case.variant is Variant.BAD_RANGE:
        with quiet_pydicom():
            query.add_new(0x00404005, "DT", "yesterday-today")
        del query.ProcedureStepLabel
    found = await session.find(query, role)
    return Answer(found.status)


async def _create(ctx: ProbeContext, case: StatusCase, item: Tracked, role: Role) -> Answer:
    ds = create_dataset(ctx.label(case.name))
    variant = case.variant
    iuid = None if case.start is None else item.iuid
    if variant is Variant.NOT_SCHEDULED:
        ds.ProcedureStepState = ProcedureStepState.IN_PROGRESS.value
    elif variant is Variant.MISSING_TYPE1:
        del ds.ScheduledProcedureStepPriority
    elif variant is Variant.EMPTY_TYPE1:
        ds.InputReadinessState = ""
    elif variant is Variant.BAD_ENUM:
        ds.ScheduledProcedureStepPriority = "URGENT"
    elif variant is Variant.WITH_TUID:
        ds.TransactionUID = str(generate_uid())
    elif variant is Variant.GLOBAL_UID:
        iuid = UPS_GLOBAL_SUBSCRIPTION_INSTANCE
    answer, created = await ctx.session.create(ds, case.name, iuid, role)
    item.iuid = created
    return answer


async def _change_state(ctx: ProbeContext, case: StatusCase, item: Tracked, role: Role) -> Answer:
    target = case.target
    if case.variant is Variant.BAD_STATE:
        wanted = "DONE"
    else:
        assert target is not None
        wanted = target.value
        ready = case.variant is not Variant.NO_FINAL_ATTRIBUTES
        if target in FINAL_STATES and case.start == ProcedureStepState.IN_PROGRESS and ready:
            attrs = (
                final_state_attributes()
                if target == ProcedureStepState.COMPLETED
                else cancel_attributes()
            )
            await ctx.set(item, attrs)
    tuid = _tuid(case.tuid, item)
    ds = state_change(wanted, tuid)
    answer = await ctx.session.action(item.iuid, ActionType.CHANGE_STATE, ds, role)
    if target == ProcedureStepState.IN_PROGRESS and succeeded(answer.status) and item.tuid is None:
        item.tuid = tuid  # the claim won: cleanup finishes it with this one
    return answer


async def _subscription(ctx: ProbeContext, case: StatusCase, item: Tracked, role: Role) -> Answer:
    session = ctx.session
    receiving: str | None = ctx.receiving_ae
    lock: bool | str | None = False
    if case.variant is Variant.UNKNOWN_AE:
        receiving = UNKNOWN_AE
    elif case.variant is Variant.NO_RECEIVING_AE:
        receiving = None
    elif case.variant is Variant.BAD_DELETION_LOCK:
        lock = "MAYBE"
    action = {
        RequestKind.SUBSCRIBE: ActionType.SUBSCRIBE,
        RequestKind.UNSUBSCRIBE: ActionType.UNSUBSCRIBE,
        RequestKind.SUSPEND: ActionType.SUSPEND_GLOBAL,
    }[case.action]
    if action is not ActionType.SUBSCRIBE:
        lock = None
    answer = await session.action(item.iuid, action, subscription(receiving, lock), role)
    if case.variant is Variant.UNKNOWN_AE and succeeded(answer.status):
        # Leave no subscription for an AE that does not exist.
        await session.action(
            item.iuid, ActionType.UNSUBSCRIBE, subscription(receiving, None), Role.WATCH
        )
    return answer
