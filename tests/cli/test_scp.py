"""``dcmups scp``: the command line onto SCPOptions, and the SCP as a process."""

from __future__ import annotations

import argparse
import asyncio
import selectors
import socket
import time
from pathlib import Path
from typing import Any

import pytest

import ups
from tests.cli.dcmups_process import Child, running
from ups.cli import scp as cli_scp
from ups.cli.options import build_parser
from ups.cli.scp import scp_options
from ups.net.errors import AssociationRejected
from ups.services.scp import UPSSCP, SCPOptions

pytestmark = pytest.mark.timeout(40)


def _args(*extra: str, db: str = "x.db") -> argparse.Namespace:
    return build_parser().parse_args(["scp", "UPSSCP@127.0.0.1:0", "--db", db, *extra])


def test_defaults_are_the_scps() -> None:
    got, base = scp_options(_args()), SCPOptions()
    assert (got.ae_title, got.host, got.port) == ("UPSSCP", "127.0.0.1", 0)
    assert got.max_ops_performed == base.max_ops_performed == 64
    assert (got.event_idle, got.retry_initial, got.retry_max) == (2.0, 1.0, 60.0)
    assert got.announce_status and not got.any_called_ae


def test_timing_options() -> None:
    """--event-idle, --retry-initial, --retry-max: what python -m ups.services.scp took."""
    args = _args("--event-idle", "0.5", "--retry-initial", "0.1", "--retry-max", "0.3")
    got = scp_options(args)
    assert (got.event_idle, got.retry_initial, got.retry_max) == (0.5, 0.1, 0.3)


def test_zero_means_zero() -> None:
    """``--window 0`` is unlimited and ``--event-idle 0`` releases at once; neither
    turns into the default (the old options_from_args used ``value or default``)."""
    got = scp_options(_args("--window", "0", "--event-idle", "0"))
    assert got.max_ops_performed == 0 and got.event_idle == 0.0


def test_no_announce_and_any_called_ae() -> None:
    got = scp_options(_args("--no-announce", "--any-called-ae"))
    assert not got.announce_status and got.any_called_ae


def test_grace_reaches_the_shutdown(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, Any] = {}

    async def fake_run_scp(options: SCPOptions, out: object, *, grace: float) -> int:
        seen["grace"] = grace
        return 0

    monkeypatch.setattr(cli_scp, "run_scp", fake_run_scp)
    assert cli_scp.run(_args("--grace", "0.25"), out=None) == 0  # type: ignore[arg-type]
    assert seen == {"grace": 0.25}


async def test_any_called_ae_is_served(tmp_path: Path) -> None:
    strict = scp_options(_args(db=str(tmp_path / "a.db")))
    async with UPSSCP(strict) as scp:
        with pytest.raises(AssociationRejected):
            async with ups.connect(f"OTHER@127.0.0.1:{scp.port}") as scu:
                await scu.echo()
    loose = scp_options(_args("--any-called-ae", db=str(tmp_path / "b.db")))
    async with UPSSCP(loose) as scp:
        async with ups.connect(f"OTHER@127.0.0.1:{scp.port}") as scu:
            assert (await scu.echo()).status == 0


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _subscribe_unreachable(port: int) -> None:
    async with ups.connect(f"UPSSCP@127.0.0.1:{port}") as scu:
        created = await scu.create()
        assert created.iuid is not None
        await scu.subscribe("DOWN", created.iuid)  # its initial State Report cannot go


def _stderr_until(child: Child, text: str, timeout: float) -> str:
    """What the child wrote on stderr up to a line holding ``text`` (or ``timeout``)."""
    stream = child.proc.stderr
    assert stream is not None
    seen: list[str] = []
    with selectors.DefaultSelector() as selector:
        selector.register(stream, selectors.EVENT_READ)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and selector.select(deadline - time.monotonic()):
            line = stream.readline()
            seen.append(line)
            if not line or text in line:
                break
    return "".join(seen)


@pytest.mark.parametrize("verbose", [False, True])
def test_verbose_logs_what_happens(tmp_path: Path, verbose: bool) -> None:
    """--verbose: the SCP's log lines (here: a subscriber it cannot reach) on stderr."""
    argv = ["--ae", f"DOWN=127.0.0.1:{_closed_port()}", "--retry-initial", "0.1"]
    argv += ["--no-announce", *(["--verbose"] if verbose else [])]
    wanted = "cannot deliver event to DOWN"
    with running("scp", argv, tmp_path) as child:
        asyncio.run(_subscribe_unreachable(child.port))
        # Logged at the first failed delivery, when verbose; never otherwise.
        err = _stderr_until(child, wanted, timeout=10.0 if verbose else 0.5)
    assert child.proc.returncode == 0, child.err
    assert (wanted in err + child.err) is verbose, err + child.err
