"""PDV packing and reassembly: messages to P-DATA-TF bytes and back (PS3.8 Annex E, PS3.7 §8).

A DIMSE message travels as a command stream then, optionally, a data set stream, each
cut into fragments carried in Presentation Data Value items. The message control
header of each PDV says command or data set (bit 0) and last fragment or not (bit 1)
(PS3.8 E.2). Command fragments all precede data set fragments, and one message uses
one presentation context throughout (PS3.7 §8.1, PS3.8 §9.3.5.1).

Sending: ``encode_pdata`` returns complete P-DATA-TF PDUs as one ``bytes`` for one
``transport.write``. A P-DATA-TF's variable field may not exceed the peer's Maximum
Length Received (PS3.8 D.1), so each PDV fragment is at most that minus six (PDV length
and header) and is kept even, as every fragment but the last of an odd stream must be.

Receiving: ``Reassembler.feed`` takes decoded ``PDataTF`` PDUs and returns completed
messages. Framing faults raise ``FragmentError`` (abort the association); a command
that frames correctly but cannot be turned into a message is returned as a
``RejectedMessage`` so the runtime can answer it with a failure status.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Container
from dataclasses import dataclass
from typing import Final

from ups.dimse.codec import COMMAND_FIELD, CommandValue, command_has_dataset, decode_command_set
from ups.dimse.errors import DimseError, EncodeError, FragmentError
from ups.dimse.messages import Message, message_from_elements
from ups.pdu.pdus import PDV, PDataTF

DEFAULT_MAX_PDATA_LENGTH: Final = 1 << 20
"""Ceiling used when the peer announces no limit (Maximum Length Received 0, PS3.8 D.1.1).

1 MiB keeps any one PDU small enough to frame cheaply while making per-PDU overhead
negligible for data sets of any realistic size.
"""
MIN_PDATA_LENGTH: Final = 8
"""The smallest variable field that fits one PDV with a two-byte (even) fragment."""
MAX_COMMAND_LENGTH: Final = 64 * 1024
"""Default cap on a reassembled command set; real ones are a few hundred bytes."""

_PDU_TYPE = 0x04
_PDU_HEADER = struct.Struct(">BxI")
_PDV_HEADER = struct.Struct(">IBB")
_ONE_PDV = struct.Struct(">BxIIBB")
# Message control header values (PS3.8 E.2): bit 0 command, bit 1 last fragment.
_DATA, _COMMAND, _DATA_LAST, _COMMAND_LAST = 0x00, 0x01, 0x02, 0x03


def fragment_limit(max_pdata_length: int) -> int:
    """The largest even fragment one PDV may carry under the peer's limit."""
    if max_pdata_length < 0:
        raise EncodeError(f"maximum PDU length {max_pdata_length} is negative")
    limit = max_pdata_length or DEFAULT_MAX_PDATA_LENGTH
    if limit < MIN_PDATA_LENGTH:
        raise EncodeError(
            f"maximum PDU length {max_pdata_length} is below {MIN_PDATA_LENGTH}: "
            "no PDV with an even fragment fits"
        )
    return (limit - 6) & ~1


def encode_pdata(
    context_id: int,
    command: bytes,
    dataset: bytes | None,
    max_pdata_length: int,
    *,
    pack: bool = True,
) -> bytes:
    """One message as the bytes of one or more complete P-DATA-TF PDUs.

    ``max_pdata_length`` is the peer's Maximum Length Received (0 = no limit, see
    ``DEFAULT_MAX_PDATA_LENGTH``). With ``pack`` the data set's first fragment shares
    the command's last PDU when room is left (the default); without it every PDU
    carries exactly one PDV (dcm4che's ``-pdv1``).
    """
    frag = fragment_limit(max_pdata_length)
    clen = len(command)
    if clen <= frag:  # the hot path: the command fits one PDV
        if dataset is None:
            return _ONE_PDV.pack(_PDU_TYPE, clen + 6, clen + 2, context_id, _COMMAND_LAST) + command
        dlen = len(dataset)
        if pack and clen + dlen + 6 <= frag:
            return b"".join(
                (
                    _ONE_PDV.pack(_PDU_TYPE, clen + dlen + 12, clen + 2, context_id, _COMMAND_LAST),
                    command,
                    _PDV_HEADER.pack(dlen + 2, context_id, _DATA_LAST),
                    dataset,
                )
            )
    return _encode_general(context_id, command, dataset, frag + 6, pack)


def _encode_general(
    context_id: int, command: bytes, dataset: bytes | None, limit: int, pack: bool
) -> bytes:
    """Fragment both streams and group their PDVs into PDUs of at most ``limit`` bytes."""
    pdus: list[list[tuple[int, memoryview]]] = []  # each: [(control, fragment), ...]
    current: list[tuple[int, memoryview]] = []
    space = limit
    streams = [(memoryview(command), _COMMAND)]
    if dataset is not None:
        streams.append((memoryview(dataset), _DATA))
    for view, control in streams:
        n = len(view)
        pos = 0
        while True:
            room = (space - 6) & ~1
            if current and (not pack or room < min(2, n - pos) or room < 0):
                pdus.append(current)
                current, space = [], limit
                room = (space - 6) & ~1
            take = min(n - pos, room)
            last = pos + take == n
            current.append((control | (_DATA_LAST if last else 0), view[pos : pos + take]))
            space -= take + 6
            pos += take
            if last:
                break
    pdus.append(current)
    out: list[bytes | memoryview] = []
    for pdvs in pdus:
        out.append(_PDU_HEADER.pack(_PDU_TYPE, sum(len(f) + 6 for _, f in pdvs)))
        for control, fragment in pdvs:
            out.append(_PDV_HEADER.pack(len(fragment) + 2, context_id, control))
            out.append(fragment)
    return b"".join(out)


@dataclass(frozen=True, slots=True)
class RejectedMessage:
    """A message whose PDVs framed correctly but whose command set cannot be used.

    ``error.status`` is the failure status to answer with (0x0211 unknown operation,
    0x0212 mistyped argument) and ``error.message_id`` the request to answer, when
    known; ``command_field`` tells whether it was a request at all.
    """

    error: DimseError
    command_field: int | None
    command: bytes
    dataset: bytes | None


Received = tuple[int, Message | RejectedMessage]
"""A completed message (or a rejected one) with its presentation context ID."""


class Reassembler:
    """Joins the PDVs of incoming P-DATA-TF PDUs into messages (PS3.8 Annex E).

    ``is_accepted_context`` is a container of accepted presentation context IDs or a
    predicate. One reassembler serves one association and keeps at most one partial
    message. After a ``FragmentError`` it is broken and must not be fed again.
    """

    __slots__ = (
        "_accepted",
        "_max_command",
        "_max_dataset",
        "_context",
        "_command_parts",
        "_command_size",
        "_elements",
        "_command",
        "_data_first",
        "_data_buffer",
        "_error",
    )

    def __init__(
        self,
        is_accepted_context: Callable[[int], bool] | Container[int],
        *,
        max_command_length: int = MAX_COMMAND_LENGTH,
        max_dataset_length: int | None = None,
    ) -> None:
        if callable(is_accepted_context):
            self._accepted: Callable[[int], bool] = is_accepted_context
        else:
            self._accepted = is_accepted_context.__contains__
        self._max_command = max_command_length
        self._max_dataset = max_dataset_length
        self._error: str | None = None  # text only: a kept exception would keep its frames
        self._reset()

    def _reset(self) -> None:
        self._context: int | None = None
        self._command_parts: list[bytes] = []
        self._command_size = 0
        self._elements: dict[int, CommandValue] | None = None
        self._command = b""
        self._data_first: bytes | None = None
        self._data_buffer: bytearray | None = None

    @property
    def idle(self) -> bool:
        """True between messages (no partial message is buffered)."""
        return self._context is None

    def _fail(self, text: str) -> FragmentError:
        self._reset()  # what was buffered is never used: give it back now
        self._error = text
        return FragmentError(text)

    def feed(self, pdu: PDataTF) -> list[Received]:
        """Consume one P-DATA-TF; return the messages it completes, in order."""
        if self._error is not None:
            raise FragmentError(f"reassembler already failed: {self._error}")
        pdvs = pdu.pdvs
        if len(pdvs) == 2 and self._context is None:
            whole = self._whole_message(pdvs[0], pdvs[1])
            if whole is not None:
                return [whole]
        done: list[Received] = []
        for pdv in pdu.pdvs:
            cid = pdv.context_id
            if self._context is None:
                if not self._accepted(cid):
                    raise self._fail(f"PDV for presentation context {cid}, not accepted")
                if not pdv.is_command:
                    raise self._fail("data set PDV before any command PDV")
                self._context = cid
            elif cid != self._context:
                raise self._fail(
                    f"presentation context changed from {self._context} to {cid} within one message"
                )
            if pdv.is_command:
                self._command_fragment(pdv.data, pdv.is_last, done)
            else:
                self._data_fragment(pdv.data, pdv.is_last, done)
        return done

    def _whole_message(self, command: PDV, data: PDV) -> Received | None:
        """The hot path: one PDU holding a whole command and its whole data set.

        Returns None for anything else (or anything wrong), which the general path then
        handles, or refuses with the error it would have given anyway.
        """
        cid = command.context_id
        if not (
            command.is_command
            and command.is_last
            and data.is_last
            and not data.is_command
            and data.context_id == cid
            and len(command.data) <= self._max_command
            and (self._max_dataset is None or len(data.data) <= self._max_dataset)
            and self._accepted(cid)
        ):
            return None
        try:
            elements = decode_command_set(command.data)
            if not command_has_dataset(elements):
                return None
        except DimseError:
            return None
        return cid, _build(elements, command.data, data.data)

    def _command_fragment(self, data: bytes, last: bool, done: list[Received]) -> None:
        if self._elements is not None:
            raise self._fail("command PDV after the command set was complete")
        self._command_size += len(data)
        if self._command_size > self._max_command:
            raise self._fail(f"command set exceeds {self._max_command} bytes")
        if not last:
            self._command_parts.append(data)
            return
        if self._command_parts:
            self._command_parts.append(data)
            data = b"".join(self._command_parts)
            self._command_parts = []
        try:
            elements = decode_command_set(data)
            has_dataset = command_has_dataset(elements)
        except DimseError as exc:
            # The command cannot be read, so nothing says whether a data set follows.
            raise self._fail(f"undecodable command set: {exc}") from exc
        if has_dataset:
            self._elements = elements
            self._command = data
        else:
            cid = self._context
            assert cid is not None
            self._reset()
            done.append((cid, _build(elements, data, None)))

    def _data_fragment(self, data: bytes, last: bool, done: list[Received]) -> None:
        """Collect a data set's fragments: one fragment is kept as is (the common case);
        several grow one buffer, so a peer that never ends its data set costs one block
        of memory, given back whole on abort, not thousands of small ones."""
        elements = self._elements
        if elements is None:
            if self._command_parts:
                raise self._fail("data set PDV before the command set was complete")
            raise self._fail("data set PDV for a command that announced no data set")
        buffer = self._data_buffer
        if buffer is None and self._data_first is None:
            size = len(data)
        else:
            if buffer is None:
                assert self._data_first is not None
                buffer = self._data_buffer = bytearray(self._data_first)
                self._data_first = None
            size = len(buffer) + len(data)
        if self._max_dataset is not None and size > self._max_dataset:
            raise self._fail(f"data set exceeds {self._max_dataset} bytes")
        if buffer is not None:
            buffer += data
        if not last:
            if buffer is None:
                self._data_first = data
            return
        if buffer is not None:
            data = bytes(buffer)
        cid, command = self._context, self._command
        assert cid is not None
        self._reset()
        done.append((cid, _build(elements, command, data)))


def _build(
    elements: dict[int, CommandValue], command: bytes, dataset: bytes | None
) -> Message | RejectedMessage:
    try:
        return message_from_elements(elements, dataset)
    except DimseError as exc:
        field = elements.get(COMMAND_FIELD)
        return RejectedMessage(exc, field if type(field) is int else None, command, dataset)
