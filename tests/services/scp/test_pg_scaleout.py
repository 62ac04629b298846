"""Several ``dcmups scp`` processes on one PostgreSQL serve one worklist (issue 13 part 1).

Real processes (``python -m ups scp``), real sockets, a real throwaway PostgreSQL:

* 16 concurrent claims of one UPS spread over three processes: exactly one 0000;
* a UPS created on process 1, claimed on 2, completed on 3: a subscriber registered
  through 1 gets IN PROGRESS and COMPLETED exactly once, in order;
* ``kill -9`` of the process holding the subscriber's delivery lease while a report is
  in flight: after the lease expires another process delivers every event exactly once,
  in order per UPS.

Every wait is on a condition with a deadline; no sleep stands in for one.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass

import pytest
from pydicom.uid import generate_uid

try:
    import psycopg
except ImportError:  # skip like tests/services/scp/pg.py, not a collection error
    if os.environ.get("DCMUPS_REQUIRE_PEERS") == "1":
        raise
    pytest.skip("psycopg not installed", allow_module_level=True)

from tests.services.scp.pg import PgCluster
from tests.services.scp.test_service import EventReceiver, client, final_state_attributes
from ups.dimse.messages import NEventReportRQ, NEventReportRSP, Request
from ups.net.association import Association, RequestContext
from ups.services.errors import UPSFailure

pytestmark = pytest.mark.timeout(120)

_LISTENING = re.compile(r"listening on [\d.]+:(\d+)")
LEASE = 1.5


@dataclass
class Scp:
    proc: asyncio.subprocess.Process
    port: int


@asynccontextmanager
async def scp_process(url: str, aes: Sequence[str], lease: float = LEASE) -> AsyncIterator[Scp]:
    args = [sys.executable, "-m", "ups", "scp", "UPSSCP@127.0.0.1:0", "--db", url]
    for ae in aes:
        args += ["--ae", ae]
    args += ["--retry-initial", "0.1", "--retry-max", "0.3", "--event-idle", "0.5"]
    args += ["--lease", str(lease), "--no-announce"]
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
        yield Scp(proc, int(found.group(1)))
    finally:
        if proc.returncode is None:
            proc.kill()
        await proc.wait()


@asynccontextmanager
async def three_scps(
    url: str, aes: Sequence[str] = (), lease: float = LEASE
) -> AsyncIterator[list[Scp]]:
    async with AsyncExitStack() as stack:
        yield [await stack.enter_async_context(scp_process(url, aes, lease)) for _ in range(3)]


async def until(condition: Callable[[], Awaitable[bool]], timeout: float, what: str) -> None:
    """Wait for ``condition`` with a deadline; each look waits on the database or the
    receiver, so this is a bounded loop of real checks, not a sleep for a race."""
    async with asyncio.timeout(timeout):
        while not await condition():
            await asyncio.sleep(0.05)
    assert await condition(), what


def queued(url: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT count(*) FROM ups_event_queue").fetchone()
    return int(row[0]) if row else -1


def lease_holder_pid(url: str, ae_title: str) -> int | None:
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT lease_owner FROM ups_delivery_leases WHERE ae_title = %s", (ae_title,)
        ).fetchone()
    return int(row[0].split(":")[1]) if row and row[0] else None


async def test_16_claims_over_3_processes_exactly_one_wins(pg_cluster: PgCluster) -> None:
    url = pg_cluster.database()
    async with three_scps(url) as scps:
        async with await client(scps[0].port) as scu:
            iuid = (await scu.create()).iuid
        assert iuid is not None
        clients = [await client(scps[i % 3].port, aet=f"PERFORMER{i}") for i in range(16)]
        try:

            async def claim(n: int) -> int:
                try:
                    tuid = str(generate_uid())
                    return (await clients[n].change_state(iuid, "IN PROGRESS", tuid)).status
                except UPSFailure as failure:
                    return failure.status

            statuses = await asyncio.gather(*(claim(n) for n in range(16)))
        finally:
            await asyncio.gather(*(c.release() for c in clients), return_exceptions=True)
        assert sorted(statuses) == [0x0000] + [0xC301] * 15


async def test_create_claim_complete_on_three_processes_one_subscriber(
    pg_cluster: PgCluster,
) -> None:
    url = pg_cluster.database()
    receiver = await EventReceiver().start()
    try:
        async with three_scps(url, [f"WATCH=127.0.0.1:{receiver.port}"]) as (p1, p2, p3):
            async with await client(p1.port) as scu:
                iuid = (await scu.create()).iuid
                assert iuid is not None
                await scu.subscribe("WATCH", iuid)
            tuid = str(generate_uid())
            async with await client(p2.port) as scu:
                await scu.change_state(iuid, "IN PROGRESS", tuid)
            async with await client(p3.port) as scu:
                await scu.set(iuid, final_state_attributes(), tuid)
                await scu.change_state(iuid, "COMPLETED", tuid)
            got = await receiver.take(3, timeout=20.0)
            await until(lambda: asyncio.to_thread(lambda: queued(url) == 0), 20.0, "queue empty")
        assert receiver.queue.empty()  # every report acknowledged, none sent twice
        assert [(r.iuid, r.event_type) for r in got] == [(iuid, 1)] * 3
        assert [r.info.ProcedureStepState for r in got] == ["SCHEDULED", "IN PROGRESS", "COMPLETED"]
    finally:
        await receiver.close()


class GatedReceiver(EventReceiver):
    """Answers ``hold_after`` reports, then holds the next one until ``gate`` opens. A
    report counts as delivered only when it is answered on a live association: the
    definition the SCP uses (it forgets an event when the response arrives)."""

    def __init__(self, hold_after: int) -> None:
        super().__init__()
        self.hold_after = hold_after
        self.answered: list[tuple[str, str]] = []
        self.gate = asyncio.Event()
        self.held: asyncio.Future[Association] = asyncio.get_running_loop().create_future()

    def _on_event(self, request: Request, ctx: RequestContext) -> NEventReportRSP:
        return self._answer(request, ctx)  # type: ignore[return-value]

    async def _answer(self, request: Request, ctx: RequestContext) -> NEventReportRSP:
        response = super()._on_event(request, ctx)
        assert isinstance(request, NEventReportRQ) and isinstance(response, NEventReportRSP)
        received = self.queue.get_nowait()
        if len(self.answered) >= self.hold_after and not self.held.done():
            self.held.set_result(ctx.association)
            await self.gate.wait()
        if ctx.association.is_established:
            self.answered.append((received.iuid, str(received.info.ProcedureStepState)))
        return response


async def test_kill_9_of_the_lease_holder_loses_nothing(pg_cluster: PgCluster) -> None:
    url = pg_cluster.database()
    receiver = GatedReceiver(hold_after=50)
    await receiver.start()
    try:
        async with three_scps(url, [f"WATCH=127.0.0.1:{receiver.port}"]) as scps:
            async with await client(scps[0].port) as scu:
                await scu.subscribe("WATCH", None)  # global: every new UPS reports to WATCH
            created: list[str] = []

            async def burst(scp: Scp, n: int) -> None:  # 100 UPSs x (SCHEDULED, IN PROGRESS)
                async with await client(scp.port, aet=f"BURST{n}") as scu:
                    for _ in range(100 // 4):
                        iuid = (await scu.create()).iuid
                        assert iuid is not None
                        await scu.change_state(iuid, "IN PROGRESS", str(generate_uid()))
                        created.append(iuid)

            await asyncio.gather(*(burst(scps[n % 3], n) for n in range(4)))
            held = await asyncio.wait_for(receiver.held, 30.0)
            pid = await asyncio.to_thread(lease_holder_pid, url, "WATCH")
            victim = next(s for s in scps if s.proc.pid == pid)
            victim.proc.send_signal(signal.SIGKILL)
            await asyncio.wait_for(victim.proc.wait(), 10.0)
            await asyncio.wait_for(held.wait_closed(), 10.0)
            receiver.gate.set()  # its answer goes nowhere: that report was not delivered

            async def all_delivered() -> bool:
                return len(receiver.answered) >= 200 and await asyncio.to_thread(queued, url) == 0

            await until(all_delivered, 30.0 + LEASE, "every event delivered after the lease")
        assert victim.proc.returncode == -signal.SIGKILL
        assert len(created) == 100
        assert len(receiver.answered) == 200 and len(set(receiver.answered)) == 200  # once
        for iuid in created:  # in order per UPS
            states = [state for uid, state in receiver.answered if uid == iuid]
            assert states == ["SCHEDULED", "IN PROGRESS"], (iuid, states)
    finally:
        await receiver.close()
