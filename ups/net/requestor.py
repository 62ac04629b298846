"""Opening an association as requestor: TCP (or TLS) connect, A-ASSOCIATE-RQ, wait for AC.

Each phase has its own total deadline: ``connect_timeout`` for the TCP connect and
TLS handshake, ``accept_timeout`` from the A-ASSOCIATE-RQ to the AC/RJ.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Mapping, Sequence

import ups
from ups.net.association import Association, Handler
from ups.net.config import AssociationConfig
from ups.net.errors import ConnectFailed, InvalidRequest, NetTimeout
from ups.net.tls import client_context
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
    loop = asyncio.get_running_loop()
    association = Association(config, requestor=True, handlers=handlers)
    association.start_request(rq)
    ssl_context: ssl.SSLContext | None = None
    if config.tls is not None:
        ssl_context = client_context(config.tls)
    where = f"{host}:{port}"
    try:
        async with asyncio.timeout(config.connect_timeout):
            await loop.create_connection(
                lambda: association,
                host,
                port,
                ssl=ssl_context,
                server_hostname="" if ssl_context is not None else None,
                ssl_handshake_timeout=(
                    config.handshake_timeout(acceptor=False) if ssl_context else None
                ),
                local_addr=local_address,
            )
    except TimeoutError:
        raise NetTimeout(f"TCP connect to {where} timed out (-connectTO)") from None
    except ssl.SSLError as exc:
        raise ConnectFailed(f"TLS handshake with {where} failed: {exc.reason or exc}") from None
    except OSError as exc:
        reason = exc.strerror or str(exc) or type(exc).__name__
        raise ConnectFailed(f"cannot connect to {where}: {reason}") from None
    try:
        await association.established
    except BaseException:
        # Leave nothing open: a failed or cancelled request still closes its socket.
        association.abort()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(association.wait_closed(), _CLOSE_WAIT)
        raise
    return association


_CLOSE_WAIT = 5.0
"""Bound on waiting for a failed association's socket to close (linger included)."""
