"""Negotiation: context selection, roles, windows, rejections, identity, both sides."""

from __future__ import annotations

import pytest

from ups.pdu.enums import ContextResult, RejectResult, RejectSource, UserIdentityType
from ups.pdu.items import (
    AsyncOpsWindow,
    PresentationContextRQ,
    RoleSelection,
    UserIdentityRQ,
    UserInformation,
)
from ups.pdu.negotiation import (
    AcceptorPolicy,
    IdentityVerifier,
    SyntaxSupport,
    bind_transport,
    evaluate_accept,
    identity_response,
    negotiate,
)
from ups.pdu.pdus import AAssociateAC, AAssociateRJ, AAssociateRQ

ECHO = "1.2.840.10008.1.1"
EVENT = "1.2.840.10008.5.1.4.34.6.4"
IMPLICIT, EXPLICIT, BIG = "1.2.840.10008.1.2", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.2"


def _policy(**kw: object) -> AcceptorPolicy:
    base: dict[str, object] = dict(
        ae_titles=frozenset({"LISTENER"}),
        supported={
            ECHO: SyntaxSupport((IMPLICIT, EXPLICIT)),
            EVENT: SyntaxSupport((IMPLICIT, EXPLICIT), requestor_scu=True, requestor_scp=True),
        },
        max_pdata_length=32768,
        implementation_class_uid="1.2.3.4",
        max_ops_invoked=4,
        max_ops_performed=64,
    )
    base.update(kw)
    return AcceptorPolicy(**base)  # type: ignore[arg-type]


def _rq(*contexts: PresentationContextRQ, **ui: object) -> AAssociateRQ:
    info = UserInformation(max_length=16384, implementation_class_uid="9.8.7", **ui)  # type: ignore[arg-type]
    return AAssociateRQ("LISTENER", "SENDER", contexts, info)


def test_first_acceptable_transfer_syntax_in_requestor_order() -> None:
    rq = _rq(
        PresentationContextRQ(1, ECHO, (BIG, EXPLICIT, IMPLICIT)),
        PresentationContextRQ(3, "1.2.3.999", (IMPLICIT,)),
        PresentationContextRQ(5, EVENT, (BIG,)),
    )
    ac, negotiated = negotiate(rq, _policy())
    assert isinstance(ac, AAssociateAC) and negotiated is not None
    results = {pc.context_id: (pc.result, pc.transfer_syntax) for pc in ac.presentation_contexts}
    assert results[1] == (ContextResult.ACCEPTANCE, EXPLICIT)
    assert results[3][0] == ContextResult.ABSTRACT_SYNTAX_NOT_SUPPORTED
    assert results[5][0] == ContextResult.TRANSFER_SYNTAXES_NOT_SUPPORTED
    assert list(negotiated.contexts) == [1]
    assert negotiated.remote_max_pdata_length == 16384
    assert negotiated.local_max_pdata_length == 32768
    assert ac.user_information.max_length == 32768
    mine = evaluate_accept(rq, ac)
    assert mine.contexts[1].transfer_syntax == EXPLICIT
    assert set(mine.rejected_contexts) == {3, 5}


def test_role_selection_as_dcm4chee_arc_proposes_it_is_answered() -> None:
    rq = _rq(
        PresentationContextRQ(1, EVENT, (IMPLICIT,)),
        role_selections=(RoleSelection(EVENT, False, True),),
    )
    ac, negotiated = negotiate(rq, _policy())
    assert isinstance(ac, AAssociateAC) and negotiated is not None
    assert ac.user_information.role_selections == (RoleSelection(EVENT, False, True),)
    assert negotiated.contexts[1].requestor_scp
    assert evaluate_accept(rq, ac).contexts[1].requestor_scp


def test_role_not_supported_is_refused_per_context() -> None:
    rq = _rq(
        PresentationContextRQ(1, ECHO, (IMPLICIT,)),
        role_selections=(RoleSelection(ECHO, False, True),),
    )
    ac, negotiated = negotiate(rq, _policy())
    assert isinstance(ac, AAssociateAC) and negotiated is not None
    assert ac.presentation_contexts[0].result == ContextResult.USER_REJECTION
    assert ac.user_information.role_selections == (RoleSelection(ECHO, False, False),)


def test_no_role_selection_means_no_reply_and_default_roles() -> None:
    ac, negotiated = negotiate(_rq(PresentationContextRQ(1, EVENT, (IMPLICIT,))), _policy())
    assert isinstance(ac, AAssociateAC) and negotiated is not None
    assert ac.user_information.role_selections == ()
    assert negotiated.contexts[1].requestor_scu and not negotiated.contexts[1].requestor_scp


@pytest.mark.parametrize(
    ("proposed", "expected_ac", "remote", "local"),
    [
        (None, None, 1, 1),
        (AsyncOpsWindow(16, 1), AsyncOpsWindow(16, 1), 16, 1),
        (AsyncOpsWindow(0, 0), AsyncOpsWindow(64, 4), 64, 4),
        (AsyncOpsWindow(100, 2), AsyncOpsWindow(64, 2), 64, 2),
    ],
)
def test_async_ops_window(
    proposed: AsyncOpsWindow | None, expected_ac: AsyncOpsWindow | None, remote: int, local: int
) -> None:
    rq = _rq(PresentationContextRQ(1, ECHO, (IMPLICIT,)), async_ops_window=proposed)
    ac, negotiated = negotiate(rq, _policy())
    assert isinstance(ac, AAssociateAC) and negotiated is not None
    assert ac.user_information.async_ops_window == expected_ac
    assert (negotiated.max_ops_remote_invokes, negotiated.max_ops_local_invokes) == (remote, local)
    mine = evaluate_accept(rq, ac)
    assert (mine.max_ops_local_invokes, mine.max_ops_remote_invokes) == (remote, local)


def test_unlimited_on_both_sides_stays_unlimited() -> None:
    rq = _rq(PresentationContextRQ(1, ECHO, (IMPLICIT,)), async_ops_window=AsyncOpsWindow(0, 0))
    ac, negotiated = negotiate(rq, _policy(max_ops_invoked=0, max_ops_performed=0))
    assert negotiated is not None and negotiated.max_ops_remote_invokes == 0


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"called": "OTHER"}, (RejectResult.REJECTED_PERMANENT, RejectSource.SERVICE_USER, 7)),
        ({"app": "1.2.3"}, (RejectResult.REJECTED_PERMANENT, RejectSource.SERVICE_USER, 2)),
        ({"version": 2}, (RejectResult.REJECTED_PERMANENT, RejectSource.SERVICE_PROVIDER_ACSE, 2)),
        ({"calling_only": True}, (RejectResult.REJECTED_PERMANENT, RejectSource.SERVICE_USER, 3)),
    ],
)
def test_rejections_have_the_standard_result_source_reason(
    change: dict[str, object], expected: tuple[int, int, int]
) -> None:
    rq = _rq(PresentationContextRQ(1, ECHO, (IMPLICIT,)))
    rq = AAssociateRQ(
        str(change.get("called", rq.called_ae_title)),
        rq.calling_ae_title,
        rq.presentation_contexts,
        rq.user_information,
        str(change.get("app", rq.application_context)),
        int(change.get("version", 1)),  # type: ignore[call-overload]
    )
    policy = _policy(
        calling_ae_titles=frozenset({"TRUSTED"}) if change.get("calling_only") else None
    )
    answer, negotiated = negotiate(rq, policy)
    assert negotiated is None
    assert isinstance(answer, AAssociateRJ)
    assert (answer.result, answer.source, answer.reason) == expected


def test_any_called_ae_when_unconfigured() -> None:
    rq = _rq(PresentationContextRQ(1, ECHO, (IMPLICIT,)))
    answer, _ = negotiate(rq, _policy(ae_titles=None))
    assert isinstance(answer, AAssociateAC)


def test_user_identity_verifier_accepts_with_response_or_rejects() -> None:
    ident = UserIdentityRQ(UserIdentityType.USERNAME_AND_PASSCODE, True, b"alice", b"s3cret")
    rq = _rq(PresentationContextRQ(1, ECHO, (IMPLICIT,)), user_identity_rq=ident)

    def verify(identity: UserIdentityRQ | None) -> bytes | bool:
        if (
            identity is not None
            and identity.primary_field == b"alice"
            and identity.secondary_field == b"s3cret"
        ):
            return b"welcome"
        return False

    ac, negotiated = negotiate(rq, _policy(verify_identity=verify))
    assert isinstance(ac, AAssociateAC) and negotiated is not None
    assert identity_response(ac) == b"welcome"
    assert negotiated.user_identity == ident
    bad = _rq(
        PresentationContextRQ(1, ECHO, (IMPLICIT,)),
        user_identity_rq=UserIdentityRQ(
            UserIdentityType.USERNAME_AND_PASSCODE, False, b"alice", b"no"
        ),
    )
    rj, _ = negotiate(bad, _policy(verify_identity=verify))
    assert isinstance(rj, AAssociateRJ)
    assert (rj.result, rj.source, rj.reason) == (1, 1, 1)
    missing, _ = negotiate(
        _rq(PresentationContextRQ(1, ECHO, (IMPLICIT,))), _policy(verify_identity=verify)
    )
    assert isinstance(missing, AAssociateRJ)


def test_bind_transport_gives_a_transport_bound_verifier_its_transport() -> None:
    """A server binds once; a plain callable verifier is left as it is."""

    def blind(identity: UserIdentityRQ | None) -> bytes | bool:
        return True

    policy = _policy(verify_identity=blind)
    assert bind_transport(policy, tls=False, allow_cleartext_passcodes=False) is policy

    class PasscodesOnlyOverTLS:
        def __init__(self, allowed: bool = False) -> None:
            self.allowed = allowed

        def __call__(self, identity: UserIdentityRQ | None) -> bytes | bool:
            return self.allowed

        def for_transport(self, *, tls: bool, allow_cleartext_passcodes: bool) -> IdentityVerifier:
            return PasscodesOnlyOverTLS(tls or allow_cleartext_passcodes)

    rq = _rq(
        PresentationContextRQ(1, ECHO, (IMPLICIT,)),
        user_identity_rq=UserIdentityRQ(
            UserIdentityType.USERNAME_AND_PASSCODE, False, b"alice", b"s3cret"
        ),
    )
    loose = _policy(verify_identity=PasscodesOnlyOverTLS())
    plain = bind_transport(loose, tls=False, allow_cleartext_passcodes=False)
    tls = bind_transport(loose, tls=True, allow_cleartext_passcodes=False)
    allowed = bind_transport(loose, tls=False, allow_cleartext_passcodes=True)
    assert isinstance(negotiate(rq, plain)[0], AAssociateRJ)
    assert isinstance(negotiate(rq, tls)[0], AAssociateAC)
    assert isinstance(negotiate(rq, allowed)[0], AAssociateAC)
