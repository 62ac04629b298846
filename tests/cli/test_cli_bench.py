"""dcmups bench from the command line: figures for a live AE, clear errors otherwise."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from io import StringIO

import pytest

from ups.cli import main


@pytest.fixture
def echo_port() -> Iterator[int]:
    pynetdicom = pytest.importorskip("pynetdicom")
    ae = pynetdicom.AE("ECHOSCP")
    ae.add_supported_context("1.2.840.10008.1.1")
    server = ae.start_server(("127.0.0.1", 0), block=False)
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()


def _run(argv: list[str]) -> tuple[int, str]:
    out = StringIO()
    result: list[int] = []
    # main() runs its own event loop; keep it off any loop pytest-asyncio may hold.
    thread = threading.Thread(target=lambda: result.append(main(argv, out=out)))
    thread.start()
    thread.join(60)
    assert result, "dcmups bench did not finish"
    return result[0], out.getvalue()


def test_bench_echo_json(echo_port: int) -> None:
    code, out = _run(
        [
            "bench",
            "echo",
            f"ECHOSCP@127.0.0.1:{echo_port}",
            "--ops",
            "30",
            "--assocs",
            "2",
            "--json",
        ]
    )
    assert code == 0
    report = json.loads(out)
    assert report["completed"] == 30
    assert report["statuses"] == {"0000": 30}


def test_bench_readable(echo_port: int) -> None:
    code, out = _run(["bench", "echo", f"ECHOSCP@127.0.0.1:{echo_port}", "--ops", "10"])
    assert code == 0
    assert out.startswith("echo: 10 operations")
    assert "p99" in out


@pytest.mark.parametrize(
    "argv",
    [
        ["bench"],
        ["bench", "echo"],
        ["bench", "store", "X@127.0.0.1:104"],
        ["bench", "get", "X@127.0.0.1:104"],
        ["bench", "echo", "X@127.0.0.1:104", "--ops", "0"],
        ["bench", "echo", "X@127.0.0.1:104", "--seconds", "-1"],
    ],
)
def test_bench_usage_errors(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv, out=StringIO()) == 2
    assert capsys.readouterr().err.startswith("dcmups: ")


def test_bench_unreachable_is_a_network_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, _ = _run(["bench", "echo", "X@127.0.0.1:1", "--ops", "3"])
    assert code == 3
    assert "ConnectFailed" in capsys.readouterr().err
