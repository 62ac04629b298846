"""A raw C-FIND reader: the SCP's own time for a query, with nothing decoded here.

It opens one association (UPS Pull, Implicit VR Little Endian, 64 KiB PDUs) on a
blocking socket, sends pre-encoded C-FIND-RQs and reads the responses' command sets
only (the Status, PS3.7 §9.3.2.2), so the figures are the SCP's, the loopback's and a
little ``struct`` work: the ceiling column of scenario 13.
"""

from __future__ import annotations

import socket
import struct
import time
from typing import cast

from pydicom.dataset import Dataset

from bench import rawpdu
from ups.dimse.codec import STATUS, decode_command_set
from ups.dimse.datasets import encode_dataset
from ups.dimse.messages import CFindRQ, encode_command
from ups.services.uids import UPS_PULL

__all__ = ["RawFinder"]

_PENDING = (0xFF00, 0xFF01)
_PDV = struct.Struct(">LBB")


class RawFinder:
    """One association; :meth:`find` times a query (first Pending, final response)."""

    def __init__(self, port: int, called: str = "UPSSCP") -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=60.0)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.sendall(rawpdu.associate_rq("RAWFIND", called, UPS_PULL, max_pdu=65536))
        kind, _ = self._pdu()
        if kind != rawpdu.A_ASSOCIATE_AC:
            raise OSError(f"association not accepted (PDU type {kind})")
        self.message_id = 0

    def _exactly(self, count: int) -> bytes:
        parts, left = [], count
        while left:
            chunk = self.sock.recv(min(left, 1 << 20))
            if not chunk:
                raise OSError("connection closed")
            parts.append(chunk)
            left -= len(chunk)
        return b"".join(parts)

    def _pdu(self) -> tuple[int, bytes]:
        header = self._exactly(6)
        return header[0], self._exactly(struct.unpack(">L", header[2:])[0])

    def find(self, query: Dataset) -> tuple[float, float, int]:
        """(seconds to the first match, seconds to the final response, matches)."""
        self.message_id += 1
        identifier = encode_dataset(query, rawpdu.IMPLICIT_VR_LE)
        command = encode_command(CFindRQ(self.message_id, UPS_PULL, dataset=identifier))
        started = time.perf_counter()
        self.sock.sendall(rawpdu.p_data_tf(1, command, identifier))
        first = None
        matches = 0
        fragments = b""
        while True:
            kind, body = self._pdu()
            if kind != rawpdu.P_DATA_TF:
                raise OSError(f"PDU type {kind} during C-FIND")
            at = 0
            while at < len(body):
                size, _, control = _PDV.unpack_from(body, at)
                value = body[at + 6 : at + 4 + size]
                at += 4 + size
                if not control & 0x01:
                    continue  # a data set fragment: not read
                fragments += value
                if not control & 0x02:
                    continue
                status = cast(int, decode_command_set(fragments)[STATUS])
                fragments = b""
                if status in _PENDING:
                    matches += 1
                    if first is None:
                        first = time.perf_counter()
                    continue
                done = time.perf_counter()
                if status != 0:
                    raise OSError(f"C-FIND ended with status 0x{status:04X}")
                return (first or done) - started, done - started, matches

    def close(self) -> None:
        try:
            self.sock.sendall(rawpdu.release_rq())
            self._pdu()
        except OSError:
            pass
        self.sock.close()
