"""The asyncio side of an association: a ``Protocol`` that feeds a provider core.

``CoreProtocol`` owns what only an event loop has: the transport, its flow control,
the clock and one timer. Bytes read go to ``dimse.provider.DimseProvider``; its events
come back through one loop (``_drain``), which carries out the transport effects here
and hands the rest to the subclass (``association.Association``). Writes and time:

* everything one read causes leaves in one ``transport.write`` at the read's end, after
  the read-end hooks (``at_read_end``); writes outside a read happen at once
  (``_pump``) or, for answers given through ``ctx.respond``, once per loop pass;
* after a read that leaves a PDU or a message incomplete, TCP_QUICKACK;
* one ``loop.call_at`` per association, re-armed at the core's ``next_deadline()``
  when that is earlier, and at the exact next deadline each time it fires;
* the transport's pause/resume of writing goes to the core (which runs -sendTO from
  the pause), the core's pause/resume of reading to the transport; when -sendTO runs
  out, one log line here names the peer and the bytes it left unread, and the reset
  that follows is a real TCP RST (SO_LINGER 0), which frees the kernel's queue too.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import socket
import struct
import termios
from collections.abc import Callable
from typing import Any, cast

from ups.dimse.errors import ProviderSendTimeout
from ups.dimse.provider import DimseProvider
from ups.dimse.provider_events import (
    Aborted,
    CloseTransport,
    PauseReading,
    ProviderEvent,
    RequestReceived,
    ResetTransport,
    ResponseReceived,
    ResumeReading,
)
from ups.net.config import AssociationConfig

log = logging.getLogger("ups.net")

_TCP_QUICKACK: int | None = getattr(socket, "TCP_QUICKACK", None)  # Linux only
_SIOCOUTQ: int | None = getattr(termios, "TIOCOUTQ", None)  # the same request on Linux


class CoreProtocol(asyncio.Protocol):
    """One transport connection driving one provider core (subclassed by ``Association``)."""

    def __init__(
        self,
        core: DimseProvider,
        config: AssociationConfig,
        on_connected: Callable[[Any], None] | None,
    ) -> None:
        self._loop = asyncio.get_running_loop()
        self._core = core
        self.config = config
        self._on_connected = on_connected
        self.peer: tuple[Any, ...] | None = None
        self._transport: asyncio.Transport | None = None
        self._socket: Any = None  # for TCP_QUICKACK; None when not TCP or not Linux
        self._timer: asyncio.TimerHandle | None = None
        self._timer_when = 0.0
        self._stopped = False  # the core is closed: no timer, no write any more
        self._in_read = False  # inside data_received: writes wait for its end
        self._read_at = 0.0  # when the current read arrived (``now`` within it)
        self._draining = False
        self._close_wanted = False
        self._read_end: list[Callable[[], None]] = []
        self._flush_soon: asyncio.Handle | None = None
        self._drain_waiter: asyncio.Future[None] | None = None

    # ================================================================== subclass hooks

    def _on_request(self, event: RequestReceived) -> None:
        raise NotImplementedError

    def _on_response(self, event: ResponseReceived) -> None:
        raise NotImplementedError

    def _on_core_event(self, event: ProviderEvent) -> None:
        raise NotImplementedError

    # ================================================================== asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)
        self.peer = peer = transport.get_extra_info("peername")
        self._socket = _set_socket_options(transport, self.config)
        self._transport.set_write_buffer_limits(high=self.config.write_buffer_limit)
        if self._on_connected is not None:
            self._on_connected(self)
        where = f"{peer[0]}:{peer[1]}" if peer else ""
        self._core.connection_made(self._loop.time(), where)
        self._pump()

    def data_received(self, data: bytes) -> None:
        core = self._core
        self._in_read = True
        self._read_at = now = self._loop.time()
        try:
            core.receive_data(data, now)
            if not self._draining:  # ``_drain`` written out: once per read, the hot path
                self._draining = True
                try:
                    next_event = core.next_event
                    while (event := next_event()) is not None:
                        kind = type(event)
                        if kind is RequestReceived:
                            self._on_request(event)  # type: ignore[arg-type]
                        elif kind is ResponseReceived:
                            self._on_response(event)  # type: ignore[arg-type]
                        else:
                            self._on_other(event)
                finally:
                    self._draining = False
            while self._read_end:
                hooks, self._read_end = self._read_end, []
                for hook in hooks:
                    hook()
                event = core.next_event()  # usually none: the hooks only answered
                if event is not None:
                    self._draining = True
                    try:
                        self._on_any(event)
                    finally:
                        self._draining = False
                    self._drain()
        finally:
            self._in_read = False
        # One write for everything this read caused: DIMSE responses in order, and what
        # the core answered itself (A-ABORT, A-RELEASE-RP, A-ASSOCIATE-RJ).
        self._flush()
        self._rearm()
        if self._socket is not None and core.incomplete:
            self._quickack()

    def _quickack(self) -> None:
        """ACK now: we wait for the rest of a message, and its sender may be waiting for us.

        A peer that leaves Nagle on (pynetdicom, DCMTK without TCP_NODELAY=1) sends the
        second half of a message only once its first half is acknowledged, and Linux
        delays that ACK by up to 40 ms. TCP_QUICKACK is not sticky, so it is set after
        each read that leaves a message incomplete (never on the complete-read hot path).
        """
        try:
            self._socket.setsockopt(socket.IPPROTO_TCP, _TCP_QUICKACK, 1)
        except OSError:
            self._socket = None

    def eof_received(self) -> bool | None:
        return None  # close our side too; connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None
        self._core.connection_lost(self._loop.time(), str(exc) if exc else "")
        self._pump()

    def pause_writing(self) -> None:
        # Reading goes on: stopping it here could deadlock two peers that both write.
        self._core.writing_paused(self._loop.time())
        self._rearm()  # the send deadline (-sendTO) may be the soonest now

    def resume_writing(self) -> None:
        self._core.writing_resumed(self._loop.time())
        self._wake_drain()
        self._pump()

    def at_read_end(self, hook: Callable[[], None]) -> None:
        """Run ``hook`` once the current read's messages are handled, before its one write.

        Outside ``data_received`` the hook runs at once. The listener writes a read's
        events out together here, then answers them (DESIGN.md: writes batched per read).
        """
        if self._in_read:
            self._read_end.append(hook)
        else:
            hook()

    # ================================================================== the core's events

    def _drain(self) -> None:
        """Handle the core's events in order (re-entrant calls leave it to the outer loop)."""
        if self._draining:
            return
        self._draining = True
        core = self._core
        try:
            while (event := core.next_event()) is not None:
                kind = type(event)
                if kind is RequestReceived:
                    self._on_request(event)  # type: ignore[arg-type]
                elif kind is ResponseReceived:
                    self._on_response(event)  # type: ignore[arg-type]
                else:
                    self._on_other(event)
        finally:
            self._draining = False

    def _on_any(self, event: ProviderEvent) -> None:
        kind = type(event)
        if kind is RequestReceived:
            self._on_request(event)  # type: ignore[arg-type]
        elif kind is ResponseReceived:
            self._on_response(event)  # type: ignore[arg-type]
        else:
            self._on_other(event)

    def _on_other(self, event: ProviderEvent) -> None:
        """Transport effects here; the association's events to the subclass."""
        if isinstance(event, CloseTransport):
            self._close_wanted = True  # after writing what the core still holds
            return
        if not isinstance(event, PauseReading | ResumeReading | ResetTransport):
            if isinstance(event, Aborted) and isinstance(event.cause, ProviderSendTimeout):
                self._log_send_timeout()
            self._on_core_event(event)
            return
        transport = self._transport
        if transport is None:
            return
        if isinstance(event, PauseReading):
            transport.pause_reading()
        elif isinstance(event, ResumeReading):
            transport.resume_reading()
        else:
            _reset(transport)

    def _log_send_timeout(self) -> None:
        """-sendTO ran out: one line naming the peer and the bytes it left unread."""
        transport = self._transport
        buffered = transport.get_write_buffer_size() if transport is not None else 0
        kernel = _kernel_queued(transport) if transport is not None else 0
        peer = self.peer
        where = f"{peer[0]}:{peer[1]}" if peer else "the peer"
        title = self._core.remote_ae_title
        log.warning(
            "%s stopped reading: writes blocked for %g s (-sendTO); aborting with %d bytes "
            "still queued (%d in our write buffer, %d in the kernel's)",
            f"{title} at {where}" if title else where,
            self.config.send_timeout,
            buffered + kernel,
            buffered,
            kernel,
        )

    # ================================================================== writes and time

    def _pump(self) -> None:
        """After a call into the core outside a read: its events, one write, the timer."""
        self._drain()
        if not self._in_read:
            self._flush()
            self._rearm()

    def _flush(self) -> None:
        transport = self._transport
        out = self._core.data_to_send()
        if transport is None:
            return
        if out:
            transport.write(out)
        if self._close_wanted:
            self._close_wanted = False
            if not transport.is_closing():
                transport.close()

    def _flush_later(self) -> None:
        """Once per loop pass while answers are given later: their events, one write."""
        self._flush_soon = None
        self._drain()
        self._flush()
        self._rearm()

    def write_now(self) -> None:
        """Write the answers given outside a read now, not a loop pass later.

        For a caller that has just given a group of answers at once and knows the group
        is complete (a batch consumer's commit completed); inside a read it does nothing,
        the read's one write takes them.
        """
        handle = self._flush_soon
        if handle is None or self._in_read:
            return
        handle.cancel()
        self._flush_later()

    def _write_soon(self) -> None:
        """Answers given outside a read share one write, one loop pass later (with the
        events they caused: requests held beyond the window start, a release proceeds)."""
        if self._flush_soon is None and not self._stopped:
            self._flush_soon = self._loop.call_soon(self._flush_later)

    async def _wait_drain(self) -> None:
        if self._drain_waiter is None:
            self._drain_waiter = self._loop.create_future()
        await asyncio.shield(self._drain_waiter)

    def _wake_drain(self) -> None:
        waiter, self._drain_waiter = self._drain_waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _rearm(self) -> None:
        when = self._core.next_deadline()
        if when is not None and (self._timer is None or when < self._timer_when):
            self._arm(when)

    def _arm(self, when: float) -> None:
        """The one timer fires at ``when``; earlier deadlines re-arm it, later ones wait."""
        if self._timer is not None:
            self._timer.cancel()
        if self._stopped:
            self._timer = None
            return
        self._timer_when = when
        self._timer = self._loop.call_at(when, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        if self._stopped:
            return
        self._core.handle_timer(self._loop.time())
        self._pump()

    def _stop(self) -> None:
        """The core is closed: nothing is timed or written any more."""
        self._stopped = True
        self._wake_drain()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._flush_soon is not None:
            self._flush_soon.cancel()
            self._flush_soon = None


def _set_socket_options(transport: asyncio.BaseTransport, config: AssociationConfig) -> Any:
    """TCP_NODELAY and buffer sizes per ``config``; the socket if TCP_QUICKACK applies."""
    sock = transport.get_extra_info("socket")
    if sock is None:
        return None
    quickack = None
    try:
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            # asyncio turns Nagle off by itself; -tcpdelay must turn it back on.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1 if config.tcp_nodelay else 0)
            if config.tcp_quickack and _TCP_QUICKACK is not None:
                quickack = sock
        if config.so_sndbuf:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, config.so_sndbuf)
        if config.so_rcvbuf:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, config.so_rcvbuf)
    except OSError as exc:  # pragma: no cover - platform specific
        log.debug("socket option not set: %s", exc)
    return quickack


def _kernel_queued(transport: asyncio.BaseTransport) -> int:
    """Bytes in the socket's kernel send queue, not yet acknowledged (Linux SIOCOUTQ)."""
    sock = transport.get_extra_info("socket")
    if sock is None or _SIOCOUTQ is None:
        return 0
    try:
        out = fcntl.ioctl(sock.fileno(), _SIOCOUTQ, b"\0\0\0\0")
    except (OSError, ValueError):  # pragma: no cover - not Linux, or already closed
        return 0
    return int(struct.unpack("i", out)[0])


def _reset(transport: asyncio.Transport) -> None:
    """Abort ``transport`` with a TCP RST: SO_LINGER 0 drops what the kernel still
    queues for a peer that will not read it, instead of keeping an orphan socket."""
    sock = transport.get_extra_info("socket")
    if sock is not None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:  # pragma: no cover - already closed
            pass
    transport.abort()
