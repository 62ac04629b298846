"""The DIMSE provider core: one association's DIMSE service, without I/O (PS3.7 §7, D.3.3).

``DimseProvider`` composes the PS3.8 Upper Layer machine (``pdu.machine.UpperLayer``),
the negotiation (``pdu.negotiation``) and the PDV reassembler (``dimse.fragment``) and
adds what DIMSE needs on top, the way h11 and aioquic do it: bytes and primitives in,
events, bytes and deadlines out, time always an argument.

* Inputs: ``connection_made``, ``receive_data``, ``connection_lost`` from the transport;
  ``send_request``, ``abandon``, ``respond``, ``perform``, ``answer``, ``finish``,
  ``complete``, ``release``, ``abort``, ``pause_reading``/``resume_reading`` from the
  user; ``writing_paused``/``writing_resumed`` from the transport's flow control;
  ``handle_timer`` when ``next_deadline`` has come.
* Outputs: ``next_event`` (``provider_events``), ``data_to_send`` (whole PDUs),
  ``next_deadline``.

It owns our Message IDs and the requests we sent (``provider_window``), matched to
their responses by Message ID Being Responded To; both Asynchronous Operations Windows
(PS3.7 D.3.3.3): ours queues requests beyond it, and requests from a peer beyond the
window it granted are held, with reading paused, until a place frees; a request under
a Message ID the peer still has outstanding at us is refused 0x0210 (PS3.7 C.5.1), and
a response to a Message ID we have not outstanding aborts; C-FIND response streams and
C-CANCEL (PS3.7 §9.3.2.3); the reaper (-rspTO: the overdue request fails and the
association aborts, every waiter with the same cause, as in dcm4che); and every
deadline (``provider_deadlines``).

The window check for a request happens when ``next_event`` hands it over, after the
user has answered the ones before it, so an answer given at once never counts against
the peer's window; a request taken on with ``perform`` does, until ``finish``.

Errors: a peer that breaks DIMSE framing gets the A-ABORT PS3.8 prescribes and the
failure is reported as an ``Aborted`` event; a local caller misusing the core gets a
``ProviderError``. Every failure is recorded once (``_fail``) and reaches every waiter.

The class is built in three layers, one module each: ``provider_base`` (the state and
the primitives every part uses), ``provider_lifecycle`` (open, establish, release,
abort, deadlines) and this module (the messages: our requests, the peer's, receiving).
"""

from __future__ import annotations

import logging
from typing import cast

from ups.dimse.errors import FragmentError, ProviderAborted, ProviderError
from ups.dimse.fragment import Received, RejectedMessage, encode_pdata
from ups.dimse.messages import (
    MESSAGE_TYPES,
    CCancelRQ,
    CFindRSP,
    Message,
    Request,
    Response,
    encode_command,
)
from ups.dimse.provider_base import STA6, STA8, Performance, ProviderSettings
from ups.dimse.provider_events import (
    ProviderEvent,
    RequestFailed,
    RequestRejected,
    new_request_received,
    new_response_received,
)
from ups.dimse.provider_lifecycle import ProviderLifecycle
from ups.dimse.provider_window import Outgoing
from ups.dimse.responses import failure_response
from ups.dimse.status import Status
from ups.pdu.enums import AbortReason
from ups.pdu.events import DataIndication

log = logging.getLogger("ups.net")  # the name users filter the association log on

_PENDING = frozenset({int(Status.PENDING), int(Status.PENDING_WARNING)})
_CANCEL = int(Status.CANCEL)
_DUPLICATE = int(Status.DUPLICATE_INVOCATION)
_UNLIMITED_BACKLOG = 256
"""Requests answered into a stalled write buffer before reading stops (window 0)."""


class DimseProvider(ProviderLifecycle):
    """One association's DIMSE provider, requestor or acceptor, without I/O.

    The acceptor needs the ``policy`` it negotiates with; the requestor calls
    ``associate`` before ``connection_made``. After every input the caller drains
    ``next_event`` (carrying out the transport effects), writes ``data_to_send`` and
    re-arms its timer at ``next_deadline``.
    """

    __slots__ = ()

    # ================================================================== events and data

    def next_event(self) -> ProviderEvent | None:
        """The next event, or None when all that happened so far has been reported.

        Received messages are handled one at a time as they are asked for, so that a
        request answered at once frees its place before the next one is checked.
        """
        ready = self._ready
        found: ProviderEvent | None
        while True:
            if ready:
                return ready.popleft()
            if self._held and self._may_start_held():
                held = self._held
                context_id, request = held.pop(next(iter(held)))
                if not held:
                    self.resume_reading("window")
                found = self._start_request(context_id, request)
            elif self._messages:
                context_id, message = self._messages.popleft()
                found = self._on_message(context_id, message)
            else:
                at = self._upper_at
                upper = self._upper
                if at >= len(upper):
                    if self._lost and not self._finished:
                        self._finish()
                        continue
                    return None
                self._upper_at = at + 1
                event = upper[at]
                if type(event) is not DataIndication:
                    self._on_upper(event)
                    continue
                received = self._on_data(event)
                if len(received) != 1:
                    self._messages.extend(received)
                    continue
                context_id, message = received[0]
                # The hot path, inline: one whole request, within the peer's window.
                if (
                    type(message) is not RejectedMessage
                    and not message.COMMAND_FIELD & 0x8000  # type: ignore[union-attr]
                    and type(message) is not CCancelRQ
                    and not self._held
                    and not self._write_paused
                    and (not self._perform_limit or len(self._performing) < self._perform_limit)
                    and message.message_id not in self._performing  # type: ignore[union-attr]
                ):
                    return new_request_received(context_id, message)
                found = self._on_message(context_id, message)
            if found is not None:
                return found

    def receive_data(self, data: bytes | bytearray | memoryview, now: float) -> None:
        """Bytes from the transport; their messages come out of ``next_event``."""
        self._now = now
        clock = self._clock
        clock.last_activity = now
        machine = self._machine
        machine.receive_data(data, now)
        events = machine.events()
        if events:
            if self._upper_at >= len(self._upper):
                self._upper = events
                self._upper_at = 0
            else:
                self._upper.extend(events)
        if machine.has_partial_pdu:
            self._partial = True
            # A PDU started in this read if an earlier one completed (or none was pending).
            if clock.partial_since is None or events:
                clock.partial_since = now
                clock.note(now + self._settings.pdu_timeout)
        else:
            self._partial = False
            clock.partial_since = None
        if machine.state is not STA6:
            # Outside Sta6 a PDU may have started ARTIM or ended the association; in Sta6
            # (the hot path) neither happens.
            self._after_machine(now)

    def writing_paused(self, now: float) -> None:
        """The transport's write buffer is above its limit: hold our requests, and start
        the send deadline (-sendTO): if writes do not resume by then, the peer is not
        reading and the association is aborted."""
        self._now = now
        if not self._write_paused:
            self._write_paused = True
            clock = self._clock
            clock.paused_since = now
            send_timeout = self._settings.send_timeout
            if send_timeout is not None:
                clock.note(now + send_timeout)

    def writing_resumed(self, now: float) -> None:
        """The write buffer drained: send what waited, read again."""
        self._now = now
        self._write_paused = False
        self._clock.paused_since = None
        self._backlog = 0
        self.resume_reading("write")
        self._send_queued(now)

    # ================================================================== our requests

    def send_request(
        self, request: Request, context_id: int, now: float, *, stream: bool = False
    ) -> None:
        """Send ``request`` now, or queue it until the window has a place for it and
        writes flow. ``stream`` reports pending responses too (C-FIND)."""
        self.check_established()
        message_id: int = request.message_id  # type: ignore[union-attr]
        ours = self._ours
        if ours.outstanding(message_id):
            raise ProviderError(f"message ID {message_id} is already outstanding")
        outgoing = Outgoing(request, message_id, context_id, stream)
        if ours.queued or self._write_paused or not ours.has_place():
            ours.queued[message_id] = outgoing
            return
        self._transmit(outgoing, now)

    def abandon(self, message_id: int, now: float) -> None:
        """Our caller no longer waits for ``message_id``: drop it if not sent yet; else
        absorb its answers, and for a C-FIND stream send C-CANCEL-RQ (PS3.7 §9.3.2.3)."""
        self._now = now
        ours = self._ours
        if ours.queued.pop(message_id, None) is not None:
            return
        outgoing = ours.pending.get(message_id)
        if outgoing is None or outgoing.abandoned:
            return
        outgoing.abandoned = True
        self.cancel(message_id, now)

    def cancel(self, message_id: int, now: float) -> None:
        """C-CANCEL-RQ for our C-FIND ``message_id`` (PS3.7 §9.3.2.3); its responses,
        the final Cancel one included, are still reported unless it was abandoned."""
        self._now = now
        outgoing = self._ours.pending.get(message_id)
        if outgoing is None or not outgoing.stream or outgoing.cancelled:
            return
        outgoing.cancelled = True
        if self._failure is None and not self._lost:
            self._send(CCancelRQ(message_id), outgoing.context_id)

    def _transmit(self, outgoing: Outgoing, now: float) -> None:
        self._ours.sent(outgoing, now)
        self._send(outgoing.request, outgoing.context_id)
        clock = self._clock
        if clock.reaper_due is None:
            clock.reaper_due = now + self._settings.reaper_period
            clock.note(clock.reaper_due)

    def _send_queued(self, now: float) -> None:
        """Send queued requests while the window has places and writes flow."""
        ours = self._ours
        while ours.queued and not self._write_paused and self._failure is None:
            if self._machine.state is not STA6:
                cause = ProviderError("association is being released")
                for message_id in list(ours.queued):
                    self._ready.append(RequestFailed(message_id, cause))
                ours.queued.clear()
                return
            outgoing = ours.next_queued()
            if outgoing is None:
                return
            self._transmit(outgoing, now)

    def _on_response(self, response: Response) -> ProviderEvent | None:
        message_id = response.message_id_being_responded_to
        ours = self._ours
        outgoing = ours.pending.get(message_id)
        if outgoing is None:
            # A response for a Message ID nobody sent (or already answered): PS3.7 has
            # no answer for it, so the association aborts (A-ABORT 2/5), as dcm4che's
            # Association.onDimseRSP does. Issue 17 keeps it so, on purpose.
            log.warning(
                "%s answered unknown message ID %d; aborting", self.remote_ae_title, message_id
            )
            self.abort(
                self._now,
                AbortReason.UNEXPECTED_PDU_PARAMETER,
                ProviderAborted(f"response to unknown message ID {message_id}"),
            )
            return None
        outgoing.sent_at = self._now  # -rspTO runs from the latest response (C-FIND)
        if type(response) is CFindRSP and response.status in _PENDING:
            if outgoing.stream and not outgoing.abandoned:
                return new_response_received(message_id, response, False)
            return None
        ours.answered(message_id)
        if ours.queued:
            self._send_queued(self._now)
        if outgoing.abandoned:
            return None
        return new_response_received(message_id, response, True)

    # ================================================================== the peer's requests

    def respond(self, response: Response, context_id: int) -> None:
        """Answer a request at once (it never counted in the peer's window).

        ``_send`` written out again: this is the per-message hot path.
        """
        state = self._machine.state
        if state is STA6 or state is STA8:  # P-DATA allowed (DT-1, AR-7)
            self._machine.send_pdata(
                encode_pdata(
                    context_id,
                    encode_command(response),
                    response.dataset,
                    self._send_limit,
                    pack=self._settings.pack_pdv,
                )
            )

    def perform(self, performance: Performance) -> None:
        """Take a request on: it counts in the peer's window until ``finish``."""
        self._performing[performance.message_id] = performance

    def answer(self, performance: Performance, response: Response) -> bool:
        """Send one response of a request being performed; False when no more may follow.

        After the peer's C-CANCEL-RQ a pending response is replaced by the final one with
        the Cancel status (PS3.7 §9.3.2.3); after a failure nothing is sent.
        """
        if self._failure is not None:
            return False
        if performance.cancelled and getattr(response, "status", 0) in _PENDING:
            self.respond(_cancelled(response), performance.context_id)
            return False
        self.respond(response, performance.context_id)
        return True

    def finish(self, performance: Performance, now: float) -> None:
        """The request is over: free its place in the peer's window."""
        performing = self._performing
        if performing.get(performance.message_id) is performance:
            del performing[performance.message_id]
        self._after_performed(now)

    def complete(self, performance: Performance, response: Response, now: float) -> bool:
        """``answer`` then ``finish`` for a request answered with one response; False (and
        nothing sent) if it was answered before or is not being performed."""
        performing = self._performing
        message_id = performance.message_id
        if performing.get(message_id) is not performance:
            return False
        if self._failure is None:
            self.respond(response, performance.context_id)
        del performing[message_id]
        if self._release_after or self._release_wanted:
            self._after_performed(now)
        return True

    def _may_start_held(self) -> bool:
        limit = self._perform_limit
        return self._failure is None and (not limit or len(self._performing) < limit)

    def _on_request(self, context_id: int, request: Request) -> ProviderEvent | None:
        if type(request) is CCancelRQ:
            target = self._performing.get(request.message_id_being_responded_to)
            if target is not None:
                target.cancelled = True
            return None
        message_id: int = request.message_id  # type: ignore[union-attr]
        if message_id in self._performing or message_id in self._held:
            self._duplicate(context_id, request, message_id)
            return None
        limit = self._perform_limit
        if self._held or (limit and len(self._performing) >= limit):
            # The peer went beyond its window (PS3.7 D.3.3.3): hold this request and read
            # no more until one in progress finishes, so work and answers stay bounded.
            self._held[message_id] = (context_id, request)
            self.pause_reading("window")
            return None
        return self._start_request(context_id, request)

    def _duplicate(self, context_id: int, request: Request, message_id: int) -> None:
        """A request under a Message ID the peer still has outstanding at us (performing,
        deferred or held): answered 0x0210 Duplicate Invocation (PS3.7 C.5.1) and not
        performed; the first one proceeds. Message IDs need only be unique among the
        requests one side has outstanding (PS3.7 §9.1.1.1), so once the first is answered
        the ID may be used again."""
        log.warning(
            "%s sent message ID %d while it is outstanding: answered 0210",
            self.remote_ae_title,
            message_id,
        )
        comment = f"message ID {message_id} is already outstanding"
        self.respond(failure_response(request, _DUPLICATE, comment), context_id)

    def _start_request(self, context_id: int, request: Request) -> ProviderEvent:
        limit = self._perform_limit
        if self._write_paused:
            # Our answers to this peer are backing up. A peer within its window has at
            # most ``_perform_limit`` requests outstanding; beyond that, stop reading.
            self._backlog += 1
            if self._backlog > (limit or _UNLIMITED_BACKLOG):
                self.pause_reading("write")
        return new_request_received(context_id, request)

    def _after_performed(self, now: float) -> None:
        if self._performing or self._held:
            return
        if self._release_after:
            self._release_after = False
            self._answer_release(now)
        if self._release_wanted:
            self._release_wanted = False
            self._start_release(now)

    # ================================================================== receiving

    def _on_data(self, event: DataIndication) -> list[Received]:
        """The messages one P-DATA-TF completes; broken framing aborts (PS3.8 Annex E)."""
        reassembler = self._reassembler
        if reassembler is None:
            return []
        try:
            return reassembler.feed(event.pdu)
        except FragmentError as exc:
            log.warning("protocol error from %s: %s", self.remote_ae_title, exc)
            self.abort(
                self._now,
                AbortReason.INVALID_PDU_PARAMETER_VALUE,
                ProviderAborted(f"protocol error: {exc}"),
            )
            return []

    def _on_message(
        self, context_id: int, message: Message | RejectedMessage
    ) -> ProviderEvent | None:
        if type(message) is RejectedMessage:
            return self._on_rejected(context_id, message)
        message = cast(Message, message)
        if message.COMMAND_FIELD & 0x8000:
            return self._on_response(cast(Response, message))
        return self._on_request(context_id, cast(Request, message))

    def _on_rejected(self, context_id: int, rejected: RejectedMessage) -> ProviderEvent | None:
        field = rejected.command_field
        error = rejected.error
        log.warning("malformed command from %s: %s", self.remote_ae_title, error)
        message_id = error.message_id
        if (
            field is not None
            and not field & 0x8000
            and message_id is not None
            and field | 0x8000 in MESSAGE_TYPES
        ):
            return RequestRejected(context_id, field, message_id, error.status, str(error))
        self.abort(
            self._now,
            AbortReason.INVALID_PDU_PARAMETER_VALUE,
            ProviderAborted(f"unusable command from peer: {error}"),
        )
        return None


def _cancelled(response: Response) -> Response:
    """The final response that ends a cancelled C-FIND: Cancel status, no Identifier."""
    return CFindRSP(
        response.message_id_being_responded_to,
        _CANCEL,
        getattr(response, "affected_sop_class_uid", None),
    )


__all__ = ["DimseProvider", "Performance", "ProviderSettings"]
