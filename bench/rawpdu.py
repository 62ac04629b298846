"""Hand-built PS3.8 PDUs for the benchmark's raw sender and the ceiling's message sizes.

Just enough of the Upper Layer (PS3.8 §9.3) and of the DIMSE command encoding (PS3.7 §6.3,
§9.3, §10.3) to open an association, send pre-encoded N-EVENT-REPORT-RQ / C-ECHO-RQ
messages and read the responses. Built with ``struct`` here on purpose: the raw sender
must not depend on the stack under test, and must cost almost nothing per event so that
it is never the bottleneck when a listener is measured.

Everything is Implicit VR Little Endian (the default transfer syntax, PS3.5 §10.1) unless
asked otherwise, one presentation context, command and data set packed as two PDVs in one
P-DATA-TF. The acceptor side (``associate_ac``, the response templates) serves the canned
responder (``bench.canned``); ``fragmented`` splits a large data set over P-DATA-TFs for
the hostile-input scenario (``bench.hostile``).
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass

APPLICATION_CONTEXT = "1.2.840.10008.3.1.1.1"
IMPLICIT_VR_LE = "1.2.840.10008.1.2"
EXPLICIT_VR_LE = "1.2.840.10008.1.2.1"
VERIFICATION = "1.2.840.10008.1.1"
UPS_EVENT = "1.2.840.10008.5.1.4.34.6.4"
UPS_PUSH = "1.2.840.10008.5.1.4.34.6.1"
UPS_GLOBAL_SUBSCRIPTION = "1.2.840.10008.5.1.4.34.5"
IMPLEMENTATION_CLASS_UID = "2.25.31868094521843402311486622906158423171"
IMPLEMENTATION_VERSION = "DCMUPS_BENCH"
SAMPLE_WORKITEM_UID = "2.25.144227133196387532190196352493452125410"

# PDU types (PS3.8 Table 9-1 .. 9-26)
A_ASSOCIATE_RQ = 0x01
A_ASSOCIATE_AC = 0x02
A_ASSOCIATE_RJ = 0x03
P_DATA_TF = 0x04
A_RELEASE_RQ = 0x05
A_RELEASE_RP = 0x06
A_ABORT = 0x07

# DIMSE command fields (PS3.7 Annex E)
C_ECHO_RQ = 0x0030
C_ECHO_RSP = 0x8030
N_EVENT_REPORT_RQ = 0x0100
N_EVENT_REPORT_RSP = 0x8100
N_CREATE_RQ = 0x0140
DATA_SET_ABSENT = 0x0101
DATA_SET_PRESENT = 0x0001

_HEADER = struct.Struct(">BBL")  # PDU type, reserved, length
HEADER_LEN = _HEADER.size


def _even(value: bytes, pad: bytes) -> bytes:
    """DICOM values have even length (PS3.5 §7.1.1); UIDs pad with NUL, text with space."""
    return value + pad if len(value) % 2 else value


def _ae_title(title: str) -> bytes:
    return title.encode("ascii").ljust(16, b" ")[:16]


def _item(item_type: int, body: bytes) -> bytes:
    """A variable item: type, reserved, 2-byte big-endian length (PS3.8 §9.3.2.x)."""
    return struct.pack(">BBH", item_type, 0, len(body)) + body


def _pdu(pdu_type: int, body: bytes) -> bytes:
    return _HEADER.pack(pdu_type, 0, len(body)) + body


def associate_rq(
    calling: str,
    called: str,
    abstract_syntax: str,
    *,
    max_pdu: int = 16384,
    window: int = 1,
    context_id: int = 1,
    transfer_syntax: str = IMPLICIT_VR_LE,
) -> bytes:
    """A-ASSOCIATE-RQ (PS3.8 §9.3.2) with one presentation context and one transfer syntax
    (Implicit VR LE unless ``transfer_syntax`` says otherwise).

    ``window`` > 1 adds the Asynchronous Operations Window sub-item (PS3.7 D.3.3.3),
    asking for that many operations invoked and performed.
    """
    pc = struct.pack(">BBBB", context_id, 0, 0, 0)
    pc += _item(0x30, abstract_syntax.encode("ascii"))
    pc += _item(0x40, transfer_syntax.encode("ascii"))
    user = _item(0x51, struct.pack(">L", max_pdu))
    user += _item(0x52, IMPLEMENTATION_CLASS_UID.encode("ascii"))
    if window > 1:
        user += _item(0x53, struct.pack(">HH", window, window))
    user += _item(0x55, IMPLEMENTATION_VERSION.encode("ascii"))
    body = struct.pack(">HH", 1, 0) + _ae_title(called) + _ae_title(calling) + bytes(32)
    body += _item(0x10, APPLICATION_CONTEXT.encode("ascii"))
    body += _item(0x20, pc)
    body += _item(0x50, user)
    return _pdu(A_ASSOCIATE_RQ, body)


@dataclass(frozen=True, slots=True)
class AssociateRQ:
    """What an acceptor that decodes nothing else needs from an A-ASSOCIATE-RQ body."""

    called: bytes  # 16 bytes, as sent
    calling: bytes
    context_id: int  # the first presentation context's
    abstract_syntax: str
    transfer_syntaxes: tuple[str, ...]
    window: bytes | None  # the Asynchronous Operations Window sub-item, as sent


def parse_associate_rq(body: bytes | memoryview) -> AssociateRQ:
    """The AE titles, first presentation context and window item of an A-ASSOCIATE-RQ
    body (the bytes after the 6-byte PDU header; PS3.8 §9.3.2, Tables 9-11..9-16)."""
    if len(body) < 68:
        raise ValueError("A-ASSOCIATE-RQ too short")
    called, calling = bytes(body[4:20]), bytes(body[20:36])
    context: tuple[int, str, tuple[str, ...]] | None = None
    window: bytes | None = None
    pos = 68
    while pos + 4 <= len(body):
        item_type, _, length = struct.unpack_from(">BBH", body, pos)
        value = body[pos + 4 : pos + 4 + length]
        if item_type == 0x20 and context is None and length >= 4:
            abstract, syntaxes = "", []
            sub = 4
            while sub + 4 <= length:
                sub_type, _, sub_len = struct.unpack_from(">BBH", value, sub)
                text = bytes(value[sub + 4 : sub + 4 + sub_len]).decode("ascii").rstrip("\0 ")
                if sub_type == 0x30:
                    abstract = text
                elif sub_type == 0x40:
                    syntaxes.append(text)
                sub += 4 + sub_len
            context = (value[0], abstract, tuple(syntaxes))
        elif item_type == 0x50:
            sub = 0
            while sub + 4 <= length:
                sub_type, _, sub_len = struct.unpack_from(">BBH", value, sub)
                if sub_type == 0x53:
                    window = bytes(value[sub : sub + 4 + sub_len])
                sub += 4 + sub_len
        pos += 4 + length
    if context is None:
        raise ValueError("A-ASSOCIATE-RQ without a presentation context")
    return AssociateRQ(called, calling, *context, window)


def associate_ac(rq: AssociateRQ, *, max_pdu: int = 16384) -> bytes:
    """A-ASSOCIATE-AC (PS3.8 §9.3.3) accepting ``rq``'s first presentation context with
    its first transfer syntax, echoing its window sub-item when it sent one."""
    pc = struct.pack(">BBBB", rq.context_id, 0, 0, 0)
    pc += _item(0x40, rq.transfer_syntaxes[0].encode("ascii"))
    user = _item(0x51, struct.pack(">L", max_pdu))
    user += _item(0x52, IMPLEMENTATION_CLASS_UID.encode("ascii"))
    if rq.window is not None:
        user += rq.window
    user += _item(0x55, IMPLEMENTATION_VERSION.encode("ascii"))
    body = struct.pack(">HH", 1, 0) + rq.called + rq.calling + bytes(32)
    body += _item(0x10, APPLICATION_CONTEXT.encode("ascii"))
    body += _item(0x21, pc)
    body += _item(0x50, user)
    return _pdu(A_ASSOCIATE_AC, body)


def associate_ac_like(rq: bytes) -> bytes:
    """An A-ASSOCIATE-AC of the size a peer would answer ``rq`` with (for the ceiling only)."""
    return bytes([A_ASSOCIATE_AC]) + rq[1:]


def release_rq() -> bytes:
    return _pdu(A_RELEASE_RQ, bytes(4))


def release_rp() -> bytes:
    return _pdu(A_RELEASE_RP, bytes(4))


def abort() -> bytes:
    return _pdu(A_ABORT, bytes(4))


# -- command sets (PS3.7 §6.3.1: group 0000, Implicit VR LE, ascending tags) ---------------


def _element(element: int, value: bytes) -> bytes:
    return struct.pack("<HHL", 0x0000, element, len(value)) + value


def _us(element: int, value: int) -> bytes:
    return _element(element, struct.pack("<H", value))


def _ui(element: int, uid: str) -> bytes:
    return _element(element, _even(uid.encode("ascii"), b"\x00"))


def command_set(elements: list[bytes]) -> bytes:
    """Prefix the elements with CommandGroupLength (0000,0000) UL."""
    rest = b"".join(elements)
    return _element(0x0000, struct.pack("<L", len(rest))) + rest


def n_event_report_rq(
    message_id: int, event_type: int = 1, iuid: str = SAMPLE_WORKITEM_UID
) -> bytes:
    """N-EVENT-REPORT-RQ command set (PS3.7 Table 10.3.1-1) for a UPS State Report."""
    return command_set(
        [
            _ui(0x0002, UPS_PUSH),  # Affected SOP Class UID
            _us(0x0100, N_EVENT_REPORT_RQ),  # Command Field
            _us(0x0110, message_id),  # Message ID
            _us(0x0800, DATA_SET_PRESENT),  # Command Data Set Type
            _ui(0x1000, iuid),  # Affected SOP Instance UID
            _us(0x1002, event_type),  # Event Type ID
        ]
    )


def c_echo_rq(message_id: int) -> bytes:
    """C-ECHO-RQ command set (PS3.7 Table 9.3-12)."""
    return command_set(
        [
            _ui(0x0002, VERIFICATION),
            _us(0x0100, C_ECHO_RQ),
            _us(0x0110, message_id),
            _us(0x0800, DATA_SET_ABSENT),
        ]
    )


def n_create_rq(message_id: int, sop_class: str, iuid: str) -> bytes:
    """N-CREATE-RQ command set (PS3.7 Table 10.3.5-1) with an Affected SOP Instance UID."""
    return command_set(
        [
            _ui(0x0002, sop_class),
            _us(0x0100, N_CREATE_RQ),
            _us(0x0110, message_id),
            _us(0x0800, DATA_SET_PRESENT),
            _ui(0x1000, iuid),
        ]
    )


def n_event_report_rsp(message_id: int, event_type: int = 1) -> bytes:
    """N-EVENT-REPORT-RSP command set (PS3.7 Table 10.3.1-2), Success, for the raw
    sender's State Reports."""
    return command_set(
        [
            _ui(0x0002, UPS_PUSH),
            _us(0x0100, N_EVENT_REPORT_RSP),
            _us(0x0120, message_id),  # Message ID Being Responded To
            _us(0x0800, DATA_SET_ABSENT),
            _us(0x0900, 0x0000),  # Status: Success
            _ui(0x1000, SAMPLE_WORKITEM_UID),
            _us(0x1002, event_type),
        ]
    )


def c_echo_rsp(message_id: int) -> bytes:
    """C-ECHO-RSP command set (PS3.7 Table 9.3-13), Success."""
    return command_set(
        [
            _ui(0x0002, VERIFICATION),
            _us(0x0100, C_ECHO_RSP),
            _us(0x0120, message_id),
            _us(0x0800, DATA_SET_ABSENT),
            _us(0x0900, 0x0000),
        ]
    )


def response_command(command_field: int, message_id: int, sop_class: str) -> bytes:
    """A minimal response command set: the size a peer answers with (ceiling sizes)."""
    return command_set(
        [
            _ui(0x0002, sop_class),
            _us(0x0100, command_field),
            _us(0x0120, message_id),
            _us(0x0800, DATA_SET_ABSENT),
            _us(0x0900, 0x0000),
        ]
    )


def state_report_dataset(state: str = "IN PROGRESS", readiness: str = "READY") -> bytes:
    """UPS State Report event information (PS3.4 Table CC.2.4-2), Implicit VR LE."""

    def cs(group: int, element: int, text: str) -> bytes:
        value = _even(text.encode("ascii"), b" ")
        return struct.pack("<HHL", group, element, len(value)) + value

    return cs(0x0040, 0x4041, readiness) + cs(0x0074, 0x1000, state)


# -- P-DATA-TF ------------------------------------------------------------------------------


def p_data_tf(context_id: int, command: bytes, dataset: bytes | None = None) -> bytes:
    """One P-DATA-TF carrying the command PDV and, if any, the data set PDV (PS3.8 §9.3.5).

    Message control header (PS3.8 Annex E.2): bit 0 = command, bit 1 = last fragment.
    """
    body = struct.pack(">LBB", len(command) + 2, context_id, 0x03) + command
    if dataset is not None:
        body += struct.pack(">LBB", len(dataset) + 2, context_id, 0x02) + dataset
    return _pdu(P_DATA_TF, body)


@dataclass(frozen=True, slots=True)
class Template:
    """A pre-encoded request PDU and where its Message ID sits, for cheap re-stamping."""

    pdu: bytes
    message_id_offset: int
    serial_offset: int = 0
    """Where the UID serial of :func:`unique_event_template` sits (0: none)."""

    def stamped(self, message_id: int) -> bytes:
        buf = bytearray(self.pdu)
        struct.pack_into("<H", buf, self.message_id_offset, message_id)
        return bytes(buf)


SERIAL_DIGITS = 10
SERIAL_BASE = 10 ** (SERIAL_DIGITS - 1)
"""A UID serial is SERIAL_BASE + n: ten digits, never a leading zero (PS3.5 §9.1)."""


def unique_uid(prefix: str, serial: int) -> str:
    """The Affected SOP Instance UID of event ``serial`` of a unique-event run."""
    return f"{prefix}.{SERIAL_BASE + serial}"


def stamp_serial(pdu: bytes, offset: int, serial: int) -> bytearray:
    """A copy of ``pdu`` whose UID serial at ``offset`` is ``serial``."""
    buf = bytearray(pdu)
    buf[offset : offset + SERIAL_DIGITS] = b"%d" % (SERIAL_BASE + serial)
    return buf


def _template(pdu: bytes, command: bytes, element: int = 0x0110) -> Template:
    # The Message ID element is (0000,0110) US, length 2 (responses: (0000,0120), Message
    # ID Being Responded To); find its value inside the PDU.
    marker = struct.pack("<HHL", 0x0000, element, 2)
    start = pdu.index(command)
    return Template(pdu, pdu.index(marker, start) + len(marker))


def event_template(context_id: int = 1) -> Template:
    command = n_event_report_rq(1)
    return _template(p_data_tf(context_id, command, state_report_dataset()), command)


def unique_event_template(prefix: str, context_id: int = 1) -> Template:
    """A State Report whose UPS UID ends in a serial to stamp per send (``stamp_serial``):
    a sink that de-duplicates by event identity (``Nats-Msg-Id``) sees distinct events."""
    iuid = unique_uid(prefix, 0)
    command = n_event_report_rq(1, iuid=iuid)
    pdu = p_data_tf(context_id, command, state_report_dataset())
    template = _template(pdu, command)
    offset = pdu.index(iuid.encode("ascii")) + len(prefix) + 1
    return Template(pdu, template.message_id_offset, offset)


def echo_template(context_id: int = 1) -> Template:
    command = c_echo_rq(1)
    return _template(p_data_tf(context_id, command), command)


def event_rsp_template(context_id: int = 1) -> Template:
    """N-EVENT-REPORT-RSP P-DATA-TF; ``message_id_offset`` is Message ID Being Responded To."""
    command = n_event_report_rsp(1)
    return _template(p_data_tf(context_id, command), command, 0x0120)


def echo_rsp_template(context_id: int = 1) -> Template:
    command = c_echo_rsp(1)
    return _template(p_data_tf(context_id, command), command, 0x0120)


def fragmented(
    context_id: int, command: bytes, dataset: bytes | memoryview, max_pdu: int
) -> Iterator[bytes]:
    """P-DATA-TFs carrying ``command`` then ``dataset`` split into fragments so that no
    PDU's variable field exceeds ``max_pdu`` (PS3.8 §9.3.5, Annex D.1: the peer's Maximum
    Length counts the PDV items, each 4 + 2 + fragment bytes)."""
    yield p_data_tf(context_id, command)
    step = max_pdu - 6
    view = memoryview(dataset)
    for start in range(0, len(view), step):
        chunk = view[start : start + step]
        last = 0x02 if start + step >= len(view) else 0x00
        yield _pdu(P_DATA_TF, struct.pack(">LBB", len(chunk) + 2, context_id, last) + chunk)


def data_fragment(context_id: int, chunk: bytes, *, last: bool) -> bytes:
    """One P-DATA-TF with one data set PDV (``last``: the message's last fragment)."""
    header = struct.pack(">LBB", len(chunk) + 2, context_id, 0x02 if last else 0x00)
    return _pdu(P_DATA_TF, header + chunk)


def event_rsp_size() -> int:
    """Size of an N-EVENT-REPORT-RSP P-DATA-TF carrying a minimal command set."""
    return len(p_data_tf(1, response_command(0x8100, 1, UPS_PUSH)))


def echo_rsp_size() -> int:
    return len(p_data_tf(1, response_command(0x8030, 1, VERIFICATION)))


# -- parsing what comes back ------------------------------------------------------------------


def pdvs(body: memoryview) -> Iterator[tuple[int, int, memoryview]]:
    """(context id, message control header, fragment) for each PDV item of a P-DATA-TF body."""
    pos, end = 0, len(body)
    while pos + 6 <= end:
        (length,) = struct.unpack_from(">L", body, pos)
        if length < 2 or pos + 4 + length > end:
            raise ValueError("malformed PDV item")
        yield body[pos + 4], body[pos + 5], body[pos + 6 : pos + 4 + length]
        pos += 4 + length
    if pos != end:
        raise ValueError("trailing bytes after the last PDV item")


def command_values(command: bytes | memoryview) -> dict[int, bytes]:
    """Element number -> raw value for a group-0000 command set."""
    values: dict[int, bytes] = {}
    pos, end = 0, len(command)
    while pos + 8 <= end:
        group, element, length = struct.unpack_from("<HHL", command, pos)
        if group != 0x0000 or pos + 8 + length > end:
            raise ValueError("malformed command set")
        values[element] = bytes(command[pos + 8 : pos + 8 + length])
        pos += 8 + length
    return values


def max_pdu_length(ac_body: bytes | memoryview) -> int | None:
    """The Maximum Length sub-item of an A-ASSOCIATE-AC body (PS3.8 D.1), if any."""
    pos = 68
    while pos + 4 <= len(ac_body):
        item_type, _, length = struct.unpack_from(">BBH", ac_body, pos)
        if item_type == 0x50:
            sub, end = pos + 4, pos + 4 + length
            while sub + 4 <= end:
                sub_type, _, sub_len = struct.unpack_from(">BBH", ac_body, sub)
                if sub_type == 0x51 and sub_len == 4:
                    return int(struct.unpack_from(">L", ac_body, sub + 4)[0])
                sub += 4 + sub_len
        pos += 4 + length
    return None


def accepted_context(ac_body: memoryview) -> int | None:
    """Result of the first presentation context in an A-ASSOCIATE-AC body (0 = acceptance)."""
    pos = 68  # protocol version, reserved, AE titles and 32 reserved bytes (PS3.8 §9.3.3)
    while pos + 4 <= len(ac_body):
        item_type, _, length = struct.unpack_from(">BBH", ac_body, pos)
        if item_type == 0x21:
            return int(ac_body[pos + 6])
        pos += 4 + length
    return None
