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

XML comes from users and is untrusted: :mod:`ups.cli.xmlfiles` parses it with expat
and refuses any DOCTYPE or entity declaration, so neither entity expansion ("billion
laughs") nor external entities can happen. External values (PS3.19 ``BulkData``,
PS3.18 ``BulkDataURI``, dcm4che2 ``src=``) are refused rather than fetched.

Every problem surfaces as one :class:`UserInputError` whose message is a single
line naming the file (and the XML line when known).
"""

from __future__ import annotations

import json
import struct
import warnings
from io import BytesIO
from pathlib import Path

from pydicom import dcmread
from pydicom.datadict import dictionary_has_tag
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset

from ups.cli.exits import UserInputError
from ups.cli.values import (
    HEX_TAG,
    MAX_DEPTH,
    VRS,
    clean,
    one_line,
)
from ups.cli.xmlfiles import read_xml
from ups.dimse.datasets import DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN

__all__ = ["MAX_FILE_SIZE", "UserInputError", "read_dataset_bytes", "read_dataset_file"]

MAX_FILE_SIZE = 64 * 1024 * 1024
"""Largest accepted input file: UPS work items are small; this stops runaway input."""


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
        return read_xml(data, name)
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
        raise UserInputError(f"{name}: malformed DICOM data set: {one_line(exc)}") from exc
    if force and len(plain) == 0:
        raise UserInputError(f"{name}: not a DICOM, XML or JSON data set file")
    return clean(plain, top=True)


def _check_end(ds: Dataset, size: int, name: str) -> None:
    """Refuse bytes after the last attribute: a file cut inside an element header.

    pydicom stops quietly at a partial header, so the end of the last element
    (when its length is defined and the stream is not deflated) must be the end
    of the file.
    """
    meta = getattr(ds, "file_meta", None)
    if not ds.keys() or (
        meta and meta.get("TransferSyntaxUID") == DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN
    ):
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
        raise UserInputError(f"{name}: not a DICOM JSON object ({one_line(exc)})") from exc
    return clean(ds, top=True)


def _json_problem(obj: object, depth: int) -> str | None:
    """Check the PS3.18 F.2.2 shape before pydicom sees it; refuse BulkDataURI."""
    if depth > MAX_DEPTH:
        return "sequences nested too deeply"
    if not isinstance(obj, dict):
        return f"expected an object, found {type(obj).__name__}"
    for key, attr in obj.items():
        if not HEX_TAG.fullmatch(key):
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
