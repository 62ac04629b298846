"""``dcmups probe`` through the real entry point, ``python -m ups probe``, as users run it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.services.probe.helpers import PROBE_AE, SCP_AE, free_port, reference_scp

pytestmark = pytest.mark.timeout(120)


def dcmups(*argv: str, timeout: float = 90.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ups", "probe", *argv],
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def test_json_lines_report_and_exit_status(tmp_path: Path) -> None:
    """Against our SCP run with ``--retain 0`` (finished workitems purged at once, as
    before issue 12), exactly the retained cells fail, and the probe exits 1."""
    listen = free_port()
    report = tmp_path / "probe.md"
    with reference_scp(tmp_path, listen, "--retain", "0") as port:
        done = dcmups(
            f"{SCP_AE}@127.0.0.1:{port}",
            "--aet", PROBE_AE,
            "--listen", f"{PROBE_AE}@127.0.0.1:{listen}",
            "--only", "association,state",
            "--json", "--report", str(report), "-q", "--event-timeout", "2",
        )  # fmt: skip
    assert done.returncode == 1, done.stderr  # the retention cells
    assert done.stderr == ""  # -q, and no library warning either
    rows = [json.loads(line) for line in done.stdout.splitlines()]
    assert {row["group"] for row in rows} == {"association", "state", "cleanup"}
    for row in rows:
        assert set(row) == {
            "check", "group", "reference", "expected", "observed", "verdict", "seconds",
            "detail",
        }  # fmt: skip
    failed = {row["check"] for row in rows if row["verdict"] == "fail"}
    assert failed == {
        "state.retained.complete-again",
        "state.retained.set-after-complete",
        "state.retained.get-after-complete",
    }
    text = report.read_text()
    assert text.startswith(f"# dcmups probe: {SCP_AE}@127.0.0.1:{port}")
    assert "## association" in text and "## state" in text


def test_table_progress_and_success(tmp_path: Path) -> None:
    listen = free_port()
    with reference_scp(tmp_path, listen) as port:
        done = dcmups(
            f"{SCP_AE}@127.0.0.1:{port}",
            "--aet", PROBE_AE, "--listen", f"{PROBE_AE}@127.0.0.1:{listen}",
            "--only", "association", "--final",
        )  # fmt: skip
    assert done.returncode == 0, done.stdout
    lines = done.stdout.splitlines()
    assert [c.strip() for c in lines[0].split("|")] == [
        "check", "reference", "expected", "observed", "verdict",
    ]  # fmt: skip
    assert lines[-1] == "summary: 8 checks: 7 pass, 0 fail, 0 warn, 1 n/a"  # trial: --final
    progress = [line for line in done.stderr.splitlines() if line.startswith("dcmups probe: [")]
    assert len(progress) == 7


@pytest.mark.parametrize(
    "argv",
    [
        (),
        ("A@127.0.0.1:104", "--only", "bogus"),
        ("A@127.0.0.1:104", "--only", "robustness"),
        ("A@127.0.0.1:104", "--aet", "X" * 17),
        ("A@127.0.0.1:104", "--trial", "--final"),
        ("A@127.0.0.1:104", "--listen", "nonsense"),
    ],
)
def test_usage_errors_exit_2(argv: tuple[str, ...]) -> None:
    done = dcmups(*argv, timeout=30)
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.startswith("dcmups: ")


def test_an_unreachable_scp_exits_3() -> None:
    done = dcmups(f"NOBODY@127.0.0.1:{free_port()}", "-q", timeout=30)
    assert done.returncode == 3
    assert done.stderr.splitlines() == [done.stderr.strip()]  # one line
    assert "cannot connect" in done.stderr


def test_help() -> None:
    done = dcmups("--help", timeout=30)
    assert done.returncode == 0
    assert done.stdout.startswith("usage: dcmups probe <aet>@<host>:<port> [options]")
    assert "--hostile" in done.stdout
