"""``dcmups scp`` and ``dcmups -L`` as processes against raw peers that misbehave (issue 17).

* A C-FIND reader that stops reading (SO_RCVBUF 4 KiB, never reads) while 2,000 matches
  of 10,000 characters wait: with ``-sendTO 500`` the SCP aborts and resets the
  association, logs one line naming the peer and the bytes still queued, answers a
  C-ECHO on another association meanwhile, and its peak RSS (VmHWM, reset through
  /proc/PID/clear_refs after a warm-up) grows by at most 8 MB plus what was queued. The
  deadline itself is asserted exactly on virtual time (tests/dimse/
  test_provider_deadlines.py); the bound here only keeps a regression from hanging.
* The same 21 MB of matches to a reader that reads: all arrive, peak growth under 16 MB.
* Two outstanding requests under one Message ID (window 2, both in one P-DATA-TF so
  that they arrive in one read): one is answered 0x0000, the other 0x0210 Duplicate
  Invocation, and only the first is performed.
"""

from __future__ import annotations

import asyncio
import socket
import struct
import time
from pathlib import Path

import pytest
from pydicom.dataset import Dataset

import ups
from bench import rawpdu, worklist
from tests.cli.dcmups_process import running
from tests.dimse.provider_pair import answers
from ups.dimse.datasets import encode_dataset
from ups.dimse.messages import CFindRQ, NGetRQ, encode_command
from ups.dimse.status import Status
from ups.services.uids import UPS_PULL, UPS_PUSH

pytestmark = pytest.mark.timeout(90)

DUPLICATE = int(Status.DUPLICATE_INVOCATION)
TCP_CLOSE = 7  # tcpi_state of a socket whose peer reset it (linux/tcp_states.h)
SEND_TIMEOUT_MS = 500
STALLED_MATCHES = 2_000
STALLED_RSS_BOUND_MB = 8.0
NORMAL_RSS_BOUND_MB = 16.0


class RawScu:
    """A blocking TCP client that speaks raw PDUs (one presentation context, ID 1)."""

    def __init__(
        self, port: int, called: str, abstract: str, *, window: int = 1, rcvbuf: int = 0
    ) -> None:
        self.sock = socket.socket()
        if rcvbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(10.0)
        self.sock.connect(("127.0.0.1", port))
        self.sock.sendall(rawpdu.associate_rq("RAW", called, abstract, window=window))
        ac = self.pdu()
        assert ac[0] == rawpdu.A_ASSOCIATE_AC, ac[:10]

    def _exactly(self, count: int) -> bytes:
        data = b""
        while len(data) < count:
            chunk = self.sock.recv(count - len(data))
            assert chunk, "connection closed"
            data += chunk
        return data

    def pdu(self) -> bytes:
        header = self._exactly(6)
        return header + self._exactly(struct.unpack(">L", header[2:])[0])

    def send_together(self, *pdus: bytes) -> None:
        """Every PDV of ``pdus`` (each one P-DATA-TF) in a single P-DATA-TF."""
        body = b"".join(pdu[6:] for pdu in pdus)
        self.sock.sendall(struct.pack(">BBL", rawpdu.P_DATA_TF, 0, len(body)) + body)

    def answers(self, count: int) -> list[tuple[int, int]]:
        found: list[tuple[int, int]] = []
        while len(found) < count:
            found += answers(self.pdu())
        return found

    def state(self) -> int:
        """The kernel's TCP state of this socket (first byte of TCP_INFO)."""
        return self.sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 8)[0]

    def close(self) -> None:
        self.sock.close()


# ------------------------------------------------------------------ a stalled C-FIND reader


async def _fill(port: int, count: int, comment: str) -> str:
    """``count`` workitems carrying ``comment`` (LT, up to 10,240 characters)."""
    iuid = ""
    async with ups.connect(f"UPSSCP@127.0.0.1:{port}") as scu:
        for number in range(count):
            ds = Dataset()
            ds.ProcedureStepLabel = f"stall {number}"
            ds.CommentsOnTheScheduledProcedureStep = comment
            created = await scu.create(ds)
            assert created.status == 0 and created.iuid is not None
            iuid = created.iuid
    return iuid


async def _echo(port: int) -> int:
    async with ups.connect(f"UPSSCP@127.0.0.1:{port}") as scu:
        return (await scu.echo()).status


def _find_all(reader: RawScu) -> None:
    query = Dataset()
    query.CommentsOnTheScheduledProcedureStep = ""  # a return key: the big value comes back
    query.ProcedureStepLabel = ""
    identifier = encode_dataset(query, rawpdu.IMPLICIT_VR_LE)
    find = CFindRQ(1, UPS_PULL, dataset=identifier)
    reader.sock.sendall(rawpdu.p_data_tf(1, encode_command(find), identifier))


def _memory_mb(pid: int, key: str) -> float:
    """VmRSS or VmHWM (the peak since the last reset) of a process, in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no {key} for {pid}")


def _reset_peak(pid: int) -> None:
    Path(f"/proc/{pid}/clear_refs").write_text("5")  # VmHWM := VmRSS (Linux)


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="needs /proc clear_refs")
def test_scp_resets_a_find_reader_that_stops_reading(tmp_path: Path) -> None:
    """2,000 matches of about 10,000 characters (21 MB) to a reader with a 4 KiB receive
    buffer that never reads: the SCP's writes stay blocked, -sendTO later it aborts and
    resets the connection, a C-ECHO on a second association is answered while the reader
    is stalled, and the SCP's memory grows by one page of matches and the write buffer,
    not by the result set (issue 17: +61 MB before C-FIND streamed)."""
    worklist.build(tmp_path / "scp.sqlite", STALLED_MATCHES, comment=10_000)
    argv = ["-sendTO", str(SEND_TIMEOUT_MS), "-sosndbuf", "64", "--no-announce"]
    with running("scp", argv, tmp_path) as child:
        assert asyncio.run(_echo(child.port)) == 0  # warm: imports, first association
        baseline = _memory_mb(child.pid, "VmRSS")
        _reset_peak(child.pid)
        reader = RawScu(child.port, "UPSSCP", UPS_PULL, rcvbuf=4096)
        try:
            _find_all(reader)
            assert asyncio.run(_echo(child.port)) == 0  # served meanwhile
            deadline = time.monotonic() + SEND_TIMEOUT_MS / 1000 + 10.0
            while reader.state() != TCP_CLOSE and time.monotonic() < deadline:
                time.sleep(0.05)
            assert reader.state() == TCP_CLOSE, "the stalled reader was never reset"
            assert asyncio.run(_echo(child.port)) == 0  # and the SCP lives on
            growth = _memory_mb(child.pid, "VmHWM") - baseline
        finally:
            reader.close()
    lines = [line for line in child.err.splitlines() if "-sendTO" in line]
    assert len(lines) == 1, child.err
    (line,) = lines
    assert "RAW at 127.0.0.1:" in line and "stopped reading" in line, line
    queued = int(line.split("aborting with ")[1].split()[0])
    assert queued > 64 * 1024, line  # at least the write buffer's high-water mark
    # 8 MB (the target) plus the socket buffers, which -sosndbuf 64 keeps small here.
    assert growth <= STALLED_RSS_BOUND_MB + queued / 2**20, (baseline, growth)


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="needs /proc clear_refs")
def test_scp_streams_21_mb_of_matches_in_bounded_memory(tmp_path: Path) -> None:
    """The same 21 MB of matches to a reader that reads them all (through the library):
    every match arrives and the SCP's peak stays within 16 MB of where it started."""
    worklist.build(tmp_path / "scp.sqlite", STALLED_MATCHES, comment=10_000)
    with running("scp", ["--no-announce"], tmp_path) as child:
        assert asyncio.run(_echo(child.port)) == 0
        baseline = _memory_mb(child.pid, "VmRSS")
        _reset_peak(child.pid)
        count, size = asyncio.run(_read_all(child.port))
        growth = _memory_mb(child.pid, "VmHWM") - baseline
    assert count == STALLED_MATCHES and size >= 20_000_000, (count, size)
    assert growth < NORMAL_RSS_BOUND_MB, (baseline, growth)


async def _read_all(port: int) -> tuple[int, int]:
    query = Dataset()
    query.CommentsOnTheScheduledProcedureStep = ""
    query.ProcedureStepLabel = ""
    count = size = 0
    async with ups.connect(f"UPSSCP@127.0.0.1:{port}") as scu:
        async for match in scu.find(query):
            assert match.dataset is not None
            count += 1
            size += len(match.dataset.CommentsOnTheScheduledProcedureStep)
    return count, size


# ------------------------------------------------------------------ duplicate Message IDs


async def _created(port: int) -> str:
    async with ups.connect(f"UPSSCP@127.0.0.1:{port}") as scu:
        created = await scu.create()
        assert created.iuid is not None
        return created.iuid


def test_scp_answers_a_duplicate_message_id_0210(tmp_path: Path) -> None:
    """Two N-GETs under Message ID 7, the first still being performed: 0x0000 and 0x0210."""
    with running("scp", ["--no-announce"], tmp_path) as child:
        iuid = asyncio.run(_created(child.port))
        scu = RawScu(child.port, "UPSSCP", UPS_PUSH, window=2)
        try:
            get = rawpdu.p_data_tf(1, encode_command(NGetRQ(7, UPS_PUSH, iuid)))
            scu.send_together(get, get)
            assert sorted(scu.answers(2)) == [(7, 0), (7, DUPLICATE)]
            # Once answered the ID is free again (PS3.7 9.1.1.1).
            scu.send_together(get)
            assert scu.answers(1) == [(7, 0)]
        finally:
            scu.close()


def test_listener_answers_a_duplicate_message_id_0210(tmp_path: Path) -> None:
    """Two State Reports under Message ID 7: the listener prints one event, answers it
    0x0000, and refuses the other 0x0210."""
    with running("listener", ["--json"], tmp_path) as child:
        sender = RawScu(child.port, "LISTENER", rawpdu.UPS_EVENT, window=2)
        try:
            report = rawpdu.event_template().stamped(7)
            sender.send_together(report, report)
            assert sorted(sender.answers(2)) == [(7, 0), (7, DUPLICATE)]
        finally:
            sender.close()
    events = [line for line in child.out.splitlines() if line.startswith("{")]
    assert len(events) == 1, child.out
