"""What the NATS tests need besides the server: a sender that retries, and the stream's view.

* :func:`require_nats` — skip when ``nats-server`` or nats-py is missing (fail instead with
  ``DCMUPS_REQUIRE_PEERS=1``, as CI runs);
* :func:`deliver` — an SCP's side of the story, on our own association stack: one
  N-EVENT-REPORT-RQ (UPS State Report) per UPS UID, ``window`` outstanding, and every
  event refused (0213 while the broker is away) sent again after ``retry_delay`` until it
  is answered Success, as a UPS SCP keeps an event until it is acknowledged;
* :func:`stream_count` and :func:`stream_uids` — what the stream holds, read back with a
  plain nats-py client (an ephemeral pull consumer), by the ``Ups-Sop-Instance-Uid``
  header.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import pytest

from bench import rawpdu
from bench.servers import nats_bin
from ups.dimse.messages import NEventReportRQ
from ups.net.config import AssociationConfig
from ups.net.requestor import build_request, connect

IMPLICIT = ["1.2.840.10008.1.2"]
RESOURCE_LIMITATION = 0x0213


def require_nats() -> None:
    """Skip (or, with DCMUPS_REQUIRE_PEERS=1, fail) unless nats-server and nats-py exist."""
    missing = [
        what
        for what, present in (
            ("nats-server", nats_bin() is not None),
            ("nats-py", _has_nats_py()),
        )
        if not present
    ]
    if missing:
        if os.environ.get("DCMUPS_REQUIRE_PEERS") == "1":
            pytest.fail(f"{', '.join(missing)} required (DCMUPS_REQUIRE_PEERS=1)")
        pytest.skip(f"{', '.join(missing)} not installed")


def _has_nats_py() -> bool:
    try:
        import nats  # noqa: F401
    except ImportError:
        return False
    return True


def uids(count: int, prefix: str = "2.25.4242") -> list[str]:
    return [rawpdu.unique_uid(prefix, i) for i in range(1, count + 1)]


@dataclass
class Delivery:
    """What the sender saw: the UIDs answered Success, and every status per attempt."""

    succeeded: list[str] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)

    @property
    def refused(self) -> int:
        return sum(n for status, n in self.statuses.items() if status != 0)


async def deliver(
    port: int,
    event_uids: Sequence[str],
    *,
    window: int = 16,
    retry_delay: float = 0.05,
    deadline: float = 60.0,
    calling: str = "TEST-SCP",
    result: Delivery | None = None,
) -> Delivery:
    """Send every event until it is answered Success (or ``deadline`` seconds pass).

    ``result`` fills a Delivery the caller watches while this runs (its progress)."""
    config = AssociationConfig(max_ops_invoked=window)
    rq = build_request("ANY-SCP", calling, [(rawpdu.UPS_EVENT, IMPLICIT)], config)
    association = await connect("127.0.0.1", port, rq, config)
    cid = association.context_for(rawpdu.UPS_EVENT).context_id
    info = rawpdu.state_report_dataset()
    waiting = list(reversed(event_uids))
    result = result if result is not None else Delivery()
    give_up = time.monotonic() + deadline

    async def lane() -> None:
        while waiting and time.monotonic() < give_up:
            uid = waiting.pop()
            rq = NEventReportRQ(association.new_message_id(), rawpdu.UPS_PUSH, uid, 1, info)
            response = await association.request(rq, cid)
            status = int(getattr(response, "status", -1))
            result.statuses[status] += 1
            if status == 0:
                result.succeeded.append(uid)
            else:
                waiting.insert(0, uid)  # kept, sent again later: what a UPS SCP does
                await asyncio.sleep(retry_delay)  # the sender's back-off

    try:
        await asyncio.gather(*(lane() for _ in range(window)))
    except BaseException:
        association.abort()
        raise
    await association.release()
    return result


async def stream_count(url: str, stream: str) -> int:
    import nats

    client = await nats.connect(url, max_reconnect_attempts=0)
    try:
        return int((await client.jetstream().stream_info(stream)).state.messages)
    finally:
        await client.close()


async def stream_uids(url: str, stream: str, subject: str = "ups.events.>") -> Counter[str]:
    """How many messages the stream holds per ``Ups-Sop-Instance-Uid`` header."""
    import nats

    client = await nats.connect(url, max_reconnect_attempts=0)
    try:
        js = client.jetstream()
        total = int((await js.stream_info(stream)).state.messages)
        found: Counter[str] = Counter()
        if not total:
            return found
        sub = await js.pull_subscribe(subject, stream=stream)
        seen = 0
        while seen < total:
            batch = await sub.fetch(min(1000, total - seen), timeout=10)
            for msg in batch:
                found[(msg.headers or {}).get("Ups-Sop-Instance-Uid", "")] += 1
                await msg.ack()
            seen += len(batch)
        return found
    finally:
        await client.close()
