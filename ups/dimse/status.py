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
from enum import Enum, IntEnum
from functools import lru_cache


class StatusCategory(Enum):
    """The five status classes of PS3.7 C.1."""

    SUCCESS = "Success"
    WARNING = "Warning"
    FAILURE = "Failure"
    PENDING = "Pending"
    CANCEL = "Cancel"


class Status(IntEnum):
    """Every status code this toolkit names: ``Status.UPS_ALREADY_IN_PROGRESS``, not 0xC302.

    Members are the codes of ``_TABLE`` below, in its order; ``category`` and
    ``meaning`` come from that table, so "is it a warning" is asked of the category
    (PS3.7 C.1), never of a hex range. Codes outside it go through ``status_info``.
    """

    SUCCESS = 0x0000
    OPTIONAL_ATTRIBUTES_NOT_SUPPORTED = 0x0001
    NO_SUCH_ATTRIBUTE = 0x0105
    INVALID_ATTRIBUTE_VALUE = 0x0106
    ATTRIBUTE_LIST_ERROR = 0x0107
    PROCESSING_FAILURE = 0x0110
    DUPLICATE_SOP_INSTANCE = 0x0111
    NO_SUCH_SOP_INSTANCE = 0x0112
    NO_SUCH_EVENT_TYPE = 0x0113
    NO_SUCH_ARGUMENT = 0x0114
    INVALID_ARGUMENT_VALUE = 0x0115
    ATTRIBUTE_VALUE_OUT_OF_RANGE = 0x0116
    INVALID_SOP_INSTANCE = 0x0117
    NO_SUCH_SOP_CLASS = 0x0118
    CLASS_INSTANCE_CONFLICT = 0x0119
    MISSING_ATTRIBUTE = 0x0120
    MISSING_ATTRIBUTE_VALUE = 0x0121
    SOP_CLASS_NOT_SUPPORTED = 0x0122
    NO_SUCH_ACTION = 0x0123
    NOT_AUTHORIZED = 0x0124
    DUPLICATE_INVOCATION = 0x0210
    UNRECOGNIZED_OPERATION = 0x0211
    MISTYPED_ARGUMENT = 0x0212
    RESOURCE_LIMITATION = 0x0213
    CANCEL = 0xFE00
    OUT_OF_RESOURCES = 0xA700
    IDENTIFIER_DOES_NOT_MATCH_SOP_CLASS = 0xA900
    COERCION_OF_DATA_ELEMENTS = 0xB000
    ELEMENTS_DISCARDED = 0xB006
    DATA_SET_DOES_NOT_MATCH_SOP_CLASS = 0xB007
    PENDING = 0xFF00
    PENDING_WARNING = 0xFF01
    UPS_CREATED_WITH_MODIFICATIONS = 0xB300
    UPS_DELETION_LOCK_NOT_GRANTED = 0xB301
    UPS_ALREADY_CANCELED = 0xB304
    UPS_COERCED_INVALID_VALUES = 0xB305
    UPS_ALREADY_COMPLETED = 0xB306
    UPS_MAY_NO_LONGER_BE_UPDATED = 0xC300
    UPS_WRONG_TRANSACTION_UID = 0xC301
    UPS_ALREADY_IN_PROGRESS = 0xC302
    UPS_SCHEDULED_ONLY_VIA_CREATE = 0xC303
    UPS_FINAL_STATE_NOT_MET = 0xC304
    UPS_NO_SUCH_INSTANCE = 0xC307
    UPS_UNKNOWN_RECEIVING_AE = 0xC308
    UPS_CREATE_NOT_SCHEDULED = 0xC309
    UPS_NOT_IN_PROGRESS = 0xC310
    UPS_CANCEL_ALREADY_COMPLETED = 0xC311
    UPS_PERFORMER_UNREACHABLE = 0xC312
    UPS_PERFORMER_DECLINES = 0xC313
    UPS_ACTION_NOT_APPROPRIATE = 0xC314
    UPS_NO_EVENT_REPORTS = 0xC315

    @property
    def category(self) -> StatusCategory:
        return STATUSES[self].category

    @property
    def meaning(self) -> str:
        return STATUSES[self].meaning


@dataclass(frozen=True, slots=True)
class StatusInfo:
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

_TABLE: tuple[tuple[Status, StatusCategory, str], ...] = (
    # PS3.7 Annex C, general statuses.
    (Status.SUCCESS, _S, "Success"),
    (
        Status.OPTIONAL_ATTRIBUTES_NOT_SUPPORTED,
        _W,
        "Requested optional Attributes are not supported",
    ),
    (Status.NO_SUCH_ATTRIBUTE, _F, "No such Attribute"),
    (Status.INVALID_ATTRIBUTE_VALUE, _F, "Invalid Attribute Value"),
    (Status.ATTRIBUTE_LIST_ERROR, _W, "Attribute List Error"),
    (Status.PROCESSING_FAILURE, _F, "Processing failure"),
    (Status.DUPLICATE_SOP_INSTANCE, _F, "Duplicate SOP Instance"),
    (Status.NO_SUCH_SOP_INSTANCE, _F, "No such SOP Instance"),
    (Status.NO_SUCH_EVENT_TYPE, _F, "No such Event Type"),
    (Status.NO_SUCH_ARGUMENT, _F, "No such Argument"),
    (Status.INVALID_ARGUMENT_VALUE, _F, "Invalid Argument Value"),
    (Status.ATTRIBUTE_VALUE_OUT_OF_RANGE, _W, "Attribute Value out of range"),
    (Status.INVALID_SOP_INSTANCE, _F, "Invalid SOP Instance"),
    (Status.NO_SUCH_SOP_CLASS, _F, "No such SOP Class"),
    (Status.CLASS_INSTANCE_CONFLICT, _F, "Class-Instance conflict"),
    (Status.MISSING_ATTRIBUTE, _F, "Missing Attribute"),
    (Status.MISSING_ATTRIBUTE_VALUE, _F, "Missing Attribute Value"),
    (Status.SOP_CLASS_NOT_SUPPORTED, _F, "Refused: SOP Class not supported"),
    (Status.NO_SUCH_ACTION, _F, "No such Action"),
    (Status.NOT_AUTHORIZED, _F, "Refused: Not authorized"),
    (Status.DUPLICATE_INVOCATION, _F, "Duplicate invocation"),
    (Status.UNRECOGNIZED_OPERATION, _F, "Unrecognized operation"),
    (Status.MISTYPED_ARGUMENT, _F, "Mistyped argument"),
    (Status.RESOURCE_LIMITATION, _F, "Resource limitation"),
    (Status.CANCEL, _C, "Operation terminated due to a Cancel request"),
    # PS3.4 B.2.3 (C-STORE) and C.4.1.1.4 (C-FIND), the fixed codes.
    (Status.OUT_OF_RESOURCES, _F, "Refused: Out of resources"),
    (
        Status.IDENTIFIER_DOES_NOT_MATCH_SOP_CLASS,
        _F,
        "Failed: Data set or Identifier does not match SOP Class",
    ),
    (Status.COERCION_OF_DATA_ELEMENTS, _W, "Coercion of Data Elements"),
    (Status.ELEMENTS_DISCARDED, _W, "Elements discarded"),
    (Status.DATA_SET_DOES_NOT_MATCH_SOP_CLASS, _W, "Data Set does not match SOP Class"),
    (Status.PENDING, _P, "Matches are continuing: current match supplied"),
    (
        Status.PENDING_WARNING,
        _P,
        "Matches are continuing: one or more Optional Keys were not supported",
    ),
    # PS3.4 Annex CC, Unified Procedure Step.
    (Status.UPS_CREATED_WITH_MODIFICATIONS, _W, "The UPS was created with modifications"),
    (Status.UPS_DELETION_LOCK_NOT_GRANTED, _W, "Deletion Lock not granted"),
    (Status.UPS_ALREADY_CANCELED, _W, "The UPS is already in the requested state of CANCELED"),
    (Status.UPS_COERCED_INVALID_VALUES, _W, "Coerced invalid values to valid values"),
    (Status.UPS_ALREADY_COMPLETED, _W, "The UPS is already in the requested state of COMPLETED"),
    (Status.UPS_MAY_NO_LONGER_BE_UPDATED, _F, "Refused: The UPS may no longer be updated"),
    (Status.UPS_WRONG_TRANSACTION_UID, _F, "Refused: The correct Transaction UID was not provided"),
    (Status.UPS_ALREADY_IN_PROGRESS, _F, "Refused: The UPS is already IN PROGRESS"),
    (
        Status.UPS_SCHEDULED_ONLY_VIA_CREATE,
        _F,
        "Refused: The UPS may only become SCHEDULED via N-CREATE",
    ),
    (Status.UPS_FINAL_STATE_NOT_MET, _F, "Refused: The UPS has not met final state requirements"),
    (
        Status.UPS_NO_SUCH_INSTANCE,
        _F,
        "Specified SOP Instance UID does not exist or is not a UPS managed here",
    ),
    (Status.UPS_UNKNOWN_RECEIVING_AE, _F, "Receiving AE-TITLE is unknown to this SCP"),
    (
        Status.UPS_CREATE_NOT_SCHEDULED,
        _F,
        "Refused: The provided value of UPS State was not SCHEDULED",
    ),
    (Status.UPS_NOT_IN_PROGRESS, _F, "Refused: The UPS is not yet in the IN PROGRESS state"),
    (Status.UPS_CANCEL_ALREADY_COMPLETED, _F, "Refused: The UPS is already COMPLETED"),
    (Status.UPS_PERFORMER_UNREACHABLE, _F, "Refused: The performer cannot be contacted"),
    (Status.UPS_PERFORMER_DECLINES, _F, "Refused: Performer chooses not to cancel"),
    (
        Status.UPS_ACTION_NOT_APPROPRIATE,
        _F,
        "Refused: Specified action not appropriate for specified instance",
    ),
    (Status.UPS_NO_EVENT_REPORTS, _F, "Refused: SCP does not support Event Reports"),
)

STATUSES: dict[int, StatusInfo] = {
    code: StatusInfo(int(code), cat, text) for code, cat, text in _TABLE
}
"""Every status code this layer knows by name, keyed by code."""

SUCCESS = Status.SUCCESS
PENDING = Status.PENDING
PENDING_WARNING = Status.PENDING_WARNING
CANCEL = Status.CANCEL
PROCESSING_FAILURE = Status.PROCESSING_FAILURE
UNRECOGNIZED_OPERATION = Status.UNRECOGNIZED_OPERATION
MISTYPED_ARGUMENT = Status.MISTYPED_ARGUMENT
RESOURCE_LIMITATION = Status.RESOURCE_LIMITATION
INVALID_SOP_INSTANCE = Status.INVALID_SOP_INSTANCE


def category_of(code: int) -> StatusCategory:
    """The PS3.7 C.1 category of any code: from the table when it is known, else by the
    ranges C.1 gives for codes a service may add."""
    known = STATUSES.get(code)
    if known is not None:
        return known.category
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
def status_info(code: int) -> StatusInfo:
    """The ``Status`` for ``code``; ranges (A7xx, A9xx, Cxxx) and unknown codes included."""
    if not 0 <= code <= 0xFFFF:
        raise ValueError(f"status code {code!r} is not a 16-bit value")
    known = STATUSES.get(code)
    if known is not None:
        return known
    high = code & 0xFF00
    if high == 0xA700:
        return StatusInfo(code, _F, "Refused: Out of resources")
    if high == 0xA900:
        return StatusInfo(code, _F, "Failed: Data set or Identifier does not match SOP Class")
    if code & 0xF000 == 0xC000:
        return StatusInfo(code, _F, "Failed: Unable to process")
    category = category_of(code)
    return StatusInfo(code, category, f"Unknown {category.value.lower()} status")


def useful_comment(code: int, comment: str | None) -> str | None:
    """``comment`` (an Error Comment) when it says more than the meaning of ``code``.

    Some SCPs put the meaning itself in the comment, often cut at 64 characters
    ("... is not a UPS manage"); that is left out, as is an empty one. What is shown
    is the meaning from our own table, plus the comment when it adds facts.
    """
    text = " ".join((comment or "").split()).rstrip(".").removesuffix("...").strip()
    if not text:
        return None
    meaning = status_info(code).meaning.lower()
    bare = meaning.removeprefix("refused: ").removeprefix("failed: ")
    lowered = text.lower()
    if lowered in meaning or bare.startswith(lowered.removeprefix("refused: ")):
        return None
    return comment


def describe(code: int) -> str:
    """One line naming a status, e.g. ``"C301 Failure - Refused: The correct ..."``."""
    return str(status_info(code))
