"""The reference SCP against the shared conformance table (ups.services.conformance).

``dcmups probe`` judges other SCPs by the same rows, so the SCP and the probe cannot
drift apart: the SCP's state table must equal the shared one cell by cell, the SCP must
answer every status case with exactly the status the table gives (set up and sent by
the probe's own case runner), and every event sequence the table lists must come.

The ``retained`` cases ask for a finished workitem without a Deletion Lock: the SCP keeps
it for its retention window (issue 12), so they pass like every other case. Every
refusal's Error Comment fits its 64 characters and carries facts, never the meaning.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from ups.dimse.status import status_info
from ups.services.conformance import CASES_BY_NAME, STATUS_CASES, TRANSITIONS, Row, StatusCase
from ups.services.probe.cases import run_case
from ups.services.probe.context import ProbeContext
from ups.services.probe.group_events import CHECKS as EVENT_CHECKS
from ups.services.probe.inbox import Inbox
from ups.services.probe.model import Check, Verdict
from ups.services.probe.options import ProbeOptions
from ups.services.probe.session import Session
from ups.services.scp import UPSSCP, RemoteAE, SCPOptions, upsstate
from ups.services.uids import ProcedureStepState

pytestmark = pytest.mark.timeout(30)

PROBE_AE = "PROBE"
_ROWS = {
    Row.CREATE: upsstate.TransitionRequest.CREATE,
    Row.IN_PROGRESS: upsstate.TransitionRequest.IN_PROGRESS_CORRECT_UID,
    Row.IN_PROGRESS_WRONG_UID: upsstate.TransitionRequest.IN_PROGRESS_WRONG_UID,
    Row.SCHEDULED: upsstate.TransitionRequest.SCHEDULED,
    Row.COMPLETED: upsstate.TransitionRequest.COMPLETED_CORRECT_UID,
    Row.COMPLETED_WRONG_UID: upsstate.TransitionRequest.COMPLETED_WRONG_UID,
    Row.REQUEST_CANCEL: upsstate.TransitionRequest.REQUEST_CANCEL,
    Row.CANCELED: upsstate.TransitionRequest.CANCELED_CORRECT_UID,
    Row.CANCELED_WRONG_UID: upsstate.TransitionRequest.CANCELED_WRONG_UID,
}


@pytest.mark.parametrize("key", list(TRANSITIONS), ids=lambda k: f"{k[0].value}@{k[1]}")
def test_the_scp_state_table_is_the_shared_one(
    key: tuple[Row, ProcedureStepState | None],
) -> None:
    row, column = key
    shared = TRANSITIONS[key]
    ours = upsstate.TRANSITIONS[(_ROWS[row], column)]
    assert (ours.status, ours.new_state, ours.final_check) == (
        int(shared.status),
        shared.new_state,
        shared.final_check,
    )


@pytest.fixture
async def ctx(tmp_path: Path) -> AsyncIterator[ProbeContext]:
    """Our SCP in process, knowing the probe's inbox as AE PROBE; an open session."""
    inbox = await Inbox(PROBE_AE).start("127.0.0.1", 0)
    scp_options = SCPOptions(
        ae_title="UPSSCP",
        host="127.0.0.1",
        port=0,
        db=tmp_path / "ups.db",
        remote_aes={PROBE_AE: RemoteAE(PROBE_AE, "127.0.0.1", inbox.port)},
        event_idle=0.3,
        retry_initial=0.1,
        retry_max=0.4,
        shutdown_flush=0.5,
        announce_status=False,
    )
    try:
        async with UPSSCP(scp_options) as scp:
            options = ProbeOptions(
                "UPSSCP", "127.0.0.1", scp.port, calling_ae=PROBE_AE, event_timeout=3.0,
                quiet_period=0.2,
            )  # fmt: skip
            session = Session(options, "table")
            await session.connect()
            try:
                yield ProbeContext(options, session, inbox)
            finally:
                await session.close()
    finally:
        await inbox.close()


@pytest.mark.parametrize("case", STATUS_CASES, ids=lambda c: c.name)
async def test_the_scp_answers_each_status_case(ctx: ProbeContext, case: StatusCase) -> None:
    result = await run_case(ctx, case)
    assert f"{result.status:04X}" == f"{case.expected:04X}"
    if case.then is not None:
        assert result.state == case.then
    comment = result.comment or ""
    assert len(comment) <= 64, comment  # LO
    meaning = status_info(result.status).meaning.lower()
    assert not comment or comment.lower().rstrip(".") not in meaning, comment


@pytest.mark.parametrize(
    "check", [c for c in EVENT_CHECKS if c.name != "events.latency"], ids=lambda c: c.name
)
async def test_the_scp_sends_each_event_sequence(ctx: ProbeContext, check: Check) -> None:
    outcome = await check.run(ctx)
    assert outcome.verdict is Verdict.PASS, outcome


def test_the_table_covers_the_scp_status_cases() -> None:
    """Every status the former hand-written list provoked has its row (issue 14)."""
    for name in (
        "create@scheduled",
        "create-not-scheduled",
        "create-missing-type1",
        "create-empty-type1",
        "create-bad-enum",
        "create-with-transaction-uid",
        "create-global-uid",
        "set-unknown",
        "set-completed",
        "set-in-progress-without-tuid",
        "set-in-progress-wrong-tuid",
        "set-scheduled-with-tuid",
        "set-state-scheduled",
        "set-sop-instance-uid",
        "get-unknown",
        "claim@absent",
        "claim-wrong-tuid@scheduled",
        "claim@in-progress",
        "claim-wrong-tuid@in-progress",
        "reschedule@in-progress",
        "complete@scheduled",
        "complete-without-final-state",
        "cancel-without-final-state",
        "complete-wrong-tuid@in-progress",
        "claim@completed",
        "complete@completed",
        "cancel@canceled",
        "cancel@completed",
        "change-to-bad-state",
        "request-cancel@absent",
        "request-cancel@completed",
        "request-cancel@canceled",
        "request-cancel-unreachable",
        "subscribe-unknown-ups",
        "subscribe-unknown-ae",
        "unsubscribe-unknown-ups",
        "suspend-specific-ups",
        "subscribe-without-receiving-ae",
        "subscribe-bad-deletion-lock",
        "unknown-action-type",
        "change-state-on-watch",
        "create-on-pull",
        "find-bad-range",
    ):
        assert name in CASES_BY_NAME, name
