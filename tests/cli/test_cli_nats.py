"""``dcmups -L --nats``: the daemon publishing into a real nats-server -js (issue 13).

The daemon runs as a real subprocess (``tests.cli.dcmups_process``) against a throwaway
``nats-server -js`` (``bench.servers``) on loopback; senders are the raw pre-encoded one
(``bench.rawclient``, a UPS UID per event) and our own association stack resending what
was refused (``tests.natsclient.deliver``), as a UPS SCP does. Nothing stands in for NATS.
"""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench import rawclient, servers
from tests.cli.dcmups_process import command, running
from tests.natsclient import (
    RESOURCE_LIMITATION,
    Delivery,
    deliver,
    require_nats,
    stream_count,
    stream_uids,
    uids,
)

pytestmark = pytest.mark.timeout(120)

STREAM = "UPS_EVENTS"


@pytest.fixture
def nats_server() -> Iterator[servers.Nats]:
    require_nats()
    with servers.nats() as server:
        yield server


def test_ten_thousand_events_at_window_16_are_ten_thousand_messages(
    nats_server: servers.Nats, tmp_path: Path
) -> None:
    argv = ["--nats", nats_server.url, "--subject", "ups.events", "--any-called-ae"]
    with running("listener", argv, tmp_path) as child:
        result = asyncio.run(
            rawclient.run_requests(
                "127.0.0.1", child.port, total=10_000, window=16, unique=True, timeout=90
            )
        )
        assert result["bad_status"] == 0  # every one answered Success
        assert asyncio.run(stream_count(nats_server.url, STREAM)) == 10_000
    assert child.proc.returncode == 0
    assert child.out == ""  # with --nats nothing is written per event


def test_broker_stopped_mid_burst_each_event_ends_in_the_stream_exactly_once(
    nats_server: servers.Nats, tmp_path: Path
) -> None:
    events = uids(2000)
    argv = ["--nats", nats_server.url, "--nats-timeout", "1", "--any-called-ae"]

    async def burst(port: int) -> Delivery:
        progress = Delivery()
        sender = asyncio.create_task(deliver(port, events, result=progress, deadline=90))
        await _until(lambda: len(progress.succeeded) >= 500)
        await asyncio.to_thread(nats_server.stop)  # mid-burst: 16 events in flight
        stopped_at = len(progress.succeeded)
        await _until(lambda: progress.statuses[RESOURCE_LIMITATION] >= 100)
        await asyncio.to_thread(nats_server.start)
        done = await sender
        assert stopped_at < len(events)
        return done

    with running("listener", argv, tmp_path) as child:
        delivery = asyncio.run(burst(child.port))
    assert child.proc.returncode == 0
    assert sorted(delivery.succeeded) == sorted(events)  # the retries all got through
    assert delivery.statuses[RESOURCE_LIMITATION] >= 100  # the outage was refused 0213
    assert set(delivery.statuses) == {0, RESOURCE_LIMITATION}
    in_stream = asyncio.run(stream_uids(nats_server.url, STREAM))
    assert in_stream == dict.fromkeys(events, 1)  # none missing, none twice
    assert len(child.err_lines("dcmups: NATS at")) == 2, child.err  # one down, one back
    assert "unavailable" in child.err_lines("dcmups: NATS at")[0]
    assert "is back after" in child.err_lines("dcmups: NATS at")[1]


async def _until(condition: object, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)  # the sender runs meanwhile


def test_an_unreachable_broker_stops_the_daemon_before_it_listens(tmp_path: Path) -> None:
    require_nats()
    url = f"nats://127.0.0.1:{servers.free_port()}"
    proc = subprocess.run(
        [*command(), "-L", "ME@127.0.0.1:0", "--nats", url],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 3
    assert proc.stderr.startswith(f"dcmups: cannot reach NATS at {url}: ")
    assert len(proc.stderr.splitlines()) == 1 and "listening" not in proc.stderr


@pytest.mark.parametrize(
    "argv",
    [
        ["--subject", "ups.events"],
        ["--nats-timeout", "2"],
        ["--nats", "nats://127.0.0.1:1", "--subject", "ups events"],
        ["--nats", "nats://127.0.0.1:1", "--nats-timeout", "0"],
    ],
)
def test_nats_options_are_checked(argv: list[str]) -> None:
    proc = subprocess.run(
        [*command(), "-L", "ME@127.0.0.1:0", *argv], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("dcmups: ")
