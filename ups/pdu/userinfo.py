"""The User Information item and the item layout shared by the association PDUs.

PS3.8 Annex D.1-D.3 and PS3.7 D.3.3: Maximum Length, Implementation Class UID and
Version Name, the Asynchronous Operations Window, SCP/SCU Role Selection, SOP Class
(Common) Extended Negotiation and User Identity, each a sub-item of the User Information
item of an A-ASSOCIATE-RQ/AC. Unknown sub-items are kept (PS3.8 D.3.3.4 allows new
ones). The small helpers here (UID fields, 2-byte-length items) serve ``ups.pdu.codec``
too; every fault is a ``PDUError`` naming its A-ABORT reason.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator

from ups.pdu.enums import ItemType, UserIdentityType
from ups.pdu.errors import InvalidParameter, UnexpectedParameter
from ups.pdu.items import (
    AsyncOpsWindow,
    RoleSelection,
    SOPClassCommonExtendedNegotiation,
    SOPClassExtendedNegotiation,
    UnknownSubItem,
    UserIdentityAC,
    UserIdentityRQ,
    UserInformation,
)

ITEM_HEADER = struct.Struct(">BxH")
_U16 = struct.Struct(">H")
_U32 = struct.Struct(">L")
MAX_UID_LENGTH = 64

# --------------------------------------------------------------------------- helpers


def uid_bytes(uid: str) -> bytes:
    return uid.encode("ascii")


def decode_uid(raw: bytes | memoryview, what: str, *, allow_empty: bool = False) -> str:
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


def item(item_type: int, value: bytes) -> bytes:
    if len(value) > 0xFFFF:
        raise InvalidParameter(f"item 0x{item_type:02X} value longer than 65535 bytes")
    return ITEM_HEADER.pack(item_type, len(value)) + value


def iter_items(buf: memoryview, what: str) -> Iterator[tuple[int, memoryview]]:
    """Walk a sequence of items with 2-byte lengths; lengths may not run past ``buf``."""
    offset = 0
    end = len(buf)
    while offset < end:
        if end - offset < 4:
            raise InvalidParameter(f"truncated item header in {what}")
        item_type, length = ITEM_HEADER.unpack_from(buf, offset)
        offset += 4
        if offset + length > end:
            raise InvalidParameter(
                f"item 0x{item_type:02X} length {length} runs past the end of {what}"
            )
        yield item_type, buf[offset : offset + length]
        offset += length


def u16_field(buf: memoryview, offset: int, what: str) -> tuple[bytes, int]:
    """A field preceded by a 2-byte length; returns the field and the next offset."""
    if offset + 2 > len(buf):
        raise InvalidParameter(f"truncated {what} length")
    (length,) = _U16.unpack_from(buf, offset)
    offset += 2
    if offset + length > len(buf):
        raise InvalidParameter(f"{what} length {length} runs past its item")
    return bytes(buf[offset : offset + length]), offset + length


# --------------------------------------------------------------------------- user information


def encode_user_information(ui: UserInformation) -> bytes:
    parts = [
        item(ItemType.MAXIMUM_LENGTH, _U32.pack(ui.max_length)),
        item(ItemType.IMPLEMENTATION_CLASS_UID, uid_bytes(ui.implementation_class_uid)),
    ]
    if ui.implementation_version_name is not None:
        parts.append(
            item(
                ItemType.IMPLEMENTATION_VERSION_NAME,
                ui.implementation_version_name.encode("ascii"),
            )
        )
    if ui.async_ops_window is not None:
        window = ui.async_ops_window
        parts.append(
            item(
                ItemType.ASYNCHRONOUS_OPERATIONS_WINDOW,
                struct.pack(">HH", window.max_ops_invoked, window.max_ops_performed),
            )
        )
    for role in ui.role_selections:
        uid = uid_bytes(role.sop_class_uid)
        parts.append(
            item(
                ItemType.SCP_SCU_ROLE_SELECTION,
                _U16.pack(len(uid)) + uid + bytes((role.scu_role, role.scp_role)),
            )
        )
    for ext in ui.sop_class_extended:
        uid = uid_bytes(ext.sop_class_uid)
        parts.append(
            item(
                ItemType.SOP_CLASS_EXTENDED_NEGOTIATION,
                _U16.pack(len(uid)) + uid + ext.service_class_application_information,
            )
        )
    for common in ui.sop_class_common_extended:
        sop = uid_bytes(common.sop_class_uid)
        service = uid_bytes(common.service_class_uid)
        related = b"".join(
            _U16.pack(len(u)) + u for u in map(uid_bytes, common.related_general_sop_classes)
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
        parts.append(item(ItemType.SOP_CLASS_COMMON_EXTENDED_NEGOTIATION, value))
    if ui.user_identity_rq is not None:
        ident = ui.user_identity_rq
        parts.append(
            item(
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
        parts.append(item(ItemType.USER_IDENTITY_AC, _U16.pack(len(response)) + response))
    for unknown in ui.unknown:
        parts.append(item(unknown.item_type, unknown.data))
    return item(ItemType.USER_INFORMATION, b"".join(parts))


def _decode_role(value: memoryview) -> RoleSelection:
    uid, offset = u16_field(value, 0, "role selection UID")
    if len(value) - offset != 2:
        raise InvalidParameter("role selection item has the wrong length")
    scu, scp = value[offset], value[offset + 1]
    if scu > 1 or scp > 1:
        raise InvalidParameter("role selection value is not 0 or 1")
    return RoleSelection(decode_uid(uid, "role selection UID"), bool(scu), bool(scp))


def _decode_common_extended(value: memoryview) -> SOPClassCommonExtendedNegotiation:
    sop, offset = u16_field(value, 0, "common extended SOP class UID")
    service, offset = u16_field(value, offset, "service class UID")
    related_raw, offset = u16_field(value, offset, "related general SOP classes")
    related: list[str] = []
    view = memoryview(related_raw)
    pos = 0
    while pos < len(view):
        uid, pos = u16_field(view, pos, "related general SOP class UID")
        related.append(decode_uid(uid, "related general SOP class UID"))
    return SOPClassCommonExtendedNegotiation(
        decode_uid(sop, "common extended SOP class UID"),
        decode_uid(service, "service class UID"),
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
    primary, offset = u16_field(value, 2, "user identity primary field")
    secondary, offset = u16_field(value, offset, "user identity secondary field")
    if offset != len(value):
        raise InvalidParameter("user identity item has trailing bytes")
    if not primary:
        raise InvalidParameter("user identity primary field is empty")
    return UserIdentityRQ(identity_type, bool(value[1]), primary, secondary)


def decode_user_information(value: memoryview) -> UserInformation:
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

    for kind, sub in iter_items(value, "user information item"):
        if kind == ItemType.MAXIMUM_LENGTH:
            once(kind)
            if len(sub) != 4:
                raise InvalidParameter("maximum length sub-item is not 4 bytes")
            (max_length,) = _U32.unpack_from(sub)
        elif kind == ItemType.IMPLEMENTATION_CLASS_UID:
            once(kind)
            class_uid = decode_uid(sub, "implementation class UID")
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
            uid, offset = u16_field(sub, 0, "extended negotiation SOP class UID")
            extended.append(
                SOPClassExtendedNegotiation(
                    decode_uid(uid, "extended negotiation SOP class UID"), bytes(sub[offset:])
                )
            )
        elif kind == ItemType.SOP_CLASS_COMMON_EXTENDED_NEGOTIATION:
            common.append(_decode_common_extended(sub))
        elif kind == ItemType.USER_IDENTITY_RQ:
            once(kind)
            identity_rq = _decode_identity_rq(sub)
        elif kind == ItemType.USER_IDENTITY_AC:
            once(kind)
            response, offset = u16_field(sub, 0, "user identity server response")
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
