"""DIMSE status codes as data: PS3.7 Annex C plus the PS3.4 codes this toolkit meets.

A status is a 16-bit code whose *category* PS3.7 C.1 fixes by range (success,
warning, failure, cancel, pending) and whose *meaning* the service class defines.
This module holds one table, ``STATUSES``, with

* the general codes of PS3.7 Annex C (0x0001, 0x0105-0x0124, 0x0210-0x0213, 0xFE00);
* the C-STORE (PS3.4 B.2.3) and C-FIND (PS3.4 C.4.1.1.4) codes, including the
  ranges 0xA7xx, 0xA9xx and 0xCxxx, which are resolved by ``status_info``;
* every Unified Procedure Step code of PS3.4 Annex CC (Tables CC.2.1-2, CC.2.2-2,
  CC.2.3-3, CC.2.5-4, CC.2.6-1, CC.2.7-1 and the C-FIND table of CC.2.8): 0xB300,
  0xB301, 0xB304, 0xB305, 0xB306, 0xC300-0xC304 and 0xC307-0xC315. PS3.4 defines no
  0xC305 or 0xC306.

Overloading: PS3.4 lets each service give its own meaning to 0xCxxx ("unable to
process" for C-FIND, "cannot understand" for C-STORE). This is a UPS toolkit, so where
a UPS code exists the table keeps the UPS meaning; other 0xCxxx codes read as the
generic "unable to process". Codes absent from the table are categorised by the PS3.7
C.1 ranges and described as unknown.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from functools import lru_cache


class StatusCategory(Enum):
    """The five status classes of PS3.7 C.1."""

    SUCCESS = "Success"
    WARNING = "Warning"
    FAILURE = "Failure"
    PENDING = "Pending"
    CANCEL = "Cancel"


@dataclass(frozen=True, slots=True)
class Status:
    """One status code with its category and its meaning in words."""

    code: int
    category: StatusCategory
    meaning: str

    @property
    def is_success(self) -> bool:
        return self.category is StatusCategory.SUCCESS

    @property
    def is_pending(self) -> bool:
        return self.category is StatusCategory.PENDING

    @property
    def is_failure(self) -> bool:
        return self.category is StatusCategory.FAILURE

    def __str__(self) -> str:
        return f"{self.code:04X} {self.category.value} - {self.meaning}"


_S = StatusCategory.SUCCESS
_W = StatusCategory.WARNING
_F = StatusCategory.FAILURE
_P = StatusCategory.PENDING
_C = StatusCategory.CANCEL

_TABLE: tuple[tuple[int, StatusCategory, str], ...] = (
    # PS3.7 Annex C, general statuses.
    (0x0000, _S, "Success"),
    (0x0001, _W, "Requested optional Attributes are not supported"),
    (0x0105, _F, "No such Attribute"),
    (0x0106, _F, "Invalid Attribute Value"),
    (0x0107, _W, "Attribute List Error"),
    (0x0110, _F, "Processing failure"),
    (0x0111, _F, "Duplicate SOP Instance"),
    (0x0112, _F, "No such SOP Instance"),
    (0x0113, _F, "No such Event Type"),
    (0x0114, _F, "No such Argument"),
    (0x0115, _F, "Invalid Argument Value"),
    (0x0116, _W, "Attribute Value out of range"),
    (0x0117, _F, "Invalid SOP Instance"),
    (0x0118, _F, "No such SOP Class"),
    (0x0119, _F, "Class-Instance conflict"),
    (0x0120, _F, "Missing Attribute"),
    (0x0121, _F, "Missing Attribute Value"),
    (0x0122, _F, "Refused: SOP Class not supported"),
    (0x0123, _F, "No such Action"),
    (0x0124, _F, "Refused: Not authorized"),
    (0x0210, _F, "Duplicate invocation"),
    (0x0211, _F, "Unrecognized operation"),
    (0x0212, _F, "Mistyped argument"),
    (0x0213, _F, "Resource limitation"),
    (0xFE00, _C, "Operation terminated due to a Cancel request"),
    # PS3.4 B.2.3 (C-STORE) and C.4.1.1.4 (C-FIND), the fixed codes.
    (0xA700, _F, "Refused: Out of resources"),
    (0xA900, _F, "Failed: Data set or Identifier does not match SOP Class"),
    (0xB000, _W, "Coercion of Data Elements"),
    (0xB006, _W, "Elements discarded"),
    (0xB007, _W, "Data Set does not match SOP Class"),
    (0xFF00, _P, "Matches are continuing: current match supplied"),
    (0xFF01, _P, "Matches are continuing: one or more Optional Keys were not supported"),
    # PS3.4 Annex CC, Unified Procedure Step.
    (0xB300, _W, "The UPS was created with modifications"),
    (0xB301, _W, "Deletion Lock not granted"),
    (0xB304, _W, "The UPS is already in the requested state of CANCELED"),
    (0xB305, _W, "Coerced invalid values to valid values"),
    (0xB306, _W, "The UPS is already in the requested state of COMPLETED"),
    (0xC300, _F, "Refused: The UPS may no longer be updated"),
    (0xC301, _F, "Refused: The correct Transaction UID was not provided"),
    (0xC302, _F, "Refused: The UPS is already IN PROGRESS"),
    (0xC303, _F, "Refused: The UPS may only become SCHEDULED via N-CREATE"),
    (0xC304, _F, "Refused: The UPS has not met final state requirements"),
    (0xC307, _F, "Specified SOP Instance UID does not exist or is not a UPS managed here"),
    (0xC308, _F, "Receiving AE-TITLE is unknown to this SCP"),
    (0xC309, _F, "Refused: The provided value of UPS State was not SCHEDULED"),
    (0xC310, _F, "Refused: The UPS is not yet in the IN PROGRESS state"),
    (0xC311, _F, "Refused: The UPS is already COMPLETED"),
    (0xC312, _F, "Refused: The performer cannot be contacted"),
    (0xC313, _F, "Refused: Performer chooses not to cancel"),
    (0xC314, _F, "Refused: Specified action not appropriate for specified instance"),
    (0xC315, _F, "Refused: SCP does not support Event Reports"),
)

STATUSES: dict[int, Status] = {code: Status(code, cat, text) for code, cat, text in _TABLE}
"""Every status code this layer knows by name, keyed by code."""

SUCCESS = 0x0000
PENDING = 0xFF00
PENDING_WARNING = 0xFF01
CANCEL = 0xFE00
PROCESSING_FAILURE = 0x0110
UNRECOGNIZED_OPERATION = 0x0211
MISTYPED_ARGUMENT = 0x0212
RESOURCE_LIMITATION = 0x0213


def category_of(code: int) -> StatusCategory:
    """The PS3.7 C.1 category of any code, known or not."""
    if code == 0x0000:
        return _S
    if code in (0x0001, 0x0107, 0x0116) or code & 0xF000 == 0xB000:
        return _W
    if code == 0xFE00:
        return _C
    if code in (0xFF00, 0xFF01):
        return _P
    return _F


@lru_cache(maxsize=1024)
def status_info(code: int) -> Status:
    """The ``Status`` for ``code``; ranges (A7xx, A9xx, Cxxx) and unknown codes included."""
    if not 0 <= code <= 0xFFFF:
        raise ValueError(f"status code {code!r} is not a 16-bit value")
    known = STATUSES.get(code)
    if known is not None:
        return known
    high = code & 0xFF00
    if high == 0xA700:
        return Status(code, _F, "Refused: Out of resources")
    if high == 0xA900:
        return Status(code, _F, "Failed: Data set or Identifier does not match SOP Class")
    if code & 0xF000 == 0xC000:
        return Status(code, _F, "Failed: Unable to process")
    category = category_of(code)
    return Status(code, category, f"Unknown {category.value.lower()} status")


def describe(code: int) -> str:
    """One line naming a status, e.g. ``"C301 Failure - Refused: The correct ..."``."""
    return str(status_info(code))
