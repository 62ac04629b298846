"""PDU codec: round trips, captured bytes from an independent encoder, strict decoding."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.pdu import strategies as S
from ups.pdu.codec import decode_pdu, encode_pdu
from ups.pdu.enums import AbortReason, ContextResult, UserIdentityType
from ups.pdu.errors import PDUError
from ups.pdu.items import (
    PresentationContextAC,
    PresentationContextRQ,
    RoleSelection,
    UnknownSubItem,
    UserIdentityRQ,
    UserInformation,
)
from ups.pdu.pdus import PDU, PDV, AAbort, AAssociateAC, AAssociateRQ, PDataTF


def _roundtrip(pdu: PDU) -> PDU:
    raw = encode_pdu(pdu)
    pdu_type, length = struct.unpack_from(">BxL", raw)
    assert length == len(raw) - 6
    return decode_pdu(pdu_type, raw[6:])


@given(S.pdus)
@settings(max_examples=150)
def test_every_pdu_round_trips(pdu: PDU) -> None:
    assert _roundtrip(pdu) == pdu


def _rq() -> AAssociateRQ:
    return AAssociateRQ(
        called_ae_title="ANY-SCP",
        calling_ae_title="ECHOSCU",
        presentation_contexts=(
            PresentationContextRQ(1, "1.2.840.10008.1.1", ("1.2.840.10008.1.2",)),
            PresentationContextRQ(
                3, "1.2.840.10008.5.1.4.34.6.4", ("1.2.840.10008.1.2.1", "1.2.840.10008.1.2")
            ),
        ),
        user_information=UserInformation(
            max_length=16384,
            implementation_class_uid="1.2.826.0.1.3680043.9.3811.2.0.0",
            implementation_version_name="PYNETDICOM_200",
            role_selections=(RoleSelection("1.2.840.10008.5.1.4.34.6.4", False, True),),
            user_identity_rq=UserIdentityRQ(
                UserIdentityType.USERNAME_AND_PASSCODE, True, b"alice", b"pw"
            ),
        ),
    )


def test_associate_rq_matches_pynetdicom_bytes() -> None:
    """pynetdicom (an independent implementation) decodes our bytes and re-encodes them equal."""
    pdu_mod = pytest.importorskip("pynetdicom.pdu")
    raw = encode_pdu(_rq())
    theirs = pdu_mod.A_ASSOCIATE_RQ()
    theirs.decode(raw)
    assert theirs.called_ae_title == "ANY-SCP"
    assert theirs.calling_ae_title == "ECHOSCU"
    assert theirs.encode() == raw
    assert decode_pdu(1, theirs.encode()[6:]) == _rq()


def test_pdata_matches_pynetdicom_bytes() -> None:
    pdu_mod = pytest.importorskip("pynetdicom.pdu")
    ours = PDataTF((PDV(1, True, True, b"\x00\x01" * 10), PDV(1, False, False, b"abcd")))
    theirs = pdu_mod.P_DATA_TF()
    theirs.decode(encode_pdu(ours))
    items = theirs.presentation_data_value_items
    assert [(i.presentation_context_id, i.presentation_data_value[:1]) for i in items] == [
        (1, b"\x03"),
        (1, b"\x00"),
    ]
    assert theirs.encode() == encode_pdu(ours)


def test_unknown_items_are_skipped_and_unknown_sub_items_kept() -> None:
    raw = bytearray(encode_pdu(_rq())[6:])
    unknown_item = bytes((0x7E, 0, 0, 3)) + b"xyz"
    raw[68:68] = unknown_item  # after the fixed fields, before the application context
    decoded = decode_pdu(1, bytes(raw))
    assert decoded == _rq()
    rq = _rq()
    ui = rq.user_information
    with_unknown = AAssociateRQ(
        rq.called_ae_title,
        rq.calling_ae_title,
        rq.presentation_contexts,
        UserInformation(
            ui.max_length, ui.implementation_class_uid, unknown=(UnknownSubItem(0x70, b"q"),)
        ),
    )
    assert _roundtrip(with_unknown) == with_unknown


def test_reserved_bits_are_not_tested() -> None:
    raw = bytearray(encode_pdu(PDataTF((PDV(5, True, True, b"ab"),)))[6:])
    raw[5] |= 0xFC
    assert decode_pdu(4, bytes(raw)) == PDataTF((PDV(5, True, True, b"ab"),))
    assert decode_pdu(7, bytes((0xFF, 0xFF, 0, 9))) == AAbort()


@pytest.mark.parametrize(
    ("pdu_type", "body", "reason"),
    [
        (0x08, b"\x00" * 4, AbortReason.UNRECOGNIZED_PDU),
        (0x04, b"", AbortReason.INVALID_PDU_PARAMETER_VALUE),
        (0x04, b"\x00\x00\x00\x01\x01", AbortReason.INVALID_PDU_PARAMETER_VALUE),
        (0x04, b"\x00\x00\x00\x10\x01\x03ab", AbortReason.INVALID_PDU_PARAMETER_VALUE),
        (0x04, b"\x00\x00\x00\x02\x02\x03", AbortReason.INVALID_PDU_PARAMETER_VALUE),
        (0x07, b"\x00\x00\x02\x09", AbortReason.INVALID_PDU_PARAMETER_VALUE),
        (0x03, b"\x00\x09\x01\x01", AbortReason.INVALID_PDU_PARAMETER_VALUE),
        (0x05, b"\x00" * 5, AbortReason.INVALID_PDU_PARAMETER_VALUE),
    ],
)
def test_malformed_pdus_name_their_abort_reason(
    pdu_type: int, body: bytes, reason: AbortReason
) -> None:
    with pytest.raises(PDUError) as info:
        decode_pdu(pdu_type, body)
    assert info.value.reason == reason


def _rq_body_with(items: bytes) -> bytes:
    return encode_pdu(_rq())[6:74] + items


def test_rq_without_contexts_or_user_info_or_with_duplicates_is_refused() -> None:
    full = encode_pdu(_rq())[6:]
    app = full[68 : 68 + 25]
    assert app[0] == 0x10
    ui_start = full.index(b"\x50\x00", 93)
    contexts = full[93:ui_start]
    ui = full[ui_start:]
    cases = {
        "no contexts": (app + ui, AbortReason.INVALID_PDU_PARAMETER_VALUE),
        "no user info": (app + contexts, AbortReason.INVALID_PDU_PARAMETER_VALUE),
        "no app context": (contexts + ui, AbortReason.INVALID_PDU_PARAMETER_VALUE),
        "two app contexts": (app + app + contexts + ui, AbortReason.UNEXPECTED_PDU_PARAMETER),
        "two user infos": (app + contexts + ui + ui, AbortReason.UNEXPECTED_PDU_PARAMETER),
        "repeated context": (app + contexts + contexts + ui, AbortReason.UNEXPECTED_PDU_PARAMETER),
        "AC context in RQ": (
            app + b"\x21" + contexts[1:] + ui,
            AbortReason.UNEXPECTED_PDU_PARAMETER,
        ),
    }
    for name, (items, reason) in cases.items():
        with pytest.raises(PDUError) as info:
            decode_pdu(1, full[:68] + items)
        assert info.value.reason == reason, name


def test_item_running_past_its_pdu_is_invalid() -> None:
    full = bytearray(encode_pdu(_rq())[6:])
    full[70:72] = (0xFFFF).to_bytes(2, "big")
    with pytest.raises(PDUError) as info:
        decode_pdu(1, bytes(full))
    assert info.value.reason == AbortReason.INVALID_PDU_PARAMETER_VALUE


def test_even_context_id_is_invalid() -> None:
    raw = bytearray(encode_pdu(PDataTF((PDV(2, True, True, b"ab"),)))[6:])
    with pytest.raises(PDUError):
        decode_pdu(4, bytes(raw))


def test_non_ascii_calling_ae_in_rq_is_invalid_but_tolerated_in_ac() -> None:
    raw = bytearray(encode_pdu(_rq())[6:])
    raw[20] = 0xE9
    with pytest.raises(PDUError):
        decode_pdu(1, bytes(raw))
    ac = AAssociateAC(
        "A",
        "B",
        (PresentationContextAC(1, ContextResult.ACCEPTANCE, "1.2"),),
        _rq().user_information,
    )
    raw_ac = bytearray(encode_pdu(ac)[6:])
    raw_ac[4] = 0xE9
    assert isinstance(decode_pdu(2, bytes(raw_ac)), AAssociateAC)


def test_rejected_context_transfer_syntax_is_not_tested() -> None:
    ac = AAssociateAC(
        "A",
        "B",
        (PresentationContextAC(1, ContextResult.ABSTRACT_SYNTAX_NOT_SUPPORTED, ""),),
        _rq().user_information,
    )
    assert _roundtrip(ac) == ac


def test_secrets_do_not_appear_in_repr() -> None:
    assert "pw" not in repr(_rq().user_information.user_identity_rq).replace("positive", "")
    assert "alice" not in repr(_rq())


@given(st.integers(0, 255), st.binary(max_size=400))
@settings(max_examples=300)
def test_arbitrary_bytes_decode_or_raise_pdu_error(pdu_type: int, body: bytes) -> None:
    try:
        decode_pdu(pdu_type, body)
    except PDUError:
        pass


@given(S.associate_rq, st.data())
@settings(max_examples=60)
def test_mutated_associate_rq_decodes_or_raises_pdu_error(
    rq: AAssociateRQ, data: st.DataObject
) -> None:
    raw = bytearray(encode_pdu(rq)[6:])
    for _ in range(data.draw(st.integers(1, 4))):
        pos = data.draw(st.integers(0, len(raw) - 1))
        raw[pos] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(raw)))
    try:
        decode_pdu(1, bytes(raw[:cut]))
    except PDUError:
        pass
