"""The ceiling: bare asyncio on loopback moving byte strings of the real PDU sizes.

A server answers every ``req_size`` bytes it receives with ``rsp_size`` bytes; a client
sends requests sequentially or with ``window`` in flight. No DICOM, no parsing beyond
counting bytes: whatever a DICOM stack achieves with the same message sizes, the same
event loop and the same two processes is a fraction of this.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator
from typing import cast


class CeilingServer(asyncio.Protocol):
    """Answer each complete request with one response of the configured size."""

    def __init__(self, req_size: int, rsp_size: int, counter: Iterator[int]) -> None:
        self._req_size = req_size
        self._rsp = bytes(rsp_size)
        self._pending = 0
        self._count = counter
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's is no subclass
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        self._pending += len(data)
        n, self._pending = divmod(self._pending, self._req_size)
        if n and self._transport is not None:
            for _ in range(n):
                next(self._count)
            self._transport.write(self._rsp * n if n > 1 else self._rsp)


async def start_server(
    host: str, req_size: int, rsp_size: int, counter: Iterator[int]
) -> asyncio.Server:
    loop = asyncio.get_running_loop()
    return await loop.create_server(lambda: CeilingServer(req_size, rsp_size, counter), host, 0)


class CeilingClient(asyncio.Protocol):
    def __init__(self, req_size: int, rsp_size: int, total: int, window: int) -> None:
        self._req = bytes(req_size)
        self._rsp_size = rsp_size
        self._total = total
        self._window = window
        self._received = 0
        self._sent = 0
        self._done = 0
        self._sent_at: list[int] = []
        self.latencies_ns: list[int] = []
        self._transport: asyncio.Transport | None = None
        self.finished: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's is no subclass
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def start(self) -> None:
        for _ in range(min(self._window, self._total)):
            self._send()

    def _send(self) -> None:
        assert self._transport is not None
        self._sent_at.append(time.perf_counter_ns())
        self._sent += 1
        self._transport.write(self._req)

    def data_received(self, data: bytes) -> None:
        self._received += len(data)
        n, self._received = divmod(self._received, self._rsp_size)
        now = time.perf_counter_ns()
        for _ in range(n):
            self.latencies_ns.append(now - self._sent_at[self._done])
            self._done += 1
            if self._sent < self._total:
                self._send()
        if self._done >= self._total and not self.finished.done():
            self.finished.set_result(None)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.finished.done():
            self.finished.set_exception(ConnectionError(f"ceiling connection lost: {exc}"))


async def run_client(
    host: str,
    port: int,
    req_size: int,
    rsp_size: int,
    total: int,
    window: int,
    timeout: float = 120.0,
) -> dict[str, object]:
    loop = asyncio.get_running_loop()
    transport, proto = await loop.create_connection(
        lambda: CeilingClient(req_size, rsp_size, total, window), host, port
    )
    try:
        t0 = time.perf_counter_ns()
        proto.start()
        await asyncio.wait_for(proto.finished, timeout)
        t1 = time.perf_counter_ns()
    finally:
        transport.close()
    return {"requests": total, "elapsed_s": (t1 - t0) / 1e9, "latencies_ns": proto.latencies_ns}


# -- association-sized open/close (scenario 5's ceiling) -----------------------------------------


class HandshakeServer(asyncio.Protocol):
    """Per connection: ``rq`` bytes in -> ``ac`` bytes out, 10 in -> 10 out, then close."""

    def __init__(self, rq_size: int, ac_size: int) -> None:
        self._steps = [(rq_size, bytes(ac_size)), (10, bytes(10))]
        self._pending = 0
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's is no subclass

    def data_received(self, data: bytes) -> None:
        self._pending += len(data)
        while self._steps and self._pending >= self._steps[0][0]:
            need, answer = self._steps.pop(0)
            self._pending -= need
            assert self._transport is not None
            self._transport.write(answer)


async def start_handshake_server(host: str, rq_size: int, ac_size: int) -> asyncio.Server:
    loop = asyncio.get_running_loop()
    return await loop.create_server(lambda: HandshakeServer(rq_size, ac_size), host, 0)


async def run_handshakes(
    host: str, port: int, rq_size: int, ac_size: int, total: int
) -> dict[str, object]:
    rq, rel = bytes(rq_size), bytes(10)
    t0 = time.perf_counter_ns()
    for _ in range(total):
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(rq)
        await reader.readexactly(ac_size)
        writer.write(rel)
        await reader.readexactly(10)
        writer.close()
        await writer.wait_closed()
    t1 = time.perf_counter_ns()
    return {"requests": total, "elapsed_s": (t1 - t0) / 1e9, "latencies_ns": []}
