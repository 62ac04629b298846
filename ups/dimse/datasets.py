"""Data sets kept as raw bytes until read, and encoded once when sent (PS3.5 §7, §10).

A DIMSE data set travels in the presentation context's transfer syntax. Most messages
on the hot path (event reports forwarded or filtered by a few attributes) never need
the full decode, so ``LazyDataset`` holds the bytes and decodes them with pydicom only
on first access. The four uncompressed transfer syntaxes a DIMSE data set may use are
supported: Implicit VR Little Endian (the default, PS3.5 §10.1), Explicit VR Little
Endian, Deflated Explicit VR Little Endian (raw RFC 1951 deflate, PS3.5 A.5) and the
retired Explicit VR Big Endian.
"""

from __future__ import annotations

import zlib
from io import BytesIO
from typing import Final

from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.filebase import DicomBytesIO
from pydicom.filereader import read_dataset
from pydicom.filewriter import write_dataset

from ups.dimse.errors import DatasetError

IMPLICIT_VR_LITTLE_ENDIAN: Final = "1.2.840.10008.1.2"
EXPLICIT_VR_LITTLE_ENDIAN: Final = "1.2.840.10008.1.2.1"
DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN: Final = "1.2.840.10008.1.2.1.99"
EXPLICIT_VR_BIG_ENDIAN: Final = "1.2.840.10008.1.2.2"

# UID → (implicit VR, little endian, deflated)
_SYNTAXES: Final[dict[str, tuple[bool, bool, bool]]] = {
    IMPLICIT_VR_LITTLE_ENDIAN: (True, True, False),
    EXPLICIT_VR_LITTLE_ENDIAN: (False, True, False),
    DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN: (False, True, True),
    EXPLICIT_VR_BIG_ENDIAN: (False, False, False),
}
TRANSFER_SYNTAXES: Final = tuple(_SYNTAXES)
"""The transfer syntaxes this module can decode and encode, preferred first."""

_UNSET: Final = object()
_UNDEFINED: Final = 0xFFFFFFFF

MAX_INFLATED_LENGTH: Final = 8 * 1024 * 1024
"""Largest data set a Deflated transfer syntax may inflate to; a deflate bomb stops here."""
_INFLATE_STEP: Final = 1024 * 1024


def _syntax(transfer_syntax_uid: str) -> tuple[bool, bool, bool]:
    try:
        return _SYNTAXES[transfer_syntax_uid]
    except KeyError:
        raise DatasetError(f"unsupported transfer syntax {transfer_syntax_uid}") from None


def decode_dataset(raw: bytes, transfer_syntax_uid: str) -> Dataset:
    """Decode raw data set bytes; any failure raises ``DatasetError`` (status 0x0110)."""
    implicit, little, deflated = _syntax(transfer_syntax_uid)
    try:
        if deflated:
            raw = _inflate(raw)
        ds = read_dataset(BytesIO(raw), implicit, little)
        _check_complete(ds, len(raw))
        # Force every element's value now, so corrupt bytes fail here, not later.
        for elem in ds.iterall():
            _ = elem.value
    except DatasetError:
        raise
    except Exception as exc:  # pydicom raises many types; all mean "cannot decode"
        raise DatasetError(f"cannot decode data set ({transfer_syntax_uid}): {exc}") from exc
    return ds


def _inflate(raw: bytes) -> bytes:
    """Raw deflate (PS3.5 A.5) with a ceiling, so a small bomb cannot take our memory.

    Inflated in 1 MiB steps into one growing buffer, so the peak stays near the ceiling.
    """
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    out = bytearray()
    data = raw
    while data:
        out += inflater.decompress(data, _INFLATE_STEP)
        if len(out) > MAX_INFLATED_LENGTH:
            raise DatasetError(f"deflated data set inflates past {MAX_INFLATED_LENGTH} bytes")
        data = inflater.unconsumed_tail
    out += inflater.flush()
    if len(out) > MAX_INFLATED_LENGTH:
        raise DatasetError(f"deflated data set inflates past {MAX_INFLATED_LENGTH} bytes")
    return bytes(out)


def _check_complete(ds: Dataset, size: int | None) -> None:
    """Refuse what pydicom would silently accept: a truncated value or trailing bytes.

    Items of sequences are checked too: an element whose length runs past its item is
    read by pydicom as a shorter value, which PS3.5 §7.1 (exact value lengths) forbids.
    ``size`` is the byte count the top level must fill exactly (None inside items).
    """
    end: int | None = 0
    for tag in list(ds.keys()):
        elem = ds.get_item(tag)  # still raw: its declared length is known
        end = None
        if isinstance(elem, RawDataElement) and elem.length != _UNDEFINED:
            got = 0 if elem.value is None else len(elem.value)
            if got != elem.length:
                raise DatasetError(
                    f"element {elem.tag} is truncated ({got} of {elem.length} bytes)"
                )
            end = elem.value_tell + got
        converted = ds[tag]
        if converted.VR == "SQ":
            for item in converted.value:
                _check_complete(item, None)
    if size is not None and end is not None and end != size:
        raise DatasetError(f"{size - end} bytes after the last complete element")


def encode_dataset(ds: Dataset, transfer_syntax_uid: str) -> bytes:
    """Encode ``ds`` (without file meta) in one of the four transfer syntaxes."""
    implicit, little, deflated = _syntax(transfer_syntax_uid)
    fp = DicomBytesIO()
    fp.is_implicit_VR = implicit
    fp.is_little_endian = little
    try:
        write_dataset(fp, ds)
    except Exception as exc:
        raise DatasetError(f"cannot encode data set ({transfer_syntax_uid}): {exc}") from exc
    raw = fp.getvalue()
    if deflated:
        compressor = zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, -zlib.MAX_WBITS)
        raw = compressor.compress(raw) + compressor.flush()
    return bytes(raw)


class LazyDataset:
    """Raw data set bytes plus their transfer syntax; decoded once, on first use."""

    __slots__ = ("raw", "transfer_syntax_uid", "_dataset")

    def __init__(self, raw: bytes, transfer_syntax_uid: str = IMPLICIT_VR_LITTLE_ENDIAN):
        _syntax(transfer_syntax_uid)
        self.raw = raw
        self.transfer_syntax_uid = transfer_syntax_uid
        self._dataset: object = _UNSET

    @classmethod
    def from_dataset(cls, ds: Dataset, transfer_syntax_uid: str) -> LazyDataset:
        """Encode ``ds`` once and keep both forms."""
        lazy = cls(encode_dataset(ds, transfer_syntax_uid), transfer_syntax_uid)
        lazy._dataset = ds
        return lazy

    @property
    def is_decoded(self) -> bool:
        return self._dataset is not _UNSET

    @property
    def dataset(self) -> Dataset:
        """The decoded pydicom ``Dataset`` (decoded on first access, then cached)."""
        ds = self._dataset
        if isinstance(ds, Dataset):
            return ds
        decoded = decode_dataset(self.raw, self.transfer_syntax_uid)
        self._dataset = decoded
        return decoded

    def __len__(self) -> int:
        return len(self.raw)

    def __repr__(self) -> str:
        state = "decoded" if self.is_decoded else "raw"
        return f"<LazyDataset {len(self.raw)} bytes {self.transfer_syntax_uid} ({state})>"
