"""The UPS state machine: Table CC.1.1-2, Change UPS State and Request UPS Cancel."""

from __future__ import annotations

import pytest
from pydicom.dataset import Dataset

from tests.services.scp.workitems import (
    NOW,
    OTHER,
    TUID,
    cancelable,
    completable,
    status_of,
    workitem,
)
from ups.dimse.status import Status
from ups.services.errors import ServiceError
from ups.services.scp.attributes import final_state_problems
from ups.services.scp.upsstate import (
    TRANSITIONS,
    TransitionRequest,
    check_change_state,
    check_request_cancel,
)
from ups.services.uids import EventType

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
    assert len(TRANSITIONS) == len(TransitionRequest) * len(COLUMNS)


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


def test_every_status_has_a_meaning() -> None:
    """Every status the state table answers with is named in the one table, with a meaning."""
    assert all(Status(cell.status).meaning for cell in TRANSITIONS.values())
