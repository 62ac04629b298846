"""The command set codec: group 0000 in Implicit VR Little Endian (PS3.7 §6.3, Annex E).

Every DIMSE message starts with a command set, always encoded Implicit VR Little
Endian whatever the presentation context's transfer syntax (PS3.7 §6.3.1). Its
elements come from the small fixed dictionary of PS3.7 Annex E (Table E.1-1), so this
module encodes and decodes them by hand with precompiled ``struct`` formats: it is the
hot path of every message and never touches pydicom.

A decoded command set is a plain ``dict`` keyed by tag (group 0000, so the tag is the
element number) whose values are ``str`` (UI, AE, LO), ``int`` (US, UL) or
``tuple[int, ...]`` (AT). Elements this dictionary does not name (retired or future
group 0000 tags) are kept as their raw ``bytes`` value and re-encoded unchanged.
Command Group Length (0000,0000) is checked when decoding and always recomputed when
encoding, never taken from the caller.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final

from ups.dimse.errors import EncodeError, MalformedCommand

CommandValue = str | int | tuple[int, ...] | bytes
"""A command element value: UI/AE/LO → str, US/UL → int, AT → tuple of tags, else bytes."""

# Tags of PS3.7 Annex E, Table E.1-1 (group 0000, so tag == element number).
COMMAND_GROUP_LENGTH: Final = 0x0000
AFFECTED_SOP_CLASS_UID: Final = 0x0002
REQUESTED_SOP_CLASS_UID: Final = 0x0003
COMMAND_FIELD: Final = 0x0100
MESSAGE_ID: Final = 0x0110
MESSAGE_ID_BEING_RESPONDED_TO: Final = 0x0120
MOVE_DESTINATION: Final = 0x0600
PRIORITY: Final = 0x0700
COMMAND_DATA_SET_TYPE: Final = 0x0800
STATUS: Final = 0x0900
OFFENDING_ELEMENT: Final = 0x0901
ERROR_COMMENT: Final = 0x0902
ERROR_ID: Final = 0x0903
AFFECTED_SOP_INSTANCE_UID: Final = 0x1000
REQUESTED_SOP_INSTANCE_UID: Final = 0x1001
EVENT_TYPE_ID: Final = 0x1002
ATTRIBUTE_IDENTIFIER_LIST: Final = 0x1005
ACTION_TYPE_ID: Final = 0x1008
NUMBER_OF_REMAINING_SUBOPERATIONS: Final = 0x1020
NUMBER_OF_COMPLETED_SUBOPERATIONS: Final = 0x1021
NUMBER_OF_FAILED_SUBOPERATIONS: Final = 0x1022
NUMBER_OF_WARNING_SUBOPERATIONS: Final = 0x1023
MOVE_ORIGINATOR_AE_TITLE: Final = 0x1030
MOVE_ORIGINATOR_MESSAGE_ID: Final = 0x1031

RESPONSE_BIT: Final = 0x8000
"""Set in the Command Field (0000,0100) of every response (PS3.7 E.1)."""
NO_DATA_SET: Final = 0x0101
"""Command Data Set Type (0000,0800) value meaning "no data set follows" (PS3.7 E.1)."""
DATA_SET_PRESENT: Final = 0x0001
"""The value this package sends when a data set follows (any other than 0x0101 means so)."""

COMMAND_ELEMENTS: Final[dict[int, tuple[str, str]]] = {
    COMMAND_GROUP_LENGTH: ("CommandGroupLength", "UL"),
    AFFECTED_SOP_CLASS_UID: ("AffectedSOPClassUID", "UI"),
    REQUESTED_SOP_CLASS_UID: ("RequestedSOPClassUID", "UI"),
    COMMAND_FIELD: ("CommandField", "US"),
    MESSAGE_ID: ("MessageID", "US"),
    MESSAGE_ID_BEING_RESPONDED_TO: ("MessageIDBeingRespondedTo", "US"),
    MOVE_DESTINATION: ("MoveDestination", "AE"),
    PRIORITY: ("Priority", "US"),
    COMMAND_DATA_SET_TYPE: ("CommandDataSetType", "US"),
    STATUS: ("Status", "US"),
    OFFENDING_ELEMENT: ("OffendingElement", "AT"),
    ERROR_COMMENT: ("ErrorComment", "LO"),
    ERROR_ID: ("ErrorID", "US"),
    AFFECTED_SOP_INSTANCE_UID: ("AffectedSOPInstanceUID", "UI"),
    REQUESTED_SOP_INSTANCE_UID: ("RequestedSOPInstanceUID", "UI"),
    EVENT_TYPE_ID: ("EventTypeID", "US"),
    ATTRIBUTE_IDENTIFIER_LIST: ("AttributeIdentifierList", "AT"),
    ACTION_TYPE_ID: ("ActionTypeID", "US"),
    NUMBER_OF_REMAINING_SUBOPERATIONS: ("NumberOfRemainingSuboperations", "US"),
    NUMBER_OF_COMPLETED_SUBOPERATIONS: ("NumberOfCompletedSuboperations", "US"),
    NUMBER_OF_FAILED_SUBOPERATIONS: ("NumberOfFailedSuboperations", "US"),
    NUMBER_OF_WARNING_SUBOPERATIONS: ("NumberOfWarningSuboperations", "US"),
    MOVE_ORIGINATOR_AE_TITLE: ("MoveOriginatorApplicationEntityTitle", "AE"),
    MOVE_ORIGINATOR_MESSAGE_ID: ("MoveOriginatorMessageID", "US"),
}
"""Tag → (keyword, VR) for every command element this codec understands."""

# Value kinds, small ints so the decode loop compares cheaply.
_US, _UL, _UI, _TEXT, _AT = 0, 1, 2, 3, 4
_KIND_OF_VR = {"US": _US, "UL": _UL, "UI": _UI, "AE": _TEXT, "LO": _TEXT, "AT": _AT}
_KIND: Final[dict[int, int]] = {tag: _KIND_OF_VR[vr] for tag, (_, vr) in COMMAND_ELEMENTS.items()}
_KIND_BY_TAG: Final[list[int | None]] = [_KIND.get(tag) for tag in range(max(_KIND) + 1)]
"""``_KIND`` as a list indexed by tag: the decoder's per-element lookup."""

# Element header with the group (0000) as two pad bytes: element, length.
_HEADER = struct.Struct("<2xHI")
_US_ELEMENT = struct.Struct("<2xHIH")
_UL_ELEMENT = struct.Struct("<2xHII")
_GROUP_LENGTH = struct.Struct("<2xHII")
_READ_HEADER = struct.Struct("<HHI").unpack_from
_READ_US = struct.Struct("<H").unpack_from
_READ_UL = struct.Struct("<I").unpack_from
_TAG = struct.Struct("<HH")


# --- encoding ---------------------------------------------------------------------


def _encode_us(tag: int, value: CommandValue) -> bytes:
    if type(value) is not int:
        raise EncodeError(f"(0000,{tag:04X}) needs an int, got {value!r}")
    try:
        return _US_ELEMENT.pack(tag, 2, value)
    except struct.error:
        raise EncodeError(f"(0000,{tag:04X}) value {value!r} is not a US") from None


def _encode_ul(tag: int, value: CommandValue) -> bytes:
    if type(value) is not int:
        raise EncodeError(f"(0000,{tag:04X}) needs an int, got {value!r}")
    try:
        return _UL_ELEMENT.pack(tag, 4, value)
    except struct.error:
        raise EncodeError(f"(0000,{tag:04X}) value {value!r} is not a UL") from None


def _text(tag: int, value: CommandValue, codec: str) -> bytes:
    if not isinstance(value, str):  # str subclasses such as pydicom's UID are fine
        raise EncodeError(f"(0000,{tag:04X}) needs a str, got {value!r}")
    try:
        return value.encode(codec)
    except UnicodeEncodeError:
        raise EncodeError(f"(0000,{tag:04X}) value {value!r} is not {codec}") from None


def _encode_ui(tag: int, value: CommandValue) -> bytes:
    raw = _text(tag, value, "ascii")
    if len(raw) & 1:
        raw += b"\0"  # UI pads with NUL (PS3.5 §6.2)
    return _HEADER.pack(tag, len(raw)) + raw


def _encode_text(tag: int, value: CommandValue) -> bytes:
    # Latin-1 both ways, so any AE/LO bytes a peer sent survive a re-encode.
    raw = _text(tag, value, "latin-1")
    if len(raw) & 1:
        raw += b" "  # text pads with a space (PS3.5 §6.2)
    return _HEADER.pack(tag, len(raw)) + raw


def _encode_at(tag: int, value: CommandValue) -> bytes:
    if not isinstance(value, tuple) or not all(type(t) is int for t in value):
        raise EncodeError(f"(0000,{tag:04X}) needs a tuple of int tags, got {value!r}")
    try:
        raw = b"".join([_TAG.pack(t >> 16, t & 0xFFFF) for t in value])
    except struct.error:
        raise EncodeError(f"(0000,{tag:04X}) holds a tag out of range: {value!r}") from None
    return _HEADER.pack(tag, len(raw)) + raw


def _encode_raw(tag: int, value: CommandValue) -> bytes:
    if not isinstance(value, bytes) or len(value) & 1:
        raise EncodeError(f"unknown element (0000,{tag:04X}) needs even-length bytes")
    return _HEADER.pack(tag, len(value)) + value


_ENCODER_OF_KIND: dict[int, Callable[[int, CommandValue], bytes]] = {
    _US: _encode_us,
    _UL: _encode_ul,
    _UI: _encode_ui,
    _TEXT: _encode_text,
    _AT: _encode_at,
}
ENCODERS: Final[dict[int, Callable[[int, CommandValue], bytes]]] = {
    tag: _ENCODER_OF_KIND[kind] for tag, kind in _KIND.items()
}
"""Tag → function(tag, value) giving the complete encoded element."""


_UI_CACHE: dict[str, bytes] = {}
_UI_CACHE_SIZE: Final = 4096


def _fast_ui(tag: int, value: str) -> bytes:
    """``_encode_ui`` without the type check, remembering recent values' encodings.

    A listener answers many events for the same SOP class and, in bursts, the same
    workitem: most UIDs it encodes it has encoded moments before.
    """
    raw = _UI_CACHE.get(value)
    if raw is None:
        raw = value.encode("ascii")
        if len(raw) & 1:
            raw += b"\0"
        if len(_UI_CACHE) >= _UI_CACHE_SIZE:
            _UI_CACHE.clear()
        _UI_CACHE[value] = raw
    return _HEADER.pack(tag, len(raw)) + raw


def _fast_us(tag: int, value: int) -> bytes:
    return _US_ELEMENT.pack(tag, 2, value)


FAST_ENCODERS: Final[dict[int, Callable[[int, Any], bytes]]] = {
    **ENCODERS,
    **{tag: _fast_ui for tag, kind in _KIND.items() if kind == _UI},
    **{tag: _fast_us for tag, kind in _KIND.items() if kind == _US},
}
"""``ENCODERS`` with the two hot kinds (UI, US) unchecked: for callers that fall back to
``ENCODERS`` when one raises (``ups.dimse.messages.encode_command``)."""

pack_group_length: Final = _GROUP_LENGTH.pack
"""(0, 4, length of the rest) → the Command Group Length element."""


def encode_element(tag: int, value: CommandValue) -> bytes:
    """One complete group 0000 element (header and padded value)."""
    if not 0 < tag <= 0xFFFF:
        raise EncodeError(f"(0000,{tag:04X}) is not a command element this codec may encode")
    return ENCODERS.get(tag, _encode_raw)(tag, value)


def join_elements(encoded: Iterable[bytes]) -> bytes:
    """Prefix already-encoded, tag-ordered elements with their Command Group Length."""
    body = b"".join(encoded)
    return _GROUP_LENGTH.pack(COMMAND_GROUP_LENGTH, 4, len(body)) + body


def encode_command_set(elements: Mapping[int, CommandValue]) -> bytes:
    """Encode a command set in ascending tag order; (0000,0000) is computed, not taken."""
    return join_elements(
        [encode_element(tag, elements[tag]) for tag in sorted(elements) if tag != 0]
    )


# --- decoding ---------------------------------------------------------------------


def _fail(text: str, out: Mapping[int, CommandValue]) -> MalformedCommand:
    mid = out.get(MESSAGE_ID)
    return MalformedCommand(text, message_id=mid if isinstance(mid, int) else None)


def decode_command_set(data: bytes) -> dict[int, CommandValue]:
    """Decode a complete command set, strictly.

    Every element must lie in group 0000, have an even length inside the buffer, appear
    once, and match its Annex E VR; a Command Group Length, when present, must equal the
    bytes that follow it. Any breach raises ``MalformedCommand`` (status 0x0212,
    mistyped argument, PS3.7 C.5), with the Message ID when it was already read.
    """
    out: dict[int, CommandValue] = {}
    n = len(data)
    pos = 0
    kinds = _KIND_BY_TAG
    known = len(kinds)
    read_header = _READ_HEADER
    try:
        while pos < n:
            if n - pos < 8:
                raise _fail(f"truncated element header at offset {pos}", out)
            group, tag, length = read_header(data, pos)
            pos += 8
            end = pos + length
            if end > n or group or length & 1 or tag in out:
                raise _header_fault(group, tag, length, end > n, out)
            kind = kinds[tag] if tag < known else None
            value: CommandValue
            if kind == _US:
                if length != 2:
                    raise _fail(f"(0000,{tag:04X}) US with length {length}", out)
                value = _READ_US(data, pos)[0]
            elif kind == _UI:
                value = data[pos:end].rstrip(b"\0 ").decode("ascii")
            elif kind == _UL:
                if length != 4:
                    raise _fail(f"(0000,{tag:04X}) UL with length {length}", out)
                if tag == COMMAND_GROUP_LENGTH:
                    if _READ_UL(data, pos)[0] != n - end:
                        raise _fail("Command Group Length does not match the command set", out)
                    pos = end
                    continue
                value = _READ_UL(data, pos)[0]
            elif kind == _TEXT:
                value = data[pos:end].strip(b" \0").decode("latin-1")
            elif kind == _AT:
                if length & 3:
                    raise _fail(f"(0000,{tag:04X}) AT with length {length}", out)
                value = tuple((g << 16) | e for g, e in _TAG.iter_unpack(data[pos:end]))
            else:
                value = data[pos:end]
            out[tag] = value
            pos = end
    except UnicodeDecodeError:
        raise _fail(f"(0000,{tag:04X}) is not ASCII", out) from None
    return out


def _header_fault(
    group: int, tag: int, length: int, overruns: bool, out: Mapping[int, CommandValue]
) -> MalformedCommand:
    """Which of the header rules an element broke, in the order they are stated."""
    if overruns:
        return _fail(f"(0000,{tag:04X}) length {length} overruns the command set", out)
    if group != 0:
        return _fail(f"({group:04X},{tag:04X}) is outside command group 0000", out)
    if length & 1:
        return _fail(f"(0000,{tag:04X}) has odd length {length}", out)
    return _fail(f"(0000,{tag:04X}) appears twice", out)


def command_has_dataset(elements: Mapping[int, CommandValue]) -> bool:
    """Whether a data set follows this command (PS3.7 E.1, Command Data Set Type)."""
    value = elements.get(COMMAND_DATA_SET_TYPE)
    if type(value) is not int:
        raise _fail("Command Data Set Type (0000,0800) is missing", elements)
    return value != NO_DATA_SET
