"""C-FIND on stored bytes: match a candidate and build its response Identifier.

This module owns the per-match half of streaming C-FIND (issue 17): a stored workitem
(Explicit VR Little Endian, as :func:`ups.services.scp.store.encode_dataset` writes it)
is walked once at its top level (PS3.5 §7.1.2, §7.5: element headers, sequences and
items of defined or undefined length), and only the elements the query names are
decoded with pydicom, for :func:`ups.services.scp.matching.matches`. The response
Identifier (PS3.4 CC.2.8.1.3.2) is then spliced from the stored element bytes: as
they are for Explicit VR Little Endian, with their headers rewritten for Implicit VR
Little Endian (PS3.5 §7.1.3; sequences with undefined lengths, §7.5.2). A key that
needs more than a copy -- a sequence key with item keys (C.2.2.2.6: matching items,
reduced), another transfer syntax, a VR pydicom must decide -- goes through
:func:`~ups.services.scp.matching.select_return_keys` and pydicom's encoder, on the
same few decoded elements.
"""

from __future__ import annotations

import struct
from collections.abc import Callable

from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset

from ups.dimse.datasets import (
    EXPLICIT_VR_LITTLE_ENDIAN,
    IMPLICIT_VR_LITTLE_ENDIAN,
    encode_dataset,
)
from ups.services.scp.matching import (
    SPECIFIC_CHARACTER_SET,
    TIMEZONE_OFFSET_FROM_UTC,
    TRANSACTION_UID,
    _all_universal,
    _matches,
    _return_items,
    _tz_of,
    _values,
    matches,
    select_return_keys,
)
from ups.services.scp.store import decode_dataset

__all__ = ["Projector", "top_level"]

_HEADER = struct.Struct("<HH2sH")
_LONG = struct.Struct("<L")
_ITEM_HEADER = struct.Struct("<HHL")
_LONG_VRS = frozenset(b"OB OD OF OL OV OW SQ UC UN UR UT SV UV".split())
_VRS = _LONG_VRS | frozenset(
    b"AE AS AT CS DA DS DT FL FD IS LO LT PN SH SL SS ST TM UI UL US".split()
)
_UNDEFINED = 0xFFFFFFFF
_ITEM = 0xFFFEE000
_ITEM_END = 0xFFFEE00D
_SEQUENCE_END = 0xFFFEE0DD
_IMPLICIT_OPEN = b"\xff\xff\xff\xff"
_IMPLICIT_ITEM = b"\xfe\xff\x00\xe0\xff\xff\xff\xff"
_IMPLICIT_ITEM_END = b"\xfe\xff\x0d\xe0\x00\x00\x00\x00"
_IMPLICIT_SEQUENCE_END = b"\xfe\xff\xdd\xe0\x00\x00\x00\x00"


class _Unsupported(Exception):
    """Bytes the splice does not handle: pydicom does the element (or the match)."""


Span = tuple[int, int, int, bytes, int]
"""An element: (start, value start, value end or the undefined length's end, VR, length)."""


def _element(buf: bytes, pos: int, end: int) -> tuple[int, Span]:
    if end - pos < 8:
        raise _Unsupported("truncated header")
    group, elem, vr, short = _HEADER.unpack_from(buf, pos)
    if vr not in _VRS:
        raise _Unsupported(f"VR {vr!r}")
    if vr in _LONG_VRS:
        if end - pos < 12:
            raise _Unsupported("truncated header")
        length = _LONG.unpack_from(buf, pos + 8)[0]
        value = pos + 12
    else:
        length, value = short, pos + 8
    if length == _UNDEFINED:
        if vr != b"SQ":
            raise _Unsupported("undefined length")
        stop = _items(buf, value, end, delimited=True)
    else:
        stop = value + length
        if stop > end:
            raise _Unsupported("value past the end")
    return group << 16 | elem, (pos, value, stop, vr, length)


def _items(buf: bytes, pos: int, end: int, *, delimited: bool) -> int:
    """Past a sequence's items (PS3.5 §7.5): the sequence delimiter's end, or ``end``."""
    while pos < end:
        group, elem, length = _ITEM_HEADER.unpack_from(buf, pos)
        tag = group << 16 | elem
        if tag == _SEQUENCE_END and delimited:
            return pos + 8
        if tag != _ITEM:
            raise _Unsupported("not an item")
        pos += 8
        if length == _UNDEFINED:
            pos = _dataset(buf, pos, end, delimited=True)
        else:
            pos += length
    if delimited or pos != end:
        raise _Unsupported("sequence not closed")
    return pos


def _dataset(buf: bytes, pos: int, end: int, *, delimited: bool) -> int:
    while pos < end:
        if delimited and _ITEM_HEADER.unpack_from(buf, pos)[:2] == (0xFFFE, 0xE00D):
            return pos + 8
        pos = _element(buf, pos, end)[1][2]
    if delimited:
        raise _Unsupported("item not closed")
    return pos


def top_level(buf: bytes) -> dict[int, Span]:
    """Each top-level element of an Explicit VR Little Endian data set, by tag."""
    out: dict[int, Span] = {}
    pos, end = 0, len(buf)
    while pos < end:
        tag, span = _element(buf, pos, end)
        out[tag] = span
        pos = span[2]
    return out


# --------------------------------------------------------------------------- Implicit VR


def _implicit(buf: bytes, span: Span, tag: int) -> bytes:
    """One element re-headed for Implicit VR Little Endian (values are the same bytes)."""
    start, value, stop, vr, length = span
    head = struct.pack("<HH", tag >> 16, tag & 0xFFFF)
    if vr != b"SQ":
        if vr == b"UN":
            raise _Unsupported("UN")
        return head + _LONG.pack(stop - value) + buf[value:stop]
    parts = [head, _IMPLICIT_OPEN]
    end = stop - 8 if length == _UNDEFINED else stop
    pos = value
    while pos < end:
        _, _, item_length = _ITEM_HEADER.unpack_from(buf, pos)
        pos += 8
        item_end = end if item_length == _UNDEFINED else pos + item_length
        parts.append(_IMPLICIT_ITEM)
        while pos < item_end:
            if item_length == _UNDEFINED and _ITEM_HEADER.unpack_from(buf, pos)[:2] == (
                0xFFFE,
                0xE00D,
            ):
                pos += 8
                break
            inner_tag, inner = _element(buf, pos, item_end)
            parts.append(_implicit(buf, inner, inner_tag))
            pos = inner[2]
        parts.append(_IMPLICIT_ITEM_END)
    parts.append(_IMPLICIT_SEQUENCE_END)
    return b"".join(parts)


def _empty(tag: int, vr: str, implicit: bool) -> bytes:
    head = struct.pack("<HH", tag >> 16, tag & 0xFFFF)
    if implicit:
        return head + b"\0\0\0\0"
    code = vr.encode("ascii")
    return head + code + (b"\0\0\0\0\0\0" if code in _LONG_VRS else b"\0\0")


# --------------------------------------------------------------------------- the projector


def _plain(qelem: DataElement) -> bool:
    """A VR the splice can write an empty element for."""
    return str(qelem.VR).encode("ascii", "replace") in _VRS


def _whole(qelem: DataElement) -> bool:
    """A key answered by a copy: a value key, or a sequence key returned whole."""
    return qelem.VR != "SQ" or all(len(item) == 0 for item in qelem.value or [])


def _universal(qelem: DataElement) -> bool:
    """A key every candidate matches (C.2.2.2.3, C.2.2.2.6): matching need not read it."""
    if qelem.VR == "SQ":
        items = list(qelem.value or [])
        return not items or any(_all_universal(item) for item in items)
    return not _values(qelem)


class Projector:
    """Match stored workitems against one C-FIND query; give their response Identifiers.

    ``__call__`` takes a stored encoding and returns the Identifier in
    ``transfer_syntax``, or None when the workitem does not match. Only the keys that
    constrain (not universal) are decoded and matched, with the query's Timezone Offset
    From UTC; a sequence key with item keys is reduced by matching's own rule and
    encoded by pydicom, alone; everything else is copied.
    """

    def __init__(self, query: Dataset, transfer_syntax: str) -> None:
        self.query = query
        self.syntax = transfer_syntax
        self._match = Dataset()  # with the query's Timezone Offset From UTC, when valued
        for elem in query:
            if not _universal(elem):
                self._match.add(elem)
        self._returned = [
            (int(e.tag), e)
            for e in query
            if int(e.tag) >> 16
            and int(e.tag) & 0xFFFF
            and int(e.tag) not in (TRANSACTION_UID, SPECIFIC_CHARACTER_SET)
        ]
        self._nested = {tag for tag, e in self._returned if not _whole(e)}
        self._implicit = transfer_syntax == IMPLICIT_VR_LITTLE_ENDIAN
        self._splice = transfer_syntax in (
            EXPLICIT_VR_LITTLE_ENDIAN,
            IMPLICIT_VR_LITTLE_ENDIAN,
        ) and all(_plain(e) for _, e in self._returned)
        decoded = [int(e.tag) for e in self._match] + list(self._nested)
        if not self._splice:
            decoded += [tag for tag, _ in self._returned]
        self._decoded_tags = sorted({*decoded, SPECIFIC_CHARACTER_SET, TIMEZONE_OFFSET_FROM_UTC})
        self._qtz = _tz_of(query)

    def __call__(self, stored: bytes) -> bytes | None:
        try:
            spans = top_level(stored)
        except (_Unsupported, struct.error):
            return self._whole_decoded(decode_dataset(stored))
        candidate = decode_dataset(
            b"".join(stored[spans[t][0] : spans[t][2]] for t in self._decoded_tags if t in spans)
        )
        if len(self._match) and not matches(candidate, self._match):
            return None
        if self._splice:
            try:
                return self._spliced(stored, spans, candidate)
            except (_Unsupported, struct.error):
                pass
        if self._splice:  # the splice decoded too little for pydicom's answer
            candidate = decode_dataset(stored)
        return encode_dataset(select_return_keys(candidate, self.query), self.syntax)

    def _whole_decoded(self, candidate: Dataset) -> bytes | None:
        if not matches(candidate, self.query):
            return None
        return encode_dataset(select_return_keys(candidate, self.query), self.syntax)

    def _spliced(self, stored: bytes, spans: dict[int, Span], candidate: Dataset) -> bytes:
        copy: Callable[[Span, int], bytes]
        if self._implicit:

            def copy(span: Span, tag: int) -> bytes:
                return _implicit(stored, span, tag)
        else:

            def copy(span: Span, tag: int) -> bytes:
                return stored[span[0] : span[2]]

        parts: list[tuple[int, bytes]] = []
        charset = spans.get(SPECIFIC_CHARACTER_SET)
        if charset is not None:
            parts.append((SPECIFIC_CHARACTER_SET, copy(charset, SPECIFIC_CHARACTER_SET)))
        for tag, qelem in self._returned:
            span = spans.get(tag)
            if tag in self._nested:
                raw = None if span is None else raw_items(stored, span)
                parts.append((tag, self._reduced(tag, qelem, candidate, raw)))
            elif span is None:
                parts.append((tag, _empty(tag, str(qelem.VR), self._implicit)))
            elif qelem.VR == "SQ" and span[3] != b"SQ":
                raise _Unsupported("a sequence key on a value")
            else:
                parts.append((tag, copy(span, tag)))
        parts.sort(key=lambda part: part[0])
        return b"".join(part for _, part in parts)

    def _reduced(self, tag: int, qelem: DataElement, candidate: Dataset, raw: RawItems) -> bytes:
        """A sequence key with item keys: the matching items, reduced (C.2.2.2.6); the
        items are matched on pydicom's decoding and copied from the stored bytes."""
        celem = candidate[tag] if tag in candidate else None
        qitems = list(qelem.value)
        if celem is None or celem.VR != "SQ" or not celem.value:
            return self._sequence(tag, [])
        if raw is None or len(raw) != len(celem.value) or not all(map(_flat, qitems)):
            if SPECIFIC_CHARACTER_SET in candidate:
                raise _Unsupported("pydicom would encode the items without their charset")
            return self._pydicom_sequence(tag, qelem, candidate)
        ctz = _tz_of(candidate)
        items: list[bytes] = []
        for citem, spans in zip(celem.value, raw, strict=True):
            for qitem in qitems:
                if _matches(citem, qitem, self._qtz, ctz):
                    items.append(self._item(spans, qitem))
                    break
        return self._sequence(tag, items)

    def _item(self, spans: dict[int, tuple[Span, bytes]], qitem: Dataset) -> bytes:
        parts = []
        for qelem in qitem:
            tag = int(qelem.tag)
            if tag == TRANSACTION_UID or not tag >> 16 or not tag & 0xFFFF:
                continue
            found = spans.get(tag)
            if found is None:
                parts.append(_empty(tag, str(qelem.VR), self._implicit))
            elif qelem.VR == "SQ" and found[0][3] != b"SQ":
                raise _Unsupported("a sequence key on a value")
            elif self._implicit:
                parts.append(_implicit(found[1], found[0], tag))
            else:
                parts.append(found[1][found[0][0] : found[0][2]])
        return b"".join(parts)

    def _sequence(self, tag: int, items: list[bytes]) -> bytes:
        head = struct.pack("<HH", tag >> 16, tag & 0xFFFF)
        if not self._implicit:
            head += b"SQ\0\0"
        body = b"".join(_IMPLICIT_ITEM + item + _IMPLICIT_ITEM_END for item in items)
        return head + _IMPLICIT_OPEN + body + _IMPLICIT_SEQUENCE_END

    def _pydicom_sequence(self, tag: int, qelem: DataElement, candidate: Dataset) -> bytes:
        celem = candidate[tag] if tag in candidate else None
        items = _return_items(celem, qelem, self._qtz, _tz_of(candidate))
        piece = Dataset()
        piece.add(DataElement(tag, "SQ", items))
        return encode_dataset(piece, self.syntax)


RawItems = list[dict[int, tuple[Span, bytes]]] | None


def _flat(qitem: Dataset) -> bool:
    """An item key the splice reduces: its own keys are values or whole sequences."""
    return all(_plain(e) and _whole(e) for e in qitem)


def raw_items(buf: bytes, span: Span) -> RawItems:
    """The elements of each item of a stored sequence, by tag (None: not a sequence)."""
    start, value, stop, vr, length = span
    if vr != b"SQ":
        return None
    end = stop - 8 if length == _UNDEFINED else stop
    out: list[dict[int, tuple[Span, bytes]]] = []
    pos = value
    while pos < end:
        _, _, item_length = _ITEM_HEADER.unpack_from(buf, pos)
        pos += 8
        item_end = end if item_length == _UNDEFINED else pos + item_length
        elements: dict[int, tuple[Span, bytes]] = {}
        while pos < item_end:
            if item_length == _UNDEFINED and _ITEM_HEADER.unpack_from(buf, pos)[:2] == (
                0xFFFE,
                0xE00D,
            ):
                pos += 8
                break
            tag, inner = _element(buf, pos, item_end)
            elements[tag] = (inner, buf)
            pos = inner[2]
        out.append(elements)
    return out
