"""The find group: C-FIND matching on the probe's own workitems (PS3.4 C.2.2.2, CC.2.8).

Three UPSs are made for the group, sharing a Patient ID of this run (so that no other
workitem on a shared worklist can match) and differing in name, priority, start
date-time and workitem code. Each check asks one matching type of C.2.2.2 and compares
the SOP Instance UIDs that come back with the ones that must: single value, wild card
(``*`` and ``?``), date-time range (closed and open), sequence matching, universal
matching, UID list matching; and the Identifier of each response (CC.2.8.1.3.2: the
requested keys, empty when the UPS has no value; never the Transaction UID). C-CANCEL
during a find (PS3.7 9.3.2.3) goes over a raw link, to see the final response itself.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import replace

from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from ups.dimse.datasets import encode_dataset
from ups.dimse.messages import CCancelRQ, CFindRQ, CFindRSP
from ups.dimse.status import Status
from ups.services.conformance import CASES_BY_NAME
from ups.services.probe.context import ProbeContext
from ups.services.probe.datasets import code_item, quiet_pydicom
from ups.services.probe.group_association import describe_answer, negotiate
from ups.services.probe.group_state import case_check
from ups.services.probe.model import Check, Judgement, NotApplicable, Verdict, hex4
from ups.services.probe.rawlink import LinkClosed, RawLink
from ups.services.uids import DEFAULT_TRANSFER_SYNTAXES, ProcedureStepState

__all__ = ["CHECKS"]

GROUP = "find"
_KEY = "find fixture"
_FIXTURE = (
    ("A", "PROBE^ALPHA", "HIGH", "20010101100000"),
    ("B", "PROBE^BETA", "LOW", "20010102100000"),
    ("C", "OTHER^GAMMA", "MEDIUM", "20010103100000"),
)
_Query = Callable[[Dataset], None]
_Run = Callable[[ProbeContext], Awaitable[Judgement]]


async def _fixture(ctx: ProbeContext) -> dict[str, str]:
    """Name -> SOP Instance UID of the group's three UPSs (made once per run)."""
    made = ctx.shared.get(_KEY)
    if isinstance(made, dict):
        return made
    uids: dict[str, str] = {}
    for name, patient, priority, start in _FIXTURE:
        item = await ctx.create(
            f"find {name}",
            PatientID=_patient_id(ctx),
            PatientName=patient,
            ScheduledProcedureStepPriority=priority,
            ScheduledProcedureStepStartDateTime=start,
            ScheduledWorkitemCodeSequence=Sequence([code_item(f"PROBE-{name}", name)]),
        )
        uids[name] = item.iuid
    ctx.shared[_KEY] = uids
    return uids


def _patient_id(ctx: ProbeContext) -> str:
    return f"DCMUPS-{ctx.session.run_id}"[:64]


def _matching(names: str, build: _Query) -> _Run:
    """A check: the query built by ``build`` (plus our Patient ID) matches ``names``."""

    async def run(ctx: ProbeContext) -> Judgement:
        uids = await _fixture(ctx)
        query = Dataset()
        query.PatientID = _patient_id(ctx)
        query.SOPInstanceUID = ""
        build(query)
        found = await ctx.session.find(query)
        if found.status != Status.SUCCESS:
            return Judgement(Verdict.FAIL, f"final status {hex4(found.status)}")
        by_uid = {uid: name for name, uid in uids.items()}
        got = sorted(by_uid.get(str(ds.get("SOPInstanceUID", "")), "?") for ds in found.matches)
        observed = f"matched {', '.join(got) or 'none'}"
        verdict = Verdict.PASS if "".join(got) == names else Verdict.FAIL
        return Judgement(verdict, observed)

    return run


def _single(query: Dataset) -> None:
    query.ProcedureStepState = "SCHEDULED"


def _star(query: Dataset) -> None:
    query.PatientName = "PROBE^*"


def _question(query: Dataset) -> None:
    query.PatientName = "PROBE^BET?"


def _range(query: Dataset) -> None:
    query.ScheduledProcedureStepStartDateTime = "20010101000000-20010102235959"


def _open_range(query: Dataset) -> None:
    query.ScheduledProcedureStepStartDateTime = "-20010101235959"


def _sequence(query: Dataset) -> None:
    item = Dataset()
    item.CodeValue = "PROBE-B"
    item.CodingSchemeDesignator = ""
    query.ScheduledWorkitemCodeSequence = Sequence([item])


def _universal(query: Dataset) -> None:
    query.PatientName = ""
    query.ScheduledWorkitemCodeSequence = Sequence([])


async def _uid_list(ctx: ProbeContext) -> Judgement:
    uids = await _fixture(ctx)
    query = Dataset()
    query.SOPInstanceUID = [uids["A"], uids["C"]]
    query.PatientName = ""
    found = await ctx.session.find(query)
    if found.status != Status.SUCCESS:
        return Judgement(Verdict.FAIL, f"final status {hex4(found.status)}")
    by_uid = {uid: name for name, uid in uids.items()}
    got = sorted(by_uid.get(str(ds.get("SOPInstanceUID", "")), "?") for ds in found.matches)
    return Judgement(
        Verdict.PASS if got == ["A", "C"] else Verdict.FAIL, f"matched {', '.join(got)}"
    )


_RETURN_KEYS = (
    "SOPInstanceUID",
    "PatientName",
    "ScheduledProcedureStepPriority",
    "ProcedureStepState",
    "InputReadinessState",
    "AdmissionID",
)
_ALWAYS_ALLOWED = frozenset({"SpecificCharacterSet", "TimezoneOffsetFromUTC"})


async def _return_keys(ctx: ProbeContext) -> Judgement:
    uids = await _fixture(ctx)
    query = Dataset()
    query.SOPInstanceUID = uids["A"]
    for keyword in _RETURN_KEYS[1:]:
        setattr(query, keyword, "")
    found = await ctx.session.find(query)
    if found.status != Status.SUCCESS or len(found.matches) != 1:
        return Judgement(Verdict.FAIL, f"{len(found.matches)} matches, final {hex4(found.status)}")
    match = found.matches[0]
    missing = [k for k in _RETURN_KEYS if k not in match]
    wrong = []
    if str(match.get("PatientName", "")) != "PROBE^ALPHA":
        wrong.append("PatientName")
    if str(match.get("ScheduledProcedureStepPriority", "")) != "HIGH":
        wrong.append("ScheduledProcedureStepPriority")
    extra = [e.keyword or str(e.tag) for e in match if e.keyword not in _RETURN_KEYS]
    extra = [k for k in extra if k not in _ALWAYS_ALLOWED]
    if missing or wrong:
        text = f"missing {', '.join(missing) or '-'}; wrong {', '.join(wrong) or '-'}"
        return Judgement(Verdict.FAIL, text)
    if extra:
        return Judgement(Verdict.WARN, f"also returned: {', '.join(extra)}")
    return Judgement(Verdict.PASS, f"{len(_RETURN_KEYS)} keys, AdmissionID empty, no others")


async def _no_transaction_uid(ctx: ProbeContext) -> Judgement:
    item = await ctx.make(ProcedureStepState.IN_PROGRESS, "find transaction uid")
    query = Dataset()
    query.SOPInstanceUID = item.iuid
    query.TransactionUID = ""
    query.ProcedureStepState = ""
    found = await ctx.session.find(query)
    if found.status != Status.SUCCESS or len(found.matches) != 1:
        return Judgement(Verdict.FAIL, f"{len(found.matches)} matches, final {hex4(found.status)}")
    value = found.matches[0].get("TransactionUID")
    if value:
        return Judgement(Verdict.FAIL, f"Transaction UID returned: {value}")
    return Judgement(Verdict.PASS, "0000; Transaction UID not returned")


_CANCEL_MATCHES = 6


async def _cancel(ctx: ProbeContext) -> Judgement:
    """C-FIND over several UPSs with a C-CANCEL-RQ right behind it: the final response."""
    label = ctx.label("find cancel")
    for _ in range(_CANCEL_MATCHES):
        await ctx.create("find cancel")
    pull = ctx.session.family.pull
    link, answer = await negotiate(ctx, [(pull, DEFAULT_TRANSFER_SYNTAXES)])
    try:
        if link.negotiated is None or link.negotiated.context_for(pull) is None:
            raise NotApplicable(f"no UPS Pull context: {describe_answer(answer)}")
        context = link.negotiated.context_for(pull)
        assert context is not None
        query = Dataset()
        query.ProcedureStepLabel = label
        query.SOPInstanceUID = ""
        with quiet_pydicom():
            dataset = encode_dataset(query, context.transfer_syntax)
        # The C-CANCEL-RQ follows at once: "during the find" for any SCP, however fast.
        link.send_message(CFindRQ(1, pull, dataset=dataset), context.context_id)
        link.send_message(CCancelRQ(1), context.context_id)
        return await _after_cancel(ctx, link)
    finally:
        await link.close()


async def _after_cancel(ctx: ProbeContext, link: RawLink) -> Judgement:
    timeout = ctx.options.config.response_timeout
    pending = 0
    try:
        while True:
            message = await link.next_message(timeout)
            if not isinstance(message, CFindRSP):
                return Judgement(Verdict.FAIL, describe_answer(message))
            if message.status not in (Status.PENDING, Status.PENDING_WARNING):
                break
            pending += 1
    except (TimeoutError, LinkClosed) as exc:
        return Judgement(Verdict.FAIL, f"no final response ({type(exc).__name__})")
    observed = f"final {hex4(message.status)} after {pending} of {_CANCEL_MATCHES} matches"
    if message.status == Status.CANCEL:
        return Judgement(Verdict.PASS, observed)
    if message.status == Status.SUCCESS:
        return Judgement(Verdict.WARN, observed, "finished before the C-CANCEL-RQ was seen")
    return Judgement(Verdict.FAIL, observed)


_C222 = "PS3.4 C.2.2.2"
_MATCHING: tuple[tuple[str, str, _Query, str, str], ...] = (
    ("single-value", "ABC", _single, f"{_C222}.1", "Patient ID and Procedure Step State"),
    ("wildcard", "AB", _star, f"{_C222}.4", "Patient's Name PROBE^*"),
    ("wildcard-single-character", "B", _question, f"{_C222}.4", "Patient's Name PROBE^BET?"),
    ("date-time-range", "AB", _range, f"{_C222}.5", "start date-time 20010101-20010102 range"),
    ("open-date-time-range", "A", _open_range, f"{_C222}.5", "start date-time -20010101"),
    ("sequence", "B", _sequence, f"{_C222}.6", "Scheduled Workitem Code Value PROBE-B"),
    ("universal", "ABC", _universal, f"{_C222}.3", "empty Patient's Name and code sequence"),
)


def _build() -> tuple[Check, ...]:
    checks = []
    for name, names, build, reference, sends in _MATCHING:
        expected = f"matches {', '.join(names)}"
        run = _matching(names, build)
        checks.append(
            Check(f"{GROUP}.{name}", GROUP, reference, expected, run, sends=f"C-FIND: {sends}")
        )
    checks += [
        Check(f"{GROUP}.uid-list", GROUP, f"{_C222}.2", "matches A, C", _uid_list,
              sends="C-FIND: SOP Instance UID A\\C"),
        Check(f"{GROUP}.return-keys", GROUP, "PS3.4 CC.2.8.1.3.2, C.4.1.1.3.2",
              "each requested key, empty when unvalued; no others", _return_keys,
              sends="C-FIND with six return keys (Admission ID unvalued)"),
        Check(f"{GROUP}.no-transaction-uid", GROUP, "PS3.4 Table CC.2.5-3, CC.2.8.3",
              "Transaction UID never returned", _no_transaction_uid,
              sends="C-FIND asking for Transaction UID of an IN PROGRESS UPS"),
        Check(f"{GROUP}.cancel", GROUP, "PS3.7 9.1.2.1.3, 9.3.2.3", "final FE00 (Cancel)",
              _cancel, sends=f"C-FIND matching {_CANCEL_MATCHES} UPSs, C-CANCEL-RQ right behind"),
        replace(case_check(CASES_BY_NAME["find-bad-range"], GROUP), name=f"{GROUP}.bad-range"),
    ]  # fmt: skip
    return tuple(checks)


CHECKS: tuple[Check, ...] = _build()
