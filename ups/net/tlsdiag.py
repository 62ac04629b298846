"""What a failed TLS handshake means, in words an operator can act on.

OpenSSL reports a failed handshake as an ``ssl.SSLError`` whose ``reason`` is a macro name
(``PEER_DID_NOT_RETURN_A_CERTIFICATE``, ``SSLV3_ALERT_HANDSHAKE_FAILURE`` ...) and, for a
chain that did not verify, an ``ssl.SSLCertVerificationError`` carrying the X.509 verify
code. This module turns those into one phrase for each side:

- :func:`server_refusal` — why our acceptor refused a client (the log line of PS3.15
  B.12 transport refusals);
- :func:`client_failure` — why our requestor's handshake failed, including the alert the
  server sent when it refused *us*.

It also reads the TLS version a client offered from the first bytes it sent
(:func:`offered_version`), since a refused handshake never negotiates one. Nothing here
touches a socket: the functions take exceptions and bytes.
"""

from __future__ import annotations

import ssl
import struct

__all__ = ["client_failure", "offered_version", "server_refusal"]

_HANDSHAKE_RECORD = 0x16
_CLIENT_HELLO = 0x01
_SUPPORTED_VERSIONS = 43  # RFC 8446 §4.2.1
_MAX_HELLO_RECORDS = 4
_VERSION_NAMES = {
    0x0300: "SSL 3.0",
    0x0301: "TLS 1.0",
    0x0302: "TLS 1.1",
    0x0303: "TLS 1.2",
    0x0304: "TLS 1.3",
}
_PROFILE = (
    "the PS3.15 B.12 (BCP 195) profile allows TLS 1.3, and TLS 1.2 with ECDHE and "
    "AES-GCM or ChaCha20-Poly1305 only"
)

# X.509 verify codes (OpenSSL x509_vfy.h) -> what is wrong with the certificate.
_UNKNOWN_CA = "is from an unknown CA (its issuer is not in the truststore)"
_VERIFY = {
    2: _UNKNOWN_CA,
    7: "has a bad signature",
    9: "is not yet valid",
    10: "has expired",
    18: "is self-signed and not in the truststore",
    19: "is from an unknown CA (its chain ends in a root that is not in the truststore)",
    20: _UNKNOWN_CA,
    21: _UNKNOWN_CA,
    23: "was revoked",
    24: "was issued by a certificate that is not a CA",
    26: "is not valid for this purpose (check its extended key usage)",
}

# Alerts a peer can send (RFC 8446 §6.2): OpenSSL reason suffix -> what it says.
_ALERTS = {
    "HANDSHAKE_FAILURE": "handshake failure",
    "PROTOCOL_VERSION": "protocol version",
    "INSUFFICIENT_SECURITY": "insufficient security",
    "CERTIFICATE_REQUIRED": "certificate required",
    "UNKNOWN_CA": "unknown CA",
    "BAD_CERTIFICATE": "bad certificate",
    "CERTIFICATE_UNKNOWN": "certificate unknown",
    "CERTIFICATE_EXPIRED": "certificate expired",
    "CERTIFICATE_REVOKED": "certificate revoked",
    "UNSUPPORTED_CERTIFICATE": "unsupported certificate",
    "ACCESS_DENIED": "access denied",
    "DECRYPT_ERROR": "decrypt error",
    "ILLEGAL_PARAMETER": "illegal parameter",
    "INTERNAL_ERROR": "internal error",
    "DECODE_ERROR": "decode error",
    "UNRECOGNIZED_NAME": "unrecognized name",
}
_CERTIFICATE_ALERTS = {
    "UNKNOWN_CA": "it does not trust the CA that issued our certificate",
    "BAD_CERTIFICATE": "it could not verify our certificate",
    "CERTIFICATE_UNKNOWN": "it did not accept our certificate",
    "CERTIFICATE_EXPIRED": "our certificate has expired",
    "CERTIFICATE_REVOKED": "our certificate was revoked",
    "UNSUPPORTED_CERTIFICATE": "it does not accept this kind of certificate",
    "ACCESS_DENIED": "our certificate is trusted but not allowed in",
}
_NOT_TLS = {"WRONG_VERSION_NUMBER", "HTTP_REQUEST", "HTTPS_PROXY_REQUEST", "PACKET_LENGTH_TOO_LONG"}
_NO_VERSION = {"UNSUPPORTED_PROTOCOL", "VERSION_TOO_LOW", "NO_PROTOCOLS_AVAILABLE"}
_NO_SIGNATURE = {"NO_SUITABLE_SIGNATURE_ALGORITHM", "NO_SHARED_SIGNATURE_ALGORITHMS"}


# ---------------------------------------------------------------- the client's hello


def offered_version(first_bytes: bytes) -> str | None:
    """The highest TLS version a ClientHello offers, e.g. ``"TLS 1.3"``; None if unknown.

    TLS 1.3 clients announce their versions in the supported_versions extension (RFC 8446
    §4.2.1) and keep ``legacy_version`` at TLS 1.2; older clients have only the latter.
    GREASE values (RFC 8701) and unknown versions are skipped.
    """
    hello = _client_hello(first_bytes)
    if hello is None:
        return None
    legacy, listed = hello
    known = [v for v in listed if v in _VERSION_NAMES] or [legacy]
    return _VERSION_NAMES.get(max(known))


def _handshake_bytes(data: bytes) -> bytes:
    """The payload of the leading handshake records (a ClientHello may span several)."""
    out = bytearray()
    offset = 0
    for _ in range(_MAX_HELLO_RECORDS):
        if len(data) < offset + 5 or data[offset] != _HANDSHAKE_RECORD:
            break
        (length,) = struct.unpack_from(">H", data, offset + 3)
        out += data[offset + 5 : offset + 5 + length]
        offset += 5 + length
    return bytes(out)


def _client_hello(data: bytes) -> tuple[int, list[int]] | None:
    """``(legacy_version, supported_versions)`` of a ClientHello (RFC 8446 §4.1.2)."""
    body = _handshake_bytes(data)
    if len(body) < 4 + 2 + 32 + 1 or body[0] != _CLIENT_HELLO:
        return None
    (legacy,) = struct.unpack_from(">H", body, 4)
    pos = 4 + 2 + 32
    try:
        pos += 1 + body[pos]  # session id
        pos += 2 + struct.unpack_from(">H", body, pos)[0]  # cipher suites
        pos += 1 + body[pos]  # compression methods
        if pos + 2 > len(body):
            return legacy, []  # no extensions: a TLS 1.2-or-older hello
        end = min(len(body), pos + 2 + struct.unpack_from(">H", body, pos)[0])
        pos += 2
        while pos + 4 <= end:
            kind, size = struct.unpack_from(">HH", body, pos)
            if kind == _SUPPORTED_VERSIONS and size >= 1:
                count = body[pos + 4] // 2
                versions = struct.unpack_from(f">{count}H", body, pos + 5)
                return legacy, list(versions)
            pos += 4 + size
    except (IndexError, struct.error):
        pass  # a truncated hello: what was read so far stands
    return legacy, []


def _not_tls(first_bytes: bytes) -> str:
    if first_bytes[:2] == b"\x01\x00":
        return "not TLS: the peer sent a plain DICOM A-ASSOCIATE-RQ (it is not set up for TLS)"
    if first_bytes[:4] in (b"GET ", b"POST", b"HEAD", b"PUT ", b"CONN"):
        return "not TLS: the peer sent an HTTP request"
    return "not TLS: the peer's first bytes are no TLS ClientHello"


# ---------------------------------------------------------------- the two sides


def _reason(exc: BaseException) -> str:
    reason = getattr(exc, "reason", None) if isinstance(exc, ssl.SSLError) else None
    return str(reason) if reason else ""


def _alert(reason: str) -> str | None:
    """``UNKNOWN_CA`` for ``TLSV1_ALERT_UNKNOWN_CA`` (an alert the peer sent), else None."""
    head, sep, tail = reason.partition("_ALERT_")
    if not sep or not head.startswith(("SSLV3", "TLSV1")):
        return None
    return tail


def _alert_name(code: str) -> str:
    return _ALERTS.get(code, code.replace("_", " ").lower())


def _certificate(exc: ssl.SSLCertVerificationError, whose: str) -> str:
    problem = _VERIFY.get(exc.verify_code) if exc.verify_code is not None else None
    if problem is not None:
        return f"{whose} certificate {problem}"
    detail = f": {exc.verify_message}" if exc.verify_message else ""
    return f"{whose} certificate did not verify{detail}"


def _refused_certificate(who: str, alert: str) -> str:
    """The peer sent a certificate alert: it refused the certificate *we* presented."""
    meaning = _CERTIFICATE_ALERTS[alert]
    return f"{who} refused our certificate (alert '{_alert_name(alert)}': {meaning})"


def _generic(exc: BaseException) -> str:
    reason = _reason(exc)
    if reason:
        return reason.replace("_", " ").lower()
    if isinstance(exc, ssl.SSLEOFError | ConnectionResetError):
        return "the connection closed during the handshake"
    return str(exc) or type(exc).__name__


def server_refusal(exc: BaseException, first_bytes: bytes) -> str:
    """Why our acceptor refused a client's handshake, for one log line.

    ``first_bytes`` is what the client sent first; it tells a plain DICOM peer on the TLS
    port from a broken TLS client, and gives the version offered (appended when known).
    """
    reason = _reason(exc)
    alert = _alert(reason)
    if isinstance(exc, ssl.SSLCertVerificationError):
        words = _certificate(exc, "the client")
    elif reason == "PEER_DID_NOT_RETURN_A_CERTIFICATE":
        words = "no client certificate"
    elif reason == "NO_SHARED_CIPHER":
        words = f"no cipher suite in common: {_PROFILE}"
    elif reason in _NO_VERSION:
        words = "no protocol version in common: PS3.15 B.12 (RFC 8996) allows TLS 1.2 and 1.3"
    elif reason in _NOT_TLS or (first_bytes and first_bytes[0] != _HANDSHAKE_RECORD):
        return _not_tls(first_bytes)
    elif reason in _NO_SIGNATURE:
        words = "no signature algorithm in common for the certificates"
    elif alert in _CERTIFICATE_ALERTS:
        words = _refused_certificate("the client", alert)
    elif alert is not None:
        words = f"the client sent alert '{_alert_name(alert)}'"
    elif not first_bytes:
        words = "the client closed the connection without sending a ClientHello"
    else:
        words = _generic(exc)
    offered = offered_version(first_bytes)
    return f"{words} (client offered {offered})" if offered else words


def client_failure(exc: BaseException, *, sent_certificate: bool) -> str:
    """Why our requestor's handshake failed, or why the server ended it right after.

    ``sent_certificate`` says whether we had a client certificate to offer: a server that
    needs one answers TLS 1.2 without it with a bare 'handshake failure'.
    """
    reason = _reason(exc)
    alert = _alert(reason)
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"{_certificate(exc, 'the server')} (check -truststore)"
    if alert == "CERTIFICATE_REQUIRED":
        return (
            "the server refused the handshake (alert 'certificate required'): it requires a "
            "client certificate; give one with -keystore"
        )
    if alert == "HANDSHAKE_FAILURE" and not sent_certificate:
        return (
            "the server refused the handshake (alert 'handshake failure'): it may require a "
            f"client certificate (give one with -keystore), or no cipher suite is in common: "
            f"{_PROFILE}"
        )
    if alert in _CERTIFICATE_ALERTS:
        return _refused_certificate("the server", alert)
    if alert in ("HANDSHAKE_FAILURE", "INSUFFICIENT_SECURITY"):
        return (
            f"the server refused the handshake (alert '{_alert_name(alert)}'): no cipher suite "
            f"in common; {_PROFILE}, and the server accepts none of them"
        )
    if alert == "PROTOCOL_VERSION" or reason in _NO_VERSION:
        return (
            "no protocol version in common: dcmups speaks TLS 1.2 and 1.3 only "
            "(PS3.15 B.12, RFC 8996) and the server accepts neither"
        )
    if reason in _NOT_TLS:
        return "the server did not answer in TLS (is this a plain DICOM port?)"
    if reason in _NO_SIGNATURE:
        return "no signature algorithm in common for the certificates"
    if alert is not None:
        return f"the server sent alert '{_alert_name(alert)}'"
    if isinstance(exc, ConnectionResetError | ssl.SSLEOFError):
        return (
            "the server closed the connection during the handshake without a TLS alert "
            "(is this a plain DICOM port?)"
        )
    return _generic(exc)
