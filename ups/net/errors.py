"""The network layer's error family: what went wrong on a real association.

Every failure a caller of ``ups.net`` can see is one of these, each naming its cause
in words a user can act on (the CLI prints ``str(error)`` as its one line).
"""

from __future__ import annotations

from ups.errors import DicomError


class NetError(DicomError):
    """Base of all network-layer errors."""


class ConnectFailed(NetError):
    """The TCP (or TLS) connection could not be made."""


class AssociationRejected(NetError):
    """The peer answered A-ASSOCIATE-RQ with A-ASSOCIATE-RJ."""

    def __init__(self, message: str, result: int, source: int, reason: int) -> None:
        super().__init__(message)
        self.result = result
        self.source = source
        self.reason = reason


class AssociationAborted(NetError):
    """The association ended by A-ABORT (from either side) or a dropped connection."""

    def __init__(self, message: str, source: int | None = None, reason: int | None = None):
        super().__init__(message)
        self.source = source
        self.reason = reason


class NetTimeout(NetError):
    """A configured time limit ran out (connect, accept, release, DIMSE response, ...)."""


class TLSConfigError(NetError):
    """The TLS options or key/trust stores cannot be used (bad file, insecure request)."""


class NoPresentationContext(NetError):
    """No accepted presentation context can carry the requested SOP class."""


class InvalidRequest(NetError):
    """The association request cannot be built (e.g. an AE title PS3.5 does not allow)."""
