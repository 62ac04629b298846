"""DIMSE messages as frozen dataclasses (PS3.7 §9.3, §10.3): one per request and response.

C-ECHO, C-FIND, C-CANCEL, C-STORE and the six DIMSE-N services, used both to send and
to receive. Each names the command elements PS3.7 gives it (Tables 9.3-1 … 10.3-12) as
typed fields; ``dataset`` holds the raw data set bytes in the presentation context's
transfer syntax, or ``None`` when no data set follows (Command Data Set Type 0x0101,
PS3.7 E.1). ``extra`` keeps any other group 0000 elements a peer sent, sorted by tag,
so a decoded message re-encodes unchanged. Responses carry the status fields of PS3.7
Annex C: ``error_comment``, ``error_id``, ``offending_element`` and, on
N-GET/N-SET/N-CREATE, ``attribute_identifier_list``. Each class lists its elements once
(``_FIELDS``: tag, attribute, required); ``ups.dimse.messages`` encodes and decodes by it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Final

from ups.dimse.codec import (
    ACTION_TYPE_ID,
    AFFECTED_SOP_CLASS_UID,
    AFFECTED_SOP_INSTANCE_UID,
    ATTRIBUTE_IDENTIFIER_LIST,
    ERROR_COMMENT,
    ERROR_ID,
    EVENT_TYPE_ID,
    MESSAGE_ID,
    MESSAGE_ID_BEING_RESPONDED_TO,
    MOVE_ORIGINATOR_AE_TITLE,
    MOVE_ORIGINATOR_MESSAGE_ID,
    OFFENDING_ELEMENT,
    PRIORITY,
    REQUESTED_SOP_CLASS_UID,
    REQUESTED_SOP_INSTANCE_UID,
    RESPONSE_BIT,
    STATUS,
    CommandValue,
)

VERIFICATION_SOP_CLASS: Final = "1.2.840.10008.1.1"

# Priority (0000,0700), PS3.7 E.1.
PRIORITY_MEDIUM: Final = 0x0000
PRIORITY_HIGH: Final = 0x0001
PRIORITY_LOW: Final = 0x0002

Extra = tuple[tuple[int, CommandValue], ...]
_Fields = tuple[tuple[int, str, bool], ...]

# Shared response status fields (PS3.7 C.4, C.5).
_ERRORS: _Fields = (
    (ERROR_COMMENT, "error_comment", False),
    (ERROR_ID, "error_id", False),
    (OFFENDING_ELEMENT, "offending_element", False),
)
_RSP_HEAD: _Fields = (
    (AFFECTED_SOP_CLASS_UID, "affected_sop_class_uid", False),
    (MESSAGE_ID_BEING_RESPONDED_TO, "message_id_being_responded_to", True),
    (STATUS, "status", True),
)
_AFFECTED_INSTANCE: _Fields = ((AFFECTED_SOP_INSTANCE_UID, "affected_sop_instance_uid", False),)
_ATTRIBUTE_LIST: _Fields = ((ATTRIBUTE_IDENTIFIER_LIST, "attribute_identifier_list", False),)
_REQUESTED: _Fields = (
    (REQUESTED_SOP_CLASS_UID, "requested_sop_class_uid", True),
    (MESSAGE_ID, "message_id", True),
    (REQUESTED_SOP_INSTANCE_UID, "requested_sop_instance_uid", True),
)


# --- DIMSE-C ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CEchoRQ:
    """C-ECHO-RQ (PS3.7 §9.3.5.1)."""

    COMMAND_FIELD: ClassVar[int] = 0x0030
    _FIELDS: ClassVar[_Fields] = (
        (AFFECTED_SOP_CLASS_UID, "affected_sop_class_uid", True),
        (MESSAGE_ID, "message_id", True),
    )
    message_id: int
    affected_sop_class_uid: str = VERIFICATION_SOP_CLASS
    dataset: bytes | None = None
    extra: Extra = ()


@dataclass(frozen=True, slots=True)
class CEchoRSP:
    """C-ECHO-RSP (PS3.7 §9.3.5.2)."""

    COMMAND_FIELD: ClassVar[int] = 0x8030
    _FIELDS: ClassVar[_Fields] = _RSP_HEAD + _ERRORS
    message_id_being_responded_to: int
    status: int = 0x0000
    affected_sop_class_uid: str | None = None
    error_comment: str | None = None
    error_id: int | None = None
    offending_element: tuple[int, ...] | None = None
    dataset: bytes | None = None
    extra: Extra = ()


@dataclass(frozen=True, slots=True)
class CFindRQ:
    """C-FIND-RQ (PS3.7 §9.3.2.1); ``dataset`` is the Identifier."""

    COMMAND_FIELD: ClassVar[int] = 0x0020
    _FIELDS: ClassVar[_Fields] = (
        (AFFECTED_SOP_CLASS_UID, "affected_sop_class_uid", True),
        (MESSAGE_ID, "message_id", True),
        (PRIORITY, "priority", True),
    )
    message_id: int
    affected_sop_class_uid: str
    priority: int = PRIORITY_MEDIUM
    dataset: bytes | None = None
    extra: Extra = ()


@dataclass(frozen=True, slots=True)
class CFindRSP:
    """C-FIND-RSP (PS3.7 §9.3.2.2); a pending response carries an Identifier."""

    COMMAND_FIELD: ClassVar[int] = 0x8020
    _FIELDS: ClassVar[_Fields] = _RSP_HEAD + _ERRORS
    message_id_being_responded_to: int
    status: int
    affected_sop_class_uid: str | None = None
    error_comment: str | None = None
    error_id: int | None = None
    offending_element: tuple[int, ...] | None = None
    dataset: bytes | None = None
    extra: Extra = ()


@dataclass(frozen=True, slots=True)
class CCancelRQ:
    """C-CANCEL-RQ (PS3.7 §9.3.2.3): names the request to cancel, has no Message ID."""

    COMMAND_FIELD: ClassVar[int] = 0x0FFF
    _FIELDS: ClassVar[_Fields] = (
        (MESSAGE_ID_BEING_RESPONDED_TO, "message_id_being_responded_to", True),
    )
    message_id_being_responded_to: int
    dataset: bytes | None = None
    extra: Extra = ()


@dataclass(frozen=True, slots=True)
class CStoreRQ:
    """C-STORE-RQ (PS3.7 §9.3.1.1)."""

    COMMAND_FIELD: ClassVar[int] = 0x0001
    _FIELDS: ClassVar[_Fields] = (
        (AFFECTED_SOP_CLASS_UID, "affected_sop_class_uid", True),
        (MESSAGE_ID, "message_id", True),
        (PRIORITY, "priority", True),
        (AFFECTED_SOP_INSTANCE_UID, "affected_sop_instance_uid", True),
        (MOVE_ORIGINATOR_AE_TITLE, "move_originator_ae_title", False),
        (MOVE_ORIGINATOR_MESSAGE_ID, "move_originator_message_id", False),
    )
    message_id: int
    affected_sop_class_uid: str
    affected_sop_instance_uid: str
    priority: int = PRIORITY_MEDIUM
    move_originator_ae_title: str | None = None
    move_originator_message_id: int | None = None
    dataset: bytes | None = None
    extra: Extra = ()


@dataclass(frozen=True, slots=True)
class CStoreRSP:
    """C-STORE-RSP (PS3.7 §9.3.1.2)."""

    COMMAND_FIELD: ClassVar[int] = 0x8001
    _FIELDS: ClassVar[_Fields] = _RSP_HEAD + _ERRORS + _AFFECTED_INSTANCE
    message_id_being_responded_to: int
    status: int
    affected_sop_class_uid: str | None = None
    affected_sop_instance_uid: str | None = None
    error_comment: str | None = None
    error_id: int | None = None
    offending_element: tuple[int, ...] | None = None
    dataset: bytes | None = None
    extra: Extra = ()


# --- DIMSE-N ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NEventReportRQ:
    """N-EVENT-REPORT-RQ (PS3.7 §10.3.1.1); ``dataset`` is the Event Information."""

    COMMAND_FIELD: ClassVar[int] = 0x0100
    _FIELDS: ClassVar[_Fields] = (
        (AFFECTED_SOP_CLASS_UID, "affected_sop_class_uid", True),
        (MESSAGE_ID, "message_id", True),
        (AFFECTED_SOP_INSTANCE_UID, "affected_sop_instance_uid", True),
        (EVENT_TYPE_ID, "event_type_id", True),
    )
    message_id: int
    affected_sop_class_uid: str
    affected_sop_instance_uid: str
    event_type_id: int
    dataset: bytes | None = None
    extra: Extra = ()


@dataclass(frozen=True, slots=True)
class NEventReportRSP:
    """N-EVENT-REPORT-RSP (PS3.7 §10.3.1.2); ``dataset`` is the Event Reply."""

    COMMAND_FIELD: ClassVar[int] = 0x8100
    _FIELDS: ClassVar[_Fields] = (
        _RSP_HEAD + _ERRORS + _AFFECTED_INSTANCE + ((EVENT_TYPE_ID, "event_type_id", False),)
    )
    message_id_being_responded_to: int
    status: int
    affected_sop_class_uid: str | None = None
    affected_sop_instance_uid: str | None = None
    event_type_id: int | None = None
    error_comment: str | None = None
    error_id: int | None = None
    offending_element: tuple[int, ...] | None = None
    dataset: bytes | None = None
    extra: Extra = ()


@dataclass(frozen=True, slots=True)
class NGetRQ:
    """N-GET-RQ (PS3.7 §10.3.2.1); no list means "all attributes"."""

    COMMAND_FIELD: ClassVar[int] = 0x0110
    _FIELDS: ClassVar[_Fields] = _REQUESTED + _ATTRIBUTE_LIST
    message_id: int
    requested_sop_class_uid: str
    requested_sop_instance_uid: str
    attribute_identifier_list: tuple[int, ...] | None = None
    dataset: bytes | None = None
    extra: Extra = ()


@dataclass(frozen=True, slots=True)
class NGetRSP:
    """N-GET-RSP (PS3.7 §10.3.2.2); ``dataset`` is the Attribute List."""

    COMMAND_FIELD: ClassVar[int] = 0x8110
    _FIELDS: ClassVar[_Fields] = _RSP_HEAD + _ERRORS + _AFFECTED_INSTANCE + _ATTRIBUTE_LIST
    message_id_being_responded_to: int
    status: int
    affected_sop_class_uid: str | None = None
    affected_sop_instance_uid: str | None = None
    error_comment: str | None = None
    error_id: int | None = None
    offending_element: tuple[int, ...] | None = None
    attribute_identifier_list: tuple[int, ...] | None = None
    dataset: bytes | None = None
    extra: Extra = ()


@dataclass(frozen=True, slots=True)
class NSetRQ:
    """N-SET-RQ (PS3.7 §10.3.3.1); ``dataset`` is the Modification List."""

    COMMAND_FIELD: ClassVar[int] = 0x0120
    _FIELDS: ClassVar[_Fields] = _REQUESTED
    message_id: int
    requested_sop_class_uid: str
    requested_sop_instance_uid: str
    dataset: bytes | None = None
    extra: Extra = ()


@dataclass(frozen=True, slots=True)
class NSetRSP:
    """N-SET-RSP (PS3.7 §10.3.3.2)."""

    COMMAND_FIELD: ClassVar[int] = 0x8120
    _FIELDS: ClassVar[_Fields] = _RSP_HEAD + _ERRORS + _AFFECTED_INSTANCE + _ATTRIBUTE_LIST
    message_id_being_responded_to: int
    status: int
    affected_sop_class_uid: str | None = None
    affected_sop_instance_uid: str | None = None
    error_comment: str | None = None
    error_id: int | None = None
    offending_element: tuple[int, ...] | None = None
    attribute_identifier_list: tuple[int, ...] | None = None
    dataset: bytes | None = None
    extra: Extra = ()


@dataclass(frozen=True, slots=True)
class NActionRQ:
    """N-ACTION-RQ (PS3.7 §10.3.4.1); ``dataset`` is the Action Information."""

    COMMAND_FIELD: ClassVar[int] = 0x0130
    _FIELDS: ClassVar[_Fields] = _REQUESTED + ((ACTION_TYPE_ID, "action_type_id", True),)
    message_id: int
    requested_sop_class_uid: str
    requested_sop_instance_uid: str
    action_type_id: int
    dataset: bytes | None = None
    extra: Extra = ()


@dataclass(frozen=True, slots=True)
class NActionRSP:
    """N-ACTION-RSP (PS3.7 §10.3.4.2); ``dataset`` is the Action Reply."""

    COMMAND_FIELD: ClassVar[int] = 0x8130
    _FIELDS: ClassVar[_Fields] = (
        _RSP_HEAD + _ERRORS + _AFFECTED_INSTANCE + ((ACTION_TYPE_ID, "action_type_id", False),)
    )
    message_id_being_responded_to: int
    status: int
    affected_sop_class_uid: str | None = None
    affected_sop_instance_uid: str | None = None
    action_type_id: int | None = None
    error_comment: str | None = None
    error_id: int | None = None
    offending_element: tuple[int, ...] | None = None
    dataset: bytes | None = None
    extra: Extra = ()


@dataclass(frozen=True, slots=True)
class NCreateRQ:
    """N-CREATE-RQ (PS3.7 §10.3.5.1); the SCP assigns the instance UID when absent."""

    COMMAND_FIELD: ClassVar[int] = 0x0140
    _FIELDS: ClassVar[_Fields] = (
        (AFFECTED_SOP_CLASS_UID, "affected_sop_class_uid", True),
        (MESSAGE_ID, "message_id", True),
        (AFFECTED_SOP_INSTANCE_UID, "affected_sop_instance_uid", False),
    )
    message_id: int
    affected_sop_class_uid: str
    affected_sop_instance_uid: str | None = None
    dataset: bytes | None = None
    extra: Extra = ()


@dataclass(frozen=True, slots=True)
class NCreateRSP:
    """N-CREATE-RSP (PS3.7 §10.3.5.2)."""

    COMMAND_FIELD: ClassVar[int] = 0x8140
    _FIELDS: ClassVar[_Fields] = _RSP_HEAD + _ERRORS + _AFFECTED_INSTANCE + _ATTRIBUTE_LIST
    message_id_being_responded_to: int
    status: int
    affected_sop_class_uid: str | None = None
    affected_sop_instance_uid: str | None = None
    error_comment: str | None = None
    error_id: int | None = None
    offending_element: tuple[int, ...] | None = None
    attribute_identifier_list: tuple[int, ...] | None = None
    dataset: bytes | None = None
    extra: Extra = ()


@dataclass(frozen=True, slots=True)
class NDeleteRQ:
    """N-DELETE-RQ (PS3.7 §10.3.6.1)."""

    COMMAND_FIELD: ClassVar[int] = 0x0150
    _FIELDS: ClassVar[_Fields] = _REQUESTED
    message_id: int
    requested_sop_class_uid: str
    requested_sop_instance_uid: str
    dataset: bytes | None = None
    extra: Extra = ()


@dataclass(frozen=True, slots=True)
class NDeleteRSP:
    """N-DELETE-RSP (PS3.7 §10.3.6.2)."""

    COMMAND_FIELD: ClassVar[int] = 0x8150
    _FIELDS: ClassVar[_Fields] = _RSP_HEAD + _ERRORS + _AFFECTED_INSTANCE
    message_id_being_responded_to: int
    status: int
    affected_sop_class_uid: str | None = None
    affected_sop_instance_uid: str | None = None
    error_comment: str | None = None
    error_id: int | None = None
    offending_element: tuple[int, ...] | None = None
    dataset: bytes | None = None
    extra: Extra = ()


Request = (
    CEchoRQ
    | CFindRQ
    | CCancelRQ
    | CStoreRQ
    | NEventReportRQ
    | NGetRQ
    | NSetRQ
    | NActionRQ
    | NCreateRQ
    | NDeleteRQ
)
Response = (
    CEchoRSP
    | CFindRSP
    | CStoreRSP
    | NEventReportRSP
    | NGetRSP
    | NSetRSP
    | NActionRSP
    | NCreateRSP
    | NDeleteRSP
)
Message = Request | Response

REQUEST_TYPES: Final = (
    CEchoRQ,
    CFindRQ,
    CCancelRQ,
    CStoreRQ,
    NEventReportRQ,
    NGetRQ,
    NSetRQ,
    NActionRQ,
    NCreateRQ,
    NDeleteRQ,
)
RESPONSE_TYPES: Final = (
    CEchoRSP,
    CFindRSP,
    CStoreRSP,
    NEventReportRSP,
    NGetRSP,
    NSetRSP,
    NActionRSP,
    NCreateRSP,
    NDeleteRSP,
)
MESSAGE_TYPES: Final[dict[int, type[Message]]] = {
    cls.COMMAND_FIELD: cls for cls in REQUEST_TYPES + RESPONSE_TYPES
}
"""Command Field (0000,0100) → message class."""


def is_request(msg: Message) -> bool:
    """True for a request (Command Field without the 0x8000 response bit)."""
    return not msg.COMMAND_FIELD & RESPONSE_BIT
