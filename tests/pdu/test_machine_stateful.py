"""A stateful model of the PS3.8 Upper Layer: two in-memory ``UpperLayer`` cores.

``CorePair`` drives a requestor and an acceptor ``pdu.machine.UpperLayer`` joined by
two byte pipes that deliver in any chunking and interleaving, so PDUs cross on the
wire exactly as they can on TCP (release collisions, abort during release, data after
release). Rules: associate/accept/reject, P-DATA, release and its response, abort,
peer garbage, transport close, time passing. Invariants after every step:

* local primitives raise only ``LocalProtocolError``, exactly when PS3.8 Table 9-10
  has no cell for them (and then nothing changes); received bytes never raise;
* data arrives in order, unaltered, never duplicated (a prefix of what was sent);
* a release confirmation means the peer indicated and answered a release; an
  association confirmation means the peer accepted;
* ``TransportClosed`` is the last event and only in Sta1; once both transports are
  closed both cores are in Sta1 with no deadline.

The same model one layer up, over the DIMSE provider core, is
``tests/reliability/test_stateful_association.py``.
"""

from __future__ import annotations

from collections.abc import Callable

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from ups.pdu.codec import encode_pdu
from ups.pdu.enums import (
    AbortReason,
    ContextResult,
    RejectResult,
    RejectSource,
)
from ups.pdu.events import (
    AbortIndication,
    AssociateConfirmation,
    AssociateIndication,
    AssociateRejected,
    DataIndication,
    ReleaseConfirmation,
    ReleaseIndication,
    TransportClosed,
    UpperLayerEvent,
)
from ups.pdu.fsm import Event, State, is_valid
from ups.pdu.items import PresentationContextAC, PresentationContextRQ, UserInformation
from ups.pdu.machine import LocalProtocolError, UpperLayer
from ups.pdu.pdus import PDV, AAssociateAC, AAssociateRJ, AAssociateRQ, PDataTF

VERIFICATION = "1.2.840.10008.1.1"
UPS_PUSH = "1.2.840.10008.5.1.4.34.6.1"
IMPLICIT_LE = "1.2.840.10008.1.2"
ARTIM = 30.0

RQ = AAssociateRQ(
    "ACCEPTOR",
    "REQUESTOR",
    (PresentationContextRQ(1, VERIFICATION, (IMPLICIT_LE,)),),
    UserInformation(16384, "1.2.3.4"),
)
AC = AAssociateAC(
    "ACCEPTOR",
    "REQUESTOR",
    (PresentationContextAC(1, ContextResult.ACCEPTANCE, IMPLICIT_LE),),
    UserInformation(16384, "1.2.3.4"),
)
RJ = AAssociateRJ(
    RejectResult.REJECTED_TRANSIENT,
    RejectSource.SERVICE_PROVIDER_PRESENTATION,
    1,  # temporary congestion (PS3.8 Table 9-21, source 3)
)
# Bytes no peer may send: an unknown PDU type, a fixed-length PDU of the wrong length,
# a P-DATA-TF for an even context ID, an A-ASSOCIATE-RQ cut short.
GARBAGE = (
    b"\x09\x00\x00\x00\x00\x04\x00\x00\x00\x00",
    b"\x05\x00\x00\x00\x00\x05\x00\x00\x00\x00\x00",
    b"\x04\x00\x00\x00\x00\x06\x00\x00\x00\x02\x02\x03",
    b"\x01\x00\x00\x00\x00\x02\x00\x01",
    b"\xff" * 12,
)
STATEFUL = settings(
    max_examples=30,
    stateful_step_count=20,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)

PRIMITIVE_EVENT = {
    "accept": Event.EVT7,
    "reject": Event.EVT8,
    "release": Event.EVT11,
    "release_response": Event.EVT14,
    "abort": Event.EVT15,
}


class Side:
    """One core with what it sent (data PDUs), received and reported."""

    def __init__(self, name: str, core: UpperLayer) -> None:
        self.name = name
        self.core = core
        self.events: list[UpperLayerEvent] = []
        self.sent_data: list[PDataTF] = []
        self.received_data: list[PDataTF] = []
        self.outbox = bytearray()  # in flight towards the peer
        self.peer_notified_closed = False
        self.counter = 0

    def collect(self) -> None:
        self.outbox += self.core.data_to_send()
        for event in self.core.events():
            assert not (self.events and isinstance(self.events[-1], TransportClosed)), (
                f"{self.name}: {event} after TransportClosed"
            )
            if isinstance(event, DataIndication):
                self.received_data.append(event.pdu)
            self.events.append(event)

    def saw(self, kind: type) -> bool:
        return any(isinstance(e, kind) for e in self.events)


class CorePair(RuleBasedStateMachine):
    """Requestor and acceptor cores joined by two reordering-free, chunking pipes."""

    def __init__(self) -> None:
        super().__init__()
        self.now = 0.0
        self.a = Side("requestor", UpperLayer(requestor=True, max_pdata_length=16384))
        self.b = Side("acceptor", UpperLayer(requestor=False, max_pdata_length=16384))

    def sides(self) -> tuple[Side, Side]:
        return self.a, self.b

    def pick(self, which: bool) -> tuple[Side, Side]:
        return (self.a, self.b) if which else (self.b, self.a)

    @initialize(established=st.booleans())
    def connect(self, established: bool) -> None:
        self.a.core.associate(RQ, self.now)
        self.a.core.transport_connected(self.now)
        self.b.core.transport_connected(self.now)
        self.settle()
        if established:  # start half the runs in Sta6 so that the steps go further
            self.deliver(True, len(self.a.outbox))
            self.acceptor_answers(True)
            self.deliver(False, len(self.b.outbox))
            assert (self.a.core.state, self.b.core.state) == (State.STA6, State.STA6)

    # ------------------------------------------------------------------ plumbing

    def settle(self) -> None:
        """Collect outputs; a closed core's peer sees its last bytes, then the close."""
        for side in self.sides():
            side.collect()
        for side, peer in (self.pick(True), self.pick(False)):
            if side.core.close_transport and not side.outbox and not side.peer_notified_closed:
                side.peer_notified_closed = True
                peer.outbox.clear()  # nobody reads them any more
                peer.core.transport_closed(self.now)
                peer.collect()
                peer.outbox.clear()

    def primitive(self, side: Side, name: str, call: Callable[[], None]) -> None:
        """Call a local primitive; it must raise exactly when Table 9-10 has no cell."""
        core = side.core
        before = core.state
        allowed = not core.close_transport and (
            core.state in (State.STA6, State.STA8)
            if name == "send_pdata"
            else is_valid(core.state, PRIMITIVE_EVENT[name])
        )
        try:
            call()
        except LocalProtocolError:
            assert not allowed, f"{side.name}: {name} refused in Sta{int(before)}"
            assert core.state is before
            assert core.data_to_send() == b""
            return
        assert allowed, f"{side.name}: {name} accepted in Sta{int(before)}"
        self.settle()

    # ------------------------------------------------------------------ rules

    @rule(which=st.booleans(), size=st.just(1 << 20) | st.integers(1, 200))
    def deliver(self, which: bool, size: int) -> None:
        side, peer = self.pick(which)
        if not side.outbox or peer.core.close_transport:
            return
        chunk = bytes(side.outbox[:size])
        del side.outbox[:size]
        peer.core.receive_data(chunk, self.now)  # never raises
        self.settle()

    @rule(accept=st.booleans())
    def acceptor_answers(self, accept: bool) -> None:
        if accept:
            self.primitive(self.b, "accept", lambda: self.b.core.accept(AC, self.now))
        else:
            self.primitive(self.b, "reject", lambda: self.b.core.reject(RJ, self.now))

    @rule(which=st.booleans(), payload=st.binary(max_size=40))
    def send_data(self, which: bool, payload: bytes) -> None:
        side, _ = self.pick(which)
        side.counter += 1
        pdu = PDataTF((PDV(1, True, True, side.counter.to_bytes(4, "big") + payload),))

        def send() -> None:
            side.core.send_pdata(encode_pdu(pdu))
            side.sent_data.append(pdu)

        self.primitive(side, "send_pdata", send)

    @rule(which=st.booleans())
    def release(self, which: bool) -> None:
        side, _ = self.pick(which)
        self.primitive(side, "release", lambda: side.core.release(self.now))

    @rule(which=st.booleans())
    def release_response(self, which: bool) -> None:
        side, _ = self.pick(which)
        self.primitive(side, "release_response", lambda: side.core.release_response(self.now))

    @rule(which=st.booleans(), provider=st.booleans())
    def abort(self, which: bool, provider: bool) -> None:
        side, _ = self.pick(which)
        reason = AbortReason.UNEXPECTED_PDU if provider else None
        self.primitive(side, "abort", lambda: side.core.abort(self.now, reason))

    @rule(which=st.booleans(), garbage=st.sampled_from(GARBAGE))
    def peer_garbage(self, which: bool, garbage: bytes) -> None:
        side, _ = self.pick(which)
        if not side.core.close_transport:
            side.outbox += garbage  # after whatever the side already sent

    @rule(which=st.booleans())
    def close(self, which: bool) -> None:
        """One side's transport drops (Evt17 on that side, then on the peer)."""
        side, peer = self.pick(which)
        side.outbox.clear()
        side.core.transport_closed(self.now)
        side.collect()
        side.outbox.clear()
        side.peer_notified_closed = True
        peer.outbox.clear()
        peer.core.transport_closed(self.now)
        peer.collect()
        peer.peer_notified_closed = True

    @rule(dt=st.sampled_from((0.5, ARTIM - 1, ARTIM + 1)))
    def time_passes(self, dt: float) -> None:
        self.now += dt
        for side in self.sides():
            deadline = side.core.next_deadline()
            side.core.handle_timer(self.now)
            if deadline is not None and deadline <= self.now:
                assert side.core.next_deadline() is None or side.core.state is State.STA13
        self.settle()

    # ------------------------------------------------------------------ invariants

    @invariant()
    def data_is_an_unaltered_prefix(self) -> None:
        for side, peer in (self.pick(True), self.pick(False)):
            got = peer.received_data
            assert got == side.sent_data[: len(got)], f"{peer.name} received out of order"

    @invariant()
    def confirmations_have_causes(self) -> None:
        if self.a.saw(AssociateConfirmation):
            assert any(isinstance(e, AssociateIndication) for e in self.b.events)
            assert self.b.core.state is not State.STA3
        if self.a.saw(AssociateRejected):
            assert not self.a.saw(AssociateConfirmation)
        for side, peer in (self.pick(True), self.pick(False)):
            if side.saw(ReleaseConfirmation):
                assert peer.saw(ReleaseIndication), f"{side.name} confirmed an unasked release"
                assert not side.saw(AbortIndication)

    @invariant()
    def closed_means_sta1(self) -> None:
        for side in self.sides():
            core = side.core
            closed = bool(side.events) and isinstance(side.events[-1], TransportClosed)
            assert closed == core.close_transport
            if core.close_transport:
                assert core.state is State.STA1
                assert core.next_deadline() is None
                assert sum(isinstance(e, TransportClosed) for e in side.events) == 1
            if core.state is State.STA13:
                assert core.next_deadline() is not None  # ARTIM bounds Sta13

    def teardown(self) -> None:
        """Closing both transports ends everything: Sta1, no deadline, no more output."""
        for side in self.sides():
            side.core.transport_closed(self.now + 1)
            side.collect()
            assert side.core.state is State.STA1
            assert side.core.next_deadline() is None
            assert isinstance(side.events[-1], TransportClosed)


TestCorePair = CorePair.TestCase
TestCorePair.settings = STATEFUL
