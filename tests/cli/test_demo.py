"""``dcmups demo``: the three workflows run against a local SCP and exit 0."""

from __future__ import annotations

import io

import pytest

from ups.cli.demo import run_demo

pytestmark = pytest.mark.timeout(90)


async def test_demo_runs_the_three_workflows() -> None:
    out = io.StringIO()
    assert await run_demo(out) == 0
    text = out.getvalue()
    for heading in ("== 1. Create, claim", "== 2. Subscribe and unsubscribe", "== 3. Request"):
        assert heading in text
    assert text.count("<- event UPS State Report") >= 10
    assert "<- event UPS Cancel Requested" in text
    assert "<- event UPS Progress Report" in text
    assert "Procedure Step State = COMPLETED" in text
    assert text.rstrip().endswith("demo finished: all workflows succeeded")


def test_demo_from_the_command_line() -> None:
    from ups.cli import main

    out = io.StringIO()
    assert main(["demo"], out) == 0
    assert "demo finished" in out.getvalue()
