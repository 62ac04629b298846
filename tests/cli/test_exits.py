"""The one exit-code table: every kind of failure maps to its row, in every subcommand."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from io import StringIO
from pathlib import Path

import pytest

from tests.cli.dcmups_process import running
from ups.cli import main
from ups.cli.exits import Exit, UsageError, UserInputError, exit_code
from ups.errors import DicomError
from ups.net.errors import AssociationRejected, NetError, TLSConfigError
from ups.services.errors import AddressError, ConfigError, UPSFailure

pytestmark = pytest.mark.timeout(40)


@pytest.mark.parametrize(
    ("exc", "code"),
    [
        (UPSFailure("get", 0xC307), 1),
        (UsageError("x"), 2),
        (UserInputError("x"), 2),
        (ConfigError("x"), 2),
        (AddressError("x"), 2),
        (TLSConfigError("x"), 2),
        (NetError("x"), 3),
        (AssociationRejected("x", 1, 1, 7), 3),
        (ConnectionRefusedError(111, "refused"), 3),
        (DicomError("x"), 3),
        (KeyboardInterrupt(), 130),
    ],
)
def test_the_table(exc: BaseException, code: int) -> None:
    assert exit_code(exc) == code


def test_the_codes() -> None:
    assert [int(e) for e in Exit] == [0, 1, 2, 3, 130]


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(1)
        yield int(sock.getsockname()[1])


def test_a_port_in_use_is_a_network_failure_for_listen_and_scp(
    busy_port: int, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """-L exited 2 and scp 3 for the same cause; both are 3 now."""
    assert main(["-L", f"ME@127.0.0.1:{busy_port}"], out=StringIO()) == 3
    db = str(tmp_path / "x.db")
    assert main(["scp", f"SCP@127.0.0.1:{busy_port}", "--db", db], out=StringIO()) == 3
    err = capsys.readouterr().err
    assert "Traceback" not in err


def test_bad_local_input_is_2_for_listen_and_scp(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``-L --users /nonexistent`` exited 64; bad scp addresses and --ae values 3."""
    missing = str(tmp_path / "nonexistent")
    assert main(["-L", "ME@127.0.0.1:0", "--users", missing], out=StringIO()) == 2
    db = str(tmp_path / "x.db")
    assert main(["scp", "no-at-sign", "--db", db], out=StringIO()) == 2
    assert main(["scp", "SCP@127.0.0.1:0", "--db", db, "--ae", "bad"], out=StringIO()) == 2
    assert main(["scp", "ÜPS@127.0.0.1:0", "--db", db], out=StringIO()) == 2
    assert not (tmp_path / "x.db").exists()
    err = capsys.readouterr().err
    assert "Traceback" not in err and all(line.startswith("dcmups: ") for line in err.splitlines())


def test_module_entry_point_reports_bad_arguments(tmp_path: Path) -> None:
    """What ``python -m ups.services.scp`` checked, ``dcmups scp`` checks (exit 2)."""
    assert main(["scp", "no-at-sign", "--db", str(tmp_path / "x.db")]) == 2
    assert main(["scp", "SCP@127.0.0.1:0", "--db", str(tmp_path / "x.db"), "--ae", "bad"]) == 2
    assert tmp_path.exists() and not (tmp_path / "x.db").exists()


def test_a_signal_is_the_normal_stop_of_listen_and_scp(tmp_path: Path) -> None:
    for kind in ("listener", "scp"):
        with running(kind, [], tmp_path) as child:
            pass
        assert child.proc.returncode == 0, child.err
