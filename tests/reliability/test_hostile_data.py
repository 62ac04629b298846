"""Hostile data sets, identifiers and Maximum Length values, from codec to loopback.

* Identifiers (AE titles, UIDs) holding ``../``, NUL or shell metacharacters stay
  inert text or are refused with the layer's error; nothing derived from them is ever
  a path or a command (the package builds neither from peer data; see the grep test).
* Deeply nested sequences and huge element lengths inside a data set fail with
  ``DatasetError`` in bounded time and memory.
* Maximum Length Received (PS3.8 D.1): 0 means unlimited, which we still cap; an odd
  value is honoured by keeping fragments even and PDUs within it; values too small to
  carry any PDV (1, 7) are refused with an error that names them; 4 GiB-1 is legal.
"""

from __future__ import annotations

import asyncio
import re
import struct
import time
import tracemalloc
from dataclasses import replace
from pathlib import Path

import pytest

from ups.dimse.codec import decode_command_set
from ups.dimse.datasets import IMPLICIT_VR_LITTLE_ENDIAN, decode_dataset
from ups.dimse.errors import DatasetError, EncodeError
from ups.dimse.fragment import DEFAULT_MAX_PDATA_LENGTH, Reassembler, encode_pdata, fragment_limit
from ups.dimse.messages import CEchoRQ, NCreateRQ, NCreateRSP, Request, Response, encode_command
from ups.errors import DicomError
from ups.net.association import Association, RequestContext
from ups.net.config import AssociationConfig
from ups.net.errors import NetTimeout
from ups.net.requestor import build_request, connect
from ups.net.server import Server, serve
from ups.pdu.codec import decode_pdu, encode_pdu
from ups.pdu.errors import InvalidParameter, PDUError
from ups.pdu.framer import Framer
from ups.pdu.items import PresentationContextRQ, UserInformation
from ups.pdu.negotiation import AcceptorPolicy, SyntaxSupport, negotiate
from ups.pdu.pdus import AAssociateAC, AAssociateRQ, PDataTF

VERIFICATION = "1.2.840.10008.1.1"
UPS_PUSH = "1.2.840.10008.5.1.4.34.6.1"
HOSTILE = ("../../etc/passwd", "a;rm -rf /", "$(id)`x`|&>", "..\\..\\x", "A\x00B", "\x1b[2J")
PACKAGE = Path(__file__).resolve().parents[2] / "ups"


def _rq(calling: str = "SCU", abstract: str = VERIFICATION) -> bytes:
    """An A-ASSOCIATE-RQ with raw bytes patched in for the calling AE or abstract syntax."""
    rq = AAssociateRQ(
        "SCP",
        "SCU",
        (PresentationContextRQ(1, VERIFICATION, (IMPLICIT_VR_LITTLE_ENDIAN,)),),
        UserInformation(16384, "1.2.3.4"),
    )
    raw = bytearray(encode_pdu(rq))
    raw[26:42] = calling.encode("latin-1").ljust(16, b" ")[:16]  # PS3.8 Table 9-11
    patched = abstract.encode("latin-1").ljust(len(VERIFICATION), b"\0")[: len(VERIFICATION)]
    return bytes(raw).replace(VERIFICATION.encode(), patched)


# --------------------------------------------------------------------------- identifiers


@pytest.mark.parametrize("title", HOSTILE)
def test_hostile_calling_ae_title_in_an_rq_is_inert_or_refused(title: str) -> None:
    raw = _rq(calling=title)
    try:
        rq = decode_pdu(raw[0], raw[6:])
    except InvalidParameter:
        # PS3.5 Table 6.2-1: AE excludes control characters and backslash.
        assert any(c < " " or c == "\\" for c in title)
        return
    assert isinstance(rq, AAssociateRQ)
    assert rq.calling_ae_title == title[:16].strip(" ")  # plain text, nothing else


@pytest.mark.parametrize("uid", HOSTILE + ("1.2.3/../4", "1.2.3;4"))
def test_hostile_uid_in_a_presentation_context_is_refused(uid: str) -> None:
    raw = _rq(abstract=uid)
    with pytest.raises(PDUError):
        decode_pdu(raw[0], raw[6:])


@pytest.mark.parametrize("uid", HOSTILE)
def test_hostile_uid_in_a_command_set_stays_an_inert_string(uid: str) -> None:
    """The DIMSE codec does not judge UID syntax; it hands back the same text, unused."""
    if "\x00" in uid:
        uid = uid.replace("\x00", "")
    command = encode_command(NCreateRQ(1, UPS_PUSH, uid.encode("ascii").decode()))
    elements = decode_command_set(command)
    assert elements[0x1000] == uid.rstrip(" ")


def test_no_path_or_command_is_built_from_peer_data() -> None:
    """Only the CLI, TLS options and the files they name open files; nothing runs a command.

    One module may ``exec``: ``ups/pdu/fastinit.py`` writes constructors from a
    dataclass's own field names, as ``dataclasses`` does; no peer data reaches it.
    """
    forbidden = re.compile(r"\b(subprocess|os\.system|os\.popen|Popen|shell=True|eval\(|exec\()")
    generates_code = PACKAGE / "pdu" / "fastinit.py"
    opens = re.compile(r"\b(open\(|Path\(|os\.path\.join|\.joinpath\()")
    # The command line (options naming files: -f, --saml, secrets as file:, --db, the
    # probe's --report), TLS key stores, and the --users and --ae-config files it hands
    # to the services.
    allowed_openers = {
        "configure.py",
        "probe.py",
        "secrets.py",
        "tls.py",
        "files.py",
        "scp.py",
        "config.py",
        "access.py",
        "demo.py",
    }
    for path in PACKAGE.rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        if path == generates_code:
            text = text.replace("exec(", "", 1)
        assert not forbidden.search(text), f"{path}: runs something"
        if path.parent.name in ("pdu", "dimse", "net") and path.name != "tls.py":
            assert not opens.search(text), f"{path}: builds a path"
        elif opens.search(text):
            assert path.name in allowed_openers, f"{path}: builds a path"


@pytest.mark.parametrize("title", ["é", "X" * 17])
async def test_unencodable_ae_title_is_refused_before_connecting(title: str) -> None:
    server = await serve("127.0.0.1", 0, POLICY, CONFIG)
    config = replace(CONFIG, accept_timeout=1.0)
    try:
        with pytest.raises(DicomError) as info:
            rq = build_request("SCP", title, [(VERIFICATION, (IMPLICIT_VR_LITTLE_ENDIAN,))], config)
            association = await connect("127.0.0.1", server.port, rq, config)
            association.abort()
        assert not isinstance(info.value, NetTimeout)
        assert "AE" in str(info.value)
    finally:
        await server.close(grace=1.0)


# --------------------------------------------------------------------------- data sets


_ITEM_UNDEFINED = struct.pack("<HHL", 0xFFFE, 0xE000, 0xFFFFFFFF)
_ITEM_END = struct.pack("<HHL", 0xFFFE, 0xE00D, 0)
_SQ_UNDEFINED = struct.pack("<HHL", 0x0040, 0xA730, 0xFFFFFFFF)
_SQ_END = struct.pack("<HHL", 0xFFFE, 0xE0DD, 0)


def _nested(depth: int, *, defined: bool) -> bytes:
    """``depth`` levels of (0040,A730) Content Sequence, Implicit VR LE."""
    inner = b""
    for _ in range(depth):
        if defined:
            item = struct.pack("<HHL", 0xFFFE, 0xE000, len(inner)) + inner
            inner = struct.pack("<HHL", 0x0040, 0xA730, len(item)) + item
        else:
            item = b"".join(
                (
                    struct.pack("<HHL", 0xFFFE, 0xE000, 0xFFFFFFFF),
                    inner,
                    struct.pack("<HHL", 0xFFFE, 0xE00D, 0),
                )
            )
            inner = b"".join(
                (
                    struct.pack("<HHL", 0x0040, 0xA730, 0xFFFFFFFF),
                    item,
                    struct.pack("<HHL", 0xFFFE, 0xE0DD, 0),
                )
            )
    return inner


@pytest.mark.parametrize("defined", [True, False])
def test_moderate_nesting_decodes(defined: bool) -> None:
    ds = decode_dataset(_nested(40, defined=defined), IMPLICIT_VR_LITTLE_ENDIAN)
    depth = 0
    while "ContentSequence" in ds:
        ds = ds.ContentSequence[0]
        depth += 1
    assert depth == 40


@pytest.mark.parametrize("defined", [True, False])
def test_deep_nesting_fails_with_dataset_error_in_bounded_time(defined: bool) -> None:
    raw = _nested(3000, defined=defined)
    start = time.monotonic()
    tracemalloc.start()
    try:
        with pytest.raises(DatasetError):
            decode_dataset(raw, IMPLICIT_VR_LITTLE_ENDIAN)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert time.monotonic() - start < 10
    assert peak < 64 * 1024 * 1024


def _lying_item(length: int) -> bytes:
    """(0040,4018) with one item whose Code Value claims ``length`` bytes but has 2."""
    bad = struct.pack("<HHL", 0x0008, 0x0100, length) + b"X1"
    item = struct.pack("<HHL", 0xFFFE, 0xE000, len(bad)) + bad
    return struct.pack("<HHL", 0x0040, 0x4018, len(item)) + item


def test_huge_length_inside_a_sequence_item_costs_nothing() -> None:
    tracemalloc.start()
    try:
        try:
            decode_dataset(_lying_item(0xFFFFFFF0), IMPLICIT_VR_LITTLE_ENDIAN)
        except DatasetError:
            pass
        assert tracemalloc.get_traced_memory()[1] < 1024 * 1024
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("length", [10, 0xFFFFFFF0])
def test_element_running_past_its_item_is_refused(length: int) -> None:
    with pytest.raises(DatasetError):
        decode_dataset(_lying_item(length), IMPLICIT_VR_LITTLE_ENDIAN)


# --------------------------------------------------------------------------- max PDU


@pytest.mark.parametrize("announced", [1, 7])
def test_max_length_too_small_for_any_pdv_is_refused(announced: int) -> None:
    with pytest.raises(EncodeError, match=str(announced)):
        encode_pdata(1, encode_command(CEchoRQ(1)), None, announced)


@pytest.mark.parametrize("announced", [8, 9, 1001, 16385])
def test_odd_or_tiny_max_length_gives_even_fragments_within_it(announced: int) -> None:
    command = encode_command(NCreateRQ(1, UPS_PUSH, "1.2.3", dataset=b"\x01"))
    stream = encode_pdata(1, command, b"D" * 3001, announced)
    framer = Framer(announced)  # a receiver announcing this limit accepts every PDU
    framer.feed(stream)
    reassembler = Reassembler({1})
    done = []
    while (pdu := framer.next_pdu()) is not None:
        assert isinstance(pdu, PDataTF)
        *init, _ = pdu.pdvs
        assert all(len(pdv.data) % 2 == 0 for pdv in init)
        done += reassembler.feed(pdu)
    assert len(done) == 1


def test_zero_means_unlimited_but_capped() -> None:
    assert fragment_limit(0) == DEFAULT_MAX_PDATA_LENGTH - 6
    stream = encode_pdata(1, encode_command(CEchoRQ(1)), None, 0)
    assert struct.unpack_from(">L", stream, 2)[0] <= DEFAULT_MAX_PDATA_LENGTH
    assert Framer(0).max_pdata_length < 0xFFFFFFFF


def test_largest_max_length_is_legal() -> None:
    assert fragment_limit(0xFFFFFFFF) % 2 == 0
    rq = AAssociateRQ(
        "SCP",
        "SCU",
        (PresentationContextRQ(1, VERIFICATION, (IMPLICIT_VR_LITTLE_ENDIAN,)),),
        UserInformation(0xFFFFFFFF, "1.2.3.4"),
    )
    ac, negotiated = negotiate(rq, POLICY)
    assert isinstance(ac, AAssociateAC) and negotiated is not None
    assert negotiated.remote_max_pdata_length == 0xFFFFFFFF
    assert decode_pdu(1, encode_pdu(rq)[6:]) == rq


POLICY = AcceptorPolicy(
    ae_titles=None,
    supported={
        VERIFICATION: SyntaxSupport((IMPLICIT_VR_LITTLE_ENDIAN,)),
        UPS_PUSH: SyntaxSupport((IMPLICIT_VR_LITTLE_ENDIAN,)),
    },
    max_pdata_length=16384,
    implementation_class_uid="1.2.3.4",
)
CONFIG = AssociationConfig(
    accept_timeout=5.0,
    request_timeout=5.0,
    release_timeout=2.0,
    response_timeout=3.0,
    reaper_period=1.0,
    pdu_timeout=3.0,
    so_close_delay=0.01,
    max_pdata_send=0,  # only the peer's announcement limits what we send
)


def _create(request: Request, ctx: RequestContext) -> Response:
    assert isinstance(request, NCreateRQ)
    return NCreateRSP(request.message_id, 0x0000, UPS_PUSH, "1.2.3")


async def _open(announced: int) -> tuple[Association, Server, list[int]]:
    policy = replace(POLICY, max_pdata_length=announced)
    server = await serve("127.0.0.1", 0, policy, CONFIG, handlers={UPS_PUSH: _create})
    rq = build_request(
        "SCP",
        "SCU",
        [(VERIFICATION, (IMPLICIT_VR_LITTLE_ENDIAN,)), (UPS_PUSH, (IMPLICIT_VR_LITTLE_ENDIAN,))],
        CONFIG,
    )
    association = await connect("127.0.0.1", server.port, rq, CONFIG)
    sizes: list[int] = []
    transport = association._transport  # noqa: SLF001 - watch what we put on the wire
    assert transport is not None
    write = transport.write

    def spy(data: bytes | bytearray | memoryview) -> None:
        raw = bytes(data)
        pos = 0
        while pos + 6 <= len(raw):
            kind, length = struct.unpack_from(">BxL", raw, pos)
            if kind == 4:
                sizes.append(length)
            pos += 6 + length
        write(data)

    transport.write = spy  # type: ignore[method-assign]
    return association, server, sizes


@pytest.mark.parametrize("announced", [8, 1001, 0xFFFFFFFF, 0])
async def test_requestor_honours_the_peers_max_length(announced: int) -> None:
    association, server, sizes = await _open(announced)
    try:
        rsp = await asyncio.wait_for(
            association.request(NCreateRQ(1, UPS_PUSH, "1.2.3", dataset=b"\x08\x00" * 1500), 3), 5
        )
        assert rsp.status == 0
        assert sizes and max(sizes) <= (announced or DEFAULT_MAX_PDATA_LENGTH)
        if announced == 8:
            assert len(sizes) > 100  # really cut into 8-byte PDUs
        await asyncio.wait_for(association.release(), 5)
    finally:
        await server.close(grace=1.0)


@pytest.mark.parametrize("announced", [1, 7])
async def test_requestor_refuses_a_peer_max_length_too_small(announced: int) -> None:
    try:
        association, server, _ = await _open(announced)
    except DicomError as exc:  # refusing at association time is fine too
        assert str(announced) in str(exc)
        return
    try:
        for message_id in (1, 2):
            with pytest.raises(DicomError, match=str(announced)):
                await asyncio.wait_for(association.request(CEchoRQ(message_id), 1), 1.0)
    finally:
        association.abort()
        await server.close(grace=1.0)
