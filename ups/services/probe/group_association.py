"""The association group: what the SCP negotiates, read from its A-ASSOCIATE-AC (PS3.8 9.3.3).

Each check opens its own association with :class:`~ups.services.probe.rawlink.RawLink`,
so the items of the answer are seen as sent: which UPS SOP Classes of each family and
which transfer syntaxes are accepted (PS3.4 CC.3.1, PS3.5 10.1), the SCP/SCU Role
Selection reply (PS3.7 D.3.3.4), the Asynchronous Operations Window reply and whether
the window is honoured (D.3.3.3), an abstract syntax the SCP cannot know (PS3.8
9.3.3.2: rejected, result 3, the association still accepted), and A-RELEASE (9.3.7).
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import replace

from ups.dimse.fragment import RejectedMessage
from ups.dimse.messages import NGetRQ
from ups.net.requestor import build_request
from ups.pdu.enums import ContextResult
from ups.pdu.items import RoleSelection
from ups.pdu.pdus import PDU, AAbort, AAssociateAC, AAssociateRJ, AReleaseRP
from ups.services.probe.context import ProbeContext
from ups.services.probe.model import Check, Judgement, Verdict
from ups.services.probe.rawlink import LinkClosed, RawLink, status_of
from ups.services.uids import (
    DEFAULT_TRANSFER_SYNTAXES,
    DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN,
    EXPLICIT_VR_BIG_ENDIAN,
    EXPLICIT_VR_LITTLE_ENDIAN,
    FINAL,
    IMPLICIT_VR_LITTLE_ENDIAN,
    TRIAL,
    UPSFamily,
)

__all__ = ["CHECKS", "negotiate", "describe_answer"]

GROUP = "association"
UNKNOWN_ABSTRACT_SYNTAX = "1.2.826.0.1.3680043.9.7433.99.1"
"""An abstract syntax no SCP knows (a UID under a private root, never registered)."""
_SYNTAXES = (
    (IMPLICIT_VR_LITTLE_ENDIAN, "Implicit VR LE"),
    (EXPLICIT_VR_LITTLE_ENDIAN, "Explicit VR LE"),
    (DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN, "Deflated"),
    (EXPLICIT_VR_BIG_ENDIAN, "Big Endian"),
)


def describe_answer(pdu: object) -> str:
    """A PDU (or an unreadable message) in a few words, for the observed column."""
    if isinstance(pdu, RejectedMessage):
        return f"an unreadable response ({pdu.error})"
    if isinstance(pdu, AAssociateRJ):
        return f"A-ASSOCIATE-RJ {int(pdu.result)}/{int(pdu.source)}/{pdu.reason}"
    if isinstance(pdu, AAbort):
        return f"A-ABORT source {int(pdu.source)} reason {int(pdu.reason)}"
    return type(pdu).__name__


async def negotiate(
    ctx: ProbeContext,
    contexts: Sequence[tuple[str, Sequence[str]]],
    *,
    roles: Sequence[RoleSelection] = (),
    window: tuple[int, int] = (1, 1),
) -> tuple[RawLink, PDU]:
    """Open a raw association proposing ``contexts``; the link and the SCP's answer."""
    options = ctx.options
    config = replace(options.config, max_ops_invoked=window[0], max_ops_performed=window[1])
    rq = build_request(options.called_ae, options.calling_ae, contexts, config, roles=roles)
    link = await RawLink.connect(options.host, options.port, options.config.connect_timeout or 5.0)
    try:
        answer = await link.associate(rq, options.config.accept_timeout)
    except BaseException:
        await link.close()
        raise
    return link, answer


async def _release(link: RawLink, timeout: float) -> None:
    with contextlib.suppress(Exception):
        await link.release(timeout)
    await link.close()


def _accepted(answer: PDU) -> dict[int, str]:
    """Context ID -> transfer syntax of each accepted presentation context."""
    if not isinstance(answer, AAssociateAC):
        return {}
    return {
        pc.context_id: pc.transfer_syntax
        for pc in answer.presentation_contexts
        if pc.result == ContextResult.ACCEPTANCE
    }


def _family_check(family: UPSFamily) -> Check:
    async def run(ctx: ProbeContext) -> Judgement:
        if ctx.options.family not in ("auto", family.name):
            return Judgement(Verdict.NA, f"--{'trial' if family is FINAL else 'final'} given")
        uids = family.uids
        link, answer = await negotiate(ctx, [(uid, DEFAULT_TRANSFER_SYNTAXES) for uid in uids])
        await _release(link, ctx.options.config.release_timeout)
        if not isinstance(answer, AAssociateAC):
            verdict = Verdict.FAIL if family is FINAL else Verdict.WARN
            return Judgement(verdict, describe_answer(answer))
        accepted = _accepted(answer)
        have = [uid for i, uid in enumerate(uids) if 2 * i + 1 in accepted]
        got = [str(family.role_of(uid)).capitalize() for uid in have]
        core = {family.push, family.pull, family.watch}
        observed = f"accepted: {', '.join(got) or 'none'}"
        if core <= set(have):
            return Judgement(Verdict.PASS, observed)
        if family is FINAL and not have:
            return Judgement(Verdict.FAIL, observed)
        return Judgement(Verdict.WARN, observed, "Push, Pull and Watch are what the probe needs")

    return Check(
        f"{GROUP}.{family.name}-sop-classes",
        GROUP,
        "PS3.4 CC.3.1, PS3.8 9.3.3.2",
        "UPS Push, Pull and Watch accepted" + (" (retired: warn)" if family is TRIAL else ""),
        run,
        sends=f"A-ASSOCIATE-RQ proposing every {family.name} UPS SOP Class",
    )


def _push_uid(ctx: ProbeContext) -> str:
    return TRIAL.push if ctx.options.family == "trial" else FINAL.push


async def _transfer_syntaxes(ctx: ProbeContext) -> Judgement:
    push = _push_uid(ctx)
    link, answer = await negotiate(ctx, [(push, (uid,)) for uid, _ in _SYNTAXES])
    await _release(link, ctx.options.config.release_timeout)
    if not isinstance(answer, AAssociateAC):
        return Judgement(Verdict.FAIL, describe_answer(answer))
    accepted = _accepted(answer)
    got = [name for i, (_, name) in enumerate(_SYNTAXES) if 2 * i + 1 in accepted]
    observed = f"accepted: {', '.join(got) or 'none'}"
    implicit_ok = accepted.get(1) == IMPLICIT_VR_LITTLE_ENDIAN
    return Judgement(Verdict.PASS if implicit_ok else Verdict.FAIL, observed)


async def _role_selection(ctx: ProbeContext) -> Judgement:
    family = TRIAL if ctx.options.family == "trial" else FINAL
    roles = [RoleSelection(family.watch, True, False)]
    link, answer = await negotiate(ctx, [(family.watch, DEFAULT_TRANSFER_SYNTAXES)], roles=roles)
    await _release(link, ctx.options.config.release_timeout)
    if not isinstance(answer, AAssociateAC):
        return Judgement(Verdict.FAIL, describe_answer(answer))
    if 1 not in _accepted(answer):
        return Judgement(Verdict.FAIL, "UPS Watch rejected when its SCU role was asked for")
    replies = [
        r for r in answer.user_information.role_selections if r.sop_class_uid == family.watch
    ]
    if not replies:
        return Judgement(Verdict.PASS, "no reply item: default roles (requestor SCU)")
    reply = replies[0]
    observed = f"reply SCU {int(reply.scu_role)} / SCP {int(reply.scp_role)}"
    return Judgement(Verdict.PASS if reply.scu_role else Verdict.FAIL, observed)


async def _async_window(ctx: ProbeContext) -> Judgement:
    family = TRIAL if ctx.options.family == "trial" else FINAL
    link, answer = await negotiate(ctx, [(family.push, DEFAULT_TRANSFER_SYNTAXES)], window=(4, 1))
    try:
        if not isinstance(answer, AAssociateAC) or 1 not in _accepted(answer):
            return Judgement(Verdict.FAIL, describe_answer(answer))
        item = answer.user_information.async_ops_window
        if item is None:
            return Judgement(Verdict.PASS, "no reply item: one operation at a time")
        observed = f"reply invoked {item.max_ops_invoked} / performed {item.max_ops_performed}"
        # The AC values: what we may invoke, and what the SCP will invoke at us.
        if not 1 <= item.max_ops_invoked <= 4 or not 1 <= item.max_ops_performed <= 1:
            return Judgement(Verdict.FAIL, observed, "a reply above what was proposed")
        count = item.max_ops_invoked
        for message_id in range(1, count + 1):
            unknown = f"{FINAL.push}.999.{message_id}"
            link.send_message(NGetRQ(message_id, family.push, unknown), 1)
        answered = 0
        for _ in range(count):
            message = await link.next_message(ctx.options.config.response_timeout)
            if status_of(message) is None:
                return Judgement(Verdict.FAIL, f"{observed}; {describe_answer(message)}")
            answered += 1
        return Judgement(Verdict.PASS, f"{observed}; {answered} N-GETs at once all answered")
    finally:
        await _release(link, ctx.options.config.release_timeout)


async def _unknown_abstract_syntax(ctx: ProbeContext) -> Judgement:
    contexts = [(_push_uid(ctx), DEFAULT_TRANSFER_SYNTAXES)]
    contexts.append((UNKNOWN_ABSTRACT_SYNTAX, DEFAULT_TRANSFER_SYNTAXES))
    link, answer = await negotiate(ctx, contexts)
    await _release(link, ctx.options.config.release_timeout)
    if not isinstance(answer, AAssociateAC):
        return Judgement(Verdict.FAIL, f"whole association refused: {describe_answer(answer)}")
    results = {pc.context_id: pc.result for pc in answer.presentation_contexts}
    result = results.get(3)
    if result is None:
        return Judgement(Verdict.FAIL, "no answer for the proposed context")
    observed = f"context result {int(result)}"
    if result == ContextResult.ABSTRACT_SYNTAX_NOT_SUPPORTED:
        return Judgement(Verdict.PASS, observed)
    if result == ContextResult.ACCEPTANCE:
        return Judgement(Verdict.FAIL, observed + " (accepted)")
    return Judgement(Verdict.WARN, observed, "PS3.8 Table 9-18: 3 abstract-syntax-not-supported")


async def _release_check(ctx: ProbeContext) -> Judgement:
    link, answer = await negotiate(ctx, [(_push_uid(ctx), DEFAULT_TRANSFER_SYNTAXES)])
    try:
        if not isinstance(answer, AAssociateAC):
            return Judgement(Verdict.FAIL, describe_answer(answer))
        try:
            reply = await link.release(ctx.options.config.release_timeout)
        except LinkClosed:
            return Judgement(Verdict.FAIL, "connection closed without A-RELEASE-RP")
        except TimeoutError:
            return Judgement(Verdict.FAIL, "no A-RELEASE-RP within the release timeout")
        verdict = Verdict.PASS if isinstance(reply, AReleaseRP) else Verdict.FAIL
        return Judgement(verdict, describe_answer(reply).replace("AReleaseRP", "A-RELEASE-RP"))
    finally:
        await link.close()


CHECKS: tuple[Check, ...] = (
    _family_check(FINAL),
    _family_check(TRIAL),
    Check(
        f"{GROUP}.transfer-syntaxes",
        GROUP,
        "PS3.5 10.1, PS3.8 9.3.3.2",
        "Implicit VR LE accepted (others recorded)",
        _transfer_syntaxes,
        sends="UPS Push in four contexts, one transfer syntax each",
    ),
    Check(
        f"{GROUP}.role-selection",
        GROUP,
        "PS3.7 D.3.3.4",
        "requestor keeps the SCU role (reply SCU 1, or no reply item)",
        _role_selection,
        sends="UPS Watch with an SCP/SCU Role Selection item asking SCU 1 / SCP 0",
    ),
    Check(
        f"{GROUP}.async-window",
        GROUP,
        "PS3.7 D.3.3.3",
        "reply within 4/1; that many requests at once all answered",
        _async_window,
        sends="Asynchronous Operations Window 4 invoked / 1 performed, then N-GETs at once",
    ),
    Check(
        f"{GROUP}.unknown-abstract-syntax",
        GROUP,
        "PS3.8 9.3.3.2, Table 9-18",
        "context rejected with result 3, association accepted",
        _unknown_abstract_syntax,
        sends=f"UPS Push and an unknown abstract syntax {UNKNOWN_ABSTRACT_SYNTAX}",
    ),
    Check(
        f"{GROUP}.release",
        GROUP,
        "PS3.8 9.3.7, 9.2 (AR-1..AR-4)",
        "A-RELEASE-RP",
        _release_check,
        sends="A-RELEASE-RQ on an idle association",
    ),
)
