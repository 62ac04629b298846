"""An independent judge of our wire format: Wireshark's DICOM dissector, via tshark.

A full UPS workflow runs on loopback while ``dumpcap`` records it: our SCU against our
reference SCP (echo, N-CREATE, N-GET, N-SET, C-FIND, N-ACTION subscribe and change
state, release), the SCP's N-EVENT-REPORTs to our event listener, and a plain
requestor/server association with a data set split over many small P-DATA-TF PDUs.
tshark then decodes every PDU (``-d tcp.port==PORT,dicom``) and the test asserts
that it flags nothing as malformed and raises no expert warning or error, and that it
really decoded DICOM (so the test cannot pass on an empty or undecoded capture).

Skipped when tshark/dumpcap are missing or cannot capture on ``lo``, unless
``DCMUPS_REQUIRE_PEERS=1`` (CI), where that is a failure.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import pytest
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

import ups
from ups.dimse.messages import NCreateRQ, NCreateRSP, Request, Response
from ups.net.association import RequestContext
from ups.net.config import AssociationConfig
from ups.net.requestor import build_request, connect
from ups.net.server import serve
from ups.pdu.negotiation import AcceptorPolicy, SyntaxSupport
from ups.services.listener import listen
from ups.services.scp import UPSSCP
from ups.services.scp.config import RemoteAE, SCPOptions
from ups.services.scu import SCUOptions
from ups.services.settings import ListenerSettings

pytestmark = pytest.mark.timeout(90)

REQUIRED = os.environ.get("DCMUPS_REQUIRE_PEERS") == "1"
IMPLICIT_LE = "1.2.840.10008.1.2"
EXPLICIT_LE = "1.2.840.10008.1.2.1"
UPS_PUSH = "1.2.840.10008.5.1.4.34.6.1"
FAST = AssociationConfig(
    accept_timeout=5.0,
    request_timeout=5.0,
    release_timeout=5.0,
    response_timeout=10.0,
    reaper_period=1.0,
    so_close_delay=0.01,
)


def _unavailable(why: str) -> None:
    if REQUIRED:
        pytest.fail(f"{why} (DCMUPS_REQUIRE_PEERS=1): apt-get install -y tshark")
    pytest.skip(why)


def _free_ports(count: int) -> list[int]:
    """Distinct free ports on 127.0.0.1, known before the capture starts."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for sock in sockets:
            sock.close()


class Capture:
    """dumpcap on ``lo`` for the given TCP ports, started and stopped deterministically.

    dumpcap writes the capture to a pipe, which it flushes packet by packet, and a
    thread collects it. Start and stop are marked by a token sent over a connection to
    the probe port (the last of ``ports``): the capture is live once the start token
    shows up in the stream, and complete once the end token does.
    """

    def __init__(self, path: Path, ports: list[int]) -> None:
        self.path = path
        self.ports = ports
        self.process: subprocess.Popen[bytes] | None = None
        self._data = bytearray()
        self._errors = bytearray()
        self._changed = threading.Condition()
        self._threads: list[threading.Thread] = []
        self._probe: socket.socket | None = None

    def start(self) -> None:
        dumpcap = shutil.which("dumpcap")
        if dumpcap is None or shutil.which("tshark") is None:
            _unavailable("tshark/dumpcap not installed")
        assert dumpcap is not None
        bpf = " or ".join(f"tcp port {port}" for port in self.ports)
        self.process = subprocess.Popen(
            [dumpcap, "-q", "-i", "lo", "-f", bpf, "-P", "-w", "-"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        assert self.process.stdout is not None and self.process.stderr is not None
        for stream, sink in (
            (self.process.stdout, self._data),
            (self.process.stderr, self._errors),
        ):
            thread = threading.Thread(target=self._pump, args=(stream, sink), daemon=True)
            thread.start()
            self._threads.append(thread)
        self._probe = socket.socket()
        self._probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._probe.bind(("127.0.0.1", self.ports[-1]))
        self._probe.listen()
        self._mark(b"DCMUPS-CAPTURE-START")

    def _pump(self, stream: IO[bytes], sink: bytearray) -> None:
        while chunk := stream.read1(65536):  # type: ignore[attr-defined]
            with self._changed:
                sink += chunk
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    def _mark(self, token: bytes) -> None:
        """Send ``token`` to the probe port until it appears in the captured stream."""
        assert self._probe is not None and self.process is not None
        for attempt in range(200):  # about 20 s at most
            if self.process.poll() is not None:
                _unavailable(
                    f"dumpcap cannot capture on lo: {self._errors.decode(errors='replace')}"
                )
            tagged = token + b"-%d" % attempt
            with socket.create_connection(("127.0.0.1", self.ports[-1]), timeout=5) as conn:
                peer, _ = self._probe.accept()
                conn.sendall(tagged)
                peer.recv(len(tagged))
                peer.close()
            if self._wait_for(tagged, 0.1):
                return
        pytest.fail(f"dumpcap never captured {token!r} on lo")

    def _wait_for(self, tagged: bytes, timeout: float) -> bool:
        with self._changed:
            return self._changed.wait_for(lambda: tagged in self._data, timeout=timeout)

    def stop(self) -> None:
        process = self.process
        if process is None:
            return
        self.process = None
        try:
            if process.poll() is None:
                self.process = process
                self._mark(b"DCMUPS-CAPTURE-END")
                self.process = None
        finally:
            if process.poll() is None:
                process.send_signal(signal.SIGINT)
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)
            for thread in self._threads:
                thread.join(5)
            if self._probe is not None:
                self._probe.close()
            self.path.write_bytes(bytes(self._data))


def tshark(path: Path, ports: list[int], *args: str) -> str:
    decode_as = [arg for port in ports for arg in ("-d", f"tcp.port=={port},dicom")]
    result = subprocess.run(
        ["tshark", "-n", "-r", str(path), *decode_as, *args],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.fixture
def capture(tmp_path: Path) -> Iterator[Capture]:
    ports = _free_ports(4)  # SCP, listener, plain server, capture probe
    cap = Capture(tmp_path / "ups.pcap", ports)
    cap.start()
    try:
        yield cap
    finally:
        cap.stop()


def _workitem() -> Dataset:
    ds = Dataset()
    ds.PatientName = "Doe^Jane"
    ds.PatientID = "P-1"
    ds.ProcedureStepLabel = "tshark check"
    ds.ScheduledProcedureStepStartDateTime = "20240102030405"
    return ds


async def _ups_workflow(scp_port: int, listener_port: int, tmp_path: Path) -> int:
    """Our SCU, SCP and listener through one UPS life cycle; returns events received."""
    options = SCPOptions(
        ae_title="UPSSCP",
        host="127.0.0.1",
        port=scp_port,
        db=tmp_path / "ups.db",
        remote_aes={"WATCHER": RemoteAE("WATCHER", "127.0.0.1", listener_port)},
        config=FAST,
        event_idle=0.2,
        retry_initial=0.1,
        retry_max=0.5,
        shutdown_flush=1.0,
        announce_status=False,
    )
    scu_options = SCUOptions(calling_ae_title="SCU", config=FAST)
    received = 0
    async with listen(
        f"WATCHER@127.0.0.1:{listener_port}", settings=ListenerSettings(config=FAST)
    ) as events:
        async with UPSSCP(options):
            async with ups.connect(f"UPSSCP@127.0.0.1:{scp_port}", scu_options) as scu:
                assert (await scu.echo()).status == 0
                iuid = (await scu.create(_workitem())).iuid
                assert iuid
                await scu.subscribe("WATCHER", iuid, deletion_lock=False)
                assert (await scu.get(iuid)).dataset is not None
                query = Dataset()
                query.ProcedureStepState = "SCHEDULED"
                query.SOPInstanceUID = ""
                found = scu.find(query)
                matches = [r async for r in found]
                assert len(matches) >= 1 and found.final is not None  # a match, then Success
                tuid = generate_uid()
                await scu.change_state(iuid, "IN PROGRESS", tuid)
                progress = Dataset()
                progress.ProcedureStepLabel = "tshark check, started"
                await scu.set(iuid, progress, transaction_uid=tuid)
            # Wait for the state report (and the subscription's initial report).
            async with asyncio.timeout(10):
                async for _event in events:
                    received += 1
                    if received >= 2:
                        break
    return received


def _create(request: Request, ctx: RequestContext) -> Response:
    assert isinstance(request, NCreateRQ)
    return NCreateRSP(request.message_id, 0x0000, UPS_PUSH, request.affected_sop_instance_uid)


async def _fragmented_exchange(port: int) -> None:
    """Our requestor and server with 256-byte PDUs: many fragments, PDVs packed and not."""
    policy = AcceptorPolicy(
        ae_titles=frozenset({"SERVER"}),
        supported={UPS_PUSH: SyntaxSupport((EXPLICIT_LE, IMPLICIT_LE))},
        max_pdata_length=256,
        implementation_class_uid="1.2.3.4",
    )
    server = await serve("127.0.0.1", port, policy, FAST, handlers={UPS_PUSH: _create})
    try:
        for pack in (True, False):
            config = AssociationConfig(
                accept_timeout=5.0, response_timeout=10.0, max_pdata_receive=512, pack_pdv=pack
            )
            rq = build_request("SERVER", "CLIENT", [(UPS_PUSH, (EXPLICIT_LE,))], config)
            association = await connect("127.0.0.1", port, rq, config)
            context = association.context_for(UPS_PUSH).context_id
            data = b"\x10\x00\x10\x00PN\x0a\x00Doe^Jane\x20\x20" * 200  # 2 KiB, explicit LE
            rsp = await association.request(
                NCreateRQ(1, UPS_PUSH, "1.2.826.0.1.3680043.2.1125.9", dataset=data), context
            )
            assert rsp.status == 0
            await association.release()
    finally:
        await server.close(grace=2.0)


async def test_tshark_finds_no_protocol_errors(capture: Capture, tmp_path: Path) -> None:
    scp_port, listener_port, plain_port, _ = capture.ports
    received = await _ups_workflow(scp_port, listener_port, tmp_path)
    await _fragmented_exchange(plain_port)
    capture.stop()
    assert received >= 2

    ports = capture.ports[:3]
    problems = tshark(
        capture.path,
        ports,
        "-Y",
        "_ws.malformed || _ws.expert.severity >= 0x00600000",
        "-T",
        "fields",
        "-e",
        "frame.number",
        "-e",
        "_ws.expert.message",
        "-e",
        "_ws.col.Info",
    )
    assert problems.strip() == "", f"tshark flagged:\n{problems}"

    pdu_types = Counter(
        line
        for field in tshark(capture.path, ports, "-T", "fields", "-e", "dicom.pdu.type").split()
        for line in field.split(",")
        if line
    )
    # Every PDU type of a normal life cycle, seen on the wire and decoded as DICOM.
    for kind in ("0x01", "0x02", "0x04", "0x05", "0x06"):
        assert pdu_types[kind] > 0, f"no PDU of type {kind} decoded: {pdu_types}"
    assert sum(pdu_types.values()) > 40
    commands = tshark(capture.path, ports, "-T", "fields", "-e", "dicom.tag.value.16u")
    assert commands  # command elements were decoded too
