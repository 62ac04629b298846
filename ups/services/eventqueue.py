"""The listener's bounded FIFO between the network and the consumer, and its counters.

Events that a consumer takes later (``async for``, an ``async def`` callback) wait here
as envelopes: the event plus what its N-EVENT-REPORT-RSP needs. The queue is bounded
by ``buffer``: when it is full, the association that filled it is paused
(``Association.pause_receiving``) and resumed once the queue has drained to half, so
TCP pushes back on the sender. Every queued event is *in flight* until it is answered
or dropped (its association closed first); a shutdown waits for none in flight.
:class:`~ups.services.listener.EventListener` is an :class:`EventQueue`.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Final

from ups.dimse.errors import error_comment
from ups.dimse.messages import NEventReportRQ, NEventReportRSP
from ups.dimse.status import Status
from ups.net.association import DEFERRED, Association, HandlerResult, RequestContext
from ups.pdu.fastinit import fast_new
from ups.services.events import UPSEvent

__all__ = ["Envelope", "EventQueue", "ListenerStats", "event_response"]

# Plain ints on the per-event path, named by the one status table.
SUCCESS: Final = int(Status.SUCCESS)
PROCESSING_FAILURE: Final = int(Status.PROCESSING_FAILURE)
NO_SUCH_EVENT_TYPE: Final = int(Status.NO_SUCH_EVENT_TYPE)
NO_SUCH_SOP_CLASS: Final = int(Status.NO_SUCH_SOP_CLASS)
UNRECOGNIZED_OPERATION: Final = int(Status.UNRECOGNIZED_OPERATION)


@dataclass(slots=True)
class ListenerStats:
    """Counters an operator watches; all since the listener started."""

    events: int = 0
    """Events taken by the consumer (and answered Success unless it said otherwise)."""
    failed: int = 0
    """Events the consumer raised on: answered Processing failure, or the status of its
    ServiceError (0213 while a sink's broker is away)."""
    refused: int = 0
    """Requests refused before delivery: unknown event type or SOP class, shutting down."""
    dropped: int = 0
    """Queued events whose association closed before the consumer took them."""
    associations_open: int = 0
    associations_total: int = 0
    started: float = field(default_factory=time.monotonic)


class Envelope:
    """A queued event and what its N-EVENT-REPORT-RSP needs: the request and its context.

    The answer is given through ``ctx.respond`` (the request was ``DEFERRED``): no
    future and no task per event.
    """

    __slots__ = ("event", "request", "ctx", "settled")

    def __init__(self, event: UPSEvent, request: NEventReportRQ, ctx: RequestContext) -> None:
        self.event = event
        self.request = request
        self.ctx = ctx
        self.settled = False


_new_response = fast_new(NEventReportRSP)


def event_response(
    request: NEventReportRQ, status: int, comment: str | None = None
) -> NEventReportRSP:
    """The answer to an event report: it echoes the request's class, instance and type."""
    return _new_response(
        request.message_id,
        status,
        request.affected_sop_class_uid,
        request.affected_sop_instance_uid,
        request.event_type_id,
        error_comment(comment) if comment else None,
        None,  # error_id
        None,  # offending_element
        None,  # dataset
        (),  # extra
    )


class EventQueue:
    """The FIFO of events read but not yet taken, with its backpressure and counters."""

    def __init__(self, buffer: int) -> None:
        self.stats = ListenerStats()
        self._buffer = buffer
        self._low_water = buffer // 2
        self._queue: deque[Envelope] = deque()
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._paused: set[Association] = set()
        self._inflight = 0
        self._idle: asyncio.Future[None] | None = None
        self._stopping = False
        self._finished = False

    @property
    def queued(self) -> int:
        return len(self._queue)

    def _drop_queued(self, association: Association) -> None:
        """Its sender never saw these acknowledged and will send them again."""
        kept: deque[Envelope] = deque()
        for envelope in self._queue:
            if envelope.ctx.association is association:
                self._settle(envelope, dropped=True)
            else:
                kept.append(envelope)
        self._queue = kept

    def _finish(self) -> None:
        self._finished = True
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)

    async def _wait_idle(self) -> None:
        while self._inflight:
            self._idle = asyncio.get_running_loop().create_future()
            await self._idle

    def _fail_queued(self, why: str) -> None:
        while self._queue:
            envelope = self._queue.popleft()
            self._answer(envelope, event_response(envelope.request, PROCESSING_FAILURE, why))

    def _maybe_resume(self) -> None:
        if self._paused and len(self._queue) <= self._low_water and not self._stopping:
            for association in self._paused:
                association.resume_receiving()
            self._paused.clear()

    def _enqueue(
        self, event: UPSEvent, request: NEventReportRQ, ctx: RequestContext
    ) -> HandlerResult:
        """Queue the event; it is answered when the consumer has taken it."""
        queue = self._queue
        queue.append(Envelope(event, request, ctx))
        self._inflight += 1
        association = ctx.association
        if len(queue) >= self._buffer and association not in self._paused:
            association.pause_receiving()
            self._paused.add(association)
        self._wake_one()
        return DEFERRED

    def _answer(self, envelope: Envelope, response: NEventReportRSP) -> None:
        if not envelope.settled:
            envelope.ctx.respond(response)
            self._settle(envelope, dropped=False)

    def _settle(self, envelope: Envelope, *, dropped: bool) -> None:
        if envelope.settled:
            return
        envelope.settled = True
        if dropped:
            self.stats.dropped += 1
        self._inflight -= 1
        if not self._inflight and self._idle is not None and not self._idle.done():
            self._idle.set_result(None)

    def _landed(self, count: int) -> None:
        """``count`` events in flight outside the FIFO (a batch commit) were answered."""
        self._inflight -= count
        if not self._inflight and self._idle is not None and not self._idle.done():
            self._idle.set_result(None)

    def _track(self, future: asyncio.Future[NEventReportRSP]) -> None:
        """Count it as in flight until it settles (answered, or cancelled by a close).

        The done-callback is registered before the runtime's task awaits the future,
        so it runs just before that task writes the response, and whoever it wakes
        (the shutdown) runs after the write.
        """
        self._inflight += 1
        future.add_done_callback(self._settled)

    def _settled(self, future: asyncio.Future[NEventReportRSP]) -> None:
        if future.cancelled():
            self.stats.dropped += 1
        self._inflight -= 1
        if not self._inflight and self._idle is not None and not self._idle.done():
            self._idle.set_result(None)

    def _wake_one(self) -> None:
        waiters = self._waiters
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    async def _take(self) -> Envelope | None:
        """The next live queued event, waiting for one; None once the listener is done."""
        queue = self._queue
        while True:
            while queue:
                envelope = queue.popleft()
                if self._paused:
                    self._maybe_resume()
                if not envelope.settled:
                    return envelope
            if self._finished:
                return None
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            except asyncio.CancelledError:
                if waiter.done() and not waiter.cancelled():
                    self._wake_one()  # pass on the wake-up this consumer will not use
                raise
