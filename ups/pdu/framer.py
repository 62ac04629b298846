"""Incremental PDU framing: bytes in, whole PDUs out (PS3.8 §9.3.1).

The length in a PDU header is checked against the receive limit the moment the six
header bytes are in, before anything is buffered for the body: a length field of
0xFFFFFFFF costs nothing but an A-ABORT. The limits are

* P-DATA-TF: the Maximum Length Received we announced (PS3.8 D.1 — it bounds the
  PDU's variable field); 0 means "no limit", which we still cap at ``PDATA_CEILING``;
* A-ASSOCIATE-RQ/AC: ``max_associate_length`` (a sane cap: the standard sets none);
* A-ASSOCIATE-RJ, A-RELEASE-RQ/RP, A-ABORT: exactly 4 bytes.

Received bytes live in one ``bytearray``; headers are read with ``struct.unpack_from``
and consumed bytes are dropped from the front, which CPython does without moving the
rest of the buffer.
"""

from __future__ import annotations

from ups.pdu.codec import PDU_HEADER, decode_pdu
from ups.pdu.enums import PDUType
from ups.pdu.errors import InvalidParameter, PDUError, PDUTooLarge, UnrecognizedPDU
from ups.pdu.pdus import PDU

PDATA_CEILING = 32 * 1024 * 1024
"""Largest P-DATA-TF accepted even when we announced "unlimited" (0)."""

DEFAULT_MAX_ASSOCIATE_LENGTH = 1024 * 1024
"""Cap on A-ASSOCIATE-RQ/AC: 1 MiB holds 256 contexts and large identity tokens."""

_FIXED_LENGTH_TYPES = frozenset(
    {PDUType.A_ASSOCIATE_RJ, PDUType.A_RELEASE_RQ, PDUType.A_RELEASE_RP, PDUType.A_ABORT}
)
_ASSOCIATE_TYPES = frozenset({PDUType.A_ASSOCIATE_RQ, PDUType.A_ASSOCIATE_AC})
_KNOWN_TYPES = frozenset(int(t) for t in PDUType)


class Framer:
    """Turns a byte stream into PDUs; raises ``PDUError`` subclasses only."""

    __slots__ = ("_buffer", "_max_pdata", "_max_associate")

    def __init__(
        self, max_pdata_length: int, max_associate_length: int = DEFAULT_MAX_ASSOCIATE_LENGTH
    ) -> None:
        self._buffer = bytearray()
        self._max_pdata = PDATA_CEILING
        self._max_associate = max_associate_length
        self.set_max_pdata_length(max_pdata_length)

    def set_max_pdata_length(self, max_pdata_length: int) -> None:
        """Our announced Maximum Length Received; 0 = unlimited (capped at the ceiling)."""
        if max_pdata_length < 0:
            raise ValueError("max_pdata_length must be >= 0")
        self._max_pdata = min(max_pdata_length or PDATA_CEILING, PDATA_CEILING)

    @property
    def max_pdata_length(self) -> int:
        return self._max_pdata

    @property
    def has_partial_pdu(self) -> bool:
        """True while some bytes of an incomplete PDU are buffered (for per-PDU deadlines)."""
        return bool(self._buffer)

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        self._buffer += data

    def next_pdu(self) -> PDU | None:
        """The next whole PDU, or None until more bytes arrive."""
        buffer = self._buffer
        if len(buffer) < 6:
            return None
        pdu_type, length = PDU_HEADER.unpack_from(buffer)
        try:
            self._check_length(pdu_type, length)
            end = 6 + length
            if len(buffer) < end:
                return None
            with memoryview(buffer) as view:  # released before the buffer is trimmed
                # Decoded straight from the buffer: P-DATA-TF copies only its PDV values.
                pdu = decode_pdu(pdu_type, view[6:end])
        except PDUError as exc:
            exc.pdu_type = pdu_type  # the machine asks first whether this type was expected
            raise
        del buffer[:end]
        return pdu

    def _check_length(self, pdu_type: int, length: int) -> None:
        if pdu_type == PDUType.P_DATA_TF:
            if length > self._max_pdata:
                raise PDUTooLarge(
                    f"P-DATA-TF of {length} bytes exceeds our maximum of {self._max_pdata}"
                )
        elif pdu_type in _ASSOCIATE_TYPES:
            if length > self._max_associate:
                raise PDUTooLarge(
                    f"A-ASSOCIATE PDU of {length} bytes exceeds the cap of {self._max_associate}"
                )
        elif pdu_type in _FIXED_LENGTH_TYPES:
            if length != 4:
                raise InvalidParameter(f"PDU type 0x{pdu_type:02X} with length {length}, not 4")
        elif pdu_type not in _KNOWN_TYPES:
            raise UnrecognizedPDU(f"unknown PDU type 0x{pdu_type:02X}")
