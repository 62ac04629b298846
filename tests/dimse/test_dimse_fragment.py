"""PDV packing and reassembly (ups.dimse.fragment): PS3.8 Annex E, PS3.7 §8."""

from __future__ import annotations

import struct
import tracemalloc
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.dimse.test_dimse_messages import messages
from ups.dimse import codec
from ups.dimse.errors import EncodeError, FragmentError
from ups.dimse.fragment import (
    DEFAULT_MAX_PDATA_LENGTH,
    Reassembler,
    RejectedMessage,
    encode_pdata,
)
from ups.dimse.messages import CEchoRQ, Message, NEventReportRQ, encode_command
from ups.pdu.pdus import PDV, PDataTF

EVENT = NEventReportRQ(
    7, "1.2.840.10008.5.1.4.34.6.4", "1.2.3.4", 1, dataset=b"\x08\x00\x16\x00" + b"\0" * 96
)


def parse(stream: bytes) -> list[tuple[int, PDataTF]]:
    """Split P-DATA-TF bytes into (variable-field length, PDU) pairs."""
    out = []
    pos = 0
    while pos < len(stream):
        kind, length = struct.unpack_from(">BxI", stream, pos)
        assert kind == 0x04
        end = pos + 6 + length
        pos += 6
        pdvs = []
        while pos < end:
            item_length, cid, control = struct.unpack_from(">IBB", stream, pos)
            pdvs.append(
                PDV(
                    cid,
                    bool(control & 1),
                    bool(control & 2),
                    stream[pos + 6 : pos + 4 + item_length],
                )
            )
            pos += 4 + item_length
        assert pos == end
        out.append((length, PDataTF(tuple(pdvs))))
    return out


def roundtrip(msg: Message, max_length: int, pack: bool = True) -> list[tuple[int, PDataTF]]:
    stream = encode_pdata(3, encode_command(msg), msg.dataset, max_length, pack=pack)
    pdus = parse(stream)
    reassembler = Reassembler({3})
    got = []
    for _, pdu in pdus:
        got.extend(reassembler.feed(pdu))
    assert got == [(3, msg)]
    assert reassembler.idle
    return pdus


def test_hot_path_is_one_pdu_with_two_pdvs() -> None:
    pdus = roundtrip(EVENT, 16384)
    assert len(pdus) == 1
    ((_, pdu),) = pdus
    assert [(p.is_command, p.is_last) for p in pdu.pdvs] == [(True, True), (False, True)]


def test_pdv1_sends_one_pdv_per_pdu() -> None:
    pdus = roundtrip(EVENT, 16384, pack=False)
    assert [len(pdu.pdvs) for _, pdu in pdus] == [1, 1]


def test_no_dataset_one_pdv() -> None:
    pdus = roundtrip(CEchoRQ(1), 0)
    assert len(pdus) == 1 and len(pdus[0][1].pdvs) == 1


def test_zero_means_default_ceiling() -> None:
    big = NEventReportRQ(1, "1.2", "1.2.3", 1, dataset=b"\0" * (DEFAULT_MAX_PDATA_LENGTH + 10))
    pdus = roundtrip(big, 0)
    assert len(pdus) == 2
    assert all(length <= DEFAULT_MAX_PDATA_LENGTH for length, _ in pdus)


@pytest.mark.parametrize("bad", [-1, 1, 7])
def test_limit_too_small(bad: int) -> None:
    with pytest.raises(EncodeError):
        encode_pdata(1, encode_command(CEchoRQ(1)), None, bad)


@settings(max_examples=150, deadline=None)
@given(
    msg=messages,
    max_length=st.integers(8, 400) | st.just(0),
    size=st.none() | st.integers(0, 3000),
    pack=st.booleans(),
)
def test_fragmentation_properties(
    msg: Message, max_length: int, size: int | None, pack: bool
) -> None:
    if size is not None:
        msg = replace(msg, dataset=(bytes(range(256)) * (size // 256 + 1))[:size])
    pdus = roundtrip(msg, max_length, pack)
    limit = max_length or DEFAULT_MAX_PDATA_LENGTH
    for length, pdu in pdus:
        assert length <= limit
        assert 0 < len(pdu.pdvs)
        if not pack:
            assert len(pdu.pdvs) == 1
    pdvs = [pdv for _, pdu in pdus for pdv in pdu.pdvs]
    for pdv in pdvs:
        if not pdv.is_last:
            assert len(pdv.data) % 2 == 0 and pdv.data
    command_pdvs = [pdv for pdv in pdvs if pdv.is_command]
    assert pdvs[: len(command_pdvs)] == command_pdvs  # command first
    assert [p.is_last for p in command_pdvs].count(True) == 1 and command_pdvs[-1].is_last


# --- reassembly errors ---------------------------------------------------------------

COMMAND = encode_command(EVENT)
ECHO = encode_command(CEchoRQ(1))


def feed_all(*pdvs: PDV, accepted: object = frozenset({1, 3})) -> list[object]:
    reassembler = Reassembler(accepted)  # type: ignore[arg-type]
    return list(reassembler.feed(PDataTF(pdvs)))


@pytest.mark.parametrize(
    "pdvs",
    [
        pytest.param((PDV(1, False, True, b"ab"),), id="data-before-command"),
        pytest.param(
            (PDV(1, True, False, COMMAND[:10]), PDV(1, False, True, b"ab")), id="data-mid-command"
        ),
        pytest.param((PDV(2, True, True, ECHO),), id="unaccepted-context"),
        pytest.param(
            (PDV(1, True, False, COMMAND[:10]), PDV(3, True, True, COMMAND[10:])),
            id="context-change",
        ),
        pytest.param(
            (PDV(1, True, True, COMMAND), PDV(3, False, True, b"ab")), id="context-change-data"
        ),
        pytest.param(
            (PDV(1, True, True, ECHO), PDV(1, False, True, b"ab")), id="data-after-no-dataset"
        ),
        pytest.param((PDV(1, True, True, COMMAND), PDV(1, True, True, ECHO)), id="command-twice"),
        pytest.param((PDV(1, True, True, b"\x01\x00"),), id="undecodable-command"),
        pytest.param(
            (PDV(1, True, True, codec.encode_command_set({0x0100: 0x30})),), id="no-dataset-type"
        ),
    ],
)
def test_protocol_errors(pdvs: tuple[PDV, ...]) -> None:
    with pytest.raises(FragmentError) as info:
        feed_all(*pdvs)
    assert info.value.abort


def test_command_too_large() -> None:
    reassembler = Reassembler({1}, max_command_length=100)
    with pytest.raises(FragmentError):
        reassembler.feed(PDataTF((PDV(1, True, False, b"\0" * 102),)))


def test_dataset_too_large() -> None:
    reassembler = Reassembler({1}, max_dataset_length=10)
    with pytest.raises(FragmentError):
        reassembler.feed(PDataTF((PDV(1, True, True, COMMAND), PDV(1, False, True, b"\0" * 12))))


def test_broken_reassembler_stays_broken() -> None:
    reassembler = Reassembler({1})
    with pytest.raises(FragmentError):
        reassembler.feed(PDataTF((PDV(1, False, True, b"ab"),)))
    with pytest.raises(FragmentError):
        reassembler.feed(PDataTF((PDV(1, True, True, ECHO),)))


def test_predicate_context_check() -> None:
    got = Reassembler(lambda cid: cid == 5).feed(PDataTF((PDV(5, True, True, ECHO),)))
    assert got == [(5, CEchoRQ(1))]


def test_unknown_operation_is_rejected_not_aborted() -> None:
    move = codec.encode_command_set(
        {0x0002: "1.2", 0x0100: 0x0021, 0x0110: 9, 0x0600: "DEST", 0x0700: 0, 0x0800: 1}
    )
    reassembler = Reassembler({1})
    got = reassembler.feed(
        PDataTF((PDV(1, True, True, move), PDV(1, False, False, b"ab"), PDV(1, False, True, b"cd")))
    )
    ((cid, rejected),) = got
    assert cid == 1 and isinstance(rejected, RejectedMessage)
    assert rejected.error.status == 0x0211 and rejected.error.message_id == 9
    assert rejected.command_field == 0x0021 and rejected.dataset == b"abcd"
    # The reassembler carries on with the next message.
    assert reassembler.feed(PDataTF((PDV(1, True, True, ECHO),))) == [(1, CEchoRQ(1))]


def test_several_messages_in_one_pdu_and_split_across_pdus() -> None:
    reassembler = Reassembler({1})
    got = reassembler.feed(
        PDataTF(
            (
                PDV(1, True, True, ECHO),
                PDV(1, True, True, COMMAND),
                PDV(1, False, False, EVENT.dataset[:50]),  # type: ignore[index]
            )
        )
    )
    assert got == [(1, CEchoRQ(1))]
    assert not reassembler.idle
    got = reassembler.feed(PDataTF((PDV(1, False, True, EVENT.dataset[50:]),)))  # type: ignore[index]
    assert got == [(1, EVENT)]


_PIECES = st.sampled_from([ECHO, COMMAND, COMMAND[:20], COMMAND[20:], b"", b"ab"]) | st.binary(
    max_size=40
)
_PDVS = st.builds(PDV, st.integers(1, 3), st.booleans(), st.booleans(), _PIECES)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.lists(_PDVS, min_size=1, max_size=4), max_size=5))
def test_fuzz_pdvs_give_messages_or_fragment_error(pdus: list[list[PDV]]) -> None:
    reassembler = Reassembler({1, 3})
    try:
        for pdvs in pdus:
            for cid, item in reassembler.feed(PDataTF(tuple(pdvs))):
                assert cid in (1, 3)
                assert isinstance(item, RejectedMessage) or item.COMMAND_FIELD
    except FragmentError:
        pass


def test_a_data_set_cut_off_at_its_limit_leaves_nothing_behind() -> None:
    """A peer that never ends its data set costs at most the limit, and only until the
    limit is crossed: the reassembler keeps no buffer and no frame (via a kept exception)."""
    limit = 4 * 1024 * 1024
    reassembler = Reassembler({1}, max_dataset_length=limit)
    command = encode_command(NEventReportRQ(1, "1.2.3", "1.2.3.4", 1, b"\0\0"))
    reassembler.feed(PDataTF((PDV(1, True, True, command),)))
    chunk = PDataTF((PDV(1, False, False, bytes(16 * 1024)),))
    tracemalloc.start()
    try:
        with pytest.raises(FragmentError, match="exceeds"):
            for _ in range(limit // (16 * 1024) + 2):
                reassembler.feed(chunk)
        held, _peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert held < 256 * 1024, held
    with pytest.raises(FragmentError, match="already failed"):
        reassembler.feed(chunk)


def test_fragments_of_a_data_set_are_joined_in_order() -> None:
    reassembler = Reassembler({1})
    parts = [bytes([i]) * 10 for i in range(5)]
    command = encode_command(NEventReportRQ(1, "1.2.3", "1.2.3.4", 1, b"".join(parts)))
    reassembler.feed(PDataTF((PDV(1, True, True, command),)))
    done = []
    for i, part in enumerate(parts):
        done += reassembler.feed(PDataTF((PDV(1, False, i == len(parts) - 1, part),)))
    assert [getattr(m, "dataset", None) for _, m in done] == [b"".join(parts)]
