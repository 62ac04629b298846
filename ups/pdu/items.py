"""Items and user-information sub-items of the association PDUs.

PS3.8 §9.3.2-9.3.3 (application context, presentation contexts, abstract/transfer
syntax, user information) and PS3.7 Annex D.3.3 (maximum length, implementation
identification, asynchronous operations window, SCP/SCU role selection, SOP class
extended and common extended negotiation, user identity). One frozen dataclass per
concept, used both to send and to receive; the byte layout lives in ``codec``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ups.pdu.enums import ContextResult, UserIdentityType


@dataclass(frozen=True, slots=True)
class PresentationContextRQ:
    """A proposed presentation context (item 0x20): one abstract syntax, 1+ transfer syntaxes."""

    context_id: int
    abstract_syntax: str
    transfer_syntaxes: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class PresentationContextAC:
    """A presentation context answer (item 0x21).

    ``transfer_syntax`` is significant only when ``result`` is acceptance; PS3.8 says a
    receiver must not test it otherwise, so it may be empty then.
    """

    context_id: int
    result: ContextResult
    transfer_syntax: str


@dataclass(frozen=True, slots=True)
class AsyncOpsWindow:
    """Asynchronous Operations Window sub-item (0x53); 0 means unlimited (PS3.7 D.3.3.3)."""

    max_ops_invoked: int
    max_ops_performed: int


@dataclass(frozen=True, slots=True)
class RoleSelection:
    """SCP/SCU Role Selection sub-item (0x54) for one SOP class (PS3.7 D.3.3.4)."""

    sop_class_uid: str
    scu_role: bool
    scp_role: bool


@dataclass(frozen=True, slots=True)
class SOPClassExtendedNegotiation:
    """SOP Class Extended Negotiation sub-item (0x56): opaque service-class bytes."""

    sop_class_uid: str
    service_class_application_information: bytes


@dataclass(frozen=True, slots=True)
class SOPClassCommonExtendedNegotiation:
    """SOP Class Common Extended Negotiation sub-item (0x57, PS3.7 D.3.3.6)."""

    sop_class_uid: str
    service_class_uid: str
    related_general_sop_classes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class UserIdentityRQ:
    """User Identity Negotiation request sub-item (0x58, PS3.7 D.3.3.7.1).

    ``secondary_field`` is the passcode for type 2 and empty otherwise.
    """

    identity_type: UserIdentityType
    positive_response_requested: bool
    primary_field: bytes
    secondary_field: bytes = b""

    def __repr__(self) -> str:
        # Secrets never reach a log through repr().
        return (
            f"UserIdentityRQ(identity_type={self.identity_type!r}, "
            f"positive_response_requested={self.positive_response_requested}, "
            f"primary_field=<{len(self.primary_field)} bytes>, "
            f"secondary_field=<{len(self.secondary_field)} bytes>)"
        )


@dataclass(frozen=True, slots=True)
class UserIdentityAC:
    """User Identity Negotiation response sub-item (0x59, PS3.7 D.3.3.7.2)."""

    server_response: bytes

    def __repr__(self) -> str:
        return f"UserIdentityAC(server_response=<{len(self.server_response)} bytes>)"


@dataclass(frozen=True, slots=True)
class UnknownSubItem:
    """A user-information sub-item this implementation does not know; kept, not fatal."""

    item_type: int
    data: bytes


@dataclass(frozen=True, slots=True)
class UserInformation:
    """User Information item (0x50) with all its sub-items.

    ``max_length`` is the Maximum Length Received (0 = no limit). Sub-items that PS3.7
    allows only in a request (common extended negotiation, identity RQ) or only in an
    accept (identity AC) are simply left empty on the other side.
    """

    max_length: int
    implementation_class_uid: str
    implementation_version_name: str | None = None
    async_ops_window: AsyncOpsWindow | None = None
    role_selections: tuple[RoleSelection, ...] = ()
    sop_class_extended: tuple[SOPClassExtendedNegotiation, ...] = ()
    sop_class_common_extended: tuple[SOPClassCommonExtendedNegotiation, ...] = ()
    user_identity_rq: UserIdentityRQ | None = None
    user_identity_ac: UserIdentityAC | None = None
    unknown: tuple[UnknownSubItem, ...] = field(default=())
