"""Opening an association as requestor: TCP (or TLS) connect, A-ASSOCIATE-RQ, wait for AC.

Each phase has its own total deadline: ``connect_timeout`` for the TCP connect and
TLS handshake, ``accept_timeout`` from the A-ASSOCIATE-RQ to the AC/RJ.

A failure names its phase: "cannot connect" is TCP; "TLS handshake ... failed" says why
in words (:func:`ups.net.tlsdiag.client_failure`), including a server that refused our
certificate after a TLS 1.3 handshake had already completed on our side.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Mapping, Sequence

import ups
from ups.net.association import Association, Handler
from ups.net.config import AssociationConfig
from ups.net.errors import AssociationAborted, ConnectFailed, InvalidRequest, NetTimeout
from ups.net.tls import client_context
from ups.net.tlsdiag import client_failure
from ups.net.tlsproto import TLSProtocol
from ups.pdu.codec import check_ae_title
from ups.pdu.errors import PDUError
from ups.pdu.items import (
    AsyncOpsWindow,
    PresentationContextRQ,
    RoleSelection,
    SOPClassCommonExtendedNegotiation,
    SOPClassExtendedNegotiation,
    UserIdentityRQ,
    UserInformation,
)
from ups.pdu.pdus import AAssociateRQ


def build_request(
    called_ae_title: str,
    calling_ae_title: str,
    contexts: Sequence[tuple[str, Sequence[str]]],
    config: AssociationConfig,
    *,
    roles: Sequence[RoleSelection] = (),
    extended: Sequence[SOPClassExtendedNegotiation] = (),
    common_extended: Sequence[SOPClassCommonExtendedNegotiation] = (),
    user_identity: UserIdentityRQ | None = None,
) -> AAssociateRQ:
    """An A-ASSOCIATE-RQ proposing ``contexts`` (abstract syntax, transfer syntaxes).

    Context IDs are 1, 3, 5 ... in the given order (PS3.8 §9.3.2.2: odd, unique). The
    Asynchronous Operations Window item is sent only when the config asks for more
    than the default of one operation each way.
    """
    if len(contexts) > 128:
        raise InvalidRequest("at most 128 presentation contexts fit in one association")
    for title, what in (
        (called_ae_title, "called AE title"),
        (calling_ae_title, "calling AE title"),
    ):
        try:
            check_ae_title(title, what)
        except PDUError as exc:
            raise InvalidRequest(str(exc)) from None
    window = None
    if (config.max_ops_invoked, config.max_ops_performed) != (1, 1):
        window = AsyncOpsWindow(config.max_ops_invoked, config.max_ops_performed)
    return AAssociateRQ(
        called_ae_title=called_ae_title,
        calling_ae_title=calling_ae_title,
        presentation_contexts=tuple(
            PresentationContextRQ(2 * i + 1, abstract, tuple(syntaxes))
            for i, (abstract, syntaxes) in enumerate(contexts)
        ),
        user_information=UserInformation(
            max_length=config.max_pdata_receive,
            implementation_class_uid=ups.IMPLEMENTATION_CLASS_UID,
            implementation_version_name=ups.IMPLEMENTATION_VERSION_NAME,
            async_ops_window=window,
            role_selections=tuple(roles),
            sop_class_extended=tuple(extended),
            sop_class_common_extended=tuple(common_extended),
            user_identity_rq=user_identity,
        ),
    )


async def connect(
    host: str,
    port: int,
    rq: AAssociateRQ,
    config: AssociationConfig | None = None,
    *,
    handlers: Mapping[str, Handler] | None = None,
    local_address: tuple[str, int] | None = None,
) -> Association:
    """Open an association; raises ``ConnectFailed``, ``NetTimeout``, ``AssociationRejected``
    or ``AssociationAborted`` with a message naming the cause."""
    config = config or AssociationConfig()
    association = Association(config, requestor=True, handlers=handlers)
    association.start_request(rq)
    tls = _tls_protocol(association, config) if config.tls is not None else None
    where = f"{host}:{port}"
    phase = "TCP connect to"
    try:
        async with asyncio.timeout(config.connect_timeout):
            await _open_tcp(tls or association, host, port, local_address)
            if tls is not None:
                phase = "TLS handshake with"
                await _handshake(tls, config, where)
    except TimeoutError:
        if tls is not None:
            tls.close_now()
        raise NetTimeout(f"{phase} {where} timed out (-connectTO)") from None
    try:
        await association.established
    except BaseException as exc:
        # Leave nothing open: a failed or cancelled request still closes its socket.
        association.abort()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(association.wait_closed(), _CLOSE_WAIT)
        if isinstance(exc, AssociationAborted) and tls is not None:
            if isinstance(tls.failure, ssl.SSLError):  # e.g. TLS 1.3: our certificate refused
                raise _tls_failed(tls.failure, config, where) from None
        raise
    return association


def _tls_protocol(association: Association, config: AssociationConfig) -> TLSProtocol:
    """The TLS layer under ``association``; its context is built (and checked) first."""
    assert config.tls is not None
    context = client_context(config.tls)
    loop = asyncio.get_running_loop()
    return TLSProtocol(
        loop,
        association,
        context,
        server_side=False,
        handshake_timeout=config.handshake_timeout(acceptor=False),
        waiter=loop.create_future(),
    )


async def _open_tcp(
    protocol: asyncio.BaseProtocol,
    host: str,
    port: int,
    local_address: tuple[str, int] | None,
) -> None:
    loop = asyncio.get_running_loop()
    try:
        await loop.create_connection(lambda: protocol, host, port, local_addr=local_address)
    except OSError as exc:
        reason = exc.strerror or str(exc) or type(exc).__name__
        raise ConnectFailed(f"cannot connect to {host}:{port}: {reason}") from None


async def _handshake(tls: TLSProtocol, config: AssociationConfig, where: str) -> None:
    """Wait for the TLS handshake (PS3.15 B.12); a failure says why, in words.

    A cancelled wait (the caller's timeout) drops the connection.
    """
    assert tls.waiter is not None
    try:
        await tls.waiter
    except asyncio.CancelledError:
        tls.close_now()
        raise
    except OSError:  # ssl.SSLError included; tls.failure has it
        pass
    if tls.handshake_timed_out:
        limit = config.handshake_timeout(acceptor=False)
        raise NetTimeout(f"TLS handshake with {where} timed out after {limit:g} s (-acceptTO)")
    if not tls.handshake_done:
        raise _tls_failed(tls.failure or ConnectionResetError(), config, where)


def _tls_failed(cause: BaseException, config: AssociationConfig, where: str) -> ConnectFailed:
    sent_certificate = config.tls is not None and config.tls.keystore is not None
    words = client_failure(cause, sent_certificate=sent_certificate)
    return ConnectFailed(f"TLS handshake with {where} failed: {words}")


_CLOSE_WAIT = 5.0
"""Bound on waiting for a failed association's socket to close (linger included)."""
