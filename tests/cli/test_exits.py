"""The one exit-code table: every kind of failure maps to its row, in every subcommand."""

from __future__ import annotations

import signal
import socket
import subprocess
from collections.abc import Iterator
from io import StringIO
from pathlib import Path

import pytest

from tests.cli.dcmups_process import command, running
from tests.cli.pynetdicom_scp import PynetdicomUPSSCP
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


# ------------------------------------------------------------------------ per subcommand
# The same table, row by row, for every subcommand, through the real entry point (a
# ``dcmups`` child process) against pynetdicom's UPS SCP (issue 12, finding 5).

OPERATIONS: dict[str, tuple[list[str], str | None]] = {
    "create": ([], "N-CREATE"),
    "set": (["-iuid", "1.2.3", "-s", "ProcedureStepLabel=x"], "N-SET"),
    "get": (["-iuid", "1.2.3"], "N-GET"),
    "find": (["-state", "SCHEDULED"], "C-FIND"),
    "chstate": (["-iuid", "1.2.3", "-tuid", "1.2.4", "-state", "IN PROGRESS"], "N-ACTION"),
    "reqcancel": (["-iuid", "1.2.3", "-aet", "ME"], "N-ACTION"),
    "subscribe": (["-aet", "ME"], "N-ACTION"),
    "unsubscribe": (["-aet", "ME"], "N-ACTION"),
    "suspend": (["-aet", "ME"], "N-ACTION"),
    "echo": ([], None),
}
"""Each SCU subcommand with what it needs, and the DIMSE it sends (None: C-ECHO)."""


@pytest.fixture(scope="module")
def pn_scp() -> Iterator[PynetdicomUPSSCP]:
    with PynetdicomUPSSCP() as scp:
        yield scp


@pytest.fixture
def peer(pn_scp: PynetdicomUPSSCP) -> PynetdicomUPSSCP:
    pn_scp.reset()
    return pn_scp


def dcmups(*argv: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*command(), *argv], capture_output=True, text=True, timeout=timeout,
        stdin=subprocess.DEVNULL,
    )  # fmt: skip


def one_line(done: subprocess.CompletedProcess[str]) -> str:
    lines = [line for line in done.stderr.splitlines() if "--help" not in line]
    assert len(lines) == 1 and lines[0].startswith("dcmups: "), done.stderr
    assert "Traceback" not in done.stderr
    return lines[0]


@pytest.mark.parametrize("op", list(OPERATIONS))
def test_0_success_and_warning(peer: PynetdicomUPSSCP, op: str) -> None:
    argv, dimse = OPERATIONS[op]
    if dimse is not None:
        peer.force_status[dimse] = 0x0000
    done = dcmups(op, peer.address, *argv)
    assert done.returncode == 0 and done.stderr == "", done.stderr
    if dimse is None or dimse == "C-FIND":
        return  # C-ECHO has no warning; a C-FIND ends in Success or a failure
    peer.force_status[dimse] = 0xB300
    done = dcmups(op, peer.address, *argv)
    assert done.returncode == 0 and done.stderr == "", done.stderr
    assert "B300 Warning" in done.stdout


@pytest.mark.parametrize("op", [op for op, (_, dimse) in OPERATIONS.items() if dimse])
def test_1_failure_status(peer: PynetdicomUPSSCP, op: str) -> None:
    argv, dimse = OPERATIONS[op]
    assert dimse is not None
    peer.force_status[dimse] = 0xC000 if dimse == "C-FIND" else 0x0110
    done = dcmups(op, peer.address, *argv)
    assert done.returncode == 1
    assert "failed: status" in one_line(done)


@pytest.mark.parametrize("op", [*OPERATIONS, "scp", "-L", "bench", "probe"])
def test_2_usage_or_bad_local_input(tmp_path: Path, op: str) -> None:
    head = {
        "scp": ["scp", "UPSSCP@127.0.0.1:0", "--db", str(tmp_path / "x.db")],
        "-L": ["-L", "ME@127.0.0.1:0"],
        "bench": ["bench", "echo", "A@127.0.0.1:1"],
        "probe": ["probe", "A@127.0.0.1:1"],
    }.get(op, [op, "A@127.0.0.1:1", *OPERATIONS.get(op, ([], None))[0]])
    bad = ["--aet", "127.0.0.1"] if op == "probe" else ["-acceptTO", "-1"]
    for argv in ([*head, *bad], [*head, "-tls", "NULL"] if op != "probe" else head[:1]):
        done = dcmups(*argv)
        assert done.returncode == 2, (argv, done.stderr)
        one_line(done)
    assert not (tmp_path / "x.db").exists()


@pytest.mark.parametrize("db", ["/nonexistent/dir/x.sqlite", "notes.txt", "mysql://u:pw@h/db"])
def test_2_a_bad_db_is_one_line(tmp_path: Path, db: str) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("not a database\n")
    path = str(notes) if db == "notes.txt" else db
    done = dcmups("scp", "UPSSCP@127.0.0.1:0", "--db", path)
    assert done.returncode == 2
    line = one_line(done)
    assert "pw" not in line  # the password of a URL stays off the terminal
    assert notes.read_text() == "not a database\n"


@pytest.mark.parametrize("op", [*OPERATIONS, "bench", "probe"])
def test_3_network(closed_port: int, op: str) -> None:
    remote = f"A@127.0.0.1:{closed_port}"
    head = {"bench": ["bench", "echo", remote, "--ops", "1"], "probe": ["probe", remote]}
    done = dcmups(*head.get(op, [op, remote, *OPERATIONS.get(op, ([], None))[0]]))
    assert done.returncode == 3, done.stderr
    assert "connect" in one_line(done).lower()


@pytest.mark.parametrize("kind", ["scp", "-L"])
def test_3_port_in_use(busy_port: int, tmp_path: Path, kind: str) -> None:
    argv = (
        ["scp", f"UPSSCP@127.0.0.1:{busy_port}", "--db", str(tmp_path / "x.db")]
        if kind == "scp"
        else ["-L", f"ME@127.0.0.1:{busy_port}"]
    )
    done = dcmups(*argv)
    assert done.returncode == 3
    one_line(done)


@pytest.fixture(scope="module")
def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize("op", list(OPERATIONS))
def test_130_interrupted(op: str) -> None:
    """SIGINT while the operation waits for the peer (a socket that never answers)."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        server.settimeout(20)
        port = server.getsockname()[1]
        argv, _ = OPERATIONS[op]
        proc = subprocess.Popen(
            [*command(), op, f"A@127.0.0.1:{port}", *argv, "-acceptTO", "30000"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        try:
            connection, _ = server.accept()  # the A-ASSOCIATE-RQ is on its way
            with connection:
                connection.recv(1)
                proc.send_signal(signal.SIGINT)
                _, err = proc.communicate(timeout=20)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    assert proc.returncode == 130, err
    assert err.splitlines() == ["dcmups: interrupted"]


@pytest.mark.parametrize("kind", ["scp", "listener"])
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_0_a_signal_stops_scp_and_listener(tmp_path: Path, kind: str, sig: int) -> None:
    with running(kind, [], tmp_path) as child:
        child.proc.send_signal(sig)
        child.proc.wait(20)
    assert child.proc.returncode == 0, child.err
