"""The state machine group: every cell of PS3.4 Table CC.1.1-2 and the CC.2 status rules.

Each check is one :class:`~ups.services.conformance.StatusCase` of the shared table
(:data:`~ups.services.conformance.STATUS_CASES`): create, claim, a second claim, wrong
Transaction UIDs, SCHEDULED -> COMPLETED, the Final State requirements (C304), COMPLETED
twice (B306), N-SET after a final state, Request Cancel in each state, unknown
instances, and the ``retained`` cases that ask for a finished workitem without a lock.
:func:`case_check` turns any case into a check; the contexts, find and robustness
groups use it for their rows of the same table.
"""

from __future__ import annotations

from ups.dimse.status import Status, describe
from ups.services.conformance import FINAL_STATES, STATUS_CASES, RequestKind, StatusCase, Variant
from ups.services.probe.cases import CaseRun, run_case
from ups.services.probe.context import ProbeContext
from ups.services.probe.model import Check, Judgement, SetupFailed, Verdict, hex4, judge_status

__all__ = ["CHECKS", "case_check", "expected_text"]

GROUP = "state"


def expected_text(case: StatusCase) -> str:
    """The expected column: the status, what else passes or warns, the state after."""
    text = hex4(case.expected)
    if case.allowed:
        text += " or " + "/".join(hex4(s) for s in sorted(case.allowed))
    if case.lenient:
        text = f"a refusal ({text} here)"
    if case.then is not None:
        text += f", then {case.then}"
    if case.readings:
        text += " [" + "/".join(hex4(s) for s in sorted(case.readings)) + ": warn]"
    return text


def _purged(case: StatusCase, result: CaseRun) -> bool:
    """Finished, unlocked and gone: an SCP may purge such a UPS at once (CC.2.1.3)."""
    gone = result.state_status == Status.UPS_NO_SUCH_INSTANCE
    return (
        case.then in FINAL_STATES
        and not result.locked
        and gone
        and case.action is not RequestKind.GET
    )


def _not_known(case: StatusCase, status: int) -> bool:
    """A subscription refused because the SCP does not know our Receiving AE (C308)."""
    ours = case.action is RequestKind.SUBSCRIBE and case.variant is not Variant.UNKNOWN_AE
    return ours and status == Status.UPS_UNKNOWN_RECEIVING_AE


def case_check(case: StatusCase, group: str, prefix: str | None = None) -> Check:
    """A check that runs ``case`` and judges its status (and the state after, if asked).

    Its name is ``<prefix>.<case name>``, the prefix being the group unless given.
    """

    async def run(ctx: ProbeContext) -> Judgement:
        try:
            result = await run_case(ctx, case)
        except SetupFailed as exc:
            return Judgement(Verdict.NA, f"set-up failed: {exc}")
        verdict = judge_status(case, result.status)
        observed = hex4(result.status)
        if verdict is Verdict.FAIL and _not_known(case, result.status):
            return Judgement(Verdict.NA, f"{observed}: the SCP does not know AE {ctx.receiving_ae}")
        if case.then is not None:
            shown = result.state or f"N-GET {hex4(result.state_status)}"
            if _purged(case, result):
                shown = "gone (no Deletion Lock: it may be)"
            elif verdict is Verdict.PASS and result.state != case.then:
                verdict = Verdict.FAIL
            observed += f", then {shown}"
        return Judgement(verdict, observed, describe(result.status))

    return Check(
        name=f"{prefix or group}.{case.name}",
        group=group,
        reference=case.reference,
        expected=expected_text(case),
        run=run,
        hostile=case.hostile,
        sends=case.sends,
    )


CHECKS: tuple[Check, ...] = tuple(
    case_check(case, GROUP) for case in STATUS_CASES if not case.lenient and not case.hostile
)
