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
from typing import TYPE_CHECKING, Final

from pydicom.dataset import Dataset
from pydicom.filebase import DicomBytesIO
from pydicom.filereader import read_dataset
from pydicom.filewriter import write_dataset

from ups.dimse.errors import DatasetError, error_comment
from ups.dimse.values import quiet_pydicom

if TYPE_CHECKING:
    from ups.dimse.scanner import ScanLimits

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

MAX_INFLATED_LENGTH: Final = 8 * 1024 * 1024
"""Largest data set a Deflated transfer syntax may inflate to; a deflate bomb stops here."""
_INFLATE_STEP: Final = 1024 * 1024


def _syntax(transfer_syntax_uid: str) -> tuple[bool, bool, bool]:
    try:
        return _SYNTAXES[transfer_syntax_uid]
    except KeyError:
        raise DatasetError(f"unsupported transfer syntax {transfer_syntax_uid}") from None


def decode_dataset(
    raw: bytes, transfer_syntax_uid: str, limits: ScanLimits | None = None
) -> Dataset:
    """Decode raw data set bytes; any failure raises ``DatasetError`` (status 0x0110).

    The scanner checks structure and ``limits`` first (``LimitExceeded``, 0x0213), so
    pydicom only ever reads a complete data set within bounds. Every value is then
    converted once, so a value pydicom cannot convert fails here, not in the caller;
    pydicom's warnings about values PS3.5 does not allow stay quiet (the caller judges
    them with :func:`ups.dimse.values.dataset_problems`).
    """
    from ups.dimse.scanner import DEFAULT_SCAN_LIMITS, check_dataset  # it imports us

    implicit, little, deflated = _syntax(transfer_syntax_uid)
    if deflated:
        try:
            raw = inflate(raw)
        except zlib.error as exc:
            raise DatasetError("deflated data set is corrupt") from exc
    check_dataset(
        raw,
        EXPLICIT_VR_LITTLE_ENDIAN if deflated else transfer_syntax_uid,
        limits or DEFAULT_SCAN_LIMITS,
    )
    try:
        with quiet_pydicom():
            ds = read_dataset(BytesIO(raw), implicit, little)
            for elem in ds.iterall():
                _ = elem.value
    except Exception as exc:  # pydicom raises many types; all mean "cannot decode"
        raise DatasetError(error_comment(f"cannot decode data set: {exc}")) from exc
    return ds


def inflate(raw: bytes) -> bytes:
    """Raw deflate (PS3.5 A.5) with a ceiling, so a small bomb cannot take our memory.

    Inflated in 1 MiB steps into one growing buffer, so the peak stays near the ceiling.
    A corrupt stream raises ``zlib.error``.
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
