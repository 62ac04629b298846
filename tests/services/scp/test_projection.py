"""C-FIND on stored bytes: the spliced Identifier equals pydicom's select_return_keys."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from tests.services.scp.strategies import pool_of, queries, return_queries, workitems
from ups.dimse.datasets import (
    EXPLICIT_VR_BIG_ENDIAN,
    EXPLICIT_VR_LITTLE_ENDIAN,
    IMPLICIT_VR_LITTLE_ENDIAN,
)
from ups.dimse.datasets import decode_dataset as decode_in
from ups.dimse.datasets import encode_dataset as encode_in
from ups.services.errors import ServiceError
from ups.services.scp.matching import matches, select_return_keys
from ups.services.scp.projection import Projector, top_level
from ups.services.scp.store import decode_dataset, encode_dataset

pytestmark = [
    pytest.mark.filterwarnings("ignore:Invalid value for VR"),
    pytest.mark.filterwarnings("ignore:The number of PN components"),
    pytest.mark.filterwarnings("ignore:The value length"),
]
SYNTAXES = (EXPLICIT_VR_LITTLE_ENDIAN, IMPLICIT_VR_LITTLE_ENDIAN, EXPLICIT_VR_BIG_ENDIAN)


def code(value: str, meaning: str = "") -> Dataset:
    item = Dataset()
    item.CodeValue, item.CodingSchemeDesignator = value, "99L"
    if meaning:
        item.CodeMeaning = meaning
    return item


def workitem() -> Dataset:
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.SOPInstanceUID = "1.2.3"
    ds.PatientName = "Müller^Hans"
    ds.PatientID = "P1"
    ds.ProcedureStepState = "SCHEDULED"
    ds.ScheduledWorkitemCodeSequence = Sequence([code("W1", "one"), code("W2", "two")])
    ds.CommentsOnTheScheduledProcedureStep = "x" * 10_000
    ds.TransactionUID = "1.9"
    return ds


def expected(stored: bytes, query: Dataset, syntax: str) -> Dataset | None:
    candidate = decode_dataset(stored)
    if not matches(candidate, query):
        return None
    return decode_in(encode_in(select_return_keys(candidate, query), syntax), syntax)


def projected(stored: bytes, query: Dataset, syntax: str) -> Dataset | None:
    raw = Projector(query, syntax)(stored)
    return None if raw is None else decode_in(raw, syntax)


@pytest.mark.parametrize("syntax", SYNTAXES)
def test_return_keys_copied_absent_and_reduced(syntax: str) -> None:
    stored = encode_dataset(workitem())
    query = Dataset()
    query.PatientName = ""
    query.PatientBirthDate = ""  # absent: returned empty
    query.TransactionUID = ""  # never returned
    query.CommentsOnTheScheduledProcedureStep = ""
    query.ScheduledWorkitemCodeSequence = Sequence([code("W2")])  # reduced to the keys
    got = projected(stored, query, syntax)
    assert got is not None and got == expected(stored, query, syntax)
    assert "TransactionUID" not in got and got.SpecificCharacterSet == "ISO_IR 192"
    assert [i.CodeValue for i in got.ScheduledWorkitemCodeSequence] == ["W2"]
    assert "CodeMeaning" not in got.ScheduledWorkitemCodeSequence[0]
    query.PatientID = "P2"
    assert projected(stored, query, syntax) is None


def test_undefined_length_sequences_are_walked() -> None:
    ds = workitem()
    ds["ScheduledWorkitemCodeSequence"].is_undefined_length = True
    for item in ds.ScheduledWorkitemCodeSequence:
        item.is_undefined_length_sequence_item = True
    stored = encode_dataset(ds)
    assert b"\xff\xff\xff\xff" in stored
    spans = top_level(stored)
    assert sorted(spans) == sorted(int(e.tag) for e in ds)
    query = Dataset()
    query.ScheduledWorkitemCodeSequence = Sequence([])  # whole
    query.ProcedureStepState = ""
    for syntax in SYNTAXES:
        assert projected(stored, query, syntax) == expected(stored, query, syntax)


@settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(data=st.data(), syntax=st.sampled_from(SYNTAXES))
def test_the_splice_equals_pydicom(data: st.DataObject, syntax: str) -> None:
    item = data.draw(workitems("1.2.3"), label="workitem")
    stored = encode_dataset(item)
    if data.draw(st.booleans(), label="matching"):
        query = data.draw(return_queries(item), label="query")
    else:
        query = data.draw(queries(tuple(pool_of((item,)))), label="query")
    try:
        want = expected(stored, query, syntax)
    except ServiceError:
        return
    assert projected(stored, query, syntax) == want
