"""Hostile peers against the event listener and the reference SCP, over loopback sockets.

tests/net/test_hostile.py plays broken peers against a bare ``ups.net`` acceptor; this
battery plays a representative set of them against the two servers users run
(``serve_events`` and ``UPSSCP``), each case checking the exact answer on the wire:

* before the association (Sta2), an invalid or unexpected PDU earns AA-1, an A-ABORT
  with source 0 (service user), reason 0 (PS3.8 Table 9-10, §9.3.8);
* after it (Sta6), AA-8: an A-ABORT from the service provider (source 2) with reason
  1 for an unrecognised PDU and 6 for an invalid PDU parameter value;
* an A-ASSOCIATE-RQ can carry at most 128 presentation contexts (odd IDs 1-255,
  PS3.8 §9.3.2.2): 128 are answered one by one; a 129th must repeat an ID or use an
  even one, which makes the PDU invalid (AA-1).

After every case a connection that was open before it still works, a new normal
association succeeds, and the process is back to its baseline: the same open file
descriptors, no extra asyncio task, no tracked association and no live association
timer. TLS cases run the servers with the PS3.15 profile and send garbage or plain
DICOM to them.
"""

from __future__ import annotations

import asyncio
import os
import ssl
import struct
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from tests.net.pki import PKI, make_pki
from tests.reliability.targets import (
    KINDS,
    Baseline,
    Kind,
    RawPeer,
    Target,
    abort_pdu,
    associate_rq,
    context_item,
    item,
    pdata,
    raw_peers,
    running,
)
from ups.dimse.codec import encode_command_set
from ups.dimse.messages import CEchoRQ, CEchoRSP, encode_command
from ups.services.uids import VERIFICATION

pytestmark = pytest.mark.timeout(30)

Case = Callable[[Target, RawPeer], Awaitable[None]]
CASES: dict[str, Case] = {}


def case(fn: Case) -> Case:
    CASES[fn.__name__] = fn
    return fn


UNKNOWN_ABSTRACT = "1.2.826.0.1.3680043.9.7433.99"


# ------------------------------------------------------------------ before association


@case
async def pre_length_ffffffff(t: Target, peer: RawPeer) -> None:
    """An A-ASSOCIATE-RQ header claiming 4 GiB: refused from the header alone."""
    peer.writer.write(bytes([0x01, 0, 0xFF, 0xFF, 0xFF, 0xFF]))
    assert await peer.rest() == abort_pdu(0, 0)


@case
async def pre_unknown_pdu_type(t: Target, peer: RawPeer) -> None:
    peer.writer.write(bytes([0x09, 0, 0, 0, 0, 4, 0, 0, 0, 0]))
    assert await peer.rest() == abort_pdu(0, 0)


@case
async def pre_pdata(t: Target, peer: RawPeer) -> None:
    peer.writer.write(pdata((1, 0x03, encode_command(CEchoRQ(1)))))
    assert await peer.rest() == abort_pdu(0, 0)


@case
async def rq_no_presentation_context(t: Target, peer: RawPeer) -> None:
    peer.writer.write(associate_rq(t.ae_title.encode(), contexts=()))
    assert await peer.rest() == abort_pdu(0, 0)


@case
async def rq_256_presentation_contexts(t: Target, peer: RawPeer) -> None:
    """256 contexts cannot all have distinct odd IDs: IDs repeat, the RQ is invalid."""
    ids = [(2 * i + 1) % 256 for i in range(256)]
    contexts = [context_item(cid, t.main_sop_class) for cid in ids]
    peer.writer.write(associate_rq(t.ae_title.encode(), contexts=contexts))
    assert await peer.rest() == abort_pdu(0, 0)


@case
async def rq_128_presentation_contexts(t: Target, peer: RawPeer) -> None:
    """All 128 odd IDs: each gets its own answer; the unknown abstract syntaxes 3."""
    contexts = [context_item(1, t.main_sop_class)]
    contexts += [context_item(cid, UNKNOWN_ABSTRACT) for cid in range(3, 256, 2)]
    peer.writer.write(associate_rq(t.ae_title.encode(), contexts=contexts))
    ac = await peer.pdu()
    assert ac[0] == 0x02
    answers = _context_answers(ac)
    assert [cid for cid, _ in answers] == list(range(1, 256, 2))
    assert answers[0] == (1, 0) and all(result == 3 for _, result in answers[1:])
    peer.writer.write(bytes([0x05, 0, 0, 0, 0, 4, 0, 0, 0, 0]))  # A-RELEASE-RQ
    assert await peer.pdu() == bytes([0x06, 0, 0, 0, 0, 4, 0, 0, 0, 0])
    assert await peer.rest() == b""


def _context_answers(ac: bytes) -> list[tuple[int, int]]:
    """(context ID, result) of each Presentation Context item (0x21) of an AC."""
    out: list[tuple[int, int]] = []
    offset = 6 + 68
    while offset < len(ac):
        kind, length = ac[offset], struct.unpack_from(">H", ac, offset + 2)[0]
        if kind == 0x21:
            out.append((ac[offset + 4], ac[offset + 6]))
        offset += 4 + length
    return out


@case
async def rq_even_context_id(t: Target, peer: RawPeer) -> None:
    peer.writer.write(associate_rq(t.ae_title.encode(), contexts=[context_item(2, VERIFICATION)]))
    assert await peer.rest() == abort_pdu(0, 0)


@case
async def rq_64k_ae_title(t: Target, peer: RawPeer) -> None:
    """A 64 KiB "called AE title" where PS3.8 has a fixed 16-byte field.

    The first 16 bytes are read as the title; the rest of the run is read as items and
    does not parse, so the PDU is invalid (AA-1) and nothing else is answered.
    """
    body = struct.pack(">HH", 1, 0) + b"A" * 65536 + b"PEER".ljust(16) + bytes(32)
    peer.writer.write(struct.pack(">BxI", 0x01, len(body)) + body)
    assert await peer.rest() == abort_pdu(0, 0)


@case
async def rq_claims_past_associate_cap(t: Target, peer: RawPeer) -> None:
    """An A-ASSOCIATE-RQ claiming 16 MiB (past the 1 MiB cap): refused from its header."""
    rq = associate_rq(t.ae_title.encode(), contexts=[context_item(1, VERIFICATION)])
    peer.writer.write(struct.pack(">BxI", 0x01, 16 * 1024 * 1024) + rq[6:])
    assert await peer.rest() == abort_pdu(0, 0)


@case
async def rq_non_ascii_called_ae(t: Target, peer: RawPeer) -> None:
    """PS3.8 §9.3.2: AE titles are ISO 646 (basic G0); UTF-8 bytes make the RQ invalid."""
    called = "LISTÉNER".encode()
    peer.writer.write(associate_rq(called, contexts=[context_item(1, VERIFICATION)]))
    assert await peer.rest() == abort_pdu(0, 0)


@case
async def rq_non_ascii_calling_ae(t: Target, peer: RawPeer) -> None:
    calling = b"\xff\xfePEER\x00"
    rq = associate_rq(t.ae_title.encode(), calling, contexts=[context_item(1, VERIFICATION)])
    peer.writer.write(rq)
    assert await peer.rest() == abort_pdu(0, 0)


@case
async def rq_user_information_item_runs_past(t: Target, peer: RawPeer) -> None:
    """A User Identity sub-item whose length runs past its User Information item."""
    broken = struct.pack(">BxH", 0x58, 0xFFF0) + b"\x02\x01"
    rq = associate_rq(
        t.ae_title.encode(), contexts=[context_item(1, VERIFICATION)], user_extra=broken
    )
    peer.writer.write(rq)
    assert await peer.rest() == abort_pdu(0, 0)


# ------------------------------------------------------------------ established


@case
async def est_length_ffffffff(t: Target, peer: RawPeer) -> None:
    await peer.associate(t)
    peer.writer.write(bytes([0x04, 0, 0xFF, 0xFF, 0xFF, 0xFF]))
    assert await peer.rest() == abort_pdu(2, 6)


@case
async def est_unknown_pdu_type(t: Target, peer: RawPeer) -> None:
    await peer.associate(t)
    peer.writer.write(bytes([0x0A, 0, 0, 0, 0, 4, 0, 0, 0, 0]))
    assert await peer.rest() == abort_pdu(2, 1)


@case
async def est_second_associate_rq(t: Target, peer: RawPeer) -> None:
    """An A-ASSOCIATE-RQ in Sta6 is unexpected: AA-8 with reason 2 (unexpected PDU)."""
    await peer.associate(t)
    peer.writer.write(associate_rq(t.ae_title.encode(), contexts=[context_item(1, VERIFICATION)]))
    assert await peer.rest() == abort_pdu(2, 2)


@case
async def est_pdv_even_context_id(t: Target, peer: RawPeer) -> None:
    await peer.associate(t)
    peer.writer.write(pdata((2, 0x03, encode_command(CEchoRQ(1)))))
    assert await peer.rest() == abort_pdu(2, 6)


@case
async def est_pdv_unaccepted_context(t: Target, peer: RawPeer) -> None:
    await peer.associate(t)
    peer.writer.write(pdata((99, 0x03, encode_command(CEchoRQ(1)))))
    assert await peer.rest() == abort_pdu(2, 6)


@case
async def est_dataset_before_command(t: Target, peer: RawPeer) -> None:
    """A data set PDV with no command before it (PS3.7 §9.3.1 / PS3.8 Annex E order)."""
    await peer.associate(t)
    peer.writer.write(pdata((1, 0x02, b"\x08\x00\x18\x00\x04\x00\x00\x001.2\x00")))
    assert await peer.rest() == abort_pdu(2, 6)


@case
async def est_command_without_command_field(t: Target, peer: RawPeer) -> None:
    """A command set without (0000,0100): nothing to answer it with, so it aborts."""
    await peer.associate(t)
    command = encode_command_set({0x00000002: VERIFICATION, 0x00000110: 7, 0x00000800: 0x0101})
    peer.writer.write(pdata((3, 0x03, command)))
    assert await peer.rest() == abort_pdu(2, 6)


@case
async def est_response_to_unknown_message_id(t: Target, peer: RawPeer) -> None:
    await peer.associate(t)
    peer.writer.write(pdata((3, 0x03, encode_command(CEchoRSP(77, 0)))))
    assert await peer.rest() == abort_pdu(2, 5)


@case
async def est_echo_then_reset_mid_pdu(t: Target, peer: RawPeer) -> None:
    """A good C-ECHO is answered; then half a PDU and the connection goes away."""
    await peer.associate(t)
    peer.writer.write(pdata((3, 0x03, encode_command(CEchoRQ(5)))))
    answer = await peer.pdu()
    assert answer[0] == 0x04
    peer.writer.write(pdata((3, 0x03, encode_command(CEchoRQ(6))))[:15])
    await peer.writer.drain()
    peer.writer.transport.abort()  # RST, no FIN


# ------------------------------------------------------------------ the runner


async def run_case(target: Target, hostile: Callable[[], Awaitable[None]]) -> None:
    """Bystander open, hostile case, then bystander + a new association + baseline."""
    await target.exercise(0)  # warm everything that is created once
    baseline = Baseline()
    bystander = await target.open()
    try:
        await hostile()
        await target.check_one(bystander, target.iuid_for(1))
        await bystander.release()
    finally:
        if not bystander.closed.done():
            bystander.abort()
        await bystander.wait_closed()
    await target.exercise(2)
    await baseline.restored(target)


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("kind", KINDS)
async def test_hostile_peer(kind: Kind, name: str, tmp_path: Path) -> None:
    async with running(kind, tmp_path) as target:

        async def hostile() -> None:
            async with raw_peers() as make:
                peer = await make(target.port)
                await CASES[name](target, peer)

        await run_case(target, hostile)


# ------------------------------------------------------------------ TLS


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PKI:
    return make_pki(tmp_path_factory.mktemp("pki"))


async def _garbage_handshake(target: Target, peer: RawPeer) -> None:
    # A TLS record header (handshake, TLS 1.0) followed by bytes that are no ClientHello.
    peer.writer.write(b"\x16\x03\x01\x00\x40" + os.urandom(64))
    answer = await peer.rest(timeout=5)
    assert not answer or answer[0] == 0x15  # nothing, or a TLS alert record


async def _plain_dicom_to_tls(target: Target, peer: RawPeer) -> None:
    rq = associate_rq(target.ae_title.encode(), contexts=[context_item(1, VERIFICATION)])
    peer.writer.write(rq)
    answer = await peer.rest(timeout=5)
    assert not answer or answer[0] == 0x15  # never an A-ASSOCIATE-AC in clear


async def _tls_then_garbage(target: Target, peer: RawPeer) -> None:
    """A good TLS session carrying bytes that are no PDU: the DICOM layer aborts."""
    peer.writer.write(bytes([0x09, 0, 0, 0, 0, 4, 0, 0, 0, 0]))
    assert await peer.rest(timeout=5) == abort_pdu(0, 0)


TLS_CASES = {
    "garbage_handshake": _garbage_handshake,
    "plain_dicom_to_tls_port": _plain_dicom_to_tls,
    "tls_then_garbage_pdu": _tls_then_garbage,
}


def _client_ssl(pki: PKI) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(pki.ca_pem))
    context.check_hostname = False
    context.load_cert_chain(str(pki.client.pem), password=pki.password)
    return context


@pytest.mark.parametrize("name", sorted(TLS_CASES))
@pytest.mark.parametrize("kind", KINDS)
async def test_hostile_tls_peer(kind: Kind, name: str, tmp_path: Path, pki: PKI) -> None:
    async with running(kind, tmp_path, pki=pki) as target:
        loop = asyncio.get_running_loop()

        async def hostile() -> None:
            async with raw_peers() as make:
                context = _client_ssl(pki) if name == "tls_then_garbage_pdu" else None
                peer = await make(target.port, context)
                start = loop.time()
                await TLS_CASES[name](target, peer)
                # Closed by the TLS layer or the DICOM layer, well within the timers.
                assert loop.time() - start < 3.0

        await run_case(target, hostile)


def test_case_table_is_representative() -> None:
    """The battery keeps the cases issue 8 lists (guards against accidental deletion)."""
    assert len(CASES) >= 18
    assert item(0x10, b"x") == b"\x10\x00\x00\x01x"
