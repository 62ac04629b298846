"""``dcmups -L``, ``subscribe ... -L``, ``scp`` and ``demo`` as the command line wires them.

The listener and the SCP run until a signal, so these run the installed command in a
subprocess, wait for the line it prints once ready, and stop it with SIGTERM.
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from io import StringIO
from pathlib import Path

import pytest

from tests.cli.pynetdicom_scp import PynetdicomUPSSCP
from ups.cli import main

pytestmark = pytest.mark.timeout(40)


def _command() -> list[str]:
    found = shutil.which("dcmups")
    return [found] if found else [sys.executable, "-m", "ups"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def scp() -> Iterator[PynetdicomUPSSCP]:
    with PynetdicomUPSSCP() as server:
        yield server


def test_subscribe_listen_then_unsubscribe_on_exit(scp: PynetdicomUPSSCP) -> None:
    port = _free_port()
    argv = ["subscribe", scp.address, "-aet", "ME", "-dellock", "--json", "-L"]
    proc = subprocess.Popen(
        [*_command(), *argv, f"ME@127.0.0.1:{port}"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()  # printed once subscribed (the port is bound first)
        assert '"op":"subscribe"' in first and '"status":0' in first
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert '"op":"unsubscribe"' in out
    actions = scp.requests("N-ACTION")[-2:]
    assert [a.command["ActionTypeID"] for a in actions] == [3, 4]
    assert all(a.assoc.calling_ae == "ME" for a in actions)  # -L names the calling AE
    subscribe = actions[0].dataset
    assert subscribe is not None and subscribe.DeletionLock == "TRUE"
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("spec", "with_operation"),
    [
        ("ME@127.0.0.1", False),  # listening needs a port; with an operation it is the seed's
        ("ME@127.0.0.1:notaport", True),
        ("127.0.0.1:11113", True),  # an IP address where the AE title goes
        ("localhost:11113", True),
        ("ÄÖ@127.0.0.1:11113", True),
        ("ÄÖ@127.0.0.1", True),
    ],
)
def test_bad_listen_address_is_a_usage_error(
    capsys: pytest.CaptureFixture[str], spec: str, with_operation: bool
) -> None:
    assert main(["-L", spec], out=StringIO()) == 2
    if with_operation:
        assert main(["echo", "A@127.0.0.1:1", "-L", spec], out=StringIO()) == 2
    err = capsys.readouterr().err
    assert err.startswith("dcmups: ") and "Traceback" not in err


def test_listen_with_bad_operation_options_fails_before_listening(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = main(["subscribe", "A@127.0.0.1:1", "-L", f"ME@127.0.0.1:{_free_port()}"])
    assert code == 2
    assert "-aet" in capsys.readouterr().err


def test_scp_command_serves_create_and_find(tmp_path: Path) -> None:
    port = _free_port()
    db = tmp_path / "ups.sqlite"
    proc = subprocess.Popen(
        [*_command(), "scp", f"UPSSCP@127.0.0.1:{port}", "--db", str(db)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        assert "listening" in proc.stdout.readline()
        remote = f"UPSSCP@127.0.0.1:{port}"
        out = StringIO()
        assert main(["create", remote, "-iuid", "1.2.3.77", "--json"], out=out) == 0
        out = StringIO()
        assert main(["find", remote, "-state", "SCHEDULED", "--json"], out=out) == 0
        assert '"iuid":"1.2.3.77"' in out.getvalue()
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0


@pytest.mark.parametrize("argv", [["scp"], ["scp", "UPSSCP@127.0.0.1:0"]])
def test_scp_requires_address_and_db(capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    assert main(argv, out=StringIO()) == 2
    assert "scp requires" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("spec", "calling", "host"),
    [("ME@127.0.0.2", "ME", "127.0.0.2"), ("ME", "ME", "127.0.0.1")],
)
def test_the_seeds_L_aet_at_host_with_an_operation(
    scp: PynetdicomUPSSCP, spec: str, calling: str, host: str
) -> None:
    """The seed's ``-L <aet[@host]>`` with an operation: the calling AE title and the local
    address the association is opened from (it was refused: "missing :<port>")."""
    scp.reset()
    done = subprocess.run(
        [*_command(), "echo", scp.address, "-L", spec],
        capture_output=True,
        text=True,
        timeout=30,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, done.stderr
    [association] = scp.associations
    assert (association.calling_ae, association.peer_host) == (calling, host)
