"""``dcmups probe`` against this project's ``dcmups scp``, a child process on 127.0.0.1.

Nothing fails. Issue 12 made the last five checks pass: finished workitems are kept for
the retention window (a repeated COMPLETED gets the B306 warning, an N-SET after
completion C300, N-GET of the UPS just completed its final state) and malformed UIDs are
refused (0117, 0106) and not stored. Issue 17 made duplicate Message IDs 0210. One
documented warning remains.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.services.probe.helpers import (
    by_verdict,
    free_port,
    options,
    reference_scp,
    run_probe,
)
from ups.services.probe import Verdict, selected_checks

pytestmark = pytest.mark.timeout(120)

RETAINED = {
    "state.retained.complete-again",  # B306, not C307
    "state.retained.set-after-complete",  # C300, not C307
    "state.retained.get-after-complete",  # 0000 COMPLETED, not C307
}
"""The checks of a finished workitem without a Deletion Lock (issue 12, finding 1)."""

MALFORMED_UIDS = {"robustness.malformed-uid.create", "robustness.malformed-uid.transaction"}
"""Invalid UIDs refused and not stored (issue 12, finding 2)."""

DOCUMENTED_WARNINGS = {
    # An N-GET naming UPS Pull (not Push) as Requested SOP Class is served: lenient.
    "contexts.wrong.requested-sop-class",
}

PASSES_SINCE_ISSUE_17 = {
    # Two outstanding requests under one Message ID: the second is answered 0x0210.
    "robustness.duplicate-message-id",
}


def test_reference_scp_fails_no_check(tmp_path: Path) -> None:
    listen = free_port()
    report = tmp_path / "report.md"
    with reference_scp(tmp_path, listen) as port:
        opts = options(port, listen_port=listen, hostile=True, report=report)
        status, run, out = run_probe(opts)
    assert len(run.results) == len(selected_checks(opts)) + 1  # and the cleanup
    assert by_verdict(run, Verdict.FAIL) == set()
    assert by_verdict(run, Verdict.WARN) == DOCUMENTED_WARNINGS
    assert by_verdict(run, Verdict.NA) == set()
    assert status == 0
    passed = by_verdict(run, Verdict.PASS)
    assert RETAINED | MALFORMED_UIDS | PASSES_SINCE_ISSUE_17 | {"cleanup.final-state"} <= passed
    header = [cell.strip() for cell in out.splitlines()[0].split("|")]
    assert header == ["check", "reference", "expected", "observed", "verdict"]
    text = report.read_text()
    for group in ("association", "state", "contexts", "events", "find", "robustness"):
        assert f"## {group}" in text
    assert "Event latency:" in text


def test_reference_scp_without_hostile_checks(tmp_path: Path) -> None:
    """The default run leaves the robustness group out; nothing fails there either."""
    listen = free_port()
    with reference_scp(tmp_path, listen) as port:
        opts = options(port, listen_port=listen, only=frozenset({"association", "state"}))
        status, run, _ = run_probe(opts)
    assert {r.group for r in run.results} == {"association", "state", "cleanup"}
    assert by_verdict(run, Verdict.FAIL) == set()
    assert RETAINED <= by_verdict(run, Verdict.PASS)
    assert status == 0


def test_an_scp_that_does_not_know_the_probe_gives_no_false_failures(tmp_path: Path) -> None:
    """The SCP knows AE PROBE, the probe calls itself STRANGER: every subscription gets
    C308, so no Deletion Lock and no event. What needs them is n/a, nothing fails: a
    finished UPS without a lock is still there for the retention window."""
    listen = free_port()
    with reference_scp(tmp_path, listen) as port:
        opts = options(port, calling_ae="STRANGER", hostile=True)
        status, run, _ = run_probe(opts)
    assert by_verdict(run, Verdict.FAIL) == set()
    not_applicable = by_verdict(run, Verdict.NA)
    assert {name for name in not_applicable if name.startswith("events.")} == {
        check.name for check in selected_checks(opts) if check.group == "events"
    }
    assert "state.complete@completed" not in not_applicable  # retained without a lock
    assert "contexts.subscribe@watch" in not_applicable
    assert status == 0
