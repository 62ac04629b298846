"""The results table (ours | peer | ratio | ceiling | fraction) and the JSON document."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, TextIO

from bench.harness import Figure, Row


def number(value: float) -> str:
    """Three significant figures, no exponent for the magnitudes we print."""
    if math.isnan(value):
        return "nan"
    magnitude = abs(value)
    if magnitude >= 100:
        return f"{value:,.0f}"
    if magnitude >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


class Notes:
    """Footnote numbers for n/a reasons and errors, so the table stays narrow."""

    def __init__(self) -> None:
        self.texts: list[str] = []

    def ref(self, text: str) -> int:
        if text not in self.texts:
            self.texts.append(text)
        return self.texts.index(text) + 1


def cell(fig: Figure | None, notes: Notes) -> str:
    if fig is None:
        return ""
    if fig.na is not None:
        return f"n/a[{notes.ref(fig.na)}]"
    if fig.error is not None:
        return f"ERROR[{notes.ref(fig.error)}]"
    spread = fig.spread_pct
    return f"{number(fig.median)} ±{spread:.0f}%" if not math.isnan(spread) else number(fig.median)


def table(sections: list[tuple[str, str, list[Row]]], out: TextIO) -> None:
    notes = Notes()
    header = ("row", "metric", "ours", "peer", "ratio", "ceiling", "ours/ceil")
    lines: list[tuple[str, ...] | str] = []
    for sid, title, rows in sections:
        lines.append(f"{sid}. {title}")
        for row in rows:
            peer = cell(row.peer, notes)
            if row.peer_name != "pynetdicom" and row.peer.ok:
                peer += f" ({row.peer_name})"
            ratio = f"{row.ratio:.2f}x" if row.ratio is not None else ""
            fraction = f"{row.fraction:.0%}" if row.fraction is not None else ""
            lines.append(
                (
                    f"  {row.label}",
                    row.unit,
                    cell(row.ours, notes),
                    peer,
                    ratio,
                    cell(row.ceiling, notes),
                    fraction,
                )
            )
        row_notes = {row.label: row.note for row in reversed(rows) if row.note}
        lines += [f"    - {label}: {note}" for label, note in reversed(row_notes.items())]
    cols = [r for r in lines if isinstance(r, tuple)]
    widths = [max(len(str(c[i])) for c in [header, *cols]) for i in range(len(header))]

    def fmt(values: tuple[str, ...]) -> str:
        first = values[0].ljust(widths[0])
        rest = [
            values[i].rjust(widths[i]) if i >= 2 else values[i].ljust(widths[i])
            for i in range(1, len(values))
        ]
        return "  ".join([first, *rest]).rstrip()

    out.write(fmt(header) + "\n" + "-" * (sum(widths) + 2 * len(widths)) + "\n")
    previous_label = None
    for line in lines:
        if isinstance(line, str):
            out.write(line + "\n")
            previous_label = None
            continue
        label = line[0] if line[0] != previous_label else ""
        previous_label = line[0]
        out.write(fmt((label, *line[1:])) + "\n")
    out.write(
        "\nratio = ours / peer; ours/ceil = ours / ceiling for rates, ceiling / ours for "
        "times; ± is half the min-max spread over the repetitions.\n"
    )
    for i, text in enumerate(notes.texts, 1):
        out.write(f"[{i}] {text}\n")


def document(
    meta: dict[str, Any], sections: list[tuple[str, str, list[Row]]], errors: list[str]
) -> dict[str, Any]:
    return {
        "meta": meta,
        "scenarios": {
            sid: {"title": title, "rows": [r.to_json() for r in rows]}
            for sid, title, rows in sections
        },
        "errors": errors,
    }


def write_json(path: Path, doc: dict[str, Any]) -> None:
    def clean(value: Any) -> Any:  # JSON has no NaN
        if isinstance(value, float) and not math.isfinite(value):
            return None
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items()}
        if isinstance(value, list):
            return [clean(v) for v in value]
        return value

    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(clean(doc), indent=2) + "\n")
