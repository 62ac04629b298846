"""Framer: whole PDUs out of any chunking, limits enforced before buffering."""

from __future__ import annotations

import tracemalloc

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.pdu import strategies as S
from ups.pdu.codec import encode_pdu
from ups.pdu.enums import AbortReason
from ups.pdu.errors import PDUError, PDUTooLarge, UnrecognizedPDU
from ups.pdu.framer import PDATA_CEILING, Framer
from ups.pdu.pdus import PDU, PDV, AReleaseRQ, PDataTF


@given(st.lists(S.pdus, min_size=1, max_size=5), st.data())
@settings(max_examples=80)
def test_any_chunking_yields_the_same_pdus(pdus: list[PDU], data: st.DataObject) -> None:
    stream = b"".join(map(encode_pdu, pdus))
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=8)))
    framer = Framer(0)
    out: list[PDU] = []
    start = 0
    for cut in [*cuts, len(stream)]:
        framer.feed(stream[start:cut])
        start = cut
        while (pdu := framer.next_pdu()) is not None:
            out.append(pdu)
    assert out == pdus
    assert not framer.has_partial_pdu


def test_huge_length_field_is_refused_without_allocating() -> None:
    framer = Framer(16384)
    tracemalloc.start()
    try:
        framer.feed(b"\x04\x00\xff\xff\xff\xff\x00\x00")
        with pytest.raises(PDUTooLarge) as info:
            framer.next_pdu()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1024 * 1024
    assert info.value.reason == AbortReason.INVALID_PDU_PARAMETER_VALUE


@pytest.mark.parametrize("pdu_type", [1, 2])
def test_associate_pdus_have_their_own_cap(pdu_type: int) -> None:
    framer = Framer(16384, max_associate_length=4096)
    framer.feed(bytes((pdu_type, 0)) + (4097).to_bytes(4, "big"))
    with pytest.raises(PDUTooLarge):
        framer.next_pdu()


def test_pdata_over_announced_max_is_a_protocol_error_at_the_header() -> None:
    framer = Framer(100)
    ok = encode_pdu(PDataTF((PDV(1, True, True, b"x" * 94),)))
    assert len(ok) - 6 == 100
    framer.feed(ok)
    assert framer.next_pdu() is not None
    framer.feed(encode_pdu(PDataTF((PDV(1, True, True, b"x" * 96),)))[:6])
    with pytest.raises(PDUTooLarge):
        framer.next_pdu()


def test_unlimited_is_capped_at_the_ceiling() -> None:
    framer = Framer(0)
    assert framer.max_pdata_length == PDATA_CEILING
    framer.feed(b"\x04\x00" + (PDATA_CEILING + 1).to_bytes(4, "big"))
    with pytest.raises(PDUTooLarge):
        framer.next_pdu()


def test_unknown_type_is_refused_at_the_header() -> None:
    framer = Framer(16384)
    framer.feed(b"\x09\x00\x00\x00\x00\x10")
    with pytest.raises(UnrecognizedPDU) as info:
        framer.next_pdu()
    assert info.value.reason == AbortReason.UNRECOGNIZED_PDU


def test_fixed_length_pdu_with_wrong_length_is_invalid_at_the_header() -> None:
    framer = Framer(16384)
    framer.feed(b"\x05\x00\x00\x01\x00\x00")
    with pytest.raises(PDUError):
        framer.next_pdu()


def test_partial_pdu_is_reported_then_completed() -> None:
    framer = Framer(16384)
    raw = encode_pdu(AReleaseRQ())
    framer.feed(raw[:3])
    assert framer.next_pdu() is None
    assert framer.has_partial_pdu
    framer.feed(raw[3:])
    assert framer.next_pdu() == AReleaseRQ()


@given(st.binary(max_size=2000))
@settings(max_examples=300)
def test_arbitrary_stream_yields_pdus_or_pdu_error(stream: bytes) -> None:
    framer = Framer(1024, max_associate_length=1024)
    framer.feed(stream)
    try:
        while framer.next_pdu() is not None:
            pass
    except PDUError:
        pass
