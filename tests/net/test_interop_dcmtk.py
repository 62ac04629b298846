"""Interoperability with DCMTK's C++ tools: ``echoscu`` against our acceptor, and our
requestor C-ECHOing ``storescp``.

pynetdicom installs Python scripts with the same names, so the native tools are found
by their ELF header. Missing tools skip the tests, unless ``DCMUPS_REQUIRE_PEERS`` is set
(as in CI), when they fail.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.net.conftest import VERIFICATION, Net, make_config, make_policy
from ups.dimse.messages import CEchoRQ
from ups.net.association import Association
from ups.net.errors import ConnectFailed

pytestmark = [pytest.mark.interop, pytest.mark.timeout(60)]


def native(tool: str) -> str:
    for directory in os.environ.get("PATH", "").split(os.pathsep):
        path = Path(directory) / tool
        with contextlib.suppress(OSError):
            if os.access(path, os.X_OK) and path.read_bytes()[:4] == b"\x7fELF":
                return str(path)
    message = f"DCMTK {tool} not on PATH"
    if os.environ.get("DCMUPS_REQUIRE_PEERS"):
        pytest.fail(message)
    pytest.skip(message)


async def run(*argv: str, timeout: float = 20.0) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    assert proc.returncode is not None
    return proc.returncode, out.decode(errors="replace")


async def test_echoscu_against_our_acceptor(net: Net) -> None:
    echoscu = native("echoscu")
    server = await net.serve(policy=make_policy(max_pdata_length=4096))
    code, out = await run(
        echoscu, "-aet", "DCMTKSCU", "-aec", "SCP", "--max-pdu", "8192", "--repeat", "5",
        "127.0.0.1", str(server.port),
    )  # fmt: skip
    assert code == 0, out
    await asyncio.wait_for(_until(lambda: not server.associations), 5)
    (assoc,) = net.associations
    assert assoc.negotiated is not None
    assert assoc.negotiated.remote_ae_title == "DCMTKSCU"
    assert assoc.negotiated.remote_max_pdata_length == 8192
    assert assoc.closed.done()


async def test_echoscu_with_wrong_called_ae_is_rejected(net: Net) -> None:
    echoscu = native("echoscu")
    server = await net.serve()
    code, out = await run(echoscu, "-aec", "NOBODY", "127.0.0.1", str(server.port))
    assert code != 0
    assert "Called AE Title Not Recognized" in out, out


@contextlib.asynccontextmanager
async def storescp(port: int, tmp: Path) -> AsyncIterator[asyncio.subprocess.Process]:
    """DCMTK storescp on ``port`` for the life of the block; killed at the end."""
    proc = await asyncio.create_subprocess_exec(
        native("storescp"), "-aet", "STORESCP", "--max-pdu", "4096", "-od", str(tmp),
        "--ignore", "-ta", "10", "-td", "10", str(port),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    try:
        yield proc
    finally:
        if proc.returncode is None:
            proc.kill()
        await proc.wait()


async def _until(predicate: object) -> None:
    assert callable(predicate)
    while not predicate():
        await asyncio.sleep(0.01)


async def connect_when_listening(
    net: Net, port: int, proc: asyncio.subprocess.Process
) -> Association:
    """Connect once storescp listens (a readiness probe, bounded to 10 s)."""
    async with asyncio.timeout(10):
        while True:
            assert proc.returncode is None, "storescp exited"
            try:
                return await net.connect(
                    port,
                    called="STORESCP",
                    sop_classes=(VERIFICATION,),
                    config=make_config(max_pdata_receive=2048),
                )
            except ConnectFailed:
                await asyncio.sleep(0.05)


async def test_our_requestor_echoes_storescp(net: Net, free_port: int, tmp_path: Path) -> None:
    async with storescp(free_port, tmp_path) as proc:
        assoc = await connect_when_listening(net, free_port, proc)
        assert assoc.negotiated is not None
        assert assoc.negotiated.remote_max_pdata_length == 4096
        cid = assoc.context_for(VERIFICATION).context_id
        for _ in range(5):
            rsp = await assoc.request(CEchoRQ(assoc.new_message_id()), cid)
            assert rsp.status == 0
        await asyncio.wait_for(assoc.release(), 5)
        # storescp is still serving: a second association works too, then abort it.
        again = await connect_when_listening(net, free_port, proc)
        assert (await again.request(CEchoRQ(again.new_message_id()), cid)).status == 0
        again.abort()
        await asyncio.wait_for(again.wait_closed(), 5)
