"""kill -9 of the SCP process in the middle of a burst: nothing acknowledged is lost.

The SCP runs as ``dcmups scp`` (``python -m ups scp``) in a child process.  Several SCUs
create and update workitems at once while a subscriber is down; when enough have
been acknowledged the child is killed with SIGKILL.  After a restart on the same
database every acknowledged create and update is there, and the subscriber,
now up, receives the State Report of every acknowledged create from the durable
outbound queue.
"""

from __future__ import annotations

import asyncio
import re
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from pydicom.dataset import Dataset

from tests.services.scp.test_service import EventReceiver, client, free_port
from ups.errors import DicomError
from ups.services.scu import UPSFailure

pytestmark = pytest.mark.timeout(90)

_LISTENING = re.compile(r"listening on [\d.]+:(\d+)")


@asynccontextmanager
async def scp_process(db: Path, *aes: str) -> AsyncIterator[tuple[asyncio.subprocess.Process, int]]:
    args = [sys.executable, "-m", "ups", "scp", "UPSSCP@127.0.0.1:0", "--db", str(db)]
    for ae in aes:
        args += ["--ae", ae]
    args += ["--retry-initial", "0.1", "--retry-max", "0.3", "--event-idle", "0.5"]
    args += ["--no-announce"]
    proc = await asyncio.create_subprocess_exec(
        *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), 30.0)
        found = _LISTENING.search(line.decode())
        if found is None:
            err = await proc.stderr.read() if proc.stderr else b""
            raise AssertionError(f"SCP did not start: {line!r} {err!r}")
        yield proc, int(found.group(1))
    finally:
        if proc.returncode is None:
            proc.kill()
        await proc.wait()


def labelled(text: str) -> Dataset:
    ds = Dataset()
    ds.ProcedureStepLabel = text
    return ds


async def test_kill_9_loses_nothing_acknowledged(tmp_path: Path) -> None:
    db = tmp_path / "ups.db"
    created: list[str] = []
    updated: dict[str, str] = {}
    enough = asyncio.Event()

    async def worker(port: int, n: int) -> None:
        try:
            async with await client(port, aet=f"BURST{n}") as scu:
                for i in range(1000):
                    iuid = (await scu.create()).iuid
                    assert iuid is not None
                    created.append(iuid)
                    label = f"updated {n}-{i}"
                    await scu.set(iuid, labelled(label))
                    updated[iuid] = label
                    if len(created) >= 40:
                        enough.set()
        except (DicomError, OSError):
            pass  # the SCP died under us: what was not acknowledged may be lost

    async with scp_process(db, f"LATE=127.0.0.1:{free_port()}") as (proc, port):
        async with await client(port) as scu:
            await scu.subscribe("LATE")
        workers = [asyncio.ensure_future(worker(port, n)) for n in range(4)]
        await asyncio.wait_for(enough.wait(), 60.0)
        proc.send_signal(signal.SIGKILL)
        await proc.wait()
        await asyncio.gather(*workers)
    assert proc.returncode == -signal.SIGKILL
    assert len(created) >= 40

    receiver = await EventReceiver().start()
    try:
        async with scp_process(db, f"LATE=127.0.0.1:{receiver.port}") as (_proc, port):
            async with await client(port) as scu:
                for iuid in created:
                    got = await scu.get(iuid, [0x00741204])
                    assert got.dataset is not None
                    if iuid in updated:
                        assert got.dataset.ProcedureStepLabel == updated[iuid]
            # the queue kept every State Report for the subscriber that was down
            wanted = set(created)
            seen: set[str] = set()
            while not wanted <= seen:
                event = await receiver.next(30.0)
                assert event.event_type == 1 and event.called_ae == "LATE"
                seen.add(event.iuid)
    finally:
        await receiver.close()


async def test_sigterm_shuts_down_cleanly(tmp_path: Path) -> None:
    async with scp_process(tmp_path / "ups.db") as (proc, port):
        async with await client(port) as scu:
            iuid = (await scu.create()).iuid
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 30.0) == 0
        assert proc.stdout is not None
        assert b"stopped" in await proc.stdout.read()
    async with scp_process(tmp_path / "ups.db") as (proc, port):
        async with await client(port) as scu:
            assert iuid is not None
            assert (await scu.get(iuid)).status == 0
            with pytest.raises(UPSFailure):
                await scu.get("1.2.3.4")
