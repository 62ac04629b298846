"""The NATS JetStream sink against a real ``nats-server -js`` (``bench.servers``), no mocks.

An event is answered Success only once JetStream acknowledged it; a read's events are
published together and their acknowledgements awaited together; a resent event is a
duplicate JetStream drops; a broker that is down or does not acknowledge in time gets
the events refused with 0213 (one log line per outage, one when it is back), and the
sink recovers by itself when the broker returns.
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import time
from collections.abc import Iterator

import pytest

import ups
from bench import rawpdu, servers
from tests.natsclient import (
    RESOURCE_LIMITATION,
    deliver,
    require_nats,
    stream_count,
    stream_uids,
    uids,
)
from ups.dimse.datasets import LazyDataset
from ups.dimse.scanner import DEFAULT_SCAN_LIMITS, dataset_json
from ups.services.events import UPSEvent
from ups.services.sinks import NatsSink, SinkConnectError
from ups.services.uids import IMPLICIT_VR_LITTLE_ENDIAN

pytestmark = pytest.mark.timeout(90)

STREAM = "UPS_EVENTS"
ADDRESS = "ANY-SCP@127.0.0.1:0"


@pytest.fixture
def nats_server() -> Iterator[servers.Nats]:
    require_nats()
    with servers.nats() as server:
        yield server


def _sink_lines(caplog: pytest.LogCaptureFixture, words: str) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "ups.services.sinks" and words in r.getMessage()
    ]


async def _until(condition: object, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)  # bounded wait for the client's own reconnection


async def test_events_reach_the_stream_once_each_with_subject_headers_and_json_line(
    nats_server: servers.Nats,
) -> None:
    async with NatsSink(nats_server.url) as sink:
        assert sink.stream == STREAM
        async with ups.serve_events(sink, ADDRESS) as listener:
            sent = uids(300)
            delivery = await deliver(listener.port, sent, window=16)
        assert sorted(delivery.succeeded) == sorted(sent)
        assert delivery.statuses == {0: 300}
        assert sink.stats.published == 300 and listener.stats.events == 300
    assert await stream_uids(nats_server.url, STREAM) == dict.fromkeys(sent, 1)

    import nats

    client = await nats.connect(nats_server.url)
    try:
        msg = await client.jetstream().get_msg(STREAM, 1)
    finally:
        await client.close()
    assert msg.subject == "ups.events.state-report"
    assert msg.headers is not None and msg.data is not None
    assert msg.headers["Ups-Event-Type"] == "1"
    assert msg.headers["Ups-Calling-Ae"] == "TEST-SCP"
    assert msg.headers["Ups-Sop-Instance-Uid"] == sent[0]
    assert msg.headers["Nats-Msg-Id"].startswith(f"TEST-SCP:{sent[0]}:1:")
    line = json.loads(msg.data)
    assert line["op"] == "event" and line["iuid"] == sent[0] and line["event_type"] == 1
    assert line["dataset"]["00741000"] == {"vr": "CS", "Value": ["IN PROGRESS"]}


def _stopped(pid: int) -> bool:
    """Whether the process is stopped (state T in /proc): SIGSTOP has taken effect."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as f:
        return f.read().rsplit(")", 1)[1].split()[0] == "T"


def _event(uid: str, message_id: int) -> UPSEvent:
    raw = rawpdu.state_report_dataset()
    ivr = IMPLICIT_VR_LITTLE_ENDIAN
    return UPSEvent(
        1,
        uid,
        rawpdu.UPS_PUSH,
        "ARC",
        "ME",
        time.time(),
        LazyDataset(raw, ivr),
        message_id,
        dataset_json=dataset_json(raw, ivr, DEFAULT_SCAN_LIMITS),
    )


async def test_a_commit_publishes_its_events_together_and_awaits_their_acks_together(
    nats_server: servers.Nats,
) -> None:
    async with NatsSink(nats_server.url) as sink:
        for i, uid in enumerate(uids(16), 1):
            sink.add(_event(uid, i))
        done = sink.commit()
        assert done is not None
        await asyncio.wait_for(done, 10)
        assert sink.commit() is None  # nothing added since
        assert (sink.stats.batches, sink.stats.published) == (1, 16)
    assert await stream_count(nats_server.url, STREAM) == 16


async def test_an_event_sent_again_is_a_duplicate_that_jetstream_drops(
    nats_server: servers.Nats,
) -> None:
    sent = uids(40)
    async with NatsSink(nats_server.url) as sink:
        async with ups.serve_events(sink, ADDRESS) as listener:
            first = await deliver(listener.port, sent)
            again = await deliver(listener.port, sent)  # the SCP lost our responses
        assert first.statuses == again.statuses == {0: 40}
        assert sink.stats.duplicates == 40
    assert await stream_uids(nats_server.url, STREAM) == dict.fromkeys(sent, 1)


async def test_broker_down_refused_0213_one_line_per_outage_then_it_recovers(
    nats_server: servers.Nats, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="ups.services.sinks")
    before, during, after = uids(30, "2.25.1"), uids(50, "2.25.2"), uids(30, "2.25.3")
    async with NatsSink(nats_server.url, reconnect_wait=0.1) as sink:
        async with ups.serve_events(sink, ADDRESS) as listener:
            assert (await deliver(listener.port, before)).statuses == {0: 30}
            nats_server.stop()
            await _until(lambda: not sink.available)
            down = await deliver(listener.port, during, retry_delay=0.01, deadline=1.0)
            assert down.succeeded == [] and down.statuses[RESOURCE_LIMITATION] >= 50
            assert set(down.statuses) == {RESOURCE_LIMITATION}
            assert len(_sink_lines(caplog, "unavailable")) == 1  # not one per event
            assert _sink_lines(caplog, "is back after") == []
            nats_server.start()
            back = await deliver(listener.port, during + after, retry_delay=0.05, deadline=30)
            assert sorted(back.succeeded) == sorted(during + after)
            await _until(lambda: sink.available)
        assert len(_sink_lines(caplog, "unavailable")) == 1
        assert len(_sink_lines(caplog, "is back after")) == 1
        assert sink.stats.outages == 1
    assert await stream_uids(nats_server.url, STREAM) == dict.fromkeys(before + during + after, 1)


async def test_a_broker_that_does_not_acknowledge_in_time_gets_0213_and_dedupe_holds(
    nats_server: servers.Nats, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="ups.services.sinks")
    sent = uids(16)
    async with NatsSink(nats_server.url, ack_timeout=0.3) as sink:
        async with ups.serve_events(sink, ADDRESS) as listener:
            nats_server.proc.send_signal(signal.SIGSTOP)  # alive, connected, silent
            try:
                await _until(lambda: _stopped(nats_server.proc.pid))
                started = time.monotonic()
                slow = await deliver(listener.port, sent, retry_delay=0.5, deadline=0.2)
                assert time.monotonic() - started >= 0.3
            finally:
                nats_server.proc.send_signal(signal.SIGCONT)
            assert slow.succeeded == [] and set(slow.statuses) == {RESOURCE_LIMITATION}
            # The stopped server stored the first copies when it resumed; the resent
            # ones carry the same Nats-Msg-Id and are dropped.
            retry = await deliver(listener.port, sent, deadline=20)
            assert sorted(retry.succeeded) == sorted(sent)
    assert len(_sink_lines(caplog, "unavailable")) == 1
    assert "no acknowledgement within 0.3 s" in _sink_lines(caplog, "unavailable")[0]
    assert await stream_uids(nats_server.url, STREAM) == dict.fromkeys(sent, 1)


async def test_a_sink_that_cannot_reach_its_broker_does_not_start() -> None:
    require_nats()
    url = f"nats://127.0.0.1:{servers.free_port()}"
    started = time.monotonic()
    with pytest.raises(SinkConnectError, match="cannot reach NATS"):
        await NatsSink(url, connect_timeout=1.0).start()
    assert time.monotonic() - started < 5


async def test_an_existing_stream_taking_the_subjects_is_used_as_it_is(
    nats_server: servers.Nats, caplog: pytest.LogCaptureFixture
) -> None:
    import nats

    client = await nats.connect(nats_server.url)
    try:
        await client.jetstream().add_stream(
            name="SITE", subjects=["ups.events.>"], duplicate_window=10.0
        )
    finally:
        await client.close()
    async with NatsSink(nats_server.url) as sink:
        assert sink.stream == "SITE"
    (warning,) = _sink_lines(caplog, "drops duplicates for 10 s only")
    assert "SITE" in warning


async def test_the_own_connection_and_nats_py_publish_store_the_same_messages(
    nats_server: servers.Nats,
) -> None:
    """The sink publishes over a connection of its own (``natslink``); a URL that takes
    nats-py (TLS, several servers) gets nats-py's ``publish`` per event. Both must store
    the same message."""
    import nats

    stored = []
    events = [_event(uid, i) for i, uid in enumerate(uids(3), 1)]
    for own in (True, False):
        subject = f"ups.{'own' if own else 'publish'}"
        sink = NatsSink(nats_server.url, subject)
        assert sink._address is not None  # a plain nats:// URL takes the own connection
        if not own:
            sink._address = None
        async with sink:
            assert (sink._link is not None) is own
            for event in events:
                sink.add(event)
            done = sink.commit()
            assert done is not None
            await asyncio.wait_for(done, 10)
            assert (sink.stats.batches, sink.stats.published) == (1, 3)
        client = await nats.connect(nats_server.url)
        try:
            msgs = [await client.jetstream().get_msg(sink.stream, seq) for seq in (1, 2, 3)]
        finally:
            await client.close()
        stored.append([(str(m.subject).split(".", 2)[2], m.headers, m.data) for m in msgs])
    assert stored[0] == stored[1]
    assert stored[0][0][0] == "state-report" and stored[0][0][1] is not None
