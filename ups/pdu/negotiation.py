"""Association negotiation, both sides, as pure functions (PS3.8 §7.1, PS3.7 Annex D).

The acceptor side turns an A-ASSOCIATE-RQ and an ``AcceptorPolicy`` into either an
A-ASSOCIATE-AC or an A-ASSOCIATE-RJ; the requestor side reads the AC it got back. Both
give the same ``Negotiated`` summary, which is all the runtime needs afterwards:
accepted contexts with their transfer syntax and roles, the maximum P-DATA-TF length
in each direction and the asynchronous operations window in each direction.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Protocol, runtime_checkable

from ups.pdu.enums import (
    APPLICATION_CONTEXT_NAME,
    PROTOCOL_VERSION_NOT_SUPPORTED,
    ContextResult,
    RejectReason,
    RejectResult,
    RejectSource,
)
from ups.pdu.items import (
    AsyncOpsWindow,
    PresentationContextAC,
    PresentationContextRQ,
    RoleSelection,
    UserIdentityAC,
    UserIdentityRQ,
    UserInformation,
)
from ups.pdu.pdus import AAssociateAC, AAssociateRJ, AAssociateRQ


@dataclass(frozen=True, slots=True)
class SyntaxSupport:
    """What the acceptor takes for one abstract syntax.

    ``transfer_syntaxes`` are acceptable ones (the requestor's order decides which is
    picked). ``requestor_scu``/``requestor_scp`` say which roles the *requestor* may
    take when it asks through SCP/SCU Role Selection (PS3.7 D.3.3.4): the default
    roles (requestor SCU, acceptor SCP) apply when it does not ask.
    """

    transfer_syntaxes: tuple[str, ...]
    requestor_scu: bool = True
    requestor_scp: bool = False


IdentityVerifier = Callable[[UserIdentityRQ | None], "bytes | bool"]
"""Returns False to reject, True to accept, or bytes: accept with this server response."""


@runtime_checkable
class TransportBoundVerifier(Protocol):
    """A verifier whose verdict depends on the transport its server listens on.

    A passcode (PS3.7 D.3.3.7, identity type 2) sent over plain TCP crosses the network in
    clear; PS3.15 B.12 is what protects it. A server knows whether it speaks TLS and binds
    such a verifier once, with :func:`bind_transport`, before accepting anything.
    """

    def __call__(self, identity: UserIdentityRQ | None) -> bytes | bool: ...

    def for_transport(self, *, tls: bool, allow_cleartext_passcodes: bool) -> IdentityVerifier:
        """This verifier for associations over TLS (``tls``) or over plain TCP."""
        ...


@dataclass(frozen=True, slots=True)
class AcceptorPolicy:
    """The acceptor's side of negotiation; ``None`` for AE sets means "accept any"."""

    ae_titles: frozenset[str] | None
    supported: Mapping[str, SyntaxSupport]
    max_pdata_length: int
    implementation_class_uid: str
    implementation_version_name: str | None = None
    calling_ae_titles: frozenset[str] | None = None
    max_ops_invoked: int = 1
    """How many operations we invoke at once on this association (0 = unlimited)."""
    max_ops_performed: int = 1
    """How many operations from the peer we perform at once (0 = unlimited)."""
    verify_identity: IdentityVerifier | None = None


def bind_transport(
    policy: AcceptorPolicy, *, tls: bool, allow_cleartext_passcodes: bool
) -> AcceptorPolicy:
    """``policy`` for a server on this transport: a transport-bound verifier learns it."""
    verifier = policy.verify_identity
    if not isinstance(verifier, TransportBoundVerifier):
        return policy
    bound = verifier.for_transport(tls=tls, allow_cleartext_passcodes=allow_cleartext_passcodes)
    return replace(policy, verify_identity=bound)


@dataclass(frozen=True, slots=True)
class AcceptedContext:
    context_id: int
    abstract_syntax: str
    transfer_syntax: str
    requestor_scu: bool = True
    requestor_scp: bool = False


@dataclass(frozen=True, slots=True)
class Negotiated:
    """The outcome of a successful negotiation, seen from our side of the association."""

    requestor: bool
    local_ae_title: str
    remote_ae_title: str
    contexts: Mapping[int, AcceptedContext]
    local_max_pdata_length: int
    """What we announced: the largest P-DATA-TF we accept (0 = unlimited)."""
    remote_max_pdata_length: int
    """What the peer announced: the largest P-DATA-TF we may send (0 = unlimited)."""
    max_ops_local_invokes: int
    max_ops_remote_invokes: int
    remote_implementation_class_uid: str
    remote_implementation_version_name: str | None = None
    user_identity: UserIdentityRQ | None = None
    rejected_contexts: Mapping[int, ContextResult] = field(default_factory=dict)

    def context_for(self, abstract_syntax: str) -> AcceptedContext | None:
        """The first accepted context for ``abstract_syntax``, if any."""
        for context in self.contexts.values():
            if context.abstract_syntax == abstract_syntax:
                return context
        return None


def _min_window(proposed: int, limit: int) -> int:
    """Combine two window sizes where 0 means unlimited (PS3.7 D.3.3.3)."""
    if proposed == 0:
        return limit
    if limit == 0:
        return proposed
    return min(proposed, limit)


def _reject(result: RejectResult, source: RejectSource, reason: int) -> AAssociateRJ:
    return AAssociateRJ(result, source, reason)


def check_request(rq: AAssociateRQ, policy: AcceptorPolicy) -> AAssociateRJ | None:
    """The A-ASSOCIATE-RJ that ``rq`` earns before its contexts are looked at, if any."""
    if not rq.protocol_version & 1:
        return _reject(
            RejectResult.REJECTED_PERMANENT,
            RejectSource.SERVICE_PROVIDER_ACSE,
            PROTOCOL_VERSION_NOT_SUPPORTED,
        )
    if rq.application_context != APPLICATION_CONTEXT_NAME:
        return _reject(
            RejectResult.REJECTED_PERMANENT,
            RejectSource.SERVICE_USER,
            RejectReason.USER_APPLICATION_CONTEXT_NOT_SUPPORTED,
        )
    if policy.ae_titles is not None and rq.called_ae_title not in policy.ae_titles:
        return _reject(
            RejectResult.REJECTED_PERMANENT,
            RejectSource.SERVICE_USER,
            RejectReason.USER_CALLED_AE_NOT_RECOGNIZED,
        )
    if policy.calling_ae_titles is not None and rq.calling_ae_title not in policy.calling_ae_titles:
        return _reject(
            RejectResult.REJECTED_PERMANENT,
            RejectSource.SERVICE_USER,
            RejectReason.USER_CALLING_AE_NOT_RECOGNIZED,
        )
    return None


IDENTITY_REJECTION = AAssociateRJ(
    RejectResult.REJECTED_PERMANENT, RejectSource.SERVICE_USER, RejectReason.NO_REASON_GIVEN
)
"""What a refused user identity gets. PS3.7 D.3.3.7 leaves the choice open; this is
documented in the README: permanent, service user, no reason given (1/1/1)."""


class _Contexts:
    """The acceptor's answer to each proposed presentation context (PS3.8 §9.3.3.2,
    Annex D.3.3.4 for SCP/SCU Role Selection), collected as ``negotiate`` goes."""

    def __init__(self) -> None:
        self.answers: list[PresentationContextAC] = []
        self.accepted: dict[int, AcceptedContext] = {}
        self.rejected: dict[int, ContextResult] = {}
        self.role_replies: dict[str, RoleSelection] = {}

    def answer(
        self,
        pc: PresentationContextRQ,
        support: SyntaxSupport | None,
        proposed_roles: Mapping[str, RoleSelection],
    ) -> None:
        if support is None:
            result = ContextResult.ABSTRACT_SYNTAX_NOT_SUPPORTED
            syntax = pc.transfer_syntaxes[0]
        else:
            syntax = next(
                (ts for ts in pc.transfer_syntaxes if ts in support.transfer_syntaxes), ""
            )
            result = (
                ContextResult.ACCEPTANCE
                if syntax
                else ContextResult.TRANSFER_SYNTAXES_NOT_SUPPORTED
            )
        if result == ContextResult.ACCEPTANCE and support is not None:
            result = self._roles(pc, syntax, support, proposed_roles.get(pc.abstract_syntax))
        if result != ContextResult.ACCEPTANCE:
            self.rejected[pc.context_id] = result
            syntax = pc.transfer_syntaxes[0]
        self.answers.append(PresentationContextAC(pc.context_id, result, syntax))

    def _roles(
        self,
        pc: PresentationContextRQ,
        syntax: str,
        support: SyntaxSupport,
        asked: RoleSelection | None,
    ) -> ContextResult:
        scu, scp = True, False
        if asked is not None:
            scu = asked.scu_role and support.requestor_scu
            scp = asked.scp_role and support.requestor_scp
            self.role_replies[pc.abstract_syntax] = RoleSelection(pc.abstract_syntax, scu, scp)
            if not scu and not scp:
                return ContextResult.USER_REJECTION
        self.accepted[pc.context_id] = AcceptedContext(
            pc.context_id, pc.abstract_syntax, syntax, scu, scp
        )
        return ContextResult.ACCEPTANCE


def negotiate(
    rq: AAssociateRQ, policy: AcceptorPolicy
) -> tuple[AAssociateAC | AAssociateRJ, Negotiated | None]:
    """Answer ``rq``: an A-ASSOCIATE-AC with a ``Negotiated`` summary, or an RJ and None."""
    rejection = check_request(rq, policy)
    if rejection is not None:
        return rejection, None
    identity_response: bytes | None = None
    rq_info = rq.user_information
    if policy.verify_identity is not None:
        verdict = policy.verify_identity(rq_info.user_identity_rq)
        if verdict is False:
            return IDENTITY_REJECTION, None
        if isinstance(verdict, bytes):
            identity_response = verdict

    contexts = _Contexts()
    proposed_roles = {role.sop_class_uid: role for role in rq_info.role_selections}
    for pc in rq.presentation_contexts:
        contexts.answer(pc, policy.supported.get(pc.abstract_syntax), proposed_roles)

    window_rq = rq_info.async_ops_window
    window_ac: AsyncOpsWindow | None = None
    remote_invokes = local_invokes = 1
    if window_rq is not None:
        remote_invokes = _min_window(window_rq.max_ops_invoked, policy.max_ops_performed)
        local_invokes = _min_window(window_rq.max_ops_performed, policy.max_ops_invoked)
        window_ac = AsyncOpsWindow(remote_invokes, local_invokes)

    identity = rq_info.user_identity_rq
    identity_ac = None
    if (
        identity is not None
        and identity.positive_response_requested
        and identity_response is not None
    ):
        identity_ac = UserIdentityAC(identity_response)

    ac = AAssociateAC(
        called_ae_title=rq.called_ae_title,
        calling_ae_title=rq.calling_ae_title,
        presentation_contexts=tuple(contexts.answers),
        user_information=UserInformation(
            max_length=policy.max_pdata_length,
            implementation_class_uid=policy.implementation_class_uid,
            implementation_version_name=policy.implementation_version_name,
            async_ops_window=window_ac,
            role_selections=tuple(contexts.role_replies.values()),
            user_identity_ac=identity_ac,
        ),
    )
    negotiated = Negotiated(
        requestor=False,
        local_ae_title=rq.called_ae_title,
        remote_ae_title=rq.calling_ae_title,
        contexts=contexts.accepted,
        local_max_pdata_length=policy.max_pdata_length,
        remote_max_pdata_length=rq_info.max_length,
        max_ops_local_invokes=local_invokes,
        max_ops_remote_invokes=remote_invokes,
        remote_implementation_class_uid=rq_info.implementation_class_uid,
        remote_implementation_version_name=rq_info.implementation_version_name,
        user_identity=identity,
        rejected_contexts=contexts.rejected,
    )
    return ac, negotiated


def evaluate_accept(rq: AAssociateRQ, ac: AAssociateAC) -> Negotiated:
    """The requestor's view of the association the acceptor granted."""
    proposed = {pc.context_id: pc for pc in rq.presentation_contexts}
    proposed_roles = {role.sop_class_uid: role for role in rq.user_information.role_selections}
    replied_roles = {role.sop_class_uid: role for role in ac.user_information.role_selections}
    accepted: dict[int, AcceptedContext] = {}
    rejected: dict[int, ContextResult] = {}
    for answer in ac.presentation_contexts:
        request = proposed.get(answer.context_id)
        if request is None:
            continue  # an answer to a context we never proposed is ignored
        if answer.result != ContextResult.ACCEPTANCE:
            rejected[answer.context_id] = answer.result
            continue
        scu, scp = True, False
        if request.abstract_syntax in proposed_roles:
            reply = replied_roles.get(request.abstract_syntax)
            if reply is not None:
                asked = proposed_roles[request.abstract_syntax]
                scu, scp = reply.scu_role and asked.scu_role, reply.scp_role and asked.scp_role
        accepted[answer.context_id] = AcceptedContext(
            answer.context_id, request.abstract_syntax, answer.transfer_syntax, scu, scp
        )
    for context_id in proposed:
        if context_id not in accepted and context_id not in rejected:
            rejected[context_id] = ContextResult.NO_REASON
    local_invokes = remote_invokes = 1
    rq_window = rq.user_information.async_ops_window
    ac_window = ac.user_information.async_ops_window
    if rq_window is not None and ac_window is not None:
        # AC values are the requestor's: what it may invoke, and what it must perform.
        local_invokes = _min_window(rq_window.max_ops_invoked, ac_window.max_ops_invoked)
        remote_invokes = _min_window(rq_window.max_ops_performed, ac_window.max_ops_performed)
    return Negotiated(
        requestor=True,
        local_ae_title=rq.calling_ae_title,
        remote_ae_title=rq.called_ae_title,
        contexts=accepted,
        local_max_pdata_length=rq.user_information.max_length,
        remote_max_pdata_length=ac.user_information.max_length,
        max_ops_local_invokes=local_invokes,
        max_ops_remote_invokes=remote_invokes,
        remote_implementation_class_uid=ac.user_information.implementation_class_uid,
        remote_implementation_version_name=ac.user_information.implementation_version_name,
        user_identity=rq.user_information.user_identity_rq,
        rejected_contexts=rejected,
    )


def identity_response(ac: AAssociateAC) -> bytes | None:
    """The server response to our user identity request, if the acceptor sent one."""
    answer = ac.user_information.user_identity_ac
    return None if answer is None else answer.server_response
