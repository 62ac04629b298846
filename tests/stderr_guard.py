"""One check over the whole test run: no library warning on the stderr of a ``dcmups``.

pydicom prints a ``UserWarning`` (with a site-packages path) for every value PS3.5 does
not allow; issue 12 asks that none ever reaches a user's terminal, from the CLI or the
SCP. Many tests start ``dcmups`` (or ``python -m ups``) as a child process and read its
stderr for their own purposes, through several helpers; this guard watches all of them
at the source instead of trusting each helper to look:

* :func:`install` (run by ``tests/conftest.py`` when the session starts) writes a
  ``sitecustomize`` module to a temporary directory and puts it first on the
  ``PYTHONPATH`` every child inherits. In a process that is ``dcmups``, it wraps
  ``warnings.showwarning`` (what prints a warning to stderr) so that every warning
  that would be printed is also appended to the session's log file;
* :func:`shown` reads that log when the session ends; ``tests/conftest.py`` fails the
  run when it holds anything, naming the process and the warning.

In-process SCP, CLI and probe tests get ``error::UserWarning`` instead (also from
``tests/conftest.py``), so a pydicom warning there fails the test that caused it.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["ENV", "SITECUSTOMIZE", "install", "shown"]

ENV = "DCMUPS_TEST_WARNINGS_LOG"
"""The environment variable naming the log file children append to."""

SITECUSTOMIZE = '''\
"""Test-run guard (tests/stderr_guard.py): log every warning a dcmups process prints."""
import os
import sys
import warnings

_LOG = os.environ.get("DCMUPS_TEST_WARNINGS_LOG")


def _is_dcmups(argv):
    """``dcmups ...`` (the console script) or ``python -m ups ...``."""
    head = [os.path.basename(word) for word in argv[:2]]
    if "dcmups" in head:
        return True
    return any(a == "-m" and b in ("ups", "ups.__main__") for a, b in zip(argv, argv[1:]))


if _LOG:
    _shown = warnings.showwarning

    def _log_and_show(message, category, filename, lineno, file=None, line=None):
        argv = list(getattr(sys, "orig_argv", sys.argv))
        if _is_dcmups(argv):
            text = " ".join(str(message).split())
            where = " ".join(argv[1:6])
            with open(_LOG, "a", encoding="utf-8") as log:
                log.write(f"{where}: {filename}:{lineno}: {category.__name__}: {text}\\n")
        _shown(message, category, filename, lineno, file, line)

    warnings.showwarning = _log_and_show
'''


def install(directory: Path) -> Path:
    """Write the guard into ``directory``, export it to children; the log's path."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "sitecustomize.py").write_text(SITECUSTOMIZE, encoding="utf-8")
    log = directory / "warnings.log"
    log.touch()
    path = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = str(directory) + (os.pathsep + path if path else "")
    os.environ[ENV] = str(log)
    return log


def shown(log: Path) -> list[str]:
    """The warnings ``dcmups`` processes printed so far, one line each."""
    try:
        return [line for line in log.read_text(encoding="utf-8").splitlines() if line]
    except OSError:
        return []
