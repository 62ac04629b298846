"""The session's stderr guard (tests/stderr_guard.py) sees what a dcmups child prints."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests import stderr_guard

_WARN = "import warnings; warnings.warn('Invalid value for VR UI: abc', UserWarning)"


def run(code: str, log: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, stderr_guard.ENV: str(log)}  # a log of its own, not the session's
    return subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=30
    )


@pytest.mark.parametrize(
    "argv",
    [["python", "-m", "ups", "scp"], ["python", "/usr/local/bin/dcmups", "create"]],
    ids=["python -m ups", "dcmups"],
)
def test_a_warning_printed_by_dcmups_is_logged(tmp_path: Path, argv: list[str]) -> None:
    log = tmp_path / "warnings.log"
    done = run(f"import sys; sys.orig_argv = {argv!r}; {_WARN}", log)
    assert "UserWarning" in done.stderr  # still printed: the guard only watches
    [line] = stderr_guard.shown(log)
    assert "UserWarning: Invalid value for VR UI: abc" in line
    assert line.startswith(" ".join(argv[1:]))


def test_other_processes_are_not_its_business(tmp_path: Path) -> None:
    log = tmp_path / "warnings.log"
    run(_WARN, log)  # e.g. a pynetdicom peer decoding what a test sent on purpose
    assert stderr_guard.shown(log) == []


def test_a_warning_caught_by_dcmups_is_not_logged(tmp_path: Path) -> None:
    log = tmp_path / "warnings.log"
    code = (
        "import sys, warnings\n"
        "sys.orig_argv = ['python', '-m', 'ups']\n"
        "with warnings.catch_warnings():\n"
        "    warnings.simplefilter('ignore')\n"
        f"    {_WARN}\n"
    )
    run(code, log)
    assert stderr_guard.shown(log) == []
