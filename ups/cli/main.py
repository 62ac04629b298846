"""The ``dcmups`` command line: the seed tool's operations and options, spelled the same.

``dcmups <operation> <aet>[@<host>[:<port>]] [options]`` and ``dcmups -L aet[@host]:port``
exactly as dcm4che2's dcmups took them (see shared/seed/dcmups-manual.txt), plus the
additions marked "[addition]" in ``--help``. This module only dispatches: parsing is
:mod:`ups.cli.options`, what the options mean :mod:`ups.cli.configure`, the operations
:mod:`ups.cli.operations`, the processes :mod:`ups.cli.listen` (``-L``),
:mod:`ups.cli.scp`, :mod:`ups.cli.bench` and :mod:`ups.cli.demo`; every rule lives in
the library below. Every failure prints one line on stderr naming the cause and exits
with the code of the one table, :mod:`ups.cli.exits`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Awaitable, Callable, Sequence
from typing import TextIO

import ups
from ups.cli.configure import local_address, scu_options
from ups.cli.exits import Exit, UsageError, exit_code
from ups.cli.operations import prepare
from ups.cli.options import OPERATIONS, build_parser
from ups.cli.output import Printer
from ups.cli.secrets import resolve_secrets
from ups.errors import DicomError
from ups.net.loop import run as run_loop
from ups.services.scu import connect

__all__ = ["main"]


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    """Entry point of ``dcmups``; returns the exit status (:class:`~ups.cli.exits.Exit`)."""
    out = out or sys.stdout
    parser = build_parser()
    try:
        words = list(sys.argv[1:] if argv is None else argv)
        if words[:1] == ["probe"]:  # its own options: -q there is --quiet, not a key
            from ups.cli import probe

            return probe.run(words[1:], out)
        args = parser.parse_args(argv)
        if args.help:
            out.write(parser.format_help())
            return Exit.OK
        if args.version:
            out.write(f"dcmups {ups.__version__}\n")
            return Exit.OK
        resolve_secrets(args)
        return _dispatch(args, out)
    except KeyboardInterrupt as exc:
        print("dcmups: interrupted", file=sys.stderr)
        return exit_code(exc)
    except UsageError as exc:
        print(f"dcmups: {exc}", file=sys.stderr)
        print("Try 'dcmups --help' for more information.", file=sys.stderr)
        return exit_code(exc)
    except (DicomError, OSError) as exc:
        message = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        print(f"dcmups: {message}", file=sys.stderr)
        return exit_code(exc)


def _dispatch(args: argparse.Namespace, out: TextIO) -> int:
    op = args.operation
    if op is None:
        if args.L:
            return _run_listener(args, out)
        raise UsageError("missing <operation> (or -L to listen only)")
    if op not in OPERATIONS:
        raise UsageError(f"unknown operation {op!r}; choose from {', '.join(OPERATIONS)}")
    if op == "demo":
        from ups.cli.demo import run_demo

        return run_loop(run_demo(out))
    if op == "bench":
        from ups.cli.bench import run_from_args

        return run_from_args(args, out)
    if args.target is not None:
        raise UsageError(f"unexpected argument {args.target!r}")
    if op == "scp":
        from ups.cli import scp

        return scp.run(args, out)
    if not args.remote:
        raise UsageError(f"{op} requires the remote <aet>[@<host>[:<port>]]")
    operation = prepare(args)
    printer = Printer(out, args.json)
    if args.L and local_address(args).port is not None:  # aet[@host]:port: listen as well

        async def then() -> int:
            return await operation.run(printer)

        return _run_listener(args, out, operation_run=then)
    return run_loop(operation.run(printer))


def _run_listener(
    args: argparse.Namespace,
    out: TextIO,
    operation_run: Callable[[], Awaitable[int]] | None = None,
) -> int:
    """-L: listen for event reports; with an operation, run it once the port is bound.

    ``subscribe ... -L`` keeps listening and, on the way out, unsubscribes with the same
    association options (SOP class family, transfer syntaxes, identity, TLS).
    """
    from ups.cli.listen import run_listen

    cleanup = None
    if operation_run is not None and args.operation == "subscribe":

        async def cleanup() -> int:
            async with connect(args.remote, scu_options(args)) as scu:
                Printer(out, args.json).result(await scu.unsubscribe(args.aet, args.iuid))
            return Exit.OK

    return run_listen(args, out, operation_run, cleanup)
