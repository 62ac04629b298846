"""The XML data set files ``dcmups -f`` reads: PS3.19 Native DICOM Model and dcm4che2's.

* PS3.19 Native DICOM Model XML (PS3.19 Annex A.1): ``<NativeDicomModel>`` with
  ``<DicomAttribute tag vr keyword>`` holding ``<Value>``, ``<PersonName>``,
  ``<Item>`` or ``<InlineBinary>`` children;
* dcm4che2's own XML data set format (the one its ``dcmups -f`` read): a
  ``<dicom>`` (or ``<dataset>``) root holding ``<attr tag vr len>`` elements whose
  text is the value, backslash-separated, with ``<item>`` children for sequences.

XML comes from users and is untrusted: it is parsed with expat and any DOCTYPE or
entity declaration is refused, so neither entity expansion ("billion laughs") nor
external entities can happen. External values (PS3.19 ``BulkData``, dcm4che2
``src=``) are refused rather than fetched. Every problem is one
:class:`~ups.cli.exits.UserInputError` naming the file and the XML line.
"""

from __future__ import annotations

import base64
import binascii
import struct
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, NoReturn
from xml.parsers import expat

from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from ups.cli.exits import UserInputError
from ups.cli.values import (
    BINARY_VRS,
    HEX_TAG,
    MAX_DEPTH,
    SINGLE_VALUE_TEXT_VRS,
    VRS,
    clean,
    dictionary_vr,
    one_line,
    values_from_strings,
)

__all__ = ["read_xml"]


# --- XML: a small hardened tree builder ----------------------------------------


@dataclass(slots=True)
class _Node:
    name: str
    attrs: dict[str, str]
    line: int
    children: list[_Node] = field(default_factory=list)
    text: list[str] = field(default_factory=list)

    @property
    def content(self) -> str:
        return "".join(self.text)


class _XMLRefused(Exception):
    """Raised inside expat handlers; turned into a UserInputError with a line number."""


def _local(name: str) -> str:
    """Strip the namespace expat prefixes when ``namespace_separator`` is set."""
    return name.rsplit(" ", 1)[-1]


def _parse_xml(data: bytes, name: str) -> _Node:
    parser = expat.ParserCreate(namespace_separator=" ")
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    parser.buffer_text = True
    stack: list[_Node] = []
    roots: list[_Node] = []

    def refuse(what: str) -> Callable[..., NoReturn]:
        def handler(*_: object) -> NoReturn:
            raise _XMLRefused(f"{what} not allowed")

        return handler

    def start(tag: str, attrs: dict[str, str]) -> None:
        if len(stack) >= MAX_DEPTH:
            raise _XMLRefused(f"elements nested deeper than {MAX_DEPTH} levels")
        node = _Node(
            _local(tag), {_local(k): v for k, v in attrs.items()}, parser.CurrentLineNumber
        )
        (stack[-1].children if stack else roots).append(node)
        stack.append(node)

    def end(_tag: str) -> None:
        stack.pop()

    def text(chars: str) -> None:
        if stack:
            stack[-1].text.append(chars)

    parser.StartDoctypeDeclHandler = refuse("DOCTYPE declaration")
    parser.EntityDeclHandler = refuse("entity declaration")
    parser.UnparsedEntityDeclHandler = refuse("entity declaration")
    parser.NotationDeclHandler = refuse("notation declaration")
    parser.ExternalEntityRefHandler = refuse("external entity")
    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = text
    try:
        parser.Parse(data, True)
    except _XMLRefused as exc:
        raise UserInputError(f"{name}: line {parser.CurrentLineNumber}: {exc}") from None
    except expat.ExpatError as exc:
        message = expat.ErrorString(exc.code) if exc.code is not None else str(exc)
        raise UserInputError(f"{name}: line {exc.lineno}: invalid XML: {message}") from None
    return roots[0]


class _Context:
    """Carries the file name so converters can fail with ``file: line n: ...``."""

    def __init__(self, name: str) -> None:
        self.name = name

    def fail(self, node: _Node, problem: str) -> NoReturn:
        raise UserInputError(f"{self.name}: line {node.line}: {problem}")

    def no_text(self, node: _Node) -> None:
        if node.content.strip():
            self.fail(node, f"unexpected text in <{node.name}>")

    def tag(self, node: _Node, attr: str = "tag") -> int:
        raw = node.attrs.get(attr)
        if raw is None:
            self.fail(node, f"<{node.name}> without {attr} attribute")
        if not HEX_TAG.fullmatch(raw.strip()):
            self.fail(node, f"bad tag {raw!r} (expected 8 hex digits)")
        return int(raw, 16)

    def vr(self, node: _Node, tag: int) -> str:
        vr = node.attrs.get("vr") or dictionary_vr(tag)
        if vr is None:
            self.fail(node, f"no vr given for unknown tag {tag:08X}")
        if vr not in VRS:
            self.fail(node, f"unknown vr {vr!r}")
        return vr


def read_xml(data: bytes, name: str) -> Dataset:
    root = _parse_xml(data, name)
    ctx = _Context(name)
    if root.name == "NativeDicomModel":
        ds = _native_dataset(root, ctx)
    elif root.name in ("dicom", "dataset"):
        ds = _d2_dataset(root, ctx)
    else:
        ctx.fail(
            root,
            f"unknown root element <{root.name}> (expected <NativeDicomModel> or dcm4che2 <dicom>)",
        )
    return clean(ds, top=True)


def _add(ds: Dataset, elem: DataElement, node: _Node, ctx: _Context) -> None:
    if elem.tag in ds:
        ctx.fail(node, f"duplicate attribute {elem.tag:08X}")
    ds.add(elem)


def _element(tag: int, vr: str, value: Any, node: _Node, ctx: _Context) -> DataElement:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return DataElement(tag, vr, value)
    except Exception as exc:  # pydicom validates some values on construction
        ctx.fail(node, f"attribute {tag:08X}: {one_line(exc)}")


def _convert(texts: list[str], vr: str, node: _Node, ctx: _Context) -> Any:
    try:
        return values_from_strings(texts, vr)
    except ValueError as exc:
        ctx.fail(node, str(exc))


def _ordered(children: Iterable[_Node], ctx: _Context) -> list[_Node]:
    """Children sorted by their ``number`` attribute (PS3.19 A.1.5: 1-based)."""
    numbered: dict[int, _Node] = {}
    for position, child in enumerate(children, start=1):
        raw = child.attrs.get("number")
        try:
            number = position if raw is None else int(raw)
        except ValueError:
            ctx.fail(child, f"bad number {raw!r}")
        if number < 1 or number in numbered:
            ctx.fail(child, f"bad or duplicate number {number}")
        numbered[number] = child
    return [numbered[n] for n in sorted(numbered)]


# --- PS3.19 Native DICOM Model ---------------------------------------------------

_PN_GROUPS = ("Alphabetic", "Ideographic", "Phonetic")
_PN_COMPONENTS = ("FamilyName", "GivenName", "MiddleName", "NamePrefix", "NameSuffix")


def _native_dataset(node: _Node, ctx: _Context) -> Dataset:
    ctx.no_text(node)
    ds = Dataset()
    for child in node.children:
        if child.name != "DicomAttribute":
            ctx.fail(child, f"unknown element <{child.name}>")
        _add(ds, _native_element(child, ctx), child, ctx)
    return ds


def _native_element(node: _Node, ctx: _Context) -> DataElement:
    tag = ctx.tag(node)
    vr = ctx.vr(node, tag)
    ctx.no_text(node)
    expected = {"SQ": "Item", "PN": "PersonName"}.get(vr, "Value")
    if vr in BINARY_VRS:
        expected = "InlineBinary"
    for child in node.children:
        if child.name == "BulkData":
            ctx.fail(
                child,
                f"attribute {tag:08X}: BulkData references are not supported;"
                " put the value inline (InlineBinary)",
            )
        if child.name != expected:
            ctx.fail(child, f"unknown element <{child.name}> in {vr} attribute {tag:08X}")
    children = _ordered(node.children, ctx)
    value: Any
    if vr == "SQ":
        value = Sequence([_native_dataset(item, ctx) for item in children])
    elif vr == "PN":
        names = [_native_person_name(child, ctx) for child in children]
        value = None if not names else names[0] if len(names) == 1 else names
    elif vr in BINARY_VRS:
        if len(children) > 1:
            ctx.fail(children[1], f"attribute {tag:08X}: more than one InlineBinary")
        value = _base64(children[0], ctx) if children else None
    else:
        value = _convert([child.content for child in children], vr, node, ctx)
    return _element(tag, vr, value, node, ctx)


def _native_person_name(node: _Node, ctx: _Context) -> str:
    """PS3.19 A.1.5 PersonName -> the PS3.5 6.2 string (``^`` components, ``=`` groups)."""
    ctx.no_text(node)
    groups = dict.fromkeys(_PN_GROUPS, "")
    for group in node.children:
        if group.name not in groups:
            ctx.fail(group, f"unknown element <{group.name}> in <PersonName>")
        ctx.no_text(group)
        parts = dict.fromkeys(_PN_COMPONENTS, "")
        for part in group.children:
            if part.name not in parts:
                ctx.fail(part, f"unknown element <{part.name}> in <{group.name}>")
            parts[part.name] = part.content
        groups[group.name] = "^".join(parts.values()).rstrip("^")
    return "=".join(groups.values()).rstrip("=")


def _base64(node: _Node, ctx: _Context) -> bytes:
    try:
        return base64.b64decode("".join(node.content.split()), validate=True)
    except (binascii.Error, ValueError):
        ctx.fail(node, "InlineBinary is not valid base64")


# --- dcm4che2 XML ------------------------------------------------------------------


def _d2_dataset(node: _Node, ctx: _Context) -> Dataset:
    ctx.no_text(node)
    ds = Dataset()
    for child in node.children:
        if child.name != "attr":
            ctx.fail(child, f"unknown element <{child.name}>")
        _add(ds, _d2_element(child, ctx), child, ctx)
    return ds


def _d2_element(node: _Node, ctx: _Context) -> DataElement:
    tag = ctx.tag(node)
    vr = ctx.vr(node, tag)
    if "src" in node.attrs:
        ctx.fail(node, f"attribute {tag:08X}: external values (src=) are not supported")
    for child in node.children:
        if child.name != "item":
            ctx.fail(child, f"unknown element <{child.name}> in <attr>")
        if "src" in child.attrs:
            ctx.fail(child, f"attribute {tag:08X}: external values (src=) are not supported")
    value: Any
    if vr == "SQ":
        ctx.no_text(node)
        value = Sequence([_d2_dataset(item, ctx) for item in node.children])
    elif node.children:
        ctx.fail(node, f"attribute {tag:08X}: encapsulated fragments are not supported")
    else:
        value = _d2_value(node.content, vr, node, ctx)
    return _element(tag, vr, value, node, ctx)


def _d2_value(text: str, vr: str, node: _Node, ctx: _Context) -> Any:
    """Parse dcm4che2's text form of a value (its ``VR.parseXMLValue`` conventions).

    Numbers are decimal, AT is 8 hex digits, OB is hex bytes, OW/OF/OD/OL/OV are
    their numbers, UN is printable ASCII with ``\\XX`` escapes; every multi-valued
    form is backslash-separated.
    """
    if text == "":
        return None
    if vr in SINGLE_VALUE_TEXT_VRS:
        return text
    if vr == "UN":
        return _d2_unescape(text, node, ctx)
    parts = text.split("\\")
    try:
        if vr == "OB":
            return bytes(int(p.strip(), 16) for p in parts)
        packing = {"OW": "H", "OF": "f", "OD": "d", "OL": "I", "OV": "Q"}.get(vr)
        if packing is not None:
            number: Callable[[str], float] = float if packing in "fd" else int
            return struct.pack(f"<{len(parts)}{packing}", *(number(p.strip()) for p in parts))
    except (ValueError, struct.error):
        ctx.fail(node, f"value {text!r} is not a valid {vr}")
    return _convert(parts, vr, node, ctx)


def _d2_unescape(text: str, node: _Node, ctx: _Context) -> bytes:
    out = bytearray()
    i = 0
    while i < len(text):
        ch = text[i]
        if ch != "\\":
            out += ch.encode("latin-1", "replace")
            i += 1
        elif text[i + 1 : i + 2] == "\\":
            out += b"\\"
            i += 2
        else:
            try:
                out.append(int(text[i + 1 : i + 3], 16))
            except ValueError:
                ctx.fail(node, f"bad escape in UN value {text[i : i + 3]!r}")
            i += 3
    return bytes(out)
