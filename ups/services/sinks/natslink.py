"""The sink's publishing connection to nats-server: a thin asyncio adapter over ``natsproto``.

:func:`open_link` connects, reads ``INFO``, sends ``CONNECT``, the inbox ``SUB`` and a
``PING``, and returns once the ``PONG`` says the server took all three (an ``-ERR`` first,
an authorisation failure say, is the error raised). From then on the link writes what the
sink hands it (a read's ``HPUB`` commands, one ``write``), answers the server's ``PING``,
and gives each ``MSG``/``HMSG`` to ``on_message`` straight from ``data_received``: an
acknowledgement reaches the sink in the same callback that read it, with no task, queue
or future in between.

Liveness: :meth:`NatsLink.probe` sends a ``PING`` and aborts the connection when nothing
at all arrives within the given time; the sink calls it when a batch's acknowledgements
are overdue, so a broker that hangs (alive, connected, silent) is noticed and the link
rebuilt, rather than each batch waiting out its time on a dead connection.
``on_error`` gets the text of an ``-ERR`` after the handshake (a permissions violation,
say: the server drops that publish and keeps the connection), and ``on_lost`` is called
once, when an established link ends for any reason.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Final, cast

from ups import __version__
from ups.services.errors import UPSError
from ups.services.sinks.natsproto import (
    PING,
    PONG,
    Err,
    Info,
    Message,
    NatsAddress,
    NatsProtocolError,
    NatsReader,
    Ping,
    Pong,
    connect_command,
    sub_command,
)

__all__ = ["NatsLink", "NatsLinkError", "open_link"]

log = logging.getLogger("ups.services.sinks")

INBOX_SID: Final = 1


class NatsLinkError(UPSError):
    """The publishing connection could not be made (refused, timed out, rejected)."""


class NatsLink(asyncio.Protocol):
    """One publishing connection; see the module docstring."""

    def __init__(
        self,
        on_message: Callable[[Message], None],
        on_error: Callable[[str], None],
        on_lost: Callable[[BaseException | None], None],
    ) -> None:
        self.reader = NatsReader()
        self.info: dict[str, object] = {}
        self._on_message = on_message
        self._on_error = on_error
        self._on_lost = on_lost
        self._transport: asyncio.Transport | None = None
        self._loop = asyncio.get_running_loop()
        self._info: asyncio.Future[Info] = self._loop.create_future()
        self._ready: asyncio.Future[None] = self._loop.create_future()
        self._established = False
        self._heard = 0
        self._probe: asyncio.TimerHandle | None = None
        self._cause: BaseException | None = None
        """Why this side dropped the connection (garbage read, no answer to a probe)."""

    # -------------------------------------------------------------- asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        self._heard += 1
        try:
            ops = self.reader.feed(data)
        except NatsProtocolError as exc:
            self._broken(exc)
            return
        on_message = self._on_message
        for op in ops:
            if type(op) is Message:
                if self._established:
                    on_message(op)
            elif type(op) is Ping:
                self.write(PONG)
            elif type(op) is Pong:
                if not self._ready.done():
                    self._ready.set_result(None)
            elif type(op) is Info:
                self.info.update(op.fields)
                if not self._info.done():
                    self._info.set_result(op)
            elif type(op) is Err:
                if self._established:
                    self._on_error(op.text)
                else:  # refused during the handshake (before INFO or after it)
                    self._fail_handshake(NatsLinkError(f"NATS server: {op.text}"))

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None
        if self._probe is not None:
            self._probe.cancel()
            self._probe = None
        cause = self._cause or exc
        self._fail_handshake(NatsLinkError(f"connection closed: {cause or 'by the server'}"))
        if self._established:
            self._established = False
            self._on_lost(cause)

    def _fail_handshake(self, failure: NatsLinkError) -> None:
        for waiter in (self._info, self._ready):
            if not waiter.done():
                waiter.set_exception(failure)
                waiter.exception()  # retrieved: the handshake may not be awaiting it

    # -------------------------------------------------------------- use

    @property
    def connected(self) -> bool:
        return self._established and self._transport is not None

    def write(self, data: bytes) -> None:
        transport = self._transport
        if transport is not None and not transport.is_closing():
            transport.write(data)

    def unsent(self) -> int:
        """Bytes written but not yet taken by the socket (the broker reads slowly)."""
        transport = self._transport
        return transport.get_write_buffer_size() if transport is not None else 0

    def probe(self, within: float) -> None:
        """PING; abort the connection if nothing at all arrives ``within`` seconds."""
        if self._probe is not None or self._transport is None:
            return
        heard = self._heard
        self.write(PING)

        def check() -> None:
            self._probe = None
            if self._heard == heard and self._transport is not None:
                self._broken(NatsLinkError(f"no answer from NATS within {within:g} s"))

        self._probe = self._loop.call_later(within, check)

    def close(self) -> None:
        """Close without calling ``on_lost`` (the sink is stopping)."""
        self._established = False
        if self._probe is not None:
            self._probe.cancel()
            self._probe = None
        if self._transport is not None:
            self._transport.close()

    def _broken(self, exc: BaseException) -> None:
        log.debug("NATS publishing connection dropped: %s", exc)
        if self._cause is None:
            self._cause = exc
        if self._transport is not None:
            self._transport.abort()

    async def _handshake(self, address: NatsAddress, name: str, inbox: bytes) -> None:
        info = await self._info
        if info.fields.get("tls_required"):
            raise NatsLinkError("the NATS server requires TLS: use a tls:// URL")
        if not info.fields.get("headers", False):
            raise NatsLinkError("the NATS server does not support headers (needs 2.2 or later)")
        max_payload = info.fields.get("max_payload")
        if isinstance(max_payload, int) and max_payload > 0:
            self.reader.max_payload = max_payload
        command = connect_command(address, name, __version__)
        self.write(command + sub_command(inbox, INBOX_SID) + PING)
        await self._ready
        self._established = True


async def open_link(
    address: NatsAddress,
    *,
    name: str,
    inbox: bytes,
    timeout: float,
    on_message: Callable[[Message], None],
    on_error: Callable[[str], None],
    on_lost: Callable[[BaseException | None], None],
) -> NatsLink:
    """A connected, subscribed link, or :class:`NatsLinkError` saying why not."""
    loop = asyncio.get_running_loop()
    link = NatsLink(on_message, on_error, on_lost)
    try:
        async with asyncio.timeout(timeout):
            await loop.create_connection(lambda: link, address.host, address.port)
            await link._handshake(address, name, inbox)
    except TimeoutError:
        link._broken(NatsLinkError("timed out"))
        raise NatsLinkError(f"no NATS handshake within {timeout:g} s") from None
    except OSError as exc:
        raise NatsLinkError(exc.strerror or str(exc)) from exc
    except NatsLinkError:
        link._broken(NatsLinkError("handshake failed"))
        raise
    return link
