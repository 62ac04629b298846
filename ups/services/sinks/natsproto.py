"""The NATS client protocol, sans I/O: the few commands a publisher sends, and a reader.

The sink's publishing connection (:mod:`ups.services.sinks.natslink`) speaks this; nats-py
is kept for the JetStream API (creating and checking the stream), where its cost does not
matter. A publisher needs little of the protocol: ``CONNECT``, ``SUB`` for its inbox,
``HPUB`` (made by :mod:`~ups.services.sinks.messages`), ``PING``/``PONG``; and from the
server ``INFO``, ``MSG``/``HMSG`` (the acknowledgements), ``PING``, ``PONG``, ``+OK`` and
``-ERR``. Each line ends in CR LF; a message's payload follows its line, byte counted.

Why a reader of our own: an acknowledgement through nats-py goes through its parser's
regular expressions, a ``Msg`` object, an ``asyncio.Queue`` and the subscription's task
before a callback sees it; here a read's acknowledgements come out of one pass over the
bytes (see the closing note of issue 13 for the figures).

Bounds: a line is at most ``max_line`` bytes (the server's own default for a client's
control line is 4 KiB) and a message at most ``max_payload`` bytes, so a broker that
sends garbage costs a :class:`NatsProtocolError`, never unbounded memory.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Final
from urllib.parse import unquote, urlsplit

from ups.pdu.fastinit import fast_new
from ups.services.errors import UPSError

__all__ = [
    "DEFAULT_PORT",
    "PING",
    "PONG",
    "Err",
    "Info",
    "Message",
    "NatsAddress",
    "NatsProtocolError",
    "NatsReader",
    "Ok",
    "Ping",
    "Pong",
    "ServerOp",
    "connect_command",
    "parse_address",
    "sub_command",
]

DEFAULT_PORT: Final = 4222
PING: Final = b"PING\r\n"
PONG: Final = b"PONG\r\n"
MAX_LINE: Final = 4096
"""Longest line the reader accepts (nats-server's ``max_control_line`` default)."""
_CRLF: Final = b"\r\n"


class NatsProtocolError(UPSError):
    """The broker sent what the NATS client protocol does not allow, or too much of it."""


@dataclass(frozen=True, slots=True)
class NatsAddress:
    """Where a plain publishing connection goes, and the credentials the URL carries."""

    host: str
    port: int
    user: str | None = None
    password: str | None = None
    token: str | None = None


def parse_address(url: str) -> NatsAddress | None:
    """``nats://[user[:password]@ | token@]host[:port]`` as an address, else None.

    None means "not for the plain connection": TLS (``tls://``), a list of servers, a
    websocket. The sink then publishes through nats-py, which handles those.
    """
    if "," in url:
        return None
    parts = urlsplit(url if "://" in url else f"nats://{url}")
    if parts.scheme != "nats" or not parts.hostname or parts.path not in ("", "/"):
        return None
    try:
        port = parts.port or DEFAULT_PORT
    except ValueError:
        return None
    user = unquote(parts.username) if parts.username is not None else None
    password = unquote(parts.password) if parts.password is not None else None
    if not user and password is None:
        user = None  # nats://@host: no credentials
    if user is not None and password is None:
        return NatsAddress(parts.hostname, port, token=user)
    return NatsAddress(parts.hostname, port, user, password)


def connect_command(address: NatsAddress, name: str, version: str) -> bytes:
    """``CONNECT`` for a publisher: headers (HPUB, and no-responders answers), no ``+OK``."""
    options: dict[str, object] = {
        "verbose": False,
        "pedantic": False,
        "tls_required": False,
        "name": name,
        "lang": "python-dcmups",
        "version": version,
        "protocol": 1,
        "headers": True,
        "no_responders": True,
    }
    if address.token is not None:
        options["auth_token"] = address.token
    if address.user is not None:
        options["user"] = address.user
        options["pass"] = address.password or ""
    return b"CONNECT %s\r\n" % json.dumps(options, separators=(",", ":")).encode("utf-8")


def sub_command(subject: bytes, sid: int) -> bytes:
    return b"SUB %s %d\r\n" % (subject, sid)


@dataclass(frozen=True, slots=True)
class Info:
    """``INFO``: the server's facts (``max_payload``, ``headers``, ``tls_required``...)."""

    fields: dict[str, object]


@dataclass(frozen=True, slots=True)
class Message:
    """``MSG`` or ``HMSG``: ``headers`` is the header block (empty for ``MSG``)."""

    subject: bytes
    sid: int
    reply: bytes
    headers: bytes
    payload: bytes


@dataclass(frozen=True, slots=True)
class Ping:
    """The server checks we are alive: answer ``PONG``."""


@dataclass(frozen=True, slots=True)
class Pong:
    """The answer to our ``PING``."""


@dataclass(frozen=True, slots=True)
class Ok:
    """``+OK``: sent only to a client that asked for ``verbose`` (this one does not)."""


@dataclass(frozen=True, slots=True)
class Err:
    """``-ERR``: the server's complaint (most are followed by it closing the connection)."""

    text: str


ServerOp = Info | Message | Ping | Pong | Ok | Err

_PING_OP: Final = Ping()
_PONG_OP: Final = Pong()
_OK_OP: Final = Ok()
_new_message = fast_new(Message)


class NatsReader:
    """Cuts the server's byte stream into :data:`ServerOp` values, one pass per read."""

    __slots__ = ("_buffer", "max_payload")

    def __init__(self, max_payload: int = 1024 * 1024) -> None:
        self._buffer = b""
        self.max_payload = max_payload
        """Largest message accepted; the sink sets the server's own ``max_payload``."""

    def feed(self, data: bytes) -> list[ServerOp]:
        """What ``data`` completes; a partial line or message waits for the next read."""
        buffer = self._buffer + data if self._buffer else data
        ops: list[ServerOp] = []
        append = ops.append
        find = buffer.find
        startswith = buffer.startswith
        size = len(buffer)
        at = 0
        while at < size:
            end = find(_CRLF, at)
            if end < 0:
                # A last CR may be half of the line's end: the LF is in the next read.
                if size - at > MAX_LINE + buffer.endswith(b"\r"):
                    raise NatsProtocolError("NATS line longer than 4096 bytes")
                break
            if end - at > MAX_LINE:
                raise NatsProtocolError("NATS line longer than 4096 bytes")
            if startswith(b"MSG ", at):  # an acknowledgement: the per-event path
                fields = buffer[at + 4 : end].split()
                try:
                    if len(fields) == 3:
                        subject, sid, total_text = fields
                        reply = b""
                    else:
                        subject, sid, reply, total_text = fields
                    total = int(total_text)
                    number = int(sid)
                except ValueError:
                    raise _malformed(buffer, at, end) from None
                if not 0 <= total <= self.max_payload:
                    raise NatsProtocolError(f"NATS message of {total} bytes")
                start = end + 2
                stop = start + total
                if size < stop + 2:
                    break  # its payload is still coming
                if not startswith(_CRLF, stop):
                    raise NatsProtocolError("NATS message not followed by CR LF")
                append(_new_message(subject, number, reply, b"", buffer[start:stop]))
                at = stop + 2
                continue
            if startswith(b"HMSG", at):
                message = self._message(buffer, at, end)
                if message is None:
                    break
                append(message[0])
                at = message[1]
                continue
            line = buffer[at:end]
            at = end + 2
            append(_control(line))
        self._buffer = buffer[at:] if at < size else b""
        return ops

    def _message(self, buffer: bytes, at: int, end: int) -> tuple[Message, int] | None:
        """``HMSG <subject> <sid> [reply] <header bytes> <total bytes>`` and its bytes."""
        fields = buffer[at + 5 : end].split()
        try:
            if len(fields) == 4:
                subject, sid, header_text, total_text = fields
                reply = b""
            else:
                subject, sid, reply, header_text, total_text = fields
            header_size, total, number = int(header_text), int(total_text), int(sid)
        except ValueError:
            raise _malformed(buffer, at, end) from None
        if not 0 <= header_size <= total or total > self.max_payload:
            raise NatsProtocolError(f"NATS message of {total} bytes ({header_size} of headers)")
        start = end + 2
        stop = start + total
        if len(buffer) < stop + 2:
            return None
        if not buffer.startswith(_CRLF, stop):
            raise NatsProtocolError("NATS message not followed by CR LF")
        split = start + header_size
        message = _new_message(subject, number, reply, buffer[start:split], buffer[split:stop])
        return message, stop + 2


def _malformed(buffer: bytes, at: int, end: int) -> NatsProtocolError:
    line = buffer[at:end][:80]
    return NatsProtocolError(f"malformed NATS message line {line!r}")


def _control(line: bytes) -> ServerOp:
    word = line[:4].upper()
    if word == b"PING":
        return _PING_OP
    if word == b"PONG":
        return _PONG_OP
    if line[:3] == b"+OK":
        return _OK_OP
    if word == b"-ERR":
        return Err(line[4:].strip().strip(b"'").decode("utf-8", "replace"))
    if word == b"INFO":
        try:
            fields = json.loads(line[4:])
        except (ValueError, RecursionError):  # RecursionError: nested past the decoder's limit
            raise NatsProtocolError("NATS INFO is not JSON") from None
        if not isinstance(fields, dict):
            raise NatsProtocolError("NATS INFO is not a JSON object")
        return Info(fields)
    raise NatsProtocolError(f"unknown NATS operation {line[:16]!r}")
