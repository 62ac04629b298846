"""The acceptor: a listening socket whose connections each become an ``Association``.

The server owns the set of live associations so it can stop cleanly: stop accepting,
let in-flight work finish (or abort after a grace period), and leave nothing open.

With TLS, each connection first runs :class:`~ups.net.tlsproto.TLSProtocol`, which sends
a refused peer its alert and logs why; plain TCP connections go straight to the
``Association``. The server also binds the identity verifier to its transport (PS3.15:
passcodes only over TLS unless ``allow_cleartext_passcodes``).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import socket
import ssl
from collections.abc import Callable, Mapping

from ups.net.association import Association, Handler
from ups.net.config import AssociationConfig
from ups.net.errors import ConnectFailed
from ups.net.tls import server_context
from ups.net.tlsproto import RefusedConnection, TLSProtocol
from ups.pdu.negotiation import AcceptorPolicy, bind_transport

log = logging.getLogger("ups.net")


class Server:
    """A running acceptor. Use ``await serve(...)`` to make one."""

    def __init__(
        self,
        policy: AcceptorPolicy,
        config: AssociationConfig,
        handlers: Mapping[str, Handler] | None,
        on_established: Callable[[Association], None] | None,
        on_closed: Callable[[Association], None] | None,
    ) -> None:
        self.policy = bind_transport(
            policy,
            tls=config.tls is not None,
            allow_cleartext_passcodes=config.allow_cleartext_passcodes,
        )
        self.config = config
        self._handlers = handlers
        self._on_established = on_established
        self._on_closed = on_closed
        self.associations: set[Association] = set()
        self._lingering: set[RefusedConnection] = set()  # refused TLS, closing
        self._server: asyncio.Server | None = None

    def _make(self) -> Association:
        # Tracked from connection_made on: with TLS a connection whose handshake fails
        # never reaches the protocol, so it is never counted and never waited for.
        return Association(
            self.config,
            requestor=False,
            policy=self.policy,
            handlers=self._handlers,
            on_established=self._on_established,
            on_closed=self._closed,
            on_connected=self.associations.add,
        )

    def _make_tls(self, context: ssl.SSLContext) -> TLSProtocol:
        return TLSProtocol(
            asyncio.get_running_loop(),
            self._make(),
            context,
            server_side=True,
            handshake_timeout=self.config.handshake_timeout(acceptor=True),
            lingering=self._lingering,
        )

    def _closed(self, association: Association) -> None:
        self.associations.discard(association)
        if self._on_closed is not None:
            self._on_closed(association)

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    @property
    def sockets(self) -> tuple[socket.socket, ...]:
        return tuple(self._server.sockets) if self._server else ()

    async def start(self, host: str, port: int, *, reuse_port: bool = False) -> None:
        factory: Callable[[], asyncio.BaseProtocol] = self._make
        if self.config.tls is not None:
            context = server_context(self.config.tls)
            factory = functools.partial(self._make_tls, context)
        loop = asyncio.get_running_loop()
        try:
            self._server = await loop.create_server(
                factory,
                host,
                port,
                reuse_address=True,
                reuse_port=reuse_port or None,
                backlog=1024,
            )
        except OSError as exc:
            raise ConnectFailed(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None

    def stop_accepting(self) -> None:
        if self._server is not None:
            self._server.close()

    async def close(self, grace: float = 5.0) -> None:
        """Stop accepting, release what is open, abort what does not finish in ``grace``.

        Returns once every association is closed; no task is left behind.
        """
        self.stop_accepting()
        refused = list(self._lingering)
        for connection in refused:
            connection.abort()
        await asyncio.gather(*(connection.wait_closed() for connection in refused))
        live = list(self.associations)
        tasks = [asyncio.ensure_future(_end(a)) for a in live]
        try:
            if tasks:
                await asyncio.wait(tasks, timeout=grace)
                for association in live:
                    if not association.closed.done():
                        association.abort()
                await asyncio.gather(*tasks, return_exceptions=True)
        finally:
            for task in tasks:
                task.cancel()
        if self._server is not None:
            await self._server.wait_closed()

    async def __aenter__(self) -> Server:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


async def _end(association: Association) -> None:
    if association.is_established:
        await association.release()
    else:
        association.abort()
        await association.wait_closed()


async def serve(
    host: str,
    port: int,
    policy: AcceptorPolicy,
    config: AssociationConfig | None = None,
    *,
    handlers: Mapping[str, Handler] | None = None,
    on_established: Callable[[Association], None] | None = None,
    on_closed: Callable[[Association], None] | None = None,
    reuse_port: bool = False,
) -> Server:
    """Listen on ``host:port`` (port 0 picks a free one; see ``Server.port``)."""
    server = Server(policy, config or AssociationConfig(), handlers, on_established, on_closed)
    await server.start(host, port, reuse_port=reuse_port)
    return server
