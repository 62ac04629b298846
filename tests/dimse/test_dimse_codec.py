"""The group 0000 codec (ups.dimse.codec): PS3.7 §6.3 and Annex E."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ups.dimse import codec
from ups.dimse.codec import decode_command_set, encode_command_set
from ups.dimse.errors import DimseError, EncodeError, MalformedCommand


def element(tag: int, value: bytes, group: int = 0) -> bytes:
    return struct.pack("<HHI", group, tag, len(value)) + value


def with_length(body: bytes) -> bytes:
    return element(0, struct.pack("<I", len(body))) + body


def test_encode_pads_and_computes_group_length() -> None:
    raw = encode_command_set(
        {0x0000: 999, 0x0002: "1.2.3", 0x0100: 0x30, 0x0902: "abc", 0x0600: "AE"}
    )
    body = (
        element(0x0002, b"1.2.3\0")
        + element(0x0100, b"\x30\0")
        + element(0x0600, b"AE")
        + element(0x0902, b"abc ")
    )
    assert raw == with_length(body)


def test_decode_values() -> None:
    body = (
        element(0x0002, b"1.2.3\0")
        + element(0x0100, b"\x30\0")
        + element(0x0901, struct.pack("<HHHH", 0x0010, 0x0010, 0x7FE0, 0x0010))
        + element(0x0902, b"abc ")
        + element(0x1005, b"")
    )
    assert decode_command_set(with_length(body)) == {
        0x0002: "1.2.3",
        0x0100: 0x30,
        0x0901: (0x00100010, 0x7FE00010),
        0x0902: "abc",
        0x1005: (),
    }


def test_group_length_optional_on_decode() -> None:
    assert decode_command_set(element(0x0110, b"\x05\0")) == {0x0110: 5}


def test_unknown_tag_kept_raw_and_reencoded() -> None:
    raw = with_length(element(0x0010, b"xy") + element(0x0110, b"\x05\0"))
    decoded = decode_command_set(raw)
    assert decoded == {0x0010: b"xy", 0x0110: 5}
    assert encode_command_set(decoded) == raw


@pytest.mark.parametrize(
    "raw",
    [
        element(0x0110, b"\x05\0", group=0x0008),  # outside group 0000
        element(0x0110, b"\x05\0\0\0"),  # US of length 4
        element(0x0000, b"\x05\0"),  # UL of length 2
        element(0x0110, b"\x05\0")[:-1],  # overruns
        element(0x0110, b"\x05\0") + b"\0\0\0",  # truncated header
        element(0x0002, b"abc"),  # odd length
        element(0x0901, b"\0\0"),  # AT not a multiple of 4
        element(0x0002, b"1.\xff\0"),  # UI not ASCII
        element(0x0110, b"\1\0") + element(0x0110, b"\1\0"),  # duplicate
        with_length(element(0x0110, b"\1\0")) + b"\0\0",  # wrong group length
    ],
)
def test_malformed(raw: bytes) -> None:
    with pytest.raises(MalformedCommand) as info:
        decode_command_set(raw)
    assert info.value.status == 0x0212
    assert not info.value.abort


def test_malformed_carries_message_id() -> None:
    raw = element(0x0110, b"\x07\0") + element(0x0800, b"\1\0\0\0")
    with pytest.raises(MalformedCommand) as info:
        decode_command_set(raw)
    assert info.value.message_id == 7


@pytest.mark.parametrize(
    ("tag", "value"),
    [
        (0x0110, 70000),
        (0x0110, "7"),
        (0x0002, 5),
        (0x0002, "1.2.é"),
        (0x0901, (1 << 32,)),
        (0x0901, [1]),
        (0x0010, b"odd"),
        (0x0010, "text"),
    ],
)
def test_encode_rejects_bad_values(tag: int, value: object) -> None:
    with pytest.raises(EncodeError):
        encode_command_set({tag: value})  # type: ignore[dict-item]


def test_command_has_dataset() -> None:
    assert codec.command_has_dataset({0x0800: 0x0001})
    assert codec.command_has_dataset({0x0800: 0x0000})
    assert not codec.command_has_dataset({0x0800: 0x0101})
    with pytest.raises(MalformedCommand):
        codec.command_has_dataset({})


@given(st.binary(max_size=200))
def test_fuzz_arbitrary_bytes(raw: bytes) -> None:
    try:
        decode_command_set(raw)
    except DimseError:
        pass


_TAGS = st.sampled_from(sorted(codec.COMMAND_ELEMENTS)) | st.integers(0, 0xFFFF)


@given(st.lists(st.tuples(_TAGS, st.binary(max_size=8)), max_size=6))
def test_fuzz_structured_elements(items: list[tuple[int, bytes]]) -> None:
    raw = b"".join(element(tag, value) for tag, value in items)
    try:
        decoded = decode_command_set(raw)
    except DimseError:
        return
    # Whatever decodes re-encodes to something that decodes the same.
    assert decode_command_set(encode_command_set(decoded)) == decoded
