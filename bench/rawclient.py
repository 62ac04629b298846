"""A minimal pre-encoded DICOM sender on a plain ``asyncio.Protocol``.

It speaks just enough PS3.8 to open an association, fire pre-encoded requests (UPS State
Report N-EVENT-REPORT-RQs or C-ECHO-RQs) and count the responses, with up to ``window``
outstanding; then it releases. Per request it does one dict-free list lookup, one
``transport.write`` and a little ``struct`` parsing of the response command set, so a
listener under test is the bottleneck, not this sender.
"""

from __future__ import annotations

import asyncio
import socket
import struct
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import cast

from bench import rawpdu


class RawProtocolError(Exception):
    """The peer rejected, aborted or answered something this sender cannot follow."""


@dataclass(slots=True)
class Plan:
    """What one association sends: ``total`` requests (``warmup`` of them untimed)."""

    templates: list[bytes]
    total: int
    warmup: int
    window: int
    sent: int = 0
    done: int = 0
    sent_at: list[int] = field(default_factory=list)
    latencies_ns: list[int] = field(default_factory=list)
    t_start: int = 0
    t_end: int = 0
    bad_status: int = 0
    serial_offset: int = 0
    """Non-zero: each send stamps the next UID serial there (``unique`` runs)."""


class RawAssociation(asyncio.Protocol):
    """One association. ``plan`` may be None for an association held idle (memory runs)."""

    def __init__(self, rq: bytes, plan: Plan | None) -> None:
        self._rq = rq
        self.plan = plan
        self._buf = bytearray()
        self._command = bytearray()
        self._transport: asyncio.Transport | None = None
        loop = asyncio.get_running_loop()
        self.accepted: asyncio.Future[None] = loop.create_future()
        self.finished: asyncio.Future[None] = loop.create_future()
        self.released: asyncio.Future[None] = loop.create_future()

    # -- asyncio.Protocol -------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's is no subclass
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._transport.write(self._rq)

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(RawProtocolError(f"connection lost: {exc or 'closed by peer'}"))
        if not self.released.done():
            self.released.set_result(None)

    def data_received(self, data: bytes) -> None:
        buf = self._buf
        buf += data
        pos = 0
        try:
            while len(buf) - pos >= rawpdu.HEADER_LEN:
                pdu_type, _, length = struct.unpack_from(">BBL", buf, pos)
                end = pos + rawpdu.HEADER_LEN + length
                if end > len(buf):
                    break
                self._on_pdu(pdu_type, memoryview(buf)[pos + rawpdu.HEADER_LEN : end])
                pos = end
        except (RawProtocolError, ValueError) as exc:
            # The traceback may pin memoryviews of ``buf``: drop it rather than resize it.
            self._buf = bytearray()
            self._fail(exc)
            self.abort()
            return
        del buf[:pos]

    # -- PDUs -------------------------------------------------------------------------------

    def _on_pdu(self, pdu_type: int, body: memoryview) -> None:
        if pdu_type == rawpdu.P_DATA_TF:
            for _, header, fragment in rawpdu.pdvs(body):
                if header & 0x01:  # command fragment; data set PDVs are ignored
                    self._command += fragment
                    if header & 0x02:
                        self._on_response(rawpdu.command_values(memoryview(self._command)))
                        self._command.clear()
        elif pdu_type == rawpdu.A_ASSOCIATE_AC:
            result = rawpdu.accepted_context(body)
            if result != 0:
                raise RawProtocolError(f"presentation context not accepted (result {result})")
            if not self.accepted.done():
                self.accepted.set_result(None)
        elif pdu_type == rawpdu.A_RELEASE_RP:
            if not self.released.done():
                self.released.set_result(None)
            if self._transport is not None:
                self._transport.close()
        elif pdu_type == rawpdu.A_ASSOCIATE_RJ:
            raise RawProtocolError(f"association rejected: {bytes(body[:4]).hex()}")
        elif pdu_type == rawpdu.A_ABORT:
            raise RawProtocolError(f"association aborted by peer: {bytes(body[:4]).hex()}")
        else:
            raise RawProtocolError(f"unexpected PDU type 0x{pdu_type:02x}")

    def _on_response(self, values: dict[int, bytes]) -> None:
        plan = self.plan
        if plan is None:
            raise RawProtocolError("response without a request")
        now = time.perf_counter_ns()
        (message_id,) = struct.unpack("<H", values[0x0120])
        if values.get(0x0900, b"\x00\x00") != b"\x00\x00":
            plan.bad_status += 1
        index = plan.done
        plan.done += 1
        if index >= plan.warmup:
            plan.latencies_ns.append(now - plan.sent_at[message_id])
        if plan.done == plan.warmup:
            plan.t_start = now
        if plan.done == plan.total:
            plan.t_end = now
            if not self.finished.done():
                self.finished.set_result(None)
        elif plan.sent < plan.total:
            self._send_next()

    # -- sending ----------------------------------------------------------------------------

    def start(self) -> None:
        plan = self.plan
        assert plan is not None
        if plan.warmup == 0:
            plan.t_start = time.perf_counter_ns()
        for _ in range(min(plan.window, plan.total)):
            self._send_next()

    def _send_next(self) -> None:
        plan = self.plan
        assert plan is not None and self._transport is not None
        slot = plan.sent % len(plan.templates)
        plan.sent_at[slot + 1] = time.perf_counter_ns()
        plan.sent += 1
        if plan.serial_offset:
            pdu = rawpdu.stamp_serial(plan.templates[slot], plan.serial_offset, plan.sent)
            self._transport.write(pdu)
            return
        self._transport.write(plan.templates[slot])

    async def release(self) -> None:
        if self._transport is None or self._transport.is_closing():
            return
        self._transport.write(rawpdu.release_rq())
        await self.released

    def abort(self) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.write(rawpdu.abort())
            self._transport.close()

    def _fail(self, exc: Exception) -> None:
        for fut in (self.accepted, self.finished):
            if not fut.done():
                fut.set_exception(exc)
                fut.exception()  # mark retrieved: the awaiting side reports it


# -- public entry points ------------------------------------------------------------------------

KINDS: dict[str, tuple[str, Callable[[], rawpdu.Template]]] = {
    "event": (rawpdu.UPS_EVENT, rawpdu.event_template),
    "echo": (rawpdu.VERIFICATION, rawpdu.echo_template),
}


def make_plan(kind: str, total: int, warmup: int, window: int, uid_prefix: str = "") -> Plan:
    """``uid_prefix``: every event gets its own UPS UID, ``<prefix>.<serial>`` (serials
    1..total+warmup, ``rawpdu.unique_uid``), so that no two are the same event."""
    unique = bool(uid_prefix) and kind == "event"
    template = rawpdu.unique_event_template(uid_prefix) if unique else KINDS[kind][1]()
    # Message IDs 1..count; with a window > 1 every in-flight ID is distinct.
    count = max(1, min(total, 65535))
    templates = [template.stamped(i + 1) for i in range(count)]
    return Plan(
        templates,
        total,
        warmup,
        window,
        sent_at=[0] * (count + 1),
        serial_offset=template.serial_offset,
    )


async def open_association(
    host: str,
    port: int,
    *,
    kind: str,
    window: int = 1,
    plan: Plan | None = None,
    called: str = "ANY-SCP",
    calling: str = "BENCH-RAW",
    timeout: float = 30.0,
) -> RawAssociation:
    loop = asyncio.get_running_loop()
    rq = rawpdu.associate_rq(calling, called, KINDS[kind][0], window=window)
    _, proto = await loop.create_connection(lambda: RawAssociation(rq, plan), host, port)
    try:
        await asyncio.wait_for(asyncio.shield(proto.accepted), timeout)
    except BaseException:
        proto.abort()
        raise
    return proto


async def run_requests(
    host: str,
    port: int,
    *,
    kind: str = "event",
    total: int,
    warmup: int = 0,
    window: int = 1,
    associations: int = 1,
    timeout: float = 120.0,
    unique: bool = False,
) -> dict[str, object]:
    """Send ``total`` requests on each of ``associations`` concurrent associations.

    Returns requests/s over the timed part (all associations together), per-request
    latencies in ns (sampled from every association) and the count of non-success statuses.
    With ``unique`` every event names a UPS of its own (a fresh UID prefix per association).
    """
    prefixes = [f"2.25.{uuid.uuid4().int}" if unique else "" for _ in range(associations)]
    plans = [make_plan(kind, total + warmup, warmup, window, prefix) for prefix in prefixes]
    protos = await asyncio.gather(
        *(open_association(host, port, kind=kind, window=window, plan=p) for p in plans)
    )
    try:
        for proto in protos:
            proto.start()
        await asyncio.wait_for(asyncio.gather(*(p.finished for p in protos)), timeout)
        await asyncio.wait_for(asyncio.gather(*(p.release() for p in protos)), timeout)
    except BaseException:
        for proto in protos:
            proto.abort()
        raise
    t0 = min(p.t_start for p in plans)
    t1 = max(p.t_end for p in plans)
    latencies = [lat for p in plans for lat in p.latencies_ns]
    return {
        "requests": total * associations,
        "elapsed_s": (t1 - t0) / 1e9,
        "latencies_ns": latencies,
        "bad_status": sum(p.bad_status for p in plans),
    }


class HeldAssociations:
    """Associations opened and left idle (the memory scenario); ``close`` releases them."""

    def __init__(self) -> None:
        self.protos: list[RawAssociation] = []

    async def open(
        self, host: str, port: int, count: int, parallel: int = 4, timeout: float = 60.0
    ) -> None:
        """Open ``count`` associations, ``parallel`` at a time: pynetdicom's listen backlog
        is 5, and an overflowing SYN queue turns into seconds of SYN retransmission."""
        gate = asyncio.Semaphore(parallel)

        async def one() -> None:
            async with gate:
                self.protos.append(
                    await open_association(host, port, kind="event", timeout=timeout)
                )

        await asyncio.gather(*(one() for _ in range(count)))

    def alive(self) -> int:
        """How many held associations the peer has not closed or aborted."""
        return sum(not p.released.done() for p in self.protos)

    async def close(self, timeout: float = 60.0) -> None:
        protos, self.protos = self.protos, []
        try:
            await asyncio.wait_for(asyncio.gather(*(p.release() for p in protos)), timeout)
        finally:
            for proto in protos:
                proto.abort()
