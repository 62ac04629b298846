"""Throwaway PKI for TLS tests: two unrelated CAs, a server and two client identities.

Everything is EC P-256 (PS3.15 B.13 permits ECDSA with 256-bit keys), valid for one day
(but for one client certificate that expired yesterday), and carries SAN IP 127.0.0.1 so
the files would also pass a hostname check on loopback.
Each identity is written as one PEM file (chain + encrypted key) and as a PKCS#12 file,
both protected by ``PKI.password``; trust anchors as a PEM bundle and a certs-only PKCS#12.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ups.net.tls import TLSOptions

PASSWORD = "test-pki-pw"


@dataclass(frozen=True, slots=True)
class Identity:
    """One end entity: its files and its certificate."""

    pem: Path  # leaf + CA certificate + key encrypted with PKI.password, in one file
    p12: Path  # the same in PKCS#12, protected by PKI.password
    cert: x509.Certificate


@dataclass(frozen=True, slots=True)
class PKI:
    """Paths of everything :func:`make_pki` wrote."""

    password: str
    ca_pem: Path  # trust anchor, PEM
    ca_p12: Path  # trust anchor, certs-only PKCS#12 (PKI.password)
    server: Identity
    client: Identity
    other_ca_pem: Path  # an unrelated CA
    other_client: Identity  # a client issued by the unrelated CA
    expired_client: Identity  # issued by the test CA, expired yesterday

    def server_options(self, **overrides: Any) -> TLSOptions:
        """TLS options for our acceptor: the server identity, trusting the test CA."""
        return self._options(self.server, overrides)

    def client_options(self, **overrides: Any) -> TLSOptions:
        """TLS options for our requestor: the client identity, trusting the test CA."""
        return self._options(self.client, overrides)

    def _options(self, identity: Identity, overrides: dict[str, Any]) -> TLSOptions:
        base: dict[str, Any] = {
            "enabled": True,
            "keystore": identity.pem,
            "keystore_password": self.password,
            "truststore": self.ca_pem,
            "truststore_password": self.password,
        }
        return TLSOptions(**(base | overrides))


@dataclass(frozen=True, slots=True)
class _Issuer:
    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate


def _name(common: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "dcmups tests"),
            x509.NameAttribute(NameOID.COMMON_NAME, common),
        ]
    )


def _make_ca(common: str) -> _Issuer:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(common))
        .issuer_name(_name(common))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(ski, critical=False)
        .sign(key, hashes.SHA256())
    )
    return _Issuer(key, cert)


def _make_leaf(
    issuer: _Issuer, common: str, usage: x509.ObjectIdentifier, expired: bool = False
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC) - (dt.timedelta(days=2) if expired else dt.timedelta())
    san = x509.SubjectAlternativeName(
        [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
    )
    aki = x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(common))
        .issuer_name(issuer.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(san, critical=False)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(aki, critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(issuer.key, hashes.SHA256())
    )
    return key, cert


def _write_identity(
    directory: Path,
    stem: str,
    issuer: _Issuer,
    common: str,
    usage: x509.ObjectIdentifier,
    expired: bool = False,
) -> Identity:
    key, cert = _make_leaf(issuer, common, usage, expired)
    secret = PASSWORD.encode()
    pem = directory / f"{stem}.pem"
    pem.write_bytes(
        cert.public_bytes(serialization.Encoding.PEM)
        + issuer.cert.public_bytes(serialization.Encoding.PEM)
        + key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(secret),
        )
    )
    p12 = directory / f"{stem}.p12"
    p12.write_bytes(
        pkcs12.serialize_key_and_certificates(
            stem.encode(), key, cert, [issuer.cert], serialization.BestAvailableEncryption(secret)
        )
    )
    return Identity(pem=pem, p12=p12, cert=cert)


def make_pki(tmp_path: Path) -> PKI:
    """Write a fresh PKI under ``tmp_path`` (call it from a fixture; takes a few ms)."""
    directory = tmp_path / "pki"
    directory.mkdir(exist_ok=True)
    ca = _make_ca("dcmups test CA")
    other = _make_ca("unrelated CA")
    ca_pem = directory / "ca.pem"
    ca_pem.write_bytes(ca.cert.public_bytes(serialization.Encoding.PEM))
    ca_p12 = directory / "ca.p12"
    ca_p12.write_bytes(
        pkcs12.serialize_key_and_certificates(
            None, None, None, [ca.cert], serialization.BestAvailableEncryption(PASSWORD.encode())
        )
    )
    other_ca_pem = directory / "other-ca.pem"
    other_ca_pem.write_bytes(other.cert.public_bytes(serialization.Encoding.PEM))
    server_use = ExtendedKeyUsageOID.SERVER_AUTH
    client_use = ExtendedKeyUsageOID.CLIENT_AUTH
    return PKI(
        password=PASSWORD,
        ca_pem=ca_pem,
        ca_p12=ca_p12,
        server=_write_identity(directory, "server", ca, "UPSSCP", server_use),
        client=_write_identity(directory, "client", ca, "UPSSCU", client_use),
        other_ca_pem=other_ca_pem,
        other_client=_write_identity(directory, "other-client", other, "INTRUDER", client_use),
        expired_client=_write_identity(
            directory, "expired-client", ca, "EXPIRED", client_use, expired=True
        ),
    )
