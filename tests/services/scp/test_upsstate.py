"""The UPS state machine and attribute rules (PS3.4 Annex CC)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from ups.services.errors import ServiceError
from ups.services.scp.upsstate import (
    STATUS_MEANINGS,
    TRANSITIONS,
    Request,
    UPSStatus,
    cancel_requested,
    check_change_state,
    check_create,
    check_request_cancel,
    check_set,
    final_state_problems,
    progress_report,
    scp_status_change,
    state_report,
    ups_assigned,
)
from ups.services.uids import UPS_PUSH, EventType

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


# Table CC.1.1-2 transcribed independently of the module: row -> statuses for the
# columns (does not exist, SCHEDULED, IN PROGRESS, COMPLETED, CANCELED); "ok" is
# the state change.
TABLE = {
    ("IN PROGRESS", True): [0xC307, "ok", 0xC302, 0xC300, 0xC300],
    ("IN PROGRESS", False): [0xC307, 0xC301, 0xC301, 0xC301, 0xC301],
    ("SCHEDULED", True): [0xC307, 0xC303, 0xC303, 0xC303, 0xC303],
    ("COMPLETED", True): [0xC307, 0xC310, "ok", 0xB306, 0xC300],
    ("COMPLETED", False): [0xC307, 0xC301, 0xC301, 0xC301, 0xC301],
    ("CANCELED", True): [0xC307, 0xC310, "ok", 0xC300, 0xB304],
    ("CANCELED", False): [0xC307, 0xC301, 0xC301, 0xC301, 0xC301],
}
COLUMNS = [None, "SCHEDULED", "IN PROGRESS", "COMPLETED", "CANCELED"]


@pytest.mark.parametrize(("row", "expected"), TABLE.items(), ids=str)
def test_change_state_table(row: tuple[str, bool], expected: list[object]) -> None:
    requested, correct = row
    for column, want in zip(COLUMNS, expected, strict=True):
        if column is None:
            current = None
        elif column == "IN PROGRESS" and requested == "COMPLETED":
            current = completable()
        elif column == "IN PROGRESS" and requested == "CANCELED":
            current = cancelable()
        else:
            current = workitem(column, "" if column == "SCHEDULED" else TUID)
        tuid = TUID if correct else (None if column == "SCHEDULED" else OTHER)
        try:
            outcome = check_change_state(current, requested, tuid, now=NOW)
        except ServiceError as err:
            assert err.status == want, (row, column)
            continue
        if want == "ok":
            assert outcome.status == 0 and outcome.new_state == requested
            assert outcome.dataset is not None
            assert outcome.dataset.ProcedureStepState == requested
            assert [e.event_type for e in outcome.events] == [EventType.UPS_STATE_REPORT]
        else:
            assert outcome.status == want and outcome.dataset is None and not outcome.events


def test_table_is_complete() -> None:
    assert len(TRANSITIONS) == len(Request) * len(COLUMNS)


def test_claim_records_transaction_uid() -> None:
    outcome = check_change_state(workitem(), "IN PROGRESS", TUID)
    assert outcome.dataset is not None and outcome.dataset.TransactionUID == TUID
    # the loser of a race presents another UID: C301 (CC.2.1.2 note 2)
    assert status_of(lambda: check_change_state(outcome.dataset, "IN PROGRESS", OTHER)) == 0xC301


def test_invalid_requested_state() -> None:
    assert status_of(lambda: check_change_state(workitem(), "DONE", TUID)) == 0x0115


def test_final_state_requirements() -> None:
    bare = workitem("IN PROGRESS", TUID)
    assert status_of(lambda: check_change_state(bare, "COMPLETED", TUID)) == 0xC304
    assert status_of(lambda: check_change_state(bare, "CANCELED", TUID, now=NOW)) == 0xC304
    problems = final_state_problems(bare, "COMPLETED")  # type: ignore[arg-type]
    assert "UnifiedProcedureStepPerformedProcedureSequence" in problems
    outcome = check_change_state(cancelable(), "CANCELED", TUID, now=NOW)
    assert outcome.dataset is not None
    item = outcome.dataset.ProcedureStepProgressInformationSequence[0]
    assert item.ProcedureStepCancellationDateTime.startswith("20240105103000")


def test_create() -> None:
    performer = Dataset()
    performer.HumanPerformerCodeSequence = Sequence([code("U")])
    created = check_create(
        request(ScheduledHumanPerformersSequence=Sequence([performer])),
        iuid="1.2.3",
        now=NOW,
        default_worklist_label="WL",
    )
    ds = created.dataset
    assert created.status == 0
    assert ds.SOPClassUID == UPS_PUSH and ds.SOPInstanceUID == "1.2.3"
    assert ds.WorklistLabel == "WL"
    assert ds.ScheduledProcedureStepModificationDateTime.startswith("20240105103000")
    assert len(ds.UnifiedProcedureStepPerformedProcedureSequence) == 0
    assert [e.event_type for e in created.events] == [
        EventType.UPS_STATE_REPORT,
        EventType.UPS_ASSIGNED,
    ]
    assert created.events[0].info.ProcedureStepState == "SCHEDULED"


@pytest.mark.parametrize(
    ("change", "status"),
    [
        ({"ProcedureStepState": "IN PROGRESS"}, 0xC309),
        ({"ProcedureStepState": ""}, 0x0121),
        ({"ProcedureStepLabel": ""}, 0x0121),
        ({"ScheduledProcedureStepPriority": "URGENT"}, 0x0106),
        ({"InputReadinessState": "MAYBE"}, 0x0106),
    ],
)
def test_create_refused(change: dict[str, str], status: int) -> None:
    assert status_of(lambda: check_create(request(**change), iuid="1.2.3")) == status


def test_create_missing_attribute() -> None:
    ds = request()
    del ds.ScheduledProcedureStepStartDateTime
    assert status_of(lambda: check_create(ds, iuid="1.2.3")) == 0x0120
    ds = request()
    del ds.ProcedureStepState
    assert status_of(lambda: check_create(ds, iuid="1.2.3")) == 0x0120


def test_create_with_modifications() -> None:
    created = check_create(request(TransactionUID=TUID), iuid="1.2.3")
    assert created.status == UPSStatus.CREATED_WITH_MODIFICATIONS
    assert not created.dataset.TransactionUID


def test_set() -> None:
    mod = Dataset()
    mod.ProcedureStepLabel = "New"
    mod.TransactionUID = TUID
    updated = check_set(workitem("IN PROGRESS", TUID), mod, TUID, now=NOW)
    assert updated.dataset.ProcedureStepLabel == "New"
    assert updated.dataset.TransactionUID == TUID
    assert updated.events == ()
    del mod.TransactionUID
    assert check_set(workitem(), mod, None).dataset.ProcedureStepLabel == "New"


@pytest.mark.parametrize(
    ("state", "tuid", "keyword", "value", "status"),
    [
        (None, None, "ProcedureStepLabel", "x", 0xC307),
        ("COMPLETED", TUID, "ProcedureStepLabel", "x", 0xC300),
        ("CANCELED", TUID, "ProcedureStepLabel", "x", 0xC300),
        ("IN PROGRESS", OTHER, "ProcedureStepLabel", "x", 0xC301),
        ("IN PROGRESS", None, "ProcedureStepLabel", "x", 0xC301),
        ("SCHEDULED", TUID, "ProcedureStepLabel", "x", 0xC310),
        ("SCHEDULED", None, "ProcedureStepState", "SCHEDULED", 0xC303),
        ("SCHEDULED", None, "ProcedureStepState", "COMPLETED", 0x0106),
        ("SCHEDULED", None, "SOPInstanceUID", "1.2.4", 0x0106),
    ],
)
def test_set_refused(
    state: str | None, tuid: str | None, keyword: str, value: str, status: int
) -> None:
    current = None if state is None else workitem(state, "" if state == "SCHEDULED" else TUID)
    mod = Dataset()
    setattr(mod, keyword, value)
    assert status_of(lambda: check_set(current, mod, tuid)) == status


def test_set_events() -> None:
    mod = Dataset()
    mod.InputReadinessState = "INCOMPLETE"
    progress = Dataset()
    progress.ProcedureStepProgress = "50"
    mod.ProcedureStepProgressInformationSequence = Sequence([progress])
    mod.ScheduledStationNameCodeSequence = Sequence([code("S1")])
    updated = check_set(workitem("IN PROGRESS", TUID), mod, TUID)
    kinds = [e.event_type for e in updated.events]
    assert kinds == [
        EventType.UPS_STATE_REPORT,
        EventType.UPS_PROGRESS_REPORT,
        EventType.UPS_ASSIGNED,
    ]
    assert (
        updated.events[1].info.ProcedureStepProgressInformationSequence[0].ProcedureStepProgress
        == 50
    )


def test_request_cancel_scheduled() -> None:
    info = Dataset()
    info.ReasonForCancellation = "wrong patient"
    info.ContactDisplayName = "Dr X"
    outcome = check_request_cancel(workitem(), requesting_ae="REQ", request=info, now=NOW)
    assert outcome.new_state == "CANCELED" and outcome.dataset is not None
    assert [e.event_type for e in outcome.events] == [
        EventType.UPS_CANCEL_REQUESTED,
        EventType.UPS_STATE_REPORT,
        EventType.UPS_STATE_REPORT,
    ]
    assert outcome.events[1].info.ProcedureStepState == "IN PROGRESS"
    report = outcome.events[2].info
    assert report.ProcedureStepState == "CANCELED"
    assert report.ReasonForCancellation == "wrong patient"
    assert report.ProcedureStepDiscontinuationReasonCodeSequence[0].CodeValue == "110513"
    assert outcome.dataset.TransactionUID
    assert outcome.events[0].info.RequestingAE == "REQ"


def test_request_cancel_other_states() -> None:
    outcome = check_request_cancel(workitem("IN PROGRESS", TUID), requesting_ae="REQ", now=NOW)
    assert outcome.dataset is None
    assert [e.event_type for e in outcome.events] == [EventType.UPS_CANCEL_REQUESTED]
    unreachable = workitem("IN PROGRESS", TUID)
    assert (
        status_of(
            lambda: check_request_cancel(
                unreachable, requesting_ae="R", now=NOW, performer_reachable=False
            )
        )
        == 0xC312
    )
    assert status_of(lambda: check_request_cancel(None, requesting_ae="R", now=NOW)) == 0xC307
    done = workitem("COMPLETED", TUID)
    assert status_of(lambda: check_request_cancel(done, requesting_ae="R", now=NOW)) == 0xC311
    gone = workitem("CANCELED", TUID)
    assert status_of(lambda: check_request_cancel(gone, requesting_ae="R", now=NOW)) == 0xB304


def test_event_builders() -> None:
    ds = workitem()
    assert state_report(ds).InputReadinessState == "READY"
    assert "ReasonForCancellation" not in state_report(ds)
    assert cancel_requested("AE").RequestingAE == "AE"
    assert len(progress_report(ds).ProcedureStepProgressInformationSequence) == 0
    assert "ScheduledStationNameCodeSequence" in ups_assigned(ds)
    change = scp_status_change("RESTARTED", "COLD STARTED", "WARM START")
    assert change.SCPStatus == "RESTARTED" and change.SubscriptionListStatus == "COLD STARTED"
    with pytest.raises(ValueError):
        scp_status_change("BUSY")


def test_every_status_has_a_meaning() -> None:
    assert all(int(s) in STATUS_MEANINGS for s in UPSStatus)
