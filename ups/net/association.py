"""The association adapter: one ``asyncio.Protocol`` per connection over a provider core.

The protocol logic (PS3.8 machine, negotiation, Message IDs, both windows, C-FIND
streams, cancel, the reaper and every deadline) lives in the sans-I/O
``dimse.provider.DimseProvider``. This module joins it to a transport and to callers:

* bytes from ``data_received`` go to the core; its events come back through one loop
  (``_drain``): requests go to handlers (per SOP class), responses to the future or
  C-FIND stream waiting for them, transport effects to the transport;
* one timer handle per association, re-armed at the core's ``next_deadline()``;
* everything one read causes leaves in one ``transport.write``; answers given outside a
  read (``ctx.respond``) share one write per loop pass; read-end hooks run first;
* flow control: the transport's pause/resume of writing goes to the core (which holds
  our requests and, past a backlog, stops reading), and the core's pause/resume of
  reading to the transport.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections import deque
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any, cast

from ups.dimse.errors import ProviderAborted, ProviderError, ProviderRejected, ProviderTimeout
from ups.dimse.messages import CFindRQ, CFindRSP, Request, Response
from ups.dimse.provider import DimseProvider
from ups.dimse.provider_events import (
    Aborted,
    Closed,
    CloseTransport,
    Established,
    PauseReading,
    ProviderEvent,
    Rejected,
    RequestFailed,
    RequestReceived,
    RequestRejected,
    ResetTransport,
    ResponseReceived,
    ResumeReading,
)
from ups.dimse.status import Status
from ups.net.config import AssociationConfig
from ups.net.errors import (
    AssociationAborted,
    AssociationRejected,
    NetError,
    NetTimeout,
    NoPresentationContext,
)
from ups.net.handlers import (
    DEFAULT_HANDLERS,
    DEFERRED,
    Deferred,
    Handler,
    HandlerResult,
    RequestContext,
    as_stream,
    serve_stream,
)
from ups.net.responses import failure_response, response_for_field
from ups.pdu.enums import AbortReason
from ups.pdu.negotiation import AcceptedContext, AcceptorPolicy, Negotiated
from ups.pdu.pdus import AAssociateRQ

log = logging.getLogger("ups.net")

_PENDING = frozenset({int(Status.PENDING), int(Status.PENDING_WARNING)})
_NOT_SUPPORTED = int(Status.SOP_CLASS_NOT_SUPPORTED)
_PROCESSING_FAILURE = int(Status.PROCESSING_FAILURE)
_TCP_QUICKACK: int | None = getattr(socket, "TCP_QUICKACK", None)  # Linux only


class _Waiter:
    """A caller awaiting our request's response; for C-FIND, a queue of the responses."""

    __slots__ = ("future", "stream", "ready")

    def __init__(self, future: asyncio.Future[Response], stream: bool) -> None:
        self.future = future
        self.stream: deque[Response] | None = deque() if stream else None
        self.ready: asyncio.Future[None] | None = None

    def wake(self) -> None:
        if self.ready is not None and not self.ready.done():
            self.ready.set_result(None)


class Association(asyncio.Protocol):
    """One DICOM association over one transport connection (requestor or acceptor)."""

    def __init__(
        self,
        config: AssociationConfig,
        *,
        requestor: bool,
        policy: AcceptorPolicy | None = None,
        handlers: Mapping[str, Handler] | None = None,
        on_established: Callable[[Association], None] | None = None,
        on_closed: Callable[[Association], None] | None = None,
        on_connected: Callable[[Association], None] | None = None,
    ) -> None:
        self._loop = asyncio.get_running_loop()
        self.config = config
        self.requestor = requestor
        self._core = DimseProvider(config.provider_settings(), requestor=requestor, policy=policy)
        self._handlers = {**DEFAULT_HANDLERS, **(handlers or {})}
        self._on_established = on_established
        self._on_closed = on_closed
        self._on_connected = on_connected
        self.established: asyncio.Future[Negotiated] = self._loop.create_future()
        self.closed: asyncio.Future[None] = self._loop.create_future()
        self.peer: tuple[Any, ...] | None = None
        self._transport: asyncio.Transport | None = None
        self._socket: Any = None  # for TCP_QUICKACK; None when not TCP or not Linux
        self._waiters: dict[int, _Waiter] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._drain_waiter: asyncio.Future[None] | None = None
        self._errors: dict[int, NetError] = {}  # the one NetError per core failure
        self._timer: asyncio.TimerHandle | None = None
        self._timer_when = 0.0
        self._in_read = False  # inside data_received: writes wait for its end
        self._draining = False
        self._close_wanted = False
        self._read_end: list[Callable[[], None]] = []
        self._flush_soon: asyncio.Handle | None = None

    # ================================================================== public API

    @property
    def negotiated(self) -> Negotiated | None:
        return self._core.negotiated

    @property
    def is_established(self) -> bool:
        return self._core.is_established and not self.closed.done()

    @property
    def remote_ae_title(self) -> str:
        negotiated = self._core.negotiated
        return negotiated.remote_ae_title if negotiated else ""

    @property
    def local_ae_title(self) -> str:
        negotiated = self._core.negotiated
        return negotiated.local_ae_title if negotiated else ""

    def new_message_id(self) -> int:
        """A Message ID not used by any outstanding request (PS3.7 §9.1.1.1)."""
        try:
            return self._core.new_message_id()
        except ProviderError as exc:
            raise self._error(exc) from None

    def context_for(self, abstract_syntax: str) -> AcceptedContext:
        """The accepted presentation context for ``abstract_syntax``."""
        found = self._require_established().context_for(abstract_syntax)
        if found is None:
            raise NoPresentationContext(
                f"{self.remote_ae_title} accepted no presentation context for {abstract_syntax}"
            )
        return found

    async def request(self, request: Request, context_id: int) -> Response:
        """Send ``request`` on ``context_id`` and wait for its (final) response."""
        waiter = self._submit(request, context_id, stream=False)
        try:
            return await waiter.future
        except asyncio.CancelledError:
            self._abandon(request)
            raise

    async def find(self, request: CFindRQ, context_id: int) -> AsyncIterator[CFindRSP]:
        """Send a C-FIND-RQ and yield each response, pending ones then the final one.

        Leaving the loop early sends C-CANCEL-RQ (PS3.7 §9.3.2.3); the responses still
        in flight are absorbed and the window place is freed when the final one arrives.
        """
        waiter = self._submit(request, context_id, stream=True)
        stream = waiter.stream
        assert stream is not None
        finished = False
        try:
            while True:
                while stream:
                    response = cast(CFindRSP, stream.popleft())
                    if response.status not in _PENDING:
                        finished = True
                        yield response
                        return
                    yield response
                if waiter.future.done():
                    finished = True
                    await waiter.future  # failed (abort, timeout): raise its cause
                    return
                waiter.ready = self._loop.create_future()
                await waiter.ready  # set by the next response or by a failure
        finally:
            if not finished and not waiter.future.done() and self.is_established:
                self._abandon(request)

    async def release(self) -> None:
        """A-RELEASE once what we perform is answered; -releaseTO for the RP, else abort."""
        if self.closed.done():
            return
        self._core.release(self._loop.time())
        self._pump()
        try:
            await asyncio.shield(self.closed)
        except asyncio.CancelledError:
            self.abort()
            raise

    def abort(self, reason: AbortReason | None = None) -> None:
        """A-ABORT now (service user unless a provider ``reason`` is given)."""
        self._core.abort(self._loop.time(), reason)
        self._pump()

    async def wait_closed(self) -> None:
        await asyncio.shield(self.closed)

    def pause_receiving(self) -> None:
        """Stop reading from the peer (consumer backpressure; see the listener)."""
        self._core.pause_reading("consumer")
        self._pump()

    def resume_receiving(self) -> None:
        self._core.resume_reading("consumer")
        self._pump()

    def at_read_end(self, hook: Callable[[], None]) -> None:
        """Run ``hook`` once the current read's messages are handled, before its one write.

        Outside ``data_received`` the hook runs at once. The listener writes a read's
        events out together here, then answers them (DESIGN.md: writes batched per read).
        """
        if self._in_read:
            self._read_end.append(hook)
        else:
            hook()

    def start_request(self, rq: AAssociateRQ) -> None:
        """Called before connecting: the A-ASSOCIATE-RQ to send once the transport is up."""
        self._core.associate(rq, self._loop.time())

    # ================================================================== asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)
        self.peer = peer = transport.get_extra_info("peername")
        self._socket = _set_socket_options(transport, self.config)
        self._transport.set_write_buffer_limits(high=self.config.write_buffer_limit)
        if self._on_connected is not None:
            self._on_connected(self)
        where = f"{peer[0]}:{peer[1]}" if peer else ""
        self._core.connection_made(self._loop.time(), where)
        self._pump()

    def data_received(self, data: bytes) -> None:
        core = self._core
        self._in_read = True
        try:
            core.receive_data(data, self._loop.time())
            self._drain()
            while self._read_end:
                hooks, self._read_end = self._read_end, []
                for hook in hooks:
                    hook()
                self._drain()
        finally:
            self._in_read = False
        # One write for everything this read caused: DIMSE responses in order, and what
        # the core answered itself (A-ABORT, A-RELEASE-RP, A-ASSOCIATE-RJ).
        self._flush()
        when = core.next_deadline()
        if when is not None and (self._timer is None or when < self._timer_when):
            self._arm(when)
        if self._socket is not None and core.incomplete:
            self._quickack()

    def _quickack(self) -> None:
        """ACK now: we wait for the rest of a message, and its sender may be waiting for us.

        A peer that leaves Nagle on (pynetdicom, DCMTK without TCP_NODELAY=1) sends the
        second half of a message only once its first half is acknowledged, and Linux
        delays that ACK by up to 40 ms. TCP_QUICKACK is not sticky, so it is set after
        each read that leaves a message incomplete (never on the complete-read hot path).
        """
        try:
            self._socket.setsockopt(socket.IPPROTO_TCP, _TCP_QUICKACK, 1)
        except OSError:
            self._socket = None

    def eof_received(self) -> bool | None:
        return None  # close our side too; connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None
        self._core.connection_lost(self._loop.time(), str(exc) if exc else "")
        self._pump()

    def pause_writing(self) -> None:
        # Reading goes on: stopping it here could deadlock two peers that both write.
        self._core.writing_paused(self._loop.time())

    def resume_writing(self) -> None:
        self._core.writing_resumed(self._loop.time())
        self._wake_drain()
        self._pump()

    # ================================================================== core events

    def _drain(self) -> None:
        """Handle the core's events in order (re-entrant calls leave it to the outer loop)."""
        if self._draining:
            return
        self._draining = True
        core = self._core
        try:
            while (event := core.next_event()) is not None:
                kind = type(event)
                if kind is RequestReceived:
                    self._dispatch(event)  # type: ignore[arg-type]
                elif kind is ResponseReceived:
                    self._on_response(event)  # type: ignore[arg-type]
                else:
                    self._on_event(event)
        finally:
            self._draining = False

    def _on_event(self, event: ProviderEvent) -> None:
        transport = self._transport
        if isinstance(event, PauseReading | ResumeReading | ResetTransport):
            if transport is not None:
                if isinstance(event, PauseReading):
                    transport.pause_reading()
                elif isinstance(event, ResumeReading):
                    transport.resume_reading()
                else:
                    transport.abort()
        elif isinstance(event, CloseTransport):
            self._close_wanted = True  # after writing what the core still holds
        elif isinstance(event, RequestFailed):
            waiter = self._waiters.pop(event.message_id, None)
            if waiter is not None:
                if not waiter.future.done():
                    waiter.future.set_exception(self._error(event.cause))
                    waiter.future.exception()  # mark retrieved: the caller may have gone
                waiter.wake()
        elif isinstance(event, RequestRejected):
            response = response_for_field(
                event.command_field, event.message_id, event.status, event.comment
            )
            assert response is not None  # the core checked there is a response type
            self._core.respond(response, event.context_id)
        elif isinstance(event, Established):
            if not self.established.done():
                self.established.set_result(event.negotiated)
            if self._on_established is not None:
                self._on_established(self)
        elif isinstance(event, Aborted | Rejected):
            if isinstance(event, Rejected) and event.local:
                words = describe_reject(event.cause.result, event.cause.source, event.cause.reason)
                log.info(
                    "rejected association from %s to %s: %s",
                    event.calling_ae_title,
                    event.called_ae_title,
                    words,
                )
            self._failed(event.cause)
        elif isinstance(event, Closed):
            self._finish(event.cause)

    def _on_response(self, event: ResponseReceived) -> None:
        final = event.final
        waiters = self._waiters
        waiter = waiters.pop(event.message_id, None) if final else waiters.get(event.message_id)
        if waiter is None:
            return
        if waiter.stream is not None:
            waiter.stream.append(event.response)
            waiter.wake()
        if final and not waiter.future.done():
            waiter.future.set_result(event.response)

    def _failed(self, cause: ProviderError) -> None:
        if not self.established.done():
            self.established.set_exception(self._error(cause))
            self.established.exception()  # mark retrieved: the caller may have gone
        self._wake_drain()

    def _finish(self, cause: ProviderError) -> None:
        self._failed(cause)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._flush_soon is not None:
            self._flush_soon.cancel()
            self._flush_soon = None
        for task in list(self._tasks):
            task.cancel()
        if not self.closed.done():
            self.closed.set_result(None)
        if self._on_closed is not None:
            self._on_closed(self)

    # ================================================================== handler dispatch

    def _dispatch(self, event: RequestReceived) -> None:
        core = self._core
        context_id = event.context_id
        request = event.request
        negotiated = core.negotiated
        assert negotiated is not None
        context = negotiated.contexts[context_id]
        message_id: int = getattr(request, "message_id", 0)
        ctx = RequestContext(self, context, False, context_id, message_id)
        handler = self._handlers.get(context.abstract_syntax)
        if handler is None:
            comment = "no service for this SOP class"
            core.respond(failure_response(request, _NOT_SUPPORTED, comment), context_id)
            return
        try:
            result: HandlerResult = handler(request, ctx)
        except Exception as exc:  # a handler bug must not end the association
            log.exception("handler for %s failed", type(request).__name__)
            failure = failure_response(request, _PROCESSING_FAILURE, str(exc)[:64])
            core.respond(failure, context_id)
            return
        if hasattr(result, "COMMAND_FIELD"):  # the fast path: answered at once
            core.respond(cast(Response, result), context_id)
        elif result is DEFERRED:
            core.perform(ctx)  # counts in the window until answered
        else:
            # Reading goes on while the peer stays within its window, so that a
            # C-CANCEL-RQ, an A-RELEASE-RQ or an A-ABORT still gets through.
            core.perform(ctx)
            responses = as_stream(result)
            task = self._loop.create_task(serve_stream(self, request, ctx, responses))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def _respond(self, ctx: RequestContext, response: Response) -> None:
        """``ctx.respond``: the answer to a ``DEFERRED`` request."""
        if not self._core.complete(ctx, response, self._loop.time()) or self._in_read:
            return
        self._drain()
        if self._flush_soon is None and not self.closed.done():
            self._flush_soon = self._loop.call_soon(self._flush_later)

    # ================================================================== requests

    def _submit(self, request: Request, context_id: int, *, stream: bool) -> _Waiter:
        try:
            self._core.send_request(request, context_id, self._loop.time(), stream=stream)
        except ProviderError as exc:
            raise self._error(exc) from None
        waiter = _Waiter(self._loop.create_future(), stream)
        self._waiters[request.message_id] = waiter  # type: ignore[union-attr]
        self._pump()
        return waiter

    def _abandon(self, request: Request) -> None:
        message_id: int = request.message_id  # type: ignore[union-attr]
        self._waiters.pop(message_id, None)
        self._core.abandon(message_id, self._loop.time())
        self._pump()

    def _send_cancel(self, message_id: int) -> None:
        """C-CANCEL-RQ for our C-FIND ``message_id``, its responses still awaited."""
        self._core.cancel(message_id, self._loop.time())
        self._pump()

    def _require_established(self) -> Negotiated:
        try:
            return self._core.check_established()
        except ProviderError as exc:
            raise self._error(exc) from None

    def _error(self, cause: ProviderError) -> NetError:
        """The ``NetError`` for ``cause``: one object per failure, whoever asks."""
        known = self._errors.get(id(cause))
        if known is not None:
            return known
        error: NetError
        if isinstance(cause, ProviderRejected):
            words = describe_reject(cause.result, cause.source, cause.reason)
            error = AssociationRejected(
                f"association rejected: {words}", cause.result, cause.source, cause.reason
            )
        elif isinstance(cause, ProviderAborted):
            error = AssociationAborted(str(cause), cause.source, cause.reason)
        elif isinstance(cause, ProviderTimeout):
            error = NetTimeout(str(cause))
        else:
            error = NetError(str(cause))
        if cause is self._core.failure:
            self._errors[id(cause)] = error
        return error

    # ================================================================== writes and time

    def _pump(self) -> None:
        """After a call into the core outside a read: its events, one write, the timer."""
        self._drain()
        if not self._in_read:
            self._flush()
            self._rearm()

    def _flush(self) -> None:
        transport = self._transport
        out = self._core.data_to_send()
        if transport is None:
            return
        if out:
            transport.write(out)
        if self._close_wanted:
            self._close_wanted = False
            if not transport.is_closing():
                transport.close()

    def _flush_later(self) -> None:
        self._flush_soon = None
        self._flush()
        self._rearm()

    async def _wait_drain(self) -> None:
        if self._drain_waiter is None:
            self._drain_waiter = self._loop.create_future()
        await asyncio.shield(self._drain_waiter)

    def _wake_drain(self) -> None:
        waiter, self._drain_waiter = self._drain_waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _rearm(self) -> None:
        when = self._core.next_deadline()
        if when is not None and (self._timer is None or when < self._timer_when):
            self._arm(when)

    def _arm(self, when: float) -> None:
        """The one timer fires at ``when``; earlier deadlines re-arm it, later ones wait."""
        if self._timer is not None:
            self._timer.cancel()
        if self.closed.done():
            self._timer = None
            return
        self._timer_when = when
        self._timer = self._loop.call_at(when, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        if self.closed.done():
            return
        self._core.handle_timer(self._loop.time())
        self._pump()


def _set_socket_options(transport: asyncio.BaseTransport, config: AssociationConfig) -> Any:
    """TCP_NODELAY and buffer sizes per ``config``; the socket if TCP_QUICKACK applies."""
    sock = transport.get_extra_info("socket")
    if sock is None:
        return None
    quickack = None
    try:
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            # asyncio turns Nagle off by itself; -tcpdelay must turn it back on.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1 if config.tcp_nodelay else 0)
            if config.tcp_quickack and _TCP_QUICKACK is not None:
                quickack = sock
        if config.so_sndbuf:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, config.so_sndbuf)
        if config.so_rcvbuf:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, config.so_rcvbuf)
    except OSError as exc:  # pragma: no cover - platform specific
        log.debug("socket option not set: %s", exc)
    return quickack


def describe_reject(result: int, source: int, reason: int) -> str:
    """The words of PS3.8 Table 9-21 for an A-ASSOCIATE-RJ."""
    results = {1: "rejected-permanent", 2: "rejected-transient"}
    reasons: dict[tuple[int, int], str] = {
        (1, 1): "no-reason-given",
        (1, 2): "application-context-name-not-supported",
        (1, 3): "calling-AE-title-not-recognized",
        (1, 7): "called-AE-title-not-recognized",
        (2, 1): "no-reason-given",
        (2, 2): "protocol-version-not-supported",
        (3, 1): "temporary-congestion",
        (3, 2): "local-limit-exceeded",
    }
    sources = {
        1: "service-user",
        2: "service-provider (ACSE)",
        3: "service-provider (presentation)",
    }
    return (
        f"{results.get(result, result)}, source {sources.get(source, source)}, "
        f"reason {reasons.get((source, reason), reason)}"
    )


__all__ = [
    "DEFAULT_HANDLERS",
    "DEFERRED",
    "Association",
    "Deferred",
    "Handler",
    "HandlerResult",
    "RequestContext",
    "describe_reject",
]
