"""DIMSE messages and their command sets (PS3.7 §9.3, §10.3, Annex E).

The message classes live in ``ups.dimse.message_types`` and are re-exported here; this
module turns them into command sets and back: ``encode_command`` (a fast unchecked
encoder, with the checked one as its fallback, byte-identical) and
``message_from_elements`` / ``decode_message``, both driven by each class's ``_FIELDS``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import MISSING
from dataclasses import fields as dataclass_fields
from typing import Any, Final

from ups.dimse.codec import (
    COMMAND_DATA_SET_TYPE,
    COMMAND_FIELD,
    DATA_SET_PRESENT,
    ENCODERS,
    FAST_ENCODERS,
    MESSAGE_ID,
    NO_DATA_SET,
    CommandValue,
    decode_command_set,
    encode_element,
    join_elements,
    pack_group_length,
)
from ups.dimse.errors import EncodeError, MalformedCommand, UnrecognizedOperation
from ups.dimse.message_types import (
    MESSAGE_TYPES,
    PRIORITY_HIGH,
    PRIORITY_LOW,
    PRIORITY_MEDIUM,
    REQUEST_TYPES,
    RESPONSE_TYPES,
    VERIFICATION_SOP_CLASS,
    CCancelRQ,
    CEchoRQ,
    CEchoRSP,
    CFindRQ,
    CFindRSP,
    CStoreRQ,
    CStoreRSP,
    Extra,
    Message,
    NActionRQ,
    NActionRSP,
    NCreateRQ,
    NCreateRSP,
    NDeleteRQ,
    NDeleteRSP,
    NEventReportRQ,
    NEventReportRSP,
    NGetRQ,
    NGetRSP,
    NSetRQ,
    NSetRSP,
    Request,
    Response,
    is_request,
)
from ups.pdu.fastinit import fast_new

__all__ = [
    "CCancelRQ",
    "CEchoRQ",
    "CEchoRSP",
    "CFindRQ",
    "CFindRSP",
    "CStoreRQ",
    "CStoreRSP",
    "Extra",
    "MESSAGE_TYPES",
    "Message",
    "NActionRQ",
    "NActionRSP",
    "NCreateRQ",
    "NCreateRSP",
    "NDeleteRQ",
    "NDeleteRSP",
    "NEventReportRQ",
    "NEventReportRSP",
    "NGetRQ",
    "NGetRSP",
    "NSetRQ",
    "NSetRSP",
    "PRIORITY_HIGH",
    "PRIORITY_LOW",
    "PRIORITY_MEDIUM",
    "REQUEST_TYPES",
    "RESPONSE_TYPES",
    "Request",
    "Response",
    "VERIFICATION_SOP_CLASS",
    "decode_message",
    "encode_command",
    "is_request",
    "message_from_elements",
]


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
