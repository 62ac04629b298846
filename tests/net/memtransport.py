"""An in-memory transport for driving one ``Association`` without a socket.

It records each ``write`` (so a test can count the writes a read caused) and each
``setsockopt`` on the fake socket it hands out (so a test can see TCP_QUICKACK).
"""

from __future__ import annotations

import socket
import struct
from typing import Any

from bench import rawpdu
from ups.net.association import Association

_PDU_HEADER = struct.Struct(">BxI")  # PS3.8 §9.3.1: type, reserved, length


class RecordingSocket:
    """What ``get_extra_info("socket")`` returns: a TCP socket that records options."""

    family = socket.AF_INET

    def __init__(self) -> None:
        self.options: list[tuple[int, int, int]] = []

    def setsockopt(self, level: int, option: int, value: int) -> None:
        self.options.append((level, option, value))


class MemoryTransport:
    """Enough of ``asyncio.Transport`` for an ``Association``; writes are kept."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.socket = RecordingSocket()
        self.closed = False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        if name == "peername":
            return ("127.0.0.1", 40000)
        if name == "socket":
            return self.socket
        return default

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        pass

    def write(self, data: bytes) -> None:
        self.writes.append(bytes(data))

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.closed = True

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def get_write_buffer_size(self) -> int:
        return 0


def open_acceptor(
    association: Association, abstract_syntax: str, window: int = 1
) -> MemoryTransport:
    """Connect ``association`` (an acceptor) to a memory transport and establish it with
    the raw benchmark sender's A-ASSOCIATE-RQ (one context, Implicit VR LE)."""
    transport = MemoryTransport()
    association.connection_made(transport)  # type: ignore[arg-type]
    association.data_received(rawpdu.associate_rq("RAW", "SCP", abstract_syntax, window=window))
    assert association.is_established, transport.writes
    transport.writes.clear()
    return transport


def responses(data: bytes) -> list[dict[int, bytes]]:
    """The command sets of every P-DATA-TF in ``data`` (as rawpdu decodes them)."""
    found = []
    view = memoryview(data)
    pos = 0
    while pos < len(view):
        pdu_type, length = _PDU_HEADER.unpack_from(view, pos)
        body = view[pos + 6 : pos + 6 + length]
        pos += 6 + length
        if pdu_type != rawpdu.P_DATA_TF:
            continue
        for _, control, fragment in rawpdu.pdvs(body):
            if control & 1:
                found.append(rawpdu.command_values(fragment))
    return found
