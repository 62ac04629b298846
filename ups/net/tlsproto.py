"""TLS on any event loop's transport, with refusals a peer can read and an operator can log.

asyncio's ``SSLProtocol`` loses the TLS alert of a failed handshake (CPython gh-98078):
OpenSSL writes the alert into the protocol's outgoing ``MemoryBIO`` and raises, and the
protocol closes the socket without reading it back out. The peer sees only EOF (TLS 1.2)
or, in TLS 1.3, a completed handshake followed by EOF. uvloop's ``SSLProtocol`` is the
same design in Cython; its handshake methods are ``cdef`` and its BIOs are not reachable
from Python, so the alert cannot be flushed from outside it. A uvloop transport does run
asyncio's pure-Python ``SSLProtocol`` (a ``BufferedProtocol`` like any other), so both loops
use :class:`TLSProtocol` below, a subclass that changes only the failure paths:

- a failed handshake writes the pending alert, then a FIN, and keeps the connection open
  (reading and discarding) until the peer closes it or :data:`REFUSAL_LINGER` passes, so a
  peer that already sent more data gets the alert instead of a reset (the lingering close of
  RFC 9112 §9.6);
- an acceptor logs one line per refusal: peer address, the reason in words and the TLS
  version the client offered (see :mod:`ups.net.tlsdiag`);
- whatever ended the connection (handshake failure, an alert received later, the handshake
  timer) is kept in :attr:`TLSProtocol.failure` so a requestor can name it.

Measured on loopback with 200-byte and 16 KiB round trips, this protocol on uvloop is not
slower than uvloop's own TLS. Plain TCP associations never see this class.

``asyncio.sslproto`` is not public API: the attributes used (``_outgoing``, ``_transport``,
``_state``, ``_ssl_buffer_view``, ``_on_handshake_complete``, ``_check_handshake_timeout``,
``_fatal_error``) are those of the ``SSLProtocol`` CPython has had since 3.11 (verified on
3.11), and ``tests/net/test_tlsproto.py`` fails if one of them goes away.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from asyncio import sslproto
from typing import Any

from ups.net.tlsdiag import server_refusal

__all__ = ["REFUSAL_LINGER", "RefusedConnection", "TLSProtocol"]

log = logging.getLogger("ups.net")

REFUSAL_LINGER = 1.0
"""Seconds a refused connection stays open, after its alert and FIN, for the peer to close
first. A peer that reads the alert closes at once; this only bounds one that does not."""

_FIRST_BYTES = 8192
"""How much of what the peer sends first is kept for the refusal's diagnosis (the
ClientHello, a few hundred bytes to a few KiB)."""


class TLSProtocol(sslproto.SSLProtocol):
    """asyncio's TLS protocol with the alert flushed and the failure kept (module docstring).

    ``app_protocol`` (an ``Association``) is connected only after a successful handshake.
    ``waiter`` gets the handshake's outcome. A refused connection is put in ``lingering``
    while it closes, so that its owner can abort it when shutting down.
    """

    # What this class uses of asyncio.sslproto.SSLProtocol (absent from typeshed's stub).
    _state: sslproto.SSLProtocolState
    _outgoing: ssl.MemoryBIO
    _ssl_buffer_view: memoryview
    _transport: asyncio.Transport | None
    _server_side: bool

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        app_protocol: asyncio.BaseProtocol,
        context: ssl.SSLContext,
        *,
        server_side: bool,
        handshake_timeout: float,
        waiter: asyncio.Future[None] | None = None,
        lingering: set[RefusedConnection] | None = None,
    ) -> None:
        # typeshed wants a waiter and an int timeout; asyncio takes None and seconds.
        super().__init__(
            loop,
            app_protocol,
            context,
            waiter,  # type: ignore[arg-type]
            server_side=server_side,
            ssl_handshake_timeout=handshake_timeout,  # type: ignore[arg-type]
        )
        self.waiter = waiter
        self.failure: BaseException | None = None
        self.handshake_done = False
        self.handshake_timed_out = False
        self._first_bytes = bytearray()
        self._lingering = lingering

    def close_now(self) -> None:
        """Drop the connection at once (a cancelled or timed-out requestor)."""
        transport = self._transport
        if transport is not None:
            transport.abort()

    def buffer_updated(self, nbytes: int) -> None:
        if (
            self._state is sslproto.SSLProtocolState.DO_HANDSHAKE
            and len(self._first_bytes) < _FIRST_BYTES
        ):
            self._first_bytes += self._ssl_buffer_view[:nbytes]
        super().buffer_updated(nbytes)

    def _on_handshake_complete(self, handshake_exc: Any) -> None:
        if handshake_exc is None:
            self.handshake_done = True
            self._first_bytes = bytearray()
            super()._on_handshake_complete(None)
            return
        # The parent passes the ConnectionResetError class itself when EOF ends a handshake.
        exc = handshake_exc() if isinstance(handshake_exc, type) else handshake_exc
        self.failure = exc
        transport = self._transport
        alert = self._outgoing.read()
        if self._server_side:
            self._log_refusal(transport, exc, sent_alert=bool(alert))
        if transport is None or transport.is_closing():
            super()._on_handshake_complete(exc)
            return
        refused = RefusedConnection(self._loop, transport, self._lingering)
        refused.start(alert, linger=self._server_side)
        # The connection now belongs to RefusedConnection. What remains of the parent's
        # failure path (state, handshake timer, waiter) is exactly its connection_lost.
        super().connection_lost(exc)

    def _check_handshake_timeout(self) -> None:
        self.handshake_timed_out = self._state is sslproto.SSLProtocolState.DO_HANDSHAKE
        super()._check_handshake_timeout()

    def _fatal_error(self, exc: BaseException, message: str = "Fatal error on transport") -> None:
        if self.failure is None:
            self.failure = exc
            if self._server_side and self._state is sslproto.SSLProtocolState.DO_HANDSHAKE:
                log.info("TLS handshake from %s failed: %s", _peer(self._transport), exc)
        super()._fatal_error(exc, message)

    def _log_refusal(
        self, transport: asyncio.BaseTransport | None, exc: BaseException, *, sent_alert: bool
    ) -> None:
        """One line per refused handshake: who, why, and the TLS version offered."""
        why = server_refusal(exc, bytes(self._first_bytes))
        if sent_alert:
            log.warning("TLS handshake from %s refused: %s", _peer(transport), why)
        elif self._first_bytes:
            log.warning("TLS handshake from %s failed: %s", _peer(transport), why)
        else:  # a port probe: connected and closed without a byte
            log.info("TLS handshake from %s failed: %s", _peer(transport), why)


class RefusedConnection(asyncio.Protocol):
    """A refused connection's last moments: alert, FIN, discard input, close.

    Closing a socket while unread data waits in it sends a reset, and a reset can make the
    peer's stack drop the alert it has not read yet; so an acceptor lets the peer close
    first (``linger``). A requestor has read all the server sent (the server waits for our
    Finished) and closes once the alert is out.
    """

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        transport: asyncio.Transport,
        lingering: set[RefusedConnection] | None,
    ) -> None:
        self._transport = transport
        self._lingering = lingering
        self._timer: asyncio.TimerHandle | None = None
        self._closed: asyncio.Future[None] = loop.create_future()

    def start(self, alert: bytes, *, linger: bool) -> None:
        transport = self._transport
        transport.set_protocol(self)
        if self._lingering is not None:
            self._lingering.add(self)
        if alert:
            transport.write(alert)
        if not linger:
            transport.close()  # after the alert: close() sends what is buffered first
            return
        if transport.can_write_eof():
            transport.write_eof()
        self._timer = self._closed.get_loop().call_later(REFUSAL_LINGER, transport.abort)

    def abort(self) -> None:
        self._transport.abort()

    async def wait_closed(self) -> None:
        await asyncio.shield(self._closed)

    def data_received(self, data: bytes) -> None:
        """Discarded: the handshake failed, nothing more is read."""

    def eof_received(self) -> bool:
        return False  # the transport closes itself

    def connection_lost(self, exc: BaseException | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if self._lingering is not None:
            self._lingering.discard(self)
        if not self._closed.done():
            self._closed.set_result(None)


def _peer(transport: asyncio.BaseTransport | None) -> str:
    """``host:port`` of the peer (IPv6 in brackets), or ``?`` once unknown."""
    peer = transport.get_extra_info("peername") if transport is not None else None
    if not isinstance(peer, tuple) or len(peer) < 2:
        return "?"
    host = str(peer[0])
    return f"[{host}]:{peer[1]}" if ":" in host else f"{host}:{peer[1]}"
