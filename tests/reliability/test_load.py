"""Load: a thousand concurrent associations against the event listener and the SCP.

Each round opens ``N`` associations (at most ``IN_FLIGHT`` connecting at once), holds
them all open together, then lets each do one to three checked operations before it
either releases or aborts at random — some abort with a request still in flight. Every
operation that got a success response must be right in every field (message ID,
instance, event type; for the SCP the whole workitem; for the listener the event must
also have reached the consumer). Failures are allowed only for the requests that were
deliberately cut off by their own abort.

Between rounds the process must be back to its baseline (fds, tasks, associations,
association timers) and, across a soak of rounds, its resident memory must stay flat.
"""

from __future__ import annotations

import asyncio
import gc
import os
import random
import resource
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.reliability.targets import KINDS, Baseline, Kind, Target, running
from ups.dimse.messages import CEchoRQ
from ups.net.association import Association
from ups.net.errors import AssociationAborted

pytestmark = pytest.mark.timeout(90)

CONCURRENT = 1000
IN_FLIGHT = 200
SOAK_ROUNDS = 5
SOAK_SIZE = 500
MEMORY_MARGIN = 6 * 1024 * 1024
"""RSS growth allowed between the end of round 2 and the end of the last round."""


@pytest.fixture(autouse=True)
def enough_fds() -> Iterator[None]:
    """Two sockets per association (both ends live in this process), plus slack."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = 2 * CONCURRENT + 512
    if soft < need:
        if hard != resource.RLIM_INFINITY and hard < need:
            pytest.fail(f"RLIMIT_NOFILE hard limit {hard} < {need}: cannot run the load test")
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@dataclass
class Tally:
    opened: int = 0
    ok: int = 0
    cut_off: int = 0
    released: int = 0
    aborted: int = 0


async def one_round(target: Target, n: int, rng: random.Random, round_no: int) -> Tally:
    tally = Tally()
    gate = asyncio.Semaphore(IN_FLIGHT)
    everyone_open = asyncio.Event()
    done_opening = 0

    def opened_one() -> None:
        nonlocal done_opening
        done_opening += 1
        if done_opening == n:
            everyone_open.set()

    async def peer(i: int) -> None:
        try:
            async with gate:
                association = await target.open()
        finally:
            opened_one()
        tally.opened += 1
        try:
            await everyone_open.wait()  # all n are open at the same time here
            for k in range(rng.randint(1, 3)):
                await target.check_one(association, target.iuid_for(round_no * n * 3 + i * 3 + k))
                tally.ok += 1
            how = rng.random()
            if how < 0.15:
                await abort_in_flight(association)
                tally.cut_off += 1
                tally.aborted += 1
            elif how < 0.35:
                association.abort()
                tally.aborted += 1
            else:
                await association.release()
                tally.released += 1
        finally:
            if not association.closed.done():
                association.abort()
            await association.wait_closed()

    async with asyncio.timeout(60):
        results = await asyncio.gather(*(peer(i) for i in range(n)), return_exceptions=True)
    errors = [r for r in results if isinstance(r, BaseException)]
    assert not errors, f"{len(errors)} peers failed, first: {errors[0]!r}"
    assert tally.opened == n
    assert tally.released + tally.aborted == n
    return tally


async def abort_in_flight(association: Association) -> None:
    """Send a request and abort before its response: only that request may fail."""
    context = association.context_for("1.2.840.10008.1.1").context_id
    request = asyncio.ensure_future(
        association.request(CEchoRQ(association.new_message_id()), context)
    )
    await asyncio.sleep(0)  # let it be written
    association.abort()
    try:
        await request
    except AssociationAborted:
        pass  # the expected outcome (the answer may also have won the race)


@pytest.mark.parametrize("kind", KINDS)
async def test_thousand_concurrent_associations_then_soak(kind: Kind, tmp_path: Path) -> None:
    rng = random.Random(8)
    async with running(kind, tmp_path) as target:
        await target.exercise(0)
        baseline = Baseline()
        loop = asyncio.get_running_loop()
        start = loop.time()
        big = await one_round(target, CONCURRENT, rng, 0)
        took = loop.time() - start
        await baseline.restored(target, timeout=10)
        assert big.ok >= CONCURRENT and big.released > 0 and big.aborted > 0
        if kind == "listener":
            # Delivered at least once per acknowledged report; nothing else arrived.
            assert sum(target.delivered.values()) >= big.ok
        memory: list[int] = []
        for round_no in range(1, SOAK_ROUNDS + 1):
            await one_round(target, SOAK_SIZE, rng, round_no)
            await baseline.restored(target, timeout=10)
            gc.collect()
            memory.append(rss())
        growth = memory[-1] - memory[1]
        print(
            f"{kind}: {CONCURRENT} concurrent in {took:.2f}s ({big}); "
            f"RSS after soak rounds {[m // 1024 for m in memory]} KiB, growth {growth} B"
        )
        assert growth <= MEMORY_MARGIN, f"RSS grew {growth} bytes over {SOAK_ROUNDS - 2} rounds"
        await target.exercise(1)
