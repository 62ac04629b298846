"""Lazy data sets (ups.dimse.datasets) in the four uncompressed transfer syntaxes."""

from __future__ import annotations

import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pynetdicom.dsutils import encode as pnd_encode

from ups.dimse.datasets import (
    DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN,
    EXPLICIT_VR_BIG_ENDIAN,
    EXPLICIT_VR_LITTLE_ENDIAN,
    IMPLICIT_VR_LITTLE_ENDIAN,
    TRANSFER_SYNTAXES,
    LazyDataset,
    decode_dataset,
    encode_dataset,
)
from ups.dimse.errors import DatasetError


def sample() -> Dataset:
    ds = Dataset()
    ds.SOPInstanceUID = "1.2.826.0.1.3680043.8.498.1"
    ds.PatientName = "Doe^Jane"
    ds.ProcedureStepState = "IN PROGRESS"
    ds.TransactionUID = "1.2.3.4"
    item = Dataset()
    item.CodeValue = "110513"
    item.CodingSchemeDesignator = "DCM"
    item.CodeMeaning = "Discontinued"
    ds.ProcedureStepDiscontinuationReasonCodeSequence = Sequence([item])
    ds.NumberOfFrames = "3"
    ds.Rows = 512
    return ds


@pytest.mark.parametrize("syntax", TRANSFER_SYNTAXES)
def test_round_trip(syntax: str) -> None:
    original = sample()
    raw = encode_dataset(original, syntax)
    lazy = LazyDataset(raw, syntax)
    assert not lazy.is_decoded
    ds = lazy.dataset
    assert lazy.is_decoded and lazy.dataset is ds  # decoded once
    assert ds.PatientName == "Doe^Jane"
    assert ds.Rows == 512
    assert ds.ProcedureStepDiscontinuationReasonCodeSequence[0].CodeValue == "110513"
    assert encode_dataset(ds, syntax) == raw
    assert len(lazy) == len(raw)


@pytest.mark.parametrize(
    ("syntax", "implicit", "little", "deflated"),
    [
        (IMPLICIT_VR_LITTLE_ENDIAN, True, True, False),
        (EXPLICIT_VR_LITTLE_ENDIAN, False, True, False),
        (EXPLICIT_VR_BIG_ENDIAN, False, False, False),
    ],
)
def test_matches_pynetdicom_encoder(
    syntax: str, implicit: bool, little: bool, deflated: bool
) -> None:
    assert encode_dataset(sample(), syntax) == pnd_encode(sample(), implicit, little, deflated)


def test_deflated_is_smaller_and_decodes() -> None:
    ds = sample()
    ds.PatientComments = "x" * 2000
    raw = encode_dataset(ds, DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN)
    assert len(raw) < len(encode_dataset(ds, EXPLICIT_VR_LITTLE_ENDIAN))
    assert decode_dataset(raw, DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN).PatientComments == "x" * 2000


def test_from_dataset_keeps_both() -> None:
    ds = sample()
    lazy = LazyDataset.from_dataset(ds, EXPLICIT_VR_LITTLE_ENDIAN)
    assert lazy.dataset is ds and lazy.is_decoded
    assert "decoded" in repr(lazy)


@pytest.mark.parametrize(
    ("raw", "syntax"),
    [
        (b"\x10\x00\x10\x00\xff\xff\x00\x10abc", IMPLICIT_VR_LITTLE_ENDIAN),
        (b"not deflate", DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN),
        (b"\x10\x00\x10\x00ZZ\x04\x00abcd", EXPLICIT_VR_LITTLE_ENDIAN),
    ],
)
def test_decode_failure(raw: bytes, syntax: str) -> None:
    with pytest.raises(DatasetError) as info:
        _ = LazyDataset(raw, syntax).dataset
    assert info.value.status == 0x0110


def test_unsupported_syntax() -> None:
    with pytest.raises(DatasetError):
        LazyDataset(b"", "1.2.840.10008.1.2.4.50")
    with pytest.raises(DatasetError):
        encode_dataset(sample(), "1.2.840.10008.1.2.4.50")


@pytest.mark.parametrize(
    "raw",
    [b"\x10\x00\x10\x00\x08\x00\x00", b"\x10\x00\x10\x00\x02\x00\x00\x00ab\x10\x00\x20\x00\x02"],
    ids=["partial-header", "trailing-bytes"],
)
def test_incomplete_input_is_refused(raw: bytes) -> None:
    with pytest.raises(DatasetError):
        decode_dataset(raw, IMPLICIT_VR_LITTLE_ENDIAN)


def test_empty_dataset() -> None:
    assert len(decode_dataset(b"", EXPLICIT_VR_LITTLE_ENDIAN)) == 0
