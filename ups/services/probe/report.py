"""What a probe run prints and writes: the table, JSON lines, the Markdown report.

The table on standard output has one row per check: check | PS3.x reference |
expected | observed | verdict. ``--json`` prints one object per check instead (the
fields of :meth:`CheckResult.as_json`). ``--report`` writes Markdown: the target and
run, a summary table per group with its timings, every row with what it sent, and
the details of everything that did not pass.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TextIO

from ups.services.probe.model import CheckResult, Verdict

__all__ = ["RunInfo", "summary", "write_table", "write_json", "markdown"]

_VERDICTS = (Verdict.PASS, Verdict.FAIL, Verdict.WARN, Verdict.NA)
_CELL = 72


@dataclass(frozen=True, slots=True)
class RunInfo:
    """What the report says about the run as a whole."""

    target: str
    calling_ae: str
    receiving: str
    run_id: str
    family: str
    started: datetime
    seconds: float
    hostile: bool


def summary(results: Iterable[CheckResult]) -> str:
    counts = Counter(r.verdict for r in results)
    total = sum(counts.values())
    parts = ", ".join(f"{counts[v]} {v}" for v in _VERDICTS)
    return f"{total} checks: {parts}"


def _clip(text: str, width: int = _CELL) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 3] + "..."


def write_table(results: Sequence[CheckResult], out: TextIO) -> None:
    header = ("check", "reference", "expected", "observed", "verdict")
    rows = [header] + [
        (r.name, r.reference, _clip(r.expected), _clip(r.observed), str(r.verdict)) for r in results
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    for index, row in enumerate(rows):
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=True)]
        out.write(" | ".join(cells).rstrip() + "\n")
        if index == 0:
            out.write("-+-".join("-" * width for width in widths) + "\n")
    out.write(f"summary: {summary(results)}\n")


def write_json(results: Sequence[CheckResult], out: TextIO) -> None:
    for result in results:
        out.write(json.dumps(result.as_json(), separators=(",", ":")) + "\n")


def _md(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|") or "-"


def markdown(results: Sequence[CheckResult], info: RunInfo, latencies: Sequence[float]) -> str:
    """The whole report as one Markdown document."""
    lines = [
        f"# dcmups probe: {info.target}",
        "",
        f"- run `{info.run_id}` started {info.started.isoformat(timespec='seconds')}, "
        f"{info.seconds:.1f} s",
        f"- calling AE `{info.calling_ae}`; events received as `{info.receiving}`",
        f"- UPS SOP Class family: {info.family}; hostile checks: "
        f"{'yes' if info.hostile else 'no (--hostile)'}",
        f"- **{summary(results)}**",
        "",
        "| group | checks | pass | fail | warn | n/a | seconds |",
        "|---|---|---|---|---|---|---|",
    ]
    groups: dict[str, list[CheckResult]] = {}
    for result in results:
        groups.setdefault(result.group, []).append(result)
    for group, members in groups.items():
        counts = Counter(r.verdict for r in members)
        seconds = sum(r.seconds for r in members)
        cells = " | ".join(str(counts[v]) for v in _VERDICTS)
        lines.append(f"| {group} | {len(members)} | {cells} | {seconds:.2f} |")
    if latencies:
        ms = sorted(x * 1000 for x in latencies)
        lines += ["", f"Event latency: {len(ms)} events, median {ms[len(ms) // 2]:.1f} ms, "
                  f"max {ms[-1]:.1f} ms."]  # fmt: skip
    for group, members in groups.items():
        lines += ["", f"## {group}", "", _group_summary(members), ""]
        lines += [
            "| check | reference | sends | expected | observed | verdict | ms |",
            "|---|---|---|---|---|---|---|",
        ]
        for r in members:
            lines.append(
                f"| `{r.name}` | {_md(r.reference)} | {_md(r.sends)} | {_md(r.expected)} | "
                f"{_md(r.observed)} | **{r.verdict}** | {r.seconds * 1000:.0f} |"
            )
        notes = [r for r in members if r.verdict is not Verdict.PASS and r.detail]
        if notes:
            lines.append("")
            lines += [f"- `{r.name}` ({r.verdict}): {_md(r.detail)}" for r in notes]
    return "\n".join(lines) + "\n"


def _group_summary(members: Sequence[CheckResult]) -> str:
    counts = Counter(r.verdict for r in members)
    seconds = sum(r.seconds for r in members)
    parts = ", ".join(f"{counts[v]} {v}" for v in _VERDICTS if counts[v])
    return f"{len(members)} checks ({parts}) in {seconds:.2f} s."
