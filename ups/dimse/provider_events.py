"""What the DIMSE provider core tells its adapter: events, and effects on the transport.

``provider.DimseProvider.next_event`` returns these frozen, slotted dataclasses one at
a time, in the order they happened (h11's ``next_event``). Most report what the
association did: established, rejected, a request or response received, a request of
ours failed, released, aborted, closed. Four are effects the adapter carries out on
its transport, since the core owns no socket: close it (after writing what
``data_to_send`` still holds), reset it, and pause or resume reading.

Every failure is reported with its cause, a ``ProviderError``; the same object goes
to every waiter the failure ends (DESIGN.md: every other waiter fails with the same
cause).
"""

from __future__ import annotations

from dataclasses import dataclass

from ups.dimse.errors import ProviderError, ProviderRejected
from ups.dimse.messages import Request, Response
from ups.pdu.fastinit import fast_new
from ups.pdu.negotiation import Negotiated


@dataclass(frozen=True, slots=True)
class Established:
    """A-ASSOCIATE accepted (either role): DIMSE messages may flow."""

    negotiated: Negotiated


@dataclass(frozen=True, slots=True)
class Rejected:
    """The association was rejected: by the peer's A-ASSOCIATE-RJ (``local`` false) or by
    this acceptor's policy (``local`` true, ``calling``/``called`` name who asked)."""

    cause: ProviderRejected
    local: bool
    calling_ae_title: str = ""
    called_ae_title: str = ""


@dataclass(frozen=True, slots=True)
class RequestReceived:
    """A request from the peer to perform (PS3.7 §9.3, §10.3), within its window.

    Answer at once with ``respond``, or take it on with ``perform`` and answer later with
    ``answer``/``complete``; it then counts in the peer's window until ``finish``.
    """

    context_id: int
    request: Request


@dataclass(frozen=True, slots=True)
class RequestRejected:
    """A request whose command set framed but cannot be used (PS3.7 C.4): answer it with a
    response of ``command_field``'s type carrying ``status`` and ``comment``."""

    context_id: int
    command_field: int
    message_id: int
    status: int
    comment: str


@dataclass(frozen=True, slots=True)
class ResponseReceived:
    """A response to our request ``message_id``: pending (C-FIND match) or ``final``."""

    message_id: int
    response: Response
    final: bool


@dataclass(frozen=True, slots=True)
class RequestFailed:
    """Our request ``message_id`` will get no response: the association failed (or, queued
    behind the window, can no longer be sent)."""

    message_id: int
    cause: ProviderError


@dataclass(frozen=True, slots=True)
class Released:
    """A-RELEASE completed: we answered the peer's A-RELEASE-RQ or it answered ours."""


@dataclass(frozen=True, slots=True)
class Aborted:
    """The association failed (A-ABORT either way, a deadline, a lost transport)."""

    cause: ProviderError


@dataclass(frozen=True, slots=True)
class Closed:
    """The transport is gone and the core is over; always the last event.

    ``cause`` is what a caller still holding the association gets: the failure, or
    "association released" after a normal release.
    """

    cause: ProviderError


@dataclass(frozen=True, slots=True)
class CloseTransport:
    """Effect: write what ``data_to_send`` holds, then close the transport."""


@dataclass(frozen=True, slots=True)
class ResetTransport:
    """Effect: abort the transport now (a closing peer that never read its data)."""


@dataclass(frozen=True, slots=True)
class PauseReading:
    """Effect: stop reading from the transport (the peer's window, our writes, a consumer)."""


@dataclass(frozen=True, slots=True)
class ResumeReading:
    """Effect: read from the transport again."""


ProviderEvent = (
    Established
    | Rejected
    | RequestReceived
    | RequestRejected
    | ResponseReceived
    | RequestFailed
    | Released
    | Aborted
    | Closed
    | CloseTransport
    | ResetTransport
    | PauseReading
    | ResumeReading
)
"""Everything ``DimseProvider.next_event`` may return."""

new_request_received = fast_new(RequestReceived)
new_response_received = fast_new(ResponseReceived)
"""Positional constructors for the per-message events (see ``pdu.fastinit``)."""

CLOSE_TRANSPORT = CloseTransport()
RESET_TRANSPORT = ResetTransport()
PAUSE_READING = PauseReading()
RESUME_READING = ResumeReading()
RELEASED = Released()
