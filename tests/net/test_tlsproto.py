"""ups.net.tlsproto: refused handshakes send their alert and log why, on both event loops.

Our acceptor (``ups.net.server``) runs :class:`TLSProtocol` for every TLS connection. Each
test serves on 127.0.0.1 and plays a client that is refused; the client is Python's
blocking ``ssl`` in a thread (so what it sees does not depend on the loop under test), and
what it sees is the alert the server sent. Every test runs on asyncio's loop and on uvloop
(when installed), each in its own ``asyncio.Runner``.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import logging
import os
import socket
import ssl
import warnings
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.net.conftest import VERIFICATION, make_config, make_policy
from tests.net.pki import PKI, make_pki
from ups.net import tlsproto
from ups.net.errors import ConnectFailed, NetTimeout
from ups.net.requestor import build_request, connect
from ups.net.server import Server, serve
from ups.net.tls import TLSOptions
from ups.net.tlsproto import TLSProtocol

pytestmark = pytest.mark.timeout(30)

LOOPS = ["asyncio", "uvloop"]


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PKI:
    return make_pki(tmp_path_factory.mktemp("tlsproto"))


def on_loop(name: str, main: Callable[[], Awaitable[None]]) -> None:
    """Run ``main()`` on a fresh loop of the given kind."""
    if name == "uvloop":
        if importlib.util.find_spec("uvloop") is None:
            pytest.skip("uvloop is not installed")
        import uvloop

        factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    else:
        factory = asyncio.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(main())  # type: ignore[arg-type]


@contextmanager
def refusals(caplog: pytest.LogCaptureFixture) -> Iterator[list[str]]:
    """The ``TLS handshake from ...`` lines the server logs inside the block."""
    lines: list[str] = []
    caplog.set_level(logging.INFO, logger="ups.net")
    start = len(caplog.records)
    try:
        yield lines
    finally:
        lines += [
            r.getMessage()
            for r in caplog.records[start:]
            if r.getMessage().startswith("TLS handshake from")
        ]


async def tls_server(pki: PKI, **overrides: Any) -> Server:
    options = pki.server_options(handshake_timeout=5.0, **overrides)
    return await serve("127.0.0.1", 0, make_policy(), make_config(tls=options))


def client_context(
    pki: PKI, cert: Path | None = None, version: ssl.TLSVersion | None = None
) -> ssl.SSLContext:
    """A plain Python client: trusts our test CA, optionally sends ``cert``."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.load_verify_locations(pki.ca_pem)
    if cert is not None:
        ctx.load_cert_chain(cert, password=pki.password)
    if version is not None:
        ctx.minimum_version = ctx.maximum_version = version
    return ctx


def blocking_client(port: int, ctx: ssl.SSLContext) -> str:
    """Handshake, send a byte, read: the SSL error reason the client ends with, or "ok".

    In TLS 1.3 the server judges the client certificate after the client has finished
    its handshake, so the server's alert shows up on the first read.
    """
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        try:
            with ctx.wrap_socket(raw) as tls:
                tls.sendall(b"\x00")
                data = tls.recv(100)
                return "ok" if data else "eof"
        except ssl.SSLError as exc:
            return str(exc.reason)
        except OSError as exc:
            return type(exc).__name__


async def refused_by(server: Server, ctx: ssl.SSLContext) -> str:
    try:
        return await asyncio.to_thread(blocking_client, server.port, ctx)
    finally:
        await server.close(grace=1.0)


# ------------------------------------------------------------------ the acceptor's refusals


@pytest.mark.parametrize("loop", LOOPS)
@pytest.mark.parametrize(
    ("version", "alert", "offered"),
    [
        (ssl.TLSVersion.TLSv1_3, "TLSV13_ALERT_CERTIFICATE_REQUIRED", "TLS 1.3"),
        (ssl.TLSVersion.TLSv1_2, "SSLV3_ALERT_HANDSHAKE_FAILURE", "TLS 1.2"),
    ],
)
def test_no_client_certificate(
    pki: PKI,
    caplog: pytest.LogCaptureFixture,
    loop: str,
    version: ssl.TLSVersion,
    alert: str,
    offered: str,
) -> None:
    async def main() -> None:
        with refusals(caplog) as lines:
            seen = await refused_by(await tls_server(pki), client_context(pki, version=version))
        assert seen == alert  # the alert reached the client: not an EOF
        (line,) = lines
        assert line.startswith("TLS handshake from 127.0.0.1:")
        assert "refused: no client certificate" in line and f"offered {offered}" in line

    on_loop(loop, main)


@pytest.mark.parametrize("loop", LOOPS)
def test_client_certificate_from_unknown_ca(
    pki: PKI, caplog: pytest.LogCaptureFixture, loop: str
) -> None:
    async def main() -> None:
        with refusals(caplog) as lines:
            ctx = client_context(pki, cert=pki.other_client.pem)
            seen = await refused_by(await tls_server(pki), ctx)
        assert seen == "TLSV1_ALERT_UNKNOWN_CA"
        (line,) = lines
        assert "refused: the client certificate is from an unknown CA" in line

    on_loop(loop, main)


@pytest.mark.parametrize("loop", LOOPS)
def test_expired_client_certificate(pki: PKI, caplog: pytest.LogCaptureFixture, loop: str) -> None:
    async def main() -> None:
        with refusals(caplog) as lines:
            ctx = client_context(pki, cert=pki.expired_client.pem)
            seen = await refused_by(await tls_server(pki), ctx)
        assert seen == "SSLV3_ALERT_CERTIFICATE_EXPIRED"
        (line,) = lines
        assert "refused: the client certificate has expired" in line

    on_loop(loop, main)


@pytest.mark.parametrize("loop", LOOPS)
def test_tls11_client(pki: PKI, caplog: pytest.LogCaptureFixture, loop: str) -> None:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            ctx = client_context(pki, version=ssl.TLSVersion.TLSv1_1)
            ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
    except (ValueError, ssl.SSLError) as exc:
        pytest.skip(f"local OpenSSL cannot build a TLS 1.1 client: {exc}")

    async def main() -> None:
        with refusals(caplog) as lines:
            seen = await refused_by(await tls_server(pki), ctx)
        assert seen in ("TLSV1_ALERT_PROTOCOL_VERSION", "UNSUPPORTED_PROTOCOL")
        (line,) = lines
        assert "no protocol version in common" in line and "offered TLS 1.1" in line

    on_loop(loop, main)


@pytest.mark.parametrize("loop", LOOPS)
def test_plain_dicom_on_the_tls_port(pki: PKI, caplog: pytest.LogCaptureFixture, loop: str) -> None:
    async def main() -> None:
        server = await tls_server(pki)
        rq = b"\x01\x00\x00\x00\x00\x44" + bytes(0x44)  # an A-ASSOCIATE-RQ header
        with refusals(caplog) as lines:
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
                writer.write(rq)
                async with asyncio.timeout(10):
                    answer = await reader.read()  # to EOF: the server closes
                writer.close()
            finally:
                await server.close(grace=1.0)
        assert not answer.startswith(b"\x02")  # never an A-ASSOCIATE-AC in clear
        (line,) = lines
        assert "not TLS: the peer sent a plain DICOM A-ASSOCIATE-RQ" in line

    on_loop(loop, main)


@pytest.mark.parametrize("loop", LOOPS)
def test_refused_connection_lingers_until_the_peer_or_the_server_closes(
    pki: PKI, loop: str
) -> None:
    """The alert and a FIN go out at once; the socket waits for the peer, within bounds."""

    async def main() -> None:
        server = await tls_server(pki)
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"\x16\x03\x01\x00\x08" + b"\x01\x00\x00\x04" + bytes(4))  # bad hello
        try:
            async with asyncio.timeout(10):
                answer = await reader.read()  # alert, then EOF from the server's FIN
                assert answer[:1] == b"\x15"  # a TLS alert record
                assert server._lingering  # noqa: SLF001 - waiting for us to close
                await server.close(grace=1.0)  # ... or for the server to stop
                assert not server._lingering  # noqa: SLF001
        finally:
            writer.close()

    on_loop(loop, main)


def test_linger_is_bounded() -> None:
    assert 0 < tlsproto.REFUSAL_LINGER <= 2.0


def test_asyncio_internals_it_relies_on_are_there() -> None:
    """asyncio.sslproto is private: fail loudly here, not silently in production."""
    from asyncio import sslproto

    cls = sslproto.SSLProtocol
    methods = ("_on_handshake_complete", "_check_handshake_timeout", "_fatal_error")
    for name in (*methods, "buffer_updated", "connection_lost"):
        assert callable(getattr(cls, name, None)), name
    assert hasattr(sslproto.SSLProtocolState, "DO_HANDSHAKE")
    loop = asyncio.new_event_loop()
    try:
        waiter: asyncio.Future[Any] | None = None  # asyncio allows it; typeshed does not
        probe = cls(loop, asyncio.Protocol(), ssl.create_default_context(), waiter)  # type: ignore[arg-type]
        for name in ("_outgoing", "_ssl_buffer_view", "_state", "_transport", "_server_side"):
            assert hasattr(probe, name), name
        probe.connection_lost(None)  # what TLSProtocol calls to clean up; closes the probe
    finally:
        loop.close()


# ------------------------------------------------------------------ our requestor's messages


async def failed_connect(port: int, tls: TLSOptions) -> str:
    config = make_config(tls=tls)
    rq = build_request("SCP", "SCU", [(VERIFICATION, ("1.2.840.10008.1.2",))], config)
    with pytest.raises(ConnectFailed) as info:
        association = await connect("127.0.0.1", port, rq, config)
        association.abort()
    return str(info.value)


@pytest.mark.parametrize("loop", LOOPS)
def test_requestor_names_the_cause(pki: PKI, loop: str) -> None:
    async def main() -> None:
        server = await tls_server(pki)
        where = f"TLS handshake with 127.0.0.1:{server.port} failed: "
        try:
            untrusted = await failed_connect(
                server.port, pki.client_options(truststore=pki.other_ca_pem)
            )
            no_cert = await failed_connect(server.port, pki.client_options(keystore=None))
            wrong_ca = await failed_connect(
                server.port, pki.client_options(keystore=pki.other_client.pem)
            )
        finally:
            await server.close(grace=1.0)
        assert untrusted.startswith(where + "the server certificate is from an unknown CA")
        assert "check -truststore" in untrusted
        assert no_cert.startswith(where + "the server refused the handshake")
        assert "certificate required" in no_cert and "-keystore" in no_cert
        # TLS 1.3: our side had finished its handshake; the refusal came as an alert.
        assert wrong_ca.startswith(where + "the server refused our certificate")
        assert "unknown CA" in wrong_ca

    on_loop(loop, main)


@pytest.mark.parametrize("loop", LOOPS)
def test_requestor_on_a_plain_port(pki: PKI, loop: str) -> None:
    async def main() -> None:
        plain = await serve("127.0.0.1", 0, make_policy(), make_config())
        port = plain.port
        try:
            message = await failed_connect(port, pki.client_options())
        finally:
            await plain.close(grace=1.0)
        assert message.startswith(f"TLS handshake with 127.0.0.1:{port} failed: ")
        assert "plain DICOM port" in message and "cannot connect" not in message

    on_loop(loop, main)


@pytest.mark.parametrize("loop", LOOPS)
def test_requestor_against_a_server_without_bcp195_suites(pki: PKI, loop: str) -> None:
    """A TLS 1.2 server that offers only CBC suites (the retired PS3.15 AES profile)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_ciphers("ECDHE-ECDSA-AES128-SHA:ECDHE-ECDSA-AES256-SHA")
    ctx.load_cert_chain(pki.server.pem, password=pki.password)

    async def main() -> None:
        loop = asyncio.get_running_loop()

        def refusing() -> TLSProtocol:  # asyncio's own TLS server would drop the alert
            return TLSProtocol(
                loop, asyncio.Protocol(), ctx, server_side=True, handshake_timeout=5.0
            )

        server = await loop.create_server(refusing, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        try:
            message = await failed_connect(port, pki.client_options())
        finally:
            server.close()
            await server.wait_closed()
        assert "no cipher suite in common" in message, message

    on_loop(loop, main)


def open_files() -> list[str]:
    """What this process's descriptors point at (Linux /proc)."""
    found = []
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            found.append(os.readlink(f"/proc/self/fd/{fd}"))
    return found


@pytest.mark.parametrize("loop", LOOPS)
def test_refusals_leave_nothing_open(pki: PKI, loop: str) -> None:
    """30 refused clients, some that stay silent after their alert: no descriptor remains."""

    async def main() -> None:
        server = await tls_server(pki)
        no_cert = client_context(pki)
        # A first refusal lets the loop open what it keeps for good (uvloop: /dev/null).
        assert await asyncio.to_thread(blocking_client, server.port, no_cert) != "ok"
        before = open_files()
        for _ in range(20):
            assert await asyncio.to_thread(blocking_client, server.port, no_cert) != "ok"
        silent = []
        for _ in range(10):  # a bad hello, then never read, never close
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            writer.write(b"\x16\x03\x01\x00\x04\x01\x00\x00\x00")
            silent.append(writer)
        async with asyncio.timeout(10):
            while len(server._lingering) < len(silent):  # noqa: SLF001
                await asyncio.sleep(0.01)
        await server.close(grace=1.0)
        for writer in silent:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()
        assert not server._lingering  # noqa: SLF001
        after = open_files()
        assert not Counter(after) - Counter(before)

    on_loop(loop, main)


@pytest.mark.parametrize("loop", LOOPS)
def test_requestor_handshake_timeout_names_tls(pki: PKI, loop: str) -> None:
    """A peer that accepts TCP and never answers: the TLS handshake, not TCP, timed out."""

    async def main() -> None:
        accepted: list[asyncio.StreamWriter] = []

        async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            accepted.append(writer)

        server = await asyncio.start_server(silent, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        config = make_config(tls=pki.client_options(handshake_timeout=0.3))
        rq = build_request("SCP", "SCU", [(VERIFICATION, ("1.2.840.10008.1.2",))], config)
        try:
            with pytest.raises(NetTimeout) as info:
                await connect("127.0.0.1", port, rq, config)
        finally:
            for writer in accepted:
                writer.close()
            server.close()
            await server.wait_closed()
        assert (
            str(info.value)
            == f"TLS handshake with 127.0.0.1:{port} timed out after 0.3 s (-acceptTO)"
        )

    on_loop(loop, main)
