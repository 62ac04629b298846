"""The sans-I/O association core: PS3.8 §9.2 state machine driven by bytes and primitives.

``UpperLayer`` takes received bytes (``receive_data``), local service primitives
(``associate``, ``accept``, ``send_pdata``, ``release`` ...) and transport/timer
happenings (``transport_connected``, ``transport_closed``, ``handle_timer``), looks
each up in ``fsm.TABLE`` (Table 9-10) and runs the action (Tables 9-6..9-9). Actions
only record effects: bytes to write (``data_to_send``), events for the user
(``events``), the ARTIM deadline (``next_deadline``) and whether the transport must
be closed (``close_transport``). The caller owns the socket and the clock.

Two kinds of fault are kept apart, as h11 does: a peer that breaks the protocol gets
the A-ABORT the standard prescribes and an ``AbortIndication``; a local caller that
issues a primitive in a state where Table 9-10 has no entry for it gets
``LocalProtocolError`` and the machine is left as it was.
"""

from __future__ import annotations

from collections.abc import Callable

from ups.pdu.codec import encode_pdu
from ups.pdu.enums import (
    PROTOCOL_VERSION,
    PROTOCOL_VERSION_NOT_SUPPORTED,
    AbortReason,
    AbortSource,
    PDUType,
    RejectResult,
    RejectSource,
)
from ups.pdu.errors import PDUError
from ups.pdu.events import (
    ARTIM_AWAITING_RQ,
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
from ups.pdu.fastinit import fast_new
from ups.pdu.framer import Framer
from ups.pdu.fsm import Action, Event, State, is_valid, transition
from ups.pdu.pdus import (
    AAbort,
    AAssociateAC,
    AAssociateRJ,
    AAssociateRQ,
    AReleaseRP,
    AReleaseRQ,
    PDataTF,
)


class LocalProtocolError(PDUError):
    """The local user issued a primitive that Table 9-10 does not allow in this state.

    This is misuse of the core, not a peer fault: nothing is sent and the state does
    not change. If the caller turns it into an abort, a service-user A-ABORT fits.
    """

    def __init__(self, message: str) -> None:
        super().__init__(message, AbortReason.NOT_SPECIFIED, AbortSource.SERVICE_USER)


_PDU_EVENT: dict[type, Event] = {
    AAssociateRQ: Event.EVT6,
    AAssociateAC: Event.EVT3,
    AAssociateRJ: Event.EVT4,
    PDataTF: Event.EVT10,
    AReleaseRQ: Event.EVT12,
    AReleaseRP: Event.EVT13,
    AAbort: Event.EVT16,
}

_TYPE_EVENT: dict[int, Event] = {
    PDUType.A_ASSOCIATE_RQ: Event.EVT6,
    PDUType.A_ASSOCIATE_AC: Event.EVT3,
    PDUType.A_ASSOCIATE_RJ: Event.EVT4,
    PDUType.P_DATA_TF: Event.EVT10,
    PDUType.A_RELEASE_RQ: Event.EVT12,
    PDUType.A_RELEASE_RP: Event.EVT13,
    PDUType.A_ABORT: Event.EVT16,
}

_PDU_NAME: dict[type, str] = {
    AAssociateRQ: "A-ASSOCIATE-RQ",
    AAssociateAC: "A-ASSOCIATE-AC",
    AAssociateRJ: "A-ASSOCIATE-RJ",
    PDataTF: "P-DATA-TF",
    AReleaseRQ: "A-RELEASE-RQ",
    AReleaseRP: "A-RELEASE-RP",
    AAbort: "A-ABORT",
}

_RELEASE_RQ = encode_pdu(AReleaseRQ())
_RELEASE_RP = encode_pdu(AReleaseRP())
_USER_ABORT = encode_pdu(AAbort(AbortSource.SERVICE_USER, AbortReason.NOT_SPECIFIED))

_STA6 = State.STA6
_new_data_indication = fast_new(DataIndication)
_STA8 = State.STA8

_Handler = Callable[["UpperLayer", Event, object, float], "State | None"]


def _fault(arg: object, state: State) -> tuple[AbortReason, str]:
    """The A-ABORT reason and a description for a received PDU that broke the protocol."""
    if isinstance(arg, PDUError):
        return arg.reason, str(arg)
    return AbortReason.UNEXPECTED_PDU, f"unexpected {_PDU_NAME[type(arg)]} in Sta{int(state)}"


class UpperLayer:
    """One association's PS3.8 Upper Layer, without I/O.

    ``requestor`` says which side this is (it picks Evt2 or Evt5 on connection and
    AR-8's branch). ``max_pdata_length`` is the Maximum Length Received we announce
    (0 = unlimited) and bounds received P-DATA-TF PDUs. ``artim_timeout`` is the
    ARTIM period in the caller's time unit (seconds, by convention).

    After a primitive or ``receive_data``, the caller writes ``data_to_send()``, then
    closes the transport if ``close_transport`` is set, then handles ``events()``.
    """

    __slots__ = (
        "_requestor",
        "_state",
        "_framer",
        "_receiving",
        "_closed",
        "_rq",
        "_events",
        "_out",
        "_artim_timeout",
        "_deadline",
    )

    def __init__(
        self, *, requestor: bool, max_pdata_length: int, artim_timeout: float = 30.0
    ) -> None:
        self._requestor = requestor
        self._state = State.STA1
        self._framer = Framer(max_pdata_length)
        self._receiving = False  # a transport is open and its byte stream still trusted
        self._closed = False  # reached Sta1 after leaving it: the association is over
        self._rq: AAssociateRQ | None = None
        self._events: list[UpperLayerEvent] = []
        self._out: list[bytes] = []
        self._artim_timeout = artim_timeout
        self._deadline: float | None = None

    # ------------------------------------------------------------------ outputs

    @property
    def state(self) -> State:
        return self._state

    @property
    def requestor(self) -> bool:
        return self._requestor

    @property
    def close_transport(self) -> bool:
        """True once the association is over and the transport must be (or is) closed."""
        return self._closed

    def events(self) -> list[UpperLayerEvent]:
        """The events issued since the last call, oldest first."""
        events = self._events
        self._events = []
        return events

    def data_to_send(self) -> bytes:
        """The bytes to write to the transport since the last call."""
        out = self._out
        if not out:
            return b""
        self._out = []
        return out[0] if len(out) == 1 else b"".join(out)

    @property
    def has_partial_pdu(self) -> bool:
        """Some bytes of an incomplete PDU are buffered (the adapter's slow-peer guard)."""
        return self._framer.has_partial_pdu

    def set_max_pdata_length(self, max_pdata_length: int) -> None:
        """The acceptor announces its limit only in the A-ASSOCIATE-AC; apply it then."""
        self._framer.set_max_pdata_length(max_pdata_length)

    def next_deadline(self) -> float | None:
        """When ARTIM expires (call ``handle_timer`` then), or None if it is not running."""
        return self._deadline

    # ------------------------------------------------------------------ requestor

    def associate(self, rq: AAssociateRQ, now: float) -> None:
        """A-ASSOCIATE request (Evt1, AE-1): the caller now opens the transport (Sta4)."""
        if not self._requestor:
            raise LocalProtocolError("A-ASSOCIATE request on the association-acceptor")
        self._primitive(Event.EVT1, rq, now)

    def transport_connected(self, now: float) -> None:
        """The transport is open: Evt2 on the requestor (AE-2), Evt5 on the acceptor (AE-5)."""
        self._primitive(Event.EVT2 if self._requestor else Event.EVT5, None, now)

    # ------------------------------------------------------------------ acceptor

    def accept(self, ac: AAssociateAC, now: float) -> None:
        """A-ASSOCIATE response, accept (Evt7, AE-7)."""
        self._primitive(Event.EVT7, ac, now)

    def reject(self, rj: AAssociateRJ, now: float) -> None:
        """A-ASSOCIATE response, reject (Evt8, AE-8): ARTIM then waits for the peer to close."""
        self._primitive(Event.EVT8, rj, now)

    # ------------------------------------------------------------------ both sides

    def send_pdata(self, encoded: bytes) -> None:
        """P-DATA request (Evt9) with one ready-encoded P-DATA-TF PDU.

        DT-1 in Sta6 and AR-7 in Sta8 both only send and keep the state, so this is a
        state check and an append; ``test_machine`` checks it agrees with the table.
        """
        state = self._state
        if state is _STA6 or state is _STA8:
            self._out.append(encoded)
            return
        raise LocalProtocolError(f"P-DATA request not allowed in Sta{int(state)}")

    def release(self, now: float) -> None:
        """A-RELEASE request (Evt11, AR-1)."""
        self._primitive(Event.EVT11, None, now)

    def release_response(self, now: float) -> None:
        """A-RELEASE response (Evt14): AR-4 normally, AR-9 on the collision requestor side."""
        self._primitive(Event.EVT14, None, now)

    def abort(self, now: float, reason: AbortReason | None = None) -> None:
        """A-ABORT request (Evt15).

        Without ``reason`` this is the service-user abort AA-1 describes (reason sent
        as 0, PS3.8 Table 9-26). With one, the caller speaks for the service provider
        (say, a layer above found a malformed PDV) and the PDU carries source 2 and
        that reason.
        """
        pdu = (
            AAbort(AbortSource.SERVICE_USER, AbortReason.NOT_SPECIFIED)
            if reason is None
            else AAbort(AbortSource.SERVICE_PROVIDER, reason)
        )
        self._primitive(Event.EVT15, pdu, now)

    def receive_data(self, data: bytes | bytearray | memoryview, now: float) -> None:
        """Bytes from the transport: each PDU is Evt3/4/6/10/12/13/16, a bad one Evt19.

        After the association is over, or after a framing error (the stream can no
        longer be trusted), further bytes are ignored.
        """
        if not self._receiving:
            if self._closed or self._state is State.STA13:
                return
            raise LocalProtocolError(f"received data with no transport in Sta{int(self._state)}")
        framer = self._framer
        framer.feed(data)
        events = self._events
        while self._receiving:
            try:
                pdu = framer.next_pdu()
            except PDUError as exc:
                self._receiving = False
                self._run(*self._invalid_pdu(exc), now)
                return
            if pdu is None:
                return
            if type(pdu) is PDataTF and self._state is _STA6:
                events.append(_new_data_indication(pdu))  # DT-2, the hot path
                continue
            self._run(_PDU_EVENT[type(pdu)], pdu, now)

    def _invalid_pdu(self, exc: PDUError) -> tuple[Event, object]:
        """A PDU that cannot be decoded is Evt19, unless its type alone is already out of
        place here: then it is that type's event, answered as Table 9-10 says for it (an
        A-ASSOCIATE-AC in Sta6 is AA-8 with reason 2, unexpected PDU, whatever it holds)."""
        pdu_type = exc.pdu_type
        event = _TYPE_EVENT.get(pdu_type) if pdu_type is not None else None
        if pdu_type is None or event is None:
            return Event.EVT19, exc
        action, _ = transition(self._state, event, requestor=self._requestor)
        if action not in (Action.AA_1, Action.AA_8):
            return Event.EVT19, exc
        name = PDUType(pdu_type).name.replace("_", "-")
        unexpected = PDUError(
            f"unexpected {name} in Sta{int(self._state)}", AbortReason.UNEXPECTED_PDU
        )
        unexpected.pdu_type = pdu_type
        return event, unexpected

    def transport_closed(self, now: float) -> None:
        """The transport connection closed (Evt17); a no-op once back in Sta1."""
        if self._state is State.STA1:
            return
        self._run(Event.EVT17, None, now)

    def handle_timer(self, now: float) -> None:
        """ARTIM expired (Evt18) if its deadline has passed; otherwise nothing happens."""
        deadline = self._deadline
        if deadline is None or now < deadline:
            return
        self._deadline = None
        if is_valid(self._state, Event.EVT18):
            self._run(Event.EVT18, None, now)

    # ------------------------------------------------------------------ machinery

    def _primitive(self, event: Event, arg: object, now: float) -> None:
        if self._closed:
            raise LocalProtocolError("the association is over; a core serves one association")
        if not is_valid(self._state, event):
            raise LocalProtocolError(
                f"Evt{int(event)} ({_PRIMITIVE_NAME[event]}) not allowed in Sta{int(self._state)}"
            )
        self._run(event, arg, now)

    def _run(self, event: Event, arg: object, now: float) -> None:
        before = self._state
        action, next_state = transition(before, event, requestor=self._requestor)
        override = _ACTIONS[action](self, event, arg, now)
        self._state = next_state = override or next_state
        if next_state is State.STA1 and before is not State.STA1:
            self._deadline = None
            self._receiving = False
            self._closed = True
            self._events.append(TransportClosed())

    def _start_artim(self, now: float) -> None:
        self._deadline = now + self._artim_timeout

    # AE: association establishment (Table 9-6)

    def _ae_1(self, event: Event, arg: object, now: float) -> State | None:
        assert isinstance(arg, AAssociateRQ)
        self._rq = arg
        return None

    def _ae_2(self, event: Event, arg: object, now: float) -> State | None:
        assert self._rq is not None
        self._out.append(encode_pdu(self._rq))
        self._receiving = True
        return None

    def _ae_3(self, event: Event, arg: object, now: float) -> State | None:
        assert isinstance(arg, AAssociateAC)
        self._events.append(AssociateConfirmation(arg))
        return None

    def _ae_4(self, event: Event, arg: object, now: float) -> State | None:
        assert isinstance(arg, AAssociateRJ)
        self._events.append(AssociateRejected(arg))
        return None

    def _ae_5(self, event: Event, arg: object, now: float) -> State | None:
        self._receiving = True
        self._start_artim(now)
        return None

    def _ae_6(self, event: Event, arg: object, now: float) -> State | None:
        assert isinstance(arg, AAssociateRQ)
        self._deadline = None
        if arg.protocol_version & PROTOCOL_VERSION:
            self._events.append(AssociateIndication(arg))
            return None
        # Not acceptable to the service provider (PS3.8 §7.1.2.6, §9.3.2 version bit 0).
        rj = AAssociateRJ(
            RejectResult.REJECTED_PERMANENT,
            RejectSource.SERVICE_PROVIDER_ACSE,
            PROTOCOL_VERSION_NOT_SUPPORTED,
        )
        self._out.append(encode_pdu(rj))
        self._events.append(AssociateRejected(rj))
        self._start_artim(now)
        return transition(self._state, event, acceptable=False)[1]

    def _ae_7(self, event: Event, arg: object, now: float) -> State | None:
        assert isinstance(arg, AAssociateAC)
        self._out.append(encode_pdu(arg))
        return None

    def _ae_8(self, event: Event, arg: object, now: float) -> State | None:
        assert isinstance(arg, AAssociateRJ)
        self._out.append(encode_pdu(arg))
        self._start_artim(now)
        return None

    # DT / AR: data transfer and release (Tables 9-7, 9-8)

    def _send_pdata(self, event: Event, arg: object, now: float) -> State | None:
        assert isinstance(arg, bytes)
        self._out.append(arg)
        return None

    def _data_indication(self, event: Event, arg: object, now: float) -> State | None:
        assert isinstance(arg, PDataTF)
        self._events.append(DataIndication(arg))
        return None

    def _ar_1(self, event: Event, arg: object, now: float) -> State | None:
        self._out.append(_RELEASE_RQ)
        return None

    def _ar_2(self, event: Event, arg: object, now: float) -> State | None:
        self._events.append(ReleaseIndication(collision=False))
        return None

    def _release_confirmation(self, event: Event, arg: object, now: float) -> State | None:
        self._events.append(ReleaseConfirmation())  # AR-3 (then close) and AR-10
        return None

    def _ar_4(self, event: Event, arg: object, now: float) -> State | None:
        self._out.append(_RELEASE_RP)
        self._start_artim(now)
        return None

    def _stop_artim(self, event: Event, arg: object, now: float) -> State | None:
        self._deadline = None  # AR-5 and AA-5
        return None

    def _ar_8(self, event: Event, arg: object, now: float) -> State | None:
        self._events.append(ReleaseIndication(collision=True))
        return None

    def _ar_9(self, event: Event, arg: object, now: float) -> State | None:
        self._out.append(_RELEASE_RP)
        return None

    # AA: abort (Table 9-9)

    def _aa_1(self, event: Event, arg: object, now: float) -> State | None:
        if event is Event.EVT15:
            assert isinstance(arg, AAbort)
            self._out.append(encode_pdu(arg))
        else:
            # A bad PDU before any A-ASSOCIATE-RQ (Sta2): AA-1 names a service-user
            # source, whose reason field is sent as 0. The user has no association yet,
            # so the indication is only the provider's report of why.
            reason, detail = _fault(arg, self._state)
            self._out.append(_USER_ABORT)
            self._events.append(
                AbortIndication(AbortSource.SERVICE_PROVIDER, reason, False, detail)
            )
        self._start_artim(now)
        return None

    def _aa_2(self, event: Event, arg: object, now: float) -> State | None:
        self._deadline = None
        if event is Event.EVT18 and self._state is State.STA2:
            self._events.append(
                AbortIndication(
                    AbortSource.SERVICE_PROVIDER,
                    AbortReason.NOT_SPECIFIED,
                    False,
                    ARTIM_AWAITING_RQ,
                )
            )
        return None

    def _aa_3(self, event: Event, arg: object, now: float) -> State | None:
        assert isinstance(arg, AAbort)
        self._events.append(AbortIndication(arg.source, arg.reason, True, "A-ABORT received"))
        return None

    def _aa_4(self, event: Event, arg: object, now: float) -> State | None:
        detail = (
            "transport connection failed"
            if self._state is State.STA4
            else "transport connection closed"
        )
        self._events.append(
            AbortIndication(AbortSource.SERVICE_PROVIDER, AbortReason.NOT_SPECIFIED, False, detail)
        )
        return None

    def _aa_6(self, event: Event, arg: object, now: float) -> State | None:
        return None  # ignore the PDU

    def _aa_7(self, event: Event, arg: object, now: float) -> State | None:
        reason, _ = _fault(arg, self._state)
        self._out.append(encode_pdu(AAbort(AbortSource.SERVICE_PROVIDER, reason)))
        return None

    def _aa_8(self, event: Event, arg: object, now: float) -> State | None:
        reason, detail = _fault(arg, self._state)
        self._out.append(encode_pdu(AAbort(AbortSource.SERVICE_PROVIDER, reason)))
        self._events.append(AbortIndication(AbortSource.SERVICE_PROVIDER, reason, False, detail))
        self._start_artim(now)
        return None


_ACTIONS: dict[Action, _Handler] = {
    Action.AE_1: UpperLayer._ae_1,
    Action.AE_2: UpperLayer._ae_2,
    Action.AE_3: UpperLayer._ae_3,
    Action.AE_4: UpperLayer._ae_4,
    Action.AE_5: UpperLayer._ae_5,
    Action.AE_6: UpperLayer._ae_6,
    Action.AE_7: UpperLayer._ae_7,
    Action.AE_8: UpperLayer._ae_8,
    Action.DT_1: UpperLayer._send_pdata,
    Action.DT_2: UpperLayer._data_indication,
    Action.AR_1: UpperLayer._ar_1,
    Action.AR_2: UpperLayer._ar_2,
    Action.AR_3: UpperLayer._release_confirmation,
    Action.AR_4: UpperLayer._ar_4,
    Action.AR_5: UpperLayer._stop_artim,
    Action.AR_6: UpperLayer._data_indication,
    Action.AR_7: UpperLayer._send_pdata,
    Action.AR_8: UpperLayer._ar_8,
    Action.AR_9: UpperLayer._ar_9,
    Action.AR_10: UpperLayer._release_confirmation,
    Action.AA_1: UpperLayer._aa_1,
    Action.AA_2: UpperLayer._aa_2,
    Action.AA_3: UpperLayer._aa_3,
    Action.AA_4: UpperLayer._aa_4,
    Action.AA_5: UpperLayer._stop_artim,
    Action.AA_6: UpperLayer._aa_6,
    Action.AA_7: UpperLayer._aa_7,
    Action.AA_8: UpperLayer._aa_8,
}
"""Each PS3.8 action, as a function of (core, event, argument, now)."""

_PRIMITIVE_NAME: dict[Event, str] = {
    Event.EVT1: "A-ASSOCIATE request",
    Event.EVT2: "transport connect confirmation",
    Event.EVT5: "transport connection indication",
    Event.EVT7: "A-ASSOCIATE response (accept)",
    Event.EVT8: "A-ASSOCIATE response (reject)",
    Event.EVT9: "P-DATA request",
    Event.EVT11: "A-RELEASE request",
    Event.EVT14: "A-RELEASE response",
    Event.EVT15: "A-ABORT request",
}
