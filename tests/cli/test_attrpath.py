"""Command-line attribute specifications: -q / -r / -s / -m (seed manual, dcm4che5)."""

from __future__ import annotations

import pytest
from pydicom.dataset import Dataset

from ups.cli.attrpath import (
    add_return_key,
    apply_assignment,
    build_dataset,
    parse_assignment,
    parse_path,
    parse_tag,
)
from ups.cli.files import UserInputError

SWCS = 0x00404018  # Scheduled Workitem Code Sequence
CODE_VALUE = 0x00080100


def test_parse_tag_forms() -> None:
    assert parse_tag("ScheduledProcedureStepStartDateTime") == 0x00404005
    assert parse_tag("00404005") == 0x00404005
    assert parse_tag("0040400a") == 0x0040400A
    assert parse_tag("(0040,4005)") == 0x00404005
    assert parse_tag(" PatientName ") == 0x00100010


@pytest.mark.parametrize("spec", ["NoSuchKeyword", "0040400", "004040055", "00G04005", "", "a-b"])
def test_parse_tag_rejects(spec: str) -> None:
    with pytest.raises(UserInputError, match="unknown attribute") as info:
        parse_tag(spec)
    assert repr(spec) in str(info.value)


def test_seed_example_nested_by_hex() -> None:
    assert parse_assignment("00404018/00080100=X") == ((SWCS, CODE_VALUE), "X")


def test_nested_by_keyword_and_dcm4che5_dots() -> None:
    expected = ((SWCS, CODE_VALUE), "CODE")
    assert parse_assignment("ScheduledWorkitemCodeSequence/CodeValue=CODE") == expected
    assert parse_assignment("ScheduledWorkitemCodeSequence.CodeValue=CODE") == expected
    assert parse_assignment("00404018.00080100=CODE") == expected


def test_value_keeps_equals_and_dots() -> None:
    assert parse_assignment("PatientComments=a=b.c") == ((0x00104000,), "a=b.c")
    assert parse_assignment("PatientName=") == ((0x00100010,), "")


def test_deep_path() -> None:
    spec = "ScheduledHumanPerformersSequence/HumanPerformerCodeSequence/CodeMeaning"
    assert parse_path(spec) == (0x00404034, 0x00404009, 0x00080104)


@pytest.mark.parametrize(
    ("spec", "problem"),
    [
        ("PatientName", "expected attr=value"),
        ("Bogus=1", "unknown attribute 'Bogus'"),
        ("0040401=1", "unknown attribute '0040401'"),
        ("PatientName/PatientID=1", "00100010 is not a sequence"),
        ("00404018//00080100=1", "empty attribute name"),
        ("=1", "empty attribute name"),
    ],
)
def test_parse_assignment_errors(spec: str, problem: str) -> None:
    with pytest.raises(UserInputError) as info:
        parse_assignment(spec)
    message = str(info.value)
    assert problem in message
    assert repr(spec) in message
    assert "\n" not in message


def test_apply_creates_sequence_item_and_reuses_it() -> None:
    ds = Dataset()
    apply_assignment(ds, *parse_assignment("00404018/00080100=X"))
    apply_assignment(ds, *parse_assignment("00404018/CodingSchemeDesignator=DCM"))
    seq = ds.ScheduledWorkitemCodeSequence
    assert len(seq) == 1
    assert seq[0].CodeValue == "X"
    assert seq[0].CodingSchemeDesignator == "DCM"


def test_values_follow_the_dictionary_vr() -> None:
    ds = build_dataset(
        [
            "ProcedureStepState=SCHEDULED",
            "OtherPatientIDs=A\\B\\C",
            "Rows=512",
            "PixelSpacing=0.5\\0.25",
            "InstanceNumber=7",
            "DimensionIndexPointer=00100010",
            "ReasonForCancellation=keep \\ this",
            "ScheduledProcedureStepStartDateTime=20240101-20240102",
            "ProcedureStepProgressInformationSequence/ProcedureStepProgress=12.5",
        ]
    )
    assert ds.ProcedureStepState == "SCHEDULED"
    assert list(ds.OtherPatientIDs) == ["A", "B", "C"]
    assert ds.Rows == 512 and ds["Rows"].VR == "US"
    assert [float(v) for v in ds.PixelSpacing] == [0.5, 0.25]
    assert ds.InstanceNumber == 7
    assert ds.DimensionIndexPointer == 0x00100010
    assert ds.ReasonForCancellation == "keep \\ this"  # LT: backslash is data
    assert ds.ScheduledProcedureStepStartDateTime == "20240101-20240102"
    assert float(ds.ProcedureStepProgressInformationSequence[0].ProcedureStepProgress) == 12.5


def test_empty_value_is_universal_match() -> None:
    ds = build_dataset(["PatientName=", "ScheduledWorkitemCodeSequence="])
    assert ds["PatientName"].is_empty
    assert ds["ScheduledWorkitemCodeSequence"].VR == "SQ"
    assert len(ds.ScheduledWorkitemCodeSequence) == 0


def test_later_assignment_wins() -> None:
    ds = build_dataset(["PatientID=1", "PatientID=2"])
    assert ds.PatientID == "2"


@pytest.mark.parametrize(
    ("spec", "problem"),
    [
        ("Rows=many", "value 'many' is not a valid US"),
        ("Rows=70000", "not a valid US"),
        ("PixelSpacing=a\\1", "not a valid DS"),
        ("DimensionIndexPointer=PatientNam", "not a valid AT"),
        ("00091010=x", "no VR known for 00091010"),
        ("ScheduledWorkitemCodeSequence=X", "is a sequence"),
        ("EncapsulatedDocument=abc", "binary VR OB"),
    ],
)
def test_apply_errors_name_the_spec(spec: str, problem: str) -> None:
    with pytest.raises(UserInputError) as info:
        build_dataset([spec])
    message = str(info.value)
    assert problem in message
    assert repr(spec) in message
    assert "\n" not in message


def test_return_keys() -> None:
    ds = build_dataset(["PatientID=42"], ["PatientID", "PatientName", "00404018/00080100"])
    assert ds.PatientID == "42"  # an existing key is not blanked
    assert ds["PatientName"].is_empty
    assert ds.ScheduledWorkitemCodeSequence[0]["CodeValue"].is_empty
    add_return_key(ds, 0x00404025)
    add_return_key(ds, (SWCS, 0x00080102))
    assert len(ds.ScheduledStationNameCodeSequence) == 0
    assert len(ds.ScheduledWorkitemCodeSequence) == 1
    assert "CodingSchemeDesignator" in ds.ScheduledWorkitemCodeSequence[0]


def test_return_key_errors() -> None:
    with pytest.raises(UserInputError, match="unknown attribute 'Nope'"):
        add_return_key(Dataset(), "Nope")
    with pytest.raises(UserInputError, match="no VR known"):
        add_return_key(Dataset(), 0x00091010)
    with pytest.raises(UserInputError, match="empty attribute path"):
        add_return_key(Dataset(), ())


def test_existing_empty_sequence_gets_an_item() -> None:
    ds = Dataset()
    ds.add_new(SWCS, "SQ", [])
    apply_assignment(ds, (SWCS, CODE_VALUE), "X")
    assert ds.ScheduledWorkitemCodeSequence[0].CodeValue == "X"
