"""Secrets off the command line: ``env:NAME``, ``file:PATH`` and ``-`` (a prompt).

Every password option (``-keystorepw``, ``-keypw``, ``-truststorepw``, ``-passcode``)
and ``--jwt`` take them. A ``dcmups scp`` child started with ``env:``/``file:`` forms
and a separate certificate and key (``-keystore CERT -key KEY``) serves TLS, while its
``/proc/PID/cmdline`` and everything it prints hold no password.
"""

from __future__ import annotations

import argparse
import fcntl
import os
import pty
import select
import subprocess
import termios
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from tests.cli.dcmups_process import command, running
from tests.net.pki import PKI, make_pki
from ups.cli import main
from ups.cli.exits import UsageError
from ups.cli.secrets import SECRET_OPTIONS, Secret, read_secret, resolve_secrets

pytestmark = pytest.mark.timeout(60)

KEY_PW = "k3y-Pässword"  # the separate key file's own password


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PKI:
    return make_pki(tmp_path_factory.mktemp("secrets"))


@pytest.fixture(scope="module")
def server_files(pki: PKI) -> tuple[Path, Path]:
    """The server identity as a certificate chain and a key file under KEY_PW."""
    directory = pki.ca_pem.parent
    chain = directory / "server-chain.pem"
    chain.write_bytes(pki.server.pem.read_bytes().split(b"-----BEGIN ENCRYPTED")[0])
    key = serialization.load_pem_private_key(pki.server.pem.read_bytes(), pki.password.encode())
    key_file = directory / "server-key.pem"
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(KEY_PW.encode()),
        )
    )
    return chain, key_file


# ------------------------------------------------------------------ the forms


def test_forms(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DCMUPS_TEST_SECRET", "from-env")
    path = tmp_path / "pw.txt"
    path.write_bytes("from-fïle\r\nsecond line ignored\n".encode())
    assert read_secret("keystorepw", "env:DCMUPS_TEST_SECRET") == "from-env"
    assert read_secret("keystorepw", f"file:{path}") == "from-fïle"
    assert read_secret("keystorepw", "literal") == "literal"
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    assert read_secret("passcode", f"file:{empty}") == ""


def test_errors_name_the_option_never_a_secret(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DCMUPS_TEST_MISSING", raising=False)
    with pytest.raises(UsageError, match="-keypw env:DCMUPS_TEST_MISSING: .* not set"):
        read_secret("keypw", "env:DCMUPS_TEST_MISSING")
    with pytest.raises(UsageError, match="-truststorepw file:.*absent"):
        read_secret("truststorepw", f"file:{tmp_path / 'absent'}")
    binary = tmp_path / "binary"
    binary.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(UsageError, match="not UTF-8"):
        read_secret("passcode", f"file:{binary}")
    with pytest.raises(UsageError, match="^--jwt env:"):
        read_secret("jwt", "env:DCMUPS_TEST_MISSING")


def test_repr_hides_resolved_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DCMUPS_TEST_SECRET", "hunter2")
    args = argparse.Namespace(**{name: None for name in SECRET_OPTIONS})
    args.keystorepw = "env:DCMUPS_TEST_SECRET"
    args.passcode = "literal-passcode"
    resolve_secrets(args)
    assert isinstance(args.keystorepw, Secret) and args.keystorepw == "hunter2"
    assert "hunter2" not in repr(args) and "literal-passcode" not in repr(args)
    resolve_secrets(args)  # once only: a resolved value is not read again
    assert args.keystorepw == "hunter2"


def test_prompt_refused_without_a_terminal(
    pki: PKI, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("sys.stdin.isatty", lambda: False)
    code = main(["echo", "X@127.0.0.1:1", "-username", "u", "-passcode", "-"])
    err = capsys.readouterr().err
    assert code == 2
    assert "-passcode -: cannot prompt, standard input is not a terminal" in err


def test_prompt_on_a_terminal(pki: PKI, tmp_path: Path) -> None:
    """``-keystorepw -`` prompts on the terminal (a pty here) and reads the password."""
    with running("scp", server_args(pki, pki.server.pem, pki.password), tmp_path) as child:
        master, slave = pty.openpty()
        try:
            proc = subprocess.Popen(
                [*command(), "echo", f"UPSSCP@127.0.0.1:{child.port}", "-tls", "AES",
                 "-keystore", str(pki.client.pem), "-keystorepw", "-",
                 "-truststore", str(pki.ca_pem)],
                stdin=slave, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                start_new_session=True, preexec_fn=_controlling_terminal,
            )  # fmt: skip
            try:
                prompt = _read_until(master, b"keystorepw: ")
                os.write(master, pki.password.encode() + b"\n")
                out, err = proc.communicate(timeout=30)
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.communicate()
        finally:
            os.close(slave)
            os.close(master)
    assert proc.returncode == 0, err
    assert "echo: 0000 Success" in out
    assert prompt.endswith(b"dcmups: -keystorepw: ")
    assert pki.password not in out + err


def _controlling_terminal() -> None:
    """In the child, after setsid: make stdin (the pty) its terminal, as a login shell has."""
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


def _read_until(fd: int, marker: bytes, timeout: float = 20.0) -> bytes:
    """What the terminal shows until ``marker`` (getpass flushes input typed earlier)."""
    seen = b""
    deadline = time.monotonic() + timeout
    while marker not in seen:
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"no prompt; the terminal showed {seen!r}"
        ready, _, _ = select.select([fd], [], [], remaining)
        if ready:
            seen += os.read(fd, 1024)
    return seen


# ------------------------------------------------------------------ a real child


def server_args(pki: PKI, keystore: Path, password: str, *extra: str) -> list[str]:
    return [
        "-tls", "AES", "-keystore", str(keystore), "-keystorepw", password,
        "-truststore", str(pki.ca_pem), *extra,
    ]  # fmt: skip


def test_env_and_file_secrets_stay_out_of_ps(
    pki: PKI, server_files: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    chain, key_file = server_files
    store_pw = tmp_path / "truststore.pw"
    store_pw.write_text(pki.password + "\n", encoding="utf-8")
    argv = server_args(
        pki, chain, "env:DCMUPS_TEST_KEYSTORE_PW",
        "-key", str(key_file), "-keypw", f"file:{tmp_path / 'key.pw'}",
        "-truststorepw", f"file:{store_pw}",
    )  # fmt: skip
    (tmp_path / "key.pw").write_text(KEY_PW, encoding="utf-8")
    env = {"DCMUPS_TEST_KEYSTORE_PW": "unused-for-a-pem-chain"}
    with running("scp", argv, tmp_path, env=env) as child:
        cmdline = Path(f"/proc/{child.pid}/cmdline").read_bytes().decode()
        os.environ["DCMUPS_TEST_CLIENT_PW"] = pki.password
        try:
            code = main(
                ["echo", f"UPSSCP@127.0.0.1:{child.port}", "-tls", "AES",
                 "-keystore", str(pki.client.pem), "-keystorepw", "env:DCMUPS_TEST_CLIENT_PW",
                 "-truststore", str(pki.ca_pem)]
            )  # fmt: skip
        finally:
            del os.environ["DCMUPS_TEST_CLIENT_PW"]
    assert code == 0, capsys.readouterr().err
    assert "-key\0" in cmdline and "env:DCMUPS_TEST_KEYSTORE_PW" in cmdline
    for secret in (KEY_PW, pki.password, "unused-for-a-pem-chain"):
        assert secret not in cmdline
        assert secret not in child.out + child.err
    assert not child.err_lines("TLS handshake from")
