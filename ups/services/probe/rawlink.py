"""One association driven PDU by PDU: for the checks a well-behaved requestor cannot make.

``ups.net`` keeps an association correct (it never reuses an outstanding Message ID, it
hides the A-ASSOCIATE-AC items behind a summary, it answers a release for us), which is
what every other check wants. A few must see or send exactly what is on the wire: the
role and window items of the A-ASSOCIATE-AC (PS3.7 D.3.3.3, D.3.3.4), the A-RELEASE-RP
(PS3.8 9.3.7), a P-DATA-TF on a context that was never accepted, two requests with one
Message ID, the final response after a C-CANCEL-RQ. This link builds its PDUs with
:mod:`ups.pdu` and its messages with :mod:`ups.dimse`, over a plain asyncio stream, and
every read has a deadline.
"""

from __future__ import annotations

import asyncio
import contextlib

from ups.dimse.fragment import Reassembler, RejectedMessage, encode_pdata
from ups.dimse.messages import RESPONSE_TYPES, Message, encode_command
from ups.pdu.codec import encode_pdu
from ups.pdu.framer import Framer
from ups.pdu.negotiation import Negotiated, evaluate_accept
from ups.pdu.pdus import PDU, AAssociateAC, AAssociateRQ, AReleaseRQ, PDataTF

__all__ = ["RawLink", "LinkClosed", "status_of"]

_READ = 64 * 1024


def status_of(message: object) -> int | None:
    """The Status of a DIMSE response; None for anything else (a request, a PDU)."""
    if isinstance(message, RESPONSE_TYPES):
        return int(message.status)
    return None


class LinkClosed(Exception):
    """The peer closed the connection (after an A-ABORT, or without a word)."""


class RawLink:
    """A TCP connection speaking PDUs; ``connect`` connects, ``associate`` negotiates."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer
        self._framer = Framer(0)
        self.negotiated: Negotiated | None = None
        self.ac: AAssociateAC | None = None
        self._reassembler: Reassembler | None = None
        self._messages: list[tuple[int, Message | RejectedMessage]] = []

    @classmethod
    async def connect(cls, host: str, port: int, timeout: float) -> RawLink:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(host, port)
        return cls(reader, writer)

    def send(self, pdu: PDU) -> None:
        self._writer.write(encode_pdu(pdu))

    def send_bytes(self, data: bytes) -> None:
        self._writer.write(data)

    async def next_pdu(self, timeout: float) -> PDU:
        """The next PDU; ``TimeoutError`` after ``timeout``, ``LinkClosed`` at EOF."""
        async with asyncio.timeout(timeout):
            while True:
                pdu = self._framer.next_pdu()
                if pdu is not None:
                    return pdu
                data = await self._reader.read(_READ)
                if not data:
                    raise LinkClosed("the peer closed the connection")
                self._framer.feed(data)

    async def associate(self, rq: AAssociateRQ, timeout: float) -> PDU:
        """Send ``rq``; the answer (AC, RJ or A-ABORT). After an AC, messages can flow."""
        self.send(rq)
        answer = await self.next_pdu(timeout)
        if isinstance(answer, AAssociateAC):
            self.ac = answer
            self.negotiated = evaluate_accept(rq, answer)
            self._reassembler = Reassembler(self.negotiated.contexts)
        return answer

    def send_message(self, message: Message, context_id: int) -> None:
        """Encode and send one DIMSE message on ``context_id`` (accepted or not)."""
        self.send_messages([message], context_id)

    def send_messages(self, messages: list[Message], context_id: int) -> None:
        """Encode several messages and send them with one write: on loopback or a LAN
        the peer reads them together, so none can be answered before the next arrives."""
        limit = self.negotiated.remote_max_pdata_length if self.negotiated else 16384
        self.send_bytes(
            b"".join(
                encode_pdata(context_id, encode_command(message), message.dataset, limit)
                for message in messages
            )
        )

    async def next_message(self, timeout: float) -> Message | RejectedMessage | PDU:
        """The next DIMSE message, or the first PDU that is not P-DATA (abort, release)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not self._messages:
            pdu = await self.next_pdu(max(0.0, deadline - loop.time()))
            if not isinstance(pdu, PDataTF):
                return pdu
            assert self._reassembler is not None
            self._messages.extend(self._reassembler.feed(pdu))
        return self._messages.pop(0)[1]

    async def release(self, timeout: float) -> PDU:
        """A-RELEASE-RQ; the PDU that answers it (A-RELEASE-RP when all is well)."""
        self.send(AReleaseRQ())
        while True:
            pdu = await self.next_pdu(timeout)
            if not isinstance(pdu, PDataTF):
                return pdu

    async def close(self) -> None:
        self._writer.close()
        with contextlib.suppress(Exception):
            async with asyncio.timeout(2.0):
                await self._writer.wait_closed()
