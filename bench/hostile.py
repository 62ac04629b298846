"""Hostile data sets over a raw association, and how the peer answers them (scenario 11).

Each shape is one DIMSE request whose data set is built here with ``struct`` (Implicit VR
Little Endian unless the shape needs Explicit VR), sent by a plain asyncio streams client
split over P-DATA-TFs within the peer's Maximum Length (PS3.8 §9.3.5, D.1):

``items``        (0040,4018) SQ of undefined length holding N empty items (FFFE,E000 length
                 0) and its Sequence Delimitation Item (PS3.5 §7.5): 8 bytes per item
``deep``         N nested sequences of undefined length, each in an item of undefined length
``huge-length``  one element whose Value Length is 0xFFFFFFF0, then 4 KiB of bytes
``sq-as-lo``     (0040,4018), an SQ in the dictionary, sent with VR LO and item bytes inside
``sq-as-ul``     the same with VR UL (Explicit VR Little Endian)
``endless``      data PDVs that never end: no fragment is marked last; the sender stops when
                 the peer answers, aborts or closes, or after N bytes

The request is an N-EVENT-REPORT-RQ on the UPS Event context (target ``listener``) or an
N-CREATE-RQ with an Affected SOP Instance UID on the UPS Push context (target ``scp``).

While the hostile request is being sent and answered, a second association (opened at the
same moment) sends a C-ECHO-RQ every ~20 ms and waits for each answer: whether they were
all answered Success, and the worst round trip (the first one includes opening the
association), say whether the peer kept serving others.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import secrets
import socket
import struct
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from bench import rawpdu

SQ_TAG = (0x0040, 0x4018)  # Scheduled Workitem Code Sequence: SQ in the dictionary
ECHO_EVERY_S = 0.020
ENDLESS_GRACE_S = 5.0  # after the byte limit: how long an answer may still take
MAX_ANSWER_PDU = 1 << 20


# -- data sets (PS3.5 §7.1, §7.5) ------------------------------------------------------------


def _implicit(group: int, element: int, value: bytes) -> bytes:
    return struct.pack("<HHL", group, element, len(value)) + value


def _implicit_header(group: int, element: int, length: int) -> bytes:
    return struct.pack("<HHL", group, element, length)


ITEM = struct.pack("<HHL", 0xFFFE, 0xE000, 0)  # empty item, defined length
ITEM_UNDEFINED = struct.pack("<HHL", 0xFFFE, 0xE000, 0xFFFFFFFF)
ITEM_DELIMITER = struct.pack("<HHL", 0xFFFE, 0xE00D, 0)
SEQ_DELIMITER = struct.pack("<HHL", 0xFFFE, 0xE0DD, 0)
SQ_UNDEFINED = _implicit_header(*SQ_TAG, 0xFFFFFFFF)


def state_report_tail(explicit: bool = False) -> bytes:
    """(0040,4041) and (0074,1000): what follows (0040,4018) in tag order."""
    if not explicit:
        return rawpdu.state_report_dataset()
    return (
        struct.pack("<HH2sH", 0x0040, 0x4041, b"CS", 6)
        + b"READY "
        + struct.pack("<HH2sH", 0x0074, 0x1000, b"CS", 12)
        + b"IN PROGRESS "
    )


def empty_items(count: int) -> bytes:
    return SQ_UNDEFINED + ITEM * count + SEQ_DELIMITER + state_report_tail()


def deep(depth: int) -> bytes:
    return (
        ((SQ_UNDEFINED + ITEM_UNDEFINED) * depth)
        + ((ITEM_DELIMITER + SEQ_DELIMITER) * depth)
        + state_report_tail()
    )


def huge_length() -> bytes:
    readiness = _implicit(0x0040, 0x4041, b"READY ")
    return readiness + _implicit_header(0x0040, 0xA160, 0xFFFFFFF0) + b"A" * 4096


def sq_as(vr: bytes) -> bytes:
    """(0040,4018) sent as ``vr`` (a 2-byte-length VR) holding an item with one element."""
    inner = struct.pack("<HH2sH", 0x0008, 0x0100, b"SH", 4) + b"ABCD"
    item = struct.pack("<HHL", 0xFFFE, 0xE000, len(inner)) + inner
    return struct.pack("<HH2sH", *SQ_TAG, vr, len(item)) + item + state_report_tail(True)


def endless_unit() -> tuple[bytes, bytes]:
    """(prefix, item): an undefined-length SQ whose items (4 KiB of text each) never end."""
    text = b"hostile " * 509  # 4072 bytes, even
    item = struct.pack("<HHL", 0xFFFE, 0xE000, 8 + len(text)) + _implicit(0x0040, 0xA160, text)
    return SQ_UNDEFINED, item


@dataclass(frozen=True, slots=True)
class Shape:
    transfer_syntax: str
    build: Callable[[int], bytes] | None  # None: endless (see ``endless_fragments``)
    what: str


SHAPES: dict[str, Shape] = {
    "items": Shape(rawpdu.IMPLICIT_VR_LE, empty_items, "SQ, undefined length, N empty items"),
    "deep": Shape(rawpdu.IMPLICIT_VR_LE, deep, "N nested sequences"),
    "huge-length": Shape(rawpdu.IMPLICIT_VR_LE, lambda _: huge_length(), "Value Length 0xFFFFFFF0"),
    "sq-as-lo": Shape(rawpdu.EXPLICIT_VR_LE, lambda _: sq_as(b"LO"), "SQ tag sent as LO"),
    "sq-as-ul": Shape(rawpdu.EXPLICIT_VR_LE, lambda _: sq_as(b"UL"), "SQ tag sent as UL"),
    "endless": Shape(rawpdu.IMPLICIT_VR_LE, None, "data PDVs that never end"),
}


def endless_fragments(context_id: int, max_pdu: int, limit: int) -> Iterator[bytes]:
    """Non-last data PDVs, each filling a P-DATA-TF, until ``limit`` bytes were sent."""
    prefix, item = endless_unit()
    step = max_pdu - 6
    periodic = item * (step // len(item) + 2)
    first = (prefix + periodic)[:step]
    yield rawpdu.data_fragment(context_id, first, last=False)
    offset, sent = (step - len(prefix)) % len(item), step
    while sent < limit:
        yield rawpdu.data_fragment(context_id, periodic[offset : offset + step], last=False)
        offset = (offset + step) % len(item)
        sent += step


# -- targets ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Target:
    called: str
    abstract_syntax: str
    command: Callable[[], bytes]


TARGETS: dict[str, Target] = {
    "listener": Target("ANY-SCP", rawpdu.UPS_EVENT, lambda: rawpdu.n_event_report_rq(1)),
    "scp": Target(
        "UPSSCP",
        rawpdu.UPS_PUSH,
        lambda: rawpdu.n_create_rq(
            1, rawpdu.UPS_PUSH, f"2.25.{int.from_bytes(secrets.token_bytes(15), 'big')}"
        ),
    ),
}


# -- a streams association ---------------------------------------------------------------------


class Answer(Exception):
    """How the peer answered: a response status, an A-ABORT, or a closed connection."""


class Conn:
    """One raw association over asyncio streams (bench-side, not a hot path)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.max_pdu = 16384
        self.context_id = 1
        self.sent = 0

    @classmethod
    async def open(
        cls,
        host: str,
        port: int,
        called: str,
        abstract: str,
        transfer_syntax: str = rawpdu.IMPLICIT_VR_LE,
    ) -> Conn:
        reader, writer = await asyncio.open_connection(host, port)
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn = cls(reader, writer)
        try:
            writer.write(
                rawpdu.associate_rq(
                    "BENCH-HOSTILE", called, abstract, transfer_syntax=transfer_syntax
                )
            )
            pdu_type, body = await conn.read_pdu()
            if pdu_type != rawpdu.A_ASSOCIATE_AC:
                raise Answer(f"association not accepted: PDU 0x{pdu_type:02x} {body[:4].hex()}")
            result = rawpdu.accepted_context(memoryview(body))
            if result != 0:
                raise Answer(f"presentation context not accepted (result {result})")
            conn.max_pdu = rawpdu.max_pdu_length(body) or conn.max_pdu  # 0: no limit
        except BaseException:
            conn.close()
            raise
        return conn

    async def read_pdu(self) -> tuple[int, bytes]:
        header = await self.reader.readexactly(6)
        pdu_type, _, length = struct.unpack(">BBL", header)
        if length > MAX_ANSWER_PDU:
            raise Answer(f"PDU 0x{pdu_type:02x} of {length} bytes")
        return pdu_type, await self.reader.readexactly(length)

    async def response_status(self) -> int:
        """Read until a complete response command set; its Status (0000,0900)."""
        command = bytearray()
        while True:
            pdu_type, body = await self.read_pdu()
            if pdu_type == rawpdu.A_ABORT:
                raise Answer(f"A-ABORT source {body[2]} reason {body[3]}")
            if pdu_type != rawpdu.P_DATA_TF:
                raise Answer(f"PDU 0x{pdu_type:02x}")
            for _, header, fragment in rawpdu.pdvs(memoryview(body)):
                if header & 0x01:
                    command += fragment
                    if header & 0x02:
                        values = rawpdu.command_values(bytes(command))
                        return int(struct.unpack("<H", values.get(0x0900, b"\xff\xff"))[0])

    async def answer(self) -> str:
        """The peer's first answer, as a short text."""
        try:
            return f"status 0x{await self.response_status():04X}"
        except Answer as exc:
            return str(exc)
        except (asyncio.IncompleteReadError, ConnectionError):
            return "closed"

    async def send_all(self, pdus: Iterator[bytes]) -> None:
        """Write ``pdus`` with flow control, counting ``sent``. Stops quietly if the peer
        closes (the answer says how)."""
        try:
            for pdu in pdus:
                self.writer.write(pdu)
                self.sent += len(pdu)
                await self.writer.drain()
        except ConnectionError:
            pass

    def abort(self) -> None:
        if not self.writer.is_closing():
            self.writer.write(rawpdu.abort())
        self.close()

    def close(self) -> None:
        self.writer.close()


# -- the C-ECHO probe ---------------------------------------------------------------------------


async def echo_probe(
    host: str, port: int, called: str, stop: asyncio.Event, deadline: float
) -> dict[str, Any]:
    """C-ECHO every ~20 ms on a new association until ``stop``: at least one, each wait
    bounded by ``deadline`` (``perf_counter``). The first round trip includes the open."""
    sent = ok = 0
    worst = 0.0
    error = ""
    template = rawpdu.echo_template()
    pending_since = time.perf_counter()
    conn: Conn | None = None
    try:
        conn = await asyncio.wait_for(
            Conn.open(host, port, called, rawpdu.VERIFICATION),
            max(deadline - time.perf_counter(), 0.1),
        )
        while True:
            sent += 1
            conn.writer.write(template.stamped(sent))
            status = await asyncio.wait_for(
                conn.response_status(), max(deadline - time.perf_counter(), 0.1)
            )
            worst = max(worst, time.perf_counter() - pending_since)
            ok += status == 0
            if stop.is_set():
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), ECHO_EVERY_S)
            pending_since = time.perf_counter()
    except TimeoutError:
        error = "timed out"
    except (Answer, OSError, asyncio.IncompleteReadError) as exc:
        error = f"{type(exc).__name__}: {exc}"
    finally:
        if conn is not None:
            conn.abort()
    if error:
        worst = max(worst, time.perf_counter() - pending_since)
    return {
        "echo_sent": sent,
        "echo_ok": ok / sent if sent else 0.0,
        "echo_worst_ms": worst * 1e3,
        "echo_error": error,
    }


# -- one hostile run ----------------------------------------------------------------------------


async def run(
    host: str, port: int, shape: str, *, target: str, size: int, timeout: float = 60.0
) -> dict[str, Any]:
    """Send ``shape`` to ``target`` once; seconds until the answer, the answer, the probe.

    ``size``: the item count (``items``), the depth (``deep``) or the byte limit
    (``endless``); the other shapes have one size. Waits are bounded by ``timeout``
    (and, for ``endless``, by a few seconds after the byte limit was sent).
    """
    spec, tgt = SHAPES[shape], TARGETS[target]
    conn = await asyncio.wait_for(
        Conn.open(host, port, tgt.called, tgt.abstract_syntax, spec.transfer_syntax), 30
    )
    command = tgt.command()
    pdus: Iterator[bytes]
    if spec.build is None:
        pdus = itertools.chain(
            [rawpdu.p_data_tf(conn.context_id, command)],
            endless_fragments(conn.context_id, conn.max_pdu, size),
        )
    else:
        pdus = rawpdu.fragmented(conn.context_id, command, spec.build(size), conn.max_pdu)
    stop = asyncio.Event()
    t0 = time.perf_counter()
    deadline = t0 + timeout
    probe = asyncio.ensure_future(echo_probe(host, port, tgt.called, stop, deadline + 5))
    sender = asyncio.ensure_future(conn.send_all(pdus))
    answer = asyncio.ensure_future(conn.answer())
    try:
        await asyncio.wait((answer, sender), timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        if not answer.done():
            left = deadline - time.perf_counter()
            grace = min(left, ENDLESS_GRACE_S) if spec.build is None else left
            await asyncio.wait((answer,), timeout=max(grace, 0.0))
        elapsed = time.perf_counter() - t0
        answered = answer.done()
        text = answer.result() if answered else f"no answer within {elapsed:.1f} s"
    finally:
        stop.set()
        answer.cancel()
        sender.cancel()
        conn.abort()
    await asyncio.gather(answer, sender, return_exceptions=True)
    echo = await probe
    return {
        "answer_s": elapsed,
        "answer": text,
        "answered": float(answered),
        "sent_mb": conn.sent / 1e6,
        **echo,
    }
