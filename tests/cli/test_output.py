"""Printing: the readable dump, the PS3.18 F.2 JSON model and JSON lines."""

from __future__ import annotations

import base64
import json

from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from ups.cli.output import dump_dataset, format_value, json_line, to_json_model


def sample() -> Dataset:
    ds = Dataset()
    ds.SOPClassUID = "1.2.840.10008.5.1.4.34.6.1"
    ds.PatientName = "Doe^John"
    ds.OtherPatientIDs = ["A", "B"]
    ds.Rows = 512
    ds.DimensionIndexPointer = 0x00100020
    ds.PatientBirthDate = None
    code = Dataset()
    code.CodeValue = "X"
    code.CodingSchemeDesignator = "DCM"
    ds.ScheduledWorkitemCodeSequence = Sequence([code])
    ds.ScheduledStationNameCodeSequence = Sequence()
    ds.ProcedureStepState = "SCHEDULED"
    return ds


def test_dump_lines() -> None:
    lines = dump_dataset(sample()).splitlines()
    assert lines[0].startswith("(0008,0016) UI SOPClassUID ")
    assert lines[0].endswith("1.2.840.10008.5.1.4.34.6.1 (Unified Procedure Step - Push SOP Class)")
    by_keyword = {line.split()[2]: line for line in lines if line.lstrip().startswith("(")}
    assert by_keyword["PatientName"].endswith(" Doe^John")
    assert by_keyword["OtherPatientIDs"].endswith(" A\\B")
    assert by_keyword["Rows"].endswith(" 512")
    assert by_keyword["DimensionIndexPointer"].endswith(" (0010,0020)")
    assert by_keyword["PatientBirthDate"].endswith(" <empty>")
    assert by_keyword["ScheduledWorkitemCodeSequence"].endswith("(1 item)")
    assert by_keyword["ScheduledStationNameCodeSequence"].endswith("(0 items)")


def test_dump_nests_items() -> None:
    text = dump_dataset(sample())
    assert (
        "(0040,4018) SQ ScheduledWorkitemCodeSequence           (1 item)\n"
        "  Item #1\n"
        "    (0008,0100) SH CodeValue"
    ) in text
    nested = [line for line in text.splitlines() if "CodingSchemeDesignator" in line]
    assert nested[0].startswith("    (0008,0102) SH CodingSchemeDesignator")
    assert nested[0].endswith(" DCM")


def test_dump_values_align_at_nesting_depths() -> None:
    lines = dump_dataset(sample()).splitlines()
    assert lines[1].index("Doe^John") == next(
        line.index(" X") + 1 for line in lines if "CodeValue" in line
    )


def test_long_values_are_cut_with_a_marker() -> None:
    ds = Dataset()
    ds.ReasonForCancellation = "x" * 500
    line = dump_dataset(ds, width=20)
    assert line.endswith("x" * 20 + "... [500 chars]")
    assert len(line) < 100


def test_control_characters_are_escaped() -> None:
    ds = Dataset()
    ds.ReasonForCancellation = "line1\r\nline2\x1b[31m\tend\x85"
    text = dump_dataset(ds)
    assert "\n" not in text and "\x1b" not in text and "\x85" not in text
    assert text.endswith("line1\\r\\nline2\\x1b[31m\\tend\\x85")


def test_binary_and_private_values() -> None:
    ds = Dataset()
    ds.add(DataElement(0x00290010, "LO", "ACME"))
    ds.add(DataElement(0x00291010, "OB", bytes(range(20))))
    ds.add(DataElement(0x00290002, "UN", b"\x01\x02"))
    lines = dump_dataset(ds).splitlines()
    assert " UN (unknown)" not in lines[0]
    assert "(0029,0010) LO PrivateCreator" in lines[1] and lines[1].endswith(" ACME")
    assert "(0029,1010) OB (private)" in lines[2]
    assert lines[2].endswith("<20 bytes: 00 01 02 03 04 05 06 07 08 09 0A 0B 0C 0D 0E 0F ...>")


def test_format_value_single() -> None:
    assert format_value(DataElement(0x00100010, "PN", "")) == "<empty>"
    assert format_value(DataElement(0x00280010, "US", [1, 2])) == "1\\2"


def test_json_model_matches_ps3_18() -> None:
    model = to_json_model(sample())
    assert model["00100010"] == {"vr": "PN", "Value": [{"Alphabetic": "Doe^John"}]}
    assert model["00101000"] == {"vr": "LO", "Value": ["A", "B"]}
    assert model["00280010"] == {"vr": "US", "Value": [512]}
    assert model["00209165"] == {"vr": "AT", "Value": ["00100020"]}
    assert model["00100030"] == {"vr": "DA"}
    assert model["00404025"] == {"vr": "SQ"}
    assert model["00404018"] == {
        "vr": "SQ",
        "Value": [
            {"00080100": {"vr": "SH", "Value": ["X"]}, "00080102": {"vr": "SH", "Value": ["DCM"]}}
        ],
    }
    assert list(model) == sorted(model)
    assert to_json_model(Dataset.from_json(model)) == model


def test_json_model_binary_limits() -> None:
    ds = Dataset()
    ds.add(DataElement(0x00420011, "OB", b"\x00\x01\x02\x03"))
    ds.add(DataElement(0x00291010, "OB", bytes(100)))
    ds.add(DataElement(0x00280000, "UL", 10))  # group length: never in the model
    model = to_json_model(ds, inline_limit=10)
    assert model["00420011"] == {"vr": "OB", "InlineBinary": base64.b64encode(b"\0\1\2\3").decode()}
    assert model["00291010"] == {"vr": "OB", "BulkDataURI": "urn:dcmups:omitted-bulk-data:100"}
    assert "00280000" not in model
    custom = to_json_model(ds, inline_limit=10, bulk_data_uri=lambda e: f"http://x/{e.tag:08X}")
    assert custom["00291010"] == {"vr": "OB", "BulkDataURI": "http://x/00291010"}
    assert to_json_model(ds)["00291010"]["InlineBinary"] == base64.b64encode(bytes(100)).decode()


def test_json_model_falls_back_on_bad_values() -> None:
    ds = Dataset()
    ds.add(DataElement(0x00200013, "IS", "12", validation_mode=0))
    ds[0x00200013]._value = "not-a-number"  # as if read leniently from a peer
    model = to_json_model(ds)
    assert model["00200013"] == {"vr": "IS", "Value": ["not-a-number"]}


def test_json_line_is_one_compact_line() -> None:
    line = json_line({"event": "x", "text": "a\nb\u2028c", "n": 1.5})
    assert "\n" not in line and "\u2028" not in line
    assert line == '{"event":"x","text":"a\\nb\\u2028c","n":1.5}'
    assert json.loads(line)["text"] == "a\nb\u2028c"


def test_json_line_handles_odd_values() -> None:
    line = json_line(
        {
            "nan": float("nan"),
            "inf": [float("inf"), -float("inf")],
            "raw": b"\x00\xff",
            "ds": sample(),
            "tuple": (1, 2),
            "other": object.__name__,
        }
    )
    back = json.loads(line)
    assert back["nan"] == "NaN"
    assert back["inf"] == ["Infinity", "-Infinity"]
    assert back["raw"] == "AP8="
    assert back["ds"]["00100010"]["Value"] == [{"Alphabetic": "Doe^John"}]
    assert back["tuple"] == [1, 2]


def test_json_line_keeps_unicode() -> None:
    assert json_line({"name": "山田^太郎"}) == '{"name":"山田^太郎"}'
