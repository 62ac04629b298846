"""Turning one element's value bytes into its PS3.18 F.2 JSON value, as pydicom would.

The scanner (``ups.dimse.scanner``) walks a data set's structure and calls these per
element: strings split on backslashes and stripped as PS3.5 §6.2 says, PN as component
groups (F.2.2), IS/DS as numbers, AT as tags, binary VRs as InlineBinary or an omitted
BulkDataURI, with the value's character set (``Charset``) and byte order (``Codec``).
What pydicom reads in some irregular way is handed back (``Fallback``) for pydicom to
convert, one element at a time.
"""

from __future__ import annotations

import base64
import math
import struct
from collections.abc import Callable
from typing import Any, Final

from pydicom._dicom_dict import DicomDictionary, RepeatersDictionary
from pydicom._private_dict import private_dictionaries
from pydicom.charset import decode_bytes
from pydicom.datadict import masks
from pydicom.dataelem import DataElement, RawDataElement, convert_raw_data_element
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.tag import BaseTag
from pydicom.valuerep import TEXT_VR_DELIMS

from ups.dimse.errors import DatasetError, error_comment

OMITTED_BULK_DATA: Final = "urn:dcmups:omitted-bulk-data:"


_MAX_EXACT_INT: Final = 2**53  # every integer up to here is exact as a float


FIXED: Final = {
    "US": "H",
    "SS": "h",
    "UL": "L",
    "SL": "l",
    "FL": "f",
    "FD": "d",
    "SV": "q",
    "UV": "Q",
}


BINARY: Final = frozenset("OB OD OF OL OV OW UN".split())


class Codec:
    """How a stretch of bytes is encoded: explicit VR or not, and byte order."""

    __slots__ = ("implicit", "little", "endian", "header", "item", "long")

    def __init__(self, implicit: bool, little: bool) -> None:
        self.implicit = implicit
        self.little = little
        self.endian = "<" if little else ">"
        self.header = struct.Struct(self.endian + ("HHL" if implicit else "HH2sH"))
        self.item = struct.Struct(self.endian + "HHL")
        self.long = struct.Struct(self.endian + "L")


class Charset:
    """A data set's Specific Character Set: a Python codec we decode with ourselves, or
    ``None`` when only pydicom's decoder (code extensions, PS3.5 §6.1.2.5) will do."""

    __slots__ = ("codec", "encodings")

    def __init__(self, codec: str | None, encodings: list[str]) -> None:
        self.codec = codec
        self.encodings = encodings


class Fallback(Exception):
    """A value our converters do not mirror: pydicom converts this one element."""


def tag_text(tag: int) -> str:
    return f"({tag >> 16:04X},{tag & 0xFFFF:04X})"


def malformed(what: str, tag: int | None = None) -> DatasetError:
    return DatasetError(error_comment(what if tag is None else f"{what} in {tag_text(tag)}"))


_Converter = Callable[[bytes, Codec, Charset], list[Any] | None]


def _decode(data: bytes, charset: Charset) -> str:
    codec = charset.codec
    if codec is not None and 0x1B not in data:
        try:
            return data.decode(codec)
        except UnicodeDecodeError:  # pydicom warns and replaces too
            return data.decode(codec, "replace")
    return str(decode_bytes(data, charset.encodings, TEXT_VR_DELIMS))


def _strings(data: bytes, codec: Codec, charset: Charset) -> list[Any] | None:
    text = data.decode("latin-1").rstrip(" \x00")
    return text.split("\\") if text else None


def _uids(data: bytes, codec: Codec, charset: Charset) -> list[Any] | None:
    text = data.decode("latin-1").rstrip(" \x00")
    if "\\" not in text:  # the usual single UID, without a list comprehension
        text = text.strip()
        return [text] if text else None
    return [value.strip() for value in text.split("\\")]


def _application_entities(data: bytes, codec: Codec, charset: Charset) -> list[Any] | None:
    values = [value.strip() for value in data.decode("latin-1").split("\\")]
    return values if len(values) > 1 or values[0] else None


def _uri(data: bytes, codec: Codec, charset: Charset) -> list[Any] | None:
    text = data.decode("latin-1").rstrip()
    return [text] if text else None


def _texts(data: bytes, codec: Codec, charset: Charset) -> list[Any] | None:
    text = _decode(data, charset)
    if "\\" not in text:  # the usual single value, without a list comprehension
        text = text.rstrip("\0 ")
        return [text] if text else None
    return [value.rstrip("\0 ") for value in text.split("\\")]


def _text(data: bytes, codec: Codec, charset: Charset) -> list[Any] | None:
    text = _decode(data, charset).rstrip("\0 ")
    return [text] if text else None


def _person_names(data: bytes, codec: Codec, charset: Charset) -> list[Any] | None:
    if charset.codec is None or 0x1B in data:
        raise Fallback  # code extensions switch per component group (PS3.5 §6.1.2.5.3)
    names = _decode(data.rstrip(b"\x00 "), charset).split("\\")
    if len(names) == 1 and not names[0]:
        return None
    values: list[Any] = []
    for name in names:
        groups = name.split("=")
        while groups and not groups[-1]:
            groups.pop()
        if not groups:
            raise Fallback  # pydicom cannot give this one a JSON form
        value = {"Alphabetic": groups[0]}
        if len(groups) > 1:
            value["Ideographic"] = groups[1]
            if len(groups) > 2:
                value["Phonetic"] = groups[2]
        values.append(value)
    return values


def _integer(text: str) -> int:
    """IS as pydicom reads it: an int, or a finite decimal number truncated."""
    try:
        number = int(text)
    except ValueError:
        try:
            real = float(text)
        except ValueError:
            raise Fallback from None
        if not math.isfinite(real):
            raise Fallback from None
        return int(real)
    if -_MAX_EXACT_INT <= number <= _MAX_EXACT_INT:
        return number
    raise Fallback  # pydicom compares with float(text) and may change its mind


def _integer_strings(data: bytes, codec: Codec, charset: Charset) -> list[Any] | None:
    parts = data.decode("latin-1").rstrip(" \x00").split("\\")
    if len(parts) == 1 and not parts[0]:
        return None
    return [_integer(part) for part in parts]


def _decimal_strings(data: bytes, codec: Codec, charset: Charset) -> list[Any] | None:
    parts = data.decode("latin-1").strip().rstrip(" \x00").split("\\")
    if len(parts) == 1 and not parts[0]:
        return None
    try:
        return [float(part) for part in parts]
    except ValueError:
        raise Fallback from None


def _tags(data: bytes, codec: Codec, charset: Charset) -> list[Any] | None:
    if len(data) % 4:
        raise Fallback  # pydicom truncates with a warning, or reads it as text
    halves = struct.unpack(f"{codec.endian}{len(data) // 2}H", data)
    return [f"{halves[i]:04X}{halves[i + 1]:04X}" for i in range(0, len(halves), 2)]


def _numbers(code: str) -> _Converter:
    size = struct.calcsize("<" + code)
    one = {endian: struct.Struct(endian + code).unpack for endian in "<>"}

    def convert(data: bytes, codec: Codec, charset: Charset) -> list[Any] | None:
        if len(data) == size:
            return [one[codec.endian](data)[0]]
        return list(struct.unpack(f"{codec.endian}{len(data) // size}{code}", data))

    return convert


CONVERTERS: Final[dict[str, _Converter]] = {
    **dict.fromkeys(("AS", "CS", "DA", "DT", "TM"), _strings),
    **dict.fromkeys(("SH", "LO", "UC"), _texts),
    **dict.fromkeys(("ST", "LT", "UT"), _text),
    **{vr: _numbers(code) for vr, code in FIXED.items()},
    "AE": _application_entities,
    "UI": _uids,
    "UR": _uri,
    "PN": _person_names,
    "IS": _integer_strings,
    "DS": _decimal_strings,
    "AT": _tags,
}
VIA_ATTRIBUTE: Final = BINARY | {"SS"}
TEXTUAL: Final = frozenset("AE AS CS DA DT TM UI UR SH LO UC ST LT UT".split())
CHARSET_VRS: Final = frozenset({"SH", "LO", "UC", "ST", "LT", "UT", "PN", "SQ"})


# --- pydicom, where our converters step aside --------------------------------------------


def json_model(ds: Dataset, inline_limit: int) -> dict[str, Any]:
    """``services.output.to_json_model`` over a pydicom data set (it lives above us)."""
    return {
        f"{elem.tag:08X}": _json_attribute(elem, inline_limit) for elem in ds if elem.tag & 0xFFFF
    }


def _json_attribute(elem: DataElement, inline_limit: int) -> dict[str, Any]:
    vr = str(elem.VR).split(" or ")[0]
    if vr == "SQ":
        items = [json_model(item, inline_limit) for item in elem.value]
        return {"vr": vr, "Value": items} if items else {"vr": vr}
    if elem.is_empty:
        return {"vr": vr}
    value = elem.value
    if isinstance(value, bytes | bytearray) and vr in BINARY:
        return binary_attribute(vr, value, inline_limit)
    try:
        attr: dict[str, Any] = elem.to_json_dict(None, 0)
    except Exception:  # a value pydicom cannot put in JSON: its text form, as output does
        values = list(value) if isinstance(value, MultiValue | list | tuple) else [value]
        attr = {"Value": [str(v) for v in values]}
    return {"vr": vr, **{key: v for key, v in attr.items() if key != "vr"}}


def binary_attribute(
    vr: str, value: bytes | bytearray | memoryview, inline_limit: int
) -> dict[str, Any]:
    if len(value) > inline_limit:
        return {"vr": vr, "BulkDataURI": f"{OMITTED_BULK_DATA}{len(value)}"}
    return {"vr": vr, "InlineBinary": base64.b64encode(value).decode("ascii")}


def pydicom_attribute(
    tag: int, vr: str, data: bytes, codec: Codec, charset: Charset, inline_limit: int
) -> dict[str, Any]:
    """One element as pydicom converts it: exact where our converters step aside."""
    raw = RawDataElement(BaseTag(tag), vr, len(data), data, 0, codec.implicit, codec.little)
    try:
        return _json_attribute(
            convert_raw_data_element(raw, encoding=charset.encodings), inline_limit
        )
    except Exception as exc:
        raise malformed(f"cannot convert {tag_text(tag)}: {type(exc).__name__}") from exc


# --- the scan -----------------------------------------------------------------------------


# --- the data dictionary, as Implicit VR needs it (PS3.5 §7.1.3, §6.2.2) -------------


# PS3.5 Table 6.2-1; the second set uses a 2-byte reserved field and a 4-byte length.
VRS: Final = frozenset(
    "AE AS AT CS DA DS DT FD FL IS LO LT OB OD OF OL OV OW PN SH SL SQ SS ST SV TM UC UI "
    "UL UN UR US UT UV".split()
)


SQ_TAGS: Final = frozenset(tag for tag, entry in DicomDictionary.items() if entry[0] == "SQ")


# The hot path's Implicit VR table; VRs that need a second look (ambiguous ones such as
# "US or SS", UN) are left out and found by ``_Scan.resolve``.
PUBLIC_VR: Final[dict[int, str]] = {
    tag: entry[0] for tag, entry in DicomDictionary.items() if entry[0] in VRS - {"UN"}
}


def _repeater_table() -> dict[int, list[tuple[int, int, str]]]:
    """Repeating-group masks (50xx, 60xx, ...) by group, in pydicom's matching order.

    pydicom tries all 88 masks for every unknown tag; grouping them keeps a data set of
    many unknown tags linear with a small constant.
    """
    table: dict[int, list[tuple[int, int, str]]] = {}
    for mask_x, (mask1, mask2) in masks.items():
        group = mask_x[:4]
        key = int(group[:2], 16) << 8 | 0x10000 if group.endswith("xx") else int(group, 16)
        table.setdefault(key, []).append((mask1, mask2, RepeatersDictionary[mask_x][0]))
    return table


_REPEATERS: Final = _repeater_table()


def _repeater_vr(tag: int) -> str | None:
    group = tag >> 16
    for key in (group, (group & 0xFF00) | 0x10000):
        for mask1, mask2, vr in _REPEATERS.get(key, ()):
            if (tag ^ mask1) & mask2 == 0:
                return vr
    return None


def private_dictionary_vr(tag: int, creator: str) -> str:
    """pydicom's private dictionary lookup (element block agnostic, PS3.5 §7.8.1)."""
    entries = private_dictionaries.get(creator)
    if entries is None:
        return "UN"
    group, elem = f"{tag >> 16:04X}", f"{tag & 0xFFFF:04X}"
    for key in (group + elem, f"{group}xx{elem[2:]}", f"{group[:2]}xxxx{elem[2:]}"):
        entry = entries.get(key)
        if entry is not None:
            vr = str(entry[0])
            return vr if vr in VRS or " or " in vr else "UN"
    return "UN"


def dictionary_vr(tag: int) -> str | None:
    """The public data dictionary's VR, repeating groups included; None if unknown."""
    entry = DicomDictionary.get(tag)
    if entry is not None:
        return str(entry[0])
    return None if tag >> 16 & 1 else _repeater_vr(tag)
