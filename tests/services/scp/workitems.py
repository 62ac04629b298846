"""Workitems and requests the UPS rule tests share (PS3.4 Annex CC)."""

from __future__ import annotations

from datetime import UTC, datetime

from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from ups.services.errors import ServiceError
from ups.services.scp.attributes import check_create

NOW = datetime(2024, 1, 5, 10, 30, tzinfo=UTC)
TUID = "1.2.826.0.1.3680043.2.1143.1"
OTHER = "1.2.826.0.1.3680043.2.1143.2"


def code(value: str) -> Dataset:
    item = Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = value, "99L", value
    return item


def request(**kw: object) -> Dataset:
    ds = Dataset()
    ds.ProcedureStepState = "SCHEDULED"
    ds.ScheduledProcedureStepPriority = "MEDIUM"
    ds.ProcedureStepLabel = "Label"
    ds.ScheduledProcedureStepStartDateTime = "20240105100000"
    ds.InputReadinessState = "READY"
    for key, value in kw.items():
        setattr(ds, key, value)
    return ds


def workitem(state: str = "SCHEDULED", tuid: str = "") -> Dataset:
    ds = check_create(request(), iuid="1.2.3", now=NOW).dataset
    ds.ProcedureStepState = state
    ds.TransactionUID = tuid
    return ds


def completable() -> Dataset:
    ds = workitem("IN PROGRESS", TUID)
    done = Dataset()
    done.PerformedStationNameCodeSequence = Sequence([code("ST")])
    done.PerformedProcedureStepStartDateTime = "20240105103000"
    done.PerformedProcedureStepEndDateTime = "20240105113000"
    done.PerformedWorkitemCodeSequence = Sequence([code("W")])
    done.OutputInformationSequence = Sequence([])
    ds.UnifiedProcedureStepPerformedProcedureSequence = Sequence([done])
    return ds


def cancelable() -> Dataset:
    ds = workitem("IN PROGRESS", TUID)
    item = Dataset()
    item.ProcedureStepDiscontinuationReasonCodeSequence = Sequence([code("R")])
    ds.ProcedureStepProgressInformationSequence = Sequence([item])
    return ds


def status_of(fn: object) -> int:
    assert callable(fn)
    try:
        outcome = fn()
    except ServiceError as err:
        return err.status
    return int(outcome.status)
