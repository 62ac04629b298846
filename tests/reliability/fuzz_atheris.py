"""Coverage-guided fuzzing of the PDU and DIMSE decoders with atheris (libFuzzer).

Run it as ``python tests/reliability/fuzz_atheris.py -runs=N [libFuzzer flags] DIR...``;
``--make-corpus DIR`` writes the seed corpus instead (``tests/reliability/corpus``).

One input is one control byte then a byte stream. The control byte picks the
Maximum Length Received we announce and how the stream is chunked; the stream goes

* through ``pdu.framer.Framer`` (which calls ``pdu.codec.decode_pdu``): only
  ``PDUError`` may escape, and every PDU that decodes must re-encode to bytes that
  decode to the same PDU (PS3.8 §9.3);
* its P-DATA-TF PDUs through ``dimse.fragment.Reassembler`` (which calls
  ``dimse.messages.decode_message``): only ``DimseError`` may escape, and every
  message that decodes must survive ``encode_command`` unchanged (PS3.7 §6.3);
* the raw stream also straight into ``decode_message`` as a command set;
* an acceptor ``pdu.machine.UpperLayer`` that must never raise at all: every bad
  PDU becomes the A-ABORT of PS3.8 Table 9-10.

The ``check_*`` functions are plain Python so the hypothesis tests reuse them.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __name__ == "__main__" and "--make-corpus" not in sys.argv:
    # Instrument only our own code, before anything imports it (pydicom stays fast).
    import atheris

    with atheris.instrument_imports(include=["ups"]):
        import ups.dimse.fragment
        import ups.dimse.messages
        import ups.pdu.framer
        import ups.pdu.machine  # noqa: F401

from ups.dimse.errors import DimseError
from ups.dimse.fragment import Reassembler, RejectedMessage, encode_pdata
from ups.dimse.messages import (
    CEchoRQ,
    CEchoRSP,
    CFindRQ,
    CFindRSP,
    Message,
    NActionRQ,
    NCreateRQ,
    NCreateRSP,
    NEventReportRQ,
    NGetRQ,
    NGetRSP,
    decode_message,
    encode_command,
)
from ups.pdu.codec import encode_pdu
from ups.pdu.enums import (
    AbortReason,
    AbortSource,
    ContextResult,
    RejectReason,
    RejectResult,
    RejectSource,
    UserIdentityType,
)
from ups.pdu.errors import PDUError
from ups.pdu.framer import Framer
from ups.pdu.items import (
    AsyncOpsWindow,
    PresentationContextAC,
    PresentationContextRQ,
    RoleSelection,
    UserIdentityRQ,
    UserInformation,
)
from ups.pdu.machine import UpperLayer
from ups.pdu.pdus import (
    PDU,
    AAbort,
    AAssociateAC,
    AAssociateRJ,
    AAssociateRQ,
    AReleaseRP,
    AReleaseRQ,
    PDataTF,
)

MAX_PDATA_CHOICES = (0, 16, 64, 1024, 16384, 8, 7, 1)
"""Announced limits the control byte picks from (0 = unlimited, capped by the framer)."""
ACCEPTED_CONTEXTS = frozenset({1, 3, 5})
MAX_ASSOCIATE = 64 * 1024
MAX_COMMAND = 4096
MAX_DATASET = 64 * 1024

IMPLICIT_LE = "1.2.840.10008.1.2"
EXPLICIT_LE = "1.2.840.10008.1.2.1"
UPS_PUSH = "1.2.840.10008.5.1.4.34.6.1"
UPS_PULL = "1.2.840.10008.5.1.4.34.6.3"
UPS_EVENT = "1.2.840.10008.5.1.4.34.6.4"
VERIFICATION = "1.2.840.10008.1.1"


def _split(data: bytes) -> tuple[int, int, bytes]:
    """(announced max, chunk size, stream) from one fuzz input."""
    if not data:
        return 16384, 1, b""
    control = data[0]
    return MAX_PDATA_CHOICES[control & 7], 1 + (control >> 3) * 9, data[1:]


def _chunks(stream: bytes, size: int) -> list[bytes]:
    return [stream[i : i + size] for i in range(0, len(stream), size)] or [b""]


def check_pdu_roundtrip(pdu: PDU) -> None:
    """A decoded PDU re-encodes to bytes that decode to the same PDU."""
    try:
        raw = encode_pdu(pdu)
    except UnicodeEncodeError:
        # A-ASSOCIATE-AC AE titles are decoded leniently (PS3.8 §9.3.3: not tested),
        # so a received AC may hold characters our strict encoder refuses to send.
        if isinstance(pdu, AAssociateAC):
            return
        raise
    framer = Framer(0, max_associate_length=1 << 24)
    framer.feed(raw)
    again = framer.next_pdu()
    assert again == pdu, (pdu, again)
    assert framer.next_pdu() is None


def check_message_roundtrip(message: Message) -> None:
    """A decoded message's command set re-encodes to one that decodes to it again."""
    assert decode_message(encode_command(message), message.dataset) == message


def decode_pdu_stream(data: bytes) -> list[PDU]:
    """Frame and decode ``data`` (control byte first); only ``PDUError`` may escape."""
    max_pdata, chunk, stream = _split(data)
    framer = Framer(max_pdata, max_associate_length=MAX_ASSOCIATE)
    out: list[PDU] = []
    for piece in _chunks(stream, chunk):
        framer.feed(piece)
        while (pdu := framer.next_pdu()) is not None:
            check_pdu_roundtrip(pdu)
            out.append(pdu)
    return out


def check_pdu_stream(data: bytes) -> None:
    try:
        decode_pdu_stream(data)
    except PDUError:
        pass


def check_dimse_stream(data: bytes) -> None:
    """P-DATA-TF PDUs of ``data`` into a reassembler; the stream also as one command set."""
    try:
        pdus = decode_pdu_stream(data)
    except PDUError:
        pdus = []
    reassembler = Reassembler(
        ACCEPTED_CONTEXTS, max_command_length=MAX_COMMAND, max_dataset_length=MAX_DATASET
    )
    try:
        for pdu in pdus:
            if not isinstance(pdu, PDataTF):
                continue
            for context_id, message in reassembler.feed(pdu):
                assert context_id in ACCEPTED_CONTEXTS
                if not isinstance(message, RejectedMessage):
                    check_message_roundtrip(message)
    except DimseError:
        pass
    try:
        message = decode_message(data[1:], None)
    except DimseError:
        return
    check_message_roundtrip(message)


def check_machine(data: bytes) -> None:
    """An acceptor core fed ``data`` never raises; once over, it says so and stays quiet."""
    max_pdata, chunk, stream = _split(data)
    core = UpperLayer(requestor=False, max_pdata_length=max_pdata or 16384, artim_timeout=1.0)
    core.transport_connected(0.0)
    for piece in _chunks(stream, chunk):
        core.receive_data(piece, 0.0)
        core.data_to_send()
        for _ in core.events():
            pass
        if core.close_transport:
            break
    core.transport_closed(1.0)
    core.events()
    assert core.close_transport


def one_input(data: bytes) -> None:
    check_pdu_stream(data)
    check_dimse_stream(data)
    check_machine(data)


# --------------------------------------------------------------------------- seeds


def _rq() -> AAssociateRQ:
    return AAssociateRQ(
        "UPSSCP",
        "FUZZSCU",
        (
            PresentationContextRQ(1, VERIFICATION, (IMPLICIT_LE,)),
            PresentationContextRQ(3, UPS_PUSH, (EXPLICIT_LE, IMPLICIT_LE)),
            PresentationContextRQ(5, UPS_PULL, (IMPLICIT_LE,)),
        ),
        UserInformation(
            16384,
            "1.2.3.4.5",
            "FUZZ_1",
            AsyncOpsWindow(4, 4),
            (RoleSelection(UPS_EVENT, False, True),),
            user_identity_rq=UserIdentityRQ(UserIdentityType.USERNAME, True, b"user", b""),
        ),
    )


def _ac() -> AAssociateAC:
    return AAssociateAC(
        "UPSSCP",
        "FUZZSCU",
        (
            PresentationContextAC(1, ContextResult.ACCEPTANCE, IMPLICIT_LE),
            PresentationContextAC(3, ContextResult.ACCEPTANCE, EXPLICIT_LE),
            PresentationContextAC(5, ContextResult.ABSTRACT_SYNTAX_NOT_SUPPORTED, IMPLICIT_LE),
        ),
        UserInformation(16384, "1.2.3.4.5", "FUZZ_1", AsyncOpsWindow(4, 4)),
    )


_DATASET = (
    b"\x08\x00\x16\x00\x1a\x00\x00\x00"
    + b"1.2.840.10008.5.1.4.34.6.1\x00"[:26]
    + b"\x10\x00\x10\x00\x08\x00\x00\x00"
    + b"Doe^Jane"
    + b"\x40\x00\x30\xa7\x0a\x00\x00\x00"
    + b"SCHEDULED "
)
"""A tiny Implicit VR LE data set: SOP Class UID, Patient's Name, Procedure Step State."""


def _messages() -> list[Message]:
    iuid = "1.2.826.0.1.3680043.2.1125.1"
    return [
        CEchoRQ(1),
        CEchoRSP(1, 0x0000, VERIFICATION),
        NCreateRQ(2, UPS_PUSH, iuid, dataset=_DATASET),
        NCreateRSP(2, 0x0000, UPS_PUSH, iuid),
        NGetRQ(3, UPS_PUSH, iuid, (0x00404041, 0x00741000)),
        NGetRSP(3, 0x0000, UPS_PUSH, iuid, dataset=_DATASET),
        NActionRQ(4, UPS_PUSH, iuid, 1, dataset=_DATASET),
        CFindRQ(5, UPS_PULL, dataset=_DATASET),
        CFindRSP(5, 0xFF00, UPS_PULL, dataset=_DATASET),
        CFindRSP(5, 0x0000, UPS_PULL),
        NEventReportRQ(6, UPS_PUSH, iuid, 1, dataset=_DATASET),
    ]


def seeds() -> dict[str, bytes]:
    """Named seed inputs: a control byte then valid PDUs (PS3.8 §9.3, PS3.7 §9-10)."""
    out: dict[str, bytes] = {
        "associate_rq": encode_pdu(_rq()),
        "associate_ac": encode_pdu(_ac()),
        "associate_rj": encode_pdu(
            AAssociateRJ(
                RejectResult.REJECTED_PERMANENT,
                RejectSource.SERVICE_USER,
                RejectReason.USER_CALLED_AE_NOT_RECOGNIZED,
            )
        ),
        "release": encode_pdu(AReleaseRQ()) + encode_pdu(AReleaseRP()),
        "abort": encode_pdu(AAbort(AbortSource.SERVICE_PROVIDER, AbortReason.UNEXPECTED_PDU)),
    }
    for index, message in enumerate(_messages()):
        name = f"pdata_{index:02d}_{type(message).__name__}"
        out[name] = encode_pdata(3, encode_command(message), message.dataset, 16384)
        out[name + "_frag"] = encode_pdata(
            3, encode_command(message), message.dataset, 40, pack=False
        )
    out["session"] = out["associate_rq"] + out["pdata_00_CEchoRQ"] + out["release"]
    # Control byte 0x04: announced max 16384, one chunk per byte of input.
    return {name: b"\x04" + raw for name, raw in out.items()}


def make_corpus(directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for name, data in seeds().items():
        (directory / name).write_bytes(data)


def main(argv: list[str]) -> None:
    if len(argv) == 3 and argv[1] == "--make-corpus":
        make_corpus(Path(argv[2]))
        return
    import atheris

    atheris.Setup(argv, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main(sys.argv)
