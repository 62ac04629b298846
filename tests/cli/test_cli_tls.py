"""TLS refusals end to end, against peers this project did not write.

- ``openssl s_client`` without a client certificate, against ``dcmups scp -tls AES`` (on
  asyncio's loop and on uvloop) and ``dcmups -L``: the client reports the server's alert;
  the server logs one line with the peer, the reason and the TLS version offered.
- DCMTK ``storescu +tls`` with a certificate from an unknown CA: it fails, the server's
  (encrypted, TLS 1.3) alert record reaches it, and our log names the unknown CA.
- ``dcmups echo`` against DCMTK ``storescp +pa`` (the retired AES profile: no BCP 195
  suite): one line naming the suite mismatch, exit 3.
- A ``-twopass`` PKCS#12 keystore opens with ``-keystorepw`` plus ``-keypw``; without
  ``-keypw`` it is refused (exit 2) with a message saying to give it.

Every process is real, on 127.0.0.1, bounded in time and stopped in ``finally``.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian

from tests.cli.dcmups_process import running
from tests.net.pki import PKI, make_pki
from tests.net.test_interop_dcmtk import native
from ups.cli import main

pytestmark = [pytest.mark.interop, pytest.mark.timeout(90)]

STORE_PW, KEY_PW = "store-pw-1", "key-pw-2"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PKI:
    return make_pki(tmp_path_factory.mktemp("clitls"))


def openssl() -> str:
    found = shutil.which("openssl")
    if found is None:
        pytest.skip("openssl not on PATH")
    return found


def tls_server_args(pki: PKI, *extra: str) -> list[str]:
    return [
        "-tls", "AES", "-keystore", str(pki.server.pem), "-keystorepw", pki.password,
        "-truststore", str(pki.ca_pem), "-requestTO", "5000", *extra,
    ]  # fmt: skip


def tls_client_args(pki: PKI, keystore: Path, *extra: str) -> list[str]:
    return [
        "-tls", "AES", "-keystore", str(keystore), "-truststore", str(pki.ca_pem),
        "-connectTO", "10000", *extra,
    ]  # fmt: skip


# ------------------------------------------------------------------ openssl s_client


@pytest.mark.parametrize(
    ("kind", "loop"), [("scp", "asyncio"), ("scp", "uvloop"), ("listener", "uvloop")]
)
@pytest.mark.parametrize(
    ("flag", "alert", "offered"),
    [
        ("-tls1_3", "alert certificate required", "TLS 1.3"),
        ("-tls1_2", "alert handshake failure", "TLS 1.2"),
    ],
)
def test_s_client_without_certificate_gets_the_alert(
    pki: PKI, tmp_path: Path, kind: str, loop: str, flag: str, alert: str, offered: str
) -> None:
    with running(kind, tls_server_args(pki), tmp_path, env={"DCMUPS_LOOP": loop}) as child:
        # -ign_eof: keep reading after the handshake, so a TLS 1.3 refusal is seen too.
        done = subprocess.run(
            [openssl(), "s_client", "-connect", f"127.0.0.1:{child.port}", flag, "-ign_eof"],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=20,
        )
    output = done.stdout + done.stderr
    assert done.returncode != 0
    assert alert in output, output
    (line,) = child.err_lines("TLS handshake from")
    assert line.startswith("TLS handshake from 127.0.0.1:")
    assert line.endswith(f"refused: no client certificate (client offered {offered})")


# ------------------------------------------------------------------ DCMTK storescu


def secondary_capture(path: Path) -> Path:
    ds = Dataset()
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    ds.SOPInstanceUID = "1.2.826.0.1.3680043.9.7433.16.1"
    ds.PatientName = "TLS^Refused"
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.save_as(path, enforce_file_format=True)
    return path


@contextlib.asynccontextmanager
async def recording_relay(port: int) -> AsyncIterator[tuple[int, bytearray]]:
    """A TCP relay to ``port`` that keeps every byte the server sends back."""
    from_server = bytearray()

    async def pump(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, keep: bytearray | None
    ) -> None:
        try:
            while data := await reader.read(65536):
                if keep is not None:
                    keep += data
                writer.write(data)
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            with contextlib.suppress(OSError):
                writer.write_eof()

    async def relay(client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        server_r, server_w = await asyncio.open_connection("127.0.0.1", port)
        try:
            await asyncio.gather(
                pump(client_r, server_w, None), pump(server_r, client_w, from_server)
            )
        finally:
            client_w.close()
            server_w.close()

    server = await asyncio.start_server(relay, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1], from_server
    finally:
        server.close()
        await server.wait_closed()


def records(data: bytes) -> list[tuple[int, int]]:
    """(content type, length) of each TLS record in ``data``."""
    found, pos = [], 0
    while pos + 5 <= len(data):
        length = int.from_bytes(data[pos + 3 : pos + 5], "big")
        found.append((data[pos], length))
        pos += 5 + length
    return found


async def test_storescu_with_untrusted_certificate(pki: PKI, tmp_path: Path) -> None:
    storescu = native("storescu")
    dicom = secondary_capture(tmp_path / "sc.dcm")
    with running("scp", tls_server_args(pki), tmp_path) as child:
        async with recording_relay(child.port) as (relay_port, from_server):
            proc = await asyncio.create_subprocess_exec(
                storescu, "+tls", str(pki.other_client.pem), str(pki.other_client.pem),
                "+pw", pki.password, "+cf", str(pki.ca_pem), "-aec", "UPSSCP",
                "127.0.0.1", str(relay_port), str(dicom),
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
            )  # fmt: skip
            try:
                out, _ = await asyncio.wait_for(proc.communicate(), 30)
            finally:
                if proc.returncode is None:
                    proc.kill()
                    await proc.wait()
    text = out.decode(errors="replace")
    assert proc.returncode != 0
    assert "Association Request Failed" in text, text
    # TLS 1.3: after its Finished, the server's last record is the encrypted alert:
    # 2 alert bytes + 1 content type + 16 bytes of AEAD tag (RFC 8446 §5.2).
    assert records(bytes(from_server))[-1] == (0x17, 19)
    (line,) = child.err_lines("TLS handshake from")
    assert "refused: the client certificate is from an unknown CA" in line


# ------------------------------------------------------------------ DCMTK storescp


@contextlib.contextmanager
def storescp_aes_profile(pki: PKI, tmp_path: Path) -> Iterator[int]:
    """storescp with only the retired PS3.15 AES profile (TLS 1.2, AES-CBC suites)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    out = tmp_path / "received"
    out.mkdir()
    proc = subprocess.Popen(
        [native("storescp"), "+tls", str(pki.server.pem), str(pki.server.pem),
         "+pw", pki.password, "+pa", "+cf", str(pki.ca_pem), "-od", str(out), str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 10
        while True:  # a readiness probe: storescp prints nothing when it listens
            assert proc.poll() is None, "storescp exited"
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "storescp did not listen"
                time.sleep(0.05)
        yield port
    finally:
        proc.kill()
        proc.wait(timeout=10)


def test_our_client_against_storescp_without_bcp195_suites(
    pki: PKI, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with storescp_aes_profile(pki, tmp_path) as port:
        argv = tls_client_args(pki, pki.client.pem, "-keystorepw", pki.password)
        code = main(["echo", f"STORESCP@127.0.0.1:{port}", *argv])
    err = capsys.readouterr().err
    assert code == 3
    assert err.startswith(f"dcmups: TLS handshake with 127.0.0.1:{port} failed: ")
    assert "no cipher suite in common" in err and "BCP 195" in err
    assert len(err.splitlines()) == 1


# ------------------------------------------------------------------ a -twopass keystore


@pytest.fixture(scope="module")
def twopass(pki: PKI, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``openssl pkcs12 -export -twopass`` of the client identity (passwords on stdin)."""
    from cryptography.hazmat.primitives import serialization

    directory = tmp_path_factory.mktemp("twopass")
    chain = directory / "chain.pem"
    chain.write_bytes(pki.client.pem.read_bytes().split(b"-----BEGIN ENCRYPTED")[0])
    key = serialization.load_pem_private_key(pki.client.pem.read_bytes(), pki.password.encode())
    clear = directory / "key.pem"
    clear.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    out = directory / "client-twopass.p12"
    done = subprocess.run(
        [openssl(), "pkcs12", "-export", "-twopass", "-in", str(chain), "-inkey", str(clear),
         "-out", str(out)],
        input=f"{STORE_PW}\n{STORE_PW}\n{KEY_PW}\n{KEY_PW}\n",
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    clear.unlink()
    return out


def test_twopass_keystore_needs_keypw(
    pki: PKI, twopass: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with running("scp", tls_server_args(pki), tmp_path) as child:
        remote = f"UPSSCP@127.0.0.1:{child.port}"
        both = tls_client_args(pki, twopass, "-keystorepw", STORE_PW, "-keypw", KEY_PW)
        assert main(["echo", remote, *both]) == 0
        capsys.readouterr()
        only_store = tls_client_args(pki, twopass, "-keystorepw", STORE_PW)
        assert main(["echo", remote, *only_store]) == 2
    err = capsys.readouterr().err
    assert str(twopass) in err and "give that one with -keypw" in err
    assert STORE_PW not in err and KEY_PW not in err
    assert not child.err_lines("TLS handshake from")  # refused before connecting
