"""Reading -f data set files: DICOM, PS3.19 XML, dcm4che2 XML, DICOM JSON."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

import pydicom
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import UID, ExplicitVRLittleEndian, generate_uid

from ups.cli.files import UserInputError, read_dataset_bytes, read_dataset_file

UPS_PUSH = UID("1.2.840.10008.5.1.4.34.6.1")


def workitem() -> Dataset:
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.PatientName = "Doe^John"
    ds.PatientID = "P1"
    ds.OtherPatientIDs = ["A", "B"]
    ds.ProcedureStepState = "SCHEDULED"
    ds.ScheduledProcedureStepPriority = "MEDIUM"
    code = Dataset()
    code.CodeValue = "X"
    code.CodingSchemeDesignator = "DCM"
    ds.ScheduledWorkitemCodeSequence = Sequence([code])
    return ds


def write(tmp_path: Path, name: str, content: str | bytes) -> Path:
    path = tmp_path / name
    if isinstance(content, str):
        path.write_text(content, encoding="utf-8")
    else:
        path.write_bytes(content)
    return path


def refused(path: Path) -> str:
    with pytest.raises(UserInputError) as info:
        read_dataset_file(path)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(str(path) + ":")
    return message


# --- DICOM binary --------------------------------------------------------------------


def test_part10_file(tmp_path: Path) -> None:
    ds = workitem()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = UPS_PUSH
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    path = tmp_path / "item.bin"  # the extension does not matter
    ds.save_as(path, enforce_file_format=True)
    got = read_dataset_file(path)
    assert type(got) is Dataset
    assert got == workitem()
    assert "TransferSyntaxUID" not in got


@pytest.mark.parametrize(
    "syntax", [pydicom.uid.DeflatedExplicitVRLittleEndian, pydicom.uid.ExplicitVRBigEndian]
)
def test_part10_other_transfer_syntaxes(tmp_path: Path, syntax: UID) -> None:
    ds = workitem()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = UPS_PUSH
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.file_meta.TransferSyntaxUID = syntax
    path = tmp_path / "item.dcm"
    ds.save_as(path, enforce_file_format=True)
    assert read_dataset_file(path) == workitem()


@pytest.mark.parametrize("implicit", [True, False])
def test_raw_dataset_without_preamble(tmp_path: Path, implicit: bool) -> None:
    path = tmp_path / "raw.xml"  # misleading extension on purpose
    workitem().save_as(path, implicit_vr=implicit, little_endian=True)
    assert read_dataset_file(path) == workitem()


def test_truncated_part10_is_refused(tmp_path: Path) -> None:
    ds = workitem()
    ds.ReasonForCancellation = "x" * 400
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = UPS_PUSH
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    full = tmp_path / "full.dcm"
    ds.save_as(full, enforce_file_format=True)
    for size in (10, 100, 399, 420):
        cut = write(tmp_path, f"cut{size}.dcm", full.read_bytes()[:-size])
        message = refused(cut)
        assert "truncated DICOM data set" in message or "malformed DICOM data set" in message


@pytest.mark.parametrize("undefined_length", [False, True])
def test_truncated_sequence_is_refused(tmp_path: Path, undefined_length: bool) -> None:
    ds = workitem()
    ds.ScheduledWorkitemCodeSequence[0].CodeMeaning = "y" * 60
    ds.ProcedureStepState = None  # make the sequence the last attribute
    del ds.ProcedureStepState
    ds.ScheduledWorkitemCodeSequence.is_undefined_length = undefined_length
    full = tmp_path / "full.raw"
    ds.save_as(full, implicit_vr=False, little_endian=True)
    cut = write(tmp_path, "cut.raw", full.read_bytes()[:-30])
    message = refused(cut)
    assert "truncated DICOM data set" in message or "malformed DICOM data set" in message


@pytest.mark.parametrize(
    "content",
    [b"\x00\x01garbage" * 10, b"hello world", b"\x89PNG\r\n\x1a\n" + bytes(100), b"\x08"],
)
def test_garbage_is_refused(tmp_path: Path, content: bytes) -> None:
    path = write(tmp_path, "junk", content)
    assert refused(path) == f"{path}: not a DICOM, XML or JSON data set file"


def test_empty_missing_and_too_large(tmp_path: Path) -> None:
    assert refused(write(tmp_path, "empty", b"")).endswith("empty file")
    assert "No such file" in refused(tmp_path / "missing.xml")
    assert "Is a directory" in refused(tmp_path)
    big = write(tmp_path, "big.json", b"{}" + b" " * 100)
    with pytest.raises(UserInputError, match="file too large"):
        read_dataset_file(big, max_size=50)


# --- PS3.19 Native DICOM Model ------------------------------------------------------

NATIVE = """<?xml version="1.0" encoding="UTF-8"?>
<NativeDicomModel xmlns="http://dicom.nema.org/PS3.19/models/NativeDICOM" xml:space="preserve">
  <DicomAttribute tag="00080005" vr="CS" keyword="SpecificCharacterSet">
    <Value number="1">ISO_IR 192</Value>
  </DicomAttribute>
  <DicomAttribute tag="00100010" vr="PN" keyword="PatientName">
    <PersonName number="1">
      <Alphabetic><FamilyName>Doe</FamilyName><GivenName>John</GivenName></Alphabetic>
      <Ideographic><FamilyName>山田</FamilyName><GivenName>太郎</GivenName></Ideographic>
    </PersonName>
  </DicomAttribute>
  <DicomAttribute tag="00101000" vr="LO" keyword="OtherPatientIDs">
    <Value number="2">B</Value>
    <Value number="1">A</Value>
  </DicomAttribute>
  <DicomAttribute tag="00280010" vr="US"><Value number="1">512</Value></DicomAttribute>
  <DicomAttribute tag="00280030" vr="DS">
    <Value number="1">0.5</Value><Value number="2">0.25</Value>
  </DicomAttribute>
  <DicomAttribute tag="00209165" vr="AT"><Value number="1">00100020</Value></DicomAttribute>
  <DicomAttribute tag="00420011" vr="OB"><InlineBinary>AAEC/w==</InlineBinary></DicomAttribute>
  <DicomAttribute tag="00100030" vr="DA"/>
  <DicomAttribute tag="00404018" vr="SQ" keyword="ScheduledWorkitemCodeSequence">
    <Item number="1">
      <DicomAttribute tag="00080100" vr="SH"><Value number="1">X</Value></DicomAttribute>
      <DicomAttribute tag="00080102" vr="SH"><Value number="1">DCM</Value></DicomAttribute>
    </Item>
  </DicomAttribute>
  <DicomAttribute tag="00741000" vr="CS"><Value number="1">SCHEDULED</Value></DicomAttribute>
</NativeDicomModel>
"""


def test_native_xml(tmp_path: Path) -> None:
    ds = read_dataset_file(write(tmp_path, "item.dat", NATIVE))
    assert ds.PatientName == "Doe^John=山田^太郎"
    assert list(ds.OtherPatientIDs) == ["A", "B"]
    assert ds.Rows == 512
    assert [float(v) for v in ds.PixelSpacing] == [0.5, 0.25]
    assert ds.DimensionIndexPointer == 0x00100020
    assert ds.EncapsulatedDocument == b"\x00\x01\x02\xff"
    assert ds["PatientBirthDate"].is_empty
    assert ds.ScheduledWorkitemCodeSequence[0].CodeValue == "X"
    assert ds.ScheduledWorkitemCodeSequence[0].CodingSchemeDesignator == "DCM"
    assert ds.ProcedureStepState == "SCHEDULED"


def _native(body: str) -> str:
    return f'<?xml version="1.0"?>\n<NativeDicomModel>\n{body}\n</NativeDicomModel>\n'


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ("<foo/>", "line 3: unknown element <foo>"),
        ('<DicomAttribute vr="LO"/>', "line 3: <DicomAttribute> without tag attribute"),
        ('<DicomAttribute tag="0010001" vr="LO"/>', "bad tag '0010001'"),
        ('<DicomAttribute tag="00091010"/>', "no vr given for unknown tag 00091010"),
        ('<DicomAttribute tag="00100020" vr="XX"/>', "unknown vr 'XX'"),
        (
            '<DicomAttribute tag="00420011" vr="OB"><BulkData uri="http://x/y"/></DicomAttribute>',
            "BulkData references are not supported",
        ),
        (
            '<DicomAttribute tag="00280010" vr="US"><Value>x</Value></DicomAttribute>',
            "value 'x' is not a valid US",
        ),
        (
            '<DicomAttribute tag="00420011" vr="OB">'
            "<InlineBinary>!!</InlineBinary></DicomAttribute>",
            "not valid base64",
        ),
        (
            '<DicomAttribute tag="00100020" vr="LO"><Item/></DicomAttribute>',
            "unknown element <Item> in LO attribute 00100020",
        ),
        (
            '<DicomAttribute tag="00100020" vr="LO"><Value number="1">a</Value>'
            '<Value number="1">b</Value></DicomAttribute>',
            "bad or duplicate number 1",
        ),
        (
            '<DicomAttribute tag="00100020" vr="LO"/><DicomAttribute tag="00100020" vr="LO"/>',
            "duplicate attribute 00100020",
        ),
        ("stray text", "unexpected text in <NativeDicomModel>"),
    ],
)
def test_native_xml_errors(tmp_path: Path, body: str, problem: str) -> None:
    assert problem in refused(write(tmp_path, "x.xml", _native(body)))


def test_unknown_root_and_broken_xml(tmp_path: Path) -> None:
    assert "line 1: unknown root element <html>" in refused(write(tmp_path, "a.xml", "<html/>"))
    message = refused(write(tmp_path, "b.xml", "<NativeDicomModel>\n<DicomAttribute>"))
    assert "invalid XML" in message and "line 2" in message


BILLION_LAUGHS = """<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<NativeDicomModel>
  <DicomAttribute tag="00100010" vr="PN"><PersonName number="1">
    <Alphabetic><FamilyName>&lol9;</FamilyName></Alphabetic></PersonName></DicomAttribute>
</NativeDicomModel>
"""


def test_billion_laughs_is_refused(tmp_path: Path) -> None:
    message = refused(write(tmp_path, "lol.xml", BILLION_LAUGHS))
    assert "line 2: DOCTYPE declaration not allowed" in message


def test_external_entity_is_refused(tmp_path: Path) -> None:
    secret = write(tmp_path, "secret.txt", "TOP-SECRET")
    xxe = (
        '<?xml version="1.0"?>\n'
        f'<!DOCTYPE d [<!ENTITY xxe SYSTEM "{secret.as_uri()}">]>\n'
        '<dicom><attr tag="00100020" vr="LO">&xxe;</attr></dicom>\n'
    )
    message = refused(write(tmp_path, "xxe.xml", xxe))
    assert "DOCTYPE declaration not allowed" in message
    assert "TOP-SECRET" not in message
    external_dtd = f'<?xml version="1.0"?>\n<!DOCTYPE dicom SYSTEM "{secret.as_uri()}">\n<dicom/>'
    assert "DOCTYPE" in refused(write(tmp_path, "dtd.xml", external_dtd))


def test_undeclared_entity_is_refused(tmp_path: Path) -> None:
    xml = '<dicom><attr tag="00100020" vr="LO">&nope;</attr></dicom>'
    assert "undefined entity" in refused(write(tmp_path, "e.xml", xml))


def test_too_deep_xml_is_refused(tmp_path: Path) -> None:
    xml = "<dicom>" + "<a>" * 200 + "</a>" * 200 + "</dicom>"
    assert "nested deeper" in refused(write(tmp_path, "deep.xml", xml))


# --- dcm4che2 XML ---------------------------------------------------------------------

DCM4CHE2 = """<?xml version="1.0" encoding="UTF-8"?>
<dicom>
<attr tag="00020010" vr="UI" len="20">1.2.840.10008.1.2.1</attr>
<attr tag="00080005" vr="CS" len="10">ISO_IR 100</attr>
<attr tag="00100010" vr="PN" len="8">Doe^John</attr>
<attr tag="00100020" len="2">P1</attr>
<attr tag="00101000" vr="LO" len="4">A\\B</attr>
<attr tag="00280010" vr="US" len="2">512</attr>
<attr tag="00209165" vr="AT" len="8">00100010\\00100020</attr>
<attr tag="00420011" vr="OB" len="4">00\\01\\02\\FF</attr>
<attr tag="00291010" vr="UN" len="4">ab\\\\\\0A</attr>
<attr tag="00404018" vr="SQ" len="-1">
<item off="0" len="-1">
<attr tag="00080100" vr="SH" len="2">X</attr>
<attr tag="00404025" vr="SQ" len="-1">
<item off="0" len="-1">
<attr tag="00080104" vr="LO" len="6">Nested</attr>
</item>
</attr>
</item>
<item off="0" len="-1">
<attr tag="00080100" vr="SH" len="2">Y</attr>
</item>
</attr>
<attr tag="00741000" vr="CS" len="10">SCHEDULED</attr>
<attr tag="00741002" vr="SQ" len="0"></attr>
</dicom>
"""


def test_dcm4che2_xml(tmp_path: Path) -> None:
    ds = read_dataset_file(write(tmp_path, "ups.xml", DCM4CHE2))
    assert "TransferSyntaxUID" not in ds  # file meta info is not data set content
    assert ds.PatientName == "Doe^John"
    assert ds.PatientID == "P1"  # vr from the dictionary
    assert list(ds.OtherPatientIDs) == ["A", "B"]
    assert ds.Rows == 512
    assert list(ds.DimensionIndexPointer) == [0x00100010, 0x00100020]
    assert ds.EncapsulatedDocument == b"\x00\x01\x02\xff"
    assert ds[0x00291010].value == b"ab\\\n"
    seq = ds.ScheduledWorkitemCodeSequence
    assert [item.CodeValue for item in seq] == ["X", "Y"]
    assert seq[0].ScheduledStationNameCodeSequence[0].CodeMeaning == "Nested"
    assert ds.ProcedureStepState == "SCHEDULED"
    assert len(ds.ProcedureStepProgressInformationSequence) == 0


def test_dcm4che2_dataset_root(tmp_path: Path) -> None:
    xml = '<dataset><attr tag="00100010" vr="PN" len="8">Doe^John</attr></dataset>'
    assert read_dataset_file(write(tmp_path, "d.xml", xml)).PatientName == "Doe^John"


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ('<attr tag="00420011" vr="OB" src="file.bin"/>', "external values (src=) are not"),
        ('<attr tag="7FE00010" vr="OB"><item>00</item></attr>', "encapsulated fragments"),
        ('<attr tag="00280010" vr="US">1\\x</attr>', "not a valid US"),
        ('<attr tag="00420011" vr="OB">GG</attr>', "not a valid OB"),
        ('<attr tag="00100010" vr="PN"><foo/></attr>', "unknown element <foo> in <attr>"),
        ("<item/>", "line 3: unknown element <item>"),
    ],
)
def test_dcm4che2_errors(tmp_path: Path, body: str, problem: str) -> None:
    xml = f'<?xml version="1.0"?>\n<dicom>\n{body}\n</dicom>'
    assert problem in refused(write(tmp_path, "x.xml", xml))


# --- DICOM JSON --------------------------------------------------------------------------


def test_json_object_and_single_element_array(tmp_path: Path) -> None:
    model = workitem().to_json_dict()
    assert read_dataset_file(write(tmp_path, "a.json", json.dumps(model))) == workitem()
    path = write(tmp_path, "b.txt", "\ufeff" + json.dumps([model], indent=2))
    assert read_dataset_file(path) == workitem()


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("[]", "an array of 0 data sets"),
        ("[{}, {}]", "an array of 2 data sets"),
        ('{"PatientName": {"vr": "PN"}}', "'PatientName' is not an 8-hex-digit tag"),
        ('{"00100010": "Doe"}', "attribute 00100010 has no vr"),
        ('{"00420011": {"vr": "OB", "BulkDataURI": "http://x"}}', "BulkDataURI"),
        ('{"00404018": {"vr": "SQ", "Value": [{"x": 1}]}}', "'x' is not an 8-hex-digit tag"),
        ('{"00280010": {"vr": "US", "Value": ["abc"]}}', "not a DICOM JSON object"),
        ("{broken", "invalid JSON: line 1"),
        ("[1]", "expected an object, found int"),
    ],
)
def test_json_errors(tmp_path: Path, content: str, problem: str) -> None:
    message = refused(write(tmp_path, "x.json", content))
    assert problem in message


def test_read_dataset_bytes_names_the_source() -> None:
    with pytest.raises(UserInputError, match="^stdin: not a DICOM, XML or JSON"):
        read_dataset_bytes(b"zzzz", "stdin")


# --- property: PS3.19 written by a tiny local writer reads back equal ----------------------

_PN_GROUPS = ("Alphabetic", "Ideographic")
_PN_PARTS = ("FamilyName", "GivenName", "MiddleName", "NamePrefix", "NameSuffix")


def to_native_xml(ds: Dataset) -> str:
    """A minimal PS3.19 A.1 writer, independent of the reader under test."""
    out = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        '<NativeDicomModel xmlns="http://dicom.nema.org/PS3.19/models/NativeDICOM"'
        ' xml:space="preserve">',
    ]
    _write_attributes(ds, out)
    out.append("</NativeDicomModel>")
    return "\n".join(out)


def _write_attributes(ds: Dataset, out: list[str]) -> None:
    for elem in ds:
        out.append(
            f'<DicomAttribute tag="{elem.tag:08X}" vr="{elem.VR}"'
            f" keyword={quoteattr(elem.keyword)}>"
        )
        if elem.VR == "SQ":
            for number, item in enumerate(elem.value, start=1):
                out.append(f'<Item number="{number}">')
                _write_attributes(item, out)
                out.append("</Item>")
        elif elem.is_empty:
            pass
        elif elem.VR in ("OB", "OW", "UN"):
            out.append(f"<InlineBinary>{base64.b64encode(elem.value).decode()}</InlineBinary>")
        else:
            values = list(elem.value) if elem.VM > 1 else [elem.value]
            for number, value in enumerate(values, start=1):
                if elem.VR == "PN":
                    out.append(_person_name_xml(number, str(value)))
                else:
                    shown = f"{value:08X}" if elem.VR == "AT" else escape(str(value))
                    out.append(f'<Value number="{number}">{shown}</Value>')
        out.append("</DicomAttribute>")


def _person_name_xml(number: int, name: str) -> str:
    groups = []
    for group, text in zip(_PN_GROUPS, name.split("="), strict=False):
        parts = zip(_PN_PARTS, text.split("^"), strict=False)
        comps = "".join(f"<{part}>{escape(value)}</{part}>" for part, value in parts)
        groups.append(f"<{group}>{comps}</{group}>")
    return f'<PersonName number="{number}">{"".join(groups)}</PersonName>'


_word = st.text(st.sampled_from("ABCDEFXYZabc0129 -_.:&<>'\"äöü漢"), min_size=1, max_size=12).map(
    lambda s: s.strip() or "Q"
)
_code = st.text(st.sampled_from("ABCXYZ0129_ "), min_size=1, max_size=8).map(
    lambda s: s.strip() or "C"
)
_name_part = st.text(st.sampled_from("ABCxyzäö山田"), min_size=1, max_size=6)
_person = st.lists(_name_part, min_size=1, max_size=5).map("^".join)
_uid = st.lists(st.integers(0, 99999), min_size=2, max_size=6).map(
    lambda parts: "1.2." + ".".join(map(str, parts))
)

SIMPLE = {
    "PatientID": st.one_of(st.none(), _word),
    "OtherPatientIDs": st.lists(_word, min_size=2, max_size=3),
    "PatientName": st.one_of(_person, st.tuples(_person, _person).map("=".join)),
    "ProcedureStepState": st.sampled_from(["SCHEDULED", "IN PROGRESS", "COMPLETED"]),
    "StudyInstanceUID": _uid,
    "Rows": st.integers(0, 65535),
    "InstanceNumber": st.integers(-(2**31), 2**31 - 1),
    "PixelSpacing": st.lists(
        st.integers(0, 10**6).map(lambda n: f"{n / 1000:g}"), min_size=2, max_size=2
    ),
    "DimensionIndexPointer": st.integers(0, 0xFFFFFFFF),
    "ReasonForCancellation": _word,
    "EncapsulatedDocument": st.binary(min_size=2, max_size=40).map(
        lambda b: b if len(b) % 2 == 0 else b + b"\x00"
    ),
}
CODE_ITEM = st.fixed_dictionaries(
    {"CodeValue": _code, "CodingSchemeDesignator": _code},
    optional={"CodeMeaning": _word},
)


@st.composite
def simple_datasets(draw: st.DrawFn) -> Dataset:
    ds = Dataset()
    for keyword in draw(st.sets(st.sampled_from(sorted(SIMPLE)))):
        setattr(ds, keyword, draw(SIMPLE[keyword]))
    items = draw(st.lists(CODE_ITEM, max_size=3))
    empty_sequence: bool = draw(st.booleans())
    if items or empty_sequence:
        seq = []
        for values in items:
            item = Dataset()
            for key, value in values.items():
                setattr(item, key, value)
            seq.append(item)
        ds.ScheduledWorkitemCodeSequence = Sequence(seq)
    return ds


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(simple_datasets())
def test_native_xml_round_trip(ds: Dataset) -> None:
    xml = to_native_xml(ds).encode("utf-8")
    got = read_dataset_bytes(xml, "generated.xml")
    assert got.to_json_dict() == ds.to_json_dict()
    assert got == ds


def test_pydicom_is_the_part10_authority() -> None:
    """Sanity: the fixtures above are what pydicom itself calls valid."""
    assert pydicom.__version__.startswith("3.")
