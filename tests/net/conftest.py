"""Fixtures for ups.net tests: servers and associations on 127.0.0.1, and a leak check.

``net`` opens servers and associations and, at teardown, closes them and then asserts
that nothing is left: no task the test started, no socket, no live timer of ours.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from dataclasses import replace
from typing import Any

import pytest

from ups.dimse.datasets import EXPLICIT_VR_LITTLE_ENDIAN, IMPLICIT_VR_LITTLE_ENDIAN
from ups.net.association import Association, Handler
from ups.net.config import AssociationConfig
from ups.net.requestor import build_request, connect
from ups.net.server import Server, serve
from ups.pdu.negotiation import AcceptorPolicy, SyntaxSupport

VERIFICATION = "1.2.840.10008.1.1"
UPS_PUSH = "1.2.840.10008.5.1.4.34.6.1"
UPS_WATCH = "1.2.840.10008.5.1.4.34.6.2"
UPS_PULL = "1.2.840.10008.5.1.4.34.6.3"
UPS_EVENT = "1.2.840.10008.5.1.4.34.6.4"
UPS_QUERY = "1.2.840.10008.5.1.4.34.6.5"
SOP_CLASSES = (VERIFICATION, UPS_PUSH, UPS_WATCH, UPS_PULL, UPS_EVENT, UPS_QUERY)
SYNTAXES = (IMPLICIT_VR_LITTLE_ENDIAN, EXPLICIT_VR_LITTLE_ENDIAN)
IMPL_UID = "1.2.826.0.1.3680043.9.7433.1"

FAST = AssociationConfig(
    accept_timeout=5.0,
    request_timeout=5.0,
    release_timeout=5.0,
    response_timeout=5.0,
    reaper_period=1.0,
    pdu_timeout=5.0,
    so_close_delay=0.01,
)
"""Short enough that a broken test fails quickly, long enough for 2 shared CPUs."""


def make_config(**overrides: Any) -> AssociationConfig:
    return replace(FAST, **overrides)


def make_policy(
    *,
    ae_titles: frozenset[str] | None = frozenset({"SCP"}),
    sop_classes: Sequence[str] = SOP_CLASSES,
    max_pdata_length: int = 16384,
    **overrides: Any,
) -> AcceptorPolicy:
    support = SyntaxSupport(SYNTAXES, requestor_scu=True, requestor_scp=True)
    return AcceptorPolicy(
        ae_titles=ae_titles,
        supported={uid: support for uid in sop_classes},
        max_pdata_length=max_pdata_length,
        implementation_class_uid=IMPL_UID,
        implementation_version_name="TESTSCP",
        **overrides,
    )


def contexts(sop_classes: Sequence[str] = SOP_CLASSES) -> list[tuple[str, Sequence[str]]]:
    return [(uid, SYNTAXES) for uid in sop_classes]


def socket_count() -> int:
    """Open sockets of this process (Linux /proc)."""
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            if os.readlink(f"/proc/self/fd/{fd}").startswith("socket:"):
                count += 1
    return count


def live_timers(loop: asyncio.AbstractEventLoop) -> list[asyncio.TimerHandle]:
    """Scheduled, uncancelled timer handles whose callback belongs to an Association."""
    scheduled: list[asyncio.TimerHandle] = getattr(loop, "_scheduled", [])
    return [
        h
        for h in scheduled
        if not h.cancelled()
        and isinstance(getattr(getattr(h, "_callback", None), "__self__", None), Association)
    ]


async def settle(predicate: Any, rounds: int = 200) -> bool:
    """Let pending callbacks run (no sleeping) until ``predicate()`` holds."""
    for _ in range(rounds):
        if predicate():
            return True
        await asyncio.sleep(0)
    return bool(predicate())


class Net:
    """Opens servers and associations for one test and closes them all afterwards."""

    def __init__(self) -> None:
        self.servers: list[Server] = []
        self.associations: list[Association] = []

    async def serve(
        self,
        *,
        policy: AcceptorPolicy | None = None,
        config: AssociationConfig | None = None,
        handlers: Mapping[str, Handler] | None = None,
        **kwargs: Any,
    ) -> Server:
        server = await serve(
            "127.0.0.1",
            0,
            policy or make_policy(),
            config or FAST,
            handlers=handlers,
            on_established=lambda a: self.associations.append(a),
            **kwargs,
        )
        self.servers.append(server)
        return server

    async def connect(
        self,
        port: int,
        *,
        config: AssociationConfig | None = None,
        sop_classes: Sequence[str] = SOP_CLASSES,
        called: str = "SCP",
        calling: str = "SCU",
        handlers: Mapping[str, Handler] | None = None,
        **rq_kwargs: Any,
    ) -> Association:
        config = config or FAST
        rq = build_request(called, calling, contexts(sop_classes), config, **rq_kwargs)
        association = await connect("127.0.0.1", port, rq, config, handlers=handlers)
        self.associations.append(association)
        return association

    async def close(self) -> None:
        for association in self.associations:
            association.abort()
        for server in self.servers:
            await server.close(grace=2.0)
        async with asyncio.timeout(10):
            for association in self.associations:
                await association.wait_closed()


@pytest.fixture
async def net() -> AsyncIterator[Net]:
    loop = asyncio.get_running_loop()
    tasks_before = set(asyncio.all_tasks())
    sockets_before = socket_count()
    helper = Net()
    try:
        yield helper
    finally:
        await helper.close()
    me = asyncio.current_task()

    def clean() -> bool:
        extra = set(asyncio.all_tasks()) - tasks_before - {me}
        return not extra and not live_timers(loop) and socket_count() <= sockets_before

    if not await settle(clean):
        # Give transports a chance to finish closing before blaming anyone.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(2):
                while not clean():
                    await asyncio.sleep(0.01)
    extra = set(asyncio.all_tasks()) - tasks_before - {me}
    assert not extra, f"leaked tasks: {extra}"
    assert not live_timers(loop), f"live timers: {live_timers(loop)}"
    assert socket_count() <= sockets_before, "leaked sockets"


@pytest.fixture
def free_port() -> Iterator[int]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    yield port
