"""The UPS state machine and attribute rules of PS3.4 Annex CC, as data and pure functions.

This module owns:

* the Unified Procedure Step State Transition Table (PS3.4 Table CC.1.1-2) as a
  literal table, :data:`TRANSITIONS`, that a test walks cell by cell;
* the status codes of Tables CC.2.1-2 (Change UPS State), CC.2.2-2 (Request
  UPS Cancel), CC.2.3-3 (Subscribe), CC.2.5-4 (N-CREATE), CC.2.6-1 (N-SET) and
  the PS3.7 Annex C general codes the rules use, as :class:`UPSStatus`;
* the Final State requirements of Table CC.2.5-3 (codes R, P, X of Table
  CC.2.5-1) as :data:`FINAL_STATE_REQUIREMENTS`;
* the decisions for N-CREATE (:func:`check_create`, CC.2.5.3), N-SET
  (:func:`check_set`, CC.2.6.3), Change UPS State (:func:`check_change_state`,
  CC.2.1.3) and Request UPS Cancel (:func:`check_request_cancel`, CC.2.2.3);
* the N-EVENT-REPORT contents of Table CC.2.4-1 (:func:`state_report` and
  friends) and the events each change causes (CC.2.4.3).

Everything is pure: a function takes the stored workitem (or ``None`` when it
does not exist), the request and, where the standard wants a timestamp, the
current time as an argument.  It returns the new workitem and the events to
send, or raises :class:`ServiceError` with the status to answer.  Warnings
that leave the workitem unchanged (B304, B306) are *returned* with an empty
event list, not raised, so the caller answers them like a success.

Choices the standard leaves open (conformance statement, PS3.4 CC.4.2.1):

* A claim on a SCHEDULED UPS "with correct Transaction UID" means one with a
  non-empty Transaction UID; Table CC.1.1-2 gives C301 without one.  A second
  claim on an IN PROGRESS UPS with another Transaction UID gets C301 (the
  table's IN PROGRESS column, and CC.2.1.2 note 2: "the Transaction UID
  provided by the second SCU is incorrect"); only a repeated claim with the
  same Transaction UID gets C302 "already IN PROGRESS".
* N-SET of a SCHEDULED UPS that carries a Transaction UID is refused with C310
  (CC.2.6.2: "the Transaction UID Attribute shall not be present").
* N-SET of Procedure Step State is refused: C303 when it asks for SCHEDULED,
  otherwise 0106.  N-SET of other attributes the table marks "Not Allowed"
  (SOP Class/Instance UID, patient identity) is refused with 0106 unless the
  value is unchanged.
* N-CREATE: a missing Type 1 attribute is 0120, an empty one 0121, a value
  outside its enumerated values 0106; a Procedure Step State other than
  SCHEDULED is C309.  A non-empty Transaction UID, Progress Information or
  Performed Procedure Sequence ("shall be empty") is emptied and the creation
  answered with warning B300.  A missing Worklist Label gets the SCP's default.
* Request UPS Cancel of a SCHEDULED UPS: the SCP claims it with its own
  Transaction UID and cancels it, filling the Final State requirements
  (cancellation date/time, the requested reason, and when no reason code was
  given the code (110513, DCM, "Discontinued for unspecified reason")).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import Enum, IntEnum
from types import MappingProxyType

from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import generate_uid

from ups.services.errors import ServiceError
from ups.services.uids import UPS_PUSH, EventType, ProcedureStepState

__all__ = [
    "UPSStatus",
    "STATUS_MEANINGS",
    "Request",
    "Cell",
    "TRANSITIONS",
    "FINAL_STATE_REQUIREMENTS",
    "Event",
    "Transition",
    "Creation",
    "Update",
    "CancelOutcome",
    "state_of",
    "check_create",
    "check_set",
    "set_events",
    "check_change_state",
    "check_request_cancel",
    "final_state_problems",
    "check_final_state",
    "state_report",
    "cancel_requested",
    "progress_report",
    "scp_status_change",
    "ups_assigned",
    "format_dt",
]

State = ProcedureStepState


class UPSStatus(IntEnum):
    """DIMSE statuses of the UPS service (PS3.4 Annex CC) and the general ones it uses."""

    SUCCESS = 0x0000
    # PS3.7 Annex C general statuses
    ATTRIBUTE_LIST_ERROR = 0x0107
    DUPLICATE_SOP_INSTANCE = 0x0111
    INVALID_ATTRIBUTE_VALUE = 0x0106
    INVALID_ARGUMENT_VALUE = 0x0115
    MISSING_ATTRIBUTE = 0x0120
    MISSING_ATTRIBUTE_VALUE = 0x0121
    PROCESSING_FAILURE = 0x0110
    # PS3.4 Annex CC warnings
    CREATED_WITH_MODIFICATIONS = 0xB300
    DELETION_LOCK_NOT_GRANTED = 0xB301
    ALREADY_CANCELED = 0xB304
    COERCED_INVALID_VALUES = 0xB305
    ALREADY_COMPLETED = 0xB306
    # PS3.4 Annex CC failures
    MAY_NO_LONGER_BE_UPDATED = 0xC300
    WRONG_TRANSACTION_UID = 0xC301
    ALREADY_IN_PROGRESS = 0xC302
    SCHEDULED_ONLY_VIA_CREATE = 0xC303
    FINAL_STATE_NOT_MET = 0xC304
    NO_SUCH_UPS = 0xC307
    UNKNOWN_RECEIVING_AE = 0xC308
    CREATE_NOT_SCHEDULED = 0xC309
    NOT_IN_PROGRESS = 0xC310
    CANCEL_ALREADY_COMPLETED = 0xC311
    PERFORMER_UNREACHABLE = 0xC312
    PERFORMER_DECLINES = 0xC313
    ACTION_NOT_APPROPRIATE = 0xC314
    NO_EVENT_REPORTS = 0xC315


STATUS_MEANINGS: Mapping[int, str] = MappingProxyType(
    {
        0x0000: "Success",
        0x0106: "Invalid Attribute Value",
        0x0107: "Attribute List Error",
        0x0110: "Processing failure",
        0x0111: "Duplicate SOP Instance",
        0x0115: "Invalid argument value",
        0x0120: "Missing Attribute",
        0x0121: "Missing Attribute Value",
        0xB300: "The UPS was created with modifications",
        0xB301: "Deletion Lock not granted",
        0xB304: "The UPS is already in the requested state of CANCELED",
        0xB305: "Coerced invalid values to valid values",
        0xB306: "The UPS is already in the requested state of COMPLETED",
        0xC300: "The UPS may no longer be updated",
        0xC301: "The correct Transaction UID was not provided",
        0xC302: "The UPS is already IN PROGRESS",
        0xC303: "The UPS may only become SCHEDULED via N-CREATE, not N-SET or N-ACTION",
        0xC304: "The UPS has not met final state requirements for the requested state change",
        0xC307: "Specified SOP Instance UID does not exist or is not a UPS Instance "
        "managed by this SCP",
        0xC308: "Receiving AE-TITLE is Unknown to this SCP",
        0xC309: 'The provided value of UPS State was not "SCHEDULED"',
        0xC310: 'The UPS is not yet in the "IN PROGRESS" state',
        0xC311: "The UPS is already COMPLETED",
        0xC312: "The performer cannot be contacted",
        0xC313: "Performer chooses not to cancel",
        0xC314: "Specified action not appropriate for specified instance",
        0xC315: "SCP does not support Event Reports",
    }
)


def _fail(status: int, detail: str = "") -> ServiceError:
    text = detail or STATUS_MEANINGS.get(status, "")
    return ServiceError(status, text[:64])


# --------------------------------------------------------------------------- Table CC.1.1-2


class Request(Enum):
    """The rows (events) of Table CC.1.1-2."""

    CREATE = "N-CREATE"
    IN_PROGRESS_CORRECT_UID = "IN PROGRESS with correct Transaction UID"
    IN_PROGRESS_WRONG_UID = "IN PROGRESS without correct Transaction UID"
    SCHEDULED = "SCHEDULED"
    COMPLETED_CORRECT_UID = "COMPLETED with correct Transaction UID"
    COMPLETED_WRONG_UID = "COMPLETED without correct Transaction UID"
    REQUEST_CANCEL = "Request Cancel"
    CANCELED_CORRECT_UID = "CANCELED with correct Transaction UID"
    CANCELED_WRONG_UID = "CANCELED without correct Transaction UID"


@dataclass(frozen=True, slots=True)
class Cell:
    """One cell: either an ``action`` (a new state, or ``None`` for "report
    only") with ``final_check``, or a ``status`` (a warning or an error)."""

    status: int = 0
    new_state: ProcedureStepState | None = None
    final_check: bool = False


_E = Cell
_S, _IP, _CO, _CA = State.SCHEDULED, State.IN_PROGRESS, State.COMPLETED, State.CANCELED

# None = "the SOP Instance does not exist".  Columns: does not exist, SCHEDULED,
# IN PROGRESS, COMPLETED, CANCELED.
TRANSITIONS: Mapping[tuple[Request, ProcedureStepState | None], Cell] = MappingProxyType(
    {
        (Request.CREATE, None): Cell(new_state=_S),
        (Request.CREATE, _S): _E(0x0111),
        (Request.CREATE, _IP): _E(0x0111),
        (Request.CREATE, _CO): _E(0x0111),
        (Request.CREATE, _CA): _E(0x0111),
        (Request.IN_PROGRESS_CORRECT_UID, None): _E(0xC307),
        (Request.IN_PROGRESS_CORRECT_UID, _S): Cell(new_state=_IP),
        (Request.IN_PROGRESS_CORRECT_UID, _IP): _E(0xC302),
        (Request.IN_PROGRESS_CORRECT_UID, _CO): _E(0xC300),
        (Request.IN_PROGRESS_CORRECT_UID, _CA): _E(0xC300),
        (Request.IN_PROGRESS_WRONG_UID, None): _E(0xC307),
        (Request.IN_PROGRESS_WRONG_UID, _S): _E(0xC301),
        (Request.IN_PROGRESS_WRONG_UID, _IP): _E(0xC301),
        (Request.IN_PROGRESS_WRONG_UID, _CO): _E(0xC301),
        (Request.IN_PROGRESS_WRONG_UID, _CA): _E(0xC301),
        (Request.SCHEDULED, None): _E(0xC307),
        (Request.SCHEDULED, _S): _E(0xC303),
        (Request.SCHEDULED, _IP): _E(0xC303),
        (Request.SCHEDULED, _CO): _E(0xC303),
        (Request.SCHEDULED, _CA): _E(0xC303),
        (Request.COMPLETED_CORRECT_UID, None): _E(0xC307),
        (Request.COMPLETED_CORRECT_UID, _S): _E(0xC310),
        (Request.COMPLETED_CORRECT_UID, _IP): Cell(new_state=_CO, final_check=True),
        (Request.COMPLETED_CORRECT_UID, _CO): _E(0xB306),
        (Request.COMPLETED_CORRECT_UID, _CA): _E(0xC300),
        (Request.COMPLETED_WRONG_UID, None): _E(0xC307),
        (Request.COMPLETED_WRONG_UID, _S): _E(0xC301),
        (Request.COMPLETED_WRONG_UID, _IP): _E(0xC301),
        (Request.COMPLETED_WRONG_UID, _CO): _E(0xC301),
        (Request.COMPLETED_WRONG_UID, _CA): _E(0xC301),
        (Request.REQUEST_CANCEL, None): _E(0xC307),
        (Request.REQUEST_CANCEL, _S): Cell(new_state=_CA, final_check=True),
        (Request.REQUEST_CANCEL, _IP): Cell(new_state=None),
        (Request.REQUEST_CANCEL, _CO): _E(0xC311),
        (Request.REQUEST_CANCEL, _CA): _E(0xB304),
        (Request.CANCELED_CORRECT_UID, None): _E(0xC307),
        (Request.CANCELED_CORRECT_UID, _S): _E(0xC310),
        (Request.CANCELED_CORRECT_UID, _IP): Cell(new_state=_CA, final_check=True),
        (Request.CANCELED_CORRECT_UID, _CO): _E(0xC300),
        (Request.CANCELED_CORRECT_UID, _CA): _E(0xB304),
        (Request.CANCELED_WRONG_UID, None): _E(0xC307),
        (Request.CANCELED_WRONG_UID, _S): _E(0xC301),
        (Request.CANCELED_WRONG_UID, _IP): _E(0xC301),
        (Request.CANCELED_WRONG_UID, _CO): _E(0xC301),
        (Request.CANCELED_WRONG_UID, _CA): _E(0xC301),
    }
)

# --------------------------------------------------------------------------- Table CC.2.5-3

#: Final State codes of Table CC.2.5-3 (meanings in Table CC.2.5-1): keyword
#: paths (``A>B`` = B inside an item of A) -> code.  R: needed for COMPLETED and
#: CANCELED; P: for COMPLETED; X: for CANCELED.  RC ("if known") and the
#: conditional Specific Character Set cannot be judged by the SCP and are left
#: out.  ``Output Information Sequence`` may have no items (its remark).
FINAL_STATE_REQUIREMENTS: Mapping[str, str] = MappingProxyType(
    {
        "SOPClassUID": "R",
        "SOPInstanceUID": "R",
        "ScheduledProcedureStepPriority": "R",
        "ScheduledProcedureStepModificationDateTime": "R",
        "ScheduledProcedureStepStartDateTime": "R",
        "InputReadinessState": "R",
        "ProcedureStepState": "R",
        "ProcedureStepProgressInformationSequence": "X",
        "ProcedureStepProgressInformationSequence>ProcedureStepCancellationDateTime": "X",
        "ProcedureStepProgressInformationSequence>ProcedureStepDiscontinuationReasonCodeSequence": (
            "X"
        ),
        "UnifiedProcedureStepPerformedProcedureSequence": "P",
        "UnifiedProcedureStepPerformedProcedureSequence>PerformedStationNameCodeSequence": "P",
        "UnifiedProcedureStepPerformedProcedureSequence>PerformedProcedureStepStartDateTime": "P",
        "UnifiedProcedureStepPerformedProcedureSequence>PerformedWorkitemCodeSequence": "P",
        "UnifiedProcedureStepPerformedProcedureSequence>PerformedProcedureStepEndDateTime": "P",
        "UnifiedProcedureStepPerformedProcedureSequence>OutputInformationSequence": "P",
    }
)
_MAY_BE_EMPTY_SEQUENCES = frozenset({"OutputInformationSequence"})

# Type 1 on N-CREATE (SCU/SCP 1/1), with their enumerated values where defined.
_CREATE_TYPE1: Mapping[str, frozenset[str] | None] = MappingProxyType(
    {
        "ScheduledProcedureStepPriority": frozenset({"HIGH", "MEDIUM", "LOW"}),
        "ProcedureStepLabel": None,
        "ScheduledProcedureStepStartDateTime": None,
        "InputReadinessState": frozenset({"READY", "UNAVAILABLE", "INCOMPLETE"}),
    }
)
# "Shall be empty" / "Shall be created empty" on N-CREATE.
_CREATE_EMPTY = (
    "TransactionUID",
    "ProcedureStepProgressInformationSequence",
    "UnifiedProcedureStepPerformedProcedureSequence",
)
# Type 2 on N-CREATE for the SCP: stored, possibly empty.
_CREATE_TYPE2 = (
    "ScheduledProcessingParametersSequence",
    "ScheduledStationNameCodeSequence",
    "ScheduledStationClassCodeSequence",
    "ScheduledStationGeographicLocationCodeSequence",
    "ScheduledWorkitemCodeSequence",
    "CommentsOnTheScheduledProcedureStep",
    "InputInformationSequence",
    "StudyInstanceUID",
    "PatientName",
    "PatientID",
    "IssuerOfPatientID",
)
# "Not Allowed" on N-SET.
_SET_NOT_ALLOWED = frozenset(
    {
        "SOPClassUID",
        "SOPInstanceUID",
        "PatientName",
        "PatientID",
        "IssuerOfPatientID",
        "IssuerOfPatientIDQualifiersSequence",
        "ReplacedProcedureStepSequence",
    }
)
_ASSIGNMENT_KEYS = ("ScheduledStationNameCodeSequence", "ScheduledHumanPerformersSequence")
_PROGRESS_KEYS = (
    "ProcedureStepProgress",
    "ProcedureStepProgressDescription",
    "ProcedureStepCommunicationsURISequence",
)
_UNSPECIFIED_REASON = ("110513", "DCM", "Discontinued for unspecified reason")

# --------------------------------------------------------------------------- results


@dataclass(frozen=True, slots=True)
class Event:
    """An N-EVENT-REPORT to send (PS3.4 CC.2.4): type, UPS and Event Information.

    ``ae_title`` is ``None`` for "every subscriber of the UPS"; a title sends
    it to that AE only (initial reports after a subscription, CC.2.4.3).
    """

    event_type: EventType
    iuid: str
    info: Dataset
    ae_title: str | None = None


@dataclass(frozen=True, slots=True)
class Transition:
    """The outcome of Change UPS State or Request UPS Cancel.

    ``status`` is 0 or a warning; ``dataset`` is the workitem to store (``None``
    when nothing changes); ``events`` are to be queued in the same transaction.
    """

    old_state: ProcedureStepState
    new_state: ProcedureStepState
    status: int
    dataset: Dataset | None
    events: tuple[Event, ...]


#: Request UPS Cancel has the same shape of outcome.
CancelOutcome = Transition


@dataclass(frozen=True, slots=True)
class Creation:
    """The outcome of N-CREATE: the workitem to store, status (0 or B300), events."""

    dataset: Dataset
    status: int
    events: tuple[Event, ...]


@dataclass(frozen=True, slots=True)
class Update:
    """The outcome of N-SET: the merged workitem to store and the events it causes."""

    dataset: Dataset
    status: int
    events: tuple[Event, ...]


# --------------------------------------------------------------------------- helpers


def format_dt(now: datetime) -> str:
    """A DT value (PS3.5 6.2) for ``now``, with its UTC offset when it has one."""
    text = now.strftime("%Y%m%d%H%M%S.%f")
    offset = now.strftime("%z")
    return text + offset


def state_of(workitem: Dataset) -> ProcedureStepState:
    """The Procedure Step State of a stored workitem."""
    return ProcedureStepState(str(workitem.get("ProcedureStepState", "")).strip())


def _has_value(ds: Dataset, keyword: str) -> bool:
    if keyword not in ds:
        return False
    elem = ds[keyword]
    if elem.VR == "SQ":
        return len(elem.value) > 0 or keyword in _MAY_BE_EMPTY_SEQUENCES
    value = elem.value
    return value is not None and str(value).strip() != ""


def _text(ds: Dataset, keyword: str) -> str:
    value = ds.get(keyword)
    return "" if value is None else str(value).strip()


def _iuid(ds: Dataset) -> str:
    return _text(ds, "SOPInstanceUID")


def _copy_keys(src: Dataset, dst: Dataset, keywords: tuple[str, ...]) -> None:
    for keyword in keywords:
        if keyword in src:
            dst.add(copy.deepcopy(src[keyword]))


# --------------------------------------------------------------------------- N-CREATE


def check_create(
    dataset: Dataset,
    *,
    iuid: str | None = None,
    now: datetime | None = None,
    default_worklist_label: str = "",
) -> Creation:
    """Validate an N-CREATE data set and complete it as the SCP (PS3.4 CC.2.5.3).

    ``iuid`` is the Affected SOP Instance UID of the request (stored as SOP
    Instance UID); ``now`` sets Scheduled Procedure Step Modification DateTime
    ("SCP shall use time of CREATE", Table CC.2.5-3).
    """
    state_elem = dataset.get("ProcedureStepState")
    if state_elem is None:
        raise _fail(0x0120, "Procedure Step State (0074,1000) missing")
    state = _text(dataset, "ProcedureStepState")
    if not state:
        raise _fail(0x0121, "Procedure Step State (0074,1000) empty")
    if state != State.SCHEDULED:
        raise _fail(0xC309)
    for keyword, allowed in _CREATE_TYPE1.items():
        if keyword not in dataset:
            raise _fail(0x0120, f"{keyword} missing")
        value = _text(dataset, keyword)
        if not value:
            raise _fail(0x0121, f"{keyword} empty")
        if allowed is not None and value not in allowed:
            raise _fail(0x0106, f"{keyword} {value!r} not allowed")
    ds = copy.deepcopy(dataset)
    status = 0
    for keyword in _CREATE_EMPTY:
        if _has_value(ds, keyword):
            status = UPSStatus.CREATED_WITH_MODIFICATIONS
        vr = "UI" if keyword == "TransactionUID" else "SQ"
        ds.add(DataElement(keyword, vr, None if vr == "UI" else Sequence([])))
    for keyword in _CREATE_TYPE2:
        if keyword not in ds:
            setattr(ds, keyword, Sequence([]) if keyword.endswith("Sequence") else None)
    if not _text(ds, "WorklistLabel"):
        ds.WorklistLabel = default_worklist_label
    ds.SOPClassUID = UPS_PUSH
    if iuid is not None:
        ds.SOPInstanceUID = iuid
    if not _iuid(ds):
        raise _fail(0x0120, "SOP Instance UID missing")
    if now is not None:
        ds.ScheduledProcedureStepModificationDateTime = format_dt(now)
    events = [Event(EventType.UPS_STATE_REPORT, _iuid(ds), state_report(ds))]
    if any(_has_value(ds, k) for k in _ASSIGNMENT_KEYS):
        events.append(Event(EventType.UPS_ASSIGNED, _iuid(ds), ups_assigned(ds)))
    return Creation(ds, int(status), tuple(events))


# --------------------------------------------------------------------------- N-SET


def check_set(
    current: Dataset | None,
    modification: Dataset,
    transaction_uid: str | None,
    *,
    now: datetime | None = None,
) -> Update:
    """Apply an N-SET to a stored workitem, or refuse it (PS3.4 CC.2.6.3, Table CC.2.6-1).

    ``transaction_uid`` is the Transaction UID (0008,1195) of the request
    (``None`` or empty when absent); it is never merged into the workitem.
    Sequences are replaced whole (CC.2.6.2: the SCU sends all items).
    """
    if current is None:
        raise _fail(0xC307)
    state = state_of(current)
    tuid = (transaction_uid or "").strip()
    if state in (State.COMPLETED, State.CANCELED):
        raise _fail(0xC300)
    if state == State.IN_PROGRESS and tuid != _text(current, "TransactionUID"):
        raise _fail(0xC301)
    if state == State.SCHEDULED and tuid:
        raise _fail(0xC310, "SCHEDULED UPS: N-SET must not carry a Transaction UID")
    merged = copy.deepcopy(current)
    for elem in modification:
        keyword = elem.keyword
        if int(elem.tag) == 0x00081195 or (elem.tag >> 16) == 0:
            continue
        if keyword == "ProcedureStepState":
            if _text(modification, keyword) == State.SCHEDULED:
                raise _fail(0xC303)
            raise _fail(0x0106, "Procedure Step State is set with N-ACTION")
        if keyword in _SET_NOT_ALLOWED and (keyword not in current or current[keyword] != elem):
            raise _fail(0x0106, f"{keyword} may not be set")
        merged.add(copy.deepcopy(elem))
    if now is not None:
        merged.ScheduledProcedureStepModificationDateTime = format_dt(now)
    return Update(merged, 0, set_events(current, merged))


def set_events(before: Dataset, after: Dataset) -> tuple[Event, ...]:
    """Events an attribute change causes (PS3.4 CC.2.4.3).

    Input Readiness State -> UPS State Report; Procedure Step Progress,
    Description or Communications URI -> UPS Progress Report; Scheduled Station
    Name Code Sequence or Scheduled Human Performers Sequence -> UPS Assigned.
    """
    iuid = _iuid(after)
    events: list[Event] = []
    if _text(before, "InputReadinessState") != _text(after, "InputReadinessState"):
        events.append(Event(EventType.UPS_STATE_REPORT, iuid, state_report(after)))
    if _progress_view(before) != _progress_view(after):
        events.append(Event(EventType.UPS_PROGRESS_REPORT, iuid, progress_report(after)))
    if any(before.get(k) != after.get(k) for k in _ASSIGNMENT_KEYS):
        events.append(Event(EventType.UPS_ASSIGNED, iuid, ups_assigned(after)))
    return tuple(events)


def _progress_view(ds: Dataset) -> list[tuple[object, ...]]:
    items = ds.get("ProcedureStepProgressInformationSequence") or []
    return [tuple(item.get(k) for k in _PROGRESS_KEYS) for item in items]


# --------------------------------------------------------------------------- final state


def final_state_problems(workitem: Dataset, target: ProcedureStepState) -> list[str]:
    """Keyword paths that lack a value for ``target`` (Table CC.2.5-3, Final State)."""
    needed = {"R", "P"} if target == State.COMPLETED else {"R", "X"}
    problems: list[str] = []
    for path, code in FINAL_STATE_REQUIREMENTS.items():
        if code not in needed:
            continue
        outer, _, inner = path.partition(">")
        if not inner:
            if not _has_value(workitem, outer):
                problems.append(path)
            continue
        items = workitem.get(outer) or []
        if not any(_has_value(item, inner) for item in items):
            problems.append(path)
    return problems


def check_final_state(workitem: Dataset, target: ProcedureStepState) -> None:
    """Raise C304 naming the first missing attributes when ``target`` is not allowed."""
    problems = final_state_problems(workitem, target)
    if problems:
        names = ", ".join(p.rpartition(">")[2] for p in problems)
        raise _fail(0xC304, f"missing: {names}")


# --------------------------------------------------------------------------- N-ACTION


def _request_for(
    state: ProcedureStepState | None, requested: ProcedureStepState, tuid: str, stored: str
) -> Request:
    correct = bool(tuid) if state == State.SCHEDULED else bool(tuid) and tuid == stored
    if requested == State.SCHEDULED:
        return Request.SCHEDULED
    if requested == State.IN_PROGRESS:
        return Request.IN_PROGRESS_CORRECT_UID if correct else Request.IN_PROGRESS_WRONG_UID
    if requested == State.COMPLETED:
        return Request.COMPLETED_CORRECT_UID if correct else Request.COMPLETED_WRONG_UID
    return Request.CANCELED_CORRECT_UID if correct else Request.CANCELED_WRONG_UID


def check_change_state(
    current: Dataset | None,
    requested_state: str,
    transaction_uid: str | None,
    *,
    now: datetime | None = None,
) -> Transition:
    """Decide an N-ACTION Change UPS State (PS3.4 CC.2.1.3, Tables CC.1.1-2, CC.2.1-2).

    On a change the returned workitem has the new Procedure Step State, the
    Transaction UID recorded on the claim, and (when canceling with ``now``
    given) the Procedure Step Cancellation DateTime filled as Table CC.2.5-3
    asks; the event is a UPS State Report to every subscriber.
    """
    try:
        requested = ProcedureStepState(requested_state.strip())
    except ValueError:
        raise _fail(0x0115, f"Procedure Step State {requested_state!r}") from None
    tuid = (transaction_uid or "").strip()
    if current is None:
        raise _fail(TRANSITIONS[(_request_for(None, requested, tuid, ""), None)].status)
    state = state_of(current)
    cell = TRANSITIONS[
        (_request_for(state, requested, tuid, _text(current, "TransactionUID")), state)
    ]
    if cell.new_state is None:
        if cell.status and 0xB000 <= cell.status <= 0xBFFF:
            return Transition(state, state, cell.status, None, ())
        raise _fail(cell.status)
    ds = copy.deepcopy(current)
    ds.ProcedureStepState = cell.new_state.value
    if cell.new_state == State.IN_PROGRESS:
        ds.TransactionUID = tuid
    if cell.new_state == State.CANCELED and now is not None:
        _fill_cancellation_datetime(ds, now)
    if cell.final_check:
        check_final_state(ds, cell.new_state)
    event = Event(EventType.UPS_STATE_REPORT, _iuid(ds), state_report(ds))
    return Transition(state, cell.new_state, 0, ds, (event,))


def _progress_item(ds: Dataset) -> Dataset:
    seq = ds.get("ProcedureStepProgressInformationSequence")
    if seq is None or len(seq) == 0:
        item = Dataset()
        ds.ProcedureStepProgressInformationSequence = Sequence([item])
        return item
    first: Dataset = seq[0]
    return first


def _fill_cancellation_datetime(ds: Dataset, now: datetime) -> None:
    item = _progress_item(ds)
    if not _has_value(item, "ProcedureStepCancellationDateTime"):
        item.ProcedureStepCancellationDateTime = format_dt(now)


def check_request_cancel(
    current: Dataset | None,
    *,
    requesting_ae: str,
    request: Dataset | None = None,
    now: datetime,
    scp_transaction_uid: str | None = None,
    performer_reachable: bool = True,
) -> CancelOutcome:
    """Decide an N-ACTION Request UPS Cancel (PS3.4 CC.2.2.3, Table CC.2.2-2).

    ``request`` is the N-ACTION information (Reason For Cancellation,
    Procedure Step Discontinuation Reason Code Sequence, Contact URI, Contact
    Display Name).  A SCHEDULED UPS is claimed with ``scp_transaction_uid``
    (generated when ``None``) and canceled at once; an IN PROGRESS one is left
    to its performer, who learns of it from the UPS Cancel Requested event -
    when ``performer_reachable`` is false (e.g. nobody is subscribed) the
    request fails with C312 instead.
    """
    info = request if request is not None else Dataset()
    if current is None:
        raise _fail(TRANSITIONS[(Request.REQUEST_CANCEL, None)].status)
    state = state_of(current)
    cell = TRANSITIONS[(Request.REQUEST_CANCEL, state)]
    if cell.status:
        if 0xB000 <= cell.status <= 0xBFFF:
            return Transition(state, state, cell.status, None, ())
        raise _fail(cell.status)
    iuid = _iuid(current)
    requested = Event(EventType.UPS_CANCEL_REQUESTED, iuid, cancel_requested(requesting_ae, info))
    if cell.new_state is None:
        if not performer_reachable:
            raise _fail(0xC312)
        return Transition(state, state, 0, None, (requested,))
    claimed = copy.deepcopy(current)
    claimed.ProcedureStepState = State.IN_PROGRESS.value
    claimed.TransactionUID = scp_transaction_uid or generate_uid()
    canceled = copy.deepcopy(claimed)
    canceled.ProcedureStepState = State.CANCELED.value
    item = _progress_item(canceled)
    _fill_cancellation_datetime(canceled, now)
    if "ReasonForCancellation" in info and _text(info, "ReasonForCancellation"):
        item.ReasonForCancellation = _text(info, "ReasonForCancellation")
    if not _has_value(item, "ProcedureStepDiscontinuationReasonCodeSequence"):
        codes = info.get("ProcedureStepDiscontinuationReasonCodeSequence")
        item.ProcedureStepDiscontinuationReasonCodeSequence = (
            copy.deepcopy(codes) if codes else Sequence([_code(*_UNSPECIFIED_REASON)])
        )
    _copy_keys(info, item, ("ContactURI", "ContactDisplayName"))
    check_final_state(canceled, State.CANCELED)
    events = (
        requested,
        Event(EventType.UPS_STATE_REPORT, iuid, state_report(claimed)),
        Event(EventType.UPS_STATE_REPORT, iuid, state_report(canceled)),
    )
    return Transition(state, State.CANCELED, 0, canceled, events)


def _code(value: str, scheme: str, meaning: str) -> Dataset:
    item = Dataset()
    item.CodeValue = value
    item.CodingSchemeDesignator = scheme
    item.CodeMeaning = meaning
    return item


# --------------------------------------------------------------------------- Table CC.2.4-1


def state_report(workitem: Dataset) -> Dataset:
    """Event Type 1, UPS State Report: state, input readiness, and the cancel reason."""
    info = Dataset()
    info.ProcedureStepState = _text(workitem, "ProcedureStepState")
    info.InputReadinessState = _text(workitem, "InputReadinessState")
    items = workitem.get("ProcedureStepProgressInformationSequence") or []
    if info.ProcedureStepState == State.CANCELED and items:
        _copy_keys(
            items[0],
            info,
            ("ReasonForCancellation", "ProcedureStepDiscontinuationReasonCodeSequence"),
        )
    return info


def cancel_requested(requesting_ae: str, request: Dataset | None = None) -> Dataset:
    """Event Type 2, UPS Cancel Requested: the requester and what it provided."""
    info = Dataset()
    info.RequestingAE = requesting_ae
    if request is not None:
        _copy_keys(
            request,
            info,
            (
                "ReasonForCancellation",
                "ProcedureStepDiscontinuationReasonCodeSequence",
                "ContactURI",
                "ContactDisplayName",
            ),
        )
    return info


def progress_report(workitem: Dataset) -> Dataset:
    """Event Type 3, UPS Progress Report: the Progress Information Sequence."""
    items = []
    for src in workitem.get("ProcedureStepProgressInformationSequence") or []:
        item = Dataset()
        _copy_keys(
            src,
            item,
            (
                "ProcedureStepProgress",
                "ProcedureStepProgressDescription",
                "ProcedureStepProgressParametersSequence",
                "ProcedureStepCommunicationsURISequence",
            ),
        )
        items.append(item)
    info = Dataset()
    info.ProcedureStepProgressInformationSequence = Sequence(items)
    return info


def scp_status_change(
    scp_status: str,
    subscription_list_status: str = "WARM START",
    ups_list_status: str = "WARM START",
) -> Dataset:
    """Event Type 4, SCP Status Change (CC.2.4.3).

    ``scp_status`` is RESTARTED or GOING DOWN; the list statuses are WARM
    START, or COLD STARTED (subscription list) / COLD START (UPS list) as the
    text of CC.2.4.3 spells them.
    """
    if scp_status not in ("RESTARTED", "GOING DOWN"):
        raise ValueError(f"SCP Status {scp_status!r}")
    info = Dataset()
    info.SCPStatus = scp_status
    info.SubscriptionListStatus = subscription_list_status
    info.UnifiedProcedureStepListStatus = ups_list_status
    return info


def ups_assigned(workitem: Dataset) -> Dataset:
    """Event Type 5, UPS Assigned: the scheduled station and human performers."""
    info = Dataset()
    _copy_keys(workitem, info, _ASSIGNMENT_KEYS)
    performers = workitem.get("ScheduledHumanPerformersSequence") or []
    if performers:
        _copy_keys(
            performers[0], info, ("HumanPerformerCodeSequence", "HumanPerformerOrganization")
        )
    return info
