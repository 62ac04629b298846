"""The seven Upper Layer PDUs (PS3.8 §9.3) as frozen dataclasses.

These are the only representation of a PDU in the package: the framer decodes bytes
into them and ``codec.encode_pdu`` turns them back into bytes.
"""

from __future__ import annotations

from dataclasses import dataclass

from ups.pdu.enums import (
    APPLICATION_CONTEXT_NAME,
    PROTOCOL_VERSION,
    AbortReason,
    AbortSource,
    RejectResult,
    RejectSource,
)
from ups.pdu.items import PresentationContextAC, PresentationContextRQ, UserInformation


@dataclass(frozen=True, slots=True)
class AAssociateRQ:
    """A-ASSOCIATE-RQ (type 0x01)."""

    called_ae_title: str
    calling_ae_title: str
    presentation_contexts: tuple[PresentationContextRQ, ...]
    user_information: UserInformation
    application_context: str = APPLICATION_CONTEXT_NAME
    protocol_version: int = PROTOCOL_VERSION


@dataclass(frozen=True, slots=True)
class AAssociateAC:
    """A-ASSOCIATE-AC (type 0x02). The AE titles echo the request and are not tested."""

    called_ae_title: str
    calling_ae_title: str
    presentation_contexts: tuple[PresentationContextAC, ...]
    user_information: UserInformation
    application_context: str = APPLICATION_CONTEXT_NAME
    protocol_version: int = PROTOCOL_VERSION


@dataclass(frozen=True, slots=True)
class AAssociateRJ:
    """A-ASSOCIATE-RJ (type 0x03). ``reason`` is interpreted per ``source`` (Table 9-21)."""

    result: RejectResult
    source: RejectSource
    reason: int


@dataclass(frozen=True, slots=True)
class PDV:
    """One Presentation Data Value item of a P-DATA-TF (PS3.8 §9.3.5.1, Annex E.2)."""

    context_id: int
    is_command: bool
    is_last: bool
    data: bytes


@dataclass(frozen=True, slots=True)
class PDataTF:
    """P-DATA-TF (type 0x04): one or more PDVs."""

    pdvs: tuple[PDV, ...]


@dataclass(frozen=True, slots=True)
class AReleaseRQ:
    """A-RELEASE-RQ (type 0x05)."""


@dataclass(frozen=True, slots=True)
class AReleaseRP:
    """A-RELEASE-RP (type 0x06)."""


@dataclass(frozen=True, slots=True)
class AAbort:
    """A-ABORT (type 0x07). ``reason`` is significant only from the service provider."""

    source: AbortSource = AbortSource.SERVICE_USER
    reason: AbortReason = AbortReason.NOT_SPECIFIED


PDU = AAssociateRQ | AAssociateAC | AAssociateRJ | PDataTF | AReleaseRQ | AReleaseRP | AAbort
