"""The atheris harness runs, bounded, in CI: coverage-guided inputs from the seed corpus.

A crash (any exception other than the layer's own error) makes libFuzzer exit non-zero
and write the input under ``tmp_path``; the test then fails showing the traceback.
Skipped when atheris is not installed, unless ``DCMUPS_REQUIRE_PEERS=1`` (CI).
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).parent
HARNESS = HERE / "fuzz_atheris.py"
CORPUS = HERE / "corpus"
RUNS = 2500
"""About four seconds on one shared core; the harness is the same in longer runs."""


def _require_atheris() -> None:
    if importlib.util.find_spec("atheris") is None:
        if os.environ.get("DCMUPS_REQUIRE_PEERS") == "1":
            pytest.fail("atheris is required (DCMUPS_REQUIRE_PEERS=1): pip install atheris")
        pytest.skip("atheris is not installed (pip install atheris)")


def test_seed_corpus_is_small_and_current(tmp_path: Path) -> None:
    """The checked-in corpus is what ``--make-corpus`` writes, and stays small."""
    subprocess.run(
        [sys.executable, str(HARNESS), "--make-corpus", str(tmp_path)], check=True, timeout=60
    )
    made = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    checked_in = {p.name: p.read_bytes() for p in CORPUS.iterdir()}
    assert made == checked_in
    assert sum(map(len, checked_in.values())) < 200 * 1024


@pytest.mark.timeout(90)
def test_atheris_bounded_run(tmp_path: Path) -> None:
    _require_atheris()
    new = tmp_path / "new"  # libFuzzer writes new inputs to the first directory only
    new.mkdir()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(HERE.parents[1])]))}
    result = subprocess.run(
        [
            sys.executable,
            str(HARNESS),
            f"-runs={RUNS}",
            "-max_total_time=30",
            "-seed=8",
            "-max_len=2048",
            f"-artifact_prefix={tmp_path}/",
            str(new),
            str(CORPUS),
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=80,
    )
    crashes = [p.name for p in tmp_path.iterdir() if p.name.startswith(("crash-", "oom-"))]
    assert result.returncode == 0 and not crashes, result.stderr[-4000:]
    assert f"Done {RUNS} runs" in result.stderr or "DONE" in result.stderr, result.stderr[-2000:]
