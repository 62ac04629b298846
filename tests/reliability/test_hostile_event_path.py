"""Hostile data sets against ``dcmups -L`` and ``dcmups scp``, as users run them.

Each shape is one request over a raw association (``bench.hostile``): 1,000,000 empty
items in one sequence, 10,000-deep nesting, a value length of 0xFFFFFFF0, an SQ sent as
LO and as UL, and data PDVs that never end. Every one must be answered (a failure status
or an A-ABORT) within a second, while a second association's C-ECHOs, one every 20 ms,
keep being answered within 100 ms; the program's peak memory may grow by at most
160 MiB over its baseline and must come back to within 10% plus 16 MiB of it.

One program per target serves every shape; its peak (VmHWM) is reset before each one
through ``/proc/PID/clear_refs`` (Linux, as root or the same user).
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench import daemons, hostile

pytestmark = [
    pytest.mark.timeout(180),
    pytest.mark.skipif(
        not Path("/proc/self/clear_refs").exists(), reason="needs Linux /proc/PID/clear_refs"
    ),
]

SHAPES = [
    ("items", 1_000_000),
    ("deep", 10_000),
    ("huge-length", 0),
    ("sq-as-lo", 0),
    ("sq-as-ul", 0),
    ("endless", 80_000_000),
]
ANSWER_WITHIN_S = 1.0
ECHO_WITHIN_MS = 100.0
PEAK_OVER_BASELINE_MB = 160.0


@pytest.fixture(scope="module", params=["listener", "scp"])
def program(request: pytest.FixtureRequest) -> Iterator[tuple[str, daemons.Program]]:
    target = str(request.param)
    with daemons.listener("--json") if target == "listener" else daemons.scp() as started:
        yield target, started


def _reset_peak(pid: int) -> None:
    Path(f"/proc/{pid}/clear_refs").write_text("5")


def _settled_rss(prog: daemons.Program, bound_mb: float, within_s: float = 3.0) -> float:
    """RSS once it is back under ``bound_mb``, or what it is after ``within_s``.

    Freed memory leaves the process as the allocator returns it; this waits for that,
    bounded, and reports the last reading either way."""
    deadline = time.monotonic() + within_s
    rss = prog.memory_mb()
    while rss > bound_mb and time.monotonic() < deadline:
        time.sleep(0.05)
        rss = prog.memory_mb()
    return rss


@pytest.mark.parametrize(("shape", "size"), SHAPES, ids=[s for s, _ in SHAPES])
def test_hostile_data_set_is_answered_fast_and_leaves_nothing(
    program: tuple[str, daemons.Program], shape: str, size: int
) -> None:
    target, prog = program
    baseline = prog.memory_mb()
    _reset_peak(prog.pid)
    result = asyncio.run(
        hostile.run("127.0.0.1", prog.port, shape, target=target, size=size, timeout=30.0)
    )
    assert result["answered"], result
    answer = str(result["answer"])
    assert answer.startswith(("status 0x0213", "status 0x0110", "A-ABORT")), answer
    assert result["answer_s"] < ANSWER_WITHIN_S, result
    assert result["echo_ok"] == 1.0 and result["echo_sent"] >= 1, result
    assert result["echo_worst_ms"] < ECHO_WITHIN_MS, result
    peak = prog.memory_mb("VmHWM")
    assert peak - baseline <= PEAK_OVER_BASELINE_MB, (baseline, peak)
    bound = baseline * 1.1 + 16
    after = _settled_rss(prog, bound)
    assert after <= bound, (baseline, peak, after)
    assert prog.alive() and os.path.exists(f"/proc/{prog.pid}")


@pytest.mark.parametrize(("items", "answer"), [(100, "status 0x0000"), (101, "status 0x0213")])
def test_limits_option_sets_the_listeners_limits(items: int, answer: str) -> None:
    """``--limits items=100``: a sequence of 100 items is taken, 101 refused (0x0213)."""
    with daemons.listener("--json", "--limits", "items=100,depth=4") as prog:
        result = asyncio.run(
            hostile.run("127.0.0.1", prog.port, "items", target="listener", size=items)
        )
    assert result["answer"] == answer, result


def test_limits_option_reaches_the_scp() -> None:
    from ups.cli.options import build_parser
    from ups.cli.scp import scp_options

    args = build_parser().parse_args(
        ["scp", "UPSSCP@127.0.0.1:0", "--db", "x.sqlite", "--limits", "elements=7,value=64"]
    )
    limits = scp_options(args).scan_limits
    assert (limits.max_elements, limits.max_value_length, limits.max_items) == (7, 64, 10_000)
