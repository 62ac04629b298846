"""The canned responder: a DICOM acceptor that decodes nothing, the ceiling for listener rows.

A bare ``asyncio.Protocol`` that answers the raw sender (``bench.rawclient``) with
pre-encoded PDUs: the A-ASSOCIATE-RQ with an A-ASSOCIATE-AC accepting its one presentation
context (and echoing its Asynchronous Operations Window sub-item, PS3.7 D.3.3.3), every
P-DATA-TF with an N-EVENT-REPORT-RSP or C-ECHO-RSP whose Message ID Being Responded To is
copied from the request's Message ID at its known offset (the raw sender's requests are
``bench.rawpdu`` templates of fixed size), and A-RELEASE-RQ with A-RELEASE-RP (PS3.8 §9.3).
The answers to one read leave in one ``transport.write``.

It does the least a correct peer of the raw sender can do: PDU framing, one length check
and a two-byte copy per request. A listener that parses, checks and acknowledges events
is measured against it, with the same raw sender, window, loop and process layout.
"""

from __future__ import annotations

import asyncio
import socket
import struct
from collections.abc import Iterator
from typing import cast

from bench import rawpdu

_HEADER = struct.Struct(">BBL")

# abstract syntax -> (request template, response template) factories, by context id
_KINDS = {
    rawpdu.UPS_EVENT: (rawpdu.event_template, rawpdu.event_rsp_template),
    rawpdu.VERIFICATION: (rawpdu.echo_template, rawpdu.echo_rsp_template),
}
_AC_CACHE: dict[bytes, tuple[bytes, int, bytes, bytes, int]] = {}


def _canned_for(rq_body: bytes) -> tuple[bytes, int, bytes, bytes, int]:
    """(A-ASSOCIATE-AC, request size, response head, response tail, request Message ID
    offset) for this A-ASSOCIATE-RQ body; built once per distinct RQ."""
    canned = _AC_CACHE.get(rq_body)
    if canned is None:
        rq = rawpdu.parse_associate_rq(rq_body)
        kinds = _KINDS.get(rq.abstract_syntax)
        if kinds is None or rawpdu.IMPLICIT_VR_LE not in rq.transfer_syntaxes:
            raise ValueError(f"canned responder: cannot answer {rq.abstract_syntax}")
        request, response = (make(rq.context_id) for make in kinds)
        accepted = rawpdu.AssociateRQ(
            rq.called,
            rq.calling,
            rq.context_id,
            rq.abstract_syntax,
            (rawpdu.IMPLICIT_VR_LE,),
            rq.window,
        )
        at = response.message_id_offset
        canned = (
            rawpdu.associate_ac(accepted),
            len(request.pdu),
            response.pdu[:at],
            response.pdu[at + 2 :],
            request.message_id_offset,
        )
        _AC_CACHE[rq_body] = canned
    return canned


class CannedResponder(asyncio.Protocol):
    """One association of the canned acceptor; ``counter`` advances once per answer."""

    def __init__(self, counter: Iterator[int]) -> None:
        self._count = counter
        self._buf = bytearray()
        self._transport: asyncio.Transport | None = None
        self._request_size = 0
        self._head = self._tail = b""
        self._mid_at = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's is no subclass
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        buf = self._buf
        buf += data
        out: list[bytes] = []
        pos, size = 0, len(buf)
        while size - pos >= 6:
            pdu_type, _, length = _HEADER.unpack_from(buf, pos)
            end = pos + 6 + length
            if end > size:
                break
            if pdu_type == rawpdu.P_DATA_TF and end - pos == self._request_size:
                at = pos + self._mid_at
                out.append(self._head)
                out.append(bytes(buf[at : at + 2]))
                out.append(self._tail)
                next(self._count)
            elif pdu_type == rawpdu.A_ASSOCIATE_RQ and not self._request_size:
                try:
                    ac, self._request_size, self._head, self._tail, self._mid_at = _canned_for(
                        bytes(buf[pos + 6 : end])
                    )
                except ValueError:
                    self._abort(out)
                    return
                out.append(ac)
            elif pdu_type == rawpdu.A_RELEASE_RQ:
                out.append(rawpdu.release_rp())
            elif pdu_type == rawpdu.A_ABORT:
                self._buf.clear()
                if self._transport is not None:
                    self._transport.close()
                return
            else:  # anything the raw sender never sends
                self._abort(out)
                return
            pos = end
        del buf[:pos]
        if out and self._transport is not None:
            self._transport.write(b"".join(out))

    def _abort(self, pending: list[bytes]) -> None:
        self._buf.clear()
        if self._transport is not None and not self._transport.is_closing():
            self._transport.write(b"".join([*pending, rawpdu.abort()]))
            self._transport.close()


async def start_server(host: str, counter: Iterator[int]) -> asyncio.Server:
    loop = asyncio.get_running_loop()
    return await loop.create_server(lambda: CannedResponder(counter), host, 0)
