"""Hostile and broken peers, played with raw asyncio sockets against our runtime.

Each test sends bytes our acceptor must refuse and checks the exact answer on the wire
(PS3.8 §9.3.8 A-ABORT, §9.3.4 A-ASSOCIATE-RJ) and that the connection then closes on
time. ``RawAcceptor`` is the other way round: a listener that answers the A-ASSOCIATE-RQ
and then does only what a test tells it (for instance, never read again).
"""

from __future__ import annotations

import asyncio
import socket
import struct
from types import TracebackType
from typing import Any

import pytest

import ups
from tests.net.conftest import SOP_CLASSES, UPS_PUSH, Net, make_config, make_policy
from ups.dimse.messages import CEchoRQ, CEchoRSP, NSetRQ, NSetRSP, decode_message, encode_command
from ups.net.association import Association
from ups.net.requestor import build_request
from ups.pdu.codec import decode_pdu, encode_pdu
from ups.pdu.enums import ContextResult
from ups.pdu.items import AsyncOpsWindow, PresentationContextAC, UserInformation
from ups.pdu.pdus import AAssociateAC, AAssociateRQ

pytestmark = pytest.mark.timeout(30)

IUID = "1.2.826.0.1.3680043.9.7433.2.1"


def abort_pdu(source: int, reason: int) -> bytes:
    """A-ABORT (PS3.8 §9.3.8): type 07, length 4, two reserved bytes, source, reason."""
    return bytes([0x07, 0x00, 0, 0, 0, 4, 0x00, 0x00, source, reason])


def pdata(*pdvs: tuple[int, int, bytes]) -> bytes:
    """A P-DATA-TF of (context ID, message control header, fragment) PDVs."""
    items = b"".join(
        struct.pack(">IBB", len(data) + 2, cid, control) + data for cid, control, data in pdvs
    )
    return struct.pack(">BxI", 0x04, len(items)) + items


def request_pdu(called: str = "SCP", **kwargs: Any) -> bytes:
    contexts = [(uid, ("1.2.840.10008.1.2",)) for uid in SOP_CLASSES]
    return encode_pdu(build_request(called, "RAW", contexts, make_config(**kwargs)))


class RawPeer:
    """A TCP client that speaks bytes."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, port: int) -> RawPeer:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls(reader, writer)

    async def pdu(self, timeout: float = 5.0) -> bytes:
        async with asyncio.timeout(timeout):
            header = await self.reader.readexactly(6)
            (length,) = struct.unpack(">I", header[2:])
            return header + await self.reader.readexactly(length)

    async def associate(self, **kwargs: Any) -> AAssociateAC:
        self.writer.write(request_pdu(**kwargs))
        raw = await self.pdu()
        assert raw[0] == 0x02, raw[:10]
        ac = decode_pdu(raw[0], raw[6:])
        assert isinstance(ac, AAssociateAC)
        return ac

    async def rest(self, timeout: float = 5.0) -> bytes:
        """Everything until the peer closes (fails the test if it does not, in time)."""
        async with asyncio.timeout(timeout):
            try:
                return await self.reader.read()
            except ConnectionResetError:
                return b""

    async def close(self) -> None:
        self.writer.close()
        try:
            await self.writer.wait_closed()
        except OSError:
            pass


@pytest.fixture
async def raw_peers() -> Any:
    opened: list[RawPeer] = []

    async def make(port: int) -> RawPeer:
        peer = await RawPeer.open(port)
        opened.append(peer)
        return peer

    yield make
    for peer in opened:
        await peer.close()


async def server_side(net: Net) -> Association:
    await asyncio.wait_for(_until(lambda: bool(net.servers[0].associations)), 5)
    (assoc,) = net.servers[0].associations
    return assoc


async def _until(predicate: Any) -> None:
    while not predicate():
        await asyncio.sleep(0.005)


# ------------------------------------------------------------------ before association


async def test_unknown_called_ae_gets_rj_1_1_7(net: Net, raw_peers: Any) -> None:
    server = await net.serve()
    raw = await raw_peers(server.port)
    raw.writer.write(request_pdu(called="NOBODY"))
    assert await raw.pdu() == bytes([0x03, 0, 0, 0, 0, 4, 0, 0x01, 0x01, 0x07])
    assert await raw.rest() == b""  # then the acceptor closes (ARTIM or our close)
    await asyncio.wait_for(_until(lambda: not server.associations), 5)


async def test_associate_rq_without_presentation_context_is_aborted(
    net: Net, raw_peers: Any
) -> None:
    server = await net.serve()
    raw = await raw_peers(server.port)
    rq = build_request("SCP", "RAW", [], make_config())
    assert not rq.presentation_contexts
    raw.writer.write(encode_pdu(rq))
    # A malformed PDU in Sta2: AA-1, an A-ABORT (service-user source, reason 0).
    assert await raw.rest() == abort_pdu(0, 0)
    await asyncio.wait_for(_until(lambda: not server.associations), 5)


async def test_pdata_before_association_is_aborted(net: Net, raw_peers: Any) -> None:
    server = await net.serve()
    raw = await raw_peers(server.port)
    raw.writer.write(pdata((1, 0x03, encode_command(CEchoRQ(1)))))
    assert await raw.rest() == abort_pdu(0, 0)


async def test_unknown_pdu_type_before_association(net: Net, raw_peers: Any) -> None:
    server = await net.serve()
    raw = await raw_peers(server.port)
    raw.writer.write(bytes([0x09, 0, 0, 0, 0, 4, 0, 0, 0, 0]))
    assert await raw.rest() == abort_pdu(0, 0)


async def test_associate_rq_item_running_past_pdu(net: Net, raw_peers: Any) -> None:
    server = await net.serve()
    raw = await raw_peers(server.port)
    rq = bytearray(request_pdu())
    # The first item after the 68 fixed bytes (application context) claims more than is left.
    struct.pack_into(">H", rq, 6 + 68 + 2, 0xFFF0)
    raw.writer.write(bytes(rq))
    assert await raw.rest() == abort_pdu(0, 0)


async def test_silent_client_closed_by_artim(net: Net, raw_peers: Any) -> None:
    """The adapter arms ARTIM and closes (AA-2, no PDU); when exactly, and for a half-sent
    A-ASSOCIATE-RQ too, is asserted on virtual time (test_provider_deadlines)."""
    server = await net.serve(config=make_config(request_timeout=0.3))
    raw = await raw_peers(server.port)
    loop = asyncio.get_running_loop()
    start = loop.time()
    assert await raw.rest(timeout=3) == b""
    assert loop.time() - start < 1.5


# ------------------------------------------------------------------ established


async def test_pdu_longer_than_receive_limit(net: Net, raw_peers: Any) -> None:
    server = await net.serve(policy=make_policy(max_pdata_length=4096))
    raw = await raw_peers(server.port)
    ac = await raw.associate()
    assert ac.user_information.max_length == 4096
    # Only the header: the length is refused before any body is buffered.
    raw.writer.write(struct.pack(">BxI", 0x04, 4096 + 1))
    assert await raw.rest() == abort_pdu(2, 6)
    assoc = net.associations[0]
    await asyncio.wait_for(assoc.wait_closed(), 5)


async def test_pdu_longer_than_receive_limit_policy_above_config(net: Net, raw_peers: Any) -> None:
    """The limit enforced is the one announced (policy), not the config default."""
    server = await net.serve(policy=make_policy(max_pdata_length=65536))
    raw = await raw_peers(server.port)
    await raw.associate()
    body = b"\x08\x00\x18\x00" + struct.pack("<I", 39992) + b"x" * 39992  # one element
    command = encode_command(NSetRQ(7, UPS_PUSH, IUID, dataset=body))
    raw.writer.write(pdata((3, 0x03, command), (3, 0x02, body)))  # one 40 KB PDU
    answer = await raw.pdu()
    assert answer[0] == 0x04  # a response, not an A-ABORT
    rsp = decode_message(answer[12:], None)
    assert isinstance(rsp, NSetRSP) and rsp.status == 0x0122


async def test_unknown_pdu_type_aborts_reason_1(net: Net, raw_peers: Any) -> None:
    server = await net.serve()
    raw = await raw_peers(server.port)
    await raw.associate()
    raw.writer.write(bytes([0x0A, 0, 0, 0, 0, 4, 0, 0, 0, 0]))
    assert await raw.rest() == abort_pdu(2, 1)
    await asyncio.wait_for(net.associations[0].wait_closed(), 5)


async def test_pdv_running_past_its_pdu(net: Net, raw_peers: Any) -> None:
    server = await net.serve()
    raw = await raw_peers(server.port)
    await raw.associate()
    # P-DATA-TF of 10 bytes whose one PDV claims 100.
    raw.writer.write(struct.pack(">BxIIBB", 0x04, 10, 100, 1, 0x03) + b"\0\0\0\0")
    assert await raw.rest() == abort_pdu(2, 6)


async def test_pdv_for_unaccepted_context(net: Net, raw_peers: Any) -> None:
    server = await net.serve()
    raw = await raw_peers(server.port)
    await raw.associate()
    raw.writer.write(pdata((99, 0x03, encode_command(CEchoRQ(1)))))
    assert await raw.rest() == abort_pdu(2, 6)
    await asyncio.wait_for(net.associations[0].wait_closed(), 5)


async def test_response_to_unknown_message_id(net: Net, raw_peers: Any) -> None:
    server = await net.serve()
    raw = await raw_peers(server.port)
    await raw.associate()
    raw.writer.write(pdata((1, 0x03, encode_command(CEchoRSP(77, 0)))))
    assert await raw.rest() == abort_pdu(2, 5)


async def test_echo_then_garbage_command(net: Net, raw_peers: Any) -> None:
    """A good C-ECHO is answered; a command set that cannot be decoded aborts."""
    server = await net.serve()
    raw = await raw_peers(server.port)
    await raw.associate()
    raw.writer.write(pdata((1, 0x03, encode_command(CEchoRQ(5)))))
    answer = await raw.pdu()
    assert answer[0] == 0x04 and answer[10:12] == b"\x01\x03"
    raw.writer.write(pdata((1, 0x03, b"\x00\x00\x00\x00\xff\xff\xff\xff")))
    assert await raw.rest() == abort_pdu(2, 6)


async def test_half_a_pdu_then_silence_closed_by_pdu_timeout(net: Net, raw_peers: Any) -> None:
    """The A-ABORT reaches the wire, then the close; the deadline itself (and a slow but
    steady peer that is not cut off) is asserted on virtual time (test_provider_deadlines)."""
    server = await net.serve(config=make_config(pdu_timeout=0.3))
    raw = await raw_peers(server.port)
    await raw.associate()
    loop = asyncio.get_running_loop()
    start = loop.time()
    raw.writer.write(pdata((1, 0x03, encode_command(CEchoRQ(1))))[:20])
    assert await raw.rest(timeout=3) == abort_pdu(0, 0)
    assert loop.time() - start < 1.5
    (assoc,) = net.associations
    await asyncio.wait_for(assoc.wait_closed(), 5)


# ------------------------------------------------------------------ raw acceptor


class RawAcceptor:
    """Accepts one association (answering the RQ with an AC) and then obeys the test."""

    def __init__(self, *, window: tuple[int, int] | None = None, rcvbuf: int | None = None):
        self.window = window
        self.rcvbuf = rcvbuf
        self.listener = socket.socket()
        self.conn: socket.socket | None = None
        self._task: asyncio.Task[None] | None = None
        self._reading = True
        self.received = bytearray()
        self.port = 0

    async def __aenter__(self) -> RawAcceptor:
        self.listener.setblocking(False)
        if self.rcvbuf:
            self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.rcvbuf)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(1)
        self.port = self.listener.getsockname()[1]
        self._task = asyncio.ensure_future(self._serve())
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        assert self._task is not None
        self._task.cancel()
        try:
            await self._task
        except asyncio.CancelledError:
            pass
        if self.conn is not None:
            self.conn.close()
        self.listener.close()

    def stop_reading(self) -> None:
        self._reading = False

    async def _recv_pdu(self, loop: asyncio.AbstractEventLoop, conn: socket.socket) -> bytes:
        data = b""
        while len(data) < 6:
            data += await loop.sock_recv(conn, 6 - len(data))
        (length,) = struct.unpack(">I", data[2:6])
        while len(data) < 6 + length:
            data += await loop.sock_recv(conn, 6 + length - len(data))
        return data

    async def _serve(self) -> None:
        loop = asyncio.get_running_loop()
        conn, _ = await loop.sock_accept(self.listener)
        conn.setblocking(False)
        self.conn = conn
        raw = await self._recv_pdu(loop, conn)
        rq = decode_pdu(raw[0], raw[6:])
        assert isinstance(rq, AAssociateRQ)
        ac = AAssociateAC(
            rq.called_ae_title,
            rq.calling_ae_title,
            tuple(
                PresentationContextAC(
                    pc.context_id, ContextResult.ACCEPTANCE, pc.transfer_syntaxes[0]
                )
                for pc in rq.presentation_contexts
            ),
            UserInformation(
                max_length=16384,
                implementation_class_uid=ups.IMPLEMENTATION_CLASS_UID,
                async_ops_window=AsyncOpsWindow(*self.window) if self.window else None,
            ),
        )
        await loop.sock_sendall(conn, encode_pdu(ac))
        while self._reading:
            chunk = await loop.sock_recv(conn, 65536)
            if not chunk:
                return
            self.received += chunk
        await asyncio.Event().wait()  # never read again


async def test_requestor_aborts_on_response_to_unknown_message_id(net: Net) -> None:
    async with RawAcceptor() as raw:
        assoc = await net.connect(raw.port)
        assert raw.conn is not None
        loop = asyncio.get_running_loop()
        cid = assoc.context_for(UPS_PUSH).context_id
        await loop.sock_sendall(raw.conn, pdata((cid, 0x03, encode_command(NSetRSP(42, 0)))))
        await asyncio.wait_for(assoc.wait_closed(), 5)
        await asyncio.wait_for(_until(lambda: raw.received.endswith(abort_pdu(2, 5))), 5)
