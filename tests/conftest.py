"""Session-wide settings and guards.

Hypothesis explores new examples on every local run (that is how the scanner's edge
cases were found); CI runs a fixed, derandomized sequence (``HYPOTHESIS_PROFILE=ci``,
set by ``.ci/run``) so that a landing is judged on the same examples each time.

No library warning may reach a ``dcmups`` stderr. See :mod:`tests.stderr_guard`: every
``dcmups`` child process the tests start logs each warning it prints, and the session
fails at its end when any did. SCP, CLI and probe tests run with ``error::UserWarning``
(below any filter a test sets itself), so a pydicom warning in the SCP or the CLI fails
the test that caused it.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
from hypothesis import settings

from tests import stderr_guard

settings.register_profile("ci", derandomize=True, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))

_STRICT = ("tests/cli/", "tests/services/scp/", "tests/services/probe/")
"""Where the code under test is the CLI or the SCP, run in the test process."""

_log: Path | None = None


def pytest_configure(config: pytest.Config) -> None:
    global _log
    _log = stderr_guard.install(Path(tempfile.mkdtemp(prefix="dcmups-stderr-guard-")))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    strict = pytest.mark.filterwarnings("error::UserWarning")
    for item in items:
        path = Path(str(item.path)).as_posix()
        if any(part in path for part in _STRICT):
            item.add_marker(strict, append=False)  # a test's own filter still wins


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    lines = stderr_guard.shown(_log) if _log is not None else []
    if lines:
        terminalreporter.section("warnings printed by dcmups processes (issue 12)", red=True)
        for line in lines:
            terminalreporter.line(line)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if _log is not None and stderr_guard.shown(_log) and exitstatus == 0:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
