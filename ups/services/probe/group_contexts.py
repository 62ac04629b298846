"""The contexts group: each operation on the context its SOP Class carries (PS3.4 CC.3.1.1).

PS3.4 CC.2 gives every UPS DIMSE its SOP Classes: N-CREATE on Push; N-SET and Change UPS
State on Pull; Request Cancel on Push and Watch; the subscription actions on Watch;
N-GET on Push, Pull, Watch and Query; C-FIND on Pull, Watch and Query. On every context
a DIMSE-N request names UPS Push as its Requested SOP Class. The right contexts must
work; a request on the wrong context is recorded and judged leniently (a refusal
passes, acceptance warns), as is an N-GET naming another UPS class. And whatever the
context, N-GET never returns the Transaction UID (CC.2.7.3): it is the performer's
lock and only the performer knows it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from ups.dimse.status import Status, describe
from ups.services.conformance import CASES_BY_NAME
from ups.services.probe.cases import cancel_request
from ups.services.probe.context import ProbeContext, succeeded
from ups.services.probe.datasets import create_dataset, state_change, subscription
from ups.services.probe.group_state import case_check
from ups.services.probe.model import Check, Judgement, SetupFailed, Verdict, hex4
from ups.services.probe.session import Answer
from ups.services.uids import ActionType, ProcedureStepState, Role

__all__ = ["CHECKS"]

GROUP = "contexts"
TRANSACTION_UID = 0x00081195
_Op = Callable[[ProbeContext, Role], Awaitable[Answer]]


async def _create(ctx: ProbeContext, role: Role) -> Answer:
    ds = create_dataset(ctx.label("n-create on push"))
    answer, _ = await ctx.session.create(ds, "n-create on push", role=role)
    return answer


async def _get(ctx: ProbeContext, role: Role) -> Answer:
    item = await ctx.make(ProcedureStepState.SCHEDULED, f"n-get on {role}")
    return await ctx.session.get(item.iuid, role=role)


async def _set(ctx: ProbeContext, role: Role) -> Answer:
    item = await ctx.make(ProcedureStepState.SCHEDULED, f"n-set on {role}")
    ds = Dataset()
    ds.ProcedureStepLabel = ctx.label(f"n-set on {role} done")
    return await ctx.session.set(item.iuid, ds, role)


async def _change_state(ctx: ProbeContext, role: Role) -> Answer:
    item = await ctx.make(ProcedureStepState.SCHEDULED, f"change state on {role}")

    tuid = str(generate_uid())
    answer = await ctx.session.action(
        item.iuid, ActionType.CHANGE_STATE, state_change(ProcedureStepState.IN_PROGRESS, tuid), role
    )
    if succeeded(answer.status):
        item.tuid = tuid
    return answer


async def _request_cancel(ctx: ProbeContext, role: Role) -> Answer:
    item = await ctx.make(ProcedureStepState.SCHEDULED, f"request cancel on {role}")
    ds = cancel_request(ctx.options.calling_ae)
    return await ctx.session.action(item.iuid, ActionType.REQUEST_CANCEL, ds, role)


async def _subscribe(ctx: ProbeContext, role: Role) -> Answer:
    item = await ctx.make(ProcedureStepState.SCHEDULED, f"subscribe on {role}")
    ds = subscription(ctx.receiving_ae, False)
    return await ctx.session.action(item.iuid, ActionType.SUBSCRIBE, ds, role)


async def _find(ctx: ProbeContext, role: Role) -> Answer:
    item = await ctx.make(ProcedureStepState.SCHEDULED, f"c-find on {role}")
    query = Dataset()
    query.SOPInstanceUID = item.iuid
    query.ProcedureStepState = ""
    found = await ctx.session.find(query, role)
    if found.status == 0 and len(found.matches) != 1:
        return Answer(-1)
    return Answer(found.status)


def _right(name: str, role: Role, op: _Op, reference: str, sends: str) -> Check:
    async def run(ctx: ProbeContext) -> Judgement:
        try:
            answer = await op(ctx, role)
        except SetupFailed as exc:
            return Judgement(Verdict.NA, f"set-up failed: {exc}")
        if answer.status == -1:
            return Judgement(Verdict.FAIL, "0000 without exactly the one match")
        if answer.status == Status.UPS_UNKNOWN_RECEIVING_AE:
            return Judgement(Verdict.NA, f"C308: the SCP does not know AE {ctx.receiving_ae}")
        verdict = Verdict.PASS if succeeded(answer.status) else Verdict.FAIL
        return Judgement(verdict, hex4(answer.status), describe(answer.status))

    where = role.value.capitalize()
    return Check(
        f"{GROUP}.{name}@{role.value}",
        GROUP,
        reference,
        "0000 (Requested SOP Class: UPS Push)",
        run,
        sends=f"{sends} on the UPS {where} context",
    )


async def _hides_tuid(ctx: ProbeContext, tags: tuple[int, ...]) -> Judgement:
    try:
        item = await ctx.make(ProcedureStepState.IN_PROGRESS, "n-get transaction uid")
    except SetupFailed as exc:
        return Judgement(Verdict.NA, f"set-up failed: {exc}")
    answer = await ctx.session.get(item.iuid, tags)
    if not succeeded(answer.status):
        return Judgement(Verdict.FAIL, f"N-GET answered {hex4(answer.status)}")
    ds = answer.dataset or Dataset()
    element = ds.get(TRANSACTION_UID)
    if element is not None and element.value:
        return Judgement(Verdict.FAIL, f"Transaction UID returned: {element.value}")
    shown = "absent" if element is None else "present, empty"
    return Judgement(Verdict.PASS, f"{hex4(answer.status)}; Transaction UID {shown}")


async def _hides_tuid_all(ctx: ProbeContext) -> Judgement:
    return await _hides_tuid(ctx, ())


async def _hides_tuid_asked(ctx: ProbeContext) -> Judgement:
    return await _hides_tuid(ctx, (TRANSACTION_UID, 0x00741000))


async def _requested_class(ctx: ProbeContext) -> Judgement:
    """N-GET on the Pull context naming UPS Pull, not Push, as Requested SOP Class."""
    try:
        item = await ctx.make(ProcedureStepState.SCHEDULED, "n-get requested class")
    except SetupFailed as exc:
        return Judgement(Verdict.NA, f"set-up failed: {exc}")
    pull = ctx.session.family.pull
    answer = await ctx.session.get(item.iuid, role=Role.PULL, requested_class=pull)
    if succeeded(answer.status):
        return Judgement(Verdict.WARN, f"{hex4(answer.status)} (accepted)", "lenient: allowed")
    return Judgement(Verdict.PASS, hex4(answer.status), describe(answer.status))


_RIGHT = (
    ("n-create", Role.PUSH, _create, "PS3.4 CC.2.5, CC.3.1.1", "N-CREATE"),
    ("n-get", Role.PUSH, _get, "PS3.4 CC.2.7, CC.3.1.1", "N-GET"),
    ("n-get", Role.PULL, _get, "PS3.4 CC.2.7, CC.3.1.1", "N-GET"),
    ("n-get", Role.WATCH, _get, "PS3.4 CC.2.7, CC.3.1.1", "N-GET"),
    ("n-get", Role.QUERY, _get, "PS3.4 CC.2.7, CC.3.1.1", "N-GET"),
    ("n-set", Role.PULL, _set, "PS3.4 CC.2.6, CC.3.1.1", "N-SET"),
    ("change-state", Role.PULL, _change_state, "PS3.4 CC.2.1, CC.3.1.1", "N-ACTION 1"),
    ("request-cancel", Role.PUSH, _request_cancel, "PS3.4 CC.2.2, CC.3.1.1", "N-ACTION 2"),
    ("request-cancel", Role.WATCH, _request_cancel, "PS3.4 CC.2.2, CC.3.1.1", "N-ACTION 2"),
    ("subscribe", Role.WATCH, _subscribe, "PS3.4 CC.2.3, CC.3.1.1", "N-ACTION 3"),
    ("c-find", Role.PULL, _find, "PS3.4 CC.2.8, CC.3.1.1", "C-FIND"),
    ("c-find", Role.WATCH, _find, "PS3.4 CC.2.8, CC.3.1.1", "C-FIND"),
    ("c-find", Role.QUERY, _find, "PS3.4 CC.2.8, CC.3.1.1", "C-FIND"),
)
_WRONG = ("change-state-on-watch", "create-on-pull", "subscribe-on-pull", "find-on-push")

CHECKS: tuple[Check, ...] = (
    *(_right(*row) for row in _RIGHT),
    *(case_check(CASES_BY_NAME[name], GROUP, f"{GROUP}.wrong") for name in _WRONG),
    Check(
        f"{GROUP}.wrong.requested-sop-class",
        GROUP,
        "PS3.4 CC.2.7.1, CC.3.1.1",
        "a refusal (the Requested SOP Class must be UPS Push)",
        _requested_class,
        sends="N-GET on the UPS Pull context naming UPS Pull as Requested SOP Class",
    ),
    Check(
        f"{GROUP}.n-get-hides-transaction-uid",
        GROUP,
        "PS3.4 CC.2.7.3",
        "0000, no Transaction UID value",
        _hides_tuid_all,
        sends="N-GET of every attribute of an IN PROGRESS UPS",
    ),
    Check(
        f"{GROUP}.n-get-hides-transaction-uid-asked",
        GROUP,
        "PS3.4 CC.2.7.3",
        "0000, no Transaction UID value",
        _hides_tuid_asked,
        sends="N-GET asking for Transaction UID (0008,1195) of an IN PROGRESS UPS",
    ),
)
