"""One pass over a data set's raw bytes: structure, limits and its DICOM JSON model.

This module owns the receiving side's first look at a data set (PS3.5 §7.1-7.5): every
element header fits, every defined length fits its container exactly, sequences and
items are delimited as PS3.5 §7.5 says, and named limits (``ScanLimits``) bound the
work and memory one data set may cost. ``check_dataset`` does only that; ``dataset_json``
also builds the PS3.18 F.2 DICOM JSON model in the same pass, so the event listener
never needs pydicom to check or print an event.

The JSON model equals what pydicom 3 gives (``Dataset.to_json_dict`` after
``read_dataset``) with three differences shared with ``services.output.to_json_model``:
group lengths (gggg,0000) are left out (PS3.18 F.2.2), an attribute without a value
carries only its ``vr`` -- an empty sequence too (F.2.5) -- and a binary value longer
than ``inline_limit`` becomes a ``BulkDataURI`` naming its length. pydicom's data
dictionary is the lookup table for Implicit VR (PS3.5 §7.1.3, §6.2.2 for private
tags). Values pydicom reads in some irregular way (an IS that is not a number, a PN of
only ``=``, character sets with code extensions, context-dependent VRs such as
``US or SS``) are converted by pydicom itself, element by element or, for the
context-dependent VRs, for the whole data set, after the structure has been checked.

Where this scanner is stricter than pydicom's reader, PS3.5 is the reason:

* tags ascend and occur once per data set (§7.1);
* an explicit VR is one of the VRs of §6.2 (pydicom guesses on unknown ones); the VR of
  an attribute the data dictionary defines as a sequence is SQ, or UN (§6.2.2), since
  any other VR would make its items opaque bytes;
* undefined length only on SQ, on UN (a sequence, §6.2.2) and, in Implicit VR, on a
  sequence attribute (§7.5); never on OB/OW, whose undefined length means encapsulated
  pixel data (§A.4), which a native transfer syntax cannot carry;
* items are (FFFE,E000); delimiters have length 0 and appear only to close an undefined
  length (§7.5.1-7.5.2); an item fills its defined length exactly, and items keep the
  data set's transfer syntax (pydicom also reads Implicit VR items inside an Explicit
  VR sequence); nothing follows the last element, not even a partial header;
* Specific Character Set (0008,0005) is CS (PS3.6); pydicom fails on a number there.

A UN sequence is read as PS3.5 §6.2.2 says, in little endian, each item Implicit VR
unless it plainly begins with an explicit VR (pydicom's heuristic); pydicom reads it in
big endian under Explicit VR Big Endian. The one place the structure check lets through
what pydicom refuses is a value question: a ``US or SS``, ``OB or OW`` or ``US or OW``
attribute whose deciding attribute (Pixel Representation, Bits Allocated, LUT
Descriptor) is missing; ``dataset_json``, which needs the VR, refuses it as pydicom does.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Final

from pydicom.charset import convert_encodings
from pydicom.filewriter import _AMBIGUOUS_US_SS_TAGS
from pydicom.tag import _LUT_DESCRIPTOR_TAGS

from ups.dimse.datasets import (
    DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN,
    EXPLICIT_VR_BIG_ENDIAN,
    EXPLICIT_VR_LITTLE_ENDIAN,
    IMPLICIT_VR_LITTLE_ENDIAN,
    inflate,
)
from ups.dimse.errors import DatasetError, LimitExceeded
from ups.dimse.scanvalues import (
    BINARY,
    CHARSET_VRS,
    CONVERTERS,
    FIXED,
    OMITTED_BULK_DATA,
    PUBLIC_VR,
    SQ_TAGS,
    TEXTUAL,
    VIA_ATTRIBUTE,
    VRS,
    Charset,
    Codec,
    Fallback,
    binary_attribute,
    dictionary_vr,
    json_model,
    malformed,
    private_dictionary_vr,
    pydicom_attribute,
    tag_text,
)

__all__ = ["DEFAULT_SCAN_LIMITS", "ScanLimits", "check_dataset", "dataset_json"]

MAX_SUPPORTED_DEPTH: Final = 256
"""Deepest ``max_depth`` accepted: each level costs two Python frames."""


@dataclass(frozen=True, slots=True)
class ScanLimits:
    """What one data set may cost; crossing any raises ``LimitExceeded`` at once.

    Elements are counted at every nesting level, items per sequence, depth in items
    (a top-level sequence's items are depth 1), value length per element.
    """

    max_elements: int = 50_000
    max_items: int = 10_000
    max_depth: int = 64
    """Structured reports nest content items deeply; each level costs two Python frames."""
    max_value_length: int = 16 * 1024 * 1024

    def __post_init__(self) -> None:
        for name in ("max_elements", "max_items", "max_depth", "max_value_length"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative")
        if self.max_depth > MAX_SUPPORTED_DEPTH:
            raise ValueError(f"max_depth must not exceed {MAX_SUPPORTED_DEPTH}")


DEFAULT_SCAN_LIMITS: Final = ScanLimits()
DEFAULT_INLINE_LIMIT: Final = 1024 * 1024
"""Largest binary value written as InlineBinary (PS3.18 F.2.7); larger ones get a URI."""

_UNDEFINED: Final = 0xFFFFFFFF
_ITEM: Final = 0xFFFEE000
_ITEM_END: Final = 0xFFFEE00D
_SEQUENCE_END: Final = 0xFFFEE0DD
_DELIMITER_GROUP: Final = 0xFFFE
_CHARSET: Final = 0x00080005
_UN_LENGTH_CEILING: Final = 0xFFFF  # pydicom trusts UN over the dictionary from here

_LONG_VRS: Final = frozenset("OB OD OF OL OV OW SQ UC UN UR UT SV UV".split())
_EXPLICIT: Final = {vr.encode("ascii"): (vr, vr in _LONG_VRS) for vr in VRS}
_CREATOR_VRS: Final = TEXTUAL | {"IS", "DS"}
_SIZE: Final = {vr: struct.calcsize("<" + code) for vr, code in FIXED.items()}


_IMPLICIT_LE: Final = Codec(True, True)
_EXPLICIT_LE: Final = Codec(False, True)
_EXPLICIT_BE: Final = Codec(False, False)
_SYNTAXES: Final = {
    IMPLICIT_VR_LITTLE_ENDIAN: (_IMPLICIT_LE, False),
    EXPLICIT_VR_LITTLE_ENDIAN: (_EXPLICIT_LE, False),
    DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN: (_EXPLICIT_LE, True),
    EXPLICIT_VR_BIG_ENDIAN: (_EXPLICIT_BE, False),
}


# pydicom's own encoding names for the three we decode natively (PS3.3 C.12.1.1.2).
_DEFAULT_CHARSET: Final = Charset("latin-1", ["iso8859"])
_NATIVE_CHARSETS: Final = {
    "": _DEFAULT_CHARSET,
    "ISO_IR 6": _DEFAULT_CHARSET,
    "ISO_IR 100": Charset("latin-1", ["latin_1"]),
    "ISO_IR 192": Charset("utf-8", ["UTF8"]),
}


class _WholeDataset(Exception):
    """A VR that depends on other attributes (``US or SS``): pydicom reads it all."""


_KEYS: Final[dict[int, str]] = {}
_KEY_CACHE_SIZE: Final = 8192


def _key(tag: int) -> str:
    """The JSON key of a tag (PS3.18 F.2.1), remembered: a lookup costs less than format."""
    key = f"{tag:08X}"
    if len(_KEYS) < _KEY_CACHE_SIZE:
        _KEYS[tag] = key
    return key


def _over(limit: str, what: str) -> LimitExceeded:
    return LimitExceeded(f"{limit}: {what}", limit)


# --- VRs of Implicit VR elements (PS3.5 §7.1.3, §6.2.2) --------------------------------


@lru_cache(maxsize=1024)
def _sniff(buf: bytes, start: int, end: int) -> Codec:
    """pydicom's guess for an item of a UN sequence: explicit if a VR seems to be there.

    Bytes 4-5 of an Implicit VR header are the low half of a length, two capital letters
    only for a value of 16 KiB or more; PS3.5 §6.2.2 says Implicit VR, senders differ.
    """
    vr = buf[start + 4 : start + 6]
    if end - start >= 6 and vr.isalpha() and vr.isupper():
        return _EXPLICIT_LE
    return _IMPLICIT_LE


# --- value converters: the DICOM JSON "Value" of each VR (PS3.18 F.2.3) -----------------
# Each mirrors pydicom's converter and to_json_dict for the values they agree on and
# raises Fallback for the rest; None means "no value" (F.2.5).


class _Scan:
    """One walk over one data set; ``out`` dicts are filled only when JSON is wanted."""

    __slots__ = ("buf", "json", "inline_limit", "elements", "limits")

    def __init__(self, buf: bytes, limits: ScanLimits, json: bool, inline_limit: int) -> None:
        self.buf = buf
        self.json = json
        self.inline_limit = inline_limit
        self.elements = 0
        self.limits = limits

    def dataset(
        self,
        pos: int,
        end: int,
        delimited: bool,
        depth: int,
        codec: Codec,
        charset: Charset,
        out: dict[str, Any] | None,
    ) -> int:
        """Elements from ``pos`` to ``end`` (or an item delimiter if ``delimited``): the
        listener's hot loop, one ``unpack_from`` and one VR lookup per element; anything
        rare (UN, private, sequences, binary values, a character set) is a method away."""
        buf = self.buf
        header = codec.header.unpack_from
        implicit = codec.implicit
        max_elements = self.limits.max_elements
        max_value = self.limits.max_value_length
        count = self.elements
        last = -1
        creators: dict[int, tuple[int, int, str]] | None = None
        while pos < end:
            if end - pos < 8:
                raise malformed(f"truncated element header at byte {pos}")
            if implicit:
                group, elem, length = header(buf, pos)
            else:
                group, elem, vr_bytes, length = header(buf, pos)
            tag = group << 16 | elem
            if tag <= last or group == _DELIMITER_GROUP:
                if delimited and tag == _ITEM_END:
                    self.elements = count
                    return self.item_end(pos, codec)
                raise self.misplaced(tag, last)
            last = tag
            count += 1
            if count > max_elements:
                raise _over("max_elements", f"over {max_elements} data elements")
            start = pos + 8
            if implicit:
                vr = PUBLIC_VR.get(tag, "")
            else:
                vr, long = _EXPLICIT.get(vr_bytes) or self.bad_vr(tag, vr_bytes)
                if long:
                    length, start = self.long_length(pos, end, codec), pos + 12
                if vr != "SQ" and vr != "UN" and tag in SQ_TAGS:
                    raise malformed(f"sequence sent as {vr}", tag)
            items_codec: Codec | None = None if vr == "UN" else codec  # UN items: §6.2.2
            if not vr or vr == "UN":
                vr = self.resolve(tag, vr, length, implicit, creators, charset)
            if length == _UNDEFINED or vr == "SQ":
                self.elements = count
                pos = self.sequence_element(
                    tag, vr, start, length, end, depth, items_codec, charset, out
                )
                count = self.elements
                continue
            pos = start + length
            if pos > end:
                raise malformed(f"value of {length} bytes runs past the end", tag)
            if length > max_value:
                raise _over("max_value_length", f"{length} bytes in {tag_text(tag)}")
            size = _SIZE.get(vr)
            if size is not None and length % size:
                raise malformed(f"{vr} length {length} not a multiple of {size}", tag)
            if group & 1 or tag == _CHARSET:
                creators, charset = self.special(tag, vr, start, pos, creators, charset, out)
            if out is not None and elem:
                out[_KEYS.get(tag) or _key(tag)] = (
                    {"vr": vr}
                    if start == pos
                    else self.attribute(tag, vr, start, pos, codec, charset)
                    if vr in VIA_ATTRIBUTE
                    else self.value(tag, vr, start, pos, codec, charset)
                )
        self.elements = count
        if delimited:
            raise malformed(f"item delimiter missing at byte {end}")
        return pos

    def value(
        self, tag: int, vr: str, start: int, pos: int, codec: Codec, charset: Charset
    ) -> dict[str, Any]:
        """One string or number value's JSON attribute (PS3.18 F.2.3)."""
        try:
            values = CONVERTERS[vr](self.buf[start:pos], codec, charset)
        except Fallback:
            return self.fallback(tag, vr, start, pos, codec, charset)
        return {"vr": vr} if values is None else {"vr": vr, "Value": values}

    def special(
        self,
        tag: int,
        vr: str,
        start: int,
        pos: int,
        creators: dict[int, tuple[int, int, str]] | None,
        charset: Charset,
        out: dict[str, Any] | None,
    ) -> tuple[dict[int, tuple[int, int, str]] | None, Charset]:
        """A private creator (remembered for its block's VRs) or the character set."""
        if tag & 0x10000 and 0x10 <= tag & 0xFFFF <= 0xFF:
            creators = creators or {}
            creators[tag] = (start, pos, vr)
        elif tag == _CHARSET:
            if vr != "CS":  # PS3.6; pydicom fails on a number here, we on anything
                raise malformed(f"Specific Character Set sent as {vr}")
            charset = self.charset(start, pos, charset, out)
        return creators, charset

    def sequence_element(
        self,
        tag: int,
        vr: str,
        start: int,
        length: int,
        end: int,
        depth: int,
        codec: Codec | None,
        charset: Charset,
        out: dict[str, Any] | None,
    ) -> int:
        """A sequence of defined length, or any element of undefined length."""
        if tag == _CHARSET:
            raise malformed(f"Specific Character Set sent as {vr}")
        if length == _UNDEFINED:
            return self.undefined(tag, vr, start, end, depth, codec, charset, out)
        pos = start + length
        if pos > end:
            raise malformed(f"value of {length} bytes runs past the end", tag)
        items = self.sequence(tag, start, pos, False, depth, codec, charset)[1]
        if out is not None and tag & 0xFFFF:
            out[_key(tag)] = {"vr": "SQ", "Value": items} if items else {"vr": "SQ"}
        return pos

    def bad_vr(self, tag: int, vr_bytes: bytes) -> tuple[str, bool]:
        raise malformed(f"unknown VR {vr_bytes!r}", tag)

    def long_length(self, pos: int, end: int, codec: Codec) -> int:
        """The 4-byte length after a 2-byte reserved field (PS3.5 Table 7.1-1)."""
        if end - pos < 12:
            raise malformed(f"truncated element header at byte {pos}")
        length: int = codec.long.unpack_from(self.buf, pos + 8)[0]
        return length

    def misplaced(self, tag: int, last: int) -> DatasetError:
        if tag >> 16 == _DELIMITER_GROUP:
            return malformed(f"misplaced {tag_text(tag)} after {tag_text(last)}")
        if tag == last:
            return malformed(f"{tag_text(tag)} occurs twice")
        return malformed(f"{tag_text(tag)} out of order after {tag_text(last)}")

    def item_end(self, pos: int, codec: Codec) -> int:
        length = codec.item.unpack_from(self.buf, pos)[2]
        if length:
            raise malformed(f"item delimiter length {length} is not 0")
        return pos + 8

    def resolve(
        self,
        tag: int,
        vr: str,
        length: int,
        implicit: bool,
        creators: dict[int, tuple[int, int, str]] | None,
        charset: Charset,
    ) -> str:
        """The VR pydicom gives an Implicit VR element, or an explicit UN it recognises."""
        if implicit or length != _UNDEFINED:
            if tag >> 16 & 1:
                vr = self.private_vr(tag, creators, charset)
            elif implicit or length < _UN_LENGTH_CEILING:
                known = dictionary_vr(tag)
                vr = known or ("UL" if implicit and not tag & 0xFFFF else "UN")
        if " or " in vr:
            if self.json:
                raise _WholeDataset  # US or SS etc.: depends on other attributes
            if vr == "US or SS" and tag in _AMBIGUOUS_US_SS_TAGS:
                return "US"  # pydicom reads these as 16-bit numbers either way
        return vr

    def private_vr(
        self, tag: int, creators: dict[int, tuple[int, int, str]] | None, charset: Charset
    ) -> str:
        """pydicom's VR for a private element: creators are LO, the rest by dictionary."""
        elem = tag & 0xFFFF
        if 0x10 <= elem <= 0xFF:
            return "LO"
        if not creators or not elem & 0xFF00:
            return "UN"
        creator = creators.get((tag & 0xFFFF0000) | elem >> 8)
        if creator is None or creator[2] not in _CREATOR_VRS:
            return "UN"  # pydicom looks a non-text creator up and finds nothing
        start, end, vr = creator
        # An IS/DS creator that is not a number stays text in pydicom, and is looked up.
        text_vr = "LO" if vr in ("IS", "DS") else vr
        names = CONVERTERS[text_vr](self.buf[start:end], _IMPLICIT_LE, charset)
        return private_dictionary_vr(tag, names[0]) if names and len(names) == 1 else "UN"

    def charset(
        self, start: int, end: int, charset: Charset, out: dict[str, Any] | None
    ) -> Charset:
        """Specific Character Set (0008,0005) for this data set and its items."""
        text = self.buf[start:end].decode("latin-1").rstrip(" \x00")
        found = _NATIVE_CHARSETS.get(text)
        if found is None:
            names = text.split("\\")
            try:
                found = Charset(None, convert_encodings(names[0] if len(names) == 1 else names))
            except Exception as exc:  # as pydicom's reader fails on it
                raise malformed("Specific Character Set unusable") from exc
        if out and found.encodings != charset.encodings:
            if any(attr["vr"] in CHARSET_VRS for attr in out.values()):
                raise _WholeDataset  # text before (0008,0005) is decoded with it too
        return found

    def undefined(
        self,
        tag: int,
        vr: str,
        start: int,
        end: int,
        depth: int,
        codec: Codec | None,
        charset: Charset,
        out: dict[str, Any] | None,
    ) -> int:
        """An undefined length: a sequence (PS3.5 §7.5.2), or in Implicit VR, pydicom's
        empty value of an unknown tag that is closed at once."""
        if codec is not None and codec.implicit:
            known = dictionary_vr(tag)
            if known is None:  # pydicom looks at what follows
                following = codec.item.unpack_from(self.buf, start) if end - start >= 8 else None
                if following is not None and following[:2] == (_DELIMITER_GROUP, 0xE0DD):
                    if following[2]:
                        raise malformed(f"delimiter length {following[2]} is not 0", tag)
                    if out is not None and tag & 0xFFFF:
                        out[_key(tag)] = {"vr": vr}
                    return start + 8
                if following is None or following[:2] != (_DELIMITER_GROUP, 0xE000):
                    raise malformed("undefined length without items", tag)
            elif known != "SQ":
                raise malformed(f"undefined length on {known}", tag)
        elif vr != "SQ" and vr != "UN":
            raise malformed(f"undefined length on {vr}", tag)
        pos, items = self.sequence(tag, start, end, True, depth, codec, charset)
        if out is not None and tag & 0xFFFF:
            out[_key(tag)] = {"vr": "SQ", "Value": items} if items else {"vr": "SQ"}
        return pos

    def sequence(
        self,
        tag: int,
        pos: int,
        end: int,
        delimited: bool,
        depth: int,
        codec: Codec | None,
        charset: Charset,
    ) -> tuple[int, list[Any] | None]:
        """Items (PS3.5 §7.5.1); ``codec`` None reads a UN sequence's items (§6.2.2)."""
        buf = self.buf
        item_header = (codec or _IMPLICIT_LE).item.unpack_from
        limits = self.limits
        items: list[Any] | None = [] if self.json else None
        count = 0
        while pos < end:
            if end - pos < 8:
                raise malformed(f"truncated item header at byte {pos}")
            group, elem, length = item_header(buf, pos)
            if group << 16 | elem != _ITEM:
                if delimited and group << 16 | elem == _SEQUENCE_END:
                    if length:
                        raise malformed(f"delimiter length {length} is not 0", tag)
                    return pos + 8, items
                raise malformed("expected an item", tag)
            count += 1
            if count > limits.max_items:
                raise LimitExceeded(
                    f"max_items: over {limits.max_items} items in {tag_text(tag)}", "max_items"
                )
            if depth >= limits.max_depth:
                raise LimitExceeded(
                    f"max_depth: items nested over {limits.max_depth} deep in {tag_text(tag)}",
                    "max_depth",
                )
            pos = self.item(tag, pos + 8, end, length, depth + 1, codec, charset, items)
        if delimited:
            raise malformed("sequence delimiter missing", tag)
        return pos, items

    def item(
        self,
        tag: int,
        start: int,
        end: int,
        length: int,
        depth: int,
        codec: Codec | None,
        charset: Charset,
        items: list[Any] | None,
    ) -> int:
        item_codec = codec or _sniff(self.buf, start, end)
        out: dict[str, Any] | None = None if items is None else {}
        if length == _UNDEFINED:
            pos = self.dataset(start, end, True, depth, item_codec, charset, out)
        else:
            pos = start + length
            if pos > end:
                raise malformed(f"item of {length} bytes runs past the end", tag)
            self.dataset(start, pos, False, depth, item_codec, charset, out)
        if items is not None:
            items.append(out)
        return pos

    def attribute(
        self, tag: int, vr: str, start: int, end: int, codec: Codec, charset: Charset
    ) -> dict[str, Any]:
        """Binary values (F.2.7) and SS, which pydicom mends in LUT descriptors."""
        if vr in BINARY:
            if end - start > self.inline_limit:
                return {"vr": vr, "BulkDataURI": f"{OMITTED_BULK_DATA}{end - start}"}
            return binary_attribute(vr, self.buf[start:end], self.inline_limit)
        values = CONVERTERS[vr](self.buf[start:end], codec, charset)
        if values and len(values) > 1 and tag in _LUT_DESCRIPTOR_TAGS and values[0] < 0:
            values[0] += 65536  # as pydicom reads a descriptor sent as SS
        return {"vr": vr} if values is None else {"vr": vr, "Value": values}

    def fallback(
        self, tag: int, vr: str, start: int, end: int, codec: Codec, charset: Charset
    ) -> dict[str, Any]:
        data = self.buf[start:end]
        return pydicom_attribute(tag, vr, data, codec, charset, self.inline_limit)


# --- the API ------------------------------------------------------------------------------


def _prepare(raw: bytes | memoryview, transfer_syntax_uid: str) -> tuple[bytes, Codec]:
    """The scanned bytes (a memoryview is copied once: it could change under us)."""
    try:
        codec, deflated = _SYNTAXES[transfer_syntax_uid]
    except (KeyError, TypeError):
        raise malformed(f"unsupported transfer syntax {transfer_syntax_uid}") from None
    if not isinstance(raw, bytes):
        raw = bytes(raw)
    if deflated:
        try:
            raw = inflate(raw)
        except zlib.error:
            raise malformed("deflated data set is corrupt") from None
    return raw, codec


def check_dataset(
    raw: bytes | memoryview, transfer_syntax_uid: str, limits: ScanLimits = DEFAULT_SCAN_LIMITS
) -> None:
    """Check structure and limits only: the cheapest way to refuse a data set.

    Raises ``DatasetError`` (0x0110) for a data set PS3.5 §7 does not allow, and
    ``LimitExceeded`` (0x0213) as soon as one of ``limits`` is crossed.
    """
    buf, codec = _prepare(raw, transfer_syntax_uid)
    _Scan(buf, limits, False, 0).dataset(0, len(buf), False, 0, codec, _DEFAULT_CHARSET, None)


def dataset_json(
    raw: bytes | memoryview,
    transfer_syntax_uid: str,
    limits: ScanLimits = DEFAULT_SCAN_LIMITS,
    *,
    inline_limit: int = DEFAULT_INLINE_LIMIT,
) -> dict[str, Any]:
    """``check_dataset``'s checks and the PS3.18 F.2 JSON model, in the same pass."""
    buf, codec = _prepare(raw, transfer_syntax_uid)
    out: dict[str, Any] = {}
    try:
        _Scan(buf, limits, True, inline_limit).dataset(
            0, len(buf), False, 0, codec, _DEFAULT_CHARSET, out
        )
    except _WholeDataset:
        return _whole_dataset_json(buf, codec, limits, inline_limit)
    return out


def _whole_dataset_json(
    buf: bytes, codec: Codec, limits: ScanLimits, inline_limit: int
) -> dict[str, Any]:
    """pydicom reads the data set (checked again, in full, before it does)."""
    from ups.dimse.datasets import decode_dataset

    syntax = next(uid for uid, (c, deflated) in _SYNTAXES.items() if c is codec and not deflated)
    return json_model(decode_dataset(buf, syntax, limits), inline_limit)
