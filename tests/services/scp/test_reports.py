"""What each N-EVENT-REPORT carries (PS3.4 Table CC.2.4-1)."""

from __future__ import annotations

import pytest

from tests.services.scp.workitems import workitem
from ups.services.scp.reports import (
    cancel_requested,
    progress_report,
    scp_status_change,
    state_report,
    ups_assigned,
)


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
