"""Numeric codes of the DICOM Upper Layer protocol (PS3.8 §9.3, Annex D).

Everything here is a wire value; names follow the standard's wording so a reader can
check each one against PS3.8 Tables 9-21 (A-ASSOCIATE-RJ) and 9-26 (A-ABORT).
"""

from __future__ import annotations

from enum import IntEnum


class PDUType(IntEnum):
    """PDU type byte (PS3.8 §9.3.1)."""

    A_ASSOCIATE_RQ = 0x01
    A_ASSOCIATE_AC = 0x02
    A_ASSOCIATE_RJ = 0x03
    P_DATA_TF = 0x04
    A_RELEASE_RQ = 0x05
    A_RELEASE_RP = 0x06
    A_ABORT = 0x07


class ItemType(IntEnum):
    """Item and sub-item type bytes (PS3.8 §9.3.2-9.3.3, PS3.7 Annex D)."""

    APPLICATION_CONTEXT = 0x10
    PRESENTATION_CONTEXT_RQ = 0x20
    PRESENTATION_CONTEXT_AC = 0x21
    ABSTRACT_SYNTAX = 0x30
    TRANSFER_SYNTAX = 0x40
    USER_INFORMATION = 0x50
    MAXIMUM_LENGTH = 0x51
    IMPLEMENTATION_CLASS_UID = 0x52
    ASYNCHRONOUS_OPERATIONS_WINDOW = 0x53
    SCP_SCU_ROLE_SELECTION = 0x54
    IMPLEMENTATION_VERSION_NAME = 0x55
    SOP_CLASS_EXTENDED_NEGOTIATION = 0x56
    SOP_CLASS_COMMON_EXTENDED_NEGOTIATION = 0x57
    USER_IDENTITY_RQ = 0x58
    USER_IDENTITY_AC = 0x59


class AbortSource(IntEnum):
    """A-ABORT source (PS3.8 Table 9-26). 1 is reserved."""

    SERVICE_USER = 0
    RESERVED = 1
    SERVICE_PROVIDER = 2


class AbortReason(IntEnum):
    """A-ABORT reason/diag., meaningful when the source is the service provider."""

    NOT_SPECIFIED = 0
    UNRECOGNIZED_PDU = 1
    UNEXPECTED_PDU = 2
    RESERVED = 3
    UNRECOGNIZED_PDU_PARAMETER = 4
    UNEXPECTED_PDU_PARAMETER = 5
    INVALID_PDU_PARAMETER_VALUE = 6


class RejectResult(IntEnum):
    """A-ASSOCIATE-RJ result (PS3.8 Table 9-21)."""

    REJECTED_PERMANENT = 1
    REJECTED_TRANSIENT = 2


class RejectSource(IntEnum):
    """A-ASSOCIATE-RJ source (PS3.8 Table 9-21)."""

    SERVICE_USER = 1
    SERVICE_PROVIDER_ACSE = 2
    SERVICE_PROVIDER_PRESENTATION = 3


class RejectReason(IntEnum):
    """A-ASSOCIATE-RJ reason/diag.; its meaning depends on the source (Table 9-21).

    The numbers overlap between sources, so the names carry the source as a prefix.
    """

    NO_REASON_GIVEN = 1
    # source 1, service user
    USER_APPLICATION_CONTEXT_NOT_SUPPORTED = 2
    USER_CALLING_AE_NOT_RECOGNIZED = 3
    USER_CALLED_AE_NOT_RECOGNIZED = 7
    # source 2, service provider (ACSE): 2 = protocol version not supported
    # source 3, service provider (presentation): 1 = temporary congestion,
    # 2 = local limit exceeded. Same numbers as above, so use the aliases below.


PROTOCOL_VERSION_NOT_SUPPORTED = 2
"""Reject reason 2 with source 2 (ACSE)."""
TEMPORARY_CONGESTION = 1
"""Reject reason 1 with source 3 (presentation)."""
LOCAL_LIMIT_EXCEEDED = 2
"""Reject reason 2 with source 3 (presentation)."""


class ContextResult(IntEnum):
    """Presentation context result/reason in an A-ASSOCIATE-AC (PS3.8 Table 9-18)."""

    ACCEPTANCE = 0
    USER_REJECTION = 1
    NO_REASON = 2
    ABSTRACT_SYNTAX_NOT_SUPPORTED = 3
    TRANSFER_SYNTAXES_NOT_SUPPORTED = 4


class UserIdentityType(IntEnum):
    """User Identity Type (PS3.7 Table D.3-14)."""

    USERNAME = 1
    USERNAME_AND_PASSCODE = 2
    KERBEROS = 3
    SAML = 4
    JWT = 5


APPLICATION_CONTEXT_NAME = "1.2.840.10008.3.1.1.1"
"""The DICOM Application Context Name (PS3.7 Annex A.2.1)."""

PROTOCOL_VERSION = 1
"""Bit 0 of the protocol-version field (PS3.8 §9.3.2)."""


def describe_reject(result: int, source: int, reason: int) -> str:
    """The words of PS3.8 Table 9-21 for an A-ASSOCIATE-RJ."""
    results = {1: "rejected-permanent", 2: "rejected-transient"}
    reasons: dict[tuple[int, int], str] = {
        (1, 1): "no-reason-given",
        (1, 2): "application-context-name-not-supported",
        (1, 3): "calling-AE-title-not-recognized",
        (1, 7): "called-AE-title-not-recognized",
        (2, 1): "no-reason-given",
        (2, 2): "protocol-version-not-supported",
        (3, 1): "temporary-congestion",
        (3, 2): "local-limit-exceeded",
    }
    sources = {
        1: "service-user",
        2: "service-provider (ACSE)",
        3: "service-provider (presentation)",
    }
    return (
        f"{results.get(result, result)}, source {sources.get(source, source)}, "
        f"reason {reasons.get((source, reason), reason)}"
    )
