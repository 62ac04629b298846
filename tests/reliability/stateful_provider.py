"""A stateful model of one association over two DIMSE provider cores, on virtual time.

``ProviderPair`` drives a requestor and an acceptor ``dimse.provider.DimseProvider``
joined by two byte pipes that deliver in any chunking and interleaving, so PDUs cross
as they can on TCP. Rules: requests of ours (C-ECHO answered at once, N-SET and C-FIND
taken on), the acceptor's answers (pending, final, late), the acceptor's own requests,
cancel and abandon, release (either side, colliding), abort, peer garbage, transport
close, time passing (reaper, idle, partial PDU, phases, close delay, linger).

Invariants after every step:

* local calls raise only ``ProviderError``; received bytes and timers never raise;
* neither side ever performs more of the peer's requests than the window it granted,
  nor has more of its own outstanding than the window it was granted;
* a response is reported for the Message ID it answers; every request of ours ends at
  most once (a final response or a failure);
* ``Closed`` is the last event and comes once; then there is no deadline;
* once both are closed, every request we sent has ended, unless we abandoned it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from tests.dimse.provider_pair import (
    ECHO_CID,
    IUID,
    PUSH_CID,
    QUERY_CID,
    SETTINGS,
    UPS_PUSH,
    UPS_QUERY,
    Performed,
    Side,
    associate_rq,
    policy,
)
from ups.dimse.errors import ProviderError
from ups.dimse.messages import (
    CEchoRQ,
    CEchoRSP,
    CFindRQ,
    CFindRSP,
    NEventReportRQ,
    NEventReportRSP,
    NSetRQ,
    NSetRSP,
    Request,
)
from ups.dimse.provider import DimseProvider
from ups.dimse.provider_events import (
    Closed,
    RequestFailed,
    RequestReceived,
    ResponseReceived,
)
from ups.pdu.enums import AbortReason

WINDOW = 2
PROVIDER_SETTINGS = replace(
    SETTINGS,
    response_timeout=20.0,
    reaper_period=5.0,
    pdu_timeout=10.0,
    release_timeout=5.0,
    accept_timeout=5.0,
    request_timeout=5.0,
    so_close_delay=0.5,
)
GARBAGE = (
    b"\x09\x00\x00\x00\x00\x04\x00\x00\x00\x00",  # unknown PDU type
    b"\x05\x00\x00\x00\x00\x05\x00\x00\x00\x00\x00",  # A-RELEASE-RQ of the wrong length
    b"\x04\x00\x00\x00\x00\x06\x00\x00\x00\x02\x02\x03",  # P-DATA-TF, even context ID
    b"\x01\x00\x00\x00\x00\x02\x00\x01",  # an A-ASSOCIATE-RQ cut short
    b"\xff" * 12,
    b"\x04\x00\x00\x00\x00\x08\x00\x00\x00\x04\x01\x03\xff\xff",  # an undecodable command
)
"""Bytes no peer may send (the Upper Layer model's, and a command set that cannot be read)."""


def _answering(side: Side, event: RequestReceived) -> None:
    """C-ECHO and N-EVENT-REPORT are answered at once; N-SET and C-FIND taken on."""
    request = event.request
    if isinstance(request, CEchoRQ):
        side.core.respond(CEchoRSP(request.message_id, 0), event.context_id)
    elif isinstance(request, NEventReportRQ):
        rsp = NEventReportRSP(request.message_id, 0, UPS_PUSH, IUID, request.event_type_id)
        side.core.respond(rsp, event.context_id)
    else:
        side.take_on(event)


class Wire:
    """One side's core, what it wrote that the peer has not read yet, and its record."""

    def __init__(self, side: Side) -> None:
        self.side = side
        self.outbox = bytearray()
        self.sent: dict[int, Request] = {}  # our requests accepted by send_request
        self.ended: dict[int, int] = {}  # message ID -> times it ended
        self.abandoned: set[int] = set()
        self.seen = 0  # events checked so far

    @property
    def core(self) -> DimseProvider:
        return self.side.core


class ProviderPair(RuleBasedStateMachine):
    """Requestor and acceptor provider cores joined by two chunking pipes."""

    def __init__(self) -> None:
        super().__init__()
        self.now = 0.0
        requestor = DimseProvider(PROVIDER_SETTINGS, requestor=True)
        acceptor = DimseProvider(
            replace(PROVIDER_SETTINGS, idle_timeout=30.0),
            requestor=False,
            policy=policy(performed=WINDOW, invoked=WINDOW),
        )
        self.a = Wire(Side("requestor", requestor, _answering))
        self.b = Wire(Side("acceptor", acceptor, _answering))
        self.next_id = {True: 0, False: 0}

    def pick(self, which: bool) -> tuple[Wire, Wire]:
        return (self.a, self.b) if which else (self.b, self.a)

    @initialize(established=st.booleans())
    def connect(self, established: bool) -> None:
        self.a.core.associate(associate_rq(invoked=WINDOW, performed=WINDOW), self.now)
        self.a.core.connection_made(self.now, "acceptor:104")
        self.b.core.connection_made(self.now, "requestor:4000")
        self.settle()
        if established:
            for which in (True, False, True):
                self.deliver(which, 1 << 20)
            assert self.a.core.is_established and self.b.core.is_established

    # ------------------------------------------------------------------ plumbing

    def settle(self) -> None:
        """Drain events, collect output; a side that closed hands the peer its last
        bytes and then the close; a reset drops everything at once."""
        for wire in (self.a, self.b):
            wire.side.drain()
            wire.outbox += wire.core.data_to_send()
        for wire, peer in (self.pick(True), self.pick(False)):
            side = wire.side
            if side.lost:
                continue
            if side.resets:
                wire.outbox.clear()
                peer.outbox.clear()
                self._lose(wire)
                self._lose(peer)
            elif side.closing and not wire.outbox:
                self._lose(wire)
                self._lose(peer)

    def _lose(self, wire: Wire) -> None:
        if not wire.side.lost:
            wire.side.lost = True
            wire.core.connection_lost(self.now)
            wire.side.drain()
            wire.outbox.clear()

    def local(self, wire: Wire, call: Callable[[], None]) -> bool:
        """A local call: it may refuse with ``ProviderError`` and nothing else."""
        try:
            call()
        except ProviderError:
            return False
        finally:
            self.settle()
        return True

    def send(self, wire: Wire, request: Request, context_id: int, stream: bool = False) -> None:
        message_id: int = request.message_id  # type: ignore[union-attr]
        if self.local(
            wire, lambda: wire.core.send_request(request, context_id, self.now, stream=stream)
        ):
            wire.sent[message_id] = request

    def new_id(self, which: bool) -> int:
        self.next_id[which] += 1
        return self.next_id[which]

    # ------------------------------------------------------------------ rules

    @rule(which=st.booleans(), size=st.just(1 << 20) | st.integers(1, 300))
    def deliver(self, which: bool, size: int) -> None:
        wire, peer = self.pick(which)
        if not wire.outbox or peer.side.lost or not peer.side.reading:
            return
        chunk = bytes(wire.outbox[:size])
        del wire.outbox[:size]
        peer.core.receive_data(chunk, self.now)  # never raises
        self.settle()

    @rule()
    def flush(self) -> None:
        """The network catches up: everything written is read, both ways, until quiet."""
        for _ in range(100):
            moved = False
            for which in (True, False):
                wire, peer = self.pick(which)
                if wire.outbox and not peer.side.lost and peer.side.reading:
                    self.deliver(which, 1 << 20)
                    moved = True
            if not moved:
                return

    @rule(kind=st.sampled_from(("echo", "nset", "find", "report")))
    def request(self, kind: str) -> None:
        """A request of ours (C-ECHO answered at once, N-SET and C-FIND taken on) or the
        acceptor's own N-EVENT-REPORT."""
        if kind == "echo":
            self.send(self.a, CEchoRQ(self.new_id(True)), ECHO_CID)
        elif kind == "nset":
            self.send(self.a, NSetRQ(self.new_id(True), UPS_PUSH, IUID), PUSH_CID)
        elif kind == "find":
            self.send(self.a, CFindRQ(self.new_id(True), UPS_QUERY), QUERY_CID, stream=True)
        else:
            self.send(self.b, NEventReportRQ(self.new_id(False), UPS_PUSH, IUID, 1), PUSH_CID)

    @precondition(lambda self: bool(self.b.side.performing))
    @rule(data=st.data(), final=st.booleans())
    def acceptor_answers(self, data: st.DataObject, final: bool) -> None:
        side = self.b.side
        message_id = data.draw(st.sampled_from(sorted(side.performing)))
        performed = side.performing[message_id]
        request = performed.request
        core = side.core
        if isinstance(request, CFindRQ) and not final:
            if not core.answer(performed, CFindRSP(message_id, 0xFF00, UPS_QUERY)):
                self._done(side, performed)
        elif isinstance(request, CFindRQ):
            core.answer(performed, CFindRSP(message_id, 0, UPS_QUERY))
            self._done(side, performed)
        else:
            core.complete(performed, NSetRSP(message_id, 0, UPS_PUSH, IUID), self.now)
            side.performing.pop(message_id)
        self.settle()

    def _done(self, side: Side, performed: Performed) -> None:
        side.core.finish(performed, self.now)
        side.performing.pop(performed.message_id, None)

    @precondition(lambda self: bool(self.a.sent))
    @rule(data=st.data(), abandon=st.booleans())
    def cancel(self, data: st.DataObject, abandon: bool) -> None:
        message_id = data.draw(st.sampled_from(sorted(self.a.sent)))
        if abandon:
            self.a.abandoned.add(message_id)
            self.local(self.a, lambda: self.a.core.abandon(message_id, self.now))
        else:
            self.local(self.a, lambda: self.a.core.cancel(message_id, self.now))

    @precondition(lambda self: len(self.a.sent) + len(self.b.sent) >= 3)
    @rule(
        which=st.booleans(),
        how=st.sampled_from(("release", "abort", "provider abort", "close", *GARBAGE)),
    )
    def end(self, which: bool, how: str | bytes) -> None:
        """Release or abort (either side, crossing), peer garbage, or a dropped transport;
        only after some traffic, so that most runs get somewhere first."""
        wire, peer = self.pick(which)
        if isinstance(how, bytes):
            if not wire.side.lost:
                wire.outbox += how  # after whatever the side already wrote
        elif how == "release":
            self.local(wire, lambda: wire.core.release(self.now))
        elif how == "close":
            wire.outbox.clear()
            peer.outbox.clear()
            self._lose(wire)
            self._lose(peer)
            self.settle()
        else:
            reason = AbortReason.UNEXPECTED_PDU if how == "provider abort" else None
            self.local(wire, lambda: wire.core.abort(self.now, reason))

    @rule(dt=st.sampled_from((0.25, 0.25, 1.0, 5.5, 12.0, 31.0)))
    def time_passes(self, dt: float) -> None:
        target = self.now + dt
        while True:
            due = [
                d
                for wire in (self.a, self.b)
                if (d := wire.core.next_deadline()) is not None and d <= target
            ]
            if not due:
                break
            self.now = max(self.now, min(due))
            for wire in (self.a, self.b):
                deadline = wire.core.next_deadline()
                if deadline is not None and deadline <= self.now:
                    wire.core.handle_timer(self.now)  # never raises
            self.settle()
        self.now = target

    # ------------------------------------------------------------------ invariants

    @invariant()
    def windows_are_honoured(self) -> None:
        for wire in (self.a, self.b):
            core = wire.core
            assert core.performing <= WINDOW, f"{wire.side.name} performs {core.performing}"
            assert core.outstanding <= WINDOW, f"{wire.side.name} has {core.outstanding} out"

    @invariant()
    def events_are_consistent(self) -> None:
        for wire in (self.a, self.b):
            events = wire.side.events
            for event in events[wire.seen :]:
                if isinstance(event, ResponseReceived):
                    rsp = event.response
                    assert rsp.message_id_being_responded_to == event.message_id
                    assert event.message_id in wire.sent, "a response nobody asked for"
                    if event.final:
                        wire.ended[event.message_id] = wire.ended.get(event.message_id, 0) + 1
                elif isinstance(event, RequestFailed):
                    wire.ended[event.message_id] = wire.ended.get(event.message_id, 0) + 1
            wire.seen = len(events)
            assert all(count == 1 for count in wire.ended.values()), wire.ended
            closes = [i for i, e in enumerate(events) if isinstance(e, Closed)]
            assert len(closes) <= 1
            if closes:
                assert closes[0] == len(events) - 1, f"{wire.side.name}: event after Closed"
                assert wire.core.next_deadline() is None

    def teardown(self) -> None:
        """Both transports close: both cores end, and every request we sent has ended."""
        for wire in (self.a, self.b):
            self._lose(wire)
        self.settle()
        self.events_are_consistent()
        for wire in (self.a, self.b):
            assert wire.side.closed
            for message_id in wire.sent:
                if message_id not in wire.abandoned:
                    assert wire.ended.get(message_id) == 1, f"{wire.side.name}: {message_id}"
