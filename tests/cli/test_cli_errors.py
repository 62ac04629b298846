"""``dcmups`` on bad input and failures: one clear stderr line, the documented exit status.

Exit status: 0 success (warnings too), 1 failure status from the peer, 2 bad input or
usage, 3 network or association failure. Never a Python traceback for a user error. A few
cases run the installed command in a subprocess to see the real exit code and stderr.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
from io import StringIO
from pathlib import Path

import pytest

from tests.cli.pynetdicom_scp import PynetdicomUPSSCP
from ups.cli import main

pytestmark = pytest.mark.timeout(30)

SEED_OPTIONS = (
    "-acceptTO -aet -connectTO -dellock -device -f -findprior -h --help -iuid -ivrle -keypw "
    "-keystore -keystorepw -L -no_ssl2 -no_ssl3 -no_tls1 -noclientauth -passcode -pdv1 -q -r "
    "-rcvpdulen -reaper -releaseTO -rspTO -sndpdulen -soclosedelay -sorcvbuf -sosndbuf -ssl3 "
    "-state -tcpdelay -tls -tls1 -truststore -truststorepw -tuid -uidnegrsp -upspull -upspush "
    "-upswatch -username -V --version"
).split()
ADDITIONS = (
    "-s --reason --reason-code --contact --contact-uri --max-ops-invoked --max-ops-performed "
    "--explicit-vr --big-endian --saml --jwt --json --trial --final"
).split()


@pytest.fixture(scope="module")
def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, list[str]]:
    out = StringIO()
    code = main(list(argv), out=out)
    err = capsys.readouterr().err
    return code, out.getvalue(), [line for line in err.splitlines() if line]


def assert_one_clear_line(err: list[str], *fragments: str) -> None:
    assert 1 <= len(err) <= 2, err
    assert err[0].startswith("dcmups: ")
    if len(err) == 2:
        assert "--help" in err[1]
    for fragment in fragments:
        assert fragment in err[0], (fragment, err[0])
    assert not any("Traceback" in line for line in err)


# ---------------------------------------------------------------- usage and bad input


@pytest.mark.parametrize(
    "argv, fragments",
    [
        ([], ("operation",)),
        (["frobnicate", "A@h:1"], ("frobnicate",)),
        (["get"], ("get", "remote")),
        (["get", "A@127.0.0.1:1"], ("get", "-iuid")),
        (["set", "A@127.0.0.1:1", "-iuid", "1.2"], ("set", "-f")),
        (["chstate", "A@127.0.0.1:1", "-iuid", "1.2"], ("-tuid", "-state")),
        (["chstate", "A@127.0.0.1:1", "-iuid", "1.2", "-tuid", "3"], ("-state",)),
        (["reqcancel", "A@127.0.0.1:1", "-iuid", "1.2"], ("reqcancel", "-aet")),
        (["reqcancel", "A@127.0.0.1:1", "-aet", "X"], ("reqcancel", "-iuid")),
        (["subscribe", "A@127.0.0.1:1"], ("subscribe", "-aet")),
        (["unsubscribe", "A@127.0.0.1:1"], ("unsubscribe", "-aet")),
        (["suspend", "A@127.0.0.1:1"], ("suspend", "-aet")),
        (["find", "A@127.0.0.1:1", "-q", "PatientID"], ("PatientID",)),
        (["find", "A@127.0.0.1:1", "-q", "NoSuchKeyword=1"], ("NoSuchKeyword",)),
        (["find", "A@127.0.0.1:1", "-r", "NoSuchKeyword"], ("NoSuchKeyword",)),
        (["find", "A@127.0.0.1:1", "-q", "00100020/00080100=1"], ("not a sequence",)),
        (["find", "A@127.0.0.1:1", "-findprior", "URGENT"], ("-findprior",)),
        (["find", "A@127.0.0.1:1", "-rspTO", "soon"], ("-rspTO",)),
        (["find", "A@127.0.0.1:1", "-rspTO", "-5"], ("-rspTO",)),
        (["find", "A@127.0.0.1:1", "-reaper", "0"], ("-reaper",)),
        (["find", "A@127.0.0.1:1", "-upspush", "-upspull"], ("-upspush",)),
        (["find", "A@127.0.0.1:1", "--trial", "--final"], ("--trial",)),
        (["find", "A@127.0.0.1:1", "-ivrle", "--big-endian"], ("-ivrle",)),
        (["find", "A@127.0.0.1:1", "-passcode", "x"], ("-passcode",)),
        (["find", "A@127.0.0.1:1", "-username", "u", "--jwt", "t"], ("-username",)),
        (["find", "A@127.0.0.1:1", "--saml", "/nonexistent/saml.xml"], ("--saml",)),
        (["find", "A@127.0.0.1:1", "--max-ops-invoked", "-1"], ("--max-ops",)),
        (["find", "A@127.0.0.1:1", "-keystore", "k.pem"], ("-tls",)),
        (["find", "A@127.0.0.1:1", "--no-such-option"], ("--no-such-option",)),
        (["reqcancel", "A@127.0.0.1:1", "-iuid", "1", "-aet", "X", "--reason-code", "AB"], ()),
        (["get", "THIS_AE_TITLE_IS_TOO_LONG@127.0.0.1:1", "-iuid", "1"], ("AE title",)),
        (["get", "A@127.0.0.1:port", "-iuid", "1"], ("port",)),
        (["get", "A@127.0.0.1:70000", "-iuid", "1"], ("70000",)),
    ],
)
def test_usage_errors_exit_2(
    capsys: pytest.CaptureFixture[str], argv: list[str], fragments: tuple[str, ...]
) -> None:
    code, out, err = run(capsys, *argv)
    assert code == 2
    assert out == ""
    assert_one_clear_line(err, *fragments)


def test_missing_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    missing = tmp_path / "nope.json"
    code, _, err = run(capsys, "create", "A@127.0.0.1:1", "-f", str(missing))
    assert code == 2
    assert_one_clear_line(err, "nope.json")


@pytest.mark.parametrize(
    "name, content",
    [
        ("bad.json", b'{"00100020": {"vr": "LO", "Value": ['),
        ("bad.xml", b"<NativeDicomModel><DicomAttribute tag='zz'"),
        ("bad.dcm", b"\x00\x01garbage that is no DICOM at all" * 3),
    ],
)
def test_malformed_file(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, name: str, content: bytes
) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    code, _, err = run(capsys, "set", "A@127.0.0.1:1", "-iuid", "1.2", "-f", str(path))
    assert code == 2
    assert_one_clear_line(err, name)


def test_bad_input_is_found_before_connecting(
    capsys: pytest.CaptureFixture[str], closed_port: int
) -> None:
    # Unreachable host, but the -q error is reported (exit 2), not the network one.
    code, _, err = run(capsys, "find", f"A@127.0.0.1:{closed_port}", "-q", "bad")
    assert code == 2
    assert_one_clear_line(err)


# ---------------------------------------------------------------- network failures


def test_unreachable_port_exits_3(capsys: pytest.CaptureFixture[str], closed_port: int) -> None:
    code, _, err = run(capsys, "get", f"A@127.0.0.1:{closed_port}", "-iuid", "1.2")
    assert code == 3
    assert_one_clear_line(err, f"127.0.0.1:{closed_port}")


def test_rejected_association_exits_3(
    capsys: pytest.CaptureFixture[str], scp: PynetdicomUPSSCP
) -> None:
    scp.ae.require_called_aet = True
    try:
        code, _, err = run(capsys, "echo", f"WRONGAE@127.0.0.1:{scp.port}")
    finally:
        scp.ae.require_called_aet = False
    assert code == 3
    assert_one_clear_line(err)
    assert "reject" in err[0].lower()


def test_no_acceptable_context_exits_3(capsys: pytest.CaptureFixture[str]) -> None:
    with PynetdicomUPSSCP(roles=("watch",)) as watch_only:
        code, _, err = run(capsys, "create", watch_only.address)
    assert code == 3
    assert_one_clear_line(err, "Push")


# ---------------------------------------------------------------- failure statuses


def test_failure_status_exits_1_with_code_and_meaning(
    capsys: pytest.CaptureFixture[str], scp: PynetdicomUPSSCP
) -> None:
    code, out, err = run(capsys, "get", scp.address, "-iuid", "9.9.9")
    assert code == 1
    assert out == ""
    assert_one_clear_line(err, "get", "C307")
    assert "UPS" in err[0] or "SOP Instance" in err[0]


@pytest.mark.parametrize(
    "op, dimse, status",
    [
        (["create"], "N-CREATE", 0xA700),
        (["set", "-iuid", "1.2", "-s", "PatientID=1"], "N-SET", 0x0106),
        (["chstate", "-iuid", "1.2", "-tuid", "3", "-state", "COMPLETED"], "N-ACTION", 0xC301),
        (["subscribe", "-aet", "ME"], "N-ACTION", 0xC315),
        (["find"], "C-FIND", 0xA900),
    ],
)
def test_each_operation_reports_failure_statuses(
    capsys: pytest.CaptureFixture[str],
    scp: PynetdicomUPSSCP,
    op: list[str],
    dimse: str,
    status: int,
) -> None:
    scp.force_status[dimse] = status
    code, _, err = run(capsys, op[0], scp.address, *op[1:])
    assert code == 1
    assert_one_clear_line(err, f"{status:04X}")


def test_state_machine_failure_from_scp(
    capsys: pytest.CaptureFixture[str], scp: PynetdicomUPSSCP
) -> None:
    scp.add_item("1.2.8.1", "IN PROGRESS")
    scp.items["1.2.8.1"].transaction_uid = "7.7"
    code, _, err = run(
        capsys, "chstate", scp.address, "-iuid", "1.2.8.1", "-tuid", "6.6", "-state", "COMPLETED"
    )
    assert code == 1
    assert_one_clear_line(err, "C301", "Transaction UID")


# ---------------------------------------------------------------- help and version


def test_help_lists_every_seed_option_and_the_additions(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, _ = run(capsys, "--help")
    assert code == 0
    for option in SEED_OPTIONS + ADDITIONS:
        assert f" {option}" in out or f"{option}," in out, option
    for operation in ("create", "set", "get", "find", "chstate", "reqcancel", "subscribe"):
        assert operation in out
    assert "dcmups find UPSSCP@localhost:11112 -state SCHEDULED" in out
    out = " ".join(out.split())  # argparse wraps help text
    assert "10s by default" in out and "16KB by default" in out and "5s by default" in out
    assert "[addition]" in out


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "-V")
    assert code == 0 and out.startswith("dcmups ")


# ---------------------------------------------------------------- the real command


def _command() -> list[str]:
    found = shutil.which("dcmups")
    return [found] if found else [sys.executable, "-m", "ups"]


@pytest.mark.parametrize(
    "argv, expected",
    [
        (["find", "A@127.0.0.1:{port}", "-q", "NoSuchKeyword=1"], 2),
        (["get", "A@127.0.0.1:{port}", "-iuid", "1.2"], 3),
        (["get", "UPSSCP@127.0.0.1:{scp}", "-iuid", "9.9"], 1),
    ],
)
def test_subprocess_exit_status_and_stderr(
    argv: list[str], expected: int, closed_port: int, scp: PynetdicomUPSSCP
) -> None:
    args = [a.format(port=closed_port, scp=scp.port) for a in argv]
    done = subprocess.run(
        _command() + args, capture_output=True, text=True, timeout=20, check=False
    )
    assert done.returncode == expected
    lines = [line for line in done.stderr.splitlines() if line]
    assert 1 <= len(lines) <= 2 and lines[0].startswith("dcmups: ")
    assert "Traceback" not in done.stderr
    assert done.stdout == ""
