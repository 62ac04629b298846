"""The probe's pure parts: the shared table's shape, judging, event order, options, reports."""

from __future__ import annotations

import io
import json
import time
from datetime import datetime

import pytest
from pydicom.dataset import Dataset

from ups.dimse.datasets import LazyDataset, encode_dataset
from ups.dimse.status import Status
from ups.services.conformance import (
    CASES_BY_NAME,
    COLUMNS,
    EVENT_SEQUENCES,
    STATUS_CASES,
    TRANSITIONS,
    Row,
    cell_case,
)
from ups.services.events import UPSEvent
from ups.services.probe import GROUPS, ProbeOptions, Verdict, selected_checks
from ups.services.probe.group_events import sequence_matched
from ups.services.probe.group_state import expected_text
from ups.services.probe.inbox import Arrival
from ups.services.probe.model import CheckResult, judge_status
from ups.services.probe.report import RunInfo, markdown, summary, write_json, write_table
from ups.services.uids import EXPLICIT_VR_LITTLE_ENDIAN, UPS_PUSH, EventType

# ----------------------------------------------------------------- the shared table


def test_every_cell_of_table_cc_1_1_2_is_there_once() -> None:
    assert len(TRANSITIONS) == len(Row) * len(COLUMNS) == 45
    for row in Row:
        for column in COLUMNS:
            case = cell_case(row, column)
            assert case.expected == TRANSITIONS[(row, column)].status
            assert case.start == column


def test_case_names_are_unique_and_statuses_named() -> None:
    assert len(CASES_BY_NAME) == len(STATUS_CASES)
    for case in STATUS_CASES:
        assert isinstance(case.expected, Status)
        assert all(isinstance(s, Status) for s in case.allowed | case.readings)
        assert case.expected not in case.allowed | case.readings
        assert case.sends


def test_final_state_cells_hold_a_lock_unless_they_ask_for_retention() -> None:
    for case in STATUS_CASES:
        if case.start is not None and case.start.value in ("COMPLETED", "CANCELED"):
            assert case.lock != case.retained, case.name


# ----------------------------------------------------------------- judging


def test_judge_status() -> None:
    second_claim = CASES_BY_NAME["claim-wrong-tuid@in-progress"]
    assert judge_status(second_claim, 0xC301) is Verdict.PASS
    assert judge_status(second_claim, 0xC302) is Verdict.WARN  # another reading
    assert judge_status(second_claim, 0x0000) is Verdict.FAIL  # two claims won
    cancel = CASES_BY_NAME["request-cancel@in-progress"]
    assert judge_status(cancel, 0xC312) is Verdict.PASS  # allowed
    wrong_context = CASES_BY_NAME["create-on-pull"]
    assert judge_status(wrong_context, 0x0122) is Verdict.PASS  # any refusal
    assert judge_status(wrong_context, 0x0000) is Verdict.WARN  # lenient: never fails


def test_expected_text() -> None:
    assert expected_text(CASES_BY_NAME["claim@scheduled"]) == "0000, then IN PROGRESS"
    assert expected_text(CASES_BY_NAME["request-cancel@in-progress"]) == "0000 or C312/C313"
    assert expected_text(CASES_BY_NAME["claim-wrong-tuid@in-progress"]) == "C301 [C302: warn]"
    assert expected_text(CASES_BY_NAME["create-on-pull"]) == "a refusal (0211 here)"


# ----------------------------------------------------------------- event order


def _arrival(event_type: EventType, state: str | None = None) -> Arrival:
    info = Dataset()
    if state:
        info.ProcedureStepState = state
    raw = LazyDataset(encode_dataset(info, EXPLICIT_VR_LITTLE_ENDIAN), EXPLICIT_VR_LITTLE_ENDIAN)
    event = UPSEvent(int(event_type), "1.2.3", UPS_PUSH, "SCP", "PROBE", time.time(), raw)
    return Arrival(event, time.monotonic())


def test_state_reports_must_come_in_order() -> None:
    sequence = [*EVENT_SEQUENCES["claim"], *EVENT_SEQUENCES["complete"]]
    report = EventType.UPS_STATE_REPORT
    in_order = [_arrival(report, "IN PROGRESS"), _arrival(report, "COMPLETED")]
    assert sequence_matched(in_order, sequence) == in_order
    assert sequence_matched(list(reversed(in_order)), sequence) is None
    noisy = [_arrival(EventType.UPS_PROGRESS_REPORT), *in_order]
    assert sequence_matched(noisy, sequence) == in_order


def test_optional_events_may_be_left_out() -> None:
    sequence = EVENT_SEQUENCES["request-cancel-scheduled"]
    canceled = _arrival(EventType.UPS_STATE_REPORT, "CANCELED")
    assert sequence_matched([canceled], sequence) == [canceled]
    assert sequence_matched([_arrival(EventType.UPS_CANCEL_REQUESTED)], sequence) is None


# ----------------------------------------------------------------- options


def test_options_refuse_what_cannot_run() -> None:
    with pytest.raises(ValueError, match="groups are"):
        ProbeOptions("A", "h", 1, only=frozenset({"nope"}))
    with pytest.raises(ValueError, match="needs --hostile"):
        ProbeOptions("A", "h", 1, only=frozenset({"robustness"}))
    with pytest.raises(ValueError, match="family"):
        ProbeOptions("A", "h", 1, family="beta")


def test_groups_and_hostile_selection() -> None:
    every = {c.group for c in selected_checks(ProbeOptions("A", "h", 1, hostile=True))}
    assert every == set(GROUPS)
    default = selected_checks(ProbeOptions("A", "h", 1))
    assert "robustness" not in {c.group for c in default}
    assert not any(c.hostile for c in default)
    names = [c.name for c in selected_checks(ProbeOptions("A", "h", 1, hostile=True))]
    assert len(names) == len(set(names))


# ----------------------------------------------------------------- reports

_RESULTS = [
    CheckResult("state.a", "state", "PS3.4 X", "0000", "0000", Verdict.PASS, 0.01, "", "N-GET"),
    CheckResult("state.b", "state", "PS3.4 Y", "C301", "0000 | odd", Verdict.FAIL, 0.02, "why"),
    CheckResult("find.c", "find", "PS3.4 Z", "A", "B", Verdict.WARN, 0.5, "note"),
]


def test_table_and_json() -> None:
    out = io.StringIO()
    write_table(_RESULTS, out)
    lines = out.getvalue().splitlines()
    assert lines[0].split("|")[0].strip() == "check"
    assert lines[-1] == "summary: 3 checks: 1 pass, 1 fail, 1 warn, 0 n/a"
    out = io.StringIO()
    write_json(_RESULTS, out)
    rows = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [r["verdict"] for r in rows] == ["pass", "fail", "warn"]
    assert summary(_RESULTS).startswith("3 checks")


def test_markdown_report() -> None:
    info = RunInfo("S@h:1", "ME", "ME (port 2)", "run-1", "final", datetime(2026, 1, 2), 1.5, False)
    text = markdown(_RESULTS, info, [0.001, 0.003])
    assert text.startswith("# dcmups probe: S@h:1\n")
    assert "| state | 2 | 1 | 1 | 0 | 0 | 0.03 |" in text
    assert "0000 \\| odd" in text  # a pipe in a cell is escaped
    assert "- `state.b` (fail): why" in text
    assert "Event latency: 2 events" in text
