"""The services layer's one error family, rooted at :class:`UPSError`.

* :class:`ServiceError` — a request the UPS rules refuse, carrying the DIMSE status to
  answer with. The rules (PS3.4 Annex CC) answer every refused request with a specific
  status (Tables CC.2.1-2, CC.2.2-2, CC.2.3-3, CC.2.5-4, CC.2.6-1, CC.2.7-1) or a
  general one from PS3.7 Annex C; the SCP catches it in exactly one place and answers
  with ``status`` and ``comment`` (Error Comment (0000,0902)).
* :class:`UPSFailure` — the other side of the same coin: a peer SCP answered one of our
  requests with a failure status.
* :class:`ConfigError` — a local setting that cannot be used: an address, an AE title,
  an AE table or a users file. :class:`AddressError` is the address and AE title kind
  (a ``ValueError`` too).

Network failures stay ``ups.net.errors.NetError``: they come from the layer below.
"""

from __future__ import annotations

from ups.dimse.status import StatusCategory, describe, status_info, useful_comment
from ups.errors import DicomError

__all__ = ["AddressError", "ConfigError", "ServiceError", "UPSError", "UPSFailure"]


class UPSError(DicomError):
    """The root of every error the UPS services raise."""


class ServiceError(UPSError):
    """A request the services layer refuses, with the DIMSE status to answer.

    ``status`` is the 16-bit value for Status (0000,0900); ``comment`` is a
    short human-readable reason, at most 64 characters on the wire (PS3.7
    Error Comment is LO), so keep it brief.
    """

    def __init__(self, status: int, comment: str = "") -> None:
        info = status_info(status)  # ValueError for a value that is not 16 bits
        self.status = status
        self.comment = comment
        code = f"{info.code:04X}"
        super().__init__(f"0x{code}: {comment}" if comment else f"0x{code}")

    @property
    def is_warning(self) -> bool:
        """True for warning statuses (PS3.7 C.1 category Warning)."""
        return status_info(self.status).category is StatusCategory.WARNING


class UPSFailure(UPSError):
    """The SCP answered with a failure status; ``status`` and ``meaning`` say which.

    The message is the meaning from our own status table, then the SCP's Error Comment
    in parentheses when it adds something to it (``comment`` holds it as sent).
    """

    def __init__(self, operation: str, status: int, comment: str | None = None) -> None:
        self.operation = operation
        self.status = status
        self.comment = comment
        self.meaning = describe(status)
        useful = useful_comment(status, comment)
        detail = f" ({useful})" if useful else ""
        super().__init__(f"{operation} failed: status {self.meaning}{detail}")


class ConfigError(UPSError):
    """A local setting that cannot be used: an address, AE title, AE file or users file."""


class AddressError(ConfigError, ValueError):
    """An AE title or an ``AET@host:port`` address that breaks the rule of ``address``."""
