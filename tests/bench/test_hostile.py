"""The hostile shapes are what scenario 11 says they are, and are framed within the limits."""

from __future__ import annotations

import struct
from io import BytesIO

import pytest

from bench import hostile, rawpdu


def _read(data: bytes, implicit: bool = True) -> object:
    from pydicom.filereader import read_dataset

    return read_dataset(BytesIO(data), is_implicit_VR=implicit, is_little_endian=True)


def test_empty_items_and_deep_parse_as_intended() -> None:
    ds = _read(hostile.empty_items(3))
    assert len(ds.ScheduledWorkitemCodeSequence) == 3  # type: ignore[attr-defined]
    assert ds.ProcedureStepState == "IN PROGRESS"  # type: ignore[attr-defined]
    assert len(hostile.empty_items(1000)) == 8 * 1000 + 16 + len(rawpdu.state_report_dataset())
    ds = _read(hostile.deep(5))
    depth = 0
    while "ScheduledWorkitemCodeSequence" in ds:  # type: ignore[operator]
        ds = ds.ScheduledWorkitemCodeSequence[0]  # type: ignore[attr-defined]
        depth += 1
    assert depth == 5


def test_huge_length_and_sq_as_vr() -> None:
    data = hostile.huge_length()
    assert struct.unpack_from("<HHL", data, 14) == (0x0040, 0xA160, 0xFFFFFFF0)
    for vr in (b"LO", b"UL"):
        data = hostile.sq_as(vr)
        group, element, sent_vr, length = struct.unpack_from("<HH2sH", data)
        assert (group, element, sent_vr) == (0x0040, 0x4018, vr)
        assert data[8 : 8 + 4] == struct.pack("<HH", 0xFFFE, 0xE000)  # item bytes inside
        assert length == 20


@pytest.mark.parametrize("max_pdu", [16384, 4096])
def test_fragmented_within_max_pdu(max_pdu: int) -> None:
    dataset = hostile.empty_items(10_000)
    command = rawpdu.n_event_report_rq(1)
    pdus = list(rawpdu.fragmented(1, command, dataset, max_pdu))
    data = b""
    headers = []
    for pdu in pdus[1:]:
        assert len(pdu) - rawpdu.HEADER_LEN <= max_pdu
        ((_, header, fragment),) = rawpdu.pdvs(memoryview(pdu)[rawpdu.HEADER_LEN :])
        headers.append(header)
        data += bytes(fragment)
    assert data == dataset
    assert headers[-1] == 0x02 and set(headers[:-1]) == {0x00}
    ((_, header, fragment),) = rawpdu.pdvs(memoryview(pdus[0])[rawpdu.HEADER_LEN :])
    assert (header, bytes(fragment)) == (0x03, command)


def test_endless_fragments_never_last_and_stay_well_formed() -> None:
    limit = 1_000_000
    pdus = list(hostile.endless_fragments(1, 16384, limit))
    stream = b""
    for pdu in pdus:
        assert len(pdu) - rawpdu.HEADER_LEN <= 16384
        ((_, header, fragment),) = rawpdu.pdvs(memoryview(pdu)[rawpdu.HEADER_LEN :])
        assert header == 0x00
        stream += bytes(fragment)
    assert len(stream) >= limit
    prefix, item = hostile.endless_unit()
    assert stream.startswith(prefix)
    body = stream[len(prefix) :]
    whole = len(body) // len(item)
    assert body[: whole * len(item)] == item * whole
    assert item.startswith(struct.pack("<HHL", 0xFFFE, 0xE000, len(item) - 8))


def test_n_create_rq_decodes_with_pynetdicom() -> None:
    pytest.importorskip("pynetdicom")
    from pynetdicom.dsutils import decode

    command = decode(BytesIO(rawpdu.n_create_rq(7, rawpdu.UPS_PUSH, "1.2.3")), True, True)
    assert (command.CommandField, command.MessageID) == (rawpdu.N_CREATE_RQ, 7)
    assert command.AffectedSOPInstanceUID == "1.2.3"
    assert command.CommandDataSetType == rawpdu.DATA_SET_PRESENT
