"""Byte layout of the seven PDUs and their items (PS3.8 §9.3, PS3.7 Annex D.3.3).

``encode_pdu`` and ``decode_pdu`` are exact inverses on valid input. Decoding follows
PS3.8 §9.3.1: reserved fields are not tested, unknown items are skipped (unknown
user-information sub-items are kept), everything else is checked, and every fault
raises a ``PDUError`` subclass that names the A-ABORT reason it calls for. No other
exception escapes ``decode_pdu``.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator

from ups.pdu.enums import (
    AbortReason,
    AbortSource,
    ContextResult,
    ItemType,
    PDUType,
    RejectResult,
    RejectSource,
    UserIdentityType,
)
from ups.pdu.errors import (
    InvalidParameter,
    PDUError,
    UnexpectedParameter,
    UnrecognizedPDU,
)
from ups.pdu.fastinit import fast_new
from ups.pdu.items import (
    AsyncOpsWindow,
    PresentationContextAC,
    PresentationContextRQ,
    RoleSelection,
    SOPClassCommonExtendedNegotiation,
    SOPClassExtendedNegotiation,
    UnknownSubItem,
    UserIdentityAC,
    UserIdentityRQ,
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

_HEADER = struct.Struct(">BxL")
_ITEM_HEADER = struct.Struct(">BxH")
_U16 = struct.Struct(">H")
_U32 = struct.Struct(">L")
_PDV_HEADER = struct.Struct(">LBB")
_ASSOC_FIXED = struct.Struct(">H2x16s16s32x")
_FOUR_BYTES = struct.Struct(">xBBB")

MAX_UID_LENGTH = 64
AE_TITLE_LENGTH = 16

# --------------------------------------------------------------------------- helpers


def _uid_bytes(uid: str) -> bytes:
    return uid.encode("ascii")


def _decode_uid(raw: bytes | memoryview, what: str, *, allow_empty: bool = False) -> str:
    """A UID field: ASCII digits and dots; a trailing NUL pad is tolerated."""
    data = bytes(raw).rstrip(b"\x00 ")
    if not data and not allow_empty:
        raise InvalidParameter(f"empty {what}")
    if len(data) > MAX_UID_LENGTH:
        raise InvalidParameter(f"{what} longer than 64 characters")
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError:
        raise InvalidParameter(f"{what} is not ASCII") from None
    if not text.replace(".", "").isdigit() and text:
        raise InvalidParameter(f"{what} {text!r} is not a UID")
    return text


def _item(item_type: int, value: bytes) -> bytes:
    if len(value) > 0xFFFF:
        raise InvalidParameter(f"item 0x{item_type:02X} value longer than 65535 bytes")
    return _ITEM_HEADER.pack(item_type, len(value)) + value


def _iter_items(buf: memoryview, what: str) -> Iterator[tuple[int, memoryview]]:
    """Walk a sequence of items with 2-byte lengths; lengths may not run past ``buf``."""
    offset = 0
    end = len(buf)
    while offset < end:
        if end - offset < 4:
            raise InvalidParameter(f"truncated item header in {what}")
        item_type, length = _ITEM_HEADER.unpack_from(buf, offset)
        offset += 4
        if offset + length > end:
            raise InvalidParameter(
                f"item 0x{item_type:02X} length {length} runs past the end of {what}"
            )
        yield item_type, buf[offset : offset + length]
        offset += length


def _u16_field(buf: memoryview, offset: int, what: str) -> tuple[bytes, int]:
    """A field preceded by a 2-byte length; returns the field and the next offset."""
    if offset + 2 > len(buf):
        raise InvalidParameter(f"truncated {what} length")
    (length,) = _U16.unpack_from(buf, offset)
    offset += 2
    if offset + length > len(buf):
        raise InvalidParameter(f"{what} length {length} runs past its item")
    return bytes(buf[offset : offset + length]), offset + length


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


# --------------------------------------------------------------------------- user information


def _encode_user_information(ui: UserInformation) -> bytes:
    parts = [
        _item(ItemType.MAXIMUM_LENGTH, _U32.pack(ui.max_length)),
        _item(ItemType.IMPLEMENTATION_CLASS_UID, _uid_bytes(ui.implementation_class_uid)),
    ]
    if ui.implementation_version_name is not None:
        parts.append(
            _item(
                ItemType.IMPLEMENTATION_VERSION_NAME,
                ui.implementation_version_name.encode("ascii"),
            )
        )
    if ui.async_ops_window is not None:
        window = ui.async_ops_window
        parts.append(
            _item(
                ItemType.ASYNCHRONOUS_OPERATIONS_WINDOW,
                struct.pack(">HH", window.max_ops_invoked, window.max_ops_performed),
            )
        )
    for role in ui.role_selections:
        uid = _uid_bytes(role.sop_class_uid)
        parts.append(
            _item(
                ItemType.SCP_SCU_ROLE_SELECTION,
                _U16.pack(len(uid)) + uid + bytes((role.scu_role, role.scp_role)),
            )
        )
    for ext in ui.sop_class_extended:
        uid = _uid_bytes(ext.sop_class_uid)
        parts.append(
            _item(
                ItemType.SOP_CLASS_EXTENDED_NEGOTIATION,
                _U16.pack(len(uid)) + uid + ext.service_class_application_information,
            )
        )
    for common in ui.sop_class_common_extended:
        sop = _uid_bytes(common.sop_class_uid)
        service = _uid_bytes(common.service_class_uid)
        related = b"".join(
            _U16.pack(len(u)) + u for u in map(_uid_bytes, common.related_general_sop_classes)
        )
        value = (
            _U16.pack(len(sop))
            + sop
            + _U16.pack(len(service))
            + service
            + _U16.pack(len(related))
            + related
        )
        # Byte 2 of this sub-item's header is its version (0), so the header is the usual one.
        parts.append(_item(ItemType.SOP_CLASS_COMMON_EXTENDED_NEGOTIATION, value))
    if ui.user_identity_rq is not None:
        ident = ui.user_identity_rq
        parts.append(
            _item(
                ItemType.USER_IDENTITY_RQ,
                bytes((ident.identity_type, ident.positive_response_requested))
                + _U16.pack(len(ident.primary_field))
                + ident.primary_field
                + _U16.pack(len(ident.secondary_field))
                + ident.secondary_field,
            )
        )
    if ui.user_identity_ac is not None:
        response = ui.user_identity_ac.server_response
        parts.append(_item(ItemType.USER_IDENTITY_AC, _U16.pack(len(response)) + response))
    for unknown in ui.unknown:
        parts.append(_item(unknown.item_type, unknown.data))
    return _item(ItemType.USER_INFORMATION, b"".join(parts))


def _decode_role(value: memoryview) -> RoleSelection:
    uid, offset = _u16_field(value, 0, "role selection UID")
    if len(value) - offset != 2:
        raise InvalidParameter("role selection item has the wrong length")
    scu, scp = value[offset], value[offset + 1]
    if scu > 1 or scp > 1:
        raise InvalidParameter("role selection value is not 0 or 1")
    return RoleSelection(_decode_uid(uid, "role selection UID"), bool(scu), bool(scp))


def _decode_common_extended(value: memoryview) -> SOPClassCommonExtendedNegotiation:
    sop, offset = _u16_field(value, 0, "common extended SOP class UID")
    service, offset = _u16_field(value, offset, "service class UID")
    related_raw, offset = _u16_field(value, offset, "related general SOP classes")
    related: list[str] = []
    view = memoryview(related_raw)
    pos = 0
    while pos < len(view):
        uid, pos = _u16_field(view, pos, "related general SOP class UID")
        related.append(_decode_uid(uid, "related general SOP class UID"))
    return SOPClassCommonExtendedNegotiation(
        _decode_uid(sop, "common extended SOP class UID"),
        _decode_uid(service, "service class UID"),
        tuple(related),
    )


def _decode_identity_rq(value: memoryview) -> UserIdentityRQ:
    if len(value) < 2:
        raise InvalidParameter("truncated user identity item")
    try:
        identity_type = UserIdentityType(value[0])
    except ValueError:
        raise InvalidParameter(f"unknown user identity type {value[0]}") from None
    if value[1] > 1:
        raise InvalidParameter("user identity positive-response-requested is not 0 or 1")
    primary, offset = _u16_field(value, 2, "user identity primary field")
    secondary, offset = _u16_field(value, offset, "user identity secondary field")
    if offset != len(value):
        raise InvalidParameter("user identity item has trailing bytes")
    if not primary:
        raise InvalidParameter("user identity primary field is empty")
    return UserIdentityRQ(identity_type, bool(value[1]), primary, secondary)


def _decode_user_information(value: memoryview) -> UserInformation:
    max_length: int | None = None
    class_uid: str | None = None
    version: str | None = None
    window: AsyncOpsWindow | None = None
    roles: list[RoleSelection] = []
    extended: list[SOPClassExtendedNegotiation] = []
    common: list[SOPClassCommonExtendedNegotiation] = []
    identity_rq: UserIdentityRQ | None = None
    identity_ac: UserIdentityAC | None = None
    unknown: list[UnknownSubItem] = []
    seen: set[int] = set()

    def once(kind: int) -> None:
        if kind in seen:
            raise UnexpectedParameter(f"duplicate user information sub-item 0x{kind:02X}")
        seen.add(kind)

    for kind, sub in _iter_items(value, "user information item"):
        if kind == ItemType.MAXIMUM_LENGTH:
            once(kind)
            if len(sub) != 4:
                raise InvalidParameter("maximum length sub-item is not 4 bytes")
            (max_length,) = _U32.unpack_from(sub)
        elif kind == ItemType.IMPLEMENTATION_CLASS_UID:
            once(kind)
            class_uid = _decode_uid(sub, "implementation class UID")
        elif kind == ItemType.IMPLEMENTATION_VERSION_NAME:
            once(kind)
            if not 1 <= len(sub) <= 16:
                raise InvalidParameter("implementation version name is not 1-16 bytes")
            version = bytes(sub).decode("latin-1").rstrip(" \x00")
        elif kind == ItemType.ASYNCHRONOUS_OPERATIONS_WINDOW:
            once(kind)
            if len(sub) != 4:
                raise InvalidParameter("asynchronous operations window is not 4 bytes")
            window = AsyncOpsWindow(*struct.unpack_from(">HH", sub))
        elif kind == ItemType.SCP_SCU_ROLE_SELECTION:
            roles.append(_decode_role(sub))
        elif kind == ItemType.SOP_CLASS_EXTENDED_NEGOTIATION:
            uid, offset = _u16_field(sub, 0, "extended negotiation SOP class UID")
            extended.append(
                SOPClassExtendedNegotiation(
                    _decode_uid(uid, "extended negotiation SOP class UID"), bytes(sub[offset:])
                )
            )
        elif kind == ItemType.SOP_CLASS_COMMON_EXTENDED_NEGOTIATION:
            common.append(_decode_common_extended(sub))
        elif kind == ItemType.USER_IDENTITY_RQ:
            once(kind)
            identity_rq = _decode_identity_rq(sub)
        elif kind == ItemType.USER_IDENTITY_AC:
            once(kind)
            response, offset = _u16_field(sub, 0, "user identity server response")
            if offset != len(sub):
                raise InvalidParameter("user identity response has trailing bytes")
            identity_ac = UserIdentityAC(response)
        else:
            unknown.append(UnknownSubItem(kind, bytes(sub)))
    if max_length is None:
        raise InvalidParameter("user information has no maximum length sub-item")
    if class_uid is None:
        raise InvalidParameter("user information has no implementation class UID")
    return UserInformation(
        max_length=max_length,
        implementation_class_uid=class_uid,
        implementation_version_name=version,
        async_ops_window=window,
        role_selections=tuple(roles),
        sop_class_extended=tuple(extended),
        sop_class_common_extended=tuple(common),
        user_identity_rq=identity_rq,
        user_identity_ac=identity_ac,
        unknown=tuple(unknown),
    )


# --------------------------------------------------------------------------- association PDUs


def _encode_context_rq(pc: PresentationContextRQ) -> bytes:
    subs = [_item(ItemType.ABSTRACT_SYNTAX, _uid_bytes(pc.abstract_syntax))]
    subs.extend(_item(ItemType.TRANSFER_SYNTAX, _uid_bytes(ts)) for ts in pc.transfer_syntaxes)
    return _item(ItemType.PRESENTATION_CONTEXT_RQ, bytes((pc.context_id, 0, 0, 0)) + b"".join(subs))


def _encode_context_ac(pc: PresentationContextAC) -> bytes:
    ts = _item(ItemType.TRANSFER_SYNTAX, _uid_bytes(pc.transfer_syntax))
    return _item(ItemType.PRESENTATION_CONTEXT_AC, bytes((pc.context_id, 0, pc.result, 0)) + ts)


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
    for kind, sub in _iter_items(value[4:], "presentation context item"):
        if kind == ItemType.ABSTRACT_SYNTAX:
            if abstract is not None:
                raise UnexpectedParameter(f"context {context_id}: two abstract syntaxes")
            abstract = _decode_uid(sub, "abstract syntax")
        elif kind == ItemType.TRANSFER_SYNTAX:
            transfer.append(_decode_uid(sub, "transfer syntax"))
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
    for kind, sub in _iter_items(value[4:], "presentation context item"):
        if kind == ItemType.TRANSFER_SYNTAX:
            if transfer is not None:
                raise UnexpectedParameter(f"context {context_id}: two transfer syntaxes")
            # Not significant (and not tested) unless the context was accepted.
            accepted = result == ContextResult.ACCEPTANCE
            transfer = (
                _decode_uid(sub, "transfer syntax")
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
        + _item(ItemType.APPLICATION_CONTEXT, _uid_bytes(pdu.application_context))
        + contexts
        + _encode_user_information(pdu.user_information)
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
    for kind, value in _iter_items(body[_ASSOC_FIXED.size :], what):
        if kind == ItemType.APPLICATION_CONTEXT:
            if app_context is not None:
                raise UnexpectedParameter(f"{what} has two application context items")
            if user_info is not None or rq_contexts or ac_contexts:
                raise UnexpectedParameter(f"{what}: application context item out of order")
            app_context = _decode_uid(value, "application context name")
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
            user_info = _decode_user_information(value)
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
