"""A probe that cannot fail is worthless: deliberately broken SCPs, each fault caught.

The fixture (:mod:`tests.services.probe.fixture_scp`) is first probed without faults,
which shows what it gets right (it skips the N-CREATE/N-SET attribute rules, and takes
requests on any context); then with one fault at a time, where the suite must exit 1
and the checks that fail beyond the baseline must be exactly the ones about that fault.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import Iterable

import pytest

from tests.services.probe.fixture_scp import Faults, FixtureSCP
from tests.services.probe.helpers import by_verdict, free_port, options
from ups.dimse.status import StatusCategory, category_of
from ups.services.conformance import STATUS_CASES
from ups.services.probe import ProbeRun, Verdict, probe

pytestmark = pytest.mark.timeout(90)

BASELINE_FAILS = {
    "state.create-missing-type1",
    "state.create-empty-type1",
    "state.create-bad-enum",
    "state.create-with-transaction-uid",
    "state.set-state-scheduled",
    "state.set-sop-instance-uid",
}
"""The attribute rules the fixture does not implement (it is a state machine, no more)."""

BASELINE_WARNS = {
    "contexts.wrong.change-state-on-watch",
    "contexts.wrong.create-on-pull",
    "contexts.wrong.subscribe-on-pull",
    "contexts.wrong.find-on-push",
    "contexts.wrong.requested-sop-class",
}


async def _probe(faults: Faults, groups: Iterable[str], **kw: float) -> tuple[int, ProbeRun]:
    listen = free_port()
    async with FixtureSCP(faults, {"PROBE": listen}) as scp:
        opts = options(scp.port, called="FIXTURE", listen_port=listen, only=frozenset(groups), **kw)
        run = ProbeRun()
        async with asyncio.timeout(80):
            status = await probe(opts, io.StringIO(), io.StringIO(), run)
    return status, run


async def test_the_fixture_without_faults_passes_what_the_faults_break() -> None:
    status, run = await _probe(Faults(), ("state", "contexts", "events"))
    assert by_verdict(run, Verdict.FAIL) == BASELINE_FAILS
    assert by_verdict(run, Verdict.WARN) == BASELINE_WARNS
    assert by_verdict(run, Verdict.NA) == set()
    assert status == 1  # the attribute rules


async def test_an_scp_answering_success_to_everything() -> None:
    status, run = await _probe(
        Faults(all_success=True), ("state", "contexts", "events"), event_timeout=0.5
    )
    assert status == 1
    failed = by_verdict(run, Verdict.FAIL)
    # Every refusal the table demands is missed, so every such check fails...
    for case in STATUS_CASES:
        if case.hostile or case.lenient:
            continue
        refusals = {case.expected, *case.allowed, *case.readings}
        if all(category_of(s) is StatusCategory.FAILURE for s in refusals):
            assert f"state.{case.name}" in failed, case.name
    # ... and so does every check that looks behind the status: the state afterwards,
    # the match a C-FIND must return, the events that must follow.
    assert {"state.claim@scheduled", "state.complete@in-progress"} <= failed
    assert {"contexts.c-find@pull", "contexts.c-find@watch"} <= failed
    assert {"events.initial-state-report", "events.deletion-lock"} <= failed


async def test_an_scp_that_never_sends_events() -> None:
    status, run = await _probe(
        Faults(no_events=True), ("events",), event_timeout=0.5, quiet_period=0.1
    )
    assert status == 1
    assert by_verdict(run, Verdict.FAIL) == {
        "events.initial-state-report",
        "events.state-reports-in-order",
        "events.cancel-requested",
        "events.cancel-scheduled",
        "events.progress-report",
        "events.global-subscription",
        "events.filtered-global-subscription",
        "events.unsubscribe",  # its marker never comes: absence cannot be shown
        "events.suspend",
    }
    assert by_verdict(run, Verdict.NA) == {"events.latency"}
    assert "events.deletion-lock" in by_verdict(run, Verdict.PASS)  # no event needed


async def test_an_scp_that_returns_the_transaction_uid() -> None:
    status, run = await _probe(Faults(leak_tuid=True), ("contexts",))
    assert status == 1
    assert by_verdict(run, Verdict.FAIL) == {
        "contexts.n-get-hides-transaction-uid",
        "contexts.n-get-hides-transaction-uid-asked",
    }


async def test_an_scp_that_lets_two_claims_win() -> None:
    status, run = await _probe(Faults(double_claim=True), ("state",))
    assert status == 1
    assert by_verdict(run, Verdict.FAIL) - BASELINE_FAILS == {
        "state.claim-wrong-tuid@in-progress",  # the second performer's claim
        "state.claim@in-progress",  # the same claim repeated: C302, not 0000
    }
