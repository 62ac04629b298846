"""The README's library section runs as written, against our SCP and listener on 127.0.0.1.

Its ``python`` blocks are executed as one module; the functions they define are then
called with local addresses: ``perform`` against a reference SCP that knows the AE ``ME``
at the listener's port, ``watch`` (``ups.listen``), ``serve`` (``ups.serve_events``) and
``to_nats`` (``ups.NatsSink``, against a throwaway ``nats-server -js``) as that listener.
"""

from __future__ import annotations

import asyncio
import re
import socket
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest

import ups
from bench import servers
from tests.natsclient import require_nats, stream_uids
from ups.services.scp import UPSSCP, RemoteAE, SCPOptions

pytestmark = pytest.mark.timeout(60)

README = Path(__file__).resolve().parent.parent / "README.md"
_BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def library_section() -> str:
    text = README.read_text(encoding="utf-8")
    start = text.index("## The library")
    end = text.index("\n## ", start + 1)
    return text[start:end]


def readme_namespace() -> dict[str, Any]:
    blocks = _BLOCK.findall(library_section())
    assert len(blocks) >= 2, "the library section has lost its examples"
    namespace: dict[str, Any] = {"__name__": "readme"}
    exec(compile("\n".join(blocks), str(README), "exec"), namespace)  # noqa: S102
    return namespace


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_the_examples_use_the_public_api_only() -> None:
    section = library_section()
    imports = re.findall(r"^(?:from|import) ([\w.]+)", section, re.M)
    assert set(imports) <= {"asyncio", "pydicom.dataset", "pydicom.uid", "ups"}, imports
    assert "ups.connect(" in section and "ups.listen(" in section
    assert "ups.serve_events(" in section and "ups.ListenerSettings(" in section
    assert "ups.NatsSink(" in section


async def test_the_examples_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ns = readme_namespace()
    port = _free_port()
    me = f"ME@127.0.0.1:{port}"
    remote = MappingProxyType({"ME": RemoteAE("ME", "127.0.0.1", port)})
    options = SCPOptions(
        ae_title="UPSSCP", port=0, db=tmp_path / "ups.db", remote_aes=remote, event_idle=0.2
    )
    async with UPSSCP(options) as scp:
        address = f"UPSSCP@127.0.0.1:{scp.port}"
        watching = asyncio.create_task(ns["watch"](me))
        await asyncio.sleep(0)  # let it bind first (the SCP resends otherwise)
        await ns["perform"](address)
        await asyncio.wait_for(watching, 30)
        out = capsys.readouterr().out
        iuid = re.search(r"^found (\S+) CT reconstruction$", out, re.M)
        assert iuid is not None, out
        assert "refused: C301 Failure" in out
        assert f"UPS State Report {iuid[1]} SCHEDULED" in out
        assert f"UPS State Report {iuid[1]} IN PROGRESS" in out

        stop = asyncio.Event()
        serving = asyncio.create_task(ns["serve"](me, stop))
        await asyncio.sleep(0)
        await ns["perform"](address)
        assert await scp.events.drain(30)  # every event delivered and answered
        stop.set()
        await asyncio.wait_for(serving, 30)
    out = capsys.readouterr().out
    found = set(re.findall(r"^found (\S+) CT reconstruction$", out, re.M))
    assert iuid[1] in found and len(found) == 2, out  # the first is still IN PROGRESS
    second = (found - {iuid[1]}).pop()
    assert f"event UPS State Report {second}" in out


def test_public_api_names() -> None:
    """``ups.__all__`` is what the README promises, and every name resolves."""
    for name in ("connect", "listen", "serve_events", "UPSEvent", "UPSFailure"):
        assert name in ups.__all__
    for name in ("SCUOptions", "ListenerSettings", "AssociationConfig", "ScanLimits", "NatsSink"):
        assert name in ups.__all__
    for name in ups.__all__:
        assert getattr(ups, name) is not None, name


async def test_the_nats_example_runs(tmp_path: Path) -> None:
    """``to_nats``: the reference SCP's events for ME end up in the stream: the created
    UPS's two State Reports (SCHEDULED, IN PROGRESS), each once."""
    require_nats()
    ns = readme_namespace()
    port = _free_port()
    remote = MappingProxyType({"ME": RemoteAE("ME", "127.0.0.1", port)})
    options = SCPOptions(
        ae_title="UPSSCP", port=0, db=tmp_path / "ups.db", remote_aes=remote, event_idle=0.2
    )
    with servers.nats() as broker:
        async with UPSSCP(options) as scp:
            stop = asyncio.Event()
            me = f"ME@127.0.0.1:{port}"
            publishing = asyncio.create_task(ns["to_nats"](me, broker.url, stop))
            await _listening(port)  # connected to NATS, then bound
            await ns["perform"](f"UPSSCP@127.0.0.1:{scp.port}")
            assert await scp.events.drain(30)  # every event answered Success: in the stream
            stop.set()
            await asyncio.wait_for(publishing, 30)
        found = await stream_uids(broker.url, "UPS_EVENTS")
    assert list(found.values()) == [2], found


async def _listening(port: int, timeout: float = 15.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            assert asyncio.get_running_loop().time() < deadline, "not listening in time"
            await asyncio.sleep(0.02)  # bounded wait while the sink connects
            continue
        writer.close()
        return
