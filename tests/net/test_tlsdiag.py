"""ups.net.tlsdiag: the words for failed handshakes, and the version a ClientHello offers."""

from __future__ import annotations

import ssl
import warnings

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ups.net.tlsdiag import client_failure, offered_version, server_refusal

PLAIN_RQ = b"\x01\x00\x00\x00\x00\xcd\x00\x01"  # the first bytes of an A-ASSOCIATE-RQ


def client_hello(version: ssl.TLSVersion | None = None) -> bytes:
    """The ClientHello Python's OpenSSL sends, optionally limited to one version."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if version is not None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            ctx.minimum_version = ctx.maximum_version = version
            if version < ssl.TLSVersion.TLSv1_2:
                ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = ctx.wrap_bio(incoming, outgoing)
    try:
        tls.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return outgoing.read()


def ssl_error(reason: str) -> ssl.SSLError:
    exc = ssl.SSLError(1, f"[SSL: {reason}] test")
    exc.reason = reason
    return exc


def verify_error(code: int, message: str) -> ssl.SSLCertVerificationError:
    exc = ssl.SSLCertVerificationError(1, "certificate verify failed")
    exc.reason = "CERTIFICATE_VERIFY_FAILED"
    exc.verify_code = code
    exc.verify_message = message
    return exc


# ------------------------------------------------------------------ offered_version


@pytest.mark.parametrize(
    ("version", "expected"),
    [
        (None, "TLS 1.3"),
        (ssl.TLSVersion.TLSv1_3, "TLS 1.3"),
        (ssl.TLSVersion.TLSv1_2, "TLS 1.2"),
        (ssl.TLSVersion.TLSv1_1, "TLS 1.1"),
    ],
)
def test_offered_version_of_real_hellos(version: ssl.TLSVersion | None, expected: str) -> None:
    try:
        hello = client_hello(version)
    except (ValueError, ssl.SSLError) as exc:
        pytest.skip(f"local OpenSSL cannot offer {version}: {exc}")
    if not hello:
        pytest.skip(f"local OpenSSL refuses to offer {version}")
    assert offered_version(hello) == expected


def test_offered_version_survives_a_hello_split_over_records() -> None:
    hello = client_hello()
    body = hello[5:]
    header = hello[:3]
    split = b"".join(
        header + len(part).to_bytes(2, "big") + part for part in (body[:40], body[40:])
    )
    assert offered_version(split) == "TLS 1.3"


def test_offered_version_of_what_is_no_hello() -> None:
    assert offered_version(b"") is None
    assert offered_version(PLAIN_RQ) is None
    assert offered_version(b"GET / HTTP/1.1\r\n") is None
    assert offered_version(client_hello()[:20]) is None  # truncated before the version


@given(st.binary(max_size=300))
def test_offered_version_never_raises(data: bytes) -> None:
    assert offered_version(data) in (None, "SSL 3.0", "TLS 1.0", "TLS 1.1", "TLS 1.2", "TLS 1.3")
    assert offered_version(b"\x16\x03\x01" + data) in (
        None,
        "SSL 3.0",
        "TLS 1.0",
        "TLS 1.1",
        "TLS 1.2",
        "TLS 1.3",
    )


# ------------------------------------------------------------------ the acceptor's words


@pytest.mark.parametrize(
    ("exc", "words"),
    [
        (ssl_error("PEER_DID_NOT_RETURN_A_CERTIFICATE"), "no client certificate"),
        (verify_error(20, "unable to get local issuer certificate"), "from an unknown CA"),
        (verify_error(19, "self-signed certificate in certificate chain"), "unknown CA"),
        (verify_error(10, "certificate has expired"), "the client certificate has expired"),
        (verify_error(26, "unsupported certificate purpose"), "extended key usage"),
        (verify_error(999, "something new"), "did not verify: something new"),
        (ssl_error("NO_SHARED_CIPHER"), "no cipher suite in common"),
        (ssl_error("UNSUPPORTED_PROTOCOL"), "no protocol version in common"),
        (ssl_error("TLSV1_ALERT_UNKNOWN_CA"), "the client refused our certificate"),
        (ssl_error("SSLV3_ALERT_BAD_RECORD_MAC"), "the client sent alert 'bad record mac'"),
        (ssl.SSLEOFError(8, "EOF"), "closed during the handshake"),
    ],
)
def test_server_refusal_words(exc: BaseException, words: str) -> None:
    text = server_refusal(exc, client_hello())
    assert words in text
    assert text.endswith("(client offered TLS 1.3)")


def test_server_refusal_of_what_is_not_tls() -> None:
    exc = ssl_error("WRONG_VERSION_NUMBER")
    assert "plain DICOM A-ASSOCIATE-RQ" in server_refusal(exc, PLAIN_RQ)
    assert "HTTP request" in server_refusal(ssl_error("HTTP_REQUEST"), b"GET / HTTP/1.1")
    assert "without sending a ClientHello" in server_refusal(ConnectionResetError(), b"")


# ------------------------------------------------------------------ the requestor's words


@pytest.mark.parametrize(
    ("exc", "sent", "words"),
    [
        (verify_error(18, "self-signed certificate"), True, "the server certificate is self"),
        (verify_error(10, "certificate has expired"), True, "the server certificate has expired"),
        (ssl_error("TLSV13_ALERT_CERTIFICATE_REQUIRED"), False, "give one with -keystore"),
        (ssl_error("SSLV3_ALERT_HANDSHAKE_FAILURE"), False, "may require a client certificate"),
        (ssl_error("SSLV3_ALERT_HANDSHAKE_FAILURE"), True, "no cipher suite in common"),
        (ssl_error("TLSV1_ALERT_UNKNOWN_CA"), True, "the server refused our certificate"),
        (ssl_error("SSLV3_ALERT_CERTIFICATE_EXPIRED"), True, "our certificate has expired"),
        (ssl_error("TLSV1_ALERT_PROTOCOL_VERSION"), True, "no protocol version in common"),
        (ssl_error("WRONG_VERSION_NUMBER"), True, "did not answer in TLS"),
        (ConnectionResetError(), True, "plain DICOM port"),
        (ssl_error("TLSV1_ALERT_INTERNAL_ERROR"), True, "alert 'internal error'"),
    ],
)
def test_client_failure_words(exc: BaseException, sent: bool, words: str) -> None:
    assert words in client_failure(exc, sent_certificate=sent)
