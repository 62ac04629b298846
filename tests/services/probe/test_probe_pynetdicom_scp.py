"""``dcmups probe`` against the pynetdicom-based UPS SCP of the tests (tests/cli/pynetdicom_scp.py).

That SCP is pynetdicom's association and DIMSE layers with small in-memory UPS handlers;
the probe must find what those handlers leave out, each deviation by name, group by
group. A group without deviations says so (an empty set), so a new failure anywhere
shows up here.
"""

from __future__ import annotations

import pytest

from tests.services.probe.helpers import by_verdict, options, run_probe
from ups.services.probe import Verdict

pytest.importorskip("pynetdicom")

from tests.cli.pynetdicom_scp import PynetdicomUPSSCP  # noqa: E402

pytestmark = [
    pytest.mark.interop,
    pytest.mark.timeout(120),
    pytest.mark.filterwarnings("ignore::UserWarning"),  # pynetdicom decodes what we send
]

DEVIATIONS: dict[str, set[str]] = {
    # It negotiates as PS3.7 and PS3.8 ask: no deviation.
    "association": set(),
    "state": {
        # A wrong Transaction UID is not looked at once the UPS is final.
        "state.complete-wrong-tuid@completed",  # B306, not C301
        "state.cancel-wrong-tuid@canceled",  # B304, not C301
        # N-CREATE takes what Table CC.2.5-3 forbids or requires.
        "state.create-missing-type1",  # 0000, not 0120
        "state.create-empty-type1",  # 0000, not 0121
        "state.create-bad-enum",  # 0000, not 0106
        "state.create-with-transaction-uid",  # 0000 (dropped silently), not B300
        # N-SET changes what it may not.
        "state.set-state-scheduled",  # 0000, not C303
        "state.set-sop-instance-uid",  # 0000, not 0106
        # No Final State requirements (Table CC.2.5-3): C304 is never answered.
        "state.complete-without-final-state",
        "state.cancel-without-final-state",
    },
    # Every operation works on its own context: no deviation (wrong ones only warn).
    "contexts": set(),
    # It sends no N-EVENT-REPORT at all; it only keeps a finished UPS (deletion lock).
    "events": {
        "events.initial-state-report",
        "events.state-reports-in-order",
        "events.cancel-requested",
        "events.cancel-scheduled",
        "events.progress-report",
        "events.global-subscription",
        "events.filtered-global-subscription",
        "events.unsubscribe",
        "events.suspend",
    },
    "find": {
        "find.wildcard-single-character",  # "?" is not a wild card to it
        "find.date-time-range",  # no range matching
        "find.open-date-time-range",
        "find.uid-list",  # a multi-valued SOP Instance UID matches nothing
    },
    "robustness": {
        "robustness.malformed-uid.create",  # all six accepted
        "robustness.malformed-uid.transaction",  # claimed with 'not-a-uid'
        "robustness.create-global-uid",  # a UPS under the Global Subscription UID
    },
    "cleanup": set(),
}

WARNINGS: dict[str, set[str]] = {
    "association": set(),
    "state": {
        "state.claim-wrong-tuid@scheduled",  # 0115 for a claim without Transaction UID
        "state.claim-wrong-tuid@in-progress",  # C302 for the second claim
        "state.claim-wrong-tuid@completed",  # C300: final state first
        "state.claim-wrong-tuid@canceled",
        "state.complete-wrong-tuid@scheduled",  # 0115: no Transaction UID
        "state.complete-wrong-tuid@canceled",  # C300
        "state.cancel-wrong-tuid@scheduled",  # 0115
        "state.cancel-wrong-tuid@completed",  # C300
        "state.subscribe-unknown-ae",  # 0000: any Receiving AE is taken
    },
    "contexts": {
        "contexts.wrong.change-state-on-watch",
        "contexts.wrong.create-on-pull",
        "contexts.wrong.subscribe-on-pull",
        "contexts.wrong.find-on-push",
        "contexts.wrong.requested-sop-class",
    },
    "events": set(),
    "find": {"find.cancel", "find.bad-range"},  # finishes before the C-CANCEL; 0000
    "robustness": {"robustness.duplicate-message-id"},  # both answered
    "cleanup": set(),
}


def test_pynetdicom_scp_deviations_by_name() -> None:
    with PynetdicomUPSSCP() as scp:
        opts = options(scp.port, called="UPSSCP", hostile=True, event_timeout=1.0)
        status, run, _ = run_probe(opts, timeout=100.0)
    assert status == 1
    for group, expected in DEVIATIONS.items():
        assert by_verdict(run, Verdict.FAIL, group) == expected, group
        assert by_verdict(run, Verdict.WARN, group) == WARNINGS[group], group
    assert by_verdict(run, Verdict.NA) == {"events.latency"}  # no event ever came
