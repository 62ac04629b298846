"""The DIMSE layer's error family: each error carries the status it calls for.

PS3.7 Annex C gives every failed operation a status code; the errors here carry the
one the receiving side should answer with (``status``), and whether the fault is so
bad that no answer is possible and the association must be aborted (``abort``). The
association runtime turns these into a failure response or an A-ABORT in exactly one
place.
"""

from __future__ import annotations

from ups.dimse.status import (
    MISTYPED_ARGUMENT,
    PROCESSING_FAILURE,
    RESOURCE_LIMITATION,
    UNRECOGNIZED_OPERATION,
)
from ups.errors import DicomError

MAX_ERROR_COMMENT = 64
"""Error Comment (0000,0902) is an LO: at most 64 characters (PS3.5 Table 6.2-1)."""


def error_comment(text: str) -> str:
    """``text`` cut to fit an Error Comment, so a message can travel as one unchanged."""
    return text if len(text) <= MAX_ERROR_COMMENT else text[: MAX_ERROR_COMMENT - 3] + "..."


class DimseError(DicomError):
    """Base of all DIMSE-layer errors.

    ``status`` is the PS3.7 status a response should carry; ``message_id`` is the
    Message ID (0000,0110) of the offending request when it could be read, so the
    runtime can answer it. ``abort`` says the error breaks message framing itself
    (PS3.8 Annex E / PS3.7 §8): the only safe answer is an A-ABORT.
    """

    abort: bool = False

    def __init__(
        self,
        message: str,
        status: int = PROCESSING_FAILURE,
        *,
        message_id: int | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message_id = message_id


class MalformedCommand(DimseError):
    """A command set that breaks PS3.7 §6.3 / Annex E (bad lengths, VRs or values)."""

    def __init__(
        self, message: str, status: int = MISTYPED_ARGUMENT, *, message_id: int | None = None
    ) -> None:
        super().__init__(message, status, message_id=message_id)


class UnrecognizedOperation(MalformedCommand):
    """A Command Field (0000,0100) this layer does not know (status 0x0211)."""

    def __init__(self, message: str, *, message_id: int | None = None) -> None:
        super().__init__(message, UNRECOGNIZED_OPERATION, message_id=message_id)


class FragmentError(DimseError):
    """PDVs that cannot be reassembled into a message (PS3.8 Annex E): abort."""

    abort = True


class DatasetError(DimseError):
    """A data set that cannot be decoded or encoded in its transfer syntax (0x0110)."""


class LimitExceeded(DatasetError):
    """A well-formed-so-far data set beyond one of the scanner's limits (0x0213).

    PS3.7 C.5 gives "Resource limitation" for a request the performer cannot handle
    for want of resources, which is what a limit protects. ``limit`` names the
    ``ScanLimits`` field that was crossed, so callers can log or tune it.
    """

    def __init__(self, message: str, limit: str, *, message_id: int | None = None) -> None:
        super().__init__(message, RESOURCE_LIMITATION, message_id=message_id)
        self.limit = limit


class EncodeError(DimseError):
    """A local value that cannot be put on the wire (a caller bug, never the peer's)."""


class ProviderError(DimseError):
    """The DIMSE provider core cannot serve a request, or its association has failed.

    Raised by ``provider.DimseProvider`` to a local caller (not established, being
    released, a Message ID already outstanding) and carried by its events as the cause
    an association ended with; the asyncio adapter turns it into a ``NetError`` in one
    place. ``status`` is not used: no response carries it.
    """


class ProviderAborted(ProviderError):
    """The association ended by A-ABORT (either side) or its transport was lost.

    ``source`` and ``reason`` are those of the A-ABORT (PS3.8 Table 9-26) when one was
    received; None when the provider ended it without one.
    """

    def __init__(self, message: str, source: int | None = None, reason: int | None = None):
        super().__init__(message)
        self.source = source
        self.reason = reason


class ProviderRejected(ProviderError):
    """The association was rejected (A-ASSOCIATE-RJ, PS3.8 Table 9-21): by the peer, or by
    this acceptor's policy. ``result``, ``source`` and ``reason`` are the RJ's fields."""

    def __init__(self, message: str, result: int, source: int, reason: int) -> None:
        super().__init__(message)
        self.result = result
        self.source = source
        self.reason = reason


class ProviderTimeout(ProviderError):
    """A deadline of the core ran out: A-ASSOCIATE-AC, A-RELEASE-RP, a partial PDU,
    -idleTO, -rspTO (the reaper) or -sendTO."""


class ProviderSendTimeout(ProviderTimeout):
    """-sendTO: our writes stayed paused (the transport above its high-water mark, the
    peer reading nothing) longer than the send deadline. The adapter, which knows how
    many bytes are still queued, logs the one line that names them."""
