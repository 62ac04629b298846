"""Handler dispatch: the serving side of ``ups.net.association``.

A handler answers one request (per SOP class) with a response now, an awaitable, an
async iterator of responses (C-FIND), or ``DEFERRED`` and a later ``ctx.respond``.
``dispatch`` calls the handler for a request the provider core handed over and gives
its answer back to the core: at once (the hot path), or by taking the request on
(it then counts in the peer's window) and running ``serve_stream``, one task per
request with the transport's flow control between responses. A missing handler is
answered Refused: SOP Class not supported, a raising one Processing failure with the
error as the comment; neither ends the association.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ups.dimse.messages import VERIFICATION_SOP_CLASS as VERIFICATION
from ups.dimse.messages import CEchoRQ, CEchoRSP, Request, Response
from ups.dimse.provider_events import RequestReceived
from ups.dimse.responses import failure_response
from ups.dimse.status import Status
from ups.pdu.negotiation import AcceptedContext

if TYPE_CHECKING:
    from ups.net.association import Association

log = logging.getLogger("ups.net")

_PROCESSING_FAILURE = int(Status.PROCESSING_FAILURE)
_NOT_SUPPORTED = int(Status.SOP_CLASS_NOT_SUPPORTED)


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
        return failure_response(request, Status.UNRECOGNIZED_OPERATION, "Verification: C-ECHO only")
    return CEchoRSP(request.message_id, Status.SUCCESS, request.affected_sop_class_uid)


DEFAULT_HANDLERS: Mapping[str, Handler] = {VERIFICATION: _echo}


def dispatch(association: Association, event: RequestReceived) -> None:
    """Serve one request with the handler for its presentation context's SOP class."""
    core = association._core
    context_id = event.context_id
    request = event.request
    negotiated = core.negotiated
    assert negotiated is not None
    context = negotiated.contexts[context_id]
    message_id: int = getattr(request, "message_id", 0)
    ctx = RequestContext(association, context, False, context_id, message_id)
    handler = association._handlers.get(context.abstract_syntax)
    if handler is None:
        comment = "no service for this SOP class"
        core.respond(failure_response(request, _NOT_SUPPORTED, comment), context_id)
        return
    try:
        result = handler(request, ctx)
    except Exception as exc:  # a handler bug must not end the association
        log.exception("handler for %s failed", type(request).__name__)
        failure = failure_response(request, _PROCESSING_FAILURE, str(exc)[:64])
        core.respond(failure, context_id)
        return
    if hasattr(result, "COMMAND_FIELD"):  # the fast path: answered at once
        core.respond(result, context_id)  # type: ignore[arg-type]
        return
    core.perform(ctx)  # counts in the peer's window until answered
    if result is not DEFERRED:
        # Reading goes on while the peer stays within its window, so that a
        # C-CANCEL-RQ, an A-RELEASE-RQ or an A-ABORT still gets through.
        responses = as_stream(result)
        task = association._loop.create_task(serve_stream(association, request, ctx, responses))
        association._tasks.add(task)
        task.add_done_callback(association._tasks.discard)


async def _await_one(awaitable: Awaitable[Response]) -> AsyncIterator[Response]:
    yield await awaitable


def as_stream(result: HandlerResult) -> AsyncIterator[Response]:
    """An awaitable or async iterator handler result as an async iterator of responses."""
    if hasattr(result, "__aiter__"):
        return result  # type: ignore[return-value]
    return _await_one(result)  # type: ignore[arg-type]


async def serve_stream(
    association: Association,
    request: Request,
    ctx: RequestContext,
    responses: AsyncIterator[Response],
) -> None:
    """Send each response as it comes, pausing while the transport's buffer drains.

    The core ends the stream early when the association fails or the peer cancelled
    (then it sends the final Cancel response itself); a handler that raises gets its
    request answered Processing failure with the error as the comment.
    """
    core = association._core
    try:
        async for response in responses:
            if not core.answer(ctx, response):
                association._flush()
                break
            association._flush()  # now, so that the buffer's fill is seen
            if core.writing_is_paused:
                await association._wait_drain()
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        log.exception("handler for %s failed", type(request).__name__)
        if core.failure is None:
            core.answer(ctx, failure_response(request, _PROCESSING_FAILURE, str(exc)[:64]))
            association._flush()
    finally:
        aclose = getattr(responses, "aclose", None)
        if aclose is not None:
            with contextlib.suppress(Exception):
                await aclose()
        core.finish(ctx, association._loop.time())
        association._pump()
