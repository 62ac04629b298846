"""The attribute rules: N-CREATE, N-SET and the events a change causes (PS3.4 CC.2.5, CC.2.6)."""

from __future__ import annotations

import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from tests.services.scp.workitems import NOW, OTHER, TUID, code, request, status_of, workitem
from ups.dimse.status import Status
from ups.services.scp.attributes import check_create, check_set
from ups.services.uids import UPS_PUSH, EventType


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
    assert created.status == Status.UPS_CREATED_WITH_MODIFICATIONS
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
