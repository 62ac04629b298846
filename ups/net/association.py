"""The association: the public face of one DICOM association, requestor or acceptor.

``Association`` is what callers hold: ``request`` and ``find`` (one future per Message
ID, a queue of responses for C-FIND), ``release``, ``abort``, the negotiated
parameters. Under it, ``protocol.CoreProtocol`` joins the transport to the sans-I/O
``dimse.provider.DimseProvider``, which owns the protocol: Message IDs, both
Asynchronous Operations Windows, C-FIND streams and C-CANCEL, the reaper (-rspTO: the
overdue request fails, the association aborts and every waiter gets the same cause)
and every deadline. Requests from the peer go to ``handlers.dispatch``.

The core's failures (``ProviderError``) become this layer's ``NetError`` in one place,
``Association._error``: one object per failure, whoever asks.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import AsyncIterator, Callable, Mapping
from typing import cast

from ups.dimse.errors import ProviderAborted, ProviderError, ProviderRejected, ProviderTimeout
from ups.dimse.messages import CFindRQ, CFindRSP, Request, Response
from ups.dimse.provider import DimseProvider
from ups.dimse.provider_events import (
    Aborted,
    Closed,
    Established,
    ProviderEvent,
    Rejected,
    RequestFailed,
    RequestRejected,
    ResponseReceived,
)
from ups.dimse.responses import response_for_field
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
    dispatch,
)
from ups.net.protocol import CoreProtocol
from ups.pdu.enums import AbortReason, describe_reject
from ups.pdu.negotiation import AcceptedContext, AcceptorPolicy, Negotiated
from ups.pdu.pdus import AAssociateRQ

log = logging.getLogger("ups.net")

_PENDING = frozenset({int(Status.PENDING), int(Status.PENDING_WARNING)})


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


class Association(CoreProtocol):
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
        core = DimseProvider(config.provider_settings(), requestor=requestor, policy=policy)
        super().__init__(core, config, on_connected)
        self.requestor = requestor
        self._handlers = {**DEFAULT_HANDLERS, **(handlers or {})}
        self._on_established = on_established
        self._on_closed = on_closed
        self.established: asyncio.Future[Negotiated] = self._loop.create_future()
        self.closed: asyncio.Future[None] = self._loop.create_future()
        self._waiters: dict[int, _Waiter] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._errors: dict[int, NetError] = {}  # the one NetError per core failure

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

    def start_request(self, rq: AAssociateRQ) -> None:
        """Called before connecting: the A-ASSOCIATE-RQ to send once the transport is up."""
        self._core.associate(rq, self._loop.time())

    # ================================================================== core events

    _on_request = dispatch  # handler dispatch (``handlers.py``), straight from the loop

    def _on_core_event(self, event: ProviderEvent) -> None:
        if isinstance(event, RequestFailed):
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
                cause = event.cause
                log.info(
                    "rejected association from %s to %s: %s",
                    event.calling_ae_title,
                    event.called_ae_title,
                    describe_reject(cause.result, cause.source, cause.reason),
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
        self._stop()
        for task in list(self._tasks):
            task.cancel()
        if not self.closed.done():
            self.closed.set_result(None)
        if self._on_closed is not None:
            self._on_closed(self)

    # ================================================================== answers and requests

    def _respond(self, ctx: RequestContext, response: Response) -> None:
        """``ctx.respond``: the answer to a ``DEFERRED`` request."""
        if self._in_read:
            self._core.complete(ctx, response, self._read_at)  # the read's write takes it
        elif self._core.complete(ctx, response, self._loop.time()):
            self._write_soon()  # what the answer freed (held requests) starts there too

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
