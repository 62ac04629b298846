"""The association runtime: one ``asyncio.Protocol`` per connection, both roles.

It joins the sans-I/O pieces to a socket: bytes go to ``pdu.machine.UpperLayer``, its
P-DATA indications to ``dimse.fragment.Reassembler``, the messages out to waiters
(responses, matched by Message ID Being Responded To) or to handlers (requests, per
SOP class). Outgoing messages are encoded once into whole P-DATA-TF PDUs and written
with one ``transport.write``.

Waiting and time:

* one future per outstanding request; the Asynchronous Operations Window (PS3.7
  D.3.3.3) bounds how many are outstanding, and callers beyond it wait their turn;
* one timer handle per association, armed at the earliest deadline (ARTIM, the
  A-ASSOCIATE-AC / A-RELEASE-RP wait, a partial PDU, idle, the reaper) and re-armed
  when it fires — nothing polls;
* the reaper fails a request whose response is older than ``response_timeout`` and,
  since the peer's state is then unknown, aborts the association (DESIGN.md): every
  other waiter fails with the same cause.

Flow control: when the transport's write buffer passes its limit, or the peer has
as many operations outstanding at us as the window allows, reading stops until it
drains, so a fast sender or a peer that stops reading cannot grow our memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, cast

from ups.dimse.errors import FragmentError
from ups.dimse.fragment import MIN_PDATA_LENGTH, Reassembler, RejectedMessage, encode_pdata
from ups.dimse.messages import (
    CCancelRQ,
    CEchoRQ,
    CEchoRSP,
    CFindRQ,
    CFindRSP,
    Message,
    Request,
    Response,
    encode_command,
    is_request,
)
from ups.net.config import AssociationConfig
from ups.net.errors import (
    AssociationAborted,
    AssociationRejected,
    NetError,
    NetTimeout,
    NoPresentationContext,
)
from ups.net.responses import failure_response, response_for_field
from ups.pdu.enums import AbortReason
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
from ups.pdu.fsm import State
from ups.pdu.machine import UpperLayer
from ups.pdu.negotiation import (
    AcceptedContext,
    AcceptorPolicy,
    Negotiated,
    evaluate_accept,
    negotiate,
)
from ups.pdu.pdus import AAssociateAC, AAssociateRJ, AAssociateRQ

log = logging.getLogger("ups.net")

VERIFICATION = "1.2.840.10008.1.1"
_PENDING_STATUSES = frozenset({0xFF00, 0xFF01})
_FIRST = asyncio.FIRST_COMPLETED
_CANCEL = 0xFE00
_SOP_CLASS_NOT_SUPPORTED = 0x0122
_LINGER = 2.0
_TCP_QUICKACK: int | None = getattr(socket, "TCP_QUICKACK", None)  # Linux only
"""Seconds a closing transport may spend flushing to a peer that does not read."""
_UNLIMITED_BACKLOG = 256
"""Requests answered into a stalled write buffer before reading stops (window 0)."""


@dataclass(slots=True)
class RequestContext:
    """What a request handler knows about the request it is serving."""

    association: Association
    context: AcceptedContext
    cancelled: bool = False
    """Set when the peer sent C-CANCEL-RQ for this request (C-FIND, PS3.7 §9.3.2.3)."""
    context_id: int = 0
    message_id: int = 0

    def respond(self, response: Response) -> None:
        """Answer a request whose handler returned ``DEFERRED``; later calls are ignored."""
        self.association._respond(self, response)


class Deferred:
    """The type of ``DEFERRED``: the handler answers later through ``ctx.respond``.

    Cheaper than an awaitable (no task per request): the listener answers a whole read's
    events at once after writing them (DESIGN.md: writes are batched per read).
    """

    __slots__ = ()


DEFERRED = Deferred()

HandlerResult = Response | Awaitable[Response] | AsyncIterator[Response] | Deferred
Handler = Callable[[Request, RequestContext], HandlerResult]
"""Answers one request: a response now, later (awaitable or ``DEFERRED``), or a stream."""


def _echo(request: Request, ctx: RequestContext) -> Response:
    if not isinstance(request, CEchoRQ):
        return failure_response(request, 0x0211, "Verification serves C-ECHO only")
    return CEchoRSP(request.message_id, 0x0000, request.affected_sop_class_uid)


DEFAULT_HANDLERS: Mapping[str, Handler] = {VERIFICATION: _echo}


class _Pending:
    """One outstanding request we sent: its future, and for C-FIND a queue of matches."""

    __slots__ = ("request", "future", "sent_at", "stream", "ready")

    def __init__(self, request: Request, future: asyncio.Future[Response], now: float) -> None:
        self.request = request
        self.future = future
        self.sent_at = now
        self.stream: deque[Response] | None = None
        self.ready: asyncio.Future[None] | None = None

    def describe(self) -> str:
        message_id = getattr(self.request, "message_id", 0)
        return f"{type(self.request).__name__} (message ID {message_id})"


async def _await_one(awaitable: Awaitable[Response]) -> AsyncIterator[Response]:
    yield await awaitable


def _name(message: Message) -> str:
    return type(message).__name__


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
        self._policy = policy
        self._handlers = {**DEFAULT_HANDLERS, **(handlers or {})}
        self._on_established = on_established
        self._on_closed = on_closed
        self._on_connected = on_connected
        artim = config.request_timeout if not requestor else config.release_timeout
        self._machine = UpperLayer(
            requestor=requestor, max_pdata_length=config.max_pdata_receive, artim_timeout=artim
        )
        self._transport: asyncio.Transport | None = None
        self._rq: AAssociateRQ | None = None
        self.negotiated: Negotiated | None = None
        self.established: asyncio.Future[Negotiated] = self._loop.create_future()
        self.closed: asyncio.Future[None] = self._loop.create_future()
        self._reassembler: Reassembler | None = None
        self._send_limit = config.max_pdata_send
        self._pending: dict[int, _Pending] = {}
        self._slots: int | None = None  # free window slots; None = unlimited
        self._slot_waiters: deque[asyncio.Future[None]] = deque()
        self._next_id = 0
        self._performing: dict[int, RequestContext] = {}
        self._waiting: deque[tuple[int, Request]] = deque()  # beyond the peer's window
        self._all_performed: asyncio.Future[None] | None = None  # for release()
        self._perform_limit = 1
        self._tasks: set[asyncio.Task[None]] = set()
        self._release_after_performing = False
        self._release_waiter: asyncio.Future[None] | None = None
        self._failure: NetError | None = None
        self._read_pauses: set[str] = set()
        self._write_paused = False
        self._backlog = 0  # requests received while our writes to the peer are paused
        self._drain: asyncio.Future[None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_when = 0.0
        self._phase_deadline: float | None = None
        self._phase_what = ""
        self._partial_since: float | None = None
        self._last_activity = self._loop.time()
        self._reaper_due: float | None = None
        self._close_at: float | None = None
        self._kill_at: float | None = None
        self.peer: tuple[Any, ...] | None = None
        self._in_read = False  # inside data_received: writes wait for its end (one per read)
        self._read_end: list[Callable[[], None]] = []
        self._flush_soon: asyncio.Handle | None = None
        self._socket: Any = None  # for TCP_QUICKACK; None when not TCP or not Linux

    # ================================================================== public API

    @property
    def is_established(self) -> bool:
        return self.negotiated is not None and self._failure is None and not self.closed.done()

    @property
    def remote_ae_title(self) -> str:
        return self.negotiated.remote_ae_title if self.negotiated else ""

    @property
    def local_ae_title(self) -> str:
        return self.negotiated.local_ae_title if self.negotiated else ""

    def new_message_id(self) -> int:
        """A Message ID not used by any outstanding request (PS3.7 §9.1.1.1)."""
        for _ in range(0x10000):
            self._next_id = self._next_id % 0xFFFF + 1
            if self._next_id not in self._pending:
                return self._next_id
        raise NetError("no free Message ID: 65535 requests outstanding")

    def context_for(self, abstract_syntax: str) -> AcceptedContext:
        """The accepted presentation context for ``abstract_syntax``."""
        negotiated = self._require_established()
        found = negotiated.context_for(abstract_syntax)
        if found is None:
            raise NoPresentationContext(
                f"{self.remote_ae_title} accepted no presentation context for {abstract_syntax}"
            )
        return found

    async def request(self, request: Request, context_id: int) -> Response:
        """Send ``request`` on ``context_id`` and wait for its (final) response."""
        pending = await self._send_request(request, context_id)
        return await pending.future

    async def find(self, request: CFindRQ, context_id: int) -> AsyncIterator[CFindRSP]:
        """Send a C-FIND-RQ and yield each response, pending ones then the final one.

        Leaving the loop early sends C-CANCEL-RQ (PS3.7 §9.3.2.3); the responses still
        in flight are absorbed and the window slot is freed when the final one arrives.
        """
        pending = await self._send_request(request, context_id, stream=True)
        finished = False
        try:
            while True:
                stream = pending.stream
                assert stream is not None
                while stream:
                    response = cast(CFindRSP, stream.popleft())
                    if response.status not in _PENDING_STATUSES:
                        finished = True
                        yield response
                        return
                    yield response
                if pending.future.done():
                    # Failed (abort/timeout): raise its cause.
                    await pending.future
                    finished = True
                    return
                pending.ready = self._loop.create_future()
                await pending.ready  # set by the next response or by a failure
        finally:
            if not finished and not pending.future.done() and self.is_established:
                pending.stream = None
                self._send_message(CCancelRQ(request.message_id), context_id)

    async def release(self) -> None:
        """A-RELEASE: wait for the peer's A-RELEASE-RP (``release_timeout``), else abort."""
        if self.closed.done():
            return
        # Answers to the peer's requests cannot follow our A-RELEASE-RQ (P-DATA is not
        # allowed in Sta7): let what we are performing finish first.
        while (self._performing or self._waiting) and not self.closed.done():
            if self._all_performed is None or self._all_performed.done():
                self._all_performed = self._loop.create_future()
            await asyncio.wait({self._all_performed, self.closed}, return_when=_FIRST)
        if self.closed.done():
            return
        if self.negotiated is None:
            self.abort()  # nothing to release yet
        elif self._machine.state is State.STA6:
            now = self._loop.time()
            self._machine.release(now)
            self._set_phase(now + self.config.release_timeout, "A-RELEASE-RP")
            self._flush()
        try:
            await asyncio.shield(self.closed)
        except asyncio.CancelledError:
            self.abort()
            raise

    def abort(self, reason: AbortReason | None = None) -> None:
        """A-ABORT now (service user unless a provider ``reason`` is given)."""
        self._abort(AssociationAborted("association aborted locally"), reason)

    async def wait_closed(self) -> None:
        await asyncio.shield(self.closed)

    # ================================================================== asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)
        self.peer = transport.get_extra_info("peername")
        sock = transport.get_extra_info("socket")
        if sock is not None:
            try:
                if sock.family in (socket.AF_INET, socket.AF_INET6):
                    # asyncio turns Nagle off by itself; -tcpdelay must turn it back on.
                    nodelay = 1 if self.config.tcp_nodelay else 0
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, nodelay)
                    if self.config.tcp_quickack and _TCP_QUICKACK is not None:
                        self._socket = sock
                if self.config.so_sndbuf:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, self.config.so_sndbuf)
                if self.config.so_rcvbuf:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.config.so_rcvbuf)
            except OSError as exc:  # pragma: no cover - platform specific
                log.debug("socket option not set: %s", exc)
        self._transport.set_write_buffer_limits(high=self.config.write_buffer_limit)
        if self._on_connected is not None:
            self._on_connected(self)
        now = self._loop.time()
        self._last_activity = now
        if self.requestor:
            self._set_phase(now + self.config.accept_timeout, "A-ASSOCIATE-AC")
        self._machine.transport_connected(now)
        self._after_machine()

    def data_received(self, data: bytes) -> None:
        now = self._loop.time()
        self._last_activity = now
        machine = self._machine
        self._in_read = True
        try:
            machine.receive_data(data, now)
            events = machine.events()
            for event in events:
                self._on_event(event)
            while self._read_end:
                hooks, self._read_end = self._read_end, []
                for hook in hooks:
                    hook()
        finally:
            self._in_read = False
        # One write for everything this read caused: DIMSE responses in order, and what
        # the machine answered itself (A-ABORT, A-RELEASE-RP, A-ASSOCIATE-RJ).
        out = machine.data_to_send()
        if out and self._transport is not None:
            self._transport.write(out)
        if machine.close_transport:
            self._close_transport()
        elif machine.state is State.STA13:
            self._schedule_close()
        deadline = machine.next_deadline()
        if deadline is not None:
            self._arm(deadline)
        if machine.has_partial_pdu:
            # A PDU started in this read if an earlier one completed (or none was pending).
            if self._partial_since is None or events:
                self._partial_since = now
                self._arm(now + self.config.pdu_timeout)
            self._quickack()
        else:
            self._partial_since = None
            reassembler = self._reassembler
            if reassembler is not None and not reassembler.idle:
                self._quickack()
        if self.config.idle_timeout is not None:
            self._arm(now + self.config.idle_timeout)

    def _quickack(self) -> None:
        """ACK now: we wait for the rest of a message, and its sender may be waiting for us.

        A peer that leaves Nagle on (pynetdicom, DCMTK without TCP_NODELAY=1) sends the
        second half of a message only once its first half is acknowledged, and Linux
        delays that ACK by up to 40 ms. TCP_QUICKACK is not sticky, so it is set after
        each read that leaves a message incomplete (never on the complete-read hot path).
        """
        sock = self._socket
        if sock is not None:
            try:
                sock.setsockopt(socket.IPPROTO_TCP, _TCP_QUICKACK, 1)
            except OSError:
                self._socket = None

    def at_read_end(self, hook: Callable[[], None]) -> None:
        """Run ``hook`` once the current read's messages are handled, before its one write.

        Outside ``data_received`` the hook runs at once. The listener writes a read's
        events out together here, then answers them (DESIGN.md: writes batched per read).
        """
        if self._in_read:
            self._read_end.append(hook)
        else:
            hook()

    def eof_received(self) -> bool | None:
        return None  # close our side too; connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        now = self._loop.time()
        if self._machine.state is not State.STA1:
            self._machine.transport_closed(now)
            for event in self._machine.events():
                self._on_event(event)
        self._transport = None
        if self._failure is None and self.negotiated is None:
            detail = f": {exc}" if exc else ""
            self._failure = AssociationAborted(f"connection closed before association{detail}")
        self._finish()

    def pause_writing(self) -> None:
        # Reading goes on: stopping it here could deadlock two peers that both write.
        # Our own requests wait for the drain (``_send_request``) and handler streams
        # too; a peer that piles up requests beyond its window is paused in ``_on_request``.
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        self._backlog = 0
        self._resume_reading("write")
        if self._drain is not None and not self._drain.done():
            self._drain.set_result(None)
        self._drain = None

    # ================================================================== requestor start

    def start_request(self, rq: AAssociateRQ) -> None:
        """Called before connecting: the A-ASSOCIATE-RQ to send once the transport is up."""
        self._rq = rq
        self._machine.associate(rq, self._loop.time())

    # ================================================================== machine events

    def _after_machine(self) -> None:
        self._flush()
        for event in self._machine.events():
            self._on_event(event)
        self._flush()
        if self._machine.close_transport:
            self._close_transport()
        elif self._machine.state is State.STA13:
            self._schedule_close()
        self._rearm_from_machine()

    def _flush(self) -> None:
        out = self._machine.data_to_send()
        if out and self._transport is not None:
            self._transport.write(out)

    def _on_event(self, event: UpperLayerEvent) -> None:
        if type(event) is DataIndication:
            self._on_data(event)
        elif isinstance(event, AssociateIndication):
            self._on_associate_request(event.rq)
        elif isinstance(event, AssociateConfirmation):
            assert self._rq is not None
            self._phase_deadline = None
            self._setup(evaluate_accept(self._rq, event.ac))
        elif isinstance(event, AssociateRejected):
            rj = event.rj
            error = AssociationRejected(
                f"association rejected: {describe_reject(rj.result, rj.source, rj.reason)}",
                int(rj.result),
                int(rj.source),
                rj.reason,
            )
            self._fail_establish(error)
        elif isinstance(event, ReleaseIndication):
            self._on_release_request(event.collision)
        elif isinstance(event, ReleaseConfirmation):
            if not self.requestor and self._machine.state is State.STA12:
                self._machine.release_response(self._loop.time())
                self._flush()
        elif isinstance(event, AbortIndication):
            who = "peer" if event.from_peer else "provider"
            detail = f" ({event.detail})" if event.detail else ""
            if event.from_peer:
                text = f"association aborted by {self.remote_ae_title or 'the peer'}"
                text += f": source {int(event.source)}, reason {int(event.reason)}"
            elif self.negotiated is None:
                where = f" by {self.peer[0]}:{self.peer[1]}" if self.peer else ""
                text = f"connection closed{where} before the association was established"
            else:
                text = f"association aborted{detail}"
            log.info("%s abort%s", who, detail)
            self._record_failure(AssociationAborted(text, int(event.source), int(event.reason)))
        elif isinstance(event, TransportClosed):
            self._close_transport()

    def _on_associate_request(self, rq: AAssociateRQ) -> None:
        assert self._policy is not None
        answer, negotiated = negotiate(rq, self._policy)
        now = self._loop.time()
        if negotiated is None:
            assert isinstance(answer, AAssociateRJ)
            words = describe_reject(answer.result, answer.source, answer.reason)
            log.info(
                "rejected association from %s to %s: %s",
                rq.calling_ae_title,
                rq.called_ae_title,
                words,
            )
            self._machine.reject(answer, now)
            self._flush()
            self._rearm_from_machine()
            if self._failure is None:
                self._failure = AssociationRejected(
                    f"association rejected: {words}",
                    int(answer.result),
                    int(answer.source),
                    answer.reason,
                )
            return
        assert isinstance(answer, AAssociateAC)
        # Received P-DATA-TF are bounded by what we announced, which the policy decides.
        self._machine.set_max_pdata_length(negotiated.local_max_pdata_length)
        self._machine.accept(answer, now)
        self._flush()
        self._setup(negotiated)

    def _setup(self, negotiated: Negotiated) -> None:
        peer_max = negotiated.remote_max_pdata_length
        if 0 < peer_max < MIN_PDATA_LENGTH:
            # No PDV with an even fragment fits: nothing could ever be sent (PS3.8 D.1).
            self._abort(
                AssociationAborted(
                    f"{negotiated.remote_ae_title} announced a Maximum Length Received of "
                    f"{peer_max}, below the {MIN_PDATA_LENGTH} bytes one PDV needs"
                ),
                AbortReason.INVALID_PDU_PARAMETER_VALUE,
            )
            return
        self.negotiated = negotiated
        self._reassembler = Reassembler(
            negotiated.contexts, max_dataset_length=self.config.max_dataset_length
        )
        ours = self.config.max_pdata_send
        self._send_limit = min(x for x in (peer_max, ours) if x) if (peer_max or ours) else 0
        window = negotiated.max_ops_local_invokes
        self._slots = window if window else None
        self._perform_limit = negotiated.max_ops_remote_invokes
        if not self.established.done():
            self.established.set_result(negotiated)
        if self._on_established is not None:
            self._on_established(self)

    def _fail_establish(self, error: NetError) -> None:
        self._phase_deadline = None
        self._record_failure(error)

    # ================================================================== DIMSE receive

    def _on_data(self, event: DataIndication) -> None:
        reassembler = self._reassembler
        if reassembler is None:
            return
        try:
            received = reassembler.feed(event.pdu)
        except FragmentError as exc:
            log.warning("protocol error from %s: %s", self.remote_ae_title, exc)
            self._abort(
                AssociationAborted(f"protocol error: {exc}"),
                AbortReason.INVALID_PDU_PARAMETER_VALUE,
            )
            return
        for context_id, message in received:
            if type(message) is RejectedMessage:
                self._on_rejected(context_id, message)
            elif is_request(message):  # type: ignore[arg-type]
                self._on_request(context_id, cast(Request, message))
            else:
                self._on_response(cast(Response, message))

    def _on_response(self, response: Response) -> None:
        message_id = response.message_id_being_responded_to
        pending = self._pending.get(message_id)
        if pending is None:
            log.warning(
                "%s answered unknown message ID %d; aborting", self.remote_ae_title, message_id
            )
            self._abort(
                AssociationAborted(f"response to unknown message ID {message_id}"),
                AbortReason.UNEXPECTED_PDU_PARAMETER,
            )
            return
        pending.sent_at = self._loop.time()
        if type(response) is CFindRSP and response.status in _PENDING_STATUSES:
            if pending.stream is not None:
                pending.stream.append(response)
                if pending.ready is not None and not pending.ready.done():
                    pending.ready.set_result(None)
            return
        del self._pending[message_id]
        self._release_slot()
        if pending.stream is not None:
            pending.stream.append(response)
            if pending.ready is not None and not pending.ready.done():
                pending.ready.set_result(None)
        if not pending.future.done():
            pending.future.set_result(response)

    def _on_request(self, context_id: int, request: Request) -> None:
        if type(request) is CCancelRQ:
            target = self._performing.get(request.message_id_being_responded_to)
            if target is not None:
                target.cancelled = True
            return
        limit = self._perform_limit
        if limit and len(self._performing) >= limit:
            # The peer went beyond its window (PS3.7 D.3.3.3): hold this request and read
            # no more until one in progress finishes, so work and answers stay bounded.
            self._waiting.append((context_id, request))
            self._pause_reading("window")
            return
        if self._write_paused:
            # Our answers to this peer are backing up. A peer within its window has at
            # most ``_perform_limit`` requests outstanding; beyond that, stop reading.
            self._backlog += 1
            if self._backlog > (self._perform_limit or _UNLIMITED_BACKLOG):
                self._pause_reading("write")
        assert self.negotiated is not None
        context = self.negotiated.contexts[context_id]
        message_id: int = getattr(request, "message_id", 0)
        ctx = RequestContext(self, context, False, context_id, message_id)
        handler = self._handlers.get(context.abstract_syntax)
        if handler is None:
            self._send_message(
                failure_response(
                    request, _SOP_CLASS_NOT_SUPPORTED, "no service for this SOP class"
                ),
                context_id,
            )
            return
        try:
            result = handler(request, ctx)
        except Exception as exc:  # a handler bug must not end the association
            log.exception("handler for %s failed", _name(request))
            self._send_message(failure_response(request, 0x0110, str(exc)[:64]), context_id)
            return
        if hasattr(result, "COMMAND_FIELD"):  # the fast path: answered at once
            self._send_message(cast(Response, result), context_id)
        elif result is DEFERRED:
            self._performing[message_id] = ctx  # counts in the window until answered
        elif hasattr(result, "__aiter__"):
            self._perform(request, context_id, ctx, cast(AsyncIterator[Response], result))
        else:
            awaitable = cast(Awaitable[Response], result)
            self._perform(request, context_id, ctx, _await_one(awaitable))

    def _perform(
        self,
        request: Request,
        context_id: int,
        ctx: RequestContext,
        responses: AsyncIterator[Response],
    ) -> None:
        # Reading goes on while the peer stays within its window, so that a C-CANCEL-RQ,
        # an A-RELEASE-RQ or an A-ABORT still gets through (see ``_on_request``).
        self._performing[ctx.message_id] = ctx
        task = self._loop.create_task(self._run_handler(request, context_id, ctx, responses))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run_handler(
        self,
        request: Request,
        context_id: int,
        ctx: RequestContext,
        responses: AsyncIterator[Response],
    ) -> None:
        try:
            async for response in responses:
                if self._failure is not None:
                    break
                if ctx.cancelled and getattr(response, "status", 0) in _PENDING_STATUSES:
                    # The peer cancelled (PS3.7 §9.3.2.3): the final response says so.
                    self._send_message(failure_response(request, _CANCEL), context_id)
                    break
                self._send_message(response, context_id)
                if self._write_paused:
                    await self._wait_drain()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("handler for %s failed", _name(request))
            if self._failure is None:
                self._send_message(failure_response(request, 0x0110, str(exc)[:64]), context_id)
        finally:
            aclose = getattr(responses, "aclose", None)
            if aclose is not None:
                with contextlib.suppress(Exception):
                    await aclose()
            self._performed(ctx)

    def _respond(self, ctx: RequestContext, response: Response) -> None:
        """``ctx.respond``: the answer to a ``DEFERRED`` request."""
        if self._performing.get(ctx.message_id) is not ctx:
            return  # answered already, or the association is gone
        if self._failure is None:
            self._send_message(response, ctx.context_id, coalesce=True)
        self._performed(ctx)

    def _flush_later(self) -> None:
        self._flush_soon = None
        self._flush()

    def _performed(self, ctx: RequestContext) -> None:
        """A request we performed is answered: free its place, start what waited."""
        if self._performing.get(ctx.message_id) is ctx:
            del self._performing[ctx.message_id]
        self._start_waiting()
        idle = not self._performing and not self._waiting
        if idle and self._all_performed is not None and not self._all_performed.done():
            self._all_performed.set_result(None)
        if self._release_after_performing and idle:
            self._release_after_performing = False
            self._answer_release()

    def _start_waiting(self) -> None:
        """Start requests held back by the window as places free up; then read again."""
        limit = self._perform_limit
        waiting = self._waiting
        while waiting and self._failure is None and (not limit or len(self._performing) < limit):
            context_id, request = waiting.popleft()
            self._on_request(context_id, request)
        if not waiting:
            self._resume_reading("window")

    def _on_rejected(self, context_id: int, rejected: RejectedMessage) -> None:
        field = rejected.command_field
        error = rejected.error
        log.warning("malformed command from %s: %s", self.remote_ae_title, error)
        message_id = getattr(error, "message_id", None)
        if field is not None and not field & 0x8000 and message_id is not None:
            response = response_for_field(field, message_id, error.status, str(error))
            if response is not None:
                self._send_message(response, context_id)
                return
        self._abort(
            AssociationAborted(f"unusable command from peer: {error}"),
            AbortReason.INVALID_PDU_PARAMETER_VALUE,
        )

    # ================================================================== DIMSE send

    async def _send_request(
        self, request: Request, context_id: int, *, stream: bool = False
    ) -> _Pending:
        self._require_established()
        message_id = request.message_id  # type: ignore[union-attr]
        if message_id in self._pending:
            raise NetError(f"message ID {message_id} is already outstanding")
        await self._acquire_slot()
        try:
            self._require_established()
            if self._write_paused:
                await self._wait_drain()
                self._require_established()
            if message_id in self._pending:
                raise NetError(f"message ID {message_id} is already outstanding")
        except BaseException:
            self._release_slot()
            raise
        now = self._loop.time()
        pending = _Pending(request, self._loop.create_future(), now)
        if stream:
            pending.stream = deque()
        self._pending[message_id] = pending
        self._send_message(request, context_id)
        if self._reaper_due is None:
            self._reaper_due = now + self.config.reaper_period
            self._arm(self._reaper_due)
        return pending

    def _send_message(self, message: Message, context_id: int, *, coalesce: bool = False) -> None:
        """Encode once; a no-op when the association can't carry data.

        Inside a read the write waits for the read's end (one write per read). With
        ``coalesce`` the answers given in one loop pass share one write; otherwise the
        write is immediate, so that a stream's flow control sees its buffer fill.
        """
        state = self._machine.state
        if state is not State.STA6 and state is not State.STA8:
            return
        command = encode_command(message)
        encoded = encode_pdata(
            context_id, command, message.dataset, self._send_limit, pack=self.config.pack_pdv
        )
        self._machine.send_pdata(encoded)
        if self._in_read:
            return
        if not coalesce:
            self._flush()
        elif self._flush_soon is None:
            self._flush_soon = self._loop.call_soon(self._flush_later)

    async def _acquire_slot(self) -> None:
        """Take a place in the Asynchronous Operations Window, waiting for one if full."""
        if self._slots is None:
            return
        if self._slots > 0 and not self._slot_waiters:
            self._slots -= 1
            return
        waiter: asyncio.Future[None] = self._loop.create_future()
        self._slot_waiters.append(waiter)
        try:
            await waiter  # a finishing request hands its slot over directly
        except BaseException:
            if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                self._release_slot()  # handed a slot, then cancelled: pass it on
            else:
                with contextlib.suppress(ValueError):
                    self._slot_waiters.remove(waiter)
            raise

    def _release_slot(self) -> None:
        if self._slots is None:
            return
        waiters = self._slot_waiters
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
        self._slots += 1

    async def _wait_drain(self) -> None:
        if self._drain is None:
            self._drain = self._loop.create_future()
        await asyncio.shield(self._drain)

    def _require_established(self) -> Negotiated:
        if self._failure is not None:
            raise self._failure
        if self.negotiated is None:
            raise NetError("association is not established")
        if self._machine.state is not State.STA6:
            raise NetError("association is being released")
        return self.negotiated

    # ================================================================== release / abort

    def _on_release_request(self, collision: bool) -> None:
        if collision and not self.requestor:
            return  # Sta10: wait for the A-RELEASE-RP, then answer (AR-10, AR-4)
        if self._performing or self._waiting:
            self._release_after_performing = True
            return
        self._answer_release()

    def _answer_release(self) -> None:
        if self._machine.state in (State.STA8, State.STA9, State.STA12):
            self._machine.release_response(self._loop.time())
            self._after_machine()

    def _abort(self, cause: NetError, reason: AbortReason | None = None) -> None:
        self._record_failure(cause)
        state = self._machine.state
        if state is State.STA13 and self._close_at is not None:
            return  # already aborting: the A-ABORT leaves within -soclosedelay
        if state in (State.STA1, State.STA13):
            self._close_transport()
            return
        if state in (State.STA2, State.STA4):
            self._close_transport()
            return
        self._machine.abort(self._loop.time(), reason)
        self._after_machine()

    def _record_failure(self, error: NetError) -> None:
        if self._failure is None:
            self._failure = error
        failure = self._failure
        if not self.established.done():
            self.established.set_exception(failure)
            self.established.exception()  # mark retrieved: the caller may have gone
        for pending in list(self._pending.values()):
            if not pending.future.done():
                pending.future.set_exception(failure)
                pending.future.exception()
            if pending.ready is not None and not pending.ready.done():
                pending.ready.set_result(None)
        self._pending.clear()
        while self._slot_waiters:
            waiter = self._slot_waiters.popleft()
            if not waiter.done():
                waiter.set_exception(failure)
                waiter.exception()
        if self._drain is not None and not self._drain.done():
            self._drain.set_result(None)

    def _schedule_close(self) -> None:
        """Close after ``so_close_delay`` (time for a sent A-ABORT to leave), on our timer."""
        if self._close_at is not None or self._transport is None:
            return
        self._close_at = self._loop.time() + self.config.so_close_delay
        self._arm(self._close_at)

    def _close_transport(self) -> None:
        """Close, flushing what is buffered; a peer that will not read it gets a reset.

        ``transport.close()`` waits for the write buffer to drain, which never happens
        when the peer has stopped reading; ``_LINGER`` later the timer aborts it.
        """
        transport = self._transport
        if transport is None:
            return
        if not transport.is_closing():
            transport.close()
        if self._kill_at is None and transport.get_write_buffer_size():
            self._kill_at = self._loop.time() + _LINGER
            self._arm(self._kill_at)

    def _finish(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._flush_soon is not None:
            self._flush_soon.cancel()
            self._flush_soon = None
        if self._failure is None:
            self._failure = AssociationAborted("association released")
        self._record_failure(self._failure)
        for task in list(self._tasks):
            task.cancel()
        if not self.closed.done():
            self.closed.set_result(None)
        if self._on_closed is not None:
            self._on_closed(self)

    # ================================================================== flow control

    def _pause_reading(self, why: str) -> None:
        if not self._read_pauses and self._transport is not None:
            self._transport.pause_reading()
        self._read_pauses.add(why)

    def _resume_reading(self, why: str) -> None:
        if why in self._read_pauses:
            self._read_pauses.discard(why)
            if not self._read_pauses and self._transport is not None:
                self._transport.resume_reading()

    def pause_receiving(self) -> None:
        """Stop reading from the peer (consumer backpressure; see the listener)."""
        self._pause_reading("consumer")

    def resume_receiving(self) -> None:
        self._resume_reading("consumer")

    # ================================================================== timers

    def _set_phase(self, deadline: float, what: str) -> None:
        self._phase_deadline = deadline
        self._phase_what = what
        self._arm(deadline)

    def _rearm_from_machine(self) -> None:
        deadline = self._machine.next_deadline()
        if deadline is not None:
            self._arm(deadline)

    def _arm(self, when: float) -> None:
        """Make sure the single timer fires no later than ``when``."""
        if self._timer is not None:
            if self._timer_when <= when:
                return
            self._timer.cancel()
        if self.closed.done():
            return
        self._timer_when = when
        self._timer = self._loop.call_at(when, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        now = self._loop.time()
        if self.closed.done():
            return
        deadlines: list[float] = []
        if self._kill_at is not None:
            if self._kill_at <= now:
                if self._transport is not None:
                    self._transport.abort()
                return
            deadlines.append(self._kill_at)
        if self._close_at is not None:
            if self._close_at <= now:
                self._close_transport()
            else:
                deadlines.append(self._close_at)
        machine_deadline = self._machine.next_deadline()
        if machine_deadline is not None:
            if machine_deadline <= now:
                self._machine.handle_timer(now)
                self._after_machine()
            else:
                deadlines.append(machine_deadline)
        if self._machine.state is State.STA13 or self._machine.close_transport:
            # Aborting or over: only the close and reset deadlines above still matter.
            if deadlines:
                self._arm(min(deadlines))
            return
        if self._phase_deadline is not None:
            if self._phase_deadline <= now:
                self._phase_deadline = None
                self._abort(NetTimeout(f"no {self._phase_what} within the time limit"))
                return
            deadlines.append(self._phase_deadline)
        if self._partial_since is not None:
            due = self._partial_since + self.config.pdu_timeout
            if due <= now:
                self._abort(NetTimeout("a PDU did not arrive in full within the time limit"))
                return
            deadlines.append(due)
        idle = self.config.idle_timeout
        if idle is not None and self.negotiated is not None:
            due = self._last_activity + idle
            if due <= now:
                if not self._pending and not self._performing:
                    self._abort(NetTimeout(f"association idle for {idle:g} s (-idleTO)"))
                    return
                due = now + idle  # busy, not idle: look again later (no polling)
            deadlines.append(due)
        if self._reaper_due is not None:
            if self._reaper_due <= now:
                self._reaper_due = None
                if self._reap(now):
                    return
                if self._pending:
                    self._reaper_due = now + self.config.reaper_period
            if self._reaper_due is not None:
                deadlines.append(self._reaper_due)
        if deadlines:
            self._arm(min(deadlines))

    def _reap(self, now: float) -> bool:
        """Fail the oldest overdue request and abort; True if it did."""
        limit = self.config.response_timeout
        for pending in self._pending.values():
            if now - pending.sent_at >= limit:
                cause = NetTimeout(
                    f"no response to {pending.describe()} within {limit:g} s (-rspTO)"
                )
                log.warning("%s from %s; aborting", cause, self.remote_ae_title)
                self._abort(cause)
                return True
        return False


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
    "Association",
    "Handler",
    "RequestContext",
    "describe_reject",
]
