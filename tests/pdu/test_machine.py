"""ups.pdu.machine: two cores talking in memory, every state x event, and a fuzz run."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ups.pdu.codec import encode_pdu
from ups.pdu.enums import (
    PROTOCOL_VERSION_NOT_SUPPORTED,
    AbortReason,
    AbortSource,
    ContextResult,
    RejectReason,
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
)
from ups.pdu.framer import Framer
from ups.pdu.fsm import Event, State, is_valid, transition
from ups.pdu.items import PresentationContextAC, PresentationContextRQ, UserInformation
from ups.pdu.machine import LocalProtocolError, UpperLayer
from ups.pdu.pdus import (
    PDU,
    PDV,
    AAbort,
    AAssociateAC,
    AAssociateRJ,
    AAssociateRQ,
    AReleaseRP,
    AReleaseRQ,
    PDataTF,
)

VERIFICATION = "1.2.840.10008.1.1"
IMPLICIT_LE = "1.2.840.10008.1.2"
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
    RejectResult.REJECTED_PERMANENT,
    RejectSource.SERVICE_USER,
    RejectReason.USER_CALLED_AE_NOT_RECOGNIZED,
)
PDATA = PDataTF((PDV(1, True, True, b"\x01\x02\x03\x04"),))
PDATA_BYTES = encode_pdu(PDATA)
UNKNOWN_PDU = b"\x09\x00\x00\x00\x00\x04" + bytes(4)
BAD_RELEASE_RQ = b"\x05\x00\x00\x00\x00\x05" + bytes(5)  # fixed length 4 violated
ARTIM = 30.0


def new(requestor: bool) -> UpperLayer:
    return UpperLayer(requestor=requestor, max_pdata_length=16384, artim_timeout=ARTIM)


def state_of(core: UpperLayer) -> State:
    """The state, read through a call so that mypy does not narrow it across steps."""
    return core.state


def decode_all(data: bytes) -> list[PDU]:
    framer = Framer(0)
    framer.feed(data)
    pdus = []
    while (pdu := framer.next_pdu()) is not None:
        pdus.append(pdu)
    return pdus


def transfer(src: UpperLayer, dst: UpperLayer, now: float = 0.0) -> None:
    """Move what ``src`` wrote into ``dst``, then close ``dst``'s end if ``src`` closed."""
    data = src.data_to_send()
    if data:
        dst.receive_data(data, now)
    if src.close_transport:
        dst.transport_closed(now)


def associated() -> tuple[UpperLayer, UpperLayer]:
    req, acc = new(True), new(False)
    req.associate(RQ, 0.0)
    assert state_of(req) is State.STA4 and req.data_to_send() == b""
    req.transport_connected(0.0)
    acc.transport_connected(0.0)
    assert state_of(acc) is State.STA2 and acc.next_deadline() == ARTIM
    transfer(req, acc)
    assert acc.events() == [AssociateIndication(RQ)]
    assert state_of(acc) is State.STA3 and acc.next_deadline() is None
    acc.accept(AC, 1.0)
    transfer(acc, req)
    assert req.events() == [AssociateConfirmation(AC)]
    assert state_of(req) is state_of(acc) is State.STA6
    return req, acc


# ---------------------------------------------------------------- conversations


def test_associate_data_release() -> None:
    req, acc = associated()
    req.send_pdata(PDATA_BYTES)
    req.send_pdata(PDATA_BYTES)
    transfer(req, acc)
    assert acc.events() == [DataIndication(PDATA), DataIndication(PDATA)]
    acc.send_pdata(PDATA_BYTES)
    transfer(acc, req)
    assert req.events() == [DataIndication(PDATA)]

    req.release(2.0)
    assert state_of(req) is State.STA7
    transfer(req, acc)
    assert acc.events() == [ReleaseIndication(collision=False)]
    assert state_of(acc) is State.STA8
    acc.send_pdata(PDATA_BYTES)  # AR-7: still allowed before answering
    transfer(acc, req)
    assert req.events() == [DataIndication(PDATA)]  # AR-6
    assert state_of(req) is State.STA7
    acc.release_response(3.0)
    assert state_of(acc) is State.STA13 and acc.next_deadline() == 3.0 + ARTIM
    assert not acc.close_transport
    transfer(acc, req)
    assert req.events() == [ReleaseConfirmation(), TransportClosed()]
    assert state_of(req) is State.STA1 and req.close_transport
    transfer(req, acc)  # requestor closes; acceptor sees Evt17 -> AR-5
    assert acc.events() == [TransportClosed()]
    assert state_of(acc) is State.STA1 and acc.next_deadline() is None


def test_reject() -> None:
    req, acc = new(True), new(False)
    req.associate(RQ, 0.0)
    req.transport_connected(0.0)
    acc.transport_connected(0.0)
    transfer(req, acc)
    acc.events()
    acc.reject(RJ, 5.0)
    assert state_of(acc) is State.STA13 and acc.next_deadline() == 5.0 + ARTIM
    transfer(acc, req)
    assert req.events() == [AssociateRejected(RJ), TransportClosed()]
    assert state_of(req) is State.STA1 and req.close_transport
    transfer(req, acc)
    assert acc.events() == [TransportClosed()] and state_of(acc) is State.STA1


def test_provider_rejects_unsupported_protocol_version() -> None:
    acc = new(False)
    acc.transport_connected(0.0)
    rq = AAssociateRQ(
        RQ.called_ae_title,
        RQ.calling_ae_title,
        RQ.presentation_contexts,
        RQ.user_information,
        protocol_version=2,
    )
    acc.receive_data(encode_pdu(rq), 1.0)
    rj = AAssociateRJ(
        RejectResult.REJECTED_PERMANENT,
        RejectSource.SERVICE_PROVIDER_ACSE,
        PROTOCOL_VERSION_NOT_SUPPORTED,
    )
    assert acc.events() == [AssociateRejected(rj)]
    assert decode_all(acc.data_to_send()) == [rj]
    assert state_of(acc) is State.STA13 and acc.next_deadline() == 1.0 + ARTIM


def test_release_collision() -> None:
    req, acc = associated()
    req.release(1.0)
    acc.release(1.0)
    transfer(req, acc)
    transfer(acc, req)
    assert req.events() == [ReleaseIndication(collision=True)]
    assert acc.events() == [ReleaseIndication(collision=True)]
    assert state_of(req) is State.STA9 and state_of(acc) is State.STA10
    with pytest.raises(LocalProtocolError):
        acc.release_response(1.0)  # the acceptor must wait for the requestor's RP
    req.release_response(2.0)  # AR-9
    assert state_of(req) is State.STA11
    transfer(req, acc)
    assert acc.events() == [ReleaseConfirmation()]  # AR-10
    assert state_of(acc) is State.STA12
    acc.release_response(3.0)  # AR-4
    assert state_of(acc) is State.STA13
    transfer(acc, req)
    assert req.events() == [ReleaseConfirmation(), TransportClosed()]  # AR-3
    transfer(req, acc)
    assert acc.events() == [TransportClosed()]  # AR-5
    assert state_of(req) is state_of(acc) is State.STA1
    assert req.close_transport and acc.close_transport


@pytest.mark.parametrize("requestor_aborts", [True, False])
def test_user_abort(requestor_aborts: bool) -> None:
    req, acc = associated()
    aborter, other = (req, acc) if requestor_aborts else (acc, req)
    aborter.abort(1.0)
    assert state_of(aborter) is State.STA13 and aborter.next_deadline() == 1.0 + ARTIM
    assert aborter.events() == []
    transfer(aborter, other)
    assert other.events() == [
        AbortIndication(
            AbortSource.SERVICE_USER, AbortReason.NOT_SPECIFIED, True, "A-ABORT received"
        ),
        TransportClosed(),
    ]
    assert other.close_transport and state_of(other) is State.STA1
    other.receive_data(PDATA_BYTES, 2.0)  # after A-ABORT, further bytes are ignored
    assert other.events() == []
    transfer(other, aborter)
    assert aborter.events() == [TransportClosed()] and state_of(aborter) is State.STA1


def test_provider_abort_from_above_and_abort_collision() -> None:
    req, acc = associated()
    req.abort(1.0, reason=AbortReason.INVALID_PDU_PARAMETER_VALUE)
    acc.abort(1.0)
    data = req.data_to_send()
    assert decode_all(data) == [
        AAbort(AbortSource.SERVICE_PROVIDER, AbortReason.INVALID_PDU_PARAMETER_VALUE)
    ]
    acc.receive_data(data, 1.0)  # Sta13 + Evt16 -> AA-2: close at once
    assert acc.events() == [TransportClosed()] and acc.close_transport


def test_abort_before_connection_completes() -> None:
    req = new(True)
    req.associate(RQ, 0.0)
    req.abort(0.0)  # Sta4 + Evt15 -> AA-2: give up the connection attempt
    assert req.events() == [TransportClosed()]
    assert req.data_to_send() == b"" and req.close_transport


def test_connection_failure() -> None:
    req = new(True)
    req.associate(RQ, 0.0)
    req.transport_closed(0.0)  # Sta4 + Evt17 -> AA-4
    (abort, closed) = req.events()
    assert isinstance(abort, AbortIndication) and not abort.from_peer
    assert closed == TransportClosed()


def test_artim_expiry_awaiting_rq() -> None:
    acc = new(False)
    acc.transport_connected(10.0)
    assert acc.next_deadline() == 10.0 + ARTIM
    acc.handle_timer(10.0 + ARTIM - 0.001)
    assert acc.events() == []
    assert state_of(acc) is State.STA2
    acc.handle_timer(10.0 + ARTIM)
    events = acc.events()
    assert events[-1] == TransportClosed()
    assert isinstance(events[0], AbortIndication) and "ARTIM" in events[0].detail
    assert acc.close_transport and acc.next_deadline() is None
    assert state_of(acc) is State.STA1


def test_artim_expiry_awaiting_close() -> None:
    req, acc = associated()
    req.release(0.0)
    transfer(req, acc)
    acc.release_response(1.0)
    acc.data_to_send()  # the requestor never closes
    acc.events()
    acc.handle_timer(1.0 + ARTIM)
    assert acc.events() == [TransportClosed()]
    assert state_of(acc) is State.STA1 and acc.close_transport


def test_transport_lost_during_data_transfer() -> None:
    req, _ = associated()
    req.transport_closed(5.0)
    assert req.events() == [
        AbortIndication(
            AbortSource.SERVICE_PROVIDER,
            AbortReason.NOT_SPECIFIED,
            False,
            "transport connection closed",
        ),
        TransportClosed(),
    ]
    assert state_of(req) is State.STA1
    req.transport_closed(5.0)  # idempotent once closed
    assert req.events() == []


# ---------------------------------------------------------------- faults from the peer


def test_pdata_before_association_gets_abort() -> None:
    acc = new(False)
    acc.transport_connected(0.0)
    acc.receive_data(PDATA_BYTES, 1.0)  # Sta2 + Evt10 -> AA-1 (service-user source)
    assert decode_all(acc.data_to_send()) == [AAbort(AbortSource.SERVICE_USER)]
    (event,) = acc.events()
    assert isinstance(event, AbortIndication)
    assert event.reason is AbortReason.UNEXPECTED_PDU and "P-DATA-TF" in event.detail
    assert state_of(acc) is State.STA13 and acc.next_deadline() == 1.0 + ARTIM


def test_unknown_pdu_type_gets_abort_reason_1() -> None:
    req, acc = associated()
    acc.receive_data(UNKNOWN_PDU + PDATA_BYTES, 1.0)
    assert decode_all(acc.data_to_send()) == [
        AAbort(AbortSource.SERVICE_PROVIDER, AbortReason.UNRECOGNIZED_PDU)
    ]
    (event,) = acc.events()  # the P-DATA after the bad PDU is not delivered
    assert isinstance(event, AbortIndication)
    assert event == AbortIndication(
        AbortSource.SERVICE_PROVIDER, AbortReason.UNRECOGNIZED_PDU, False, event.detail
    )
    assert state_of(acc) is State.STA13
    acc.receive_data(PDATA_BYTES, 2.0)  # the stream is no longer trusted
    assert acc.events() == [] and acc.data_to_send() == b""


def test_malformed_pdu_gets_its_error_reason() -> None:
    req, _ = associated()
    req.receive_data(BAD_RELEASE_RQ, 1.0)
    assert decode_all(req.data_to_send()) == [
        AAbort(AbortSource.SERVICE_PROVIDER, AbortReason.INVALID_PDU_PARAMETER_VALUE)
    ]
    (event,) = req.events()
    assert isinstance(event, AbortIndication)
    assert event.reason is AbortReason.INVALID_PDU_PARAMETER_VALUE and event.detail


def test_oversized_pdata_is_refused_before_buffering() -> None:
    req, _ = associated()
    req.receive_data(b"\x04\x00\x00\x01\x00\x00", 1.0)  # 65536 > 16384, header only
    (event,) = req.events()
    assert isinstance(event, AbortIndication)
    assert event.reason is AbortReason.INVALID_PDU_PARAMETER_VALUE


def test_unexpected_pdu_gets_abort_reason_2() -> None:
    req, _ = associated()
    req.receive_data(encode_pdu(AC), 1.0)  # Sta6 + Evt3 -> AA-8
    assert decode_all(req.data_to_send()) == [
        AAbort(AbortSource.SERVICE_PROVIDER, AbortReason.UNEXPECTED_PDU)
    ]
    assert state_of(req) is State.STA13
    req.receive_data(PDATA_BYTES, 1.0)  # Sta13 + Evt10 -> AA-6: ignored
    req.receive_data(encode_pdu(RQ), 1.0)  # Sta13 + Evt6 -> AA-7: abort again
    assert decode_all(req.data_to_send()) == [
        AAbort(AbortSource.SERVICE_PROVIDER, AbortReason.UNEXPECTED_PDU)
    ]
    assert state_of(req) is State.STA13


def _undecodable_ac() -> bytes:
    """An A-ASSOCIATE-AC PDU whose body holds a request's presentation context item (0x20):
    its decoder refuses it (unexpected parameter, reason 5)."""
    rq = encode_pdu(RQ)
    return bytes([0x02]) + rq[1:]


@pytest.mark.parametrize("acceptor", [True, False])
def test_an_ac_in_sta6_is_unexpected_whatever_it_holds(acceptor: bool) -> None:
    """PS3.8 Table 9-10: Sta6 + Evt3 is AA-8 with reason 2 (unexpected PDU); the type is
    already wrong here, so its content is not judged (it used to give reason 5)."""
    req, acc = associated()
    core = acc if acceptor else req
    core.receive_data(_undecodable_ac(), 1.0)
    assert decode_all(core.data_to_send()) == [
        AAbort(AbortSource.SERVICE_PROVIDER, AbortReason.UNEXPECTED_PDU)
    ]
    (event,) = core.events()
    assert isinstance(event, AbortIndication) and event.reason is AbortReason.UNEXPECTED_PDU
    assert state_of(core) is State.STA13


def test_an_expected_pdu_that_does_not_decode_keeps_its_own_reason() -> None:
    req = new(True)
    req.associate(RQ, 0.0)
    req.transport_connected(0.0)
    req.data_to_send()
    req.receive_data(_undecodable_ac(), 1.0)  # Sta5 + AC expected: Evt19, reason 5
    assert decode_all(req.data_to_send()) == [
        AAbort(AbortSource.SERVICE_PROVIDER, AbortReason.UNEXPECTED_PDU_PARAMETER)
    ]


def test_pdus_split_across_reads() -> None:
    req, acc = associated()
    data = PDATA_BYTES * 3
    for i in range(len(data)):
        acc.receive_data(data[i : i + 1], 1.0)
    assert acc.events() == [DataIndication(PDATA)] * 3


# ---------------------------------------------------------------- local misuse


def test_local_misuse_raises_and_changes_nothing() -> None:
    req = new(True)
    with pytest.raises(LocalProtocolError):
        req.send_pdata(PDATA_BYTES)
    with pytest.raises(LocalProtocolError):
        req.release(0.0)
    with pytest.raises(LocalProtocolError):
        req.receive_data(PDATA_BYTES, 0.0)  # no transport yet
    with pytest.raises(LocalProtocolError):
        new(False).associate(RQ, 0.0)
    assert state_of(req) is State.STA1 and req.data_to_send() == b"" and req.events() == []


# ---------------------------------------------------------------- every state x event

# How to bring a fresh core into each state, and which role it plays there.
Step = Callable[[UpperLayer], None]


def _rx(pdu: PDU) -> Step:
    return lambda core: core.receive_data(encode_pdu(pdu), 0.0)


def _connect(core: UpperLayer) -> None:
    if core.requestor:
        core.associate(RQ, 0.0)
    core.transport_connected(0.0)


PATHS: dict[State, tuple[bool, list[Step]]] = {
    State.STA1: (True, []),
    State.STA2: (False, [_connect]),
    State.STA3: (False, [_connect, _rx(RQ)]),
    State.STA4: (True, [lambda c: c.associate(RQ, 0.0)]),
    State.STA5: (True, [_connect]),
    State.STA6: (True, [_connect, _rx(AC)]),
    State.STA7: (True, [_connect, _rx(AC), lambda c: c.release(0.0)]),
    State.STA8: (False, [_connect, _rx(RQ), lambda c: c.accept(AC, 0.0), _rx(AReleaseRQ())]),
    State.STA9: (True, [_connect, _rx(AC), lambda c: c.release(0.0), _rx(AReleaseRQ())]),
    State.STA10: (
        False,
        [
            _connect,
            _rx(RQ),
            lambda c: c.accept(AC, 0.0),
            lambda c: c.release(0.0),
            _rx(AReleaseRQ()),
        ],
    ),
    State.STA11: (
        True,
        [
            _connect,
            _rx(AC),
            lambda c: c.release(0.0),
            _rx(AReleaseRQ()),
            lambda c: c.release_response(0.0),
        ],
    ),
    State.STA12: (
        False,
        [
            _connect,
            _rx(RQ),
            lambda c: c.accept(AC, 0.0),
            lambda c: c.release(0.0),
            _rx(AReleaseRQ()),
            _rx(AReleaseRP()),
        ],
    ),
    State.STA13: (True, [_connect, _rx(AC), lambda c: c.abort(0.0)]),
}


def reach(state: State) -> UpperLayer:
    requestor, steps = PATHS[state]
    core = new(requestor)
    for step in steps:
        step(core)
    assert state_of(core) is state
    core.events()
    core.data_to_send()
    return core


INPUTS: dict[Event, Step] = {
    Event.EVT1: lambda c: c.associate(RQ, 1.0),
    Event.EVT2: lambda c: c.transport_connected(1.0),
    Event.EVT3: _rx(AC),
    Event.EVT4: _rx(RJ),
    Event.EVT5: lambda c: c.transport_connected(1.0),
    Event.EVT6: _rx(RQ),
    Event.EVT7: lambda c: c.accept(AC, 1.0),
    Event.EVT8: lambda c: c.reject(RJ, 1.0),
    Event.EVT9: lambda c: c.send_pdata(PDATA_BYTES),
    Event.EVT10: _rx(PDATA),
    Event.EVT11: lambda c: c.release(1.0),
    Event.EVT12: _rx(AReleaseRQ()),
    Event.EVT13: _rx(AReleaseRP()),
    Event.EVT14: lambda c: c.release_response(1.0),
    Event.EVT15: lambda c: c.abort(1.0),
    Event.EVT16: _rx(AAbort()),
    Event.EVT17: lambda c: c.transport_closed(1.0),
    Event.EVT18: lambda c: c.handle_timer(1e9),
    Event.EVT19: lambda c: c.receive_data(UNKNOWN_PDU, 1.0),
}
LOCAL = {Event.EVT1, Event.EVT2, Event.EVT5, Event.EVT7, Event.EVT8, Event.EVT9, Event.EVT11,
         Event.EVT14, Event.EVT15}  # fmt: skip
RECEIVED = {Event.EVT3, Event.EVT4, Event.EVT6, Event.EVT10, Event.EVT12, Event.EVT13,
            Event.EVT16, Event.EVT19}  # fmt: skip


@pytest.mark.parametrize("event", list(Event), ids=lambda e: e.name)
@pytest.mark.parametrize("state", list(State), ids=lambda s: s.name)
def test_core_follows_table(state: State, event: Event) -> None:
    core = reach(state)
    # Which table event this input really is for this core's role.
    actual = event
    if event in (Event.EVT2, Event.EVT5):
        actual = Event.EVT2 if core.requestor else Event.EVT5
    no_transport = state is State.STA4 or (state is State.STA1 and not core.close_transport)
    artim_running = core.next_deadline() is not None

    if event is Event.EVT1 and not core.requestor:
        expect_error = True
    elif actual in LOCAL:
        expect_error = not is_valid(state, actual)
    elif actual in RECEIVED:
        expect_error = no_transport
    else:
        expect_error = False
    if expect_error:
        with pytest.raises(LocalProtocolError):
            INPUTS[event](core)
        assert state_of(core) is state and core.data_to_send() == b"" and core.events() == []
        return

    INPUTS[event](core)
    if (actual is Event.EVT17 and state is State.STA1) or (
        actual is Event.EVT18 and not artim_running
    ):
        assert state_of(core) is state  # nothing to do: no transport, or no timer
        return
    assert state_of(core) is transition(state, actual, requestor=core.requestor)[1]
    # ARTIM runs exactly in Sta2 and Sta13 (AE-5, AE-8, AR-4, AA-1, AA-8 start it).
    assert (core.next_deadline() is not None) == (core.state in (State.STA2, State.STA13))
    if state_of(core) is State.STA1:
        assert core.close_transport and core.events()[-1] == TransportClosed()


@pytest.mark.parametrize("state", list(State), ids=lambda s: s.name)
def test_send_pdata_fast_path_agrees_with_table(state: State) -> None:
    core = reach(state)
    if is_valid(state, Event.EVT9):
        core.send_pdata(PDATA_BYTES)
        assert state_of(core) is transition(state, Event.EVT9)[1]
        assert core.data_to_send() == PDATA_BYTES
    else:
        with pytest.raises(LocalProtocolError):
            core.send_pdata(PDATA_BYTES)


# ---------------------------------------------------------------- fuzz


_OPS: list[Step] = [*INPUTS.values(), lambda c: c.handle_timer(0.5), lambda c: None]
_op = st.one_of(
    st.sampled_from(_OPS),
    st.binary(max_size=64).map(lambda b: lambda c: c.receive_data(b, 1.0)),
    st.sampled_from([encode_pdu(p) for p in (RQ, AC, RJ, PDATA)]).flatmap(
        lambda b: st.integers(0, len(b)).map(lambda n: lambda c: c.receive_data(b[:n], 1.0))
    ),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(start=st.sampled_from(list(State)), ops=st.lists(_op, max_size=25))
def test_fuzz_only_local_errors(start: State, ops: list[Step]) -> None:
    core = reach(start)
    closed_seen = False
    for op in ops:
        try:
            op(core)
        except LocalProtocolError:
            pass
        events = core.events()
        assert not (closed_seen and events), "events after TransportClosed"
        if TransportClosed() in events:
            assert events[-1] == TransportClosed()
            closed_seen = True
        assert isinstance(core.state, State)
        assert (core.next_deadline() is not None) <= (core.state in (State.STA2, State.STA13))
        core.data_to_send()


@pytest.mark.parametrize("requestor", [True, False])
def test_a_core_serves_one_association(requestor: bool) -> None:
    core = new(requestor)
    _connect(core)
    core.transport_closed(1.0)
    assert state_of(core) is State.STA1 and core.close_transport
    with pytest.raises(LocalProtocolError):
        _connect(core)
    core.receive_data(PDATA_BYTES, 2.0)  # late bytes after the end are ignored
    assert core.events()[-1] == TransportClosed() and state_of(core) is State.STA1
