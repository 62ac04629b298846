"""The sink's own NATS connection (``natslink``) against a real nats-server, and fakes.

What the sink relies on, checked on a real ``nats-server`` (``bench.servers``): a link is
subscribed when ``open_link`` returns, so what is published to its inbox reaches
``on_message``; wrong credentials fail at once with the server's reason; the server's
PINGs are answered, so an idle link is not dropped as stale; a server that hangs is found
by ``probe`` and the link dropped; an outage is one ``on_lost``, a ``close`` none.

What no real server will do is sent by a fake of our own (:class:`FakeServer`): garbage,
over-long lines, a TLS-only or header-less INFO, silence. Each costs a
``NatsLinkError`` or a dropped link, and every way a link ends releases its socket (the
fake sees the connection end) and leaves no task or timer behind.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from bench import servers
from tests.natsclient import require_nats
from ups.services.sinks.natslink import INBOX_SID, NatsLink, NatsLinkError, open_link
from ups.services.sinks.natsproto import MAX_LINE, Message, NatsAddress, parse_address

pytestmark = pytest.mark.timeout(60)

INBOX = b"_INBOX.natslink-test"
INFO = b'INFO {"server_id":"fake","headers":true,"max_payload":1048576}\r\n'
"""What the fake says first, as nats-server does (the fields the handshake reads)."""


@dataclass
class Seen:
    """What a link told its owner, in order."""

    messages: list[Message] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    lost: list[BaseException | None] = field(default_factory=list)


async def _open(address: NatsAddress, seen: Seen, timeout: float = 5.0) -> NatsLink:
    return await open_link(
        address,
        name="natslink-test",
        inbox=INBOX,
        timeout=timeout,
        on_message=seen.messages.append,
        on_error=seen.errors.append,
        on_lost=seen.lost.append,
    )


def _address(url: str) -> NatsAddress:
    address = parse_address(url)
    assert address is not None
    return address


async def _until(condition: Callable[[], object], timeout: float = 10.0) -> None:
    """Wait for what another process (or the loop's own callbacks) will make true."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


def _released(link: NatsLink) -> bool:
    """Whether asyncio has let the link's socket go (``connection_lost`` has run)."""
    return link._transport is None and link._probe is None


def _stopped(pid: int) -> bool:
    """Whether the process is stopped (state T in /proc): SIGSTOP has taken effect."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as f:
        return f.read().rsplit(")", 1)[1].split()[0] == "T"


@pytest.fixture
def nats_server() -> Iterator[servers.Nats]:
    require_nats()
    with servers.nats() as server:
        yield server


# --------------------------------------------------------------------------- real server


async def test_what_is_published_to_the_inbox_reaches_on_message_whole(
    nats_server: servers.Nats,
) -> None:
    import nats

    seen = Seen()
    link = await _open(_address(nats_server.url), seen)
    client = await nats.connect(nats_server.url)
    try:
        assert link.connected and link.info["headers"] is True
        assert link.reader.max_payload == link.info["max_payload"]  # the server's, not ours
        await client.publish("elsewhere", b"not for the link")
        await client.publish(INBOX.decode(), b"plain", reply="reply.to")
        await client.publish(INBOX.decode(), b"headed", headers={"Ups-Test": "yes"})
        await client.flush()
        await _until(lambda: len(seen.messages) == 2)
    finally:
        await client.close()
        link.close()
    plain, headed = seen.messages  # "elsewhere", published first, never came
    assert plain == Message(INBOX, INBOX_SID, b"reply.to", b"", b"plain")
    assert (headed.subject, headed.sid, headed.reply) == (INBOX, INBOX_SID, b"")
    assert headed.payload == b"headed"
    assert headed.headers.startswith(b"NATS/1.0\r\n") and headed.headers.endswith(b"\r\n\r\n")
    assert b"Ups-Test: yes\r\n" in headed.headers
    assert seen.errors == [] and seen.lost == []


@pytest.mark.parametrize(
    ("server_args", "right", "wrongs"),
    [
        # Characters a URL must escape, so that the escapes are checked end to end.
        (("--user", "ups@site", "--pass", "p:ss/w"), "ups%40site:p%3Ass%2Fw", ["ups%40site:x"]),
        (("--auth", "s3cr3t"), "s3cr3t", ["wrong"]),
    ],
    ids=["user-password", "token"],
)
async def test_right_credentials_connect_and_wrong_ones_fail_at_once_with_the_reason(
    server_args: tuple[str, ...], right: str, wrongs: list[str]
) -> None:
    require_nats()
    with servers.nats(*server_args) as server:
        host = f"127.0.0.1:{server.port}"
        link = await _open(_address(f"nats://{right}@{host}"), Seen())
        assert link.connected
        link.close()
        for url in [*(f"nats://{wrong}@{host}" for wrong in wrongs), f"nats://{host}"]:
            started = time.monotonic()
            with pytest.raises(NatsLinkError, match="Authorization Violation"):
                await _open(_address(url), Seen(), timeout=5.0)
            assert time.monotonic() - started < 1.0  # the server's answer, not the timeout


async def _unanswering_client(port: int) -> bytes:
    """All a client that never answers PING hears from the server before it is dropped."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        await reader.readline()  # INFO
        writer.write(b'CONNECT {"verbose":false}\r\nPING\r\n')
        return await asyncio.wait_for(reader.read(), 5.0)  # until the server closes
    finally:
        writer.close()
        await writer.wait_closed()


async def test_a_link_answers_the_servers_pings_and_is_not_dropped_as_stale(
    tmp_path: Path,
) -> None:
    require_nats()
    config = tmp_path / "ping.conf"
    config.write_text('ping_interval: "100ms"\nping_max: 2\n', encoding="ascii")
    with servers.nats("-c", str(config)) as server:
        seen = Seen()
        link = await _open(_address(server.url), seen)
        try:
            started, reads = time.monotonic(), link._heard
            # The control: on this server, a client that does not answer is dropped.
            assert b"-ERR 'Stale Connection'" in await _unanswering_client(server.port)
            # Time passing is the thing under test (ten ping intervals, at most two
            # unanswered allowed), not a wait for some event: there is none to wait on.
            await asyncio.sleep(max(0.0, 1.0 - (time.monotonic() - started)))
            assert link.connected and seen.lost == [] and seen.errors == []
            assert link._heard - reads >= 3  # the server did ping it, and more than twice
        finally:
            link.close()


async def test_probe_keeps_a_link_whose_server_answers_and_drops_one_whose_server_hangs(
    nats_server: servers.Nats,
) -> None:
    seen = Seen()
    link = await _open(_address(nats_server.url), seen)
    link.probe(0.2)
    await _until(lambda: link._probe is None)  # the check has run: the PONG came in time
    assert link.connected and seen.lost == []

    proc = nats_server.proc
    proc.send_signal(signal.SIGSTOP)  # alive, connected, silent
    try:
        await _until(lambda: _stopped(proc.pid))
        started = time.monotonic()
        link.probe(0.2)
        await _until(lambda: seen.lost)
        waited = time.monotonic() - started
    finally:
        proc.send_signal(signal.SIGCONT)
    assert 0.19 <= waited < 2.0
    assert len(seen.lost) == 1 and not link.connected and _released(link)
    link.probe(0.2)  # on a lost link: nothing to send, no timer armed
    link.close()
    assert link._probe is None and len(seen.lost) == 1


async def test_a_server_that_stops_is_one_on_lost_and_close_is_none(
    nats_server: servers.Nats,
) -> None:
    closed_seen, lost_seen = Seen(), Seen()
    closed = await _open(_address(nats_server.url), closed_seen)
    lost = await _open(_address(nats_server.url), lost_seen)
    for link in (closed, lost):
        link.probe(30.0)  # a timer each link must cancel as it ends
    closed.close()
    assert not closed.connected
    await _until(lambda: _released(closed))
    nats_server.stop()
    await _until(lambda: lost_seen.lost)
    assert not lost.connected and _released(lost)
    lost.close()  # after the loss: harmless
    assert closed_seen.lost == [] and len(lost_seen.lost) == 1


# --------------------------------------------------------------------------- fake servers


class FakeServer:
    """A NATS "server" of our own on 127.0.0.1: says what a test scripts, notes what it
    hears, and when the client's side of the connection ended.

    ``greeting`` is sent on connection; with ``handshake`` the client's first ``PING``
    is answered ``PONG``, which completes ``open_link``; ``then_close`` closes right after
    the greeting, as a server that refuses a client does.
    """

    def __init__(
        self, greeting: bytes, *, handshake: bool = False, then_close: bool = False
    ) -> None:
        self.greeting = greeting
        self.then_close = then_close
        self._pong_due = handshake
        self.heard = bytearray()
        self.ended = asyncio.Event()
        self._writer: asyncio.StreamWriter | None = None
        self._server: asyncio.Server | None = None
        self._handlers: list[asyncio.Task[Any]] = []

    @property
    def address(self) -> NatsAddress:
        assert self._server is not None
        return NatsAddress("127.0.0.1", self._server.sockets[0].getsockname()[1], "u", "pw")

    async def __aenter__(self) -> FakeServer:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._server is not None
        self._server.close()
        if self._writer is not None:
            self._writer.close()
        await asyncio.wait_for(asyncio.gather(*self._handlers), 5.0)
        await self._server.wait_closed()

    def send(self, data: bytes) -> None:
        assert self._writer is not None
        self._writer.write(data)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.append(task)
        self._writer = writer
        writer.write(self.greeting)
        if self.then_close:
            writer.close()
        try:
            while chunk := await reader.read(65536):
                self.heard += chunk
                if self._pong_due and b"PING\r\n" in self.heard:
                    self._pong_due = False
                    writer.write(b"PONG\r\n")
        except ConnectionResetError:
            pass  # ended as well
        finally:
            self.ended.set()
            writer.close()


def _only_this_task() -> bool:
    """No task left behind: the link makes none, and the fake's handlers have ended."""
    return asyncio.all_tasks() == {asyncio.current_task()}


async def _handshaken(fake: FakeServer, seen: Seen) -> NatsLink:
    link = await _open(fake.address, seen)
    assert link.connected
    assert fake.heard.startswith(b"CONNECT {") and fake.heard.endswith(b"PING\r\n")
    assert b"SUB %s %d\r\n" % (INBOX, INBOX_SID) in fake.heard
    return link


@pytest.mark.parametrize(
    ("greeting", "then_close", "reason"),
    [
        (INFO + b"HELLO\r\n", False, "unknown NATS operation"),
        (INFO + b"-ERR '" + b"x" * MAX_LINE, False, "longer than 4096"),
        (b'INFO {"tls_required":true,"headers":true}\r\n', False, "requires TLS"),
        (b'INFO {"headers":false}\r\n', False, "does not support headers"),
        (b"HTTP/1.1 400 Bad Request\r\n\r\n", False, "unknown NATS operation"),
        (b"INFO {\r\n", False, "not JSON"),
        (INFO, True, "connection closed"),
        (b"-ERR 'Maximum Connections Exceeded'\r\n", False, "Maximum Connections Exceeded"),
    ],
    ids=[
        "garbage",
        "over-long-line",
        "tls",
        "no-headers",
        "http",
        "info-not-json",
        "closed",
        "err-before-info",
    ],
)
async def test_a_handshake_a_nats_server_would_not_make_is_a_prompt_link_error(
    greeting: bytes, then_close: bool, reason: str | None
) -> None:
    seen = Seen()
    async with FakeServer(greeting, then_close=then_close) as fake:
        started = time.monotonic()
        with pytest.raises(NatsLinkError, match=reason):
            await _open(fake.address, seen, timeout=5.0)
        assert time.monotonic() - started < 1.0
        assert seen == Seen()  # no link was made, so none is lost
        await asyncio.wait_for(fake.ended.wait(), 5.0)  # the link let the connection go
        if b"tls_required" in greeting:
            assert b"pw" not in fake.heard  # no password sent in the clear
    assert _only_this_task()


async def test_a_server_that_never_says_info_is_a_link_error_after_the_timeout() -> None:
    seen = Seen()
    async with FakeServer(b"") as fake:
        started = time.monotonic()
        with pytest.raises(NatsLinkError, match="no NATS handshake within 0.3 s"):
            await _open(fake.address, seen, timeout=0.3)
        assert 0.29 <= time.monotonic() - started < 2.0
        assert seen == Seen()
        await asyncio.wait_for(fake.ended.wait(), 5.0)
        assert fake.heard == b""
    assert _only_this_task()


@pytest.mark.parametrize(
    "data",
    [
        b"HELLO\r\n",
        b"-ERR '" + b"x" * (MAX_LINE + 10),
        b"MSG %s 1 2000000\r\n" % INBOX,  # over the max_payload INFO announced
        b"MSG %s 1 3\r\nabcXY" % INBOX,
        b"HMSG %s 1 9 3\r\n" % INBOX,
    ],
    ids=["garbage", "over-long-line", "too-large", "no-crlf-after-payload", "bad-hmsg"],
)
async def test_garbage_on_an_established_link_drops_it_with_one_on_lost(data: bytes) -> None:
    seen = Seen()
    async with FakeServer(INFO, handshake=True) as fake:
        link = await _handshaken(fake, seen)
        fake.send(data)
        await _until(lambda: seen.lost)
        await asyncio.wait_for(fake.ended.wait(), 5.0)
        assert not link.connected and _released(link)
        link.close()
    assert len(seen.lost) == 1 and seen.messages == [] and seen.errors == []
    assert _only_this_task()


async def test_an_established_link_answers_ping_reports_err_and_keeps_going() -> None:
    seen = Seen()
    async with FakeServer(INFO, handshake=True) as fake:
        link = await _handshaken(fake, seen)
        fake.send(b"PING\r\n")
        await _until(lambda: fake.heard.endswith(b"PONG\r\n"))
        fake.send(b"-ERR 'Permissions Violation for Publish to \"ups.x\"'\r\n")
        fake.send(b"MSG %s 1 2\r\nok\r\n" % INBOX)  # the link still reads after the -ERR
        await _until(lambda: seen.messages)
        assert seen.errors == ['Permissions Violation for Publish to "ups.x"']
        assert seen.messages == [Message(INBOX, 1, b"", b"", b"ok")]
        assert link.connected and seen.lost == []
        link.close()
        await asyncio.wait_for(fake.ended.wait(), 5.0)
        await _until(lambda: _released(link))
    assert seen.lost == []
    assert _only_this_task()
