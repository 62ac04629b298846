"""The attribute rules of a UPS workitem: N-CREATE, N-SET and the Final State (PS3.4 CC.2.5).

This module owns Table CC.2.5-3 as data (the Type 1 and Type 2 attributes of N-CREATE,
the "Not Allowed" ones of N-SET, the Final State requirements R, P, X of Table
CC.2.5-1) and the pure decisions for N-CREATE (:func:`check_create`, CC.2.5.3) and N-SET
(:func:`check_set`, CC.2.6.3). State changes are :mod:`ups.services.scp.upsstate`;
the conformance choices for both are listed there.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from types import MappingProxyType

from pydicom.datadict import tag_for_keyword
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from ups.dimse.errors import MAX_ERROR_COMMENT
from ups.dimse.status import Status
from ups.services.errors import ServiceError
from ups.services.scp.matching import TRANSACTION_UID
from ups.services.scp.reports import (
    ASSIGNMENT_KEYS,
    EventReport,
    progress_report,
    state_report,
    ups_assigned,
)
from ups.services.uids import UPS_PUSH, EventType, ProcedureStepState

__all__ = [
    "FINAL_STATE_REQUIREMENTS",
    "Creation",
    "Update",
    "check_create",
    "check_final_state",
    "check_set",
    "facts_comment",
    "fail",
    "final_state_problems",
    "format_dt",
    "has_value",
    "iuid_of",
    "set_events",
    "state_of",
    "text_of",
]


def facts_comment(*facts: str, prefix: str = "", sep: str = "; ") -> str:
    """An Error Comment (LO: 64 characters) of ``prefix`` and as many ``facts`` as fit.

    The facts that do not fit are counted (``+2 more``); a first fact too long on its
    own is cut with ``...``. The status carries the meaning, the comment the facts
    (tags, counts, values), so a comment never repeats the meaning.
    """
    text = prefix
    for index, fact in enumerate(facts):
        left = len(facts) - index - 1
        more = f" +{left} more" if left else ""
        joined = text + (sep if index else "") + fact
        if len(joined) + len(more) <= MAX_ERROR_COMMENT:
            text = joined
            continue
        if index == 0:
            room = MAX_ERROR_COMMENT - len(more) - 3
            return (joined[:room] + "..." + more)[:MAX_ERROR_COMMENT]
        return text + f" +{left + 1} more"
    return text[:MAX_ERROR_COMMENT]


def fail(status: Status, detail: str = "") -> ServiceError:
    """The refusal to raise: ``detail`` (the facts) as comment, none when there are none.

    The meaning is the status's own (the peer has the table); repeating it as comment
    would only cut it at 64 characters.
    """
    return ServiceError(status, facts_comment(detail) if detail else "")


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
_PROGRESS_KEYS = (
    "ProcedureStepProgress",
    "ProcedureStepProgressDescription",
    "ProcedureStepCommunicationsURISequence",
)


@dataclass(frozen=True, slots=True)
class Creation:
    """The outcome of N-CREATE: the workitem to store, status (0 or B300), events."""

    dataset: Dataset
    status: int
    events: tuple[EventReport, ...]


@dataclass(frozen=True, slots=True)
class Update:
    """The outcome of N-SET: the merged workitem to store and the events it causes."""

    dataset: Dataset
    status: int
    events: tuple[EventReport, ...]


# --------------------------------------------------------------------------- helpers


def format_dt(now: datetime) -> str:
    """A DT value (PS3.5 6.2) for ``now``, with its UTC offset when it has one."""
    text = now.strftime("%Y%m%d%H%M%S.%f")
    offset = now.strftime("%z")
    return text + offset


def state_of(workitem: Dataset) -> ProcedureStepState:
    """The Procedure Step State of a stored workitem."""
    return ProcedureStepState(str(workitem.get("ProcedureStepState", "")).strip())


def has_value(ds: Dataset, keyword: str) -> bool:
    if keyword not in ds:
        return False
    elem = ds[keyword]
    if elem.VR == "SQ":
        return len(elem.value) > 0 or keyword in _MAY_BE_EMPTY_SEQUENCES
    value = elem.value
    return value is not None and str(value).strip() != ""


def text_of(ds: Dataset, keyword: str) -> str:
    value = ds.get(keyword)
    return "" if value is None else str(value).strip()


def iuid_of(ds: Dataset) -> str:
    return text_of(ds, "SOPInstanceUID")


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
        raise fail(Status.MISSING_ATTRIBUTE, "Procedure Step State (0074,1000) missing")
    state = text_of(dataset, "ProcedureStepState")
    if not state:
        raise fail(Status.MISSING_ATTRIBUTE_VALUE, "Procedure Step State (0074,1000) empty")
    if state != ProcedureStepState.SCHEDULED:
        raise fail(Status.UPS_CREATE_NOT_SCHEDULED, f"(0074,1000) is {state!r}")
    for keyword, allowed in _CREATE_TYPE1.items():
        if keyword not in dataset:
            raise fail(Status.MISSING_ATTRIBUTE, f"{keyword} missing")
        value = text_of(dataset, keyword)
        if not value:
            raise fail(Status.MISSING_ATTRIBUTE_VALUE, f"{keyword} empty")
        if allowed is not None and value not in allowed:
            raise fail(Status.INVALID_ATTRIBUTE_VALUE, f"{keyword} {value!r} not allowed")
    ds = copy.deepcopy(dataset)
    status = Status.SUCCESS
    for keyword in _CREATE_EMPTY:
        if has_value(ds, keyword):
            status = Status.UPS_CREATED_WITH_MODIFICATIONS
        vr = "UI" if keyword == "TransactionUID" else "SQ"
        ds.add(DataElement(keyword, vr, None if vr == "UI" else Sequence([])))
    for keyword in _CREATE_TYPE2:
        if keyword not in ds:
            setattr(ds, keyword, Sequence([]) if keyword.endswith("Sequence") else None)
    if not text_of(ds, "WorklistLabel"):
        ds.WorklistLabel = default_worklist_label
    ds.SOPClassUID = UPS_PUSH
    if iuid is not None:
        ds.SOPInstanceUID = iuid
    if not iuid_of(ds):
        raise fail(Status.MISSING_ATTRIBUTE, "SOP Instance UID missing")
    if now is not None:
        ds.ScheduledProcedureStepModificationDateTime = format_dt(now)
    events = [EventReport(EventType.UPS_STATE_REPORT, iuid_of(ds), state_report(ds))]
    if any(has_value(ds, k) for k in ASSIGNMENT_KEYS):
        events.append(EventReport(EventType.UPS_ASSIGNED, iuid_of(ds), ups_assigned(ds)))
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
        raise fail(Status.UPS_NO_SUCH_INSTANCE)
    state = state_of(current)
    tuid = (transaction_uid or "").strip()
    if state in (ProcedureStepState.COMPLETED, ProcedureStepState.CANCELED):
        raise fail(Status.UPS_MAY_NO_LONGER_BE_UPDATED, f"the UPS is {state.value}")
    if state == ProcedureStepState.IN_PROGRESS and tuid != text_of(current, "TransactionUID"):
        raise fail(Status.UPS_WRONG_TRANSACTION_UID)
    if state == ProcedureStepState.SCHEDULED and tuid:
        raise fail(
            Status.UPS_NOT_IN_PROGRESS, "SCHEDULED UPS: N-SET must not carry a Transaction UID"
        )
    merged = copy.deepcopy(current)
    for elem in modification:
        keyword = elem.keyword
        if int(elem.tag) == TRANSACTION_UID or elem.tag.group == 0:  # never the command
            continue
        if keyword == "ProcedureStepState":
            if text_of(modification, keyword) == ProcedureStepState.SCHEDULED:
                raise fail(Status.UPS_SCHEDULED_ONLY_VIA_CREATE)
            raise fail(Status.INVALID_ATTRIBUTE_VALUE, "Procedure Step State is set with N-ACTION")
        if keyword in _SET_NOT_ALLOWED and (keyword not in current or current[keyword] != elem):
            raise fail(Status.INVALID_ATTRIBUTE_VALUE, f"{keyword} may not be set")
        merged.add(copy.deepcopy(elem))
    if now is not None:
        merged.ScheduledProcedureStepModificationDateTime = format_dt(now)
    return Update(merged, 0, set_events(current, merged))


def set_events(before: Dataset, after: Dataset) -> tuple[EventReport, ...]:
    """Events an attribute change causes (PS3.4 CC.2.4.3).

    Input Readiness State -> UPS State Report; Procedure Step Progress,
    Description or Communications URI -> UPS Progress Report; Scheduled Station
    Name Code Sequence or Scheduled Human Performers Sequence -> UPS Assigned.
    """
    iuid = iuid_of(after)
    events: list[EventReport] = []
    if text_of(before, "InputReadinessState") != text_of(after, "InputReadinessState"):
        events.append(EventReport(EventType.UPS_STATE_REPORT, iuid, state_report(after)))
    if _progress_view(before) != _progress_view(after):
        events.append(EventReport(EventType.UPS_PROGRESS_REPORT, iuid, progress_report(after)))
    if any(before.get(k) != after.get(k) for k in ASSIGNMENT_KEYS):
        events.append(EventReport(EventType.UPS_ASSIGNED, iuid, ups_assigned(after)))
    return tuple(events)


def _progress_view(ds: Dataset) -> list[tuple[object, ...]]:
    items = ds.get("ProcedureStepProgressInformationSequence") or []
    return [tuple(item.get(k) for k in _PROGRESS_KEYS) for item in items]


# --------------------------------------------------------------------------- final state


def final_state_problems(workitem: Dataset, target: ProcedureStepState) -> list[str]:
    """Keyword paths that lack a value for ``target`` (Table CC.2.5-3, Final State)."""
    needed = {"R", "P"} if target == ProcedureStepState.COMPLETED else {"R", "X"}
    problems: list[str] = []
    for path, code in FINAL_STATE_REQUIREMENTS.items():
        if code not in needed:
            continue
        outer, _, inner = path.partition(">")
        if not inner:
            if not has_value(workitem, outer):
                problems.append(path)
            continue
        items = workitem.get(outer) or []
        if not any(has_value(item, inner) for item in items):
            problems.append(path)
    return problems


def check_final_state(workitem: Dataset, target: ProcedureStepState) -> None:
    """Raise C304 naming the missing attributes by tag when ``target`` is not allowed.

    An attribute inside a sequence that is missing altogether is not named again: the
    sequence is. E.g. ``missing 2: (0074,1216) (0040,4018)`` or, when the sequence is
    there but lacks some, ``missing 1: (0074,1216)>(0040,4050)``.
    """
    problems = final_state_problems(workitem, target)
    if problems:
        outer = {p for p in problems if ">" not in p}
        inner = [p for p in problems if ">" in p and p.partition(">")[0] not in outer]
        shown = [_tag_path(p) for p in [*sorted(outer, key=problems.index), *inner]]
        raise fail(
            Status.UPS_FINAL_STATE_NOT_MET,
            facts_comment(*shown, prefix=f"missing {len(shown)}: ", sep=" "),
        )


def _tag_path(path: str) -> str:
    return ">".join(_tag_text(keyword) for keyword in path.split(">"))


def _tag_text(keyword: str) -> str:
    tag = tag_for_keyword(keyword)
    return keyword if tag is None else f"({tag >> 16:04X},{tag & 0xFFFF:04X})"
