"""ups.net.tls: the PS3.15 B.12/B.13 profile over real loopback sockets, and its refusals."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import tempfile
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization

from tests.net.pki import PKI, make_pki
from ups.net.errors import TLSConfigError
from ups.net.tls import TLS12_CIPHERS, TLSOptions, client_context, server_context

pytestmark = pytest.mark.timeout(20)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PKI:
    return make_pki(tmp_path_factory.mktemp("tls"))


@dataclass
class Outcome:
    """What one ping/pong over TLS showed: success with its parameters, or the failure."""

    reply: bytes | None = None
    version: str | None = None
    cipher: str | None = None
    peer_cert: dict[str, Any] | None = None  # the client certificate the server saw
    error: BaseException | None = None
    served: bool = False  # the server finished its handshake and ran the handler

    @property
    def ok(self) -> bool:
        return self.served and self.reply == b"pong:ping\n"

    @property
    def refused(self) -> bool:
        """The server never served the client; the client saw an error or EOF."""
        return not self.served and (self.error is not None or self.reply == b"")


async def talk(server_ctx: ssl.SSLContext, client_ctx: ssl.SSLContext) -> Outcome:
    """Serve one TLS connection on 127.0.0.1 and exchange one line through it.

    In TLS 1.3 the client finishes its handshake before the server has judged the client
    certificate, so a refusal may show up only on the first read: the exchange covers both.
    """
    outcome = Outcome()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            outcome.served = True
            outcome.peer_cert = writer.get_extra_info("peercert")
            line = await reader.readline()
            writer.write(b"pong:" + line)
            await writer.drain()
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    server = await asyncio.start_server(
        handle, "127.0.0.1", 0, ssl=server_ctx, ssl_handshake_timeout=5
    )
    port = server.sockets[0].getsockname()[1]
    try:
        async with asyncio.timeout(5):
            reader, writer = await asyncio.open_connection(
                "127.0.0.1", port, ssl=client_ctx, ssl_handshake_timeout=5
            )
            try:
                tls = writer.get_extra_info("ssl_object")
                outcome.version = tls.version()
                outcome.cipher = tls.cipher()[0]
                writer.write(b"ping\n")
                await writer.drain()
                outcome.reply = await reader.readline()
            finally:
                writer.close()
                with contextlib.suppress(Exception):
                    await writer.wait_closed()
    except (ssl.SSLError, ConnectionError, asyncio.IncompleteReadError) as exc:
        outcome.error = exc
    finally:
        server.close()
        await server.wait_closed()
    return outcome


def raw_client(pki: PKI) -> ssl.SSLContext:
    """A plain client context (not our profile) for simulating old or weak peers."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.load_cert_chain(pki.client.pem, password=pki.password)
    return ctx


# --- handshakes ---------------------------------------------------------------------------


async def test_mutual_auth_pem(pki: PKI) -> None:
    out = await talk(server_context(pki.server_options()), client_context(pki.client_options()))
    assert out.ok, out.error
    assert out.version == "TLSv1.3"  # B.12: TLS 1.3 attempted and preferred
    assert out.peer_cert is not None
    assert ((("commonName", "UPSSCU"),)) in out.peer_cert["subject"]


async def test_mutual_auth_pkcs12(pki: PKI) -> None:
    sopts = pki.server_options(keystore=pki.server.p12, truststore=pki.ca_p12)
    copts = pki.client_options(keystore=pki.client.p12, truststore=pki.ca_p12)
    out = await talk(server_context(sopts), client_context(copts))
    assert out.ok, out.error
    assert out.peer_cert is not None


async def test_tls12_negotiates_ecdhe_aead(pki: PKI) -> None:
    copts = pki.client_options(max_version="1.2")
    out = await talk(server_context(pki.server_options()), client_context(copts))
    assert out.ok, out.error
    assert out.version == "TLSv1.2"
    assert out.cipher in TLS12_CIPHERS.split(":")


async def test_client_without_certificate_refused_when_client_auth_on(pki: PKI) -> None:
    copts = pki.client_options(keystore=None)
    out = await talk(server_context(pki.server_options()), client_context(copts))
    assert out.refused, out


async def test_client_without_certificate_accepted_when_client_auth_off(pki: PKI) -> None:
    sopts = pki.server_options(client_auth=False, truststore=None)
    out = await talk(server_context(sopts), client_context(pki.client_options(keystore=None)))
    assert out.ok, out.error
    assert not out.peer_cert


async def test_client_certificate_from_wrong_ca_refused(pki: PKI) -> None:
    copts = pki.client_options(keystore=pki.other_client.p12)
    out = await talk(server_context(pki.server_options()), client_context(copts))
    assert out.refused, out


async def test_client_refuses_server_outside_its_truststore(pki: PKI) -> None:
    copts = pki.client_options(truststore=pki.other_ca_pem)
    out = await talk(server_context(pki.server_options()), client_context(copts))
    assert isinstance(out.error, ssl.SSLCertVerificationError)
    assert not out.served


async def test_tls11_only_client_refused(pki: PKI) -> None:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            ctx = raw_client(pki)
            ctx.minimum_version = ssl.TLSVersion.TLSv1_1
            ctx.maximum_version = ssl.TLSVersion.TLSv1_1
            ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
    except (ValueError, ssl.SSLError) as exc:
        pytest.skip(f"local OpenSSL cannot build a TLS 1.1 client: {exc}")
    out = await talk(server_context(pki.server_options()), ctx)
    assert out.refused, out
    assert out.version is None  # refused during the handshake itself


async def test_non_aead_tls12_cipher_client_refused(pki: PKI) -> None:
    ctx = raw_client(pki)
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_ciphers("ECDHE-ECDSA-AES128-SHA256:ECDHE-RSA-AES128-SHA256")
    out = await talk(server_context(pki.server_options()), ctx)
    assert out.refused, out
    assert out.version is None  # refused during the handshake itself


# --- the profile's settings ---------------------------------------------------------------


def test_contexts_follow_the_profile(pki: PKI) -> None:
    for ctx in (server_context(pki.server_options()), client_context(pki.client_options())):
        assert ctx.minimum_version == ssl.TLSVersion.TLSv1_2
        assert ctx.maximum_version == ssl.TLSVersion.TLSv1_3
        assert ctx.options & ssl.OP_NO_COMPRESSION
        assert ctx.options & ssl.OP_NO_RENEGOTIATION
        assert ctx.verify_mode == ssl.CERT_REQUIRED
        assert not ctx.check_hostname
        for suite in ctx.get_ciphers():
            if suite["protocol"] == "TLSv1.2":
                assert suite["kea"] == "kx-ecdhe" and suite["aead"], suite["name"]


def test_version_override(pki: PKI) -> None:
    ctx = client_context(pki.client_options(min_version="1.3"))
    assert ctx.minimum_version == ssl.TLSVersion.TLSv1_3
    assert server_context(pki.server_options(client_auth=False)).verify_mode == ssl.CERT_NONE


def test_seed_protocol_flags_that_match_the_profile_are_accepted(pki: PKI) -> None:
    opts = pki.client_options(tls1=True, no_tls1=True, no_ssl2=True, no_ssl3=True)
    assert client_context(opts).minimum_version == ssl.TLSVersion.TLSv1_2
    assert TLSOptions().handshake_timeout == 10.0
    assert TLSOptions(handshake_timeout=2.5).handshake_timeout == 2.5


def test_key_password_defaults_to_keystore_password(pki: PKI) -> None:
    assert TLSOptions(keystore_password="a").effective_key_password == "a"
    assert TLSOptions(keystore_password="a", key_password="b").effective_key_password == "b"
    opts = pki.client_options(keystore_password="unused", key_password=pki.password)
    client_context(opts)


def test_keystore_as_file_url(pki: PKI) -> None:
    client_context(pki.client_options(keystore=pki.client.pem.as_uri()))


def test_staged_key_file_is_removed(pki: PKI, tmp_path: Path, monkeypatch: Any) -> None:
    staging = tmp_path / "staging"
    staging.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(staging))
    server_context(pki.server_options(keystore=pki.server.p12))
    assert list(staging.iterdir()) == []


def test_repr_masks_passwords() -> None:
    opts = TLSOptions(keystore_password="hunter2", key_password="k3y", truststore_password="t9")
    for text in (repr(opts), str(opts)):
        assert "hunter2" not in text and "k3y" not in text and "t9" not in text
        assert "keystore_password=***" in text


# --- refusals -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("word", "reason"), [("3DES", "Sweet32"), ("NULL", "clear text"), ("null", "clear text")]
)
def test_insecure_cipher_requests_refused(word: str, reason: str) -> None:
    with pytest.raises(TLSConfigError, match="insecure") as info:
        TLSOptions(enabled=True, cipher=word)
    assert reason in str(info.value) and "-tls AES" in str(info.value)


def test_ssl3_refused() -> None:
    with pytest.raises(TLSConfigError, match="SSLv3") as info:
        TLSOptions(enabled=True, ssl3=True)
    assert "-tls AES" in str(info.value)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"cipher": "RC4"},
        {"min_version": "1.1"},
        {"max_version": "1.0"},
        {"min_version": "1.3", "max_version": "1.2"},
        {"handshake_timeout": 0},
    ],
)
def test_bad_options_refused(kwargs: dict[str, Any]) -> None:
    with pytest.raises(TLSConfigError):
        TLSOptions(enabled=True, **kwargs)


@pytest.mark.parametrize(("magic", "kind"), [(b"\xfe\xed\xfe\xed", "JKS"), (b"\xce" * 4, "JCEKS")])
def test_java_keystores_refused_with_conversion_hint(
    pki: PKI, tmp_path: Path, magic: bytes, kind: str
) -> None:
    store = tmp_path / "site.jks"
    store.write_bytes(magic + b"\x00\x00\x00\x02" + b"\x00" * 40)
    builds: list[Callable[[], ssl.SSLContext]] = [
        lambda: server_context(pki.server_options(keystore=store)),
        lambda: client_context(pki.client_options(truststore=store)),
    ]
    for build in builds:
        with pytest.raises(TLSConfigError) as info:
            build()
        text = str(info.value)
        assert kind in text and str(store) in text
        assert "keytool -importkeystore -srckeystore site.jks" in text
        assert "-destkeystore site.p12 -deststoretype PKCS12" in text


def test_wrong_pkcs12_password_is_clear_and_secret(pki: PKI) -> None:
    opts = pki.server_options(keystore=pki.server.p12, keystore_password="Wr0ngPassw0rd")
    with pytest.raises(TLSConfigError) as info:
        server_context(opts)
    text = str(info.value)
    assert str(pki.server.p12) in text and "wrong password" in text
    assert "Wr0ngPassw0rd" not in text and "Wr0ngPassw0rd" not in repr(info.value)
    assert info.value.__cause__ is None and info.value.__context__ is None


def test_wrong_pem_key_password(pki: PKI) -> None:
    with pytest.raises(TLSConfigError, match="wrong key password") as info:
        server_context(pki.server_options(keystore_password="Wr0ngPassw0rd"))
    assert str(pki.server.pem) in str(info.value)
    assert "Wr0ngPassw0rd" not in str(info.value)


def test_wrong_truststore_password(pki: PKI) -> None:
    with pytest.raises(TLSConfigError, match="wrong password"):
        client_context(pki.client_options(truststore=pki.ca_p12, truststore_password="nope"))


def test_missing_and_unreadable_files_named(pki: PKI, tmp_path: Path) -> None:
    missing = tmp_path / "absent.p12"
    with pytest.raises(TLSConfigError, match="cannot read keystore") as info:
        server_context(pki.server_options(keystore=missing))
    assert str(missing) in str(info.value)
    with pytest.raises(TLSConfigError, match="cannot read truststore"):
        client_context(pki.client_options(truststore=tmp_path))  # a directory


def test_store_contents_checked(pki: PKI, tmp_path: Path) -> None:
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"not a store")
    with pytest.raises(TLSConfigError, match="neither PEM nor PKCS#12"):
        server_context(pki.server_options(keystore=junk))
    with pytest.raises(TLSConfigError, match="holds no private key"):
        server_context(pki.server_options(keystore=pki.ca_pem))
    mismatched = tmp_path / "mismatched.pem"
    key = pki.client.pem.read_bytes().split(b"-----BEGIN ENCRYPTED")[1]
    mismatched.write_bytes(pki.ca_pem.read_bytes() + b"-----BEGIN ENCRYPTED" + key)
    with pytest.raises(TLSConfigError, match="no certificate for its private key"):
        server_context(pki.server_options(keystore=mismatched))
    empty = tmp_path / "empty.pem"
    empty.write_bytes(b"-----BEGIN NOTHING-----\n")
    with pytest.raises(TLSConfigError, match="holds no certificates"):
        client_context(pki.client_options(truststore=empty))


def test_missing_stores(pki: PKI) -> None:
    with pytest.raises(TLSConfigError, match="server needs a certificate"):
        server_context(pki.server_options(keystore=None))
    with pytest.raises(TLSConfigError, match="-noclientauth"):
        server_context(pki.server_options(truststore=None))
    with pytest.raises(TLSConfigError, match="needs a truststore"):
        client_context(pki.client_options(truststore=None))
    with pytest.raises(TLSConfigError, match="not shipped"):
        server_context(pki.server_options(keystore="resource:tls/test_sys_1.p12"))
    with pytest.raises(TLSConfigError, match="only file paths"):
        client_context(pki.client_options(truststore="https://example.invalid/ca.pem"))


# --- a private key in its own file (-key) ---------------------------------------------------


def split_identity(pki: PKI, tmp_path: Path, encoding: str, encrypted: bool) -> tuple[Path, Path]:
    """The client identity as a certificate-chain PEM and a separate key file."""
    data = pki.client.pem.read_bytes()
    chain = tmp_path / "chain.pem"
    chain.write_bytes(data.split(b"-----BEGIN ENCRYPTED")[0])
    key = serialization.load_pem_private_key(data, pki.password.encode())
    protection: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(pki.password.encode())
        if encrypted
        else serialization.NoEncryption()
    )
    kind = serialization.Encoding.PEM if encoding == "pem" else serialization.Encoding.DER
    key_file = tmp_path / f"key.{encoding}"
    key_file.write_bytes(key.private_bytes(kind, serialization.PrivateFormat.PKCS8, protection))
    return chain, key_file


@pytest.mark.parametrize("encoding", ["pem", "der"])
@pytest.mark.parametrize("encrypted", [True, False])
async def test_separate_certificate_and_key_files(
    pki: PKI, tmp_path: Path, encoding: str, encrypted: bool
) -> None:
    chain, key_file = split_identity(pki, tmp_path, encoding, encrypted)
    copts = pki.client_options(keystore=chain, key=key_file)
    out = await talk(server_context(pki.server_options()), client_context(copts))
    assert out.ok, out.error
    assert out.peer_cert is not None


def test_separate_key_file_refusals(pki: PKI, tmp_path: Path) -> None:
    chain, key_file = split_identity(pki, tmp_path, "pem", True)
    with pytest.raises(TLSConfigError, match="-key needs -keystore"):
        TLSOptions(enabled=True, key=key_file)
    with pytest.raises(TLSConfigError, match=r"wrong key password \(-keypw") as info:
        client_context(pki.client_options(keystore=chain, key=key_file, key_password="Wr0ng"))
    assert "Wr0ng" not in str(info.value) and str(key_file) in str(info.value)
    with pytest.raises(TLSConfigError, match="no certificate for the private key in"):
        client_context(pki.client_options(keystore=pki.other_client.pem, key=key_file))
    with pytest.raises(TLSConfigError, match="key file .* holds no private key"):
        client_context(pki.client_options(keystore=chain, key=chain))
