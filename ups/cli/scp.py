"""``dcmups scp``: the reference UPS SCP as a process, until SIGINT or SIGTERM.

:func:`scp_options` maps the command line onto
:class:`~ups.services.scp.SCPOptions`; :func:`run_scp` serves until a signal, then
stops accepting, lets open associations release within ``--grace`` seconds, tells the
subscribers GOING DOWN (unless ``--no-announce``) and closes the store. The first line
on standard output says where it listens (``UPS SCP <aet> listening on <host>:<port>``).
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from pathlib import Path
from typing import TextIO

from ups.cli.configure import association_config, window
from ups.cli.exits import Exit, UsageError, UserInputError
from ups.cli.output import log_to_stderr
from ups.net.loop import run as run_loop
from ups.services.access import calling_ae_set, load_users
from ups.services.address import parse_listen
from ups.services.scp import UPSSCP, SCPOptions
from ups.services.scp.config import ae_table
from ups.services.scp.stores import is_postgres_url, shown
from ups.services.uids import IMPLICIT_VR_LITTLE_ENDIAN

__all__ = ["run", "run_scp", "scp_options"]


def _seconds(args: argparse.Namespace, name: str, default: float, *, zero: bool) -> float:
    """A seconds option, or the SCP's default when it is not given (0 kept where allowed)."""
    value: float | None = getattr(args, name)
    if value is None:
        return default
    if value < 0 or (value == 0 and not zero):
        floor = "at least 0" if zero else "greater than 0"
        raise UsageError(f"--{name.replace('_', '-')} must be {floor}")
    return value


def database(text: str) -> str | Path:
    """``--db``: the path of an SQLite file, or a ``postgresql://user@host:port/dbname``
    URL; another URL scheme is refused (its password never repeated on the terminal)."""
    if is_postgres_url(text):
        return text
    scheme, sep, rest = text.partition("://")
    if sep and scheme.replace("+", "").isalpha():
        raise UserInputError(
            f"--db {shown(text)}: {scheme} is not a supported database;"
            " --db takes the path of an SQLite file or a postgresql:// URL"
        )
    return Path(text)


def scp_options(args: argparse.Namespace) -> SCPOptions:
    """SCPOptions from ``dcmups scp <aet>@<host>:<port> --db PATH [options]``."""
    ae_title, host, port = parse_listen(args.remote, require_host=True)
    files = [args.ae_config] if args.ae_config else []
    base = SCPOptions()
    return SCPOptions(
        ae_title=ae_title,
        host=host,
        port=port,
        db=database(args.db),
        remote_aes=ae_table(args.ae, files),
        config=association_config(args),
        transfer_syntaxes=(IMPLICIT_VR_LITTLE_ENDIAN,) if args.ivrle else base.transfer_syntaxes,
        any_called_ae=args.any_called_ae,
        max_ops_performed=window(args),
        event_idle=_seconds(args, "event_idle", base.event_idle, zero=True),
        retry_initial=_seconds(args, "retry_initial", base.retry_initial, zero=False),
        retry_max=_seconds(args, "retry_max", base.retry_max, zero=False),
        announce_status=not args.no_announce,
        calling_ae_titles=calling_ae_set(args.accept_aet),
        verify_identity=load_users(args.users) if args.users else None,
        scan_limits=args.limits,
        retain=base.retain if args.retain is None else args.retain,
        delivery_lease=_seconds(args, "lease", base.delivery_lease, zero=False),
    )


async def run_scp(options: SCPOptions, out: TextIO, *, grace: float = 5.0) -> int:
    """Serve until SIGINT or SIGTERM, then shut down cleanly; the exit status.

    The signal handlers are in place before the line saying where it listens, so a
    signal sent as soon as that line is read is a clean stop too.
    """
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    installed: list[signal.Signals] = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
            installed.append(sig)
        except (NotImplementedError, RuntimeError):  # pragma: no cover - not on Windows
            pass
    scp = UPSSCP(options)
    try:
        await scp.start()
    except BaseException:
        _remove(loop, installed)
        raise
    print(
        f"UPS SCP {options.ae_title} listening on {options.host}:{scp.port}"
        f" (database {shown(options.db)})",
        file=out,
        flush=True,
    )
    try:
        await stop.wait()
    finally:
        _remove(loop, installed)
        await scp.close(grace)
    print(f"UPS SCP {options.ae_title} stopped", file=out, flush=True)
    return Exit.OK


def _remove(loop: asyncio.AbstractEventLoop, installed: list[signal.Signals]) -> None:
    for sig in installed:
        loop.remove_signal_handler(sig)


def run(args: argparse.Namespace, out: TextIO) -> int:
    """``dcmups scp``: check the command line, then serve until a signal."""
    if not args.remote:
        raise UsageError("scp requires <aet>@<host>:<port> to listen on")
    if not args.db:
        raise UsageError("scp requires --db PATH or --db postgresql://user@host:port/dbname")
    if args.grace < 0:
        raise UsageError("--grace must be at least 0")
    options = scp_options(args)
    if args.verbose:
        log_to_stderr()
    return run_loop(run_scp(options, out, grace=args.grace))
