"""How data sets and results are printed: a readable dump and DICOM JSON lines.

* :func:`dump_dataset` is the default, human-oriented output: one attribute per
  line (tag, VR, keyword, value), sequence items indented beneath their sequence,
  long values cut with a visible marker and control characters escaped so that a
  value can neither break the layout nor drive the terminal.
* :func:`to_json_model` gives the PS3.18 Annex F.2 DICOM JSON Model of a data set
  (what ``--json`` prints), binary values inline as base64 (F.2.7) up to a limit.
* :func:`json_line` serialises one result as a single compact line (JSON Lines),
  so a stream of results can be split on newlines.
* :class:`Printer` prints an operation's results in either form.
"""

from __future__ import annotations

import base64
import json
import logging
import math
import sys
from collections.abc import Callable, Iterable
from typing import Any, TextIO, cast

from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.tag import BaseTag

from ups.dimse.status import useful_comment
from ups.services.scu import UPSResult
from ups.services.uids import UID_NAMES

__all__ = [
    "Printer",
    "log_to_stderr",
    "DEFAULT_INLINE_LIMIT",
    "DEFAULT_VALUE_WIDTH",
    "dump_dataset",
    "format_value",
    "to_json_model",
    "json_line",
]

DEFAULT_VALUE_WIDTH = 64
"""Characters of a value shown by :func:`dump_dataset` before it is cut."""

DEFAULT_INLINE_LIMIT = 1024 * 1024
"""Largest binary value (bytes) written as InlineBinary by :func:`to_json_model`."""

_BINARY_VRS = frozenset({"OB", "OD", "OF", "OL", "OV", "OW", "UN"})
_KEYWORD_COLUMN = 40
_INDENT = "  "
# C0, DEL and C1 controls become visible escapes; everything else prints as is.
_ESCAPES = {code: f"\\x{code:02x}" for code in [*range(0x20), *range(0x7F, 0xA0)]}
_ESCAPES.update({ord("\n"): "\\n", ord("\r"): "\\r", ord("\t"): "\\t"})


def log_to_stderr() -> None:
    """``--verbose``: our log lines on stderr. pydicom logs every warning it also raises
    about a value; those are judged and reported in our own words
    (:mod:`ups.dimse.values`), so its logger keeps to errors."""
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    logging.getLogger("pydicom").setLevel(logging.ERROR)


def dump_dataset(ds: Dataset, *, width: int = DEFAULT_VALUE_WIDTH) -> str:
    """A readable, indented listing of ``ds``; values longer than ``width`` are cut."""
    lines: list[str] = []
    _dump_into(lines, ds, 0, width)
    return "\n".join(lines)


def _dump_into(lines: list[str], ds: Dataset, depth: int, width: int) -> None:
    indent = _INDENT * depth
    for elem in ds:
        tag = BaseTag(elem.tag)
        vr = str(elem.VR).split(" or ")[0]
        keyword = _keyword(elem).ljust(_KEYWORD_COLUMN - len(indent) - 1) + " "
        head = f"{indent}({tag.group:04X},{tag.element:04X}) {vr} {keyword}"
        if vr == "SQ":
            count = len(elem.value)
            lines.append(f"{head}({count} item{'' if count == 1 else 's'})".rstrip())
            for number, item in enumerate(elem.value, start=1):
                lines.append(f"{indent}{_INDENT}Item #{number}")
                _dump_into(lines, item, depth + 2, width)
        else:
            lines.append(f"{head}{format_value(elem, width=width)}".rstrip())


def _keyword(elem: DataElement) -> str:
    if elem.keyword:
        return str(elem.keyword)
    tag = BaseTag(elem.tag)
    if tag.is_private:
        return "PrivateCreator" if tag.is_private_creator else "(private)"
    return "(unknown)"


def format_value(elem: DataElement, *, width: int = DEFAULT_VALUE_WIDTH) -> str:
    """The value of a non-sequence element as one escaped, possibly cut, line."""
    if elem.is_empty:
        return "<empty>"
    value = elem.value
    vr = str(elem.VR)
    if isinstance(value, bytes | bytearray):
        shown = " ".join(f"{byte:02X}" for byte in value[:16])
        more = " ..." if len(value) > 16 else ""
        return f"<{len(value)} bytes: {shown}{more}>"
    values = list(value) if _is_multi(value) else [value]
    text = "\\".join(_one(v, vr) for v in values).translate(_ESCAPES)
    if len(text) > width:
        text = f"{text[:width]}... [{len(text)} chars]"
    if vr == "UI" and len(values) == 1 and str(values[0]) in UID_NAMES:
        text += f" ({UID_NAMES[str(values[0])]})"
    return text


def _is_multi(value: object) -> bool:
    """Whether a stored value holds several values (PersonName is iterable, but one)."""
    return isinstance(value, MultiValue | list | tuple)


def _one(value: object, vr: str) -> str:
    if vr == "AT" and isinstance(value, int):
        tag = BaseTag(value)
        return f"({tag.group:04X},{tag.element:04X})"
    return str(value)


# --- DICOM JSON Model (PS3.18 F.2) -----------------------------------------------


def to_json_model(
    ds: Dataset,
    *,
    inline_limit: int = DEFAULT_INLINE_LIMIT,
    bulk_data_uri: Callable[[DataElement], str] | None = None,
) -> dict[str, Any]:
    """The PS3.18 F.2 DICOM JSON Model object of ``ds``.

    Binary values (OB, OD, OF, OL, OV, OW, UN) of up to ``inline_limit`` bytes are
    written as ``InlineBinary`` (F.2.7). A larger one becomes a ``BulkDataURI``
    (F.2.6): the URI ``bulk_data_uri`` returns for it, or by default
    ``urn:dcmups:omitted-bulk-data:<length>``, which says the value was left out.
    Attributes without a value carry only their ``vr`` (F.2.5). Group lengths are
    left out (F.2.2).
    """
    model: dict[str, Any] = {}
    for elem in ds:
        if BaseTag(elem.tag).element == 0:
            continue
        model[f"{elem.tag:08X}"] = _json_attribute(elem, inline_limit, bulk_data_uri)
    return model


def _json_attribute(
    elem: DataElement,
    inline_limit: int,
    bulk_data_uri: Callable[[DataElement], str] | None,
) -> dict[str, Any]:
    vr = str(elem.VR).split(" or ")[0]
    if vr == "SQ":
        items = [
            to_json_model(i, inline_limit=inline_limit, bulk_data_uri=bulk_data_uri)
            for i in elem.value
        ]
        return {"vr": vr, "Value": items} if items else {"vr": vr}
    if elem.is_empty:
        return {"vr": vr}
    value = elem.value
    if isinstance(value, bytes | bytearray) and vr in _BINARY_VRS:
        if len(value) > inline_limit:
            uri = (
                bulk_data_uri(elem)
                if bulk_data_uri is not None
                else f"urn:dcmups:omitted-bulk-data:{len(value)}"
            )
            return {"vr": vr, "BulkDataURI": uri}
        return {"vr": vr, "InlineBinary": base64.b64encode(value).decode("ascii")}
    try:
        attr: dict[str, Any] = elem.to_json_dict(None, 0)
    except Exception:  # an invalid stored value: fall back to its text form
        values = list(value) if _is_multi(value) else [value]
        attr = {"Value": [str(v) for v in values]}
    return {"vr": vr, **{k: v for k, v in attr.items() if k != "vr"}}


def json_line(obj: dict[str, Any]) -> str:
    """One compact JSON object on one line (no newline inside or at the end).

    Non-finite floats (NaN, Infinity), which JSON cannot carry, become strings;
    U+2028/U+2029 are escaped because some readers split lines on them.
    """
    options: dict[str, Any] = {
        "ensure_ascii": False,
        "separators": (",", ":"),
        "allow_nan": False,
        "default": _json_default,
    }
    try:
        text = json.dumps(obj, **options)
    except ValueError:
        text = json.dumps(_finite(obj), **options)
    return text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


def _json_default(obj: object) -> Any:
    if isinstance(obj, Dataset):
        return to_json_model(obj)
    if isinstance(obj, bytes | bytearray):
        return base64.b64encode(obj).decode("ascii")
    if _is_multi(obj):
        return list(cast(Iterable[Any], obj))
    return str(obj)


def _finite(obj: Any) -> Any:
    if isinstance(obj, float) and not math.isfinite(obj):
        return str(obj).replace("inf", "Infinity").replace("nan", "NaN")
    if isinstance(obj, dict):
        return {key: _finite(value) for key, value in obj.items()}
    if isinstance(obj, list | tuple):
        return [_finite(value) for value in obj]
    return obj


class Printer:
    """Readable or JSON-lines output of results; one write per line."""

    def __init__(self, out: TextIO, as_json: bool) -> None:
        self.out = out
        self.as_json = as_json

    def result(self, result: UPSResult) -> None:
        if self.as_json:
            obj: dict[str, object] = {"op": result.operation, "status": result.status}
            if result.iuid:
                obj["iuid"] = result.iuid
            if result.dataset is not None:
                obj["dataset"] = to_json_model(result.dataset)
            if result.is_warning:
                obj["warning"] = result.meaning
            self.out.write(json_line(obj) + "\n")
        else:
            head = f"{result.operation}: {result.meaning}"
            if result.iuid:
                head += f" iuid={result.iuid}"
            comment = useful_comment(result.status, result.error_comment)
            if comment:
                head += f" ({comment})"
            text = head + "\n"
            if result.dataset is not None and len(result.dataset):
                text += dump_dataset(result.dataset) + "\n"
            self.out.write(text)
        self.out.flush()
