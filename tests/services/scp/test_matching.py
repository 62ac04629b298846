"""C-FIND matching and return keys (PS3.4 C.2.2.2, CC.2.8.1.3.2)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from ups.services.errors import ServiceError
from ups.services.scp.matching import matches, select_return_keys


def ds(**kw: object) -> Dataset:
    out = Dataset()
    for key, value in kw.items():
        setattr(out, key, value)
    return out


def code(value: str, scheme: str = "99L") -> Dataset:
    return ds(CodeValue=value, CodingSchemeDesignator=scheme, CodeMeaning=f"m{value}")


CAND = ds(
    PatientName="Doe^John^^=ドウ^ジョン",
    PatientID="P1 ",
    ProcedureStepState="SCHEDULED",
    ScheduledProcedureStepPriority="HIGH",
    ScheduledProcedureStepStartDateTime="20240105103000",
    StudyDate="20240105",
    StudyTime="103000",
    SOPInstanceUID="1.2.3.4",
    WorklistLabel="CT room",
    ScheduledWorkitemCodeSequence=Sequence([code("A1"), code("B2")]),
    TransactionUID="9.9.9",
)


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("PatientID", "", True),  # universal
        ("AccessionNumber", "", True),  # universal, attribute absent
        ("AccessionNumber", "X", False),  # absent attribute, non-empty key
        ("PatientID", "P1", True),  # trailing pad insignificant
        ("PatientID", "p1", False),  # case-sensitive
        ("ProcedureStepState", "SCHEDULED", True),
        ("ProcedureStepState", "scheduled", False),
        ("ProcedureStepState", "SCHED*", True),  # wild card on CS
        ("ProcedureStepState", "?CHEDULED", True),
        ("ProcedureStepState", "?SCHEDULED", False),
        ("WorklistLabel", "CT*", True),
        ("WorklistLabel", "ct*", False),
        ("WorklistLabel", "*", True),
        ("PatientName", "DOE^JOHN", True),  # PN: case-insensitive, trailing ^ ignored
        ("PatientName", "doe*", True),
        ("PatientName", "ドウ^ジョン", True),  # one component group
        ("PatientName", "Roe^John", False),
        ("SOPInstanceUID", "1.2.3.4", True),
        ("SOPInstanceUID", ["1.2.9", "1.2.3.4"], True),  # list of UIDs
        ("SOPInstanceUID", ["1.2.9", "1.2.8"], False),
        ("SOPInstanceUID", "1.2.3.*", False),  # no wild cards for UI
        ("TransactionUID", "1.1.1", True),  # never matched
    ],
)
@pytest.mark.filterwarnings("ignore::UserWarning")
def test_keys(key: str, value: object, expected: bool) -> None:
    assert matches(CAND, ds(**{key: value})) is expected


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("StudyDate", "20240105", True),
        ("StudyDate", "20240101-20240105", True),
        ("StudyDate", "20240106-", False),
        ("StudyDate", "-20240105", True),
        ("StudyDate", "-20240104", False),
        ("StudyTime", "1030", True),  # by meaning: 1030 == 103000
        ("StudyTime", "103001", False),
        ("StudyTime", "10-1030", True),  # partial upper bound covers the minute
        ("StudyTime", "1031-", False),
        ("ScheduledProcedureStepStartDateTime", "20240105103000.000", True),
        ("ScheduledProcedureStepStartDateTime", "20240105113000+0100", True),
        ("ScheduledProcedureStepStartDateTime", "2024-2024", True),
        ("ScheduledProcedureStepStartDateTime", "202402-", False),
        ("ScheduledProcedureStepStartDateTime", "-20240105", True),
        ("ScheduledProcedureStepStartDateTime", "20240105110000+0100-", True),
        ("ScheduledProcedureStepStartDateTime", "20240105110000-0100-", False),
    ],
)
@pytest.mark.filterwarnings("ignore::UserWarning")
def test_dates_and_times(key: str, value: str, expected: bool) -> None:
    assert matches(CAND, ds(**{key: value})) is expected


def test_timezone_offset_of_candidate_is_honoured() -> None:
    cand = ds(ScheduledProcedureStepStartDateTime="20240105103000", TimezoneOffsetFromUTC="+0200")
    assert matches(cand, ds(ScheduledProcedureStepStartDateTime="20240105083000+0000"))
    assert not matches(cand, ds(ScheduledProcedureStepStartDateTime="20240105103000+0000"))


def test_combined_date_time_range() -> None:
    # 4 Jan 11:00 .. 5 Jan 11:00 contains 5 Jan 10:30; the separate ranges do not
    query = ds(StudyDate="20240104-20240105", StudyTime="1100-1100")
    assert matches(CAND, query)
    assert not matches(CAND, query, combined_datetime=False)
    assert not matches(CAND, ds(StudyDate="20240104-20240105", StudyTime="1100-0900"))
    # different forms are matched separately
    assert not matches(CAND, ds(StudyDate="20240104-", StudyTime="-1000"))


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("bad", ["2024010-", "20240101-20240102-20240103", "25-"])
def test_malformed_query_raises_a900(bad: str) -> None:
    key = "StudyTime" if bad == "25-" else "StudyDate"
    with pytest.raises(ServiceError) as err:
        matches(CAND, ds(**{key: bad}))
    assert err.value.status == 0xA900


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_malformed_candidate_does_not_match() -> None:
    assert not matches(ds(StudyDate="2024"), ds(StudyDate="20240101-"))


def test_multi_valued_candidate() -> None:
    cand = ds(OtherPatientIDs=["A", "B"])
    assert matches(cand, ds(OtherPatientIDs="B"))
    assert not matches(cand, ds(OtherPatientIDs="C"))


def test_numeric_by_value() -> None:
    cand = ds(NumberOfFrames="1")
    assert matches(cand, ds(NumberOfFrames="01"))


def test_sequence_matching() -> None:
    seq = "ScheduledWorkitemCodeSequence"
    assert matches(CAND, ds(**{seq: Sequence([])}))  # empty sequence: universal
    assert matches(CAND, ds(**{seq: Sequence([Dataset()])}))  # empty item: universal
    assert matches(CAND, ds(**{seq: Sequence([ds(CodeValue="")])}))
    assert matches(CAND, ds(**{seq: Sequence([ds(CodeValue="B2", CodingSchemeDesignator="99L")])}))
    assert not matches(
        CAND, ds(**{seq: Sequence([ds(CodeValue="B2", CodingSchemeDesignator="X")])})
    )
    assert matches(CAND, ds(**{seq: Sequence([ds(CodeValue="?1")])}))
    assert not matches(ds(PatientID="1"), ds(**{seq: Sequence([ds(CodeValue="A1")])}))


def test_nested_sequence_matching() -> None:
    performer = ds(HumanPerformerCodeSequence=Sequence([code("U1")]), HumanPerformerName="X")
    cand = ds(ScheduledHumanPerformersSequence=Sequence([performer]))
    inner = Sequence([ds(HumanPerformerCodeSequence=Sequence([ds(CodeValue="U1")]))])
    assert matches(cand, ds(ScheduledHumanPerformersSequence=inner))
    inner = Sequence([ds(HumanPerformerCodeSequence=Sequence([ds(CodeValue="U2")]))])
    assert not matches(cand, ds(ScheduledHumanPerformersSequence=inner))


def test_return_keys() -> None:
    query = ds(
        PatientID="",
        AccessionNumber="",
        TransactionUID="",
        ScheduledWorkitemCodeSequence=Sequence([ds(CodeValue="B2", CodeMeaning="")]),
    )
    out = select_return_keys(CAND, query)
    assert out.PatientID == "P1 " or out.PatientID == "P1"
    assert "AccessionNumber" in out and out.AccessionNumber in (None, "")
    assert "TransactionUID" not in out
    items = out.ScheduledWorkitemCodeSequence
    assert len(items) == 1
    assert items[0].CodeValue == "B2"
    assert items[0].CodeMeaning == "mB2"
    assert "CodingSchemeDesignator" not in items[0]
    assert "PatientName" not in out


def test_return_whole_sequence_and_empty() -> None:
    out = select_return_keys(
        CAND,
        ds(ScheduledWorkitemCodeSequence=Sequence([]), InputInformationSequence=Sequence([])),
    )
    assert [i.CodeValue for i in out.ScheduledWorkitemCodeSequence] == ["A1", "B2"]
    assert len(out.InputInformationSequence) == 0


def test_return_specific_character_set_of_candidate() -> None:
    cand = ds(SpecificCharacterSet="ISO_IR 192", PatientName="Müller^Hans")
    out = select_return_keys(cand, ds(PatientName=""))
    assert out.SpecificCharacterSet == "ISO_IR 192"
    assert str(out.PatientName) == "Müller^Hans"
    assert "SpecificCharacterSet" not in select_return_keys(CAND, ds(PatientName=""))


text = st.text(
    alphabet=st.characters(codec="ascii", exclude_characters="\\*?\x00 -", min_codepoint=33),
    min_size=1,
    max_size=16,
)


@given(value=text)
def test_universal_always_matches(value: str) -> None:
    assert matches(ds(PatientID=value), ds(PatientID=""))
    assert matches(ds(PatientID=value), ds(PatientID="*"))
    assert matches(ds(PatientID=value), ds())


@given(a=text, b=text)
def test_single_value_is_equality(a: str, b: str) -> None:
    assert matches(ds(PatientID=a), ds(PatientID=b)) is (a == b)


@given(a=text, cut=st.integers(min_value=0, max_value=16))
def test_prefix_wildcard(a: str, cut: int) -> None:
    assert matches(ds(PatientID=a), ds(PatientID=a[:cut] + "*"))
    assert matches(ds(PatientID=a), ds(PatientID="?" * len(a)))
    assert not matches(ds(PatientID=a), ds(PatientID="?" * (len(a) + 1)))
