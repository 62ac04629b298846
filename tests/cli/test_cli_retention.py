"""A finished UPS is still there for a performer's retry, after ``kill -9`` too (issue 12).

``dcmups scp`` runs as a child process; the workflow is the README's complete-a-UPS and
cancel walkthroughs, command for command, with their ``-s`` keys (the Final State
attributes of PS3.4 Table CC.2.5-3). Then, within the retention window and without a
Deletion Lock: repeating COMPLETED is the B306 warning (exit 0), N-SET is C300 (exit 1),
``get`` shows COMPLETED; the same after the SCP was killed with SIGKILL and restarted on
its database. ``--retain 0`` purges at once, as before.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest
from pydicom.uid import generate_uid

from tests.cli.dcmups_process import command, running
from ups.cli.options import duration

pytestmark = pytest.mark.timeout(120)

P = "UnifiedProcedureStepPerformedProcedureSequence"
COMPLETE_KEYS = [
    f"{P}/PerformedStationNameCodeSequence/CodeValue=CT01",
    f"{P}/PerformedStationNameCodeSequence/CodingSchemeDesignator=99LOCAL",
    f"{P}/PerformedStationNameCodeSequence/CodeMeaning=CT scanner 1",
    f"{P}/PerformedWorkitemCodeSequence/CodeValue=RECON",
    f"{P}/PerformedWorkitemCodeSequence/CodingSchemeDesignator=99LOCAL",
    f"{P}/PerformedWorkitemCodeSequence/CodeMeaning=Reconstruction",
    f"{P}/PerformedProcedureStepStartDateTime=20261205090000",
    f"{P}/PerformedProcedureStepEndDateTime=20261205093000",
    f"{P}/OutputInformationSequence=",
]
"""The README's ``-s`` keys before ``chstate ... -state COMPLETED``."""

R = "ProcedureStepProgressInformationSequence/ProcedureStepDiscontinuationReasonCodeSequence"
CANCEL_KEYS = [
    f"{R}/CodeValue=110513",
    f"{R}/CodingSchemeDesignator=DCM",
    f"{R}/CodeMeaning=Discontinued for unspecified reason",
]
"""The README's ``-s`` keys before ``chstate ... -state CANCELED``."""


def dcmups(*argv: str) -> tuple[int, str, str]:
    done = subprocess.run(
        [*command(), *argv], capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL
    )
    return done.returncode, done.stdout, done.stderr


def ok(*argv: str) -> list[dict[str, Any]]:
    code, out, err = dcmups(*argv, "--json")
    assert code == 0 and err == "", (argv, code, err)
    return [json.loads(line) for line in out.splitlines()]


def state_of(remote: str, iuid: str) -> str:
    [result] = ok("get", remote, "-iuid", iuid, "-r", "ProcedureStepState")
    return str(result["dataset"]["00741000"]["Value"][0])


def complete(remote: str) -> tuple[str, str]:
    """The README's walkthrough: create, claim, set the Final State keys, complete."""
    iuid, tuid = str(generate_uid()), str(generate_uid())
    ok("create", remote, "-iuid", iuid, "-s", "ProcedureStepLabel=CT reconstruction")
    ok("chstate", remote, "-iuid", iuid, "-tuid", tuid, "-state", "IN PROGRESS")
    ok("set", remote, "-iuid", iuid, "-tuid", tuid, *_each("-s", COMPLETE_KEYS))
    ok("chstate", remote, "-iuid", iuid, "-tuid", tuid, "-state", "COMPLETED")
    return iuid, tuid


def _each(option: str, values: list[str]) -> list[str]:
    return [word for value in values for word in (option, value)]


def assert_retained(remote: str, iuid: str, tuid: str) -> None:
    code, out, err = dcmups("chstate", remote, "-iuid", iuid, "-tuid", tuid, "-state", "COMPLETED")
    assert code == 0 and err == "", err  # a warning is success
    assert "B306 Warning - The UPS is already in the requested state of COMPLETED" in out
    code, _, err = dcmups("set", remote, "-iuid", iuid, "-tuid", tuid, "-s", "ProcedureStepLabel=x")
    assert code == 1 and "C300" in err, err
    assert state_of(remote, iuid) == "COMPLETED"


def test_complete_retry_and_get_survive_kill_9(tmp_path: Path) -> None:
    with running("scp", [], tmp_path) as scp:
        remote = f"UPSSCP@127.0.0.1:{scp.port}"
        iuid, tuid = complete(remote)
        assert_retained(remote, iuid, tuid)
        os.kill(scp.pid, signal.SIGKILL)
        scp.proc.wait(10)
    assert scp.proc.returncode == -signal.SIGKILL
    with running("scp", [], tmp_path) as scp:  # the same database
        remote = f"UPSSCP@127.0.0.1:{scp.port}"
        assert_retained(remote, iuid, tuid)
    assert scp.proc.returncode == 0, scp.err
    assert "Warning" not in scp.err


def test_the_cancel_walkthrough(tmp_path: Path) -> None:
    with running("scp", [], tmp_path) as scp:
        remote = f"UPSSCP@127.0.0.1:{scp.port}"
        iuid, tuid = str(generate_uid()), str(generate_uid())
        ok("create", remote, "-iuid", iuid)
        ok("chstate", remote, "-iuid", iuid, "-tuid", tuid, "-state", "IN PROGRESS")
        ok("set", remote, "-iuid", iuid, "-tuid", tuid, *_each("-s", CANCEL_KEYS))
        ok("chstate", remote, "-iuid", iuid, "-tuid", tuid, "-state", "CANCELED")
        assert state_of(remote, iuid) == "CANCELED"
        scheduled = str(generate_uid())
        ok("create", remote, "-iuid", scheduled)
        ok("reqcancel", remote, "-iuid", scheduled, "-aet", "ME", "--reason", "Ordered twice")
        assert state_of(remote, scheduled) == "CANCELED"


def test_retain_0_purges_at_once(tmp_path: Path) -> None:
    with running("scp", ["--retain", "0"], tmp_path) as scp:
        remote = f"UPSSCP@127.0.0.1:{scp.port}"
        iuid, _ = complete(remote)
        code, _, err = dcmups("get", remote, "-iuid", iuid)
        assert code == 1 and "C307" in err


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("3600", 3600), ("90s", 90), ("15m", 900), ("1h", 3600), ("2d", 172800), ("0", 0),
     ("1.5h", 5400)],
)  # fmt: skip
def test_retain_durations(text: str, seconds: float) -> None:
    assert duration(text) == seconds


@pytest.mark.parametrize("text", ["", "-5", "1w", "h", "1 h x", "5x"])
def test_a_bad_retain_is_a_usage_error(tmp_path: Path, text: str) -> None:
    db = str(tmp_path / "x")
    code, _, err = dcmups("scp", "UPSSCP@127.0.0.1:0", "--db", db, "--retain", text)
    assert code == 2 and "--retain" in err and "Traceback" not in err
    assert not (tmp_path / "x").exists()


def test_the_readme_shows_these_walkthroughs() -> None:
    """The README's complete-a-UPS and cancel walkthroughs use exactly these keys."""
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    start = readme.index("#### Completing and canceling a UPS")
    section = readme[start : readme.index("\n### ", start + 1)]
    shown = section.replace("$P/", f"{P}/").replace("$R/", f"{R}/")
    for key in COMPLETE_KEYS + CANCEL_KEYS:
        assert key in shown, key
    assert "-state COMPLETED" in section and "-state CANCELED" in section
