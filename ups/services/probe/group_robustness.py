"""The robustness group (``--hostile`` only): requests a production SCP may not enjoy.

Malformed UIDs where the SCP takes one from the peer (PS3.5 9.1: digits and dots, no
empty component, no leading zero, at most 64 characters; PS3.7 C.4: Invalid
SOP Instance for an instance UID, Invalid Attribute Value for an attribute), a
data set far larger than usual but sent within the SCP's Maximum PDU Length, an unknown
Action Type ID (No Such Action), a second request under a Message ID still
outstanding (Duplicate Invocation, PS3.7 C.5.1), and a P-DATA-TF on a
presentation context that was never accepted (PS3.8 9.3.5: an A-ABORT). After each,
the SCP must still accept an association and answer C-ECHO: a robustness fault that
takes the SCP down fails whatever the answer was.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import replace

from pydicom.uid import generate_uid

from ups.dimse.messages import CEchoRQ, NGetRQ
from ups.dimse.status import Status, describe
from ups.net.errors import NetError
from ups.services.conformance import CASES_BY_NAME
from ups.services.probe.context import ProbeContext, succeeded
from ups.services.probe.datasets import create_dataset, state_change
from ups.services.probe.group_association import describe_answer, negotiate
from ups.services.probe.group_state import case_check
from ups.services.probe.model import Check, Judgement, SetupFailed, Verdict, hex4
from ups.services.probe.rawlink import LinkClosed, status_of
from ups.services.uids import (
    DEFAULT_TRANSFER_SYNTAXES,
    VERIFICATION,
    ActionType,
    ProcedureStepState,
    Role,
)

__all__ = ["CHECKS", "MALFORMED_UIDS"]

GROUP = "robustness"
_Run = Callable[[ProbeContext], Awaitable[Judgement]]

MALFORMED_UIDS: tuple[tuple[str, str], ...] = (
    ("letters", "1.2.abc"),
    ("space", "1.2 3"),
    ("empty component", "1..2"),
    ("leading zero", "1.02.3"),
    ("path", "../1.2.3"),
    ("65 characters", "1.2." + "9" * 61),
)
_REFUSED_UID = frozenset({Status.INVALID_SOP_INSTANCE, Status.INVALID_ATTRIBUTE_VALUE})


async def _alive(ctx: ProbeContext) -> str | None:
    """None when a new association still answers C-ECHO, else what went wrong."""
    try:
        link, answer = await negotiate(ctx, [(VERIFICATION, DEFAULT_TRANSFER_SYNTAXES)])
    except (OSError, TimeoutError, LinkClosed) as exc:
        return f"the SCP no longer accepts associations ({type(exc).__name__})"
    try:
        if link.negotiated is None or not link.negotiated.contexts:
            return f"the SCP no longer accepts associations: {describe_answer(answer)}"
        link.send_message(CEchoRQ(1), 1)
        reply = await link.next_message(ctx.options.config.response_timeout)
        if status_of(reply) != 0:
            return "the SCP no longer answers C-ECHO"
        return None
    except (TimeoutError, LinkClosed):
        return "the SCP no longer answers C-ECHO"
    finally:
        await link.close()


def _checked(run: _Run) -> _Run:
    """Run, then make sure the SCP survived: a dead SCP fails the check."""

    async def checked(ctx: ProbeContext) -> Judgement:
        outcome = await run(ctx)
        dead = await _alive(ctx)
        if dead is not None:
            return Judgement(Verdict.FAIL, f"{outcome.observed}; {dead}", outcome.detail)
        return outcome

    return checked


async def _malformed_create(ctx: ProbeContext) -> Judgement:
    answers: list[str] = []
    accepted: list[str] = []
    statuses: set[int] = set()
    aborted = False
    for what, uid in MALFORMED_UIDS:
        ds = create_dataset(ctx.label(f"malformed uid {what}"))
        try:
            answer, _ = await ctx.session.create(ds, f"malformed uid {what}", uid)
        except NetError:
            # Aborted, not answered: nothing to clean up that could be named again.
            ctx.session.created.pop(uid, None)
            answers.append(f"{what}: A-ABORT")
            aborted = True
            continue
        answers.append(f"{what}: {hex4(answer.status)}")
        statuses.add(answer.status)
        if succeeded(answer.status):
            accepted.append(what)
    observed = "; ".join(answers)
    if accepted:
        return Judgement(Verdict.FAIL, observed, f"accepted: {', '.join(accepted)}")
    if aborted or not statuses <= _REFUSED_UID:
        return Judgement(Verdict.WARN, observed, "0117 Invalid SOP Instance was expected")
    return Judgement(Verdict.PASS, observed)


async def _malformed_transaction(ctx: ProbeContext) -> Judgement:
    try:
        item = await ctx.make(ProcedureStepState.SCHEDULED, "malformed transaction uid")
    except SetupFailed as exc:
        return Judgement(Verdict.NA, f"set-up failed: {exc}")
    bad = "not-a-uid"
    answer = await ctx.session.action(
        item.iuid,
        ActionType.CHANGE_STATE,
        state_change(ProcedureStepState.IN_PROGRESS, bad),
        Role.PULL,
    )
    if succeeded(answer.status):
        item.tuid = bad  # cleanup must be able to finish it
        return Judgement(Verdict.FAIL, f"{hex4(answer.status)}: claimed with {bad!r}")
    verdict = Verdict.PASS if answer.status == Status.INVALID_ATTRIBUTE_VALUE else Verdict.WARN
    return Judgement(verdict, hex4(answer.status), describe(answer.status))


async def _malformed_requested(ctx: ProbeContext) -> Judgement:
    answer = await ctx.session.get("1..2.abc")
    if succeeded(answer.status):
        return Judgement(Verdict.FAIL, f"{hex4(answer.status)} for an N-GET of '1..2.abc'")
    return Judgement(Verdict.PASS, hex4(answer.status), describe(answer.status))


_OVERSIZED = 1 << 20


async def _oversized(ctx: ProbeContext) -> Judgement:
    """N-CREATE with a 1 MiB private value, fragmented to the SCP's Maximum PDU Length."""
    ds = create_dataset(ctx.label("oversized data set"))
    ds.add_new(0x00110010, "LO", "DCMUPS PROBE")
    ds.add_new(0x00111001, "OB", bytes(_OVERSIZED))
    try:
        answer, _ = await ctx.session.create(ds, "oversized data set")
    except NetError as exc:
        return Judgement(Verdict.WARN, f"association ended: {exc}", "an answer was expected")
    echo = await ctx.session.echo()
    observed = f"{hex4(answer.status)} for {_OVERSIZED} bytes; C-ECHO after: {hex4(echo)}"
    return Judgement(Verdict.PASS, observed, describe(answer.status))


async def _duplicate_message_id(ctx: ProbeContext) -> Judgement:
    push = ctx.session.family.push
    link, answer = await negotiate(ctx, [(push, DEFAULT_TRANSFER_SYNTAXES)], window=(2, 1))
    try:
        if link.negotiated is None or 1 not in link.negotiated.contexts:
            return Judgement(Verdict.NA, f"no UPS Push context: {describe_answer(answer)}")
        # One write: the second must arrive while the first is still outstanding.
        link.send_messages([NGetRQ(7, push, generate_uid()) for _ in range(2)], 1)
        statuses: list[int] = []
        timeout = ctx.options.config.response_timeout
        while len(statuses) < 2:
            try:
                message = await link.next_message(timeout if not statuses else 2.0)
            except (TimeoutError, LinkClosed):
                break
            status = status_of(message)
            if status is None:
                return Judgement(Verdict.WARN, describe_answer(message), "0210 was expected")
            statuses.append(status)
    finally:
        await link.close()
    observed = ", ".join(hex4(s) for s in statuses) or "no response"
    if Status.DUPLICATE_INVOCATION in statuses:
        return Judgement(Verdict.PASS, observed)
    if len(statuses) == 2:
        return Judgement(
            Verdict.WARN, observed, "both answered; 0210 Duplicate Invocation expected"
        )
    return Judgement(Verdict.FAIL, observed, "a request went unanswered")


async def _unknown_context(ctx: ProbeContext) -> Judgement:
    push = ctx.session.family.push
    link, answer = await negotiate(ctx, [(push, DEFAULT_TRANSFER_SYNTAXES)])
    try:
        if link.negotiated is None:
            return Judgement(Verdict.NA, describe_answer(answer))
        link.send_message(NGetRQ(1, push, f"{generate_uid()}"), 99)
        try:
            reply = await link.next_message(ctx.options.config.response_timeout)
        except TimeoutError:
            return Judgement(Verdict.WARN, "no reaction", "PS3.8: an A-ABORT was expected")
        except LinkClosed:
            return Judgement(Verdict.WARN, "connection closed without A-ABORT")
    finally:
        await link.close()
    status = status_of(reply)
    if status is None:
        return Judgement(Verdict.PASS, describe_answer(reply))
    verdict = Verdict.FAIL if succeeded(status) else Verdict.PASS
    return Judgement(verdict, f"answered {hex4(status)} on context 99")


def _check(name: str, reference: str, expected: str, sends: str, run: _Run) -> Check:
    return Check(
        f"{GROUP}.{name}", GROUP, reference, expected, _checked(run), hostile=True, sends=sends
    )


def _case(name: str) -> Check:
    check = case_check(CASES_BY_NAME[name], GROUP)
    return replace(check, run=_checked(check.run))


CHECKS: tuple[Check, ...] = (
    _check("malformed-uid.create", "PS3.5 9.1, PS3.7 C.4.2 (0117)",
           "each refused (0117 or 0106)", "N-CREATEs naming six malformed instance UIDs",
           _malformed_create),
    _check("malformed-uid.transaction", "PS3.5 9.1, PS3.7 C.4.2 (0106)",
           "0106 (refused)", "claim with Transaction UID 'not-a-uid'", _malformed_transaction),
    _check("malformed-uid.requested", "PS3.5 9.1, PS3.4 CC.2.7.4", "a refusal",
           "N-GET of instance '1..2.abc'", _malformed_requested),
    _check("oversized-data-set", "PS3.8 9.3.5, Annex D.1", "an answer; the association lives on",
           f"N-CREATE with a {_OVERSIZED}-byte value, within the Maximum PDU Length",
           _oversized),
    _case("unknown-action-type"),
    _case("create-global-uid"),
    _check("duplicate-message-id", "PS3.7 9.1.1.1, C.5.1 (0210)", "0210 for the second",
           "two N-GETs with Message ID 7, the first still outstanding",
           _duplicate_message_id),
    _check("unknown-presentation-context", "PS3.8 9.3.5, 9.2 (AA-8)", "A-ABORT (or a refusal)",
           "N-GET-RQ in a P-DATA-TF for presentation context 99, never proposed",
           _unknown_context),
)  # fmt: skip
