"""DIMSE messages as frozen dataclasses, and their command sets (PS3.7 §9.3, §10.3).

One class per request and response of C-ECHO, C-FIND, C-CANCEL, C-STORE and the six
DIMSE-N services, used both to send and to receive. Each names the command elements
PS3.7 gives it (Tables 9.3-1 … 10.3-12) as typed fields; ``dataset`` holds the raw
data set bytes in the presentation context's transfer syntax, or ``None`` when no data
set follows (Command Data Set Type 0x0101, PS3.7 E.1). ``extra`` keeps any other group
0000 elements a peer sent, sorted by tag, so a decoded message re-encodes unchanged.

Responses carry the status fields of PS3.7 Annex C: ``error_comment``, ``error_id``,
``offending_element`` and, on N-GET/N-SET/N-CREATE, ``attribute_identifier_list``.

Each class lists its elements once (``_FIELDS``: tag, attribute, required); encoding
and decoding are driven by that table.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import MISSING, dataclass
from dataclasses import fields as dataclass_fields
from typing import Any, ClassVar, Final

from ups.dimse.codec import (
    ACTION_TYPE_ID,
    AFFECTED_SOP_CLASS_UID,
    AFFECTED_SOP_INSTANCE_UID,
    ATTRIBUTE_IDENTIFIER_LIST,
    COMMAND_DATA_SET_TYPE,
    COMMAND_FIELD,
    DATA_SET_PRESENT,
    ENCODERS,
    ERROR_COMMENT,
    ERROR_ID,
    EVENT_TYPE_ID,
    FAST_ENCODERS,
    MESSAGE_ID,
    MESSAGE_ID_BEING_RESPONDED_TO,
    MOVE_ORIGINATOR_AE_TITLE,
    MOVE_ORIGINATOR_MESSAGE_ID,
    NO_DATA_SET,
    OFFENDING_ELEMENT,
    PRIORITY,
    REQUESTED_SOP_CLASS_UID,
    REQUESTED_SOP_INSTANCE_UID,
    STATUS,
    CommandValue,
    decode_command_set,
    encode_element,
    join_elements,
    pack_group_length,
)
from ups.dimse.errors import EncodeError, MalformedCommand, UnrecognizedOperation
from ups.pdu.fastinit import fast_new

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
    return not msg.COMMAND_FIELD & 0x8000


# --- encoding ---------------------------------------------------------------------

_CDST_NONE = encode_element(COMMAND_DATA_SET_TYPE, NO_DATA_SET)
_CDST_PRESENT = encode_element(COMMAND_DATA_SET_TYPE, DATA_SET_PRESENT)
_Step = tuple[int, str, object]  # (tag, attribute or "" for a fixed element, encoder/bytes)


def _plan(cls: type[Message]) -> tuple[_Step, ...]:
    """The class's elements in tag order, with Command Field and Data Set Type slotted in."""
    steps: list[_Step] = [(tag, attr, ENCODERS[tag]) for tag, attr, _ in cls._FIELDS]
    steps.append((COMMAND_FIELD, "", encode_element(COMMAND_FIELD, cls.COMMAND_FIELD)))
    steps.append((COMMAND_DATA_SET_TYPE, "", None))
    steps.sort(key=lambda step: step[0])
    return tuple(steps)


_PLANS: Final[dict[type[Message], tuple[_Step, ...]]] = {
    cls: _plan(cls) for cls in MESSAGE_TYPES.values()
}


def encode_command(msg: Message) -> bytes:
    """The command set (group 0000, Implicit VR Little Endian) of ``msg``."""
    try:
        return _encode_fast(msg)
    except Exception:  # noqa: BLE001 - the checked encoder says precisely what is wrong
        return _encode_checked(msg)


def _encode_checked(msg: Message) -> bytes:
    """The reference encoder: every value type-checked, ``extra`` elements merged."""
    parts: list[tuple[int, bytes]] = []
    append = parts.append
    for tag, attr, enc in _PLANS[type(msg)]:
        if attr:
            value = getattr(msg, attr)
            if value is not None:
                append((tag, enc(tag, value)))  # type: ignore[operator]
        elif enc is None:
            append((tag, _CDST_NONE if msg.dataset is None else _CDST_PRESENT))
        else:
            append((tag, enc))  # type: ignore[arg-type]
    if msg.extra:
        taken = {tag for tag, _ in parts}
        for tag, value in msg.extra:
            if tag in taken or tag == 0:
                raise EncodeError(f"extra element (0000,{tag:04X}) clashes with a field")
            taken.add(tag)
            append((tag, encode_element(tag, value)))
        parts.sort(key=lambda part: part[0])
    return join_elements([raw for _, raw in parts])


_FastStep = tuple[str, int, Any]  # (attribute or "", tag, unchecked encoder or fixed bytes)


def _fast_plan(cls: type[Message]) -> tuple[_FastStep, ...]:
    return tuple((attr, tag, FAST_ENCODERS[tag] if attr else enc) for tag, attr, enc in _PLANS[cls])


_FAST_PLANS: Final[dict[type[Message], tuple[_FastStep, ...]]] = {
    cls: _fast_plan(cls) for cls in MESSAGE_TYPES.values()
}


def _encode_fast(msg: Message) -> bytes:
    """``_encode_checked`` without its checks: the per-message path of every answer.

    Anything unusual (a value of the wrong type, ``extra`` elements) raises, and
    ``encode_command`` then falls back to the checked encoder, so the bytes and the
    errors stay exactly the reference encoder's.
    """
    if msg.extra:
        raise EncodeError("extra elements: use the checked encoder")
    parts: list[bytes] = []
    append = parts.append
    for attr, tag, enc in _FAST_PLANS[type(msg)]:
        if attr:
            value = getattr(msg, attr)
            if value is not None:
                append(enc(tag, value))
        elif enc is None:
            append(_CDST_NONE if msg.dataset is None else _CDST_PRESENT)
        else:
            append(enc)
    body = b"".join(parts)
    return pack_group_length(0, 4, len(body)) + body


# --- decoding ---------------------------------------------------------------------


def message_from_elements(elements: Mapping[int, CommandValue], dataset: bytes | None) -> Message:
    """Build the message a decoded command set describes (see ``decode_message``)."""
    mid = elements.get(MESSAGE_ID)
    message_id = mid if type(mid) is int else None
    field = elements.get(COMMAND_FIELD)
    if type(field) is not int:
        raise MalformedCommand("Command Field (0000,0100) is missing", message_id=message_id)
    cls = MESSAGE_TYPES.get(field)
    if cls is None:
        raise UnrecognizedOperation(
            f"unrecognized Command Field 0x{field:04X}", message_id=message_id
        )
    cdst = elements.get(COMMAND_DATA_SET_TYPE)
    if type(cdst) is not int:
        raise MalformedCommand(
            "Command Data Set Type (0000,0800) is missing", message_id=message_id
        )
    if (cdst != NO_DATA_SET) != (dataset is not None):
        raise MalformedCommand(
            "Command Data Set Type (0000,0800) disagrees with the data set received",
            message_id=message_id,
        )
    construct, plan = _DECODE_PLANS[cls]
    values: list[object] = []
    present = 2  # Command Field and Command Data Set Type
    for tag, required, default in plan:
        value: object = elements.get(tag)
        if value is None:
            if required:
                raise MalformedCommand(
                    f"{cls.__name__} lacks required element (0000,{tag:04X})",
                    message_id=message_id,
                )
            value = default
        else:
            present += 1
        values.append(value)
    extra: Extra = ()
    if present != len(elements):
        known = {tag for tag, _, _ in cls._FIELDS}
        known.update((COMMAND_FIELD, COMMAND_DATA_SET_TYPE))
        extra = tuple((tag, elements[tag]) for tag in sorted(elements) if tag not in known)
    return construct(*values, dataset, extra)


def _decode_plan(cls: type[Message]) -> tuple[Callable[..., Message], _DecodePlan]:
    """The class's fields in constructor order as (tag, required, default), then
    ``dataset`` and ``extra``: what ``message_from_elements`` fills positionally."""
    by_attr = {attr: (tag, required) for tag, attr, required in cls._FIELDS}
    plan: list[tuple[int, bool, object]] = []
    names = [f.name for f in dataclass_fields(cls)]
    if names[-2:] != ["dataset", "extra"] or set(names[:-2]) != set(by_attr):
        raise TypeError(f"{cls.__name__}: fields and _FIELDS disagree")
    for f in dataclass_fields(cls)[:-2]:
        tag, required = by_attr[f.name]
        default = None if f.default is MISSING else f.default
        plan.append((tag, required, default))
    return fast_new(cls), tuple(plan)


_DecodePlan = tuple[tuple[int, bool, object], ...]
_DECODE_PLANS: Final[dict[type[Message], tuple[Callable[..., Message], _DecodePlan]]] = {
    cls: _decode_plan(cls) for cls in MESSAGE_TYPES.values()
}


def decode_message(command: bytes, dataset: bytes | None) -> Message:
    """Decode a command set (plus its data set bytes, if any) into a message.

    Raises ``MalformedCommand`` (status 0x0212) for a command set that breaks PS3.7
    Annex E, lacks an element its message requires, or disagrees with ``dataset`` about
    whether a data set follows; ``UnrecognizedOperation`` (status 0x0211) for an
    unknown Command Field.
    """
    return message_from_elements(decode_command_set(command), dataset)
