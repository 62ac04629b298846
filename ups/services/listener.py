"""The UPS event listener: receive N-EVENT-REPORTs from any SCP, lose none (PS3.4 CC.2.4).

Two library shapes over one acceptor:

* :func:`listen` — an async context manager whose value is an async iterator of
  :class:`~ups.services.events.UPSEvent`;
* :func:`serve_events` — the same listener calling a function per event.

What is negotiated: the UPS Event SOP Class (final and Trial) and Verification, in any
of the four uncompressed transfer syntaxes, with or without SCP/SCU Role Selection.
dcm4chee-arc proposes SCU role 0 / SCP role 1 for itself (the event sender is the
Event SCP) and fails unless that role comes back, so the policy grants the requestor
the SCP role; pynetdicom proposes no roles and gets none back. The asynchronous
operations window (PS3.7 D.3.3.3) lets a sender have ``window`` reports outstanding.
The called AE title must be ours unless ``accept_any_called_ae`` (PS3.8 Table 9-21
reason 7 otherwise). ``calling_ae_titles`` limits who may connect (reason 3
otherwise) and ``verify_identity`` checks the User Identity sub-item (PS3.7
D.3.3.7; refused with 1/1/1).

The delivery guarantee, which shapes everything here: an N-EVENT-REPORT-RSP with
Success leaves only after the consumer has taken the event — when the iterator's
``__anext__`` returned it, or when the callback returned. So every report the sender
saw acknowledged was delivered, and the sender can resend anything else. Events wait
in one bounded FIFO (``buffer``); when it is full the association that filled it
stops being read (``Association.pause_receiving``), so TCP pushes back on the sender
instead of memory growing or events being dropped. A callback that raises earns
Processing Failure (0x0110) and the listener goes on; an unknown Event Type ID gets
No Such Event Type (0x0113).

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
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Final, Protocol, cast

import ups
from ups.dimse.datasets import TRANSFER_SYNTAXES, LazyDataset
from ups.dimse.errors import DatasetError, error_comment
from ups.dimse.messages import CEchoRQ, CEchoRSP, NEventReportRQ, NEventReportRSP, Request
from ups.dimse.scanner import DEFAULT_SCAN_LIMITS, ScanLimits, check_dataset, dataset_json
from ups.net.association import DEFERRED, Association, HandlerResult, RequestContext
from ups.net.config import AssociationConfig
from ups.net.responses import failure_response
from ups.net.server import Server, serve
from ups.pdu.fastinit import fast_new
from ups.pdu.negotiation import AcceptorPolicy, IdentityVerifier, SyntaxSupport
from ups.services.address import check_ae_title, parse_listen
from ups.services.events import (
    EVENT_SOP_CLASSES,
    EVENT_TYPE_NAMES,
    REPORTED_SOP_CLASSES,
    UPSEvent,
)
from ups.services.uids import VERIFICATION

__all__ = [
    "EventBatchConsumer",
    "EventCallback",
    "EventListener",
    "ListenerStats",
    "listen",
    "listener_policy",
    "serve_events",
]

log = logging.getLogger("ups.services.listener")

SUCCESS: Final = 0x0000
PROCESSING_FAILURE: Final = 0x0110
NO_SUCH_EVENT_TYPE: Final = 0x0113
NO_SUCH_SOP_CLASS: Final = 0x0118
UNRECOGNIZED_OPERATION: Final = 0x0211

EventCallback = Callable[[UPSEvent], "int | None | Awaitable[int | None]"]
"""Called once per event; returns None (Success) or a status code to answer with."""


class EventBatchConsumer(Protocol):
    """Takes events a read at a time: ``add`` each, then one ``commit`` for them all.

    The daemon renders each event in ``add`` and writes the read's lines with one write
    in ``commit``; the events are answered Success only after ``commit`` returned. An
    exception from either answers the events concerned with Processing Failure.
    """

    def add(self, event: UPSEvent) -> None: ...

    def commit(self) -> None: ...


Address = str | tuple[str, int]
_Sender = tuple[str, str, "tuple[str, int] | None"]
"""(calling AE title, called AE title, peer address) of one association."""
_new_event = fast_new(UPSEvent)


# ------------------------------------------------------------------------ addresses


def _resolve(address: Address, ae_title: str | None) -> tuple[str, str, int]:
    if isinstance(address, tuple):
        if not ae_title:
            raise ValueError("listen((host, port)) needs ae_title")
        host, port = address
        return check_ae_title(ae_title), host, int(port)
    aet, host, port = parse_listen(address)
    if ae_title and ae_title != aet:
        raise ValueError(f"AE title given twice: {aet!r} in {address!r} and {ae_title!r}")
    return aet, host, port


def listener_policy(
    ae_title: str | None,
    *,
    window: int = 64,
    max_pdata_length: int = 16 * 1024,
    transfer_syntaxes: tuple[str, ...] = TRANSFER_SYNTAXES,
    calling_ae_titles: Iterable[str] | None = None,
    verify_identity: IdentityVerifier | None = None,
) -> AcceptorPolicy:
    """What the listener negotiates; ``ae_title=None`` accepts any called AE title.

    ``calling_ae_titles`` None (or empty) accepts any calling AE title.
    """
    event = SyntaxSupport(transfer_syntaxes, requestor_scu=True, requestor_scp=True)
    supported = {uid: event for uid in EVENT_SOP_CLASSES}
    supported[VERIFICATION] = SyntaxSupport(transfer_syntaxes)
    return AcceptorPolicy(
        ae_titles=None if ae_title is None else frozenset({ae_title}),
        supported=supported,
        max_pdata_length=max_pdata_length,
        implementation_class_uid=ups.IMPLEMENTATION_CLASS_UID,
        implementation_version_name=ups.IMPLEMENTATION_VERSION_NAME,
        calling_ae_titles=frozenset(calling_ae_titles) if calling_ae_titles else None,
        max_ops_invoked=1,
        max_ops_performed=window,
        verify_identity=verify_identity,
    )


# ------------------------------------------------------------------------ state


@dataclass(slots=True)
class ListenerStats:
    """Counters an operator watches; all since the listener started."""

    events: int = 0
    """Events taken by the consumer (and answered Success unless it said otherwise)."""
    failed: int = 0
    """Events the callback raised on (answered 0x0110)."""
    refused: int = 0
    """Requests refused before delivery: unknown event type or SOP class, shutting down."""
    dropped: int = 0
    """Queued events whose association closed before the consumer took them."""
    associations_open: int = 0
    associations_total: int = 0
    started: float = field(default_factory=time.monotonic)


class _Envelope:
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


def _response(request: NEventReportRQ, status: int, comment: str | None = None) -> NEventReportRSP:
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


def _is_async_callable(callback: object) -> bool:
    call = getattr(callback, "__call__", None)  # noqa: B004 - async __call__ objects
    return inspect.iscoroutinefunction(callback) or inspect.iscoroutinefunction(call)


# ------------------------------------------------------------------------ the listener


class EventListener:
    """A running UPS event listener; made by :func:`listen` or :func:`serve_events`."""

    def __init__(
        self,
        address: Address,
        ae_title: str | None = None,
        *,
        config: AssociationConfig | None = None,
        buffer: int = 1000,
        window: int = 64,
        accept_any_called_ae: bool = False,
        reuse_port: bool = False,
        callback: EventCallback | None = None,
        concurrency: int = 1,
        calling_ae_titles: Iterable[str] | None = None,
        verify_identity: IdentityVerifier | None = None,
        consumer: EventBatchConsumer | None = None,
        scan_limits: ScanLimits = DEFAULT_SCAN_LIMITS,
        with_json: bool = False,
    ) -> None:
        if buffer < 1:
            raise ValueError("buffer must be at least 1")
        if window < 0:
            raise ValueError("window must be >= 0 (0 = unlimited)")
        self.ae_title, self.host, self._requested_port = _resolve(address, ae_title)
        self.config = config or AssociationConfig()
        self.policy = listener_policy(
            None if accept_any_called_ae else self.ae_title,
            window=window,
            max_pdata_length=self.config.max_pdata_receive,
            calling_ae_titles=calling_ae_titles,
            verify_identity=verify_identity,
        )
        self.stats = ListenerStats()
        self._reuse_port = reuse_port
        self._buffer = buffer
        self._low_water = buffer // 2
        self._queue: deque[_Envelope] = deque()
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._paused: set[Association] = set()
        self._inflight = 0
        self._idle: asyncio.Future[None] | None = None
        self._stopping = False
        self._closing = False
        self._finished = False
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
        self._senders: dict[Association, _Sender] = {}
        self._scan_limits = scan_limits
        self._with_json = with_json
        self._batch_pending: list[tuple[NEventReportRQ, RequestContext]] = []

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
    def queued(self) -> int:
        return len(self._queue)

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
        """Stop now: events nobody will take any more get 0x0110, then release all."""
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
            self._answer(envelope, _response(envelope.request, PROCESSING_FAILURE, why))

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
            # Its sender never saw these acknowledged and will send them again.
            kept: deque[_Envelope] = deque()
            for envelope in self._queue:
                if envelope.ctx.association is association:
                    self._settle(envelope, dropped=True)
                else:
                    kept.append(envelope)
            self._queue = kept

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

    def _maybe_resume(self) -> None:
        if self._paused and len(self._queue) <= self._low_water and not self._stopping:
            for association in self._paused:
                association.resume_receiving()
            self._paused.clear()

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
            return _response(
                request, NO_SUCH_SOP_CLASS, f"not a UPS class: {request.affected_sop_class_uid}"
            )
        if request.event_type_id not in EVENT_TYPE_NAMES:
            self.stats.refused += 1
            return _response(
                request, NO_SUCH_EVENT_TYPE, f"no UPS event type {request.event_type_id}"
            )
        if self._closing:
            self.stats.refused += 1
            return _response(request, PROCESSING_FAILURE, "listener is shutting down")
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
                return _response(request, exc.status, str(exc))
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
        try:
            self._batch.commit()
        except Exception as exc:
            for request, ctx in pending:
                ctx.respond(self._consumer_failed(request, exc))
            return
        self.stats.events += len(pending)
        for request, ctx in pending:
            ctx.respond(_response(request, SUCCESS))

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
            return _response(request, SUCCESS)
        if inspect.isawaitable(result):
            # Our own task, so a peer's abort cannot cancel the consumer half-way.
            task = asyncio.get_running_loop().create_task(
                self._await_result(cast(Awaitable[int | None], result), request)
            )
            outer = asyncio.shield(task)
            self._track(outer)
            return outer
        self.stats.events += 1
        return _response(request, SUCCESS if result is None else int(cast(int, result)))

    async def _await_result(
        self, result: Awaitable[int | None], request: NEventReportRQ
    ) -> NEventReportRSP:
        try:
            status = await result
        except Exception as exc:
            return self._consumer_failed(request, exc)
        self.stats.events += 1
        return _response(request, SUCCESS if status is None else int(status))

    def _consumer_failed(self, request: NEventReportRQ, exc: Exception) -> NEventReportRSP:
        self.stats.failed += 1
        log.warning("event consumer failed on message %d: %r", request.message_id, exc)
        return _response(request, PROCESSING_FAILURE, f"consumer failed: {exc}")

    def _enqueue(
        self, event: UPSEvent, request: NEventReportRQ, ctx: RequestContext
    ) -> HandlerResult:
        """Queue the event; it is answered when the consumer has taken it."""
        queue = self._queue
        queue.append(_Envelope(event, request, ctx))
        self._inflight += 1
        association = ctx.association
        if len(queue) >= self._buffer and association not in self._paused:
            association.pause_receiving()
            self._paused.add(association)
        self._wake_one()
        return DEFERRED

    def _answer(self, envelope: _Envelope, response: NEventReportRSP) -> None:
        if not envelope.settled:
            envelope.ctx.respond(response)
            self._settle(envelope, dropped=False)

    def _settle(self, envelope: _Envelope, *, dropped: bool) -> None:
        if envelope.settled:
            return
        envelope.settled = True
        if dropped:
            self.stats.dropped += 1
        self._inflight -= 1
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

    async def _take(self) -> _Envelope | None:
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
                response = _response(request, SUCCESS if status is None else int(status))
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
        self._answer(envelope, _response(envelope.request, SUCCESS))
        self.stats.events += 1
        return envelope.event


def listen(
    address: Address,
    ae_title: str | None = None,
    *,
    config: AssociationConfig | None = None,
    buffer: int = 1000,
    window: int = 64,
    accept_any_called_ae: bool = False,
    reuse_port: bool = False,
    calling_ae_titles: Iterable[str] | None = None,
    verify_identity: IdentityVerifier | None = None,
) -> EventListener:
    """``async with listen("ME@0.0.0.0:11113") as events: async for event in events: ...``

    ``address`` is the ``-L`` form ``aet[@host]:port`` or a ``(host, port)`` pair with
    ``ae_title``. ``buffer`` bounds the events read but not yet taken; ``window`` is the
    asynchronous operations window offered to each sender (0 = unlimited).
    ``calling_ae_titles`` restricts the senders (A-ASSOCIATE-RJ 1/1/3 otherwise);
    ``verify_identity`` judges their User Identity (1/1/1 when it returns False).
    """
    return EventListener(
        address,
        ae_title,
        config=config,
        buffer=buffer,
        window=window,
        accept_any_called_ae=accept_any_called_ae,
        reuse_port=reuse_port,
        calling_ae_titles=calling_ae_titles,
        verify_identity=verify_identity,
    )


def serve_events(
    callback: EventCallback,
    address: Address,
    ae_title: str | None = None,
    *,
    config: AssociationConfig | None = None,
    buffer: int = 1000,
    window: int = 64,
    accept_any_called_ae: bool = False,
    reuse_port: bool = False,
    concurrency: int = 1,
    calling_ae_titles: Iterable[str] | None = None,
    verify_identity: IdentityVerifier | None = None,
) -> EventListener:
    """Call ``callback(event)`` per event: ``async with serve_events(cb, "ME:11113"): ...``

    A plain function runs inline in the network callback, in arrival order, and is
    answered as soon as it returns. An ``async def`` runs in ``concurrency`` consumer
    tasks fed by the bounded FIFO (in arrival order when ``concurrency`` is 1). The
    return value is the status to answer with (None = Success); an exception is
    answered with Processing Failure (0x0110).
    """
    return EventListener(
        address,
        ae_title,
        config=config,
        buffer=buffer,
        window=window,
        accept_any_called_ae=accept_any_called_ae,
        reuse_port=reuse_port,
        callback=callback,
        concurrency=concurrency,
        calling_ae_titles=calling_ae_titles,
        verify_identity=verify_identity,
    )
