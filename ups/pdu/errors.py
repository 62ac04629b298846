"""The Upper Layer's error family: each error carries the A-ABORT it calls for.

PS3.8 §9.3.1 and Table 9-26 give the answer to every malformed PDU: an A-ABORT whose
source is the service provider and whose reason names the fault. Decoders raise
``PDUError`` and nothing else, so the association machine turns any of them into the
right A-ABORT in exactly one place.
"""

from __future__ import annotations

from ups.errors import DicomError
from ups.pdu.enums import AbortReason, AbortSource


class PDUError(DicomError):
    """A protocol error in received PDUs; ``reason`` is the A-ABORT reason to send."""

    def __init__(
        self,
        message: str,
        reason: AbortReason = AbortReason.INVALID_PDU_PARAMETER_VALUE,
        source: AbortSource = AbortSource.SERVICE_PROVIDER,
    ) -> None:
        super().__init__(message)
        self.reason = reason
        self.source = source
        self.pdu_type: int | None = None
        """The type of the PDU at fault, once its header was read (set by the framer)."""


class UnrecognizedPDU(PDUError):
    """An unknown PDU type (A-ABORT reason 1)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, AbortReason.UNRECOGNIZED_PDU)


class UnexpectedParameter(PDUError):
    """An item out of place, duplicated or missing (A-ABORT reason 5)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, AbortReason.UNEXPECTED_PDU_PARAMETER)


class InvalidParameter(PDUError):
    """A field with an invalid value or length (A-ABORT reason 6)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, AbortReason.INVALID_PDU_PARAMETER_VALUE)


class PDUTooLarge(PDUError):
    """A PDU whose length field exceeds the receive limit; checked before buffering."""

    def __init__(self, message: str) -> None:
        super().__init__(message, AbortReason.INVALID_PDU_PARAMETER_VALUE)
