"""Ctrl-C during `dcmups find` sends C-CANCEL-RQ (PS3.7 §9.3.2.3) and exits 130."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

pynetdicom = pytest.importorskip("pynetdicom")
from pydicom.dataset import Dataset  # noqa: E402

UPS_PULL = "1.2.840.10008.5.1.4.34.6.3"


class EndlessFindSCP:
    """A pynetdicom UPS Pull SCP whose C-FIND never ends unless it is cancelled."""

    def __init__(self) -> None:
        self.cancelled = threading.Event()
        self.started = threading.Event()
        ae = pynetdicom.AE("UPSSCP")
        ae.add_supported_context(UPS_PULL)
        ae.add_supported_context(UPS_PULL, "1.2.840.10008.1.2.1")
        self.server = ae.start_server(
            ("127.0.0.1", 0),
            block=False,
            evt_handlers=[(pynetdicom.evt.EVT_C_FIND, self._find)],
        )
        self.port = int(self.server.server_address[1])

    def _find(self, event: Any) -> Iterator[tuple[int, Dataset | None]]:
        self.started.set()
        for n in range(2000):  # bounded: 2000 x 5 ms
            if event.is_cancelled:
                self.cancelled.set()
                yield 0xFE00, None
                return
            match = Dataset()
            match.SOPInstanceUID = f"1.2.3.{n}"
            match.ProcedureStepState = "SCHEDULED"
            yield 0xFF00, match
            time.sleep(0.005)  # the peer's pace, so the client has time to be interrupted
        yield 0x0000, None

    def close(self) -> None:
        self.server.shutdown()


@pytest.fixture
def scp() -> Iterator[EndlessFindSCP]:
    server = EndlessFindSCP()
    try:
        yield server
    finally:
        server.close()


def test_ctrl_c_during_find_sends_c_cancel(scp: EndlessFindSCP) -> None:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "ups", "find", f"UPSSCP@127.0.0.1:{scp.port}", "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()  # a match has been printed: the find is running
        assert '"status":65280' in first
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130
    assert "Traceback" not in err
    assert "interrupted" in err
    assert scp.cancelled.wait(10), "the SCP never saw C-CANCEL-RQ"
