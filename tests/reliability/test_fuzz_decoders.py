"""Structured fuzzing of every decoder: mutated valid inputs and arbitrary bytes.

Each layer may raise only its own error: ``PDUError`` from ``ups.pdu``, ``DimseError``
from ``ups.dimse``, ``UserInputError`` from the services readers; the association core
(``pdu.machine.UpperLayer``) raises nothing at all for received bytes, because PS3.8
Table 9-10 turns every bad PDU into an A-ABORT. What decodes must re-encode to the
same value. Memory stays bounded whatever a length field claims.
"""

from __future__ import annotations

import json
import struct
import tracemalloc
import zlib
from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from tests.dimse.test_dimse_messages import messages
from tests.pdu import strategies as S
from tests.reliability.fuzz_atheris import (
    check_dimse_stream,
    check_machine,
    check_message_roundtrip,
    check_pdu_stream,
    one_input,
    seeds,
)
from ups.cli.attrpath import parse_assignment, parse_path
from ups.cli.files import UserInputError, read_dataset_bytes
from ups.dimse.codec import decode_command_set
from ups.dimse.datasets import (
    DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN,
    TRANSFER_SYNTAXES,
    LazyDataset,
    decode_dataset,
    encode_dataset,
)
from ups.dimse.errors import DatasetError, DimseError, FragmentError, MalformedCommand
from ups.dimse.fragment import Reassembler, encode_pdata
from ups.dimse.messages import CEchoRQ, Message, NActionRQ, decode_message, encode_command
from ups.pdu.codec import decode_pdu, encode_pdu
from ups.pdu.errors import PDUError, PDUTooLarge
from ups.pdu.events import AssociateIndication, TransportClosed
from ups.pdu.framer import Framer
from ups.pdu.fsm import State
from ups.pdu.machine import UpperLayer
from ups.pdu.negotiation import AcceptorPolicy, SyntaxSupport, negotiate
from ups.pdu.pdus import PDU, AAssociateAC, AAssociateRJ, AAssociateRQ, PDataTF

FUZZ = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SLOW_FUZZ = settings(FUZZ, max_examples=30)
"""For strategies that build whole A-ASSOCIATE PDUs, which are costly to generate."""
MiB = 1024 * 1024

# pydicom warns about each odd value it meets; mutated data sets are full of them.
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


# --------------------------------------------------------------------------- mutation


@st.composite
def mutations(draw: st.DrawFn, raw: bytes) -> bytes:
    """``raw`` with 1-4 edits of the kinds that break decoders: bytes set, cut, grown,
    bits flipped, and 2- or 4-byte fields overwritten with boundary values."""
    data = bytearray(raw)
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(("set", "cut", "grow", "flip", "field", "truncate")))
        pos = draw(st.integers(0, max(len(data) - 1, 0)))
        if kind == "set" and data:
            data[pos] = draw(st.integers(0, 255))
        elif kind == "cut":
            del data[pos : pos + draw(st.integers(1, 16))]
        elif kind == "grow":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=16))
        elif kind == "flip" and data:
            data[pos] ^= 1 << draw(st.integers(0, 7))
        elif kind == "field":
            value = draw(st.sampled_from((0, 1, 2, 3, 5, 6, 7, 0x7FFF, 0xFFFF, 0xFFFFFFFF)))
            width = draw(st.sampled_from((2, 4)))
            order = draw(st.sampled_from((">", "<")))
            fmt = order + ("H" if width == 2 else "L")
            data[pos : pos + width] = struct.pack(fmt, value & ((1 << (8 * width)) - 1))
        elif kind == "truncate":
            del data[pos:]
    return bytes(data)


def mutated(source: st.SearchStrategy[bytes]) -> st.SearchStrategy[bytes]:
    return source.flatmap(lambda raw: mutations(raw))


control = st.integers(0, 255).map(lambda n: bytes((n,)))


def only(kind: type[Exception] | tuple[type[Exception], ...], call: Callable[[], object]) -> None:
    try:
        call()
    except kind:
        pass


# --------------------------------------------------------------------------- ups.pdu

pdu_bytes = S.pdus.map(encode_pdu)


@given(control, mutated(st.lists(pdu_bytes, min_size=1, max_size=3).map(b"".join)))
@SLOW_FUZZ
def test_mutated_pdu_streams_decode_or_raise_pdu_error(head: bytes, stream: bytes) -> None:
    check_pdu_stream(head + stream)


@given(mutated(pdu_bytes))
@SLOW_FUZZ
def test_decode_pdu_on_mutated_bodies(raw: bytes) -> None:
    if len(raw) < 6:
        return
    try:
        pdu = decode_pdu(raw[0], raw[6:])
    except PDUError:
        return
    if isinstance(pdu, AAssociateRQ):
        assert decode_pdu(raw[0], encode_pdu(pdu)[6:]) == pdu


@given(st.binary(max_size=512))
@FUZZ
def test_arbitrary_bytes_through_every_decoder(data: bytes) -> None:
    one_input(data)


@pytest.mark.parametrize("name", sorted(seeds()))
def test_seed_corpus_is_clean(name: str) -> None:
    """Each checked-in seed is valid input: it decodes without any error at all."""
    from tests.reliability.fuzz_atheris import decode_pdu_stream

    assert decode_pdu_stream(seeds()[name])
    one_input(seeds()[name])


@given(control, mutated(st.sampled_from(sorted(seeds().values())).map(lambda b: b[1:])))
@FUZZ
def test_mutated_seed_sessions_in_the_association_core(head: bytes, stream: bytes) -> None:
    check_machine(head + stream)


def _established_acceptor() -> UpperLayer:
    core = UpperLayer(requestor=False, max_pdata_length=16384, artim_timeout=5.0)
    core.transport_connected(0.0)
    core.receive_data(seeds()["associate_rq"][1:], 0.0)
    (event,) = core.events()
    assert isinstance(event, AssociateIndication)
    answer, _ = negotiate(event.rq, POLICY)
    assert isinstance(answer, AAssociateAC)
    core.accept(answer, 0.0)
    core.data_to_send()
    assert core.state is State.STA6
    return core


@given(mutated(st.sampled_from(sorted(seeds().values())).map(lambda b: b[1:])))
@FUZZ
def test_established_core_survives_garbage(stream: bytes) -> None:
    core = _established_acceptor()
    core.receive_data(stream, 1.0)
    core.data_to_send()
    events = core.events()
    if core.close_transport:
        assert isinstance(events[-1], TransportClosed)
    else:
        assert core.state in (State.STA6, State.STA8, State.STA13)
    core.transport_closed(2.0)
    assert core.state is State.STA1


POLICY = AcceptorPolicy(
    ae_titles=None,
    supported={
        "1.2.840.10008.1.1": SyntaxSupport(("1.2.840.10008.1.2",)),
        "1.2.840.10008.5.1.4.34.6.1": SyntaxSupport(
            ("1.2.840.10008.1.2", "1.2.840.10008.1.2.1"), requestor_scp=True
        ),
    },
    max_pdata_length=16384,
    implementation_class_uid="1.2.3.4",
    max_ops_invoked=0,
    max_ops_performed=4,
)


@given(mutated(S.associate_rq.map(encode_pdu)))
@SLOW_FUZZ
def test_negotiation_answers_every_decodable_request(raw: bytes) -> None:
    """Whatever RQ decodes gets an AC or RJ that encodes, never an exception."""
    if len(raw) < 6:
        return
    try:
        rq = decode_pdu(raw[0], raw[6:])
    except PDUError:
        return
    if not isinstance(rq, AAssociateRQ):
        return
    answer, negotiated = negotiate(rq, POLICY)
    assert isinstance(answer, AAssociateAC | AAssociateRJ)
    back: PDU = decode_pdu(encode_pdu(answer)[0], encode_pdu(answer)[6:])
    assert back == answer
    if negotiated is not None:
        assert set(negotiated.contexts) <= {pc.context_id for pc in rq.presentation_contexts}


# --------------------------------------------------------------------------- ups.dimse


@given(mutated(messages.map(encode_command)))
@FUZZ
def test_mutated_command_sets_raise_only_malformed_command(raw: bytes) -> None:
    only(MalformedCommand, lambda: decode_command_set(raw))
    try:
        message = decode_message(raw, None)
    except DimseError:
        return
    check_message_roundtrip(message)


@st.composite
def pdata_streams(draw: st.DrawFn) -> bytes:
    msgs: list[Message] = draw(st.lists(messages, min_size=1, max_size=3))
    limit = draw(st.sampled_from((0, 8, 9, 14, 64, 16384)))
    pack = draw(st.booleans())
    context = draw(st.sampled_from((1, 3, 5, 7)))
    return b"".join(
        encode_pdata(context, encode_command(m), m.dataset, limit, pack=pack) for m in msgs
    )


@given(control, mutated(pdata_streams()))
@FUZZ
def test_mutated_pdata_streams_reassemble_or_raise_dimse_error(head: bytes, raw: bytes) -> None:
    check_dimse_stream(head + raw)


@given(pdata_streams(), st.data())
@FUZZ
def test_reassembler_is_broken_for_good_after_a_fragment_error(
    raw: bytes, data: st.DataObject
) -> None:
    framer = Framer(0)
    framer.feed(data.draw(mutations(raw)))
    reassembler = Reassembler({1, 3, 5}, max_command_length=4096, max_dataset_length=4096)
    failed = False
    try:
        while (pdu := framer.next_pdu()) is not None:
            if not isinstance(pdu, PDataTF):
                continue  # the core routes those elsewhere
            if failed:
                with pytest.raises(FragmentError):
                    reassembler.feed(pdu)
                continue
            try:
                reassembler.feed(pdu)
            except FragmentError:
                failed = True
    except PDUError:
        pass


def _workitem(depth: int = 2) -> Dataset:
    ds = Dataset()
    ds.SOPClassUID = "1.2.840.10008.5.1.4.34.6.1"
    ds.SOPInstanceUID = "1.2.826.0.1.3680043.2.1125.7"
    ds.PatientName = "Doe^Jane"
    ds.ProcedureStepState = "SCHEDULED"
    ds.ScheduledProcedureStepPriority = "MEDIUM"
    ds.ScheduledProcedureStepStartDateTime = "20240102030405"
    inner = Dataset()
    inner.CodeValue = "X1"
    inner.CodingSchemeDesignator = "DCM"
    for _ in range(depth):
        outer = Dataset()
        outer.CodeValue = "Y"
        outer.CodingSchemeDesignator = "99TEST"
        outer.ScheduledWorkitemCodeSequence = Sequence([inner])
        inner = outer
    ds.ScheduledWorkitemCodeSequence = Sequence([inner])
    ds.ReferencedRequestSequence = Sequence([])
    return ds


ENCODED = {syntax: encode_dataset(_workitem(), syntax) for syntax in TRANSFER_SYNTAXES}


@given(st.sampled_from(TRANSFER_SYNTAXES), st.data())
@FUZZ
def test_mutated_data_sets_raise_only_dataset_error(syntax: str, data: st.DataObject) -> None:
    raw = data.draw(mutations(ENCODED[syntax]))
    only(DatasetError, lambda: decode_dataset(raw, syntax))
    lazy = LazyDataset(raw, syntax)
    only(DatasetError, lambda: lazy.dataset)


@given(st.binary(max_size=256), st.sampled_from(TRANSFER_SYNTAXES))
@FUZZ
def test_arbitrary_data_set_bytes_raise_only_dataset_error(raw: bytes, syntax: str) -> None:
    only(DatasetError, lambda: decode_dataset(raw, syntax))


# --------------------------------------------------------------------------- ups.services

_JSON = json.dumps(_workitem().to_json_dict()).encode()
_XML = (
    b'<?xml version="1.0"?><NativeDicomModel>'
    b'<DicomAttribute tag="00100010" vr="PN" keyword="PatientName">'
    b'<PersonName number="1"><Alphabetic><FamilyName>Doe</FamilyName></Alphabetic>'
    b"</PersonName></DicomAttribute>"
    b'<DicomAttribute tag="00741000" vr="CS"><Value number="1">SCHEDULED</Value>'
    b"</DicomAttribute></NativeDicomModel>"
)
_FILES = (_JSON, _XML, ENCODED["1.2.840.10008.1.2.1"])


@given(mutated(st.sampled_from(_FILES)))
@FUZZ
def test_mutated_data_set_files_raise_only_user_input_error(raw: bytes) -> None:
    only(UserInputError, lambda: read_dataset_bytes(raw, "fuzz.in"))


@given(st.text(max_size=40))
@FUZZ
def test_attribute_paths_raise_only_user_input_error(text: str) -> None:
    only(UserInputError, lambda: parse_path(text))
    only(UserInputError, lambda: parse_assignment(text))


# --------------------------------------------------------------------------- memory


def _peak(call: Callable[[], object], kinds: type[Exception] | tuple[type[Exception], ...]) -> int:
    """The tracemalloc peak (bytes) of ``call``, which must raise one of ``kinds``."""
    tracemalloc.start()
    try:
        with pytest.raises(kinds):
            call()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_huge_pdu_length_costs_nothing() -> None:
    for pdu_type in (1, 2, 4):
        framer = Framer(0)
        framer.feed(bytes((pdu_type, 0)) + b"\xff\xff\xff\xff" + bytes(64))
        assert _peak(framer.next_pdu, PDUTooLarge) < MiB


def test_huge_item_length_inside_a_pdu_costs_nothing() -> None:
    body = bytearray(seeds()["associate_rq"][7:])
    # The first item (application context) claims 65535 bytes it does not have.
    struct.pack_into(">H", body, 68 + 2, 0xFFFF)
    assert _peak(lambda: decode_pdu(1, bytes(body)), PDUError) < MiB


def test_huge_command_element_length_costs_nothing() -> None:
    raw = encode_command(CEchoRQ(1)) + struct.pack("<HHL", 0, 0x0902, 0xFFFFFFFE) + b"xx"
    assert _peak(lambda: decode_message(raw, None), MalformedCommand) < MiB


@pytest.mark.parametrize("syntax", TRANSFER_SYNTAXES)
def test_huge_element_length_inside_a_data_set_costs_nothing(syntax: str) -> None:
    little = syntax != "1.2.840.10008.1.2.2"
    order = "<" if little else ">"
    if syntax == "1.2.840.10008.1.2":
        raw = struct.pack("<HHL", 0x0010, 0x0010, 0xFFFFFFF0) + b"Doe^"
    else:
        raw = struct.pack(order + "HH2sHL", 0x0009, 0x1010, b"OB", 0, 0xFFFFFFF0) + b"abcd"
    if syntax == DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN:
        raw = zlib.compress(raw)[2:-4]  # raw deflate (PS3.5 A.5)
    assert _peak(lambda: decode_dataset(raw, syntax), DatasetError) < MiB


def test_endless_data_set_stream_is_cut_at_the_limit() -> None:
    """A peer that never sets the last-fragment bit cannot grow memory past the cap."""
    reassembler = Reassembler({1}, max_dataset_length=256 * 1024)
    command = encode_command(NActionRQ(1, "1.2.840.10008.5.1.4.34.6.1", "1.2.3", 1, b"x"))
    framer = Framer(0)
    framer.feed(encode_pdata(1, command, None, 0))
    first = framer.next_pdu()
    assert first is not None
    chunk = struct.pack(">BxLLBB", 4, 16384 + 6, 16384 + 2, 1, 0) + bytes(16384)

    def flood() -> None:
        assert isinstance(first, PDataTF)
        reassembler.feed(first)
        for _ in range(64):  # 1 MiB offered, 256 KiB allowed
            framer.feed(chunk)
            pdu = framer.next_pdu()
            assert isinstance(pdu, PDataTF)
            reassembler.feed(pdu)

    assert _peak(flood, FragmentError) < 2 * MiB


def test_deflate_bomb_is_refused_within_bounded_memory() -> None:
    size = 64 * MiB
    head = struct.pack("<HH2sHL", 0x0009, 0x1010, b"OB", 0, size)
    packer = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    bomb = packer.compress(head) + packer.compress(bytes(size)) + packer.flush()
    assert len(bomb) < 128 * 1024
    tracemalloc.start()
    try:
        try:
            decode_dataset(bomb, DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN)
        except DatasetError:
            pass
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 16 * MiB
