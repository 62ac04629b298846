"""How data sets and results are printed: a readable dump and DICOM JSON lines.

* :func:`dump_dataset` is the default, human-oriented output: one attribute per
  line (tag, VR, keyword, value), sequence items indented beneath their sequence,
  long values cut with a visible marker and control characters escaped so that a
  value can neither break the layout nor drive the terminal.
* :func:`to_json_model` gives the PS3.18 Annex F.2 DICOM JSON Model of a data set
  (what ``--json`` prints) and :func:`json_line` serialises one result as a single
  compact line; both live in :mod:`ups.services.jsonmodel` (the event sinks use them
  too) and are re-exported here.
* :class:`Printer` prints an operation's results in either form.
"""

from __future__ import annotations

import logging
import sys
from typing import TextIO

from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.tag import BaseTag

from ups.dimse.status import useful_comment
from ups.services.jsonmodel import DEFAULT_INLINE_LIMIT, is_multi, json_line, to_json_model
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
    values = list(value) if is_multi(value) else [value]
    text = "\\".join(_one(v, vr) for v in values).translate(_ESCAPES)
    if len(text) > width:
        text = f"{text[:width]}... [{len(text)} chars]"
    if vr == "UI" and len(values) == 1 and str(values[0]) in UID_NAMES:
        text += f" ({UID_NAMES[str(values[0])]})"
    return text


def _one(value: object, vr: str) -> str:
    if vr == "AT" and isinstance(value, int):
        tag = BaseTag(value)
        return f"({tag.group:04X},{tag.element:04X})"
    return str(value)


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
