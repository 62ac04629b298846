"""CI runs the whole benchmark harness once at its tiny size, so it cannot rot.

Every scenario must be present and every row's "ours" and "peer" cells must hold either a
figure or an explicit n/a reason; any measurement error fails the run (non-zero exit). The
core comparisons must have been measured on both sides: pynetdicom's and ours.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCENARIOS = {str(i) for i in range(1, 15)}


def _check_cell(cell: object, where: str) -> None:
    assert isinstance(cell, dict), where
    if "na" in cell:
        assert isinstance(cell["na"], str) and cell["na"], f"{where}: n/a without a reason"
        return
    assert "error" not in cell, f"{where}: {cell['error']}"
    assert isinstance(cell.get("median"), (int, float)), f"{where}: no figure: {cell}"
    assert len(cell["reps"]) >= 1, where


@pytest.mark.interop
@pytest.mark.timeout(300)
def test_tiny_run_reports_every_scenario(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--size", "tiny", "--json-out", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=280,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    doc = json.loads(out.read_text())
    assert set(doc["scenarios"]) == SCENARIOS
    assert doc["errors"] == []
    assert doc["meta"]["size"] == "tiny"
    for sid, section in doc["scenarios"].items():
        assert section["rows"], f"scenario {sid} has no rows"
        for row in section["rows"]:
            for side in ("ours", "peer"):
                _check_cell(row[side], f"{row['id']} {side}")
            if row["ceiling"] is not None:
                _check_cell(row["ceiling"], f"{row['id']} ceiling")
    # The peer side of the core comparisons must really have been measured.
    peer = {row["id"]: row["peer"] for s in doc["scenarios"].values() for row in s["rows"]}
    for rid in (
        "1.listener.rate",
        "1.listener.cpu_us",
        "3.concurrent16.rate",
        "4.echo.rate",
        "4.nget.rate",
        "5.open-release.rate",
        "6.idle.rss_kb_per_assoc",
        "8.codec.roundtrip_us",
        "9.json.w1.rate",
        "9.json.w16.rate",
        "9.workers2.rate",
        "10.pyn-sender.rate",
    ):
        assert "median" in peer[rid], f"{rid}: {peer[rid]}"
    # Our side is switched on: every core comparison has our figure too.
    ours = {row["id"]: row["ours"] for s in doc["scenarios"].values() for row in s["rows"]}
    for rid in (
        "1.sender.pyn-listener.rate",
        "1.sender.our-listener.rate",
        "1.listener.rate",
        "1.listener.cpu_us",
        "2.window16.rate",
        "2.listener-window16.rate",
        "3.concurrent16.rate",
        "3.scale.a16.w2.rate",
        "3.scale.a16.w2.cores",
        "4.echo.rate",
        "4.nget.rate",
        "5.open-release.rate",
        "6.idle.rss_kb_per_assoc",
        "8.codec.roundtrip_us",
        "9.json.w1.rate",
        "9.json.w1.cpu_us",
        "9.json.w16.rate",
        "9.quiet.w1.rate",
        "9.quiet.w16.rate",
        "9.listen.w1.rate",
        "9.listen.w16.rate",
        "9.serve-events.w1.rate",
        "9.workers2.rate",
        "9.workers2.cpu_us",
        "10.pyn-sender.rate",
        "11.listener.items.answer_ms",
        "11.scp.items.answer_ms",
        "14.sqlite.create.rate",
        "14.sqlite.claim.rate",
        "14.sqlite.find.rate",
        "14.sqlite.find.scp_cpu_us",
    ):
        assert "median" in ours[rid], f"ours {rid}: {ours[rid]}"
    # The daemon rows carry the canned responder's ceiling.
    ceiling = {row["id"]: row["ceiling"] for s in doc["scenarios"].values() for row in s["rows"]}
    for rid in ("9.json.w1.rate", "9.json.w16.rate", "9.workers2.rate"):
        assert "median" in ceiling[rid], f"ceiling {rid}: {ceiling[rid]}"
    assert "median" in doc["scenarios"]["7"]["rows"][0]["ceiling"]
    assert "events/s" in proc.stdout and "ours/ceil" in proc.stdout
