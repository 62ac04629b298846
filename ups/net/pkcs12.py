"""PKCS#12 key stores (RFC 7292) with a store password *and* a key password.

``cryptography`` opens a PKCS#12 file with one password, used both for the integrity MAC
and for every encrypted part. Files made the Java way (``keytool``: certificates under the
store password, the key under its own) or with ``openssl pkcs12 -export -twopass`` (MAC
under one password, everything encrypted under the other) need two. The seed's
``-keystorepw`` and ``-keypw`` are exactly those two, so this module:

1. tries each password on the whole file (the common, one-password case);
2. otherwise checks the MAC (RFC 7292 §5, key derivation of Appendix B) with the store
   password, so a wrong ``-keystorepw`` is named as such;
3. then opens each part of the file (each ContentInfo of the AuthenticatedSafe) on its
   own, as a MAC-less PKCS#12 file, with whichever password decrypts it.

Legacy encryption (RC2 or RC4 with SHA-1, as old Java keystores export) needs OpenSSL's
legacy algorithms; when this build lacks them the error says so and gives the ``openssl``
line that re-encrypts the file. The small DER reader below reads definite lengths only
(DER, which every current exporter writes); anything else is refused with that same line.
"""

from __future__ import annotations

import hashlib
import hmac
import math
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from cryptography.hazmat.primitives.serialization import pkcs12

from ups.net.errors import TLSConfigError

__all__ = ["KeyStore", "Refused", "open_pkcs12"]

_SEQUENCE, _INTEGER, _OCTETS, _OID, _CONTEXT_0 = 0x30, 0x02, 0x04, 0x06, 0xA0
_DATA = "1.2.840.113549.1.7.1"
_ENCRYPTED_DATA = "1.2.840.113549.1.7.6"
_SHROUDED_KEY_BAG = "1.2.840.113549.1.12.10.1.2"
_MAC_ID = 3  # RFC 7292 B.3: ID byte 3 derives MAC keys
_MAX_ITERATIONS = 1_000_000  # exporters use 2,048 to 10,000; this bounds a hostile file
_HASHES = {
    "1.3.14.3.2.26": "sha1",
    "2.16.840.1.101.3.4.2.4": "sha224",
    "2.16.840.1.101.3.4.2.1": "sha256",
    "2.16.840.1.101.3.4.2.2": "sha384",
    "2.16.840.1.101.3.4.2.3": "sha512",
}
_LEGACY_PBE = "1.2.840.113549.1.12.1."  # pbeWithSHAAnd{128,40}BitRC4, ...3DES, ...RC2
_LEGACY_RC = {"1", "2", "5", "6"}  # the RC4 and RC2 ones: OpenSSL's legacy provider


class Refused(TLSConfigError):
    """The file cannot be opened; ``str()`` says why and what to do (no password in it)."""


@dataclass(slots=True)
class KeyStore:
    """What a PKCS#12 file holds: at most one private key, and certificates."""

    key: PrivateKeyTypes | None = None
    certificates: list[x509.Certificate] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class _Names:
    """How the file and its two password options are called in messages."""

    file: str
    store: str
    key: str


def open_pkcs12(
    data: bytes,
    store_password: str,
    key_password: str,
    *,
    name: str,
    options: tuple[str, str] = ("-keystorepw", "-keypw"),
) -> KeyStore:
    """Open ``data`` (the file ``name``) with the store and key passwords; see the module.

    ``options`` name the two passwords in messages. Raises :class:`Refused` naming the
    password at fault or the conversion to run; never a password.
    """
    names = _Names(name, *options)
    passwords = _candidates(store_password, key_password)
    whole = _try(data, passwords)
    if whole is not None:
        return whole
    try:
        auth_safe, mac = _pfx(data)
        parts = _split(auth_safe)
    except _Malformed:
        raise Refused(
            f"wrong password, or not a PKCS#12 file this reader understands; {_fix(name)}"
        ) from None
    if mac is not None and not _mac_matches(auth_safe, mac, store_password):
        if key_password != store_password and _mac_matches(auth_safe, mac, key_password):
            raise Refused(
                f"wrong password ({names.store}): the {names.key} password is the one that "
                f"opens the file's integrity check; swap them"
            )
        raise Refused(f"wrong password ({names.store}): the file's integrity check (MAC) fails")
    return _open_parts(parts, passwords, names, key_given=key_password != store_password)


def _candidates(store_password: str, key_password: str) -> list[bytes | None]:
    """Key password first (it opens the key), then the store's; "" also as "no password"."""
    out: list[bytes | None] = []
    for pw in (key_password, store_password):
        for candidate in (pw.encode(), None) if pw == "" else (pw.encode(),):
            if candidate not in out:
                out.append(candidate)
    return out


def _try(data: bytes, passwords: list[bytes | None]) -> KeyStore | None:
    for password in passwords:
        try:
            bundle = pkcs12.load_pkcs12(data, password)
        except (ValueError, TypeError, UnsupportedAlgorithm):
            continue
        certs = [c.certificate for c in ([bundle.cert] if bundle.cert else [])]
        certs += [c.certificate for c in bundle.additional_certs]
        return KeyStore(bundle.key, certs)
    return None


def _open_parts(
    parts: list[bytes], passwords: list[bytes | None], names: _Names, *, key_given: bool
) -> KeyStore:
    store = KeyStore()
    for part in parts:
        opened = _try(_pfx_of(part), passwords)
        if opened is None:
            raise Refused(_why_part_failed(part, names, key_given))
        store.key = store.key or opened.key
        store.certificates += opened.certificates
    return store


def _why_part_failed(part: bytes, names: _Names, key_given: bool) -> str:
    algorithms = _algorithms(part)
    rc_legacy = [
        a for a in algorithms if a.startswith(_LEGACY_PBE) and a.rsplit(".", 1)[1] in _LEGACY_RC
    ]
    if rc_legacy and not _legacy_available():
        return (
            "it uses legacy encryption (RC2/RC4 with SHA-1, as old Java keystores export), "
            f"which this OpenSSL build cannot decrypt; {_fix(names.file)}"
        )
    if not key_given:
        return (
            f"{names.store} opens the file's integrity check but not its contents, which are "
            "under a second password (as 'openssl pkcs12 -twopass' or keytool with a "
            f"separate key password make them): give that one with {names.key}"
        )
    what = "private key" if _SHROUDED_KEY_BAG in algorithms else "certificates"
    return (
        f"wrong key password ({names.key}): the {what} open neither with {names.key} nor "
        f"with {names.store}"
    )


def _fix(name: str) -> str:
    stem = name.rsplit(".", 1)[0] if name.lower().endswith((".p12", ".pfx")) else name
    return (
        f"re-encrypt it with: openssl pkcs12 -legacy -in {name} -nodes | "
        f"openssl pkcs12 -export -out {stem}-aes.p12"
    )


def _legacy_available() -> bool:
    """Whether this cryptography/OpenSSL build has RC2 (OpenSSL 3's legacy provider)."""
    try:
        from cryptography.hazmat.decrepit.ciphers.algorithms import RC2
        from cryptography.hazmat.primitives.ciphers import Cipher, modes

        Cipher(RC2(bytes(16)), modes.CBC(bytes(8))).decryptor()
    except (ImportError, UnsupportedAlgorithm, ValueError):
        return False
    return True


# ---------------------------------------------------------------- the MAC (RFC 7292 §5)


@dataclass(frozen=True, slots=True)
class _Mac:
    hash_name: str | None  # None: an algorithm this module does not compute (e.g. PBMAC1)
    digest: bytes
    salt: bytes
    iterations: int


def _mac_matches(auth_safe: bytes, mac: _Mac, password: str) -> bool:
    if mac.hash_name is None:
        return True  # cannot check it here; decryption will tell
    size = hashlib.new(mac.hash_name).digest_size
    key = _kdf(password, mac.salt, mac.iterations, size, mac.hash_name)
    return hmac.compare_digest(hmac.new(key, auth_safe, mac.hash_name).digest(), mac.digest)


def _fill(data: bytes, v: int) -> bytes:
    """``data`` repeated to the next multiple of ``v`` bytes (RFC 7292 B.2 steps 2-3)."""
    if not data:
        return b""
    size = v * math.ceil(len(data) / v)
    return (data * math.ceil(size / len(data)))[:size]


def _kdf(password: str, salt: bytes, iterations: int, size: int, hash_name: str) -> bytes:
    """RFC 7292 Appendix B.2 key derivation, ID byte 3 (MAC key)."""
    if not 1 <= iterations <= _MAX_ITERATIONS:
        raise Refused(f"the file's MAC iteration count {iterations} is out of range")
    u, v = hashlib.new(hash_name).digest_size, hashlib.new(hash_name).block_size
    secret = password.encode("utf-16-be") + b"\0\0"  # a BMPString with its terminator
    block_in = _fill(salt, v) + _fill(secret, v)
    out = b""
    while len(out) < size:
        a = hashlib.new(hash_name, bytes([_MAC_ID]) * v + block_in).digest()
        for _ in range(iterations - 1):
            a = hashlib.new(hash_name, a).digest()
        out += a
        b = int.from_bytes((a * math.ceil(v / u))[:v], "big") + 1
        block_in = b"".join(
            ((int.from_bytes(block_in[j : j + v], "big") + b) % (1 << (8 * v))).to_bytes(v, "big")
            for j in range(0, len(block_in), v)
        )
    return out[:size]


# ---------------------------------------------------------------- a small DER reader


class _Malformed(Exception):
    """Not DER we can read."""


def _tlv(data: bytes, pos: int) -> tuple[int, int, int]:
    """``(tag, value start, value end)`` of the DER element at ``pos``."""
    if pos + 2 > len(data):
        raise _Malformed
    tag, first = data[pos], data[pos + 1]
    pos += 2
    if first & 0x80:
        count = first & 0x7F
        if count == 0 or count > 4:
            raise _Malformed  # indefinite (BER) or absurd
        length = int.from_bytes(data[pos : pos + count], "big")
        pos += count
    else:
        length = first
    if pos + length > len(data):
        raise _Malformed
    return tag, pos, pos + length


def _items(data: bytes, start: int, end: int) -> list[tuple[int, int, int, int]]:
    """The elements between ``start`` and ``end``: ``(tag, value start, value end, raw start)``."""
    out = []
    while start < end:
        tag, vstart, vend = _tlv(data, start)
        out.append((tag, vstart, vend, start))
        start = vend
    return out


def _expect(data: bytes, pos: int, tag: int) -> tuple[int, int]:
    found, start, end = _tlv(data, pos)
    if found != tag:
        raise _Malformed
    return start, end


def _oid(value: bytes) -> str:
    if not value:
        raise _Malformed
    arcs = [value[0] // 40, value[0] % 40] if value[0] < 80 else [2, value[0] - 80]
    number = 0
    for byte in value[1:]:
        number = (number << 7) | (byte & 0x7F)
        if not byte & 0x80:
            arcs.append(number)
            number = 0
    return ".".join(map(str, arcs))


def _der(tag: int, value: bytes) -> bytes:
    size = len(value)
    if size < 0x80:
        return bytes([tag, size]) + value
    raw = size.to_bytes((size.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(raw)]) + raw + value


def _pfx(data: bytes) -> tuple[bytes, _Mac | None]:
    """The AuthenticatedSafe's bytes and the MacData of a PFX (RFC 7292 §4)."""
    start, end = _expect(data, 0, _SEQUENCE)
    items = _items(data, start, end)
    if len(items) < 2 or items[0][0] != _INTEGER or items[1][0] != _SEQUENCE:
        raise _Malformed
    info = _items(data, items[1][1], items[1][2])
    if len(info) != 2 or _oid(data[info[0][1] : info[0][2]]) != _DATA:
        raise _Malformed
    octets = _expect(data, info[1][1], _OCTETS)
    auth_safe = data[octets[0] : octets[1]]
    mac = _mac_data(data, items[2]) if len(items) > 2 else None
    return auth_safe, mac


def _mac_data(data: bytes, item: tuple[int, int, int, int]) -> _Mac:
    fields = _items(data, item[1], item[2])
    digest_info = _items(data, fields[0][1], fields[0][2])
    algorithm = _items(data, digest_info[0][1], digest_info[0][2])
    oid = _oid(data[algorithm[0][1] : algorithm[0][2]])
    iterations = int.from_bytes(data[fields[2][1] : fields[2][2]], "big") if len(fields) > 2 else 1
    return _Mac(
        hash_name=_HASHES.get(oid),
        digest=data[digest_info[1][1] : digest_info[1][2]],
        salt=data[fields[1][1] : fields[1][2]],
        iterations=iterations,
    )


def _split(auth_safe: bytes) -> list[bytes]:
    """Each ContentInfo of the AuthenticatedSafe, as raw DER."""
    start, end = _expect(auth_safe, 0, _SEQUENCE)
    return [auth_safe[raw:vend] for _, _, vend, raw in _items(auth_safe, start, end)]


def _pfx_of(content_info: bytes) -> bytes:
    """A MAC-less PFX holding one ContentInfo (RFC 7292 §4: macData is OPTIONAL)."""
    data_oid = _der(_OID, bytes.fromhex("2a864886f70d010701"))
    auth_safe = _der(_SEQUENCE, content_info)
    info = _der(_SEQUENCE, data_oid + _der(_CONTEXT_0, _der(_OCTETS, auth_safe)))
    return _der(_SEQUENCE, _der(_INTEGER, b"\x03") + info)


def _algorithms(content_info: bytes) -> list[str]:
    """The encryption algorithms of a ContentInfo: its own, or its shrouded key bags'."""
    try:
        start, end = _expect(content_info, 0, _SEQUENCE)
        kind, body = _items(content_info, start, end)[:2]
        inner = _items(content_info, body[1], body[2])[0]
        if _oid(content_info[kind[1] : kind[2]]) == _ENCRYPTED_DATA:
            encrypted = _items(content_info, inner[1], inner[2])[1]  # EncryptedContentInfo
            algorithm = _items(content_info, encrypted[1], encrypted[2])[1]
            return [_first_oid(content_info, algorithm)]
        bags = _items(content_info, inner[1], inner[2])
        bags = _items(content_info, bags[0][1], bags[0][2]) if bags else []
        return _key_bag_algorithms(content_info, bags)
    except (_Malformed, IndexError):
        return []


def _key_bag_algorithms(data: bytes, bags: list[tuple[int, int, int, int]]) -> list[str]:
    found = []
    for bag in bags:
        bag_id, value = _items(data, bag[1], bag[2])[:2]
        if _oid(data[bag_id[1] : bag_id[2]]) == _SHROUDED_KEY_BAG:
            info = _items(data, value[1], value[2])[0]  # EncryptedPrivateKeyInfo
            algorithm = _items(data, info[1], info[2])[0]
            found += [_SHROUDED_KEY_BAG, _first_oid(data, algorithm)]
    return found


def _first_oid(data: bytes, algorithm: tuple[int, int, int, int]) -> str:
    oid = _items(data, algorithm[1], algorithm[2])[0]
    return _oid(data[oid[1] : oid[2]])
