"""Reading the data set files users hand to ``dcmups -f`` (create / set).

Four encodings are accepted, recognised by their *content*, never by the file
name extension:

* DICOM: a PS3.10 file (128-byte preamble + ``DICM``) or a bare data set without
  preamble, as dcm4che2 accepted (PS3.5 Section 7);
* PS3.19 Native DICOM Model XML (PS3.19 Annex A.1): ``<NativeDicomModel>`` with
  ``<DicomAttribute tag vr keyword>`` holding ``<Value>``, ``<PersonName>``,
  ``<Item>`` or ``<InlineBinary>`` children;
* dcm4che2's own XML data set format (the one its ``dcmups -f`` read): a
  ``<dicom>`` (or ``<dataset>``) root holding ``<attr tag vr len>`` elements whose
  text is the value, backslash-separated, with ``<item>`` children for sequences;
* DICOM JSON (PS3.18 Annex F.2): one top-level object, or an array with exactly
  one such object.

XML comes from users and is untrusted: it is parsed with expat and any DOCTYPE or
entity declaration is refused, so neither entity expansion ("billion laughs") nor
external entities can happen. External values (PS3.19 ``BulkData``, PS3.18
``BulkDataURI``, dcm4che2 ``src=``) are refused rather than fetched.

Every problem surfaces as one :class:`UserInputError` whose message is a single
line naming the file (and the XML line when known).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import struct
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from io import BytesIO
from pathlib import Path
from typing import Any, NoReturn
from xml.parsers import expat

from pydicom import dcmread
from pydicom.datadict import dictionary_has_tag, dictionary_VR
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from ups.errors import DicomError

__all__ = [
    "MAX_FILE_SIZE",
    "UserInputError",
    "dictionary_vr",
    "read_dataset_file",
    "read_dataset_bytes",
    "values_from_strings",
    "VRS",
]

MAX_FILE_SIZE = 64 * 1024 * 1024
"""Largest accepted input file: UPS work items are small; this stops runaway input."""

_MAX_XML_DEPTH = 128

VRS = frozenset(
    "AE AS AT CS DA DS DT FD FL IS LO LT OB OD OF OL OV OW PN SH SL SQ SS ST SV TM UC UI"
    " UL UN UR US UT UV".split()
)
"""The value representations of PS3.5 Table 6.2-1."""

_BINARY_VRS = frozenset({"OB", "OD", "OF", "OL", "OV", "OW", "UN"})
_SINGLE_VALUE_TEXT_VRS = frozenset({"LT", "ST", "UT", "UR"})  # backslash is data (PS3.5 6.2)
_INT_RANGES = {
    "US": (0, 0xFFFF),
    "SS": (-0x8000, 0x7FFF),
    "UL": (0, 0xFFFFFFFF),
    "SL": (-0x80000000, 0x7FFFFFFF),
    "UV": (0, 0xFFFFFFFFFFFFFFFF),
    "SV": (-0x8000000000000000, 0x7FFFFFFFFFFFFFFF),
}
_FLOAT_VRS = frozenset({"FL", "FD"})
_DEFLATED = "1.2.840.10008.1.2.1.99"
_HEX_TAG = re.compile(r"[0-9A-Fa-f]{8}")


class UserInputError(DicomError):
    """A file or command-line value supplied by the user cannot be used.

    The message is one line that names the offending file or option value, ready
    for the CLI to print as is.
    """


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


def read_dataset_file(path: str | Path, *, max_size: int = MAX_FILE_SIZE) -> Dataset:
    """Read a DICOM, PS3.19 XML, dcm4che2 XML or DICOM JSON data set file.

    Raises :class:`UserInputError` (one line, naming the file) on any problem.
    """
    name = str(path)
    try:
        with open(path, "rb") as stream:
            data = stream.read(max_size + 1)
    except OSError as exc:
        raise UserInputError(f"{name}: {exc.strerror or exc}") from exc
    if len(data) > max_size:
        raise UserInputError(
            f"{name}: file too large (more than {max_size} bytes; the limit is "
            f"{max_size // (1024 * 1024)} MiB)"
        )
    return read_dataset_bytes(data, name)


def read_dataset_bytes(data: bytes, name: str) -> Dataset:
    """Decode the bytes of a data set file; ``name`` is used in error messages."""
    if not data:
        raise UserInputError(f"{name}: empty file")
    if len(data) >= 132 and data[128:132] == b"DICM":
        return _read_dicom(data, name, force=False)
    head = data.lstrip(b"\xef\xbb\xbf \t\r\n")
    if head.startswith(b"<"):
        return _read_xml(data, name)
    if head.startswith((b"{", b"[")):
        return _read_json(data, name)
    if _looks_like_raw_dataset(data):
        return _read_dicom(data, name, force=True)
    raise UserInputError(f"{name}: not a DICOM, XML or JSON data set file")


# --- DICOM binary -------------------------------------------------------------


def _looks_like_raw_dataset(data: bytes) -> bool:
    """Whether ``data`` plausibly starts with a data element (PS3.5 7.1).

    Checked before letting pydicom ``force`` a read, so random bytes are refused
    with a clear message instead of decoding into nonsense.
    """
    if len(data) < 8:
        return False
    for order in ("<", ">"):
        group, element = struct.unpack_from(order + "HH", data)
        if group % 2 or group < 0x0002 or group == 0xFFFE:
            continue
        if data[4:6].decode("latin-1") in VRS:
            return True
        if order == "<":
            (length,) = struct.unpack_from("<I", data, 4)
            tag = group << 16 | element
            fits = length == 0xFFFFFFFF or length <= len(data) - 8
            if fits and dictionary_has_tag(tag):
                return True
    return False


def _read_dicom(data: bytes, name: str, *, force: bool) -> Dataset:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            parsed = dcmread(BytesIO(data), force=force)
            _check_end(parsed, len(data), name)
            _load(parsed, name)
            plain = Dataset()
            for elem in parsed:
                plain.add(elem)
    except UserInputError:
        raise
    except Exception as exc:  # pydicom signals malformed input with many types
        raise UserInputError(f"{name}: malformed DICOM data set: {_one_line(exc)}") from exc
    if force and len(plain) == 0:
        raise UserInputError(f"{name}: not a DICOM, XML or JSON data set file")
    return _clean(plain, top=True)


def _check_end(ds: Dataset, size: int, name: str) -> None:
    """Refuse bytes after the last attribute: a file cut inside an element header.

    pydicom stops quietly at a partial header, so the end of the last element
    (when its length is defined and the stream is not deflated) must be the end
    of the file.
    """
    meta = getattr(ds, "file_meta", None)
    if not ds.keys() or (meta and meta.get("TransferSyntaxUID") == _DEFLATED):
        return
    last = ds.get_item(max(ds.keys()))
    if isinstance(last, RawDataElement) and last.length != 0xFFFFFFFF:
        extra = size - (last.value_tell + last.length)
        if extra > 0:
            raise UserInputError(
                f"{name}: truncated DICOM data set: {extra} stray bytes after the last attribute"
            )


def _load(ds: Dataset, name: str) -> None:
    """Decode every value now (pydicom defers it) so errors surface while reading.

    pydicom hands back a short value when the file ends inside it; comparing each
    raw element's length with the bytes actually read catches a truncated file.
    """
    for tag in ds.keys():
        raw = ds.get_item(tag)
        if (
            isinstance(raw, RawDataElement)
            and raw.length != 0xFFFFFFFF  # undefined length
            and isinstance(raw.value, bytes)
            and len(raw.value) < raw.length
        ):
            raise UserInputError(
                f"{name}: truncated DICOM data set: attribute {int(tag):08X} is cut short"
            )
        elem = ds[tag]
        if elem.VR == "SQ":
            for item in elem.value:
                _load(item, name)


def _touch(elem: DataElement) -> None:
    """Decode a value (recursively for sequences) so errors surface while reading."""
    value = elem.value
    if elem.VR == "SQ":
        for item in value:
            for child in item:
                _touch(child)


def _clean(ds: Dataset, *, top: bool) -> Dataset:
    """Drop Group Length elements everywhere and File Meta (group 0002) at the top.

    Neither belongs to a data set sent in a DIMSE message (PS3.5 7.1, 7.2;
    PS3.19 A.1 and PS3.18 F.2.2 exclude group lengths as well).
    """
    for elem in list(ds):
        if elem.tag.element == 0 or (top and elem.tag.group == 0x0002):
            del ds[elem.tag]
        elif elem.VR == "SQ":
            for item in elem.value:
                _clean(item, top=False)
    return ds


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


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
        if len(stack) >= _MAX_XML_DEPTH:
            raise _XMLRefused(f"elements nested deeper than {_MAX_XML_DEPTH} levels")
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
        if not _HEX_TAG.fullmatch(raw.strip()):
            self.fail(node, f"bad tag {raw!r} (expected 8 hex digits)")
        return int(raw, 16)

    def vr(self, node: _Node, tag: int) -> str:
        vr = node.attrs.get("vr") or dictionary_vr(tag)
        if vr is None:
            self.fail(node, f"no vr given for unknown tag {tag:08X}")
        if vr not in VRS:
            self.fail(node, f"unknown vr {vr!r}")
        return vr


def _read_xml(data: bytes, name: str) -> Dataset:
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
    return _clean(ds, top=True)


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
        ctx.fail(node, f"attribute {tag:08X}: {_one_line(exc)}")


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
                if not _HEX_TAG.fullmatch(stripped):
                    raise ValueError(stripped)
                values.append(int(stripped, 16))
            elif vr in _BINARY_VRS or vr == "SQ":
                raise ValueError(stripped)
            else:
                values.append(text)
        except ValueError:
            raise ValueError(f"value {text!r} is not a valid {vr}") from None
    if not values:
        return None
    return values[0] if len(values) == 1 else values


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
    if vr in _BINARY_VRS:
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
    elif vr in _BINARY_VRS:
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
    if vr in _SINGLE_VALUE_TEXT_VRS:
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


# --- DICOM JSON --------------------------------------------------------------------


def _read_json(data: bytes, name: str) -> Dataset:
    try:
        obj = json.loads(data.decode("utf-8-sig"))
    except UnicodeDecodeError as exc:
        raise UserInputError(f"{name}: invalid JSON: not UTF-8 text") from exc
    except json.JSONDecodeError as exc:
        raise UserInputError(f"{name}: invalid JSON: line {exc.lineno}: {exc.msg}") from exc
    except RecursionError as exc:
        raise UserInputError(f"{name}: invalid JSON: nested too deeply") from exc
    if isinstance(obj, list):
        if len(obj) != 1:
            raise UserInputError(
                f"{name}: not a DICOM JSON object (an array of {len(obj)} data sets;"
                " expected exactly one)"
            )
        obj = obj[0]
    problem = _json_problem(obj, depth=0)
    if problem is not None:
        raise UserInputError(f"{name}: not a DICOM JSON object ({problem})")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = Dataset.from_json(obj)
            for elem in ds:
                _touch(elem)
    except Exception as exc:  # pydicom signals malformed JSON models with many types
        raise UserInputError(f"{name}: not a DICOM JSON object ({_one_line(exc)})") from exc
    return _clean(ds, top=True)


def _json_problem(obj: object, depth: int) -> str | None:
    """Check the PS3.18 F.2.2 shape before pydicom sees it; refuse BulkDataURI."""
    if depth > _MAX_XML_DEPTH:
        return "sequences nested too deeply"
    if not isinstance(obj, dict):
        return f"expected an object, found {type(obj).__name__}"
    for key, attr in obj.items():
        if not _HEX_TAG.fullmatch(key):
            return f"property {key!r} is not an 8-hex-digit tag"
        if not isinstance(attr, dict) or not isinstance(attr.get("vr"), str):
            return f"attribute {key} has no vr"
        if "BulkDataURI" in attr:
            return f"attribute {key}: BulkDataURI references are not supported"
        if attr["vr"] == "SQ":
            for item in attr.get("Value") or []:
                problem = _json_problem(item, depth + 1)
                if problem is not None:
                    return problem
    return None
