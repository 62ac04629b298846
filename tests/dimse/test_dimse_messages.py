"""DIMSE messages (ups.dimse.messages): round trips and bytes written by pynetdicom."""

from __future__ import annotations

from io import BytesIO
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pynetdicom import dimse_messages as pnd_messages
from pynetdicom import dimse_primitives as pnd_primitives
from pynetdicom.dsutils import encode as pnd_encode

from ups.dimse import codec
from ups.dimse.errors import EncodeError, MalformedCommand, UnrecognizedOperation
from ups.dimse.messages import (
    MESSAGE_TYPES,
    CCancelRQ,
    CEchoRQ,
    CEchoRSP,
    CFindRQ,
    CFindRSP,
    Message,
    NActionRQ,
    NEventReportRQ,
    NEventReportRSP,
    NGetRQ,
    decode_message,
    encode_command,
    is_request,
)

# --- strategies (also used by test_dimse_fragment) ---------------------------------
uids = st.lists(st.integers(0, 10**12), min_size=1, max_size=8).map(
    lambda parts: ".".join(map(str, parts))
)
us = st.integers(0, 0xFFFF)
tags = st.lists(st.integers(0, 0xFFFFFFFF), max_size=4).map(tuple)
_TEXT = "".join(chr(c) for c in range(0x20, 0x7F) if chr(c) != "\\")
lo = st.text(_TEXT, max_size=64).map(str.strip)
ae = st.text(_TEXT, max_size=16).map(str.strip)
datasets = st.none() | st.binary(max_size=64)

_BY_VR: dict[str, st.SearchStrategy[Any]] = {"UI": uids, "US": us, "AT": tags, "LO": lo, "AE": ae}
# Group 0000 tags outside the Annex E dictionary (retired ones), for ``extra``.
UNKNOWN_TAGS = [0x0001, 0x0010, 0x0200, 0x0300, 0x0400, 0x0850, 0x0860, 0x5010]
extras = st.lists(
    st.tuples(
        st.sampled_from(UNKNOWN_TAGS), st.binary(max_size=12).map(lambda b: b[: len(b) & ~1])
    ),
    max_size=3,
    unique_by=lambda item: item[0],
).map(lambda items: tuple(sorted(items)))


def message_strategy(cls: type[Message]) -> st.SearchStrategy[Message]:
    kwargs: dict[str, st.SearchStrategy[Any]] = {}
    for tag, attr, required in cls._FIELDS:
        value = _BY_VR[codec.COMMAND_ELEMENTS[tag][1]]
        kwargs[attr] = value if required else st.none() | value
    return st.builds(cls, dataset=datasets, extra=extras, **kwargs)


messages: st.SearchStrategy[Message] = st.one_of(
    [message_strategy(cls) for cls in MESSAGE_TYPES.values()]
)


UPS_EVENT = "1.2.840.10008.5.1.4.34.6.4"
UPS_PUSH = "1.2.840.10008.5.1.4.34.6.1"
IUID = "1.2.826.0.1.3680043.8.498.1234567890"


@settings(max_examples=200, deadline=None)
@given(data=messages)
def test_round_trip_any(data: Message) -> None:
    assert decode_message(encode_command(data), data.dataset) == data


@pytest.mark.parametrize("cls", list(MESSAGE_TYPES.values()), ids=lambda c: c.__name__)
def test_round_trip_each_type(cls: type[Message]) -> None:
    @settings(max_examples=30, deadline=None)
    @given(message_strategy(cls))
    def check(msg: Message) -> None:
        raw = encode_command(msg)
        assert decode_message(raw, msg.dataset) == msg
        elements = codec.decode_command_set(raw)
        assert elements[codec.COMMAND_FIELD] == cls.COMMAND_FIELD
        assert (elements[codec.COMMAND_DATA_SET_TYPE] == 0x0101) == (msg.dataset is None)

    check()


def test_is_request() -> None:
    assert is_request(CEchoRQ(1))
    assert is_request(CCancelRQ(1))
    assert not is_request(CEchoRSP(1))


def test_unknown_command_field() -> None:
    raw = codec.encode_command_set({0x0100: 0x0021, 0x0110: 9, 0x0800: 0x0101})
    with pytest.raises(UnrecognizedOperation) as info:
        decode_message(raw, None)
    assert info.value.status == 0x0211
    assert info.value.message_id == 9


def test_missing_required_element() -> None:
    raw = codec.encode_command_set({0x0100: 0x0030, 0x0110: 3, 0x0800: 0x0101})
    with pytest.raises(MalformedCommand) as info:
        decode_message(raw, None)
    assert info.value.status == 0x0212
    assert info.value.message_id == 3


@pytest.mark.parametrize("dataset", [None, b"\0\0"])
def test_dataset_type_must_agree(dataset: bytes | None) -> None:
    msg = CFindRQ(1, UPS_PUSH, dataset=None if dataset else b"ab")
    with pytest.raises(MalformedCommand):
        decode_message(encode_command(msg), dataset)


def test_extra_clash_and_bad_value() -> None:
    with pytest.raises(EncodeError):
        encode_command(CEchoRQ(1, extra=((0x0110, 5),)))
    with pytest.raises(EncodeError):
        encode_command(CEchoRQ(70000))


def test_known_element_foreign_to_the_message_goes_to_extra() -> None:
    raw = codec.encode_command_set(
        {0x0002: "1.2", 0x0100: 0x0030, 0x0110: 3, 0x0700: 1, 0x0800: 0x0101}
    )
    msg = decode_message(raw, None)
    assert msg == CEchoRQ(3, "1.2", extra=((0x0700, 1),))
    assert encode_command(msg) == raw


# --- bytes written by pynetdicom (used here only, as an independent encoder) -----------


def pynetdicom_command(rq_class: str, primitive: Any) -> bytes:
    message = getattr(pnd_messages, rq_class)()
    message.primitive_to_message(primitive)
    raw = pnd_encode(message.command_set, True, True)
    assert isinstance(raw, bytes)
    return raw


def echo_rq() -> tuple[bytes, Message]:
    p: Any = pnd_primitives.C_ECHO()
    p.MessageID = 7
    p.AffectedSOPClassUID = "1.2.840.10008.1.1"
    return pynetdicom_command("C_ECHO_RQ", p), CEchoRQ(7)


def echo_rsp() -> tuple[bytes, Message]:
    p: Any = pnd_primitives.C_ECHO()
    p.MessageIDBeingRespondedTo = 7
    p.AffectedSOPClassUID = "1.2.840.10008.1.1"
    p.Status = 0x0000
    return pynetdicom_command("C_ECHO_RSP", p), CEchoRSP(7, 0, "1.2.840.10008.1.1")


def event_report_rq() -> tuple[bytes, Message]:
    p: Any = pnd_primitives.N_EVENT_REPORT()
    p.MessageID = 65535
    p.AffectedSOPClassUID = UPS_EVENT
    p.AffectedSOPInstanceUID = IUID
    p.EventTypeID = 5
    p.EventInformation = BytesIO(b"\x08\x00\x16\x00\x00\x00\x00\x00")
    return pynetdicom_command("N_EVENT_REPORT_RQ", p), NEventReportRQ(
        65535, UPS_EVENT, IUID, 5, dataset=b"\x08\x00\x16\x00\x00\x00\x00\x00"
    )


def event_report_rsp() -> tuple[bytes, Message]:
    p: Any = pnd_primitives.N_EVENT_REPORT()
    p.MessageIDBeingRespondedTo = 12
    p.AffectedSOPClassUID = UPS_EVENT
    p.AffectedSOPInstanceUID = IUID
    p.EventTypeID = 1
    p.Status = 0x0000
    return pynetdicom_command("N_EVENT_REPORT_RSP", p), NEventReportRSP(
        12, 0, UPS_EVENT, IUID, event_type_id=1
    )


def action_rq() -> tuple[bytes, Message]:
    p: Any = pnd_primitives.N_ACTION()
    p.MessageID = 3
    p.RequestedSOPClassUID = UPS_PUSH
    p.RequestedSOPInstanceUID = IUID
    p.ActionTypeID = 3
    p.ActionInformation = BytesIO(b"\0\0\0\0")
    return pynetdicom_command("N_ACTION_RQ", p), NActionRQ(
        3, UPS_PUSH, IUID, 3, dataset=b"\0\0\0\0"
    )


def get_rq() -> tuple[bytes, Message]:
    p: Any = pnd_primitives.N_GET()
    p.MessageID = 4
    p.RequestedSOPClassUID = UPS_PUSH
    p.RequestedSOPInstanceUID = IUID
    p.AttributeIdentifierList = [0x00741000, 0x00081195]
    return pynetdicom_command("N_GET_RQ", p), NGetRQ(
        4, UPS_PUSH, IUID, attribute_identifier_list=(0x00741000, 0x00081195)
    )


def find_rsp_failure() -> tuple[bytes, Message]:
    p: Any = pnd_primitives.C_FIND()
    p.MessageIDBeingRespondedTo = 5
    p.AffectedSOPClassUID = UPS_PUSH
    p.Status = 0xA900
    p.ErrorComment = "bad key"
    p.OffendingElement = [0x00100010]
    return pynetdicom_command("C_FIND_RSP", p), CFindRSP(
        5, 0xA900, UPS_PUSH, error_comment="bad key", offending_element=(0x00100010,)
    )


FIXTURES = [echo_rq, echo_rsp, event_report_rq, event_report_rsp, action_rq, get_rq]


@pytest.mark.parametrize("make", FIXTURES, ids=lambda f: f.__name__)
def test_pynetdicom_bytes_both_ways(make: Any) -> None:
    raw, msg = make()
    assert encode_command(msg) == raw
    assert decode_message(raw, msg.dataset) == msg


def test_pynetdicom_failure_response_decodes() -> None:
    raw, msg = find_rsp_failure()
    assert decode_message(raw, None) == msg
    assert decode_message(encode_command(msg), None) == msg


def test_echo_rq_literal_bytes() -> None:
    # C-ECHO-RQ, Message ID 7, written out by hand from PS3.7 Annex E.
    literal = bytes.fromhex(
        "00000000" "04000000" "38000000"
        "00000200" "12000000" "312e322e3834302e31303030382e312e3100"
        "00000001" "02000000" "3000"
        "00001001" "02000000" "0700"
        "00000008" "02000000" "0101"
    )  # fmt: skip
    assert encode_command(CEchoRQ(7)) == literal
    assert decode_message(literal, None) == CEchoRQ(7)
