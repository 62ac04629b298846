"""An A-ASSOCIATE-AC arriving on an established association is aborted as PS3.8 says.

PS3.8 Table 9-10, Sta6 (association established) with Evt3 (A-ASSOCIATE-AC PDU received)
is AA-8: A-ABORT with source 2 (service provider) and reason 2 (unexpected PDU). Issue 12
(finding 8) saw reason 5; the PDU machine was fixed, and this test holds the bytes on the
wire to it: a raw socket associates with a real listener, sends the AC it got back, and
reads the A-ABORT PDU.
"""

from __future__ import annotations

import asyncio
import struct

import pytest

import ups
from ups.net.config import AssociationConfig
from ups.net.requestor import build_request
from ups.pdu.codec import encode_pdu
from ups.services.uids import UPS_EVENT, VERIFICATION

pytestmark = pytest.mark.timeout(20)

_ASSOCIATE_AC, _ABORT = 0x02, 0x07


async def _read_pdu(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await asyncio.wait_for(reader.readexactly(6), 5)
    pdu_type, _, length = struct.unpack(">BBI", head)
    return pdu_type, await asyncio.wait_for(reader.readexactly(length), 5)


async def test_an_ac_in_sta6_is_aborted_aa8_reason_2() -> None:
    async with ups.listen("ME@127.0.0.1:0") as listener:
        reader, writer = await asyncio.open_connection("127.0.0.1", listener.port)
        try:
            rq = build_request("ME", "PEER", [(VERIFICATION, ("1.2.840.10008.1.2",)),
                                              (UPS_EVENT, ("1.2.840.10008.1.2",))],
                               AssociationConfig())  # fmt: skip
            writer.write(encode_pdu(rq))
            pdu_type, body = await _read_pdu(reader)
            assert pdu_type == _ASSOCIATE_AC  # Sta6 now
            writer.write(struct.pack(">BBI", pdu_type, 0, len(body)) + body)  # Evt3
            pdu_type, body = await _read_pdu(reader)
        finally:
            writer.close()
    assert pdu_type == _ABORT
    source, reason = body[2], body[3]
    assert (source, reason) == (2, 2)  # service provider, unexpected PDU
