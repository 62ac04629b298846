"""``dcmups probe``: a conformance report for any UPS SCP (PS3.4 Annex CC, PS3.7, PS3.8).

The suite asks a remote UPS SCP what the standard requires of it, group by group:
association negotiation, the state machine of Table CC.1.1-2 with the status codes of
CC.2, operations on their contexts (CC.3.1.1), event reports (CC.2.4), C-FIND matching
(C.2.2.2), and with ``hostile`` malformed and out-of-bounds requests. Expectations come
from :mod:`ups.services.conformance`, the table the reference SCP's tests use too.

Modules: ``options`` (what a run is told), ``model`` (checks, verdicts), ``session``
(the working association), ``rawlink`` (an association PDU by PDU), ``inbox`` (the
event receiver), ``context`` (what a check is handed, workitem set-up), ``cases`` (one
status case run), ``group_*`` (the checks), ``cleanup``, ``report``, ``runner``.
"""

from __future__ import annotations

from ups.services.probe.model import CheckResult, Verdict
from ups.services.probe.options import GROUPS, ProbeOptions
from ups.services.probe.runner import ProbeRun, probe, run_probe, selected_checks

__all__ = [
    "GROUPS",
    "CheckResult",
    "ProbeOptions",
    "ProbeRun",
    "Verdict",
    "probe",
    "run_probe",
    "selected_checks",
]
