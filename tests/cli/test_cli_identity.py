"""The two ``--users`` rules, end to end: ``dcmups scp`` children and ``dcmups echo``.

1. A user listed without a passcode accepts the user name alone (identity type 1); a
   passcode sent with that name is refused, unless the line says ``[any-passcode]``.
2. A passcode over plain TCP is refused (A-ASSOCIATE-RJ 1/1/1, one log line naming TLS)
   unless ``--allow-cleartext-passcodes``; over ``-tls AES`` it is judged as usual.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli.dcmups_process import running
from tests.net.pki import PKI, make_pki
from ups.cli import main

pytestmark = pytest.mark.timeout(90)

ALICE_PW = "alice: pass word"
REJECTED = "association rejected: rejected-permanent, source service-user, reason no-reason-given"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PKI:
    return make_pki(tmp_path_factory.mktemp("identity"))


@pytest.fixture
def users(tmp_path: Path) -> Path:
    path = tmp_path / "users.txt"
    path.write_text(f"alice:{ALICE_PW}\nbob\n[any-passcode] carol\n", encoding="utf-8")
    return path


@pytest.fixture
def passcodes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DCMUPS_TEST_ALICE", ALICE_PW)


def echo(port: int, capsys: pytest.CaptureFixture[str], user: str, *extra: str) -> tuple[int, str]:
    code = main(["echo", f"UPSSCP@127.0.0.1:{port}", "-username", user, *extra])
    return code, capsys.readouterr().err


def tls(pki: PKI, keystore: Path) -> list[str]:
    return [
        "-tls", "AES", "-keystore", str(keystore), "-keystorepw", pki.password,
        "-truststore", str(pki.ca_pem),
    ]  # fmt: skip


@pytest.mark.usefixtures("passcodes")
def test_passcode_over_plain_tcp_is_refused(
    users: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with running("scp", ["--users", str(users)], tmp_path) as child:
        refused = echo(child.port, capsys, "alice", "-passcode", "env:DCMUPS_TEST_ALICE")
        bob = echo(child.port, capsys, "bob")
    assert refused[0] == 3 and REJECTED in refused[1]
    assert bob[0] == 0
    (line,) = [line for line in child.err.splitlines() if "plain TCP" in line]
    assert "'alice'" in line and "TLS (-tls AES)" in line and "--allow-cleartext-passcodes" in line
    assert ALICE_PW not in child.out + child.err


@pytest.mark.usefixtures("passcodes")
def test_user_name_only_lines(
    users: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["--users", str(users), "--allow-cleartext-passcodes"]
    with running("scp", argv, tmp_path) as child:
        port = child.port
        assert echo(port, capsys, "alice", "-passcode", "env:DCMUPS_TEST_ALICE")[0] == 0
        assert echo(port, capsys, "alice")[0] == 3  # alice needs her passcode
        assert echo(port, capsys, "bob")[0] == 0
        code, err = echo(port, capsys, "bob", "-passcode", "anything")
        assert code == 3 and REJECTED in err  # bob is listed for his user name alone
        assert echo(port, capsys, "carol", "-passcode", "anything")[0] == 0
        assert echo(port, capsys, "carol")[0] == 0
    assert not [line for line in child.err.splitlines() if "plain TCP" in line]


@pytest.mark.usefixtures("passcodes")
def test_passcodes_over_tls(
    pki: PKI, users: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with running("scp", ["--users", str(users), *tls(pki, pki.server.pem)], tmp_path) as child:
        client = tls(pki, pki.client.pem)
        alice = echo(child.port, capsys, "alice", "-passcode", "env:DCMUPS_TEST_ALICE", *client)
        bob = echo(child.port, capsys, "bob", "-passcode", "x", *client)
    assert alice[0] == 0, alice[1]
    assert bob[0] == 3 and REJECTED in bob[1]
    assert not [line for line in child.err.splitlines() if "plain TCP" in line]
