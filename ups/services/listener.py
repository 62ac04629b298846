"""The UPS event listener: receive N-EVENT-REPORTs from any SCP, lose none (PS3.4 CC.2.4).

Two library shapes over one acceptor:

* :func:`listen` — an async context manager whose value is an async iterator of
  :class:`~ups.services.events.UPSEvent`;
* :func:`serve_events` — the same listener calling a function per event.

Both take the listener's address (``aet[@host]:port``, :mod:`ups.services.address`)
and one :class:`~ups.services.settings.ListenerSettings`, which also says what is
negotiated. ``serve_events`` also takes a batch consumer instead of a function (the
``dcmups -L`` output, a sink such as :class:`ups.services.sinks.NatsSink`): it gets a
read's events at once, and its ``commit`` may be asynchronous (answered when it
completes, at most ``buffer`` events in unfinished commits).

The delivery guarantee, which shapes everything here: an N-EVENT-REPORT-RSP with
Success leaves only after the consumer has taken the event — when the iterator's
``__anext__`` returned it, or when the callback returned. So every report the sender
saw acknowledged was delivered, and the sender can resend anything else. Events wait
in one bounded FIFO (``buffer``); when it is full the association that filled it
stops being read (``Association.pause_receiving``), so TCP pushes back on the sender
instead of memory growing or events being dropped. A callback that raises earns
Processing failure and the listener goes on; an unknown Event Type ID gets No such
Event Type, and an Affected SOP Instance UID that is not a UID (PS3.5 §9.1) Invalid SOP
Instance (0117): such an event names a workitem nobody can address, so it is refused
rather than reported; the sender learns so at once instead of a consumer downstream.

Shutdown (:meth:`EventListener.stop`): stop accepting, stop reading, let the consumer
take what was already read and answer it, then release every association. Reports
that were queued when the association went away are dropped, unanswered: their
sender never saw them acknowledged.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from types import TracebackType
from typing import cast

from ups.dimse.datasets import LazyDataset
from ups.dimse.errors import DatasetError
from ups.dimse.messages import CEchoRQ, CEchoRSP, NEventReportRQ, NEventReportRSP, Request
from ups.dimse.responses import failure_response
from ups.dimse.scanner import check_dataset, dataset_json
from ups.dimse.status import INVALID_SOP_INSTANCE
from ups.dimse.values import uid_problem
from ups.net.association import DEFERRED, Association, HandlerResult, RequestContext
from ups.net.server import Server, serve
from ups.pdu.fastinit import fast_new
from ups.services.address import ListenAddress, resolve_listen
from ups.services.errors import ServiceError
from ups.services.eventqueue import (
    NO_SUCH_EVENT_TYPE,
    NO_SUCH_SOP_CLASS,
    PROCESSING_FAILURE,
    SUCCESS,
    UNRECOGNIZED_OPERATION,
    EventQueue,
    ListenerStats,
    event_response,
)
from ups.services.events import (
    EVENT_SOP_CLASSES,
    EVENT_TYPE_NAMES,
    REPORTED_SOP_CLASSES,
    EventBatchConsumer,
    EventCallback,
    UPSEvent,
)
from ups.services.settings import ListenerSettings, listener_policy
from ups.services.uids import VERIFICATION

__all__ = [
    "EventBatchConsumer",
    "EventCallback",
    "EventListener",
    "ListenerStats",
    "listen",
    "serve_events",
]

log = logging.getLogger("ups.services.listener")

_Sender = tuple[str, str, "tuple[str, int] | None"]
"""(calling AE title, called AE title, peer address) of one association."""
_new_event = fast_new(UPSEvent)


def _is_async_callable(callback: object) -> bool:
    call = getattr(callback, "__call__", None)  # noqa: B004 - async __call__ objects
    return inspect.iscoroutinefunction(callback) or inspect.iscoroutinefunction(call)


# ------------------------------------------------------------------------ the listener


class EventListener(EventQueue):
    """A running UPS event listener; made by :func:`listen` or :func:`serve_events`."""

    def __init__(
        self,
        address: ListenAddress,
        ae_title: str | None = None,
        settings: ListenerSettings | None = None,
        *,
        callback: EventCallback | None = None,
        concurrency: int = 1,
        consumer: EventBatchConsumer | None = None,
        with_json: bool = False,
    ) -> None:
        settings = settings or ListenerSettings()
        self.settings = settings
        self.ae_title, self.host, self._requested_port = resolve_listen(address, ae_title)
        self.config = settings.config
        self.policy = listener_policy(
            None if settings.accept_any_called_ae else self.ae_title, settings
        )
        super().__init__(settings.buffer)
        self._reuse_port = settings.reuse_port
        self._closing = False
        self._server: Server | None = None
        self._shutdown_task: asyncio.Task[None] | None = None
        self._grace = 5.0
        self._callback = callback
        self._sync_callback: Callable[[UPSEvent], object] | None = None
        self._async_callback: Callable[[UPSEvent], Awaitable[int | None]] | None = None
        if callback is not None:
            if _is_async_callable(callback):
                self._async_callback = cast(Callable[[UPSEvent], Awaitable[int | None]], callback)
            else:
                self._sync_callback = callback
        self._concurrency = max(1, concurrency)
        self._consumers: list[asyncio.Task[None]] = []
        if consumer is not None and callback is not None:
            raise ValueError("give a callback or a batch consumer, not both")
        self._batch = consumer
        self._commit_then: Callable[[Callable[[BaseException | None], None]], bool] | None = (
            getattr(consumer, "commit_then", None)
        )
        self._senders: dict[Association, _Sender] = {}
        self._scan_limits = settings.scan_limits
        self._with_json = with_json
        self._batch_pending: list[tuple[NEventReportRQ, RequestContext]] = []
        self._committing = 0

    # -------------------------------------------------------------- lifecycle

    async def start(self) -> EventListener:
        """Bind and start accepting associations."""
        if self._server is not None:
            return self
        self._server = await serve(
            self.host,
            self._requested_port,
            self.policy,
            self.config,
            handlers={
                **{uid: self._on_request for uid in EVENT_SOP_CLASSES},
                VERIFICATION: self._on_echo,
            },
            on_established=self._on_established,
            on_closed=self._on_closed,
            reuse_port=self._reuse_port,
        )
        if self._async_callback is not None:
            loop = asyncio.get_running_loop()
            self._consumers = [loop.create_task(self._consume()) for _ in range(self._concurrency)]
        return self

    @property
    def port(self) -> int:
        """The bound TCP port (useful after asking for port 0)."""
        if self._server is None:
            raise RuntimeError("listener is not started")
        return self._server.port

    @property
    def associations(self) -> frozenset[Association]:
        return frozenset(self._server.associations) if self._server else frozenset()

    @property
    def stopping(self) -> bool:
        return self._stopping

    def stop(self, grace: float = 5.0) -> None:
        """Begin a graceful stop and return at once.

        No new associations; nothing more is read; what was read is still delivered
        (the iterator keeps yielding it) and answered; then associations are released,
        aborted if they are not closed within ``grace`` seconds. Iteration ends after
        that; :meth:`wait_closed` waits for it.
        """
        if self._shutdown_task is None:
            self._grace = grace
            self._shutdown_task = asyncio.get_running_loop().create_task(self._shutdown())

    async def wait_closed(self) -> None:
        """Wait until a stop begun with :meth:`stop` has finished."""
        if self._shutdown_task is not None:
            await asyncio.shield(self._shutdown_task)

    async def close(self, grace: float = 5.0) -> None:
        """Stop now: events nobody will take any more get Processing failure, then release."""
        self.stop(grace)
        self._stopping = True
        if self._callback is None:
            # The iterator's consumer has gone; what it did not take it never will.
            self._fail_queued("listener closed before the event was taken")
        await self.wait_closed()

    def abort(self) -> None:
        """A-ABORT every association and stop accepting, without answering anything."""
        self._stopping = self._closing = True
        if self._server is not None:
            self._server.stop_accepting()
            for association in list(self._server.associations):
                association.abort()
        self._finish()

    async def __aenter__(self) -> EventListener:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if isinstance(exc, asyncio.CancelledError):
            self.abort()
            if self._server is not None:
                await self._server.close(0)
            return
        await self.close(self._grace)

    async def _shutdown(self) -> None:
        self._stopping = True
        server = self._server
        if server is not None:
            server.stop_accepting()
            for association in list(server.associations):
                association.pause_receiving()
        await self._wait_idle()
        self._closing = True
        if server is not None:
            for association in list(server.associations):
                association.resume_receiving()  # to read the A-RELEASE-RP
            self._paused.clear()
            await server.close(self._grace)
        self._finish()
        if self._consumers:
            await asyncio.gather(*self._consumers, return_exceptions=True)

    # -------------------------------------------------------------- associations

    def _on_established(self, association: Association) -> None:
        self.stats.associations_open += 1
        self.stats.associations_total += 1
        if self._stopping:
            association.pause_receiving()

    def _on_closed(self, association: Association) -> None:
        if association.negotiated is not None:
            self.stats.associations_open -= 1
        self._paused.discard(association)
        self._senders.pop(association, None)
        if self._queue:
            self._drop_queued(association)

    def _sender(self, association: Association) -> _Sender:
        """Who sends on ``association``, worked out once, not per event."""
        peer = association.peer
        sender = (
            association.remote_ae_title,
            association.local_ae_title,
            (str(peer[0]), int(peer[1])) if peer else None,
        )
        self._senders[association] = sender
        return sender

    # -------------------------------------------------------------- requests

    def _on_echo(self, request: Request, ctx: RequestContext) -> HandlerResult:
        if type(request) is CEchoRQ:
            return CEchoRSP(request.message_id, SUCCESS, request.affected_sop_class_uid)
        return failure_response(request, UNRECOGNIZED_OPERATION, "Verification: C-ECHO only")

    def _on_request(self, request: Request, ctx: RequestContext) -> HandlerResult:
        if type(request) is not NEventReportRQ:
            return failure_response(
                request, UNRECOGNIZED_OPERATION, "UPS Event: N-EVENT-REPORT only"
            )
        if request.affected_sop_class_uid not in REPORTED_SOP_CLASSES:
            self.stats.refused += 1
            return event_response(
                request, NO_SUCH_SOP_CLASS, f"not a UPS class: {request.affected_sop_class_uid}"
            )
        if request.event_type_id not in EVENT_TYPE_NAMES:
            self.stats.refused += 1
            return event_response(
                request, NO_SUCH_EVENT_TYPE, f"no UPS event type {request.event_type_id}"
            )
        problem = uid_problem(request.affected_sop_instance_uid)
        if problem is not None:
            self.stats.refused += 1
            return event_response(request, INVALID_SOP_INSTANCE, f"(0000,1000) {problem}")
        if self._closing:
            self.stats.refused += 1
            return event_response(request, PROCESSING_FAILURE, "listener is shutting down")
        association = ctx.association
        sender = self._senders.get(association) or self._sender(association)
        raw = request.dataset
        model = None
        if raw:
            # One pass of the scanner checks structure and limits (and, for the --json
            # daemon, renders the data set), so nothing malformed or oversized reaches
            # the consumer and no event costs more than its limits allow.
            try:
                if self._with_json:
                    model = dataset_json(raw, ctx.context.transfer_syntax, self._scan_limits)
                else:
                    check_dataset(raw, ctx.context.transfer_syntax, self._scan_limits)
            except DatasetError as exc:
                self.stats.refused += 1
                return event_response(request, exc.status, str(exc))
        event = _new_event(
            request.event_type_id,
            request.affected_sop_instance_uid,
            request.affected_sop_class_uid,
            sender[0],
            sender[1],
            time.time(),
            LazyDataset(raw, ctx.context.transfer_syntax) if raw else None,
            request.message_id,
            ctx.context.abstract_syntax,
            sender[2],
            model,
        )
        if self._batch is not None:
            return self._add_to_batch(self._batch, event, request, ctx)
        if self._sync_callback is not None:
            return self._call_now(self._sync_callback, event, request)
        return self._enqueue(event, request, ctx)

    def _add_to_batch(
        self,
        batch: EventBatchConsumer,
        event: UPSEvent,
        request: NEventReportRQ,
        ctx: RequestContext,
    ) -> HandlerResult:
        """Hand the event over now; answer it with the rest of its read after ``commit``."""
        try:
            batch.add(event)
        except Exception as exc:
            return self._consumer_failed(request, exc)
        pending = self._batch_pending
        pending.append((request, ctx))
        if len(pending) == 1:
            ctx.association.at_read_end(self._commit_batch)
        return DEFERRED

    def _commit_batch(self) -> None:
        pending, self._batch_pending = self._batch_pending, []
        assert self._batch is not None
        then = self._commit_then
        if then is not None:
            self._hold(pending)
            try:
                started = then(lambda exc: self._commit_settled(exc, pending))
            except Exception as exc:
                self._commit_settled(exc, pending)
                return
            if not started:
                self._commit_settled(None, pending)
            return
        try:
            result = self._batch.commit()
        except Exception as exc:
            self._batch_failed(pending, exc)
            return
        if result is None:
            self._batch_taken(pending)
        else:
            self._commit_later(result, pending)

    def _batch_taken(self, pending: list[tuple[NEventReportRQ, RequestContext]]) -> None:
        self.stats.events += len(pending)
        for request, ctx in pending:
            ctx.respond(event_response(request, SUCCESS))

    def _batch_failed(
        self, pending: list[tuple[NEventReportRQ, RequestContext]], exc: BaseException
    ) -> None:
        if isinstance(exc, ServiceError):
            # The consumer names the status (a sink whose broker is away: 0213, try
            # again) and logs the cause itself, once per outage rather than per event.
            self.stats.failed += len(pending)
            for request, ctx in pending:
                ctx.respond(event_response(request, exc.status, exc.comment))
            return
        if not isinstance(exc, Exception):
            exc = RuntimeError(f"commit ended: {exc!r}")
        for request, ctx in pending:
            ctx.respond(self._consumer_failed(request, exc))

    def _commit_later(
        self, result: Awaitable[None], pending: list[tuple[NEventReportRQ, RequestContext]]
    ) -> None:
        """An asynchronous commit: answer the batch when it completes, keep reading meanwhile.

        At most ``buffer`` events wait in unfinished commits: the association that goes
        beyond is no longer read until they drain to half (its sender's window and TCP
        hold the rest), so nothing grows with the sender's rate.
        """
        future = asyncio.ensure_future(result)
        self._hold(pending)
        future.add_done_callback(lambda done: self._committed(done, pending))

    def _hold(self, pending: list[tuple[NEventReportRQ, RequestContext]]) -> None:
        count = len(pending)
        self._committing += count
        self._inflight += count  # a graceful stop waits for them
        if self._committing >= self._buffer:
            association = pending[0][1].association  # a read's events share one
            if association not in self._paused:
                association.pause_receiving()
                self._paused.add(association)

    def _committed(
        self, future: asyncio.Future[None], pending: list[tuple[NEventReportRQ, RequestContext]]
    ) -> None:
        if future.cancelled():
            self._commit_settled(RuntimeError("commit cancelled"), pending)
        else:
            self._commit_settled(future.exception(), pending)

    def _commit_settled(
        self, exc: BaseException | None, pending: list[tuple[NEventReportRQ, RequestContext]]
    ) -> None:
        if exc is not None:
            self._batch_failed(pending, exc)
        else:
            self._batch_taken(pending)
        pending[0][1].association.write_now()  # the batch's answers: one write, now
        self._committing -= len(pending)
        self._landed(len(pending))
        if self._paused and self._committing <= self._low_water and not self._stopping:
            for association in self._paused:
                association.resume_receiving()
            self._paused.clear()

    def _call_now(
        self, callback: Callable[[UPSEvent], object], event: UPSEvent, request: NEventReportRQ
    ) -> HandlerResult:
        """A plain function runs inline: it blocks the loop, which is its backpressure."""
        try:
            result = callback(event)
        except Exception as exc:
            return self._consumer_failed(request, exc)
        if result is None:
            self.stats.events += 1
            return event_response(request, SUCCESS)
        if inspect.isawaitable(result):
            # Our own task, so a peer's abort cannot cancel the consumer half-way.
            task = asyncio.get_running_loop().create_task(
                self._await_result(cast(Awaitable[int | None], result), request)
            )
            outer = asyncio.shield(task)
            self._track(outer)
            return outer
        self.stats.events += 1
        return event_response(request, SUCCESS if result is None else int(cast(int, result)))

    async def _await_result(
        self, result: Awaitable[int | None], request: NEventReportRQ
    ) -> NEventReportRSP:
        try:
            status = await result
        except Exception as exc:
            return self._consumer_failed(request, exc)
        self.stats.events += 1
        return event_response(request, SUCCESS if status is None else int(status))

    def _consumer_failed(self, request: NEventReportRQ, exc: Exception) -> NEventReportRSP:
        self.stats.failed += 1
        log.warning("event consumer failed on message %d: %r", request.message_id, exc)
        return event_response(request, PROCESSING_FAILURE, f"consumer failed: {exc}")

    async def _consume(self) -> None:
        callback = self._async_callback
        assert callback is not None
        while True:
            envelope = await self._take()
            if envelope is None:
                return
            request = envelope.request
            try:
                status = await callback(envelope.event)
            except Exception as exc:
                response = self._consumer_failed(request, exc)
            else:
                self.stats.events += 1
                response = event_response(request, SUCCESS if status is None else int(status))
            self._answer(envelope, response)

    # -------------------------------------------------------------- iteration

    def __aiter__(self) -> AsyncIterator[UPSEvent]:
        if self._callback is not None:
            raise TypeError("a listener made with a callback cannot also be iterated")
        return self

    async def __anext__(self) -> UPSEvent:
        envelope = await self._take()
        if envelope is None:
            raise StopAsyncIteration
        # Taken: the Success response may go now (the answers a loop pass gives share a write).
        self._answer(envelope, event_response(envelope.request, SUCCESS))
        self.stats.events += 1
        return envelope.event


def listen(
    address: ListenAddress, ae_title: str | None = None, settings: ListenerSettings | None = None
) -> EventListener:
    """``async with listen("ME@0.0.0.0:11113") as events: async for event in events: ...``

    ``address`` is the ``-L`` form ``aet[@host]:port`` or a ``(host, port)`` pair with
    ``ae_title``; ``settings`` says what is accepted and how much is held
    (:class:`~ups.services.settings.ListenerSettings`).
    """
    return EventListener(address, ae_title, settings)


def serve_events(
    callback: EventCallback | EventBatchConsumer,
    address: ListenAddress,
    ae_title: str | None = None,
    settings: ListenerSettings | None = None,
    *,
    concurrency: int = 1,
) -> EventListener:
    """Call ``callback(event)`` per event: ``async with serve_events(cb, "ME:11113"): ...``

    A plain function runs inline in the network callback, in arrival order, and is
    answered as soon as it returns. An ``async def`` runs in ``concurrency`` consumer
    tasks fed by the bounded FIFO (in arrival order when ``concurrency`` is 1). The
    return value is the status to answer with (None = Success); an exception is
    answered with Processing failure.

    ``callback`` may instead be a batch consumer (:class:`EventBatchConsumer`, such as
    :class:`ups.services.sinks.NatsSink`): it gets a read's events with ``add`` and one
    ``commit``, and they are answered when the commit has completed.
    """
    if _is_batch_consumer(callback):
        consumer = cast(EventBatchConsumer, callback)
        wants_json = bool(getattr(consumer, "wants_json_model", False))
        return EventListener(address, ae_title, settings, consumer=consumer, with_json=wants_json)
    return EventListener(
        address,
        ae_title,
        settings,
        callback=cast(EventCallback, callback),
        concurrency=concurrency,
    )


def _is_batch_consumer(target: object) -> bool:
    return callable(getattr(target, "add", None)) and callable(getattr(target, "commit", None))
