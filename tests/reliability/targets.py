"""The two servers the reliability batteries attack, and the tools to attack them with.

``running(kind, ...)`` starts the event listener (``serve_events``) or the reference
SCP (``UPSSCP``) on 127.0.0.1 and gives a :class:`Target`: its port, its live
associations, and ``exercise()``, one normal association doing one checked operation
(an N-EVENT-REPORT the listener must deliver, an N-GET of a seeded workitem the SCP
must return intact). :class:`Baseline` snapshots open file descriptors and asyncio
tasks and later waits until the process is back to them, with no association and no
live association timer left. :class:`RawPeer` speaks bytes; ``associate_rq`` builds
A-ASSOCIATE-RQ PDUs by hand so a test can break any field of them (PS3.8 §9.3.2).
"""

from __future__ import annotations

import asyncio
import os
import ssl
import struct
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from pydicom.dataset import Dataset

import ups
from tests.net.conftest import live_timers
from tests.net.pki import PKI
from ups.dimse.datasets import decode_dataset, encode_dataset
from ups.dimse.messages import NEventReportRQ, NEventReportRSP, NGetRQ, NGetRSP
from ups.net.association import Association
from ups.net.config import AssociationConfig
from ups.net.requestor import build_request, connect
from ups.net.tls import TLSOptions
from ups.pdu.items import RoleSelection, UserIdentityRQ
from ups.pdu.negotiation import IdentityVerifier
from ups.services.events import UPSEvent
from ups.services.listener import EventListener, serve_events
from ups.services.scp import UPSSCP
from ups.services.scp.config import SCPOptions
from ups.services.scu import SCUOptions
from ups.services.settings import ListenerSettings
from ups.services.uids import IMPLICIT_VR_LITTLE_ENDIAN, UPS_EVENT, UPS_PUSH, VERIFICATION

Kind = Literal["listener", "scp"]
KINDS: tuple[Kind, ...] = ("listener", "scp")
IVR = IMPLICIT_VR_LITTLE_ENDIAN
APPLICATION_CONTEXT = b"1.2.840.10008.3.1.1.1"
SEEDED = tuple(f"1.2.826.0.1.3680043.9.7433.8.{i}" for i in range(1, 6))
"""Workitems the SCP target holds from the start (each N-GET checks one of them)."""

SERVER_CONFIG = AssociationConfig(
    accept_timeout=5.0,
    request_timeout=2.0,
    release_timeout=2.0,
    response_timeout=5.0,
    reaper_period=0.5,
    pdu_timeout=2.0,
    so_close_delay=0.01,
)
"""Short enough that a wedged case ends fast, long enough for two loaded CPUs."""

CLIENT_CONFIG = AssociationConfig(
    connect_timeout=5.0,
    accept_timeout=5.0,
    release_timeout=5.0,
    response_timeout=10.0,
    reaper_period=1.0,
    so_close_delay=0.01,
)


def fd_count() -> int:
    """Every open file descriptor of this process (sockets, files, pipes)."""
    return len(os.listdir("/proc/self/fd"))


def server_tls(pki: PKI) -> TLSOptions:
    return TLSOptions(
        enabled=True,
        keystore=pki.server.pem,
        keystore_password=pki.password,
        truststore=pki.ca_pem,
        truststore_password=pki.password,
        handshake_timeout=1.0,
    )


def client_tls(pki: PKI) -> TLSOptions:
    return TLSOptions(
        enabled=True,
        keystore=pki.client.pem,
        keystore_password=pki.password,
        truststore=pki.ca_pem,
        truststore_password=pki.password,
    )


def state_report(iuid: str) -> bytes:
    """An UPS State Report information set naming its workitem (checked on delivery)."""
    ds = Dataset()
    ds.ProcedureStepState = "IN PROGRESS"
    ds.InputReadinessState = "READY"
    ds.ProcedureStepLabel = iuid[-16:]
    return encode_dataset(ds, IVR)


@dataclass
class Target:
    """A running listener or SCP and how a well-behaved peer talks to it."""

    kind: Kind
    ae_title: str
    port: int
    listener: EventListener | None = None
    scp: UPSSCP | None = None
    client_config: AssociationConfig = CLIENT_CONFIG
    calling: str = "PEER"
    identity: UserIdentityRQ | None = None
    delivered: dict[str, int] = field(default_factory=dict)
    """Listener: how many times each Affected SOP Instance UID reached the consumer."""
    closed: bool = False

    async def close(self, grace: float = 2.0) -> None:
        """Stop the server (release what is open, abort after ``grace``); only once."""
        if self.closed:
            return
        self.closed = True
        if self.listener is not None:
            await self.listener.close(grace)
        elif self.scp is not None:
            await self.scp.close(grace)

    def server_side(self) -> Association:
        """The one association the server holds (fails if there are none or several)."""
        (association,) = self.associations()
        return association

    @property
    def main_sop_class(self) -> str:
        return UPS_EVENT if self.kind == "listener" else UPS_PUSH

    def associations(self) -> frozenset[Association]:
        if self.listener is not None:
            return self.listener.associations
        assert self.scp is not None
        return frozenset(self.scp.server.associations)

    def contexts(self) -> list[tuple[str, Sequence[str]]]:
        return [(self.main_sop_class, (IVR,)), (VERIFICATION, (IVR,))]

    async def open(
        self,
        *,
        calling: str | None = None,
        identity: UserIdentityRQ | None = None,
        config: AssociationConfig | None = None,
    ) -> Association:
        config = config or self.client_config
        roles = [RoleSelection(UPS_EVENT, False, True)] if self.kind == "listener" else []
        rq = build_request(
            self.ae_title,
            calling or self.calling,
            self.contexts(),
            config,
            roles=roles,
            user_identity=identity or self.identity,
        )
        return await connect("127.0.0.1", self.port, rq, config)

    async def check_one(self, association: Association, iuid: str) -> None:
        """One operation whose success response must also be right in every field."""
        context = association.context_for(self.main_sop_class).context_id
        message_id = association.new_message_id()
        if self.kind == "listener":
            rq = NEventReportRQ(message_id, UPS_PUSH, iuid, 1, state_report(iuid))
            rsp = await association.request(rq, context)
            assert isinstance(rsp, NEventReportRSP), rsp
            assert rsp.status == 0, rsp
            assert rsp.message_id_being_responded_to == message_id
            assert rsp.affected_sop_instance_uid == iuid and rsp.event_type_id == 1
            assert self.delivered.get(iuid, 0) >= 1, "acknowledged but not delivered"
            return
        get = NGetRQ(message_id, UPS_PUSH, iuid)
        answer = await association.request(get, context)
        assert isinstance(answer, NGetRSP), answer
        assert answer.status == 0, answer
        assert answer.message_id_being_responded_to == message_id
        ds = decode_dataset(answer.dataset or b"", IVR)
        assert ds.SOPInstanceUID == iuid and ds.ProcedureStepState == "SCHEDULED"

    def iuid_for(self, n: int) -> str:
        if self.kind == "scp":
            return SEEDED[n % len(SEEDED)]
        return f"1.2.826.0.1.3680043.9.7433.9.{n}"

    async def exercise(self, n: int = 0) -> None:
        """A normal association: associate, one checked operation, release."""
        association = await self.open()
        try:
            await self.check_one(association, self.iuid_for(n))
            await association.release()
        finally:
            if not association.closed.done():
                association.abort()
            await association.wait_closed()


@asynccontextmanager
async def running(
    kind: Kind,
    tmp_path: Path,
    *,
    config: AssociationConfig = SERVER_CONFIG,
    pki: PKI | None = None,
    calling_ae_titles: frozenset[str] | None = None,
    verify_identity: IdentityVerifier | None = None,
    identity: UserIdentityRQ | None = None,
    grace: float = 2.0,
    window: int = 64,
    seed: bool = True,
    **scp_overrides: Any,
) -> AsyncIterator[Target]:
    """Start the listener or the SCP; close it (``grace`` seconds to release) after.

    ``scp_overrides`` are further ``SCPOptions`` fields (remote AEs, retry delays).
    """
    client = CLIENT_CONFIG
    if pki is not None:
        config = replace(config, tls=server_tls(pki))
        client = replace(client, tls=client_tls(pki))
    if kind == "listener":
        delivered: dict[str, int] = {}

        def consume(event: UPSEvent) -> None:
            uid = event.iuid
            delivered[uid] = delivered.get(uid, 0) + 1

        listener = serve_events(
            consume,
            ("127.0.0.1", 0),
            "LISTENER",
            ListenerSettings(
                config=config,
                window=window,
                calling_ae_titles=calling_ae_titles,
                verify_identity=verify_identity,
            ),
        )
        await listener.start()
        target = Target(
            kind,
            "LISTENER",
            listener.port,
            listener=listener,
            client_config=client,
            identity=identity,
            delivered=delivered,
        )
        try:
            yield target
        finally:
            await target.close(grace)
        return
    options = SCPOptions(
        ae_title="UPSSCP",
        host="127.0.0.1",
        port=0,
        db=tmp_path / "ups.db",
        config=config,
        announce_status=False,
        event_idle=0.3,
        shutdown_flush=0.2,
        max_ops_performed=window,
        calling_ae_titles=calling_ae_titles,
        verify_identity=verify_identity,
    )
    scp = UPSSCP(replace(options, **scp_overrides))
    await scp.start()
    target = Target(kind, "UPSSCP", scp.port, scp=scp, client_config=client, identity=identity)
    try:
        if seed:
            scu_options = SCUOptions(
                calling_ae_title=target.calling, config=client, user_identity=identity
            )
            async with ups.connect(f"UPSSCP@127.0.0.1:{scp.port}", scu_options) as scu:
                for iuid in SEEDED:
                    assert (await scu.create(iuid=iuid)).status == 0
        yield target
    finally:
        await target.close(grace)


# ------------------------------------------------------------------ resources


class Baseline:
    """Open fds and asyncio tasks now; ``restored()`` waits until we are back to them."""

    def __init__(self) -> None:
        self.fds = fd_count()
        self.tasks = set(asyncio.all_tasks())

    def _extra_tasks(self) -> set[asyncio.Task[object]]:
        current = asyncio.current_task()
        return {t for t in asyncio.all_tasks() if t not in self.tasks and t is not current}

    def problems(self, target: Target | None) -> list[str]:
        loop = asyncio.get_running_loop()
        found: list[str] = []
        if target is not None and target.associations():
            found.append(f"{len(target.associations())} associations still tracked")
        if fd_count() > self.fds:
            found.append(f"fds {fd_count()} > baseline {self.fds}")
        if self._extra_tasks():
            found.append(f"tasks left: {self._extra_tasks()}")
        if live_timers(loop):
            found.append(f"live association timers: {live_timers(loop)}")
        return found

    async def restored(self, target: Target | None, timeout: float = 5.0) -> None:
        """Wait (bounded) for the condition; a leak fails with what is left."""
        with suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                while self.problems(target):
                    await asyncio.sleep(0.01)
        assert not self.problems(target), self.problems(target)


# ------------------------------------------------------------------ raw bytes


def item(kind: int, value: bytes) -> bytes:
    """A PS3.8 §9.3.2 item: type, reserved, 2-byte length, value."""
    return struct.pack(">BxH", kind, len(value)) + value


def context_item(context_id: int, abstract: str, syntaxes: Sequence[str] = (IVR,)) -> bytes:
    subs = item(0x30, abstract.encode()) + b"".join(item(0x40, ts.encode()) for ts in syntaxes)
    return item(0x20, bytes((context_id, 0, 0, 0)) + subs)


def associate_rq(
    called: bytes,
    calling: bytes = b"PEER",
    contexts: Sequence[bytes] = (),
    *,
    max_length: int = 16384,
    user_extra: bytes = b"",
) -> bytes:
    """An A-ASSOCIATE-RQ (PS3.8 §9.3.2) with raw AE title bytes and prebuilt contexts."""
    user = (
        item(0x51, struct.pack(">I", max_length))
        + item(0x52, ups.IMPLEMENTATION_CLASS_UID.encode())
        + user_extra
    )
    body = (
        struct.pack(">HH", 1, 0)
        + called.ljust(16, b" ")
        + calling.ljust(16, b" ")
        + bytes(32)
        + item(0x10, APPLICATION_CONTEXT)
        + b"".join(contexts)
        + item(0x50, user)
    )
    return struct.pack(">BxI", 0x01, len(body)) + body


def abort_pdu(source: int, reason: int) -> bytes:
    """A-ABORT (PS3.8 §9.3.8)."""
    return bytes([0x07, 0x00, 0, 0, 0, 4, 0x00, 0x00, source, reason])


def reject_pdu(result: int, source: int, reason: int) -> bytes:
    """A-ASSOCIATE-RJ (PS3.8 §9.3.4)."""
    return bytes([0x03, 0x00, 0, 0, 0, 4, 0x00, result, source, reason])


def pdata(*pdvs: tuple[int, int, bytes]) -> bytes:
    """A P-DATA-TF of (context ID, message control header, fragment) PDVs."""
    items = b"".join(
        struct.pack(">IBB", len(data) + 2, cid, control) + data for cid, control, data in pdvs
    )
    return struct.pack(">BxI", 0x04, len(items)) + items


class RawPeer:
    """A TCP (optionally TLS) client that speaks bytes."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, port: int, ssl_context: ssl.SSLContext | None = None) -> RawPeer:
        reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=ssl_context)
        return cls(reader, writer)

    async def pdu(self, timeout: float = 5.0) -> bytes:
        async with asyncio.timeout(timeout):
            header = await self.reader.readexactly(6)
            (length,) = struct.unpack(">I", header[2:])
            return header + await self.reader.readexactly(length)

    async def rest(self, timeout: float = 5.0) -> bytes:
        """Everything until the peer closes (fails the test if it does not, in time)."""
        async with asyncio.timeout(timeout):
            try:
                return await self.reader.read()
            except (ConnectionResetError, ssl.SSLError):
                return b""

    async def associate(self, target: Target, extra: Sequence[bytes] = ()) -> bytes:
        """Propose the target's SOP class (ID 1) and Verification (ID 3); the AC bytes."""
        contexts = [context_item(1, target.main_sop_class), context_item(3, VERIFICATION)]
        self.writer.write(associate_rq(target.ae_title.encode(), b"RAWPEER", [*contexts, *extra]))
        answer = await self.pdu()
        assert answer[0] == 0x02, answer[:10]
        return answer

    async def close(self) -> None:
        self.writer.close()
        with suppress(OSError, ssl.SSLError):
            await self.writer.wait_closed()


PeerFactory = Callable[..., Awaitable[RawPeer]]


@asynccontextmanager
async def raw_peers() -> AsyncIterator[PeerFactory]:
    """A factory of RawPeers that are all closed on the way out."""
    opened: list[RawPeer] = []

    async def make(port: int, ssl_context: ssl.SSLContext | None = None) -> RawPeer:
        peer = await RawPeer.open(port, ssl_context)
        opened.append(peer)
        return peer

    try:
        yield make
    finally:
        for peer in opened:
            await peer.close()
