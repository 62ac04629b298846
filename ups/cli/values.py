"""DICOM values written as text: the VRs, the dictionary's VR of a tag, and the
conversion of strings into the values pydicom stores (PS3.5 Table 6.2-1).

Shared by ``-q``/``-s`` assignments (:mod:`ups.cli.attrpath`) and the XML data set
readers (:mod:`ups.cli.xmlfiles`), so a value typed on the command line and one read
from a file are judged alike.
"""

from __future__ import annotations

import re
from typing import Any

from pydicom.datadict import dictionary_VR
from pydicom.dataset import Dataset

__all__ = [
    "BINARY_VRS",
    "HEX_TAG",
    "MAX_DEPTH",
    "SINGLE_VALUE_TEXT_VRS",
    "VRS",
    "clean",
    "dictionary_vr",
    "one_line",
    "values_from_strings",
]

MAX_DEPTH = 128
"""Deepest nesting of sequences an input file may have."""

VRS = frozenset(
    "AE AS AT CS DA DS DT FD FL IS LO LT OB OD OF OL OV OW PN SH SL SQ SS ST SV TM UC UI"
    " UL UN UR US UT UV".split()
)
"""The value representations of PS3.5 Table 6.2-1."""

BINARY_VRS = frozenset({"OB", "OD", "OF", "OL", "OV", "OW", "UN"})
SINGLE_VALUE_TEXT_VRS = frozenset({"LT", "ST", "UT", "UR"})  # backslash is data (PS3.5 6.2)
_INT_RANGES = {
    "US": (0, 0xFFFF),
    "SS": (-0x8000, 0x7FFF),
    "UL": (0, 0xFFFFFFFF),
    "SL": (-0x80000000, 0x7FFFFFFF),
    "UV": (0, 0xFFFFFFFFFFFFFFFF),
    "SV": (-0x8000000000000000, 0x7FFFFFFFFFFFFFFF),
}
_FLOAT_VRS = frozenset({"FL", "FD"})
HEX_TAG = re.compile(r"[0-9A-Fa-f]{8}")


def dictionary_vr(tag: int) -> str | None:
    """The VR PS3.6 gives ``tag``, or ``None`` when the dictionary does not know it.

    Ambiguous dictionary entries ("US or SS", "OB or OW") resolve to their first
    choice; group lengths are UL and private creators LO (PS3.5 7.2, 7.8.1).
    """
    group, element = tag >> 16, tag & 0xFFFF
    if element == 0:
        return "UL"
    if group % 2 == 1 and 0x0010 <= element <= 0x00FF:
        return "LO"
    try:
        vr = str(dictionary_VR(tag))
    except KeyError:
        return None
    return vr.split(" or ")[0]


def values_from_strings(texts: list[str], vr: str) -> Any:
    """Turn the string form of each value into what pydicom stores for ``vr``.

    Returns ``None`` (an empty value) for no strings, the single value for one,
    a list otherwise. Raises ``ValueError`` naming the first bad string; binary
    VRs (OB, OW, ...) have no string form here.
    """
    values: list[Any] = []
    for text in texts:
        stripped = text.strip()
        try:
            if vr in _INT_RANGES or vr == "IS":
                number = int(stripped)
                low, high = _INT_RANGES.get(vr, (-(2**31), 2**31 - 1))  # IS: PS3.5 6.2
                if not low <= number <= high:
                    raise ValueError(stripped)
                values.append(number)
            elif vr in _FLOAT_VRS:
                values.append(float(stripped))
            elif vr == "DS":
                float(stripped)
                values.append(stripped)
            elif vr == "AT":
                if not HEX_TAG.fullmatch(stripped):
                    raise ValueError(stripped)
                values.append(int(stripped, 16))
            elif vr in BINARY_VRS or vr == "SQ":
                raise ValueError(stripped)
            else:
                values.append(text)
        except ValueError:
            raise ValueError(f"value {text!r} is not a valid {vr}") from None
    if not values:
        return None
    return values[0] if len(values) == 1 else values


def clean(ds: Dataset, *, top: bool) -> Dataset:
    """Drop Group Length elements everywhere and File Meta (group 0002) at the top.

    Neither belongs to a data set sent in a DIMSE message (PS3.5 7.1, 7.2;
    PS3.19 A.1 and PS3.18 F.2.2 exclude group lengths as well).
    """
    for elem in list(ds):
        if elem.tag.element == 0 or (top and elem.tag.group == 0x0002):
            del ds[elem.tag]
        elif elem.VR == "SQ":
            for item in elem.value:
                clean(item, top=False)
    return ds


def one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text or type(exc).__name__
