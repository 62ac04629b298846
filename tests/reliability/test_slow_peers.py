"""Slow and dead peers against the event listener and the SCP, over loopback sockets.

Every case must end by one of the configured timers, never by luck, and leave the
process as it was (fds, tasks, association timers) and still serving:

* slowloris — one byte every 50 ms: an A-ASSOCIATE-RQ is cut by the ARTIM timer
  (``-requestTO``, PS3.8 §9.1.5; AA-2 closes without a PDU); a P-DATA-TF by the per-PDU
  limit (``pdu_timeout``) with an A-ABORT;
* half-open — connect and say nothing: ARTIM again; associate and say nothing:
  ``-idleTO``;
* a peer that never answers our A-RELEASE-RQ: ``-releaseTO`` then A-ABORT;
* a peer that stops reading while we answer: our write buffer stays bounded (reading
  from it stops), and ``-idleTO`` ends it;
* a peer that resets (SO_LINGER 0) half-way through a PDU: cleaned up at once;
* the SCP as requestor of event associations: a subscriber that never answers its
  A-ASSOCIATE-RQ (-acceptTO), its N-EVENT-REPORT (-rspTO) or its A-RELEASE-RQ
  (-releaseTO) is given up on by that timer, and the SCP goes on serving.

Which timer fired, and exactly when, is asserted on virtual time against the provider
core (``tests/dimse/test_provider_deadlines.py`` has each of these cases); here the
elapsed time is only bounded above, generously (two shared, loaded CPUs), to show that
the real timer is armed and the case ends by it, not by luck.
"""

from __future__ import annotations

import asyncio
import socket
import struct
from collections.abc import Awaitable, Callable
from contextlib import suppress
from dataclasses import replace
from pathlib import Path

import pytest

import ups
from tests.reliability.targets import (
    KINDS,
    SERVER_CONFIG,
    Baseline,
    Kind,
    RawPeer,
    Target,
    abort_pdu,
    associate_rq,
    context_item,
    pdata,
    raw_peers,
    running,
    state_report,
)
from ups.dimse.codec import command_has_dataset, decode_command_set
from ups.dimse.messages import (
    CEchoRQ,
    NEventReportRQ,
    NEventReportRSP,
    NGetRQ,
    encode_command,
)
from ups.net.association import Association
from ups.pdu.codec import decode_pdu, encode_pdu
from ups.pdu.enums import ContextResult
from ups.pdu.items import PresentationContextAC, UserInformation
from ups.pdu.pdus import AAssociateAC, AAssociateRQ
from ups.services.scp.config import RemoteAE
from ups.services.scu import SCUOptions
from ups.services.uids import UPS_PUSH, VERIFICATION

pytestmark = pytest.mark.timeout(30)

TIMER = 0.6
"""request, PDU and release timeouts of the targets here."""
IDLE = 1.0
WRITE_LIMIT = 16 * 1024
SLOW = replace(
    SERVER_CONFIG,
    request_timeout=TIMER,
    pdu_timeout=TIMER,
    release_timeout=TIMER,
    idle_timeout=IDLE,
    write_buffer_limit=WRITE_LIMIT,
    so_sndbuf=16 * 1024,
)
SLACK = 2.5
ONE_READ = 256 * 1024


def elapsed_ok(elapsed: float, timer: float) -> bool:
    """Ended by the timer's deadline at the latest (the deadline: test_provider_deadlines)."""
    return elapsed <= timer + SLACK


async def dribble(peer: RawPeer, data: bytes, every: float = 0.05) -> None:
    """Slowloris: one byte at a time (until cancelled or the connection goes)."""
    for byte in data:
        if peer.writer.transport.is_closing():
            return
        peer.writer.write(bytes([byte]))
        await asyncio.sleep(every)


async def served_after(target: Target, case: Callable[[], Awaitable[None]]) -> None:
    await target.exercise(0)
    baseline = Baseline()
    await case()
    await target.exercise(1)
    await baseline.restored(target)


def rq_bytes(target: Target) -> bytes:
    contexts = [context_item(1, target.main_sop_class), context_item(3, VERIFICATION)]
    return associate_rq(target.ae_title.encode(), b"SLOWPEER", contexts)


# ------------------------------------------------------------------ slowloris / half-open


@pytest.mark.parametrize("kind", KINDS)
async def test_slowloris_associate_rq_cut_by_artim(kind: Kind, tmp_path: Path) -> None:
    async with running(kind, tmp_path, config=SLOW) as target:

        async def case() -> None:
            loop = asyncio.get_running_loop()
            async with raw_peers() as make:
                peer = await make(target.port)
                start = loop.time()
                slow = asyncio.ensure_future(dribble(peer, rq_bytes(target)))
                try:
                    assert await peer.rest() == b""  # AA-2: no PDU, just closed
                finally:
                    slow.cancel()
                    await asyncio.gather(slow, return_exceptions=True)
                assert elapsed_ok(loop.time() - start, TIMER), loop.time() - start

        await served_after(target, case)


@pytest.mark.parametrize("kind", KINDS)
async def test_slowloris_pdata_cut_by_pdu_timeout(kind: Kind, tmp_path: Path) -> None:
    async with running(kind, tmp_path, config=SLOW) as target:

        async def case() -> None:
            loop = asyncio.get_running_loop()
            async with raw_peers() as make:
                peer = await make(target.port)
                await peer.associate(target)
                start = loop.time()
                echo = pdata((3, 0x03, encode_command(CEchoRQ(1))))
                slow = asyncio.ensure_future(dribble(peer, echo))
                try:
                    assert await peer.rest() == abort_pdu(0, 0)
                finally:
                    slow.cancel()
                    await asyncio.gather(slow, return_exceptions=True)
                assert elapsed_ok(loop.time() - start, TIMER), loop.time() - start

        await served_after(target, case)


@pytest.mark.parametrize("kind", KINDS)
async def test_half_open_connection_cut_by_artim(kind: Kind, tmp_path: Path) -> None:
    async with running(kind, tmp_path, config=SLOW) as target:

        async def case() -> None:
            loop = asyncio.get_running_loop()
            async with raw_peers() as make:
                peer = await make(target.port)
                start = loop.time()
                assert await peer.rest() == b""
                assert elapsed_ok(loop.time() - start, TIMER), loop.time() - start

        await served_after(target, case)


@pytest.mark.parametrize("kind", KINDS)
async def test_silent_association_cut_by_idle_timeout(kind: Kind, tmp_path: Path) -> None:
    async with running(kind, tmp_path, config=SLOW) as target:

        async def case() -> None:
            loop = asyncio.get_running_loop()
            async with raw_peers() as make:
                peer = await make(target.port)
                await peer.associate(target)
                start = loop.time()
                assert await peer.rest() == abort_pdu(0, 0)
                assert elapsed_ok(loop.time() - start, IDLE), loop.time() - start

        await served_after(target, case)


# ------------------------------------------------------------------ release


@pytest.mark.parametrize("kind", KINDS)
async def test_peer_never_answers_release_rq(kind: Kind, tmp_path: Path) -> None:
    """Shutting down releases (A-RELEASE-RQ); the silent peer is aborted after releaseTO."""
    async with running(kind, tmp_path, config=SLOW) as target:
        await target.exercise(0)
        baseline = Baseline()
        loop = asyncio.get_running_loop()
        async with raw_peers() as make:
            peer = await make(target.port)
            await peer.associate(target)
            start = loop.time()
            closing = asyncio.ensure_future(target.close(grace=10.0))
            assert await peer.pdu() == bytes([0x05, 0, 0, 0, 0, 4, 0, 0, 0, 0])
            assert await peer.rest() == abort_pdu(0, 0)
            await asyncio.wait_for(closing, TIMER + SLACK)
            assert elapsed_ok(loop.time() - start, TIMER), loop.time() - start
        await baseline.restored(None)


# ------------------------------------------------------------------ a peer that stops reading


def flood(target: Target, count: int) -> bytes:
    """``count`` requests that each earn a response, ignoring any window."""
    chunks: list[bytes] = []
    for message_id in range(1, count + 1):
        if target.kind == "listener":
            iuid = target.iuid_for(message_id)
            rq = NEventReportRQ(message_id, UPS_PUSH, iuid, 1, state_report(iuid))
            assert rq.dataset is not None
            chunks.append(pdata((1, 0x03, encode_command(rq)), (1, 0x02, rq.dataset)))
        else:
            get = NGetRQ(message_id, UPS_PUSH, target.iuid_for(message_id))
            chunks.append(pdata((1, 0x03, encode_command(get))))
    return b"".join(chunks)


async def _until(predicate: Callable[[], bool], timeout: float) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.01)


async def stalled_peer(target: Target, count: int = 3000) -> RawPeer:
    """Associate with a tiny receive buffer, send ``count`` requests, never read again."""
    loop = asyncio.get_running_loop()
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await loop.sock_connect(sock, ("127.0.0.1", target.port))
    reader, writer = await asyncio.open_connection(sock=sock)
    peer = RawPeer(reader, writer)
    await peer.associate(target)
    peer.writer.write(flood(target, count))
    transport = peer.writer.transport
    assert isinstance(transport, asyncio.Transport)
    transport.pause_reading()
    return peer


async def watch_buffer(association: Association, peak: list[int]) -> None:
    """Record the largest unsent backlog towards the peer until the association ends."""
    transport = association._transport  # noqa: SLF001 - the bound is what is tested
    while transport is not None and not association.closed.done():
        peak[0] = max(peak[0], transport.get_write_buffer_size())
        await asyncio.sleep(0.005)


@pytest.mark.parametrize("kind", ["listener", "scp"])
async def test_peer_that_stops_reading_is_cut_off(kind: Kind, tmp_path: Path) -> None:
    async with running(kind, tmp_path, config=SLOW) as target:
        await target.exercise(0)
        baseline = Baseline()
        loop = asyncio.get_running_loop()
        peer = await stalled_peer(target)
        start = loop.time()
        try:
            # Nothing moves either way: a timer (PDU or idle) aborts; the reset follows.
            try:
                await _until(lambda: not target.associations(), IDLE + 2.0 + SLACK)
            except TimeoutError:
                raise AssertionError("association to a peer that never reads not closed") from None
            assert loop.time() - start <= IDLE + 2.0 + SLACK
        finally:
            await peer.close()
        await target.exercise(1)
        await baseline.restored(target)


@pytest.mark.parametrize("kind", ["listener", "scp"])
async def test_write_buffer_bounded_when_peer_stops_reading(kind: Kind, tmp_path: Path) -> None:
    async with running(kind, tmp_path, config=SLOW) as target:
        await target.exercise(0)
        baseline = Baseline()
        peak = [0]
        peer = await stalled_peer(target)
        try:
            watcher = asyncio.ensure_future(watch_buffer(target.server_side(), peak))
            with suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(watcher), 1.0)
            assert peak[0] > WRITE_LIMIT // 2, peak  # the answers did back up
            # SCP handlers run in the window, so the limit plus a window's answers. The
            # listener's callback answers inline, outside the window: every request of
            # the read in progress is answered, so the limit plus one read's answers
            # (an asyncio read is at most 256 KiB; each RSP is smaller than its RQ).
            extra = 64 * 1024 if kind == "scp" else ONE_READ
            assert peak[0] <= WRITE_LIMIT + extra, f"peak write buffer {peak[0]} bytes"
        finally:
            await peer.close()
            await asyncio.wait_for(watcher, 5)
        await target.exercise(1)
        await baseline.restored(target)


# ------------------------------------------------------------------ reset mid-PDU


@pytest.mark.parametrize("phase", ["associate_rq", "pdata"])
@pytest.mark.parametrize("kind", KINDS)
async def test_reset_mid_pdu(kind: Kind, phase: str, tmp_path: Path) -> None:
    """SO_LINGER 0: the peer's close is a TCP RST half-way through a PDU."""
    async with running(kind, tmp_path, config=SLOW) as target:

        async def case() -> None:
            loop = asyncio.get_running_loop()
            reader, writer = await asyncio.open_connection("127.0.0.1", target.port)
            peer = RawPeer(reader, writer)
            if phase == "pdata":
                await peer.associate(target)
                half = pdata((3, 0x03, encode_command(CEchoRQ(9))))[:20]
            else:
                half = rq_bytes(target)[:50]
            writer.write(half)
            await writer.drain()
            await _until(lambda: bool(target.associations()), 5)
            sock = writer.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            start = loop.time()
            writer.transport.abort()
            await _until(lambda: not target.associations(), 2)
            assert loop.time() - start < TIMER  # by the reset, not by a timer

        await served_after(target, case)


# ------------------------------------------------------------------ the SCP's dead subscribers


class DeadSubscriber:
    """A subscriber AE that fails the SCP's event delivery in one of three ways.

    ``silent``: accepts TCP, never answers the A-ASSOCIATE-RQ (the SCP's -acceptTO);
    ``no_report_answer``: accepts the association, never answers the N-EVENT-REPORT
    (-rspTO); ``no_release_answer``: answers the report, then never answers the
    A-RELEASE-RQ the SCP sends once idle (-releaseTO). It records what it received.
    """

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.pdus: list[bytes] = []
        self.milestone: float | None = None  # when the awaited answer became due
        self.ended: float | None = None
        self.done = asyncio.Event()
        self._server: asyncio.Server | None = None

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return int(self._server.sockets[0].getsockname()[1])

    async def close(self) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    async def _pdu(self, reader: asyncio.StreamReader) -> bytes:
        header = await reader.readexactly(6)
        pdu = header + await reader.readexactly(struct.unpack(">I", header[2:])[0])
        self.pdus.append(pdu)
        return pdu

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        loop = asyncio.get_running_loop()
        try:
            if self.mode == "silent":
                self.milestone = loop.time()
                await reader.read()
                return
            rq = decode_pdu(1, (await self._pdu(reader))[6:])
            assert isinstance(rq, AAssociateRQ)
            writer.write(encode_pdu(accept_everything(rq)))
            if self.mode == "no_report_answer":
                await self._pdu(reader)
                self.milestone = loop.time()
            else:
                context_id, command = await self._command(reader)
                elements = decode_command_set(command)
                rsp = NEventReportRSP(
                    int(elements[0x00000110]),  # type: ignore[arg-type]
                    0,
                    str(elements[0x00000002]),
                    str(elements[0x00001000]),
                    int(elements[0x00001002]),  # type: ignore[arg-type]
                )
                writer.write(pdata((context_id, 0x03, encode_command(rsp))))
                assert (await self._pdu(reader))[0] == 0x05  # A-RELEASE-RQ, never answered
                self.milestone = loop.time()
            while True:
                await self._pdu(reader)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self.ended = loop.time()
            writer.close()
            self.done.set()

    async def _command(self, reader: asyncio.StreamReader) -> tuple[int, bytes]:
        """Read P-DATA-TF until a whole command set (and its data set) has arrived."""
        command = b""
        context_id = 0
        command_done = dataset_done = False
        while not (command_done and dataset_done):
            pdu = await self._pdu(reader)
            offset = 6
            while offset < len(pdu):
                length, context_id, control = struct.unpack_from(">IBB", pdu, offset)
                fragment = pdu[offset + 6 : offset + 4 + length]
                offset += 4 + length
                if control & 1:
                    command += fragment
                    if control & 2:
                        command_done = True
                        dataset_done = not command_has_dataset(decode_command_set(command))
                elif control & 2:
                    dataset_done = True
        return context_id, command


def accept_everything(rq: AAssociateRQ) -> AAssociateAC:
    """An AC accepting every context with its first syntax and every role asked for."""
    return AAssociateAC(
        rq.called_ae_title,
        rq.calling_ae_title,
        tuple(
            PresentationContextAC(pc.context_id, ContextResult.ACCEPTANCE, pc.transfer_syntaxes[0])
            for pc in rq.presentation_contexts
        ),
        UserInformation(
            max_length=16384,
            implementation_class_uid="1.2.826.0.1.3680043.9.7433.1.99",
            role_selections=rq.user_information.role_selections,
        ),
    )


DEAD_TIMER = {"silent": "accept", "no_report_answer": "response", "no_release_answer": "release"}


@pytest.mark.parametrize("mode", sorted(DEAD_TIMER))
async def test_scp_event_delivery_to_dead_subscriber(mode: str, tmp_path: Path) -> None:
    """The SCP as requestor: each dead subscriber is given up on by its own timer."""
    subscriber = DeadSubscriber(mode)
    port = await subscriber.start()
    config = replace(
        SLOW, accept_timeout=TIMER, response_timeout=TIMER, reaper_period=0.1, idle_timeout=None
    )
    try:
        async with running(
            "scp",
            tmp_path,
            config=config,
            remote_aes={"DEAD": RemoteAE("DEAD", "127.0.0.1", port)},
            retry_initial=60.0,
            retry_max=60.0,
            event_idle=0.2,
        ) as target:
            await target.exercise(0)
            baseline = Baseline()
            scu_options = SCUOptions(calling_ae_title="PEER", config=target.client_config)
            async with ups.connect(f"UPSSCP@127.0.0.1:{target.port}", scu_options) as scu:
                # Subscribing to a workitem queues its State Report at once (CC.2.4.3).
                assert (await scu.subscribe("DEAD", target.iuid_for(0))).status == 0
            await asyncio.wait_for(subscriber.done.wait(), TIMER + 0.5 + SLACK)
            assert subscriber.milestone is not None and subscriber.ended is not None
            elapsed = subscriber.ended - subscriber.milestone
            assert elapsed_ok(elapsed, TIMER), (DEAD_TIMER[mode], elapsed)
            if mode != "silent":
                assert subscriber.pdus[-1] == abort_pdu(0, 0), subscriber.pdus[-1][:10]
            await target.exercise(1)  # still serving
            await baseline.restored(target)
    finally:
        await subscriber.close()
