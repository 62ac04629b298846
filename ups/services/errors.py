"""The services layer's one error family: a refusal that carries its DIMSE status.

The UPS rules (PS3.4 Annex CC) answer every refused request with a specific
status code (Tables CC.2.1-2, CC.2.2-2, CC.2.3-3, CC.2.5-4, CC.2.6-1, CC.2.7-1)
or a general one from PS3.7 Annex C.  The pure rule functions raise
:class:`ServiceError`; the SCP catches it in exactly one place and answers the
request with ``status`` and ``comment`` (Error Comment (0000,0902)).
"""

from __future__ import annotations

from ups.errors import DicomError

__all__ = ["ServiceError"]


class ServiceError(DicomError):
    """A request the services layer refuses, with the DIMSE status to answer.

    ``status`` is the 16-bit value for Status (0000,0900); ``comment`` is a
    short human-readable reason, at most 64 characters on the wire (PS3.7
    Error Comment is LO), so keep it brief.
    """

    def __init__(self, status: int, comment: str = "") -> None:
        if not 0 <= status <= 0xFFFF:
            raise ValueError(f"status {status!r} is not a 16-bit DIMSE status")
        self.status = status
        self.comment = comment
        super().__init__(f"0x{status:04X}: {comment}" if comment else f"0x{status:04X}")

    @property
    def is_warning(self) -> bool:
        """True for warning statuses (PS3.7 C.4: 0001, Bxxx, 0107, 0116)."""
        return self.status in (0x0001, 0x0107, 0x0116) or 0xB000 <= self.status <= 0xBFFF
