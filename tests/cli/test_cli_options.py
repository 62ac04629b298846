"""Every ``dcmups`` option that changes the wire, observed from the other side.

Association and DIMSE parameters are checked in what the pynetdicom SCP decoded (calling
AE, maximum PDU length, P-DATA-TF sizes and PDV counts, proposed contexts and transfer
syntaxes, user identity, asynchronous operations window, priority). Timers are checked
against raw socket peers on 127.0.0.1 that stop answering at a chosen point: a listener
whose backlog is full (-connectTO), one that accepts TCP and stays silent (-acceptTO), one
that associates and then never answers a request (-rspTO, -reaper, -soclosedelay) or a
release (-releaseTO). Socket options are read back from the real socket.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from io import StringIO
from pathlib import Path
from typing import Any

import pytest

import ups.net.association as association_module
from tests.cli.pynetdicom_scp import BIG_ENDIAN, EXPLICIT, IMPLICIT, PynetdicomUPSSCP
from tests.net.pki import PKI, make_pki
from ups.cli import main
from ups.dimse.fragment import encode_pdata
from ups.dimse.messages import CEchoRSP, decode_message, encode_command
from ups.net.tls import TLSOptions, server_context
from ups.pdu.codec import decode_pdu, encode_pdu
from ups.pdu.enums import ContextResult
from ups.pdu.items import PresentationContextAC, UserInformation
from ups.pdu.pdus import AAssociateAC, AAssociateRQ, PDataTF
from ups.services import uids

pytestmark = pytest.mark.timeout(30)


def dcmups(*argv: str) -> tuple[int, str]:
    out = StringIO()
    code = main(list(argv), out=out)
    return code, out.getvalue()


def timed(*argv: str) -> tuple[int, float]:
    start = time.monotonic()
    code, _ = dcmups(*argv)
    return code, time.monotonic() - start


# ---------------------------------------------------------------- raw peers


def _read_exact(conn: socket.socket, n: int) -> bytes | None:
    data = b""
    while len(data) < n:
        chunk = conn.recv(n - len(data))
        if not chunk:
            return None
        data += chunk
    return data


class RawPeer:
    """A one-connection peer on 127.0.0.1 that answers only what ``mode`` allows.

    ``silent``: accept TCP, never answer. ``mute``: accept the association, never answer a
    request. ``no-release``: answer C-ECHO, never answer A-RELEASE-RQ. It records the time
    each PDU type arrived and when the connection closed.
    """

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(1)
        self.sock.settimeout(10)
        self.events: list[tuple[float, int]] = []
        self.closed_at: float | None = None
        self.conn: socket.socket | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    @property
    def address(self) -> str:
        return f"RAW@127.0.0.1:{self.sock.getsockname()[1]}"

    def first(self, pdu_type: int) -> float:
        return next(t for t, kind in self.events if kind == pdu_type)

    def join(self) -> None:
        self.thread.join(10)
        self.sock.close()

    def stop(self) -> None:
        """End a connection the client may have left open (a silent peer never sees EOF)."""
        if self.conn is not None:
            with contextlib.suppress(OSError):
                self.conn.shutdown(socket.SHUT_RDWR)
        self.join()

    def _run(self) -> None:
        try:
            conn, _ = self.sock.accept()
        except OSError:
            return
        self.conn = conn
        with conn:
            conn.settimeout(10)
            try:
                self._serve(conn)
            except OSError:
                pass
            self.closed_at = time.monotonic()

    def _serve(self, conn: socket.socket) -> None:
        while True:
            header = _read_exact(conn, 6)
            if header is None:
                return
            kind, length = header[0], struct.unpack(">I", header[2:6])[0]
            body = _read_exact(conn, length)
            if body is None:
                return
            self.events.append((time.monotonic(), kind))
            if self.mode == "silent":
                continue
            pdu = decode_pdu(kind, body)
            if isinstance(pdu, AAssociateRQ):
                conn.sendall(encode_pdu(_accept_all(pdu)))
            elif isinstance(pdu, PDataTF) and self.mode == "no-release":
                command = b"".join(p.data for p in pdu.pdvs if p.is_command)
                request = decode_message(command, None)
                rsp = CEchoRSP(request.message_id, 0x0000, uids.VERIFICATION)  # type: ignore[union-attr]
                conn.sendall(encode_pdata(pdu.pdvs[0].context_id, encode_command(rsp), None, 16384))


def _accept_all(rq: AAssociateRQ) -> AAssociateAC:
    return AAssociateAC(
        rq.called_ae_title,
        rq.calling_ae_title,
        tuple(
            PresentationContextAC(pc.context_id, ContextResult.ACCEPTANCE, pc.transfer_syntaxes[0])
            for pc in rq.presentation_contexts
        ),
        UserInformation(max_length=16384, implementation_class_uid="1.2.3.4"),
    )


# ---------------------------------------------------------------- timers


def test_connect_timeout_against_a_full_backlog() -> None:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(0)
    port = server.getsockname()[1]
    fillers: list[socket.socket] = []
    try:
        while True:  # fill the accept queue until a connect no longer completes
            filler = socket.socket()
            filler.settimeout(0.3)
            fillers.append(filler)
            try:
                filler.connect(("127.0.0.1", port))
            except TimeoutError:
                break
            assert len(fillers) < 10
        code, elapsed = timed("echo", f"X@127.0.0.1:{port}", "-connectTO", "300")
    finally:
        for filler in fillers:
            filler.close()
        server.close()
    assert code == 3
    assert 0.25 < elapsed < 4


def test_accept_timeout_against_a_silent_acceptor(capsys: pytest.CaptureFixture[str]) -> None:
    peer = RawPeer("silent")
    code, elapsed = timed("echo", peer.address, "-acceptTO", "300")
    peer.stop()
    assert code == 3
    assert 0.25 < elapsed < 4
    assert "A-ASSOCIATE" in capsys.readouterr().err


def test_response_timeout_is_honoured(capsys: pytest.CaptureFixture[str]) -> None:
    peer = RawPeer("mute")
    code, elapsed = timed("get", peer.address, "-iuid", "1.2.3", "-rspTO", "300", "-reaper", "50")
    peer.join()
    assert code == 3
    assert 0.25 < elapsed < 4
    err = capsys.readouterr().err
    assert "N-GET" in err or "NGetRQ" in err or "response" in err.lower()
    assert peer.first(0x07) > peer.first(0x04)  # the overdue request aborted the association


@pytest.mark.parametrize("reaper_ms, slow", [(2000, True), (50, False)])
def test_reaper_period_decides_when_the_overdue_response_is_noticed(
    reaper_ms: int, slow: bool
) -> None:
    peer = RawPeer("mute")
    code, elapsed = timed(
        "get", peer.address, "-iuid", "1.2.3", "-rspTO", "100", "-reaper", str(reaper_ms)
    )
    peer.join()
    assert code == 3
    assert (elapsed > 1.5) is slow
    assert elapsed < 5


@pytest.mark.parametrize("delay_ms, lower, upper", [(700, 0.55, 2.5), (0, 0.0, 0.5)])
def test_so_close_delay_after_abort(delay_ms: int, lower: float, upper: float) -> None:
    peer = RawPeer("mute")
    code, _ = timed(
        "get",
        peer.address,
        "-iuid",
        "1.2.3",
        "-rspTO",
        "100",
        "-reaper",
        "50",
        "-soclosedelay",
        str(delay_ms),
    )
    peer.join()
    assert code == 3
    assert peer.closed_at is not None
    gap = peer.closed_at - peer.first(0x07)
    assert lower <= gap <= upper


def test_release_timeout_when_the_peer_never_answers_release() -> None:
    peer = RawPeer("no-release")
    code, elapsed = timed("echo", peer.address, "-releaseTO", "300")
    peer.join()
    assert peer.first(0x05)  # A-RELEASE-RQ was sent
    assert elapsed < 4  # not the 5 s default
    assert elapsed > 0.25
    assert code in (0, 3)


# ---------------------------------------------------------------- association parameters


@pytest.mark.parametrize("kb, expected", [("32", 32768), ("0", 0)])
def test_rcvpdulen_is_the_announced_maximum(scp: PynetdicomUPSSCP, kb: str, expected: int) -> None:
    assert dcmups("echo", scp.address, "-rcvpdulen", kb)[0] == 0
    assert scp.associations[-1].max_pdu == expected


def test_default_pdu_length_is_16kb(scp: PynetdicomUPSSCP) -> None:
    assert dcmups("echo", scp.address)[0] == 0
    assert scp.associations[-1].max_pdu == 16384


def test_sndpdulen_fragments_what_we_send(scp: PynetdicomUPSSCP) -> None:
    long = "x" * 9000
    args = ("create", scp.address, "-s", f"CommentsOnTheScheduledProcedureStep={long}")
    assert dcmups(*args, "-sndpdulen", "1")[0] == 0
    small = scp.associations[-1].pdata
    assert len(small) >= 9
    assert all(length <= 1024 + 6 for length, _ in small)
    assert dcmups(*args)[0] == 0
    default = scp.associations[-1].pdata
    assert len(default) == 1  # command and data packed in one 16 KB P-DATA-TF
    stored = scp.last("N-CREATE").dataset
    assert stored is not None and stored.CommentsOnTheScheduledProcedureStep == long


def test_pdv1_sends_one_pdv_per_pdu(scp: PynetdicomUPSSCP) -> None:
    assert dcmups("create", scp.address)[0] == 0
    assert [n for _, n in scp.associations[-1].pdata] == [2]
    assert dcmups("create", scp.address, "-pdv1")[0] == 0
    assert [n for _, n in scp.associations[-1].pdata] == [1, 1]


@pytest.mark.parametrize(
    "flag, first, only",
    [
        (None, EXPLICIT, False),
        ("-ivrle", IMPLICIT, True),
        ("--explicit-vr", EXPLICIT, False),
        ("--big-endian", BIG_ENDIAN, False),
        ("--deflated", uids.DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN, False),
    ],
)
def test_transfer_syntax_options(
    scp: PynetdicomUPSSCP, flag: str | None, first: str, only: bool
) -> None:
    argv = ["create", scp.address, "-s", "PatientID=TS"]
    if flag:
        argv.append(flag)
    assert dcmups(*argv)[0] == 0
    syntaxes = scp.associations[-1].contexts[0][1]
    assert syntaxes[0] == first
    assert (syntaxes == [IMPLICIT]) is only
    rq = scp.last("N-CREATE")
    assert rq.transfer_syntax in syntaxes  # pynetdicom picks by its own preference
    assert rq.dataset is not None and rq.dataset.PatientID == "TS"


def test_max_ops_window(scp: PynetdicomUPSSCP) -> None:
    assert dcmups("echo", scp.address)[0] == 0
    assert scp.associations[-1].async_ops == (1, 1)
    code, _ = dcmups("echo", scp.address, "--max-ops-invoked", "4", "--max-ops-performed", "0")
    assert code == 0
    assert scp.associations[-1].async_ops == (4, 0)


@pytest.mark.parametrize(
    "argv, expected",
    [
        (["-username", "alice"], (1, b"alice", b"", False)),
        (["-username", "alice", "-passcode", "pw", "-uidnegrsp"], (2, b"alice", b"pw", True)),
        (["--jwt", "eyJ.abc.def"], (5, b"eyJ.abc.def", b"", False)),
    ],
)
def test_user_identity(
    scp: PynetdicomUPSSCP, argv: list[str], expected: tuple[int, bytes, bytes, bool]
) -> None:
    assert dcmups("echo", scp.address, *argv)[0] == 0
    assert scp.associations[-1].user_identity == expected


def test_saml_identity_from_file(scp: PynetdicomUPSSCP, tmp_path: Path) -> None:
    assertion = tmp_path / "saml.xml"
    assertion.write_bytes(b"<saml:Assertion/>")
    assert dcmups("echo", scp.address, "--saml", str(assertion), "-uidnegrsp")[0] == 0
    assert scp.associations[-1].user_identity == (4, b"<saml:Assertion/>", b"", True)


def test_calling_ae_title_from_device_then_aet(scp: PynetdicomUPSSCP) -> None:
    assert dcmups("echo", scp.address)[0] == 0
    assert scp.associations[-1].calling_ae == "DCMUPSSCU"
    assert dcmups("echo", scp.address, "-device", "MYDEVICE")[0] == 0
    assert scp.associations[-1].calling_ae == "MYDEVICE"
    scp.add_item("1.2.7.1")
    code, _ = dcmups("subscribe", scp.address, "-aet", "RECEIVER", "-device", "MYDEVICE")
    assert code == 0
    assert scp.associations[-1].calling_ae == "RECEIVER"


@pytest.mark.parametrize(
    "flag, priority", [(None, 0), ("HIGH", 1), ("LOW", 2), ("NORMAL", 0), ("high", 1)]
)
def test_findprior(scp: PynetdicomUPSSCP, flag: str | None, priority: int) -> None:
    argv = ["find", scp.address] + (["-findprior", flag] if flag else [])
    assert dcmups(*argv)[0] == 0
    assert scp.last("C-FIND").command["Priority"] == priority


@pytest.mark.parametrize(
    "flag, abstract",
    [("-upspush", uids.UPS_PUSH), ("-upspull", uids.UPS_PULL), ("-upswatch", uids.UPS_WATCH)],
)
def test_forced_sop_class(scp: PynetdicomUPSSCP, flag: str, abstract: str) -> None:
    scp.add_item("1.2.7.2")
    assert dcmups("get", scp.address, "-iuid", "1.2.7.2", flag)[0] == 0
    rq = scp.last("N-GET")
    assert rq.abstract_syntax == abstract
    assert rq.command["RequestedSOPClassUID"] == uids.UPS_PUSH
    assert {a for a, _ in rq.assoc.contexts} - {uids.VERIFICATION} == {
        abstract,
        {uids.UPS_PUSH: uids.UPS_PUSH_TRIAL, uids.UPS_PULL: uids.UPS_PULL_TRIAL}.get(
            abstract, uids.UPS_WATCH_TRIAL
        ),
    }


def test_find_forced_to_watch(scp: PynetdicomUPSSCP) -> None:
    assert dcmups("find", scp.address, "-upswatch", "-state", "SCHEDULED")[0] == 0
    rq = scp.last("C-FIND")
    assert rq.abstract_syntax == uids.UPS_WATCH
    assert rq.command["AffectedSOPClassUID"] == uids.UPS_WATCH


@pytest.mark.parametrize(
    "flag, push",
    [("--trial", uids.UPS_PUSH_TRIAL), ("--final", uids.UPS_PUSH)],
)
def test_trial_or_final_family(scp: PynetdicomUPSSCP, flag: str, push: str) -> None:
    assert dcmups("create", scp.address, flag)[0] == 0
    rq = scp.last("N-CREATE")
    assert rq.abstract_syntax == push
    assert rq.command["AffectedSOPClassUID"] == push
    other = uids.UPS_PUSH if push == uids.UPS_PUSH_TRIAL else uids.UPS_PUSH_TRIAL
    assert other not in {a for a, _ in rq.assoc.contexts}


# ---------------------------------------------------------------- socket options


@pytest.fixture()
def socket_options(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, int]]:
    """Read back TCP_NODELAY, SO_SNDBUF and SO_RCVBUF of each connection the CLI makes."""
    seen: list[dict[str, int]] = []
    original: Callable[..., Any] = association_module.Association.connection_made

    def spy(self: Any, transport: Any) -> None:
        original(self, transport)
        sock = transport.get_extra_info("socket")
        seen.append(
            {
                "nodelay": sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY),
                "sndbuf": sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF),
                "rcvbuf": sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF),
            }
        )

    monkeypatch.setattr(association_module.Association, "connection_made", spy)
    return seen


def test_socket_buffers(scp: PynetdicomUPSSCP, socket_options: list[dict[str, int]]) -> None:
    assert dcmups("echo", scp.address, "-sosndbuf", "64", "-sorcvbuf", "48")[0] == 0
    (tuned,) = socket_options
    # Linux doubles the value set; other systems report it as set.
    assert tuned["sndbuf"] in (64 * 1024, 2 * 64 * 1024)
    assert tuned["rcvbuf"] in (48 * 1024, 2 * 48 * 1024)


def test_tcpdelay_clears_tcp_nodelay(
    scp: PynetdicomUPSSCP, socket_options: list[dict[str, int]]
) -> None:
    assert dcmups("echo", scp.address)[0] == 0
    assert dcmups("echo", scp.address, "-tcpdelay")[0] == 0
    default, delayed = socket_options
    assert default["nodelay"]
    assert not delayed["nodelay"]


# ---------------------------------------------------------------- TLS


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PKI:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def tls_scp(pki: PKI) -> Iterator[PynetdicomUPSSCP]:
    ctx = server_context(
        TLSOptions(
            enabled=True,
            keystore=pki.server.pem,
            keystore_password=pki.password,
            truststore=pki.ca_pem,
            truststore_password=pki.password,
        )
    )
    scp = PynetdicomUPSSCP().start(ssl_context=ctx)
    try:
        yield scp
    finally:
        scp.stop()


def _tls_args(pki: PKI, *extra: str) -> list[str]:
    return [
        "-tls",
        "AES",
        "-keystore",
        str(pki.client.pem),
        "-keystorepw",
        pki.password,
        "-truststore",
        str(pki.ca_pem),
        "-truststorepw",
        pki.password,
        *extra,
    ]


def test_tls_echo(tls_scp: PynetdicomUPSSCP, pki: PKI) -> None:
    code, out = dcmups("echo", tls_scp.address, *_tls_args(pki, "-tls1", "-no_ssl2", "-no_ssl3"))
    assert code == 0, out
    assert tls_scp.associations[-1].calling_ae == "DCMUPSSCU"


def test_tls_p12_stores_and_key_password(tls_scp: PynetdicomUPSSCP, pki: PKI) -> None:
    argv = _tls_args(pki)
    argv[argv.index(str(pki.client.pem))] = str(pki.client.p12)
    argv[argv.index(str(pki.ca_pem))] = str(pki.ca_p12)
    assert dcmups("echo", tls_scp.address, *argv, "-keypw", pki.password)[0] == 0


def test_plain_client_against_tls_scp_fails_cleanly(
    tls_scp: PynetdicomUPSSCP, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _ = dcmups("echo", tls_scp.address, "-acceptTO", "1000")
    assert code == 3
    assert capsys.readouterr().err.startswith("dcmups: ")


@pytest.mark.parametrize(
    "change, fragment",
    [
        (("-truststorepw", "wrong"), "truststore"),
        (("-keystorepw", "wrong"), "keystore"),
        (("-ssl3",), "SSLv3"),
        (("-tls", "3DES"), "3DES"),
        (("-tls", "NULL"), "NULL"),
    ],
)
def test_tls_refusals(
    tls_scp: PynetdicomUPSSCP,
    pki: PKI,
    capsys: pytest.CaptureFixture[str],
    change: tuple[str, ...],
    fragment: str,
) -> None:
    argv = _tls_args(pki)
    argv[argv.index(str(pki.ca_pem))] = str(pki.ca_p12)  # a PEM truststore has no password
    if change[0] in argv:
        index = argv.index(change[0])
        argv[index : index + len(change)] = list(change)
    else:
        argv += list(change)
    code, _ = dcmups("echo", tls_scp.address, *argv)
    err = capsys.readouterr().err
    assert code == 2  # a local TLS mistake, found before connecting
    assert fragment.lower() in err.lower()
    assert "Traceback" not in err


def test_tls_client_with_untrusted_server(pki: PKI, tls_scp: PynetdicomUPSSCP) -> None:
    argv = _tls_args(pki)
    argv[argv.index(str(pki.ca_pem))] = str(pki.other_ca_pem)
    assert dcmups("echo", tls_scp.address, *argv)[0] == 3
