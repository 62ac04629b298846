"""The probe's vocabulary: a check, its verdict, and how a status code is judged.

A :class:`Check` is one question asked of a remote UPS SCP: its name (``group.name``),
the PS3.x reference it rests on, what a conformant SCP answers (``expected``), and the
coroutine that asks it. Running it gives a :class:`Judgement` (what was observed and the
:class:`Verdict`); the runner adds the time taken and makes a :class:`CheckResult`.

Verdicts: ``pass`` — the SCP did what the standard asks; ``fail`` — it did not;
``warn`` — a defensible reading other than ours, or a request a client must not send
that the SCP took anyway (judged leniently); ``n/a`` — the check could not be asked
(e.g. the SCP accepted no context for it).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

from ups.dimse.status import StatusCategory, category_of
from ups.services.conformance import StatusCase

if TYPE_CHECKING:
    from ups.services.probe.context import ProbeContext

__all__ = [
    "Verdict",
    "Judgement",
    "Check",
    "CheckResult",
    "SetupFailed",
    "NotApplicable",
    "judge_status",
    "hex4",
]


class Verdict(StrEnum):
    PASS = "pass"
    FAIL = "fail"
    WARN = "warn"
    NA = "n/a"


@dataclass(frozen=True, slots=True)
class Judgement:
    verdict: Verdict
    observed: str
    detail: str = ""


@dataclass(frozen=True, slots=True)
class Check:
    """One question asked of the SCP; ``run`` asks it."""

    name: str
    group: str
    reference: str
    expected: str
    run: Callable[[ProbeContext], Awaitable[Judgement]]
    hostile: bool = False
    sends: str = ""
    """What the check sends, in words (for the Markdown report)."""


@dataclass(frozen=True, slots=True)
class CheckResult:
    """A check as asked: the report's row."""

    name: str
    group: str
    reference: str
    expected: str
    observed: str
    verdict: Verdict
    seconds: float
    detail: str = ""
    sends: str = ""

    def as_json(self) -> dict[str, object]:
        return {
            "check": self.name,
            "group": self.group,
            "reference": self.reference,
            "expected": self.expected,
            "observed": self.observed,
            "verdict": str(self.verdict),
            "seconds": round(self.seconds, 4),
            "detail": self.detail,
        }


class SetupFailed(Exception):
    """The UPS could not be put into the state a check starts from (the check is n/a)."""


class NotApplicable(Exception):
    """The check cannot be asked of this SCP (no context for it, no events possible)."""


def hex4(status: int | None) -> str:
    return "no response" if status is None else f"{status:04X}"


def judge_status(case: StatusCase, status: int) -> Verdict:
    """The verdict on ``status`` as the answer to ``case`` (see the module docstring).

    Expected or allowed: pass. A listed reading: warn. For a lenient case (a request the
    client must not send) any refusal passes and anything else warns. Otherwise fail.
    """
    if status == case.expected or status in case.allowed:
        return Verdict.PASS
    if status in case.readings:
        return Verdict.WARN
    if case.lenient:
        refused = category_of(status) is StatusCategory.FAILURE
        return Verdict.PASS if refused else Verdict.WARN
    return Verdict.FAIL
