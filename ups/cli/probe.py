"""``dcmups probe``: its own options, turned into ``ProbeOptions`` for the probe library.

The probe has options of its own (``-q`` there is ``--quiet``, not the seed's matching
key), so ``main`` hands it the words after ``probe`` and this module parses them.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from ups.cli.exits import Exit, UsageError
from ups.cli.options import ADDED, _Parser
from ups.services.address import check_ae_title, parse_listen, parse_remote
from ups.services.errors import AddressError
from ups.services.probe import GROUPS, ProbeOptions, run_probe

__all__ = ["run"]


def _parser() -> _Parser:
    p = _Parser(
        prog="dcmups probe",
        usage="dcmups probe <aet>@<host>:<port> [options]",
        description="Run the UPS conformance suite (PS3.4 Annex CC, PS3.7, PS3.8) against a "
        "remote UPS SCP and print check | reference | expected | observed | verdict. "
        f"Exit 0 when no check failed, 1 otherwise. {ADDED}",
        allow_abbrev=False,
        add_help=False,
    )
    add = p.add_argument
    add("remote", nargs="?", metavar="<aet>@<host>:<port>", help="the UPS SCP")
    add("-h", "--help", action="store_true", help="print this message")
    add("--aet", metavar="<aet>", default="DCMUPS-PROBE", help="calling AE title (DCMUPS-PROBE)")
    add(
        "--listen",
        metavar="<aet>@<host>:<port>",
        help="receive events as <aet> there; the SCP must know that AE and address "
        "(default: --aet on a free port of 0.0.0.0)",
    )
    add("--json", action="store_true", help="one JSON object per check")
    add("--report", metavar="<file.md>", help="write a Markdown report")
    add(
        "--only",
        metavar="<group>",
        action="append",
        default=[],
        help=f"run only these groups (repeatable, or comma-separated): {', '.join(GROUPS)}",
    )
    family = p.add_mutually_exclusive_group()
    family.add_argument("--trial", action="store_true", help="use the retired trial UPS UIDs")
    family.add_argument("--final", action="store_true", help="use the final UPS UIDs")
    add(
        "--hostile",
        action="store_true",
        help="also run the robustness group (malformed UIDs, an oversized data set, an "
        "unknown action, a duplicate Message ID): it may upset a production SCP",
    )
    add("-q", "--quiet", action="store_true", help="no progress on stderr")
    add("--event-timeout", metavar="<s>", type=float, default=5.0, help="wait for an event (5)")
    return p


def run(argv: Sequence[str], out: TextIO) -> int:
    """``dcmups probe ARGS``: exit 0 when no check failed, 1 when one did (2 usage, 3 network)."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.help:
        out.write(parser.format_help())
        return Exit.OK
    if not args.remote:
        raise UsageError("probe requires the remote <aet>@<host>:<port>")
    try:
        called, host, port = parse_remote(args.remote)
        check_ae_title(args.aet, "--aet")
        listen = parse_listen(args.listen or f"{args.aet}@0.0.0.0:0", what="--listen")
        options = ProbeOptions(
            called_ae=called,
            host=host,
            port=port,
            calling_ae=args.aet,
            listen_ae=listen.ae_title,
            listen_host=listen.host or "0.0.0.0",
            listen_port=listen.port,
            family="trial" if args.trial else "final" if args.final else "auto",
            only=frozenset(g.strip() for spec in args.only for g in spec.split(",") if g),
            hostile=args.hostile,
            json=args.json,
            report=Path(args.report) if args.report else None,
            quiet=args.quiet,
            event_timeout=args.event_timeout,
        )
    except (AddressError, ValueError) as exc:
        raise UsageError(str(exc)) from None
    return run_probe(options, out)
