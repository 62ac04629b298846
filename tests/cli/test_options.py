"""The parser: the options the old ``python -m ups.services.*`` entry points had are
``dcmups`` options now, each marked [addition] in ``--help``."""

from __future__ import annotations

from io import StringIO

import pytest

from ups.cli import main
from ups.cli.configure import association_config
from ups.cli.options import ADDED, build_parser

# Options that only ``python -m ups.services.daemon`` / ``python -m ups.services.scp`` had.
FROM_OLD_ENTRY_POINTS = (
    "--buffer",
    "--stats-interval",
    "--grace",
    "--any-called-ae",
    "--event-idle",
    "--retry-initial",
    "--retry-max",
    "--no-announce",
    "--verbose",
)


def _help_entry(option: str) -> str:
    text = StringIO()
    assert main(["--help"], out=text) == 0
    lines = text.getvalue().splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip().startswith(option + " "))
    entry = [lines[start]]
    for line in lines[start + 1 :]:
        if not line.startswith("   "):  # the next option (two spaces) or section
            break
        entry.append(line)
    return " ".join(" ".join(entry).split())


@pytest.mark.parametrize("option", FROM_OLD_ENTRY_POINTS)
def test_old_entry_point_options_are_marked_additions(option: str) -> None:
    assert ADDED in _help_entry(option)


def test_defaults() -> None:
    args = build_parser().parse_args(["-L", "ME:11113"])
    assert (args.buffer, args.stats_interval, args.grace) == (1000, 10.0, 5.0)
    assert not args.any_called_ae and not args.no_announce and not args.verbose
    assert (args.event_idle, args.retry_initial, args.retry_max) == (None, None, None)
    assert args.window is None  # -L/scp: 64, bench: 1


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["-L", "ME@127.0.0.1:0", "--buffer", "0"], "--buffer"),
        (["-L", "ME@127.0.0.1:0", "--stats-interval", "0"], "--stats-interval"),
        (["-L", "ME@127.0.0.1:0", "--grace", "-1"], "--grace"),
        (["-L", "ME@127.0.0.1:0", "--window", "-1"], "--window"),
        (["-L", "ME@127.0.0.1:0", "--workers", "0"], "--workers"),
        (["scp", "S@127.0.0.1:0", "--db", "x.db", "--retry-initial", "0"], "--retry-initial"),
        (["scp", "S@127.0.0.1:0", "--db", "x.db", "--retry-max", "-2"], "--retry-max"),
        (["scp", "S@127.0.0.1:0", "--db", "x.db", "--event-idle", "-1"], "--event-idle"),
        (["scp", "S@127.0.0.1:0", "--db", "x.db", "--grace", "-1"], "--grace"),
        (["-L", "ME@127.0.0.1:0", "-sendTO", "-1"], "-sendTO"),
    ],
)
def test_bad_values_are_usage_errors(
    argv: list[str], fragment: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv, out=StringIO()) == 2
    err = capsys.readouterr().err
    assert err.startswith("dcmups: ") and fragment in err.splitlines()[0]


@pytest.mark.parametrize(("given", "seconds"), [([], 10.0), (["500"], 0.5), (["0"], None)])
def test_send_timeout_in_ms_zero_for_never(given: list[str], seconds: float | None) -> None:
    """-sendTO (issue 17): milliseconds like -acceptTO/-rspTO; 0 turns the deadline off."""
    argv = ["scp", "S@127.0.0.1:0", "--db", "x.db", *(["-sendTO", *given] if given else [])]
    assert association_config(build_parser().parse_args(argv)).send_timeout == seconds
    assert ADDED in _help_entry("-sendTO")
