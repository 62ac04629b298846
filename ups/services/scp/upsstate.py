"""The UPS state machine of PS3.4 Annex CC: Table CC.1.1-2 as data, and pure decisions.

This module and :mod:`ups.services.scp.attributes` own the UPS rules:

* the Unified Procedure Step State Transition Table (PS3.4 Table CC.1.1-2) as a
  literal table, :data:`TRANSITIONS`, that a test walks cell by cell;
* which status of Tables CC.2.1-2 (Change UPS State), CC.2.2-2 (Request UPS
  Cancel), CC.2.3-3 (Subscribe), CC.2.5-4 (N-CREATE), CC.2.6-1 (N-SET) or PS3.7
  Annex C answers each refusal (named by ``ups.dimse.status.Status``);
* the decisions for Change UPS State (:func:`check_change_state`, CC.2.1.3) and
  Request UPS Cancel (:func:`check_request_cancel`, CC.2.2.3) here; those for N-CREATE
  and N-SET and the Final State requirements of Table CC.2.5-3 in ``attributes``;
* the events each change causes (CC.2.4.3); what they carry (Table CC.2.4-1) is
  :mod:`ups.services.scp.reports`.

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
from enum import Enum
from types import MappingProxyType

from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import generate_uid

from ups.dimse.status import Status, StatusCategory
from ups.services.scp.attributes import (
    check_final_state,
    fail,
    format_dt,
    has_value,
    iuid_of,
    state_of,
    text_of,
)
from ups.services.scp.reports import EventReport, cancel_requested, copy_keys, state_report
from ups.services.uids import EventType, ProcedureStepState

__all__ = [
    "TRANSITIONS",
    "CancelOutcome",
    "Cell",
    "Transition",
    "TransitionRequest",
    "check_change_state",
    "check_request_cancel",
]

_WARNING = StatusCategory.WARNING


# --------------------------------------------------------------------------- Table CC.1.1-2


class TransitionRequest(Enum):
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

    status: Status = Status.SUCCESS
    new_state: ProcedureStepState | None = None
    final_check: bool = False


_E = Cell
_SC, _IP, _CO, _CA = (
    ProcedureStepState.SCHEDULED,
    ProcedureStepState.IN_PROGRESS,
    ProcedureStepState.COMPLETED,
    ProcedureStepState.CANCELED,
)

# None = "the SOP Instance does not exist".  Columns: does not exist, SCHEDULED,
# IN PROGRESS, COMPLETED, CANCELED.
TRANSITIONS: Mapping[tuple[TransitionRequest, ProcedureStepState | None], Cell] = MappingProxyType(
    {
        (TransitionRequest.CREATE, None): Cell(new_state=_SC),
        (TransitionRequest.CREATE, _SC): _E(Status.DUPLICATE_SOP_INSTANCE),
        (TransitionRequest.CREATE, _IP): _E(Status.DUPLICATE_SOP_INSTANCE),
        (TransitionRequest.CREATE, _CO): _E(Status.DUPLICATE_SOP_INSTANCE),
        (TransitionRequest.CREATE, _CA): _E(Status.DUPLICATE_SOP_INSTANCE),
        (TransitionRequest.IN_PROGRESS_CORRECT_UID, None): _E(Status.UPS_NO_SUCH_INSTANCE),
        (TransitionRequest.IN_PROGRESS_CORRECT_UID, _SC): Cell(new_state=_IP),
        (TransitionRequest.IN_PROGRESS_CORRECT_UID, _IP): _E(Status.UPS_ALREADY_IN_PROGRESS),
        (TransitionRequest.IN_PROGRESS_CORRECT_UID, _CO): _E(Status.UPS_MAY_NO_LONGER_BE_UPDATED),
        (TransitionRequest.IN_PROGRESS_CORRECT_UID, _CA): _E(Status.UPS_MAY_NO_LONGER_BE_UPDATED),
        (TransitionRequest.IN_PROGRESS_WRONG_UID, None): _E(Status.UPS_NO_SUCH_INSTANCE),
        (TransitionRequest.IN_PROGRESS_WRONG_UID, _SC): _E(Status.UPS_WRONG_TRANSACTION_UID),
        (TransitionRequest.IN_PROGRESS_WRONG_UID, _IP): _E(Status.UPS_WRONG_TRANSACTION_UID),
        (TransitionRequest.IN_PROGRESS_WRONG_UID, _CO): _E(Status.UPS_WRONG_TRANSACTION_UID),
        (TransitionRequest.IN_PROGRESS_WRONG_UID, _CA): _E(Status.UPS_WRONG_TRANSACTION_UID),
        (TransitionRequest.SCHEDULED, None): _E(Status.UPS_NO_SUCH_INSTANCE),
        (TransitionRequest.SCHEDULED, _SC): _E(Status.UPS_SCHEDULED_ONLY_VIA_CREATE),
        (TransitionRequest.SCHEDULED, _IP): _E(Status.UPS_SCHEDULED_ONLY_VIA_CREATE),
        (TransitionRequest.SCHEDULED, _CO): _E(Status.UPS_SCHEDULED_ONLY_VIA_CREATE),
        (TransitionRequest.SCHEDULED, _CA): _E(Status.UPS_SCHEDULED_ONLY_VIA_CREATE),
        (TransitionRequest.COMPLETED_CORRECT_UID, None): _E(Status.UPS_NO_SUCH_INSTANCE),
        (TransitionRequest.COMPLETED_CORRECT_UID, _SC): _E(Status.UPS_NOT_IN_PROGRESS),
        (TransitionRequest.COMPLETED_CORRECT_UID, _IP): Cell(new_state=_CO, final_check=True),
        (TransitionRequest.COMPLETED_CORRECT_UID, _CO): _E(Status.UPS_ALREADY_COMPLETED),
        (TransitionRequest.COMPLETED_CORRECT_UID, _CA): _E(Status.UPS_MAY_NO_LONGER_BE_UPDATED),
        (TransitionRequest.COMPLETED_WRONG_UID, None): _E(Status.UPS_NO_SUCH_INSTANCE),
        (TransitionRequest.COMPLETED_WRONG_UID, _SC): _E(Status.UPS_WRONG_TRANSACTION_UID),
        (TransitionRequest.COMPLETED_WRONG_UID, _IP): _E(Status.UPS_WRONG_TRANSACTION_UID),
        (TransitionRequest.COMPLETED_WRONG_UID, _CO): _E(Status.UPS_WRONG_TRANSACTION_UID),
        (TransitionRequest.COMPLETED_WRONG_UID, _CA): _E(Status.UPS_WRONG_TRANSACTION_UID),
        (TransitionRequest.REQUEST_CANCEL, None): _E(Status.UPS_NO_SUCH_INSTANCE),
        (TransitionRequest.REQUEST_CANCEL, _SC): Cell(new_state=_CA, final_check=True),
        (TransitionRequest.REQUEST_CANCEL, _IP): Cell(new_state=None),
        (TransitionRequest.REQUEST_CANCEL, _CO): _E(Status.UPS_CANCEL_ALREADY_COMPLETED),
        (TransitionRequest.REQUEST_CANCEL, _CA): _E(Status.UPS_ALREADY_CANCELED),
        (TransitionRequest.CANCELED_CORRECT_UID, None): _E(Status.UPS_NO_SUCH_INSTANCE),
        (TransitionRequest.CANCELED_CORRECT_UID, _SC): _E(Status.UPS_NOT_IN_PROGRESS),
        (TransitionRequest.CANCELED_CORRECT_UID, _IP): Cell(new_state=_CA, final_check=True),
        (TransitionRequest.CANCELED_CORRECT_UID, _CO): _E(Status.UPS_MAY_NO_LONGER_BE_UPDATED),
        (TransitionRequest.CANCELED_CORRECT_UID, _CA): _E(Status.UPS_ALREADY_CANCELED),
        (TransitionRequest.CANCELED_WRONG_UID, None): _E(Status.UPS_NO_SUCH_INSTANCE),
        (TransitionRequest.CANCELED_WRONG_UID, _SC): _E(Status.UPS_WRONG_TRANSACTION_UID),
        (TransitionRequest.CANCELED_WRONG_UID, _IP): _E(Status.UPS_WRONG_TRANSACTION_UID),
        (TransitionRequest.CANCELED_WRONG_UID, _CO): _E(Status.UPS_WRONG_TRANSACTION_UID),
        (TransitionRequest.CANCELED_WRONG_UID, _CA): _E(Status.UPS_WRONG_TRANSACTION_UID),
    }
)

_UNSPECIFIED_REASON = ("110513", "DCM", "Discontinued for unspecified reason")


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
    events: tuple[EventReport, ...]


#: Request UPS Cancel has the same shape of outcome.
CancelOutcome = Transition


# --------------------------------------------------------------------------- N-ACTION


def _request_for(
    state: ProcedureStepState | None, requested: ProcedureStepState, tuid: str, stored: str
) -> TransitionRequest:
    correct = bool(tuid) if state == ProcedureStepState.SCHEDULED else bool(tuid) and tuid == stored
    if requested == ProcedureStepState.SCHEDULED:
        return TransitionRequest.SCHEDULED
    if requested == ProcedureStepState.IN_PROGRESS:
        return (
            TransitionRequest.IN_PROGRESS_CORRECT_UID
            if correct
            else TransitionRequest.IN_PROGRESS_WRONG_UID
        )
    if requested == ProcedureStepState.COMPLETED:
        return (
            TransitionRequest.COMPLETED_CORRECT_UID
            if correct
            else TransitionRequest.COMPLETED_WRONG_UID
        )
    return (
        TransitionRequest.CANCELED_CORRECT_UID if correct else TransitionRequest.CANCELED_WRONG_UID
    )


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
        raise fail(
            Status.INVALID_ARGUMENT_VALUE, f"Procedure Step State {requested_state!r}"
        ) from None
    tuid = (transaction_uid or "").strip()
    if current is None:
        raise fail(TRANSITIONS[(_request_for(None, requested, tuid, ""), None)].status)
    state = state_of(current)
    cell = TRANSITIONS[
        (_request_for(state, requested, tuid, text_of(current, "TransactionUID")), state)
    ]
    if cell.new_state is None:
        if cell.status.category is _WARNING:
            return Transition(state, state, cell.status, None, ())
        raise fail(cell.status, _state_fact(cell.status, state))
    ds = copy.deepcopy(current)
    ds.ProcedureStepState = cell.new_state.value
    if cell.new_state == ProcedureStepState.IN_PROGRESS:
        ds.TransactionUID = tuid
    if cell.new_state == ProcedureStepState.CANCELED and now is not None:
        _fill_cancellation_datetime(ds, now)
    if cell.final_check:
        check_final_state(ds, cell.new_state)
    event = EventReport(EventType.UPS_STATE_REPORT, iuid_of(ds), state_report(ds))
    return Transition(state, cell.new_state, 0, ds, (event,))


def _state_fact(status: Status, state: ProcedureStepState) -> str:
    """The state the UPS is in, where the status's meaning does not already say it."""
    return f"the UPS is {state.value}" if status == Status.UPS_MAY_NO_LONGER_BE_UPDATED else ""


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
    if not has_value(item, "ProcedureStepCancellationDateTime"):
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
        raise fail(TRANSITIONS[(TransitionRequest.REQUEST_CANCEL, None)].status)
    state = state_of(current)
    cell = TRANSITIONS[(TransitionRequest.REQUEST_CANCEL, state)]
    if cell.status:
        if cell.status.category is _WARNING:
            return Transition(state, state, cell.status, None, ())
        raise fail(cell.status)
    iuid = iuid_of(current)
    requested = EventReport(
        EventType.UPS_CANCEL_REQUESTED, iuid, cancel_requested(requesting_ae, info)
    )
    if cell.new_state is None:
        if not performer_reachable:
            raise fail(Status.UPS_PERFORMER_UNREACHABLE)
        return Transition(state, state, 0, None, (requested,))
    claimed = copy.deepcopy(current)
    claimed.ProcedureStepState = ProcedureStepState.IN_PROGRESS.value
    claimed.TransactionUID = scp_transaction_uid or generate_uid()
    canceled = copy.deepcopy(claimed)
    canceled.ProcedureStepState = ProcedureStepState.CANCELED.value
    item = _progress_item(canceled)
    _fill_cancellation_datetime(canceled, now)
    if "ReasonForCancellation" in info and text_of(info, "ReasonForCancellation"):
        item.ReasonForCancellation = text_of(info, "ReasonForCancellation")
    if not has_value(item, "ProcedureStepDiscontinuationReasonCodeSequence"):
        codes = info.get("ProcedureStepDiscontinuationReasonCodeSequence")
        item.ProcedureStepDiscontinuationReasonCodeSequence = (
            copy.deepcopy(codes) if codes else Sequence([_code(*_UNSPECIFIED_REASON)])
        )
    copy_keys(info, item, ("ContactURI", "ContactDisplayName"))
    check_final_state(canceled, ProcedureStepState.CANCELED)
    events = (
        requested,
        EventReport(EventType.UPS_STATE_REPORT, iuid, state_report(claimed)),
        EventReport(EventType.UPS_STATE_REPORT, iuid, state_report(canceled)),
    )
    return Transition(state, ProcedureStepState.CANCELED, 0, canceled, events)


def _code(value: str, scheme: str, meaning: str) -> Dataset:
    item = Dataset()
    item.CodeValue = value
    item.CodingSchemeDesignator = scheme
    item.CodeMeaning = meaning
    return item
