"""Byte layout of the seven PDUs and their items (PS3.8 §9.3, PS3.7 Annex D.3.3).

``encode_pdu`` and ``decode_pdu`` are exact inverses on valid input. Decoding follows
PS3.8 §9.3.1: reserved fields are not tested, unknown items are skipped (unknown
user-information sub-items are kept), everything else is checked, and every fault
raises a ``PDUError`` subclass that names the A-ABORT reason it calls for. No other
exception escapes ``decode_pdu``.
"""

from __future__ import annotations

import struct
from collections.abc import Callable

from ups.pdu.enums import (
    AbortReason,
    AbortSource,
    ContextResult,
    ItemType,
    PDUType,
    RejectResult,
    RejectSource,
)
from ups.pdu.errors import (
    InvalidParameter,
    PDUError,
    UnexpectedParameter,
    UnrecognizedPDU,
)
from ups.pdu.fastinit import fast_new
from ups.pdu.items import (
    PresentationContextAC,
    PresentationContextRQ,
    UserInformation,
)
from ups.pdu.pdus import (
    PDU,
    PDV,
    AAbort,
    AAssociateAC,
    AAssociateRJ,
    AAssociateRQ,
    AReleaseRP,
    AReleaseRQ,
    PDataTF,
)
from ups.pdu.userinfo import (
    decode_uid,
    decode_user_information,
    encode_user_information,
    item,
    iter_items,
    uid_bytes,
)

_HEADER = struct.Struct(">BxL")
_PDV_HEADER = struct.Struct(">LBB")
_ASSOC_FIXED = struct.Struct(">H2x16s16s32x")
_FOUR_BYTES = struct.Struct(">xBBB")

AE_TITLE_LENGTH = 16


def check_ae_title(title: str, what: str = "AE title") -> None:
    """PS3.5 Table 6.2-1 (AE): 1-16 characters of the default repertoire, no backslash or
    control character, not only spaces; raises ``InvalidParameter`` naming the fault."""
    if not title.strip(" "):
        raise InvalidParameter(f"{what} {title!r} is empty")
    if len(title) > AE_TITLE_LENGTH:
        raise InvalidParameter(f"{what} {title!r} is longer than 16 characters")
    if not title.isascii() or not title.isprintable() or "\\" in title:
        raise InvalidParameter(f"{what} {title!r} has a character AE titles may not contain")


def _encode_ae(title: str) -> bytes:
    raw = title.encode("ascii")
    if len(raw) > AE_TITLE_LENGTH:
        raise InvalidParameter(f"AE title {title!r} longer than 16 characters")
    return raw.ljust(AE_TITLE_LENGTH, b" ")


def _decode_ae(raw: bytes, what: str, *, strict: bool) -> str:
    """AE titles: leading and trailing spaces are not significant (PS3.8 §9.3.2)."""
    if not strict:
        return raw.decode("latin-1").strip(" \x00")
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError:
        raise InvalidParameter(f"{what} is not ASCII") from None
    text = text.strip(" ")
    if not text or any(c < " " or c == "\\" for c in text):
        raise InvalidParameter(f"{what} {raw!r} is empty or has control characters")
    return text


# --------------------------------------------------------------------------- association PDUs


def _encode_context_rq(pc: PresentationContextRQ) -> bytes:
    subs = [item(ItemType.ABSTRACT_SYNTAX, uid_bytes(pc.abstract_syntax))]
    subs.extend(item(ItemType.TRANSFER_SYNTAX, uid_bytes(ts)) for ts in pc.transfer_syntaxes)
    return item(ItemType.PRESENTATION_CONTEXT_RQ, bytes((pc.context_id, 0, 0, 0)) + b"".join(subs))


def _encode_context_ac(pc: PresentationContextAC) -> bytes:
    ts = item(ItemType.TRANSFER_SYNTAX, uid_bytes(pc.transfer_syntax))
    return item(ItemType.PRESENTATION_CONTEXT_AC, bytes((pc.context_id, 0, pc.result, 0)) + ts)


def _check_context_id(context_id: int) -> None:
    if context_id % 2 == 0:
        raise InvalidParameter(f"presentation context ID {context_id} is not odd")


def _decode_context_rq(value: memoryview) -> PresentationContextRQ:
    if len(value) < 4:
        raise InvalidParameter("truncated presentation context item")
    context_id = value[0]
    _check_context_id(context_id)
    abstract: str | None = None
    transfer: list[str] = []
    for kind, sub in iter_items(value[4:], "presentation context item"):
        if kind == ItemType.ABSTRACT_SYNTAX:
            if abstract is not None:
                raise UnexpectedParameter(f"context {context_id}: two abstract syntaxes")
            abstract = decode_uid(sub, "abstract syntax")
        elif kind == ItemType.TRANSFER_SYNTAX:
            transfer.append(decode_uid(sub, "transfer syntax"))
        elif kind in _KNOWN_ITEMS:
            raise UnexpectedParameter(f"item 0x{kind:02X} inside a presentation context")
    if abstract is None:
        raise InvalidParameter(f"presentation context {context_id} has no abstract syntax")
    if not transfer:
        raise InvalidParameter(f"presentation context {context_id} has no transfer syntax")
    return PresentationContextRQ(context_id, abstract, tuple(transfer))


def _decode_context_ac(value: memoryview) -> PresentationContextAC:
    if len(value) < 4:
        raise InvalidParameter("truncated presentation context item")
    context_id = value[0]
    _check_context_id(context_id)
    try:
        result = ContextResult(value[2])
    except ValueError:
        raise InvalidParameter(f"presentation context result {value[2]} is invalid") from None
    transfer: str | None = None
    for kind, sub in iter_items(value[4:], "presentation context item"):
        if kind == ItemType.TRANSFER_SYNTAX:
            if transfer is not None:
                raise UnexpectedParameter(f"context {context_id}: two transfer syntaxes")
            # Not significant (and not tested) unless the context was accepted.
            accepted = result == ContextResult.ACCEPTANCE
            transfer = (
                decode_uid(sub, "transfer syntax")
                if accepted
                else bytes(sub).decode("latin-1").rstrip("\x00 ")
            )
        elif kind in _KNOWN_ITEMS:
            raise UnexpectedParameter(f"item 0x{kind:02X} inside a presentation context")
    if transfer is None:
        if result == ContextResult.ACCEPTANCE:
            raise InvalidParameter(f"accepted presentation context {context_id} has no syntax")
        transfer = ""
    return PresentationContextAC(context_id, result, transfer)


_KNOWN_ITEMS = frozenset(int(t) for t in ItemType)


def _encode_associate(pdu: AAssociateRQ | AAssociateAC) -> bytes:
    if isinstance(pdu, AAssociateRQ):
        contexts = b"".join(map(_encode_context_rq, pdu.presentation_contexts))
    else:
        contexts = b"".join(map(_encode_context_ac, pdu.presentation_contexts))
    return (
        _ASSOC_FIXED.pack(
            pdu.protocol_version, _encode_ae(pdu.called_ae_title), _encode_ae(pdu.calling_ae_title)
        )
        + item(ItemType.APPLICATION_CONTEXT, uid_bytes(pdu.application_context))
        + contexts
        + encode_user_information(pdu.user_information)
    )


def _decode_associate(body: memoryview, request: bool) -> AAssociateRQ | AAssociateAC:
    what = "A-ASSOCIATE-RQ" if request else "A-ASSOCIATE-AC"
    if len(body) < _ASSOC_FIXED.size:
        raise InvalidParameter(f"{what} shorter than its fixed fields")
    version, called_raw, calling_raw = _ASSOC_FIXED.unpack_from(body)
    called = _decode_ae(called_raw, "called AE title", strict=request)
    calling = _decode_ae(calling_raw, "calling AE title", strict=request)
    app_context: str | None = None
    user_info: UserInformation | None = None
    rq_contexts: list[PresentationContextRQ] = []
    ac_contexts: list[PresentationContextAC] = []
    context_kind = ItemType.PRESENTATION_CONTEXT_RQ if request else ItemType.PRESENTATION_CONTEXT_AC
    for kind, value in iter_items(body[_ASSOC_FIXED.size :], what):
        if kind == ItemType.APPLICATION_CONTEXT:
            if app_context is not None:
                raise UnexpectedParameter(f"{what} has two application context items")
            if user_info is not None or rq_contexts or ac_contexts:
                raise UnexpectedParameter(f"{what}: application context item out of order")
            app_context = decode_uid(value, "application context name")
        elif kind == context_kind:
            if user_info is not None:
                raise UnexpectedParameter(f"{what}: presentation context after user information")
            if request:
                rq_contexts.append(_decode_context_rq(value))
            else:
                ac_contexts.append(_decode_context_ac(value))
        elif kind == ItemType.USER_INFORMATION:
            if user_info is not None:
                raise UnexpectedParameter(f"{what} has two user information items")
            user_info = decode_user_information(value)
        elif kind in _KNOWN_ITEMS:
            raise UnexpectedParameter(f"item 0x{kind:02X} is not allowed in {what}")
        # Items of unknown type are skipped (PS3.8 §9.3.1).
    if app_context is None:
        raise InvalidParameter(f"{what} has no application context item")
    if user_info is None:
        raise InvalidParameter(f"{what} has no user information item")
    if request:
        if not rq_contexts:
            raise InvalidParameter(f"{what} has no presentation context item")
        ids = [pc.context_id for pc in rq_contexts]
        if len(set(ids)) != len(ids):
            raise UnexpectedParameter(f"{what} repeats a presentation context ID")
        return AAssociateRQ(called, calling, tuple(rq_contexts), user_info, app_context, version)
    return AAssociateAC(called, calling, tuple(ac_contexts), user_info, app_context, version)


# --------------------------------------------------------------------------- P-DATA-TF


def encode_pdata_pdvs(pdvs: tuple[PDV, ...]) -> bytes:
    """The variable field of a P-DATA-TF: each PDV as length, context ID, header, data."""
    parts: list[bytes] = []
    for pdv in pdvs:
        parts.append(
            _PDV_HEADER.pack(len(pdv.data) + 2, pdv.context_id, pdv.is_command | (pdv.is_last << 1))
        )
        parts.append(pdv.data)
    return b"".join(parts)


_new_pdv = fast_new(PDV)
_new_pdata = fast_new(PDataTF)


def _decode_pdata(body: memoryview) -> PDataTF:
    pdvs: list[PDV] = []
    offset = 0
    end = len(body)
    if end == 0:
        raise InvalidParameter("P-DATA-TF with no PDV")
    while offset < end:
        if end - offset < 6:
            raise InvalidParameter("truncated PDV item header")
        length, context_id, control = _PDV_HEADER.unpack_from(body, offset)
        if length < 2 or offset + 4 + length > end:
            raise InvalidParameter(f"PDV item length {length} is invalid for its P-DATA-TF")
        if not context_id & 1:
            _check_context_id(context_id)  # raises: context IDs are odd (PS3.8 9.3.2.2)
        start = offset + 6
        offset += 4 + length
        # Bits 2-7 of the message control header are reserved and not tested.
        pdvs.append(
            _new_pdv(context_id, control & 1 == 1, control & 2 == 2, bytes(body[start:offset]))
        )
    return _new_pdata(tuple(pdvs))


# --------------------------------------------------------------------------- dispatch


def _decode_rj(body: memoryview) -> AAssociateRJ:
    if len(body) != 4:
        raise InvalidParameter("A-ASSOCIATE-RJ is not 4 bytes long")
    result, source, reason = _FOUR_BYTES.unpack_from(body)
    try:
        return AAssociateRJ(RejectResult(result), RejectSource(source), reason)
    except ValueError:
        raise InvalidParameter(f"A-ASSOCIATE-RJ result/source {result}/{source} invalid") from None


def _decode_abort(body: memoryview) -> AAbort:
    if len(body) != 4:
        raise InvalidParameter("A-ABORT is not 4 bytes long")
    _, source, reason = _FOUR_BYTES.unpack_from(body)
    try:
        abort_source = AbortSource(source)
    except ValueError:
        raise InvalidParameter(f"A-ABORT source {source} is invalid") from None
    try:
        abort_reason = AbortReason(reason)
    except ValueError:
        # Only significant for a provider abort; a user abort's reason is not tested.
        if abort_source == AbortSource.SERVICE_PROVIDER:
            raise InvalidParameter(f"A-ABORT reason {reason} is invalid") from None
        abort_reason = AbortReason.NOT_SPECIFIED
    return AAbort(abort_source, abort_reason)


def _decode_release(body: memoryview, pdu: AReleaseRQ | AReleaseRP) -> AReleaseRQ | AReleaseRP:
    if len(body) != 4:
        raise InvalidParameter(f"{type(pdu).__name__} is not 4 bytes long")
    return pdu


_RELEASE_RQ = AReleaseRQ()
_RELEASE_RP = AReleaseRP()

_DECODERS: dict[int, Callable[[memoryview], PDU]] = {
    PDUType.A_ASSOCIATE_RQ: lambda body: _decode_associate(body, True),
    PDUType.A_ASSOCIATE_AC: lambda body: _decode_associate(body, False),
    PDUType.A_ASSOCIATE_RJ: _decode_rj,
    PDUType.P_DATA_TF: _decode_pdata,
    PDUType.A_RELEASE_RQ: lambda body: _decode_release(body, _RELEASE_RQ),
    PDUType.A_RELEASE_RP: lambda body: _decode_release(body, _RELEASE_RP),
    PDUType.A_ABORT: _decode_abort,
}


def decode_pdu(pdu_type: int, body: bytes | bytearray | memoryview) -> PDU:
    """Decode one PDU's variable part (everything after the 6-byte header)."""
    decoder = _DECODERS.get(pdu_type)
    if decoder is None:
        raise UnrecognizedPDU(f"unknown PDU type 0x{pdu_type:02X}")
    view = body if isinstance(body, memoryview) else memoryview(body)
    try:
        return decoder(view)
    except PDUError:
        raise
    except (ValueError, struct.error, IndexError, UnicodeDecodeError) as exc:
        # Defence in depth: the decoders check bounds, but no other exception may escape.
        raise InvalidParameter(f"malformed PDU 0x{pdu_type:02X}: {exc}") from exc


def encode_pdu(pdu: PDU) -> bytes:
    """The complete bytes of ``pdu``, header included."""
    if isinstance(pdu, PDataTF):
        return _frame(PDUType.P_DATA_TF, encode_pdata_pdvs(pdu.pdvs))
    if isinstance(pdu, AAssociateRQ):
        return _frame(PDUType.A_ASSOCIATE_RQ, _encode_associate(pdu))
    if isinstance(pdu, AAssociateAC):
        return _frame(PDUType.A_ASSOCIATE_AC, _encode_associate(pdu))
    if isinstance(pdu, AAssociateRJ):
        return _frame(PDUType.A_ASSOCIATE_RJ, bytes((0, pdu.result, pdu.source, pdu.reason)))
    if isinstance(pdu, AReleaseRQ):
        return _RELEASE_RQ_BYTES
    if isinstance(pdu, AReleaseRP):
        return _RELEASE_RP_BYTES
    return _frame(PDUType.A_ABORT, bytes((0, 0, pdu.source, pdu.reason)))


def _frame(pdu_type: int, body: bytes) -> bytes:
    return _HEADER.pack(pdu_type, len(body)) + body


_RELEASE_RQ_BYTES = _HEADER.pack(PDUType.A_RELEASE_RQ, 4) + bytes(4)
_RELEASE_RP_BYTES = _HEADER.pack(PDUType.A_RELEASE_RP, 4) + bytes(4)

PDU_HEADER = _HEADER
"""The 6-byte PDU header: type, reserved, 4-byte big-endian length."""
