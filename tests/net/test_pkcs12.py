"""ups.net.pkcs12: PKCS#12 files with two passwords, without a MAC, with legacy encryption.

The files are made by the ``openssl pkcs12`` command line (``-twopass``, ``-nomac``,
``-legacy``), as an operator would; one Java-style file (certificates under the store
password, the key under its own) is assembled here from two ``cryptography`` exports.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs12

from tests.net.pki import PKI, make_pki
from ups.net import pkcs12 as ours
from ups.net.pkcs12 import Refused, open_pkcs12

pytestmark = pytest.mark.timeout(60)

STORE_PW, KEY_PW = "store-pw", "key-pw"


def openssl() -> str:
    found = shutil.which("openssl")
    if found is None:
        if os.environ.get("DCMUPS_REQUIRE_PEERS"):
            pytest.fail("openssl not on PATH")
        pytest.skip("openssl not on PATH")
    return found


def run_openssl(*argv: str, stdin: str = "") -> None:
    done = subprocess.run(
        [openssl(), *argv], input=stdin, capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0, done.stderr


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PKI:
    return make_pki(tmp_path_factory.mktemp("p12"))


@pytest.fixture(scope="module")
def parts(pki: PKI) -> tuple[Path, Path]:
    """The client's certificate chain and its key in clear, as openssl's input."""
    directory = pki.ca_pem.parent
    chain = directory / "client-chain.pem"
    chain.write_bytes(pki.client.pem.read_bytes().split(b"-----BEGIN ENCRYPTED")[0])
    key = serialization.load_pem_private_key(pki.client.pem.read_bytes(), pki.password.encode())
    clear = directory / "client-key-clear.pem"
    clear.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return chain, clear


def export(parts: tuple[Path, Path], out: Path, *options: str, stdin: str = "") -> bytes:
    chain, key = parts
    run_openssl("pkcs12", "-export", "-in", str(chain), "-inkey", str(key), "-out", str(out),
                *options, stdin=stdin)  # fmt: skip
    return out.read_bytes()


@pytest.fixture(scope="module")
def twopass(parts: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """``openssl pkcs12 -export -twopass``: MAC under one password, contents under the other.

    openssl asks both on its terminal; without one it reads them from stdin, in order:
    MAC password twice, then the export (encryption) password twice.
    """
    out = tmp_path_factory.mktemp("twopass") / "twopass.p12"
    answers = f"{STORE_PW}\n{STORE_PW}\n{KEY_PW}\n{KEY_PW}\n"
    return export(parts, out, "-twopass", stdin=answers)


def test_twopass_opens_with_both_passwords(pki: PKI, twopass: bytes) -> None:
    with pytest.raises(ValueError):  # what cryptography alone makes of it
        pkcs12.load_pkcs12(twopass, STORE_PW.encode())
    store = open_pkcs12(twopass, STORE_PW, KEY_PW, name="twopass.p12")
    assert store.key is not None
    assert pki.client.cert in store.certificates


def test_twopass_without_key_password_says_what_to_give(twopass: bytes) -> None:
    with pytest.raises(Refused) as info:
        open_pkcs12(twopass, STORE_PW, STORE_PW, name="twopass.p12")
    text = str(info.value)
    assert "-twopass" in text and "give that one with -keypw" in text
    assert STORE_PW not in text and KEY_PW not in text


def test_twopass_wrong_and_swapped_passwords(twopass: bytes) -> None:
    with pytest.raises(Refused, match=r"wrong password \(-keystorepw\).*integrity check"):
        open_pkcs12(twopass, "nope", KEY_PW, name="twopass.p12")
    with pytest.raises(Refused, match="swap them"):
        open_pkcs12(twopass, KEY_PW, STORE_PW, name="twopass.p12")
    with pytest.raises(Refused, match=r"wrong key password \(-keypw\)"):
        open_pkcs12(twopass, STORE_PW, "nope", name="twopass.p12")


def test_macless_opens_with_either_password(
    pki: PKI, parts: tuple[Path, Path], tmp_path: Path
) -> None:
    data = export(parts, tmp_path / "nomac.p12", "-nomac", "-passout", f"pass:{KEY_PW}")
    assert ours._pfx(data)[1] is None  # noqa: SLF001 - really MAC-less
    for store_pw, key_pw in ((KEY_PW, KEY_PW), ("anything", KEY_PW)):
        store = open_pkcs12(data, store_pw, key_pw, name="nomac.p12")
        assert store.key is not None and pki.client.cert in store.certificates


def test_legacy_encryption_opens(pki: PKI, parts: tuple[Path, Path], tmp_path: Path) -> None:
    """RC2-40 certificates and a 3DES key, as ``-legacy`` (and old Java) write them."""
    data = export(parts, tmp_path / "legacy.p12", "-legacy", "-passout", f"pass:{STORE_PW}")
    if not ours._legacy_available():  # noqa: SLF001
        pytest.skip("this OpenSSL build has no legacy provider (the refusal is tested below)")
    store = open_pkcs12(data, STORE_PW, STORE_PW, name="legacy.p12")
    assert store.key is not None and pki.client.cert in store.certificates


def test_legacy_encryption_without_the_legacy_provider_says_what_to_run(
    parts: tuple[Path, Path], tmp_path: Path
) -> None:
    path = tmp_path / "legacy.p12"
    export(parts, path, "-legacy", "-passout", f"pass:{STORE_PW}")
    probe = (
        "import sys; from pathlib import Path; from ups.net.pkcs12 import open_pkcs12, Refused\n"
        "try:\n"
        f"    open_pkcs12(Path({str(path)!r}).read_bytes(), {STORE_PW!r}, {STORE_PW!r},"
        " name='legacy.p12')\n"
        "except Refused as exc:\n"
        "    print(exc)\n"
        "else:\n"
        "    print('opened')\n"
    )
    env = {**os.environ, "CRYPTOGRAPHY_OPENSSL_NO_LEGACY": "1"}
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=30, env=env
    )
    assert done.returncode == 0, done.stderr
    text = done.stdout.strip()
    assert "legacy encryption" in text, text
    assert "openssl pkcs12 -legacy -in legacy.p12 -nodes | openssl pkcs12 -export" in text
    assert STORE_PW not in text


def test_java_style_certificates_and_key_under_different_passwords(pki: PKI) -> None:
    """keytool: the certificate bag under the store password, the key bag under its own."""
    key = serialization.load_pem_private_key(pki.client.pem.read_bytes(), pki.password.encode())
    assert isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey)
    key_only = pkcs12.serialize_key_and_certificates(
        b"k", key, None, None, serialization.BestAvailableEncryption(KEY_PW.encode())
    )
    certs_only = pkcs12.serialize_key_and_certificates(
        None, None, None, [pki.client.cert],
        serialization.BestAvailableEncryption(STORE_PW.encode()),
    )  # fmt: skip
    parts = ours._split(ours._pfx(certs_only)[0]) + ours._split(ours._pfx(key_only)[0])  # noqa: SLF001
    data = java_style_pfx(parts, STORE_PW)
    store = open_pkcs12(data, STORE_PW, KEY_PW, name="java.p12")
    assert store.key is not None and store.certificates == [pki.client.cert]


def java_style_pfx(parts: list[bytes], password: str) -> bytes:
    """A PFX of these ContentInfos with an HMAC-SHA-256 MAC (RFC 7292 §4, §5)."""
    der = ours._der  # noqa: SLF001
    auth_safe = der(0x30, b"".join(parts))
    salt, iterations = os.urandom(8), 2048
    mac_key = ours._kdf(password, salt, iterations, 32, "sha256")  # noqa: SLF001
    digest = hmac.new(mac_key, auth_safe, hashlib.sha256).digest()
    sha256 = der(0x30, der(0x06, bytes.fromhex("608648016503040201")) + b"\x05\x00")
    mac_data = der(
        0x30,
        der(0x30, sha256 + der(0x04, digest)) + der(0x04, salt) + der(0x02, b"\x08\x00"),
    )
    data_oid = der(0x06, bytes.fromhex("2a864886f70d010701"))
    info = der(0x30, data_oid + der(0xA0, der(0x04, auth_safe)))
    return der(0x30, der(0x02, b"\x03") + info + mac_data)


def test_mac_check_agrees_with_openssl(pki: PKI) -> None:
    auth_safe, mac = ours._pfx(pki.client.p12.read_bytes())  # noqa: SLF001
    assert mac is not None
    assert ours._mac_matches(auth_safe, mac, pki.password)  # noqa: SLF001
    assert not ours._mac_matches(auth_safe, mac, pki.password + "x")  # noqa: SLF001


def test_what_is_no_pkcs12_is_refused_plainly() -> None:
    for data in (b"\x30\x80\x02\x01\x03\x00\x00", b"\x30\x03\x02\x01\x03", b"\x30"):
        with pytest.raises(Refused, match="wrong password, or not a PKCS#12 file"):
            open_pkcs12(data, "a", "b", name="x.p12")
