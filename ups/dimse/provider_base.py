"""The state of one association's DIMSE provider core, and the primitives all its parts use.

``ProviderState`` holds what ``provider.DimseProvider`` works on: the PS3.8 Upper Layer
machine it composes, the negotiation, the reassembler, both windows, the deadlines, the
events not yet handed over and the failure. Its methods are the ones every part needs:
the read-only state, the outputs (``data_to_send``, ``next_deadline``), the reasons
reading is paused, sending one message, taking the machine's events and effects after a
primitive, closing the transport, and recording the one failure (``_fail``) that every
waiter gets. ``provider_lifecycle`` adds establishment, release, abort and the deadlines;
``provider`` the DIMSE messages.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Protocol

from ups.dimse.errors import ProviderAborted, ProviderError, ProviderRejected
from ups.dimse.fragment import Reassembler, RejectedMessage, encode_pdata
from ups.dimse.messages import Message, Request, encode_command
from ups.dimse.provider_deadlines import LINGER, Deadlines
from ups.dimse.provider_events import (
    CLOSE_TRANSPORT,
    PAUSE_READING,
    RESET_TRANSPORT,
    RESUME_READING,
    Aborted,
    Closed,
    ProviderEvent,
    Rejected,
    RequestFailed,
)
from ups.dimse.provider_window import OurWindow
from ups.pdu.events import UpperLayerEvent
from ups.pdu.fsm import State
from ups.pdu.machine import UpperLayer
from ups.pdu.negotiation import AcceptorPolicy, Negotiated
from ups.pdu.pdus import AAssociateRQ

STA6, STA8, STA13 = State.STA6, State.STA8, State.STA13
RELEASED_TEXT = "association released"


@dataclass(frozen=True, slots=True)
class ProviderSettings:
    """The timeouts (seconds) and limits of one association; see ``net.AssociationConfig``,
    which carries the seed tool's option names, for what each one is."""

    accept_timeout: float = 5.0
    request_timeout: float = 5.0
    release_timeout: float = 5.0
    response_timeout: float = 10.0
    reaper_period: float = 10.0
    idle_timeout: float | None = None
    send_timeout: float | None = 10.0
    pdu_timeout: float = 30.0
    so_close_delay: float = 0.05
    max_pdata_receive: int = 16 * 1024
    max_pdata_send: int = 16 * 1024
    max_dataset_length: int = 64 * 1024 * 1024
    pack_pdv: bool = True


class Performance(Protocol):
    """A peer's request being performed; the user's own record of it (``RequestContext``).

    The core marks it ``cancelled`` when the peer sends C-CANCEL-RQ for it.
    """

    message_id: int
    context_id: int
    cancelled: bool


class ProviderState:
    """One association's provider state (see the module docstring); not used alone."""

    __slots__ = (
        "_settings",
        "_requestor",
        "_policy",
        "_machine",
        "_rq",
        "negotiated",
        "_reassembler",
        "_send_limit",
        "_ours",
        "_performing",
        "_held",
        "_perform_limit",
        "_backlog",
        "_write_paused",
        "_read_pauses",
        "_ready",
        "_upper",
        "_upper_at",
        "_messages",
        "_partial",
        "_failure",
        "_release_after",
        "_release_wanted",
        "_clock",
        "_now",
        "_peer",
        "_connected",
        "_lost",
        "_lost_detail",
        "_close_sent",
        "_finished",
    )

    def __init__(
        self,
        settings: ProviderSettings,
        *,
        requestor: bool,
        policy: AcceptorPolicy | None = None,
    ) -> None:
        if not requestor and policy is None:
            raise ValueError("an acceptor needs an AcceptorPolicy")
        self._settings = settings
        self._requestor = requestor
        self._policy = policy
        artim = settings.request_timeout if not requestor else settings.release_timeout
        self._machine = UpperLayer(
            requestor=requestor, max_pdata_length=settings.max_pdata_receive, artim_timeout=artim
        )
        self._rq: AAssociateRQ | None = None
        self.negotiated: Negotiated | None = None
        self._reassembler: Reassembler | None = None
        self._send_limit = settings.max_pdata_send
        self._ours = OurWindow()
        self._performing: dict[int, Performance] = {}
        # Beyond the peer's window, by Message ID, oldest first: (context ID, request).
        self._held: dict[int, tuple[int, Request]] = {}
        self._perform_limit = 1
        self._backlog = 0  # requests received while our writes to the peer are paused
        self._write_paused = False
        self._read_pauses: set[str] = set()
        self._ready: deque[ProviderEvent] = deque()
        self._upper: list[UpperLayerEvent] = []  # machine events not yet handled
        self._upper_at = 0
        self._messages: deque[tuple[int, Message | RejectedMessage]] = deque()
        self._partial = False  # the last read left a PDU incomplete
        self._failure: ProviderError | None = None
        self._release_after = False  # the peer's A-RELEASE-RQ waits for our answers
        self._release_wanted = False  # our A-RELEASE-RQ waits for our answers
        self._clock = Deadlines()
        self._now = 0.0
        self._peer = ""
        self._connected = False
        self._lost = False
        self._lost_detail = ""
        self._close_sent = False
        self._finished = False

    # ================================================================== state

    @property
    def requestor(self) -> bool:
        return self._requestor

    @property
    def state(self) -> State:
        """The PS3.8 state of the Upper Layer machine."""
        return self._machine.state

    @property
    def failure(self) -> ProviderError | None:
        """Why the association failed or ended (None while it is usable)."""
        return self._failure

    @property
    def is_established(self) -> bool:
        return self.negotiated is not None and self._failure is None and not self._lost

    @property
    def remote_ae_title(self) -> str:
        return self.negotiated.remote_ae_title if self.negotiated else ""

    @property
    def send_limit(self) -> int:
        """The largest P-DATA-TF we send: ours and the peer's limit, the lower (0 = none)."""
        return self._send_limit

    @property
    def outstanding(self) -> int:
        """How many of our requests are on the wire awaiting their final response."""
        return len(self._ours.pending)

    @property
    def queued(self) -> int:
        """How many of our requests wait for a window place or for writes to resume."""
        return len(self._ours.queued)

    @property
    def performing(self) -> int:
        """How many of the peer's requests are taken on (``perform``) and unanswered."""
        return len(self._performing)

    @property
    def held(self) -> int:
        """How many of the peer's requests wait beyond the window it was granted."""
        return len(self._held)

    @property
    def reading_paused(self) -> bool:
        return bool(self._read_pauses)

    @property
    def writing_is_paused(self) -> bool:
        return self._write_paused

    @property
    def incomplete(self) -> bool:
        """The last read left a PDU or a message incomplete (the peer may await our ACK)."""
        if self._partial:
            return True
        reassembler = self._reassembler
        return reassembler is not None and not reassembler.idle

    def check_established(self) -> Negotiated:
        """The negotiation, or the ``ProviderError`` that says why no request can go now."""
        if self._failure is not None:
            raise self._failure
        if self.negotiated is None:
            raise ProviderError("association is not established")
        if self._machine.state is not STA6:
            raise ProviderError("association is being released")
        return self.negotiated

    def new_message_id(self) -> int:
        """A Message ID not used by any outstanding request (PS3.7 §9.1.1.1)."""
        found = self._ours.new_message_id()
        if found is None:
            raise ProviderError("no free Message ID: 65535 requests outstanding")
        return found

    # ================================================================== outputs

    def data_to_send(self) -> bytes:
        """Whole PDUs to write to the transport, in order, since the last call."""
        return self._machine.data_to_send()

    def next_deadline(self) -> float | None:
        """When ``handle_timer`` should run next (it may find nothing due yet)."""
        return None if self._finished else self._clock.soonest

    # ================================================================== reading

    def pause_reading(self, why: str) -> None:
        """Stop reading for ``why`` ("consumer" is the user's own backpressure)."""
        if not self._read_pauses:
            self._ready.append(PAUSE_READING)
        self._read_pauses.add(why)

    def resume_reading(self, why: str) -> None:
        pauses = self._read_pauses
        if why in pauses:
            pauses.discard(why)
            if not pauses:
                self._ready.append(RESUME_READING)

    # ================================================================== machinery

    def _send(self, message: Message, context_id: int) -> None:
        state = self._machine.state
        if state is STA6 or state is STA8:
            self._machine.send_pdata(
                encode_pdata(
                    context_id,
                    encode_command(message),
                    message.dataset,
                    self._send_limit,
                    pack=self._settings.pack_pdv,
                )
            )

    def _collect(self) -> None:
        events = self._machine.events()
        if not events:
            return
        if self._upper_at >= len(self._upper):
            self._upper = events
            self._upper_at = 0
        else:
            self._upper.extend(events)

    def _after_machine(self, now: float) -> None:
        """After a primitive: queue its events, note ARTIM, close if the machine says so."""
        self._collect()
        machine = self._machine
        deadline = machine.next_deadline()
        if deadline is not None:
            self._clock.note(deadline)
        if machine.close_transport:
            self._close_transport(now)
        elif machine.state is STA13:
            self._schedule_close(now)

    def _schedule_close(self, now: float) -> None:
        """Close after -soclosedelay: time for a sent A-ABORT (or RP) to leave."""
        clock = self._clock
        if clock.close_at is not None or self._close_sent or not self._connected:
            return
        clock.close_at = now + self._settings.so_close_delay
        clock.note(clock.close_at)

    def _close_transport(self, now: float) -> None:
        """Close, flushing what is buffered; a peer that will not read it is reset
        ``LINGER`` later (the adapter's close waits for a drain that never comes), or at
        once after -sendTO ran out: that peer has shown it does not read."""
        if self._close_sent or self._lost or not self._connected:
            return
        self._close_sent = True
        clock = self._clock
        clock.close_at = None
        if clock.reset_on_close:
            self._ready.append(RESET_TRANSPORT)
            return
        self._ready.append(CLOSE_TRANSPORT)
        clock.kill_at = now + LINGER
        clock.note(clock.kill_at)

    def _fail(self, cause: ProviderError, rq: AAssociateRQ | None = None) -> None:
        """Record the association's failure (the first one wins) and fail every request
        of ours with it."""
        if self._failure is None:
            self._failure = cause
            if isinstance(cause, ProviderRejected):
                calling = rq.calling_ae_title if rq else ""
                called = rq.called_ae_title if rq else ""
                self._ready.append(Rejected(cause, rq is not None, calling, called))
            else:
                self._ready.append(Aborted(cause))
        failure = self._failure
        for message_id in self._ours.take_all():
            self._ready.append(RequestFailed(message_id, failure))

    def _finish(self) -> None:
        """The transport is gone: the last failures, then ``Closed``."""
        if self._failure is None and self.negotiated is None:
            detail = f": {self._lost_detail}" if self._lost_detail else ""
            self._fail(ProviderAborted(f"connection closed before association{detail}"))
        if self._failure is None:
            self._failure = ProviderAborted(RELEASED_TEXT)  # a normal end, not an abort
        self._fail(self._failure)
        self._finished = True
        self._clock.soonest = None
        self._ready.append(Closed(self._failure))
