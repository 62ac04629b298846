"""Attribute specifications on the command line: ``-q``, ``-r`` (and ``-s``/``-m``).

dcm4che2 ``dcmups`` names an attribute by keyword (``ScheduledProcedureStepStartDateTime``)
or by its tag as 8 hex digits (``00404005``), and reaches into a sequence by
prefixing the sequence and a ``/`` (``00404018/00080100=CODE``: Code Value in the
first item of Scheduled Workitem Code Sequence). dcm4che5 writes the same path
with ``.`` (``00404018.00080100``); both separators are accepted, since neither
can occur in a keyword or a hex tag. ``(gggg,eeee)`` is accepted too.

Values are converted according to the VR the PS3.6 data dictionary gives the
attribute; several values are separated by a backslash (PS3.5 6.4). An empty
value is an empty attribute, which in a C-FIND identifier requests universal
matching (PS3.4 C.2.2.2.3) and in a return key list asks for the value.
Nested attributes always go into the first item of their sequence, creating the
sequence and item when needed (sequence matching, PS3.4 C.2.2.2.6).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from pydicom.datadict import tag_for_keyword
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from ups.cli.exits import UserInputError
from ups.cli.values import SINGLE_VALUE_TEXT_VRS, dictionary_vr, values_from_strings

__all__ = [
    "parse_tag",
    "parse_path",
    "parse_assignment",
    "apply_assignment",
    "add_return_key",
    "build_dataset",
]

_HEX8 = re.compile(r"[0-9A-Fa-f]{8}")
_GROUP_ELEMENT = re.compile(r"\(?\s*([0-9A-Fa-f]{4})\s*,\s*([0-9A-Fa-f]{4})\s*\)?")
_SEPARATORS = re.compile(r"[/.]")


def parse_tag(spec: str) -> int:
    """One attribute: a keyword, 8 hex digits or ``(gggg,eeee)`` -> the tag as an int."""
    text = spec.strip()
    if _HEX8.fullmatch(text):
        return int(text, 16)
    match = _GROUP_ELEMENT.fullmatch(text)
    if match:
        return int(match[1] + match[2], 16)
    tag = tag_for_keyword(text) if text.isidentifier() else None
    if tag is None:
        raise UserInputError(
            f"unknown attribute {spec!r}: expected a keyword such as PatientName"
            " or a tag of 8 hex digits such as 00100010"
        )
    return int(tag)


def parse_path(spec: str) -> tuple[int, ...]:
    """``seq/seq/attr`` (or ``seq.attr``) -> the tags from outermost to innermost.

    Every step but the last must be a sequence (VR SQ) in the data dictionary.
    """
    try:
        return _path(spec)
    except UserInputError as exc:
        raise UserInputError(f"bad attribute {spec!r}: {exc}") from None


def parse_assignment(spec: str) -> tuple[tuple[int, ...], str]:
    """``[seq/]attr=value`` -> (path of tags, value string, possibly empty)."""
    if "=" not in spec:
        raise UserInputError(f"bad attribute specification {spec!r}: expected attr=value")
    left, value = spec.split("=", 1)
    try:
        return _path(left), value
    except UserInputError as exc:
        raise UserInputError(f"bad attribute specification {spec!r}: {exc}") from None


def _path(spec: str) -> tuple[int, ...]:
    parts = _SEPARATORS.split(spec.strip())
    if any(not part.strip() for part in parts):
        raise UserInputError("empty attribute name")
    path = tuple(parse_tag(part) for part in parts)
    for tag in path[:-1]:
        if dictionary_vr(tag) != "SQ":
            raise UserInputError(f"{_show(tag)} is not a sequence")
    return path


def apply_assignment(ds: Dataset, path: tuple[int, ...], value: str) -> None:
    """Set the attribute at ``path`` in ``ds`` to ``value`` (string form).

    Intermediate sequences and their first item are created as needed. An empty
    ``value`` gives an empty attribute (universal match); a sequence can only be
    given an empty value, which adds a zero-item sequence unless one exists.
    A later assignment to the same attribute replaces the earlier one.
    """
    target, tag = _descend(ds, path)
    vr = _vr_for(tag)
    if vr == "SQ":
        if value:
            raise UserInputError(
                f"{_show(tag)} is a sequence: give a nested attribute"
                f" (e.g. {_show(tag)}/00080100=VALUE) or an empty value"
            )
        if tag not in target:
            target.add(DataElement(tag, "SQ", Sequence()))
        return
    if vr in ("OB", "OD", "OF", "OL", "OV", "OW", "UN"):
        if value:
            raise UserInputError(f"{_show(tag)} has binary VR {vr}: cannot be set here")
        converted: Any = None
    else:
        if value == "":
            texts: list[str] = []
        elif vr in SINGLE_VALUE_TEXT_VRS:
            texts = [value]
        else:
            texts = value.split("\\")
        try:
            converted = values_from_strings(texts, vr)
        except ValueError as exc:
            raise UserInputError(f"{_show(tag)}: {exc}") from None
    target.add(DataElement(tag, vr, converted))


def add_return_key(ds: Dataset, path: tuple[int, ...] | int | str) -> None:
    """Ask for an attribute: add it empty at ``path`` unless it is already there.

    ``path`` is a tag, a tuple of tags, or a ``-r`` specification string. Used for
    C-FIND return keys (PS3.4 C.2.2.1.2, an empty sequence returns all of its
    attributes) and to collect an N-GET attribute identifier list.
    """
    if isinstance(path, str):
        path = parse_path(path)
    elif isinstance(path, int):
        path = (path,)
    target, tag = _descend(ds, path)
    if tag in target:
        return
    vr = _vr_for(tag)
    target.add(DataElement(tag, vr, Sequence() if vr == "SQ" else None))


def build_dataset(assignments: Iterable[str] = (), return_keys: Iterable[str] = ()) -> Dataset:
    """A data set from ``-q``-style assignments followed by ``-r``-style return keys."""
    ds = Dataset()
    for spec in assignments:
        path, value = parse_assignment(spec)
        try:
            apply_assignment(ds, path, value)
        except UserInputError as exc:
            raise UserInputError(f"bad attribute specification {spec!r}: {exc}") from None
    for spec in return_keys:
        add_return_key(ds, spec)
    return ds


def _descend(ds: Dataset, path: tuple[int, ...]) -> tuple[Dataset, int]:
    """Walk to the data set that holds the last tag of ``path``, creating items."""
    if not path:
        raise UserInputError("empty attribute path")
    target = ds
    for tag in path[:-1]:
        if tag not in target:
            if _vr_for(tag) != "SQ":
                raise UserInputError(f"{_show(tag)} is not a sequence")
            target.add(DataElement(tag, "SQ", Sequence()))
        elem = target[tag]
        if elem.VR != "SQ":
            raise UserInputError(f"{_show(tag)} is not a sequence")
        if len(elem.value) == 0:
            elem.value.append(Dataset())
        target = elem.value[0]
    return target, path[-1]


def _vr_for(tag: int) -> str:
    vr = dictionary_vr(tag)
    if vr is None:
        raise UserInputError(f"no VR known for {_show(tag)} (private or unknown attribute)")
    return vr


def _show(tag: int) -> str:
    return f"{tag:08X}"
