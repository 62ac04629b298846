"""TLS for DICOM associations: the options the CLI takes and the ``ssl`` contexts built from them.

This module owns the secure transport of PS3.15 Annex B.12 ("BCP 195 RFC 8996, 9325 TLS
Secure Transport Connection Profile") and B.13 (its "Modified" variant with a fixed list of
algorithms), the profiles that replace the retired Basic/AES/3DES profiles (B.1, B.3):

- TLS 1.2 is the floor and TLS 1.3 is allowed and preferred (B.12: "clients shall attempt to
  negotiate TLS 1.3 ... servers shall prefer TLS 1.3"); SSL 2/3 and TLS 1.0/1.1 are never
  offered (RFC 8996).
- TLS 1.2 cipher suites are limited to ECDHE key exchange with AEAD bulk ciphers (AES-GCM,
  ChaCha20-Poly1305), the intersection of B.13's permitted algorithms and RFC 9325 §4.2;
  OpenSSL's TLS 1.3 suites are all AEAD already.
- No TLS compression (CRIME, RFC 9325 §3.3) and no renegotiation (RFC 9325 §3.5).
- Certificates are the peer authentication the profiles assume: the server always proves
  itself, and asks the client for a certificate unless ``-noclientauth`` is given.

Host names are *not* checked. DICOM peers are addressed by IP and identified by AE title,
and neither profile asks for name matching (PS3.15 B.12 leaves "the significance of any
certificates exchanged" to site policy). The trust decision is therefore the truststore: a
peer is accepted only if its chain verifies (``CERT_REQUIRED``) to a certificate the site put
there, so a truststore is mandatory wherever a peer is verified — never the system's public
web CAs, which would accept any publicly issued certificate.

Key and trust stores are PEM or PKCS#12 files, recognised by content; the private key may
also sit in its own file (``-key``, PEM or DER) beside a certificate-only keystore, as DCMTK
and most PKI tooling keep them. PKCS#12 files with separate store and key passwords, without
a MAC, or with legacy encryption are opened by :mod:`ups.net.pkcs12`. Java KeyStores (JKS,
JCEKS), the seed tool's native format, are refused with the ``keytool`` line that converts
them. Every problem is one :class:`~ups.net.errors.TLSConfigError` naming the file and never
the password.
"""

from __future__ import annotations

import os
import re
import secrets
import ssl
import tempfile
from dataclasses import dataclass, fields
from pathlib import Path
from urllib.parse import unquote, urlsplit

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

from ups.net.errors import TLSConfigError
from ups.net.pkcs12 import KeyStore, Refused, open_pkcs12

__all__ = ["TLS12_CIPHERS", "TLSOptions", "client_context", "server_context"]

#: TLS 1.2 suites allowed: ECDHE + AEAD only (PS3.15 B.13, RFC 9325 §4.2), strongest first.
TLS12_CIPHERS = ":".join(
    [
        "ECDHE-ECDSA-AES256-GCM-SHA384",
        "ECDHE-RSA-AES256-GCM-SHA384",
        "ECDHE-ECDSA-CHACHA20-POLY1305",
        "ECDHE-RSA-CHACHA20-POLY1305",
        "ECDHE-ECDSA-AES128-GCM-SHA256",
        "ECDHE-RSA-AES128-GCM-SHA256",
    ]
)

_VERSIONS = {"1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}
_REFUSED_CIPHERS = {
    "NULL": "'-tls NULL' asks for TLS without encryption: patient data would cross the "
    "network in clear text, which PS3.15 B.12/B.13 (BCP 195) forbid; use '-tls AES'",
    "3DES": "'-tls 3DES' asks for Triple-DES, a 64-bit block cipher broken by Sweet32 "
    "(CVE-2016-2183) and forbidden by PS3.15 B.13 and RFC 9325; use '-tls AES'",
}
_JAVA_STORES = {b"\xfe\xed\xfe\xed": "JKS", b"\xce\xce\xce\xce": "JCEKS"}
_MAX_STORE_BYTES = 16 * 1024 * 1024
_PEM_KEY = re.compile(
    rb"-----BEGIN ((?:[A-Z0-9]+ )*PRIVATE KEY)-----.+?-----END \1-----", re.DOTALL
)


@dataclass(frozen=True, slots=True, repr=False)
class TLSOptions:
    """What the seed tool's TLS options ask for, checked on construction.

    ``cipher`` is the word given to ``-tls``: only ``AES`` is accepted, and it means the
    PS3.15 B.12/B.13 profile above (the seed's AES meant a CBC suite without forward
    secrecy). The seed's protocol switches are kept so the CLI can pass them through:
    ``-tls1``, ``-no_tls1``, ``-no_ssl2`` and ``-no_ssl3`` ask for what the profile already
    does; ``-ssl3`` asks for SSLv3 and is refused. ``min_version``/``max_version`` narrow
    the profile to ``"1.2"`` or ``"1.3"``.

    Stores are file paths (or ``file:`` URLs). ``key`` (``-key``) is a separate private key
    file; the keystore then supplies the certificate chain. ``key_password`` (``-keypw``)
    opens the private key and defaults to ``keystore_password``, whose default ``"secret"``
    is the seed's; in a PKCS#12 keystore the store password guards the integrity check and
    the key password what is encrypted, when they differ. ``handshake_timeout`` is in
    seconds; the runtime uses the smaller of it and the request timeout.
    """

    enabled: bool = False
    cipher: str = "AES"
    tls1: bool = False
    ssl3: bool = False
    no_tls1: bool = False
    no_ssl2: bool = False
    no_ssl3: bool = False
    min_version: str = "1.2"
    max_version: str = "1.3"
    client_auth: bool = True
    keystore: str | os.PathLike[str] | None = None
    key: str | os.PathLike[str] | None = None
    keystore_password: str = "secret"
    key_password: str | None = None
    truststore: str | os.PathLike[str] | None = None
    truststore_password: str = "secret"
    handshake_timeout: float = 10.0

    def __post_init__(self) -> None:
        word = self.cipher.strip().upper()
        if word in _REFUSED_CIPHERS:
            raise TLSConfigError(f"insecure TLS request: {_REFUSED_CIPHERS[word]}")
        if word != "AES":
            raise TLSConfigError(
                f"unknown -tls cipher {self.cipher!r}: the seed accepts NULL, 3DES or AES, "
                "and only '-tls AES' (the PS3.15 B.12/B.13 profile) is secure"
            )
        if self.ssl3:
            raise TLSConfigError(
                "insecure TLS request: '-ssl3' asks for SSLv3, which POODLE broke and "
                "RFC 7568 forbids; drop it ('-tls AES' negotiates TLS 1.2 or 1.3)"
            )
        for name in ("min_version", "max_version"):
            value = getattr(self, name)
            if value not in _VERSIONS:
                raise TLSConfigError(
                    f"TLS {name.replace('_', ' ')} {value!r} is not allowed: PS3.15 B.12 "
                    "(RFC 8996) permits only '1.2' and '1.3'"
                )
        if _VERSIONS[self.min_version] > _VERSIONS[self.max_version]:
            raise TLSConfigError(
                f"TLS minimum version {self.min_version} is above the maximum {self.max_version}"
            )
        if self.key is not None and self.keystore is None:
            raise TLSConfigError(
                "-key needs -keystore: give the certificate (chain) that goes with the key"
            )
        if not self.handshake_timeout > 0:
            raise TLSConfigError(
                f"TLS handshake timeout must be positive, not {self.handshake_timeout!r}"
            )

    @property
    def effective_key_password(self) -> str:
        """The private key's password: ``-keypw``, else the keystore's (as in the seed)."""
        return self.keystore_password if self.key_password is None else self.key_password

    def __repr__(self) -> str:
        # Passwords never reach logs or error output: show only whether one is set.
        shown = []
        for field in fields(self):
            value = getattr(self, field.name)
            masked = field.name.endswith("password") and value is not None
            shown.append(f"{field.name}=***" if masked else f"{field.name}={value!r}")
        return f"TLSOptions({', '.join(shown)})"

    __str__ = __repr__


def client_context(opts: TLSOptions) -> ssl.SSLContext:
    """An ``ssl.SSLContext`` for the side that opens the connection (PS3.15 B.12 "client").

    The server's chain must verify against the truststore (required). A keystore is
    optional: without one no client certificate is sent, and a server that requires
    client authentication will refuse the handshake. ``opts.enabled`` is the caller's
    switch; this builds a context whenever asked.
    """
    ctx = _profile(opts, server=False)
    ctx.check_hostname = False  # see the module docstring: trust is the truststore
    ctx.verify_mode = ssl.CERT_REQUIRED
    if opts.truststore is None:
        raise TLSConfigError(
            "TLS client needs a truststore to verify the server's certificate: give "
            "-truststore with the PEM or PKCS#12 file of the CA(s) you trust"
        )
    _load_trust(ctx, opts.truststore, opts.truststore_password)
    if opts.keystore is not None:
        _load_identity(ctx, opts)
    return ctx


def server_context(opts: TLSOptions) -> ssl.SSLContext:
    """An ``ssl.SSLContext`` for the side that accepts connections (PS3.15 B.12 "server").

    A keystore is required. Client certificates are requested and must verify against the
    truststore (``CERT_REQUIRED``) unless ``client_auth`` is off (``-noclientauth``).
    """
    ctx = _profile(opts, server=True)
    ctx.options |= ssl.OP_CIPHER_SERVER_PREFERENCE
    if opts.keystore is None:
        raise TLSConfigError(
            "TLS server needs a certificate and private key: give -keystore with a PEM or "
            "PKCS#12 file (the seed's built-in resource:tls/test_sys_1.p12 is not shipped)"
        )
    _load_identity(ctx, opts)
    if opts.client_auth:
        if opts.truststore is None:
            raise TLSConfigError(
                "TLS server verifies client certificates and needs a truststore: give "
                "-truststore with the CA(s) of your clients, or turn client authentication "
                "off with -noclientauth"
            )
        _load_trust(ctx, opts.truststore, opts.truststore_password)
        ctx.verify_mode = ssl.CERT_REQUIRED
    else:
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


def _profile(opts: TLSOptions, *, server: bool) -> ssl.SSLContext:
    """The settings both sides share: versions, cipher suites, no compression/renegotiation."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER if server else ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = _VERSIONS[opts.min_version]
    ctx.maximum_version = _VERSIONS[opts.max_version]
    ctx.set_ciphers(TLS12_CIPHERS)
    ctx.options |= ssl.OP_NO_COMPRESSION | ssl.OP_NO_RENEGOTIATION
    return ctx


# --- key and trust stores ---------------------------------------------------------------


def _resolve(location: str | os.PathLike[str], role: str) -> Path:
    """A store location as a path: plain paths and ``file:`` URLs; the seed's other forms
    (``resource:``, ``http:``) name nothing we can open."""
    text = os.fspath(location)
    if text.startswith("resource:"):
        raise TLSConfigError(
            f"{role} {text!r} is a resource built into the Java seed tool and is not "
            "shipped with dcmups: give the path of a PEM or PKCS#12 file"
        )
    parts = urlsplit(text)
    if parts.scheme == "file":
        return Path(unquote(parts.path))
    if "://" in text:  # http://, jar://...: a colon alone may be part of a file name
        raise TLSConfigError(f"{role} {text!r}: only file paths and file: URLs are supported")
    return Path(text)


def _read_store(location: str | os.PathLike[str], role: str) -> tuple[Path, bytes]:
    path = _resolve(location, role)
    try:
        with path.open("rb") as fh:
            data = fh.read(_MAX_STORE_BYTES + 1)
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise TLSConfigError(f"cannot read {role} {str(path)!r}: {reason}") from None
    if len(data) > _MAX_STORE_BYTES:
        raise TLSConfigError(f"{role} {str(path)!r} is too large to be a key or trust store")
    kind = _JAVA_STORES.get(data[:4])
    if kind is not None:
        raise TLSConfigError(
            f"{role} {str(path)!r} is a Java {kind} keystore, which Python cannot read; "
            f"convert it to PKCS#12 with: keytool -importkeystore -srckeystore {path.name} "
            f"-destkeystore {path.stem}.p12 -deststoretype PKCS12"
        )
    return path, data


def _is_pem(data: bytes) -> bool:
    return b"-----BEGIN " in data


def _open_pkcs12(
    path: Path, data: bytes, passwords: tuple[str, str], role: str, options: tuple[str, str]
) -> KeyStore:
    """Open a PKCS#12 file with its store and key passwords (``options`` name them)."""
    if not data.startswith(b"\x30"):
        raise TLSConfigError(f"{role} {str(path)!r} is neither PEM nor PKCS#12")
    try:
        return open_pkcs12(data, *passwords, name=path.name, options=options)
    except Refused as exc:
        reason = str(exc)
    # Raised outside the handler: nothing of the failed attempts stays chained to it.
    raise TLSConfigError(f"cannot open PKCS#12 {role} {str(path)!r}: {reason}")


def _pem_certs(path: Path, data: bytes, role: str) -> list[x509.Certificate]:
    if b"-----BEGIN CERTIFICATE-----" not in data:
        return []
    try:
        return x509.load_pem_x509_certificates(data)
    except ValueError:
        raise TLSConfigError(f"{role} {str(path)!r} holds a damaged PEM certificate") from None


def _pem_key(path: Path, data: bytes, password: str, role: str = "keystore") -> PrivateKeyTypes:
    found = _PEM_KEY.search(data)
    if found is None:
        raise TLSConfigError(f"{role} {str(path)!r} holds no private key")
    block = found.group(0)
    secret = password.encode() if b"ENCRYPTED" in block else None
    try:
        return serialization.load_pem_private_key(block, secret)
    except (ValueError, TypeError):
        raise _undecryptable(path, role) from None
    except UnsupportedAlgorithm:
        raise TLSConfigError(f"{role} {str(path)!r}: unsupported private key type") from None


def _undecryptable(path: Path, role: str) -> TLSConfigError:
    return TLSConfigError(
        f"cannot decrypt the private key in {role} {str(path)!r}: wrong key password (-keypw, "
        "else -keystorepw) or damaged key"
    )


def _read_key(location: str | os.PathLike[str], password: str) -> PrivateKeyTypes:
    """``-key``: a private key on its own, PEM (any of its forms) or DER (PKCS#8 or raw)."""
    path, data = _read_store(location, "key file")
    if _is_pem(data):
        return _pem_key(path, data, password, "key file")
    for secret in (None, password.encode()):
        try:
            return serialization.load_der_private_key(data, secret)
        except TypeError:
            continue  # encrypted and no password given yet, or the other way round
        except ValueError:
            if secret is not None:
                break
        except UnsupportedAlgorithm:
            raise TLSConfigError(f"key file {str(path)!r}: unsupported private key type") from None
    raise _undecryptable(path, "key file")


def _read_identity(
    opts: TLSOptions,
) -> tuple[Path, PrivateKeyTypes, x509.Certificate, list[x509.Certificate]]:
    """The private key (``-key``, else the keystore's), its certificate and the chain."""
    assert opts.keystore is not None
    path, data = _read_store(opts.keystore, "keystore")
    key: PrivateKeyTypes | None = None
    if _is_pem(data):
        certs = _pem_certs(path, data, "keystore")
        if opts.key is None:
            key = _pem_key(path, data, opts.effective_key_password)
    else:
        passwords = (opts.keystore_password, opts.effective_key_password)
        bundle = _open_pkcs12(path, data, passwords, "keystore", ("-keystorepw", "-keypw"))
        key, certs = bundle.key, bundle.certificates
    if opts.key is not None:
        key = _read_key(opts.key, opts.effective_key_password)
    if key is None:
        raise TLSConfigError(f"keystore {str(path)!r} holds no private key")
    public = key.public_key()
    leaves = [c for c in certs if c.public_key() == public]
    if not leaves:
        where = f"keystore {str(path)!r}"
        raise TLSConfigError(f"{where} holds no certificate for {_key_name(opts)}")
    leaf = leaves[0]
    return path, key, leaf, [c for c in certs if c is not leaf]


def _key_name(opts: TLSOptions) -> str:
    if opts.key is None:
        return "its private key"
    return f"the private key in {os.fspath(opts.key)!r}"


def _load_identity(ctx: ssl.SSLContext, opts: TLSOptions) -> None:
    """Give ``ctx`` the keystore's key and chain.

    ``ssl`` loads keys only from files, so the key is re-encrypted under a one-time random
    password and written, with the chain, to a 0600 file in a fresh 0700 directory that is
    removed as soon as OpenSSL has read it: the key never lies on disk in clear.
    """
    path, key, leaf, chain = _read_identity(opts)
    one_time = secrets.token_urlsafe(32)
    pem = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in [leaf, *chain])
    pem += key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(one_time.encode()),
    )
    with tempfile.TemporaryDirectory(prefix="ups-tls-") as private_dir:
        staged = os.path.join(private_dir, "identity.pem")
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
        fd = os.open(staged, flags, 0o600)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(pem)
            ctx.load_cert_chain(staged, password=one_time)
        except ssl.SSLError as exc:
            raise TLSConfigError(
                f"keystore {str(path)!r} was rejected by OpenSSL: {exc.reason or exc}"
            ) from None
        finally:
            if os.path.exists(staged):
                os.unlink(staged)


def _load_trust(ctx: ssl.SSLContext, location: str | os.PathLike[str], password: str) -> None:
    """Trust exactly the certificates in the truststore (PEM bundle or PKCS#12), in memory."""
    path, data = _read_store(location, "truststore")
    if _is_pem(data):
        certs = _pem_certs(path, data, "truststore")
    else:
        options = ("-truststorepw", "-truststorepw")
        certs = _open_pkcs12(path, data, (password, password), "truststore", options).certificates
    if not certs:
        raise TLSConfigError(f"truststore {str(path)!r} holds no certificates")
    cadata = "".join(c.public_bytes(serialization.Encoding.PEM).decode() for c in certs)
    try:
        ctx.load_verify_locations(cadata=cadata)
    except ssl.SSLError as exc:
        raise TLSConfigError(
            f"truststore {str(path)!r} was rejected by OpenSSL: {exc.reason or exc}"
        ) from None
