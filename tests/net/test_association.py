"""ups.net association runtime, our requestor against our acceptor on 127.0.0.1.

The adapter over real sockets: DIMSE-N and C-FIND round trips (fragmented), handler
outcomes, ``find`` and C-CANCEL, the reaper's one error for every caller, release,
abort, disconnects, flow control towards a peer that stops reading (and -sendTO for
one that never reads again), and TLS. The
protocol logic under it (windows, release collisions and waits, every deadline) is
tested on virtual time in ``tests/dimse/test_provider*.py``. The ``net`` fixture
asserts after each test that no task, socket or timer is left behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from typing import Any, cast

import pytest
from pydicom.dataset import Dataset

from tests.net.conftest import (
    UPS_EVENT,
    UPS_PUSH,
    UPS_QUERY,
    UPS_WATCH,
    VERIFICATION,
    Net,
    make_config,
    make_policy,
)
from tests.net.pki import PKI, make_pki
from ups.dimse.datasets import IMPLICIT_VR_LITTLE_ENDIAN, decode_dataset, encode_dataset
from ups.dimse.messages import (
    CEchoRQ,
    CEchoRSP,
    CFindRQ,
    CFindRSP,
    NActionRQ,
    NActionRSP,
    NCreateRQ,
    NCreateRSP,
    NEventReportRQ,
    NEventReportRSP,
    NGetRQ,
    NGetRSP,
    NSetRQ,
    NSetRSP,
    Request,
    Response,
)
from ups.net.association import Association, RequestContext
from ups.net.errors import (
    AssociationAborted,
    AssociationRejected,
    ConnectFailed,
    NetTimeout,
)

pytestmark = pytest.mark.timeout(30)

IUID = "1.2.826.0.1.3680043.9.7433.2.1"


def dataset(size: int = 0, **attrs: Any) -> bytes:
    ds = Dataset()
    ds.PatientName = "Doe^Jane"
    ds.ProcedureStepLabel = "label"
    if size:
        ds.TextValue = "x" * size
    for key, value in attrs.items():
        setattr(ds, key, value)
    return encode_dataset(ds, IMPLICIT_VR_LITTLE_ENDIAN)


def echo_id(association: Association) -> CEchoRQ:
    return CEchoRQ(association.new_message_id())


async def echo(association: Association) -> Response:
    return await association.request(
        echo_id(association), association.context_for(VERIFICATION).context_id
    )


# ------------------------------------------------------------------ basics


async def test_echo_and_negotiated_parameters(net: Net) -> None:
    server = await net.serve(policy=make_policy(max_pdata_length=4096))
    assoc = await net.connect(server.port, config=make_config(max_pdata_receive=8192))
    rsp = await echo(assoc)
    assert isinstance(rsp, CEchoRSP) and rsp.status == 0
    negotiated = assoc.negotiated
    assert negotiated is not None
    assert negotiated.remote_max_pdata_length == 4096
    assert negotiated.local_max_pdata_length == 8192
    assert negotiated.remote_implementation_version_name == "TESTSCP"
    assert len(negotiated.contexts) == 6
    (peer,) = server.associations
    assert peer.negotiated is not None and peer.negotiated.remote_max_pdata_length == 8192
    await assoc.release()
    assert assoc.closed.done()


async def test_unknown_called_ae_rejected_1_1_7(net: Net) -> None:
    server = await net.serve()
    with pytest.raises(AssociationRejected) as info:
        await net.connect(server.port, called="NOBODY")
    assert (info.value.result, info.value.source, info.value.reason) == (1, 1, 7)
    assert "called-AE-title-not-recognized" in str(info.value)


async def test_connect_refused_is_named(net: Net, free_port: int) -> None:
    with pytest.raises(ConnectFailed, match=f"127.0.0.1:{free_port}"):
        await net.connect(free_port)


async def test_handler_outcomes(net: Net) -> None:
    """No handler: 0x0122; a raising handler: 0x0110 with a comment; async handlers."""

    def boom(request: Request, ctx: RequestContext) -> Response:
        raise RuntimeError("handler bug")

    async def later(request: Request, ctx: RequestContext) -> Response:
        assert isinstance(request, NGetRQ)
        await asyncio.sleep(0)
        return NGetRSP(request.message_id, 0, UPS_PUSH, IUID, dataset=dataset())

    server = await net.serve(handlers={UPS_WATCH: boom, UPS_PUSH: later})
    assoc = await net.connect(server.port)
    cid = assoc.context_for(UPS_EVENT).context_id
    rsp = await assoc.request(NEventReportRQ(assoc.new_message_id(), UPS_EVENT, IUID, 1), cid)
    assert rsp.status == 0x0122
    cid = assoc.context_for(UPS_WATCH).context_id
    rsp = await assoc.request(NActionRQ(assoc.new_message_id(), UPS_WATCH, IUID, 3), cid)
    assert rsp.status == 0x0110 and rsp.error_comment == "handler bug"
    cid = assoc.context_for(UPS_PUSH).context_id
    rsp = await assoc.request(NGetRQ(assoc.new_message_id(), UPS_PUSH, IUID), cid)
    assert isinstance(rsp, NGetRSP) and rsp.dataset == dataset()
    assert (await echo(assoc)).status == 0  # the association survived all of it
    await assoc.release()


# ------------------------------------------------------------------ DIMSE-N, fragmented


def n_handlers(seen: list[Request]) -> dict[str, Any]:
    def push(request: Request, ctx: RequestContext) -> Response:
        seen.append(request)
        if isinstance(request, NCreateRQ):
            return NCreateRSP(request.message_id, 0, UPS_PUSH, IUID, dataset=request.dataset)
        if isinstance(request, NSetRQ):
            return NSetRSP(request.message_id, 0, UPS_PUSH, IUID, dataset=request.dataset)
        if isinstance(request, NGetRQ):
            return NGetRSP(request.message_id, 0, UPS_PUSH, IUID, dataset=dataset(3000))
        assert isinstance(request, NActionRQ)
        return NActionRSP(request.message_id, 0, UPS_PUSH, IUID, request.action_type_id)

    def event(request: Request, ctx: RequestContext) -> Response:
        seen.append(request)
        assert isinstance(request, NEventReportRQ)
        return NEventReportRSP(
            request.message_id, 0, UPS_EVENT, IUID, request.event_type_id, dataset=dataset(700)
        )

    return {UPS_PUSH: push, UPS_EVENT: event}


@pytest.mark.parametrize(("pdu", "pack"), [(128, True), (128, False), (1024, True)])
async def test_dimse_n_both_directions_fragmented(net: Net, pdu: int, pack: bool) -> None:
    config = make_config(max_pdata_receive=pdu, max_pdata_send=pdu, pack_pdv=pack)
    server_seen: list[Request] = []
    client_seen: list[Request] = []
    server = await net.serve(
        policy=make_policy(max_pdata_length=pdu), config=config, handlers=n_handlers(server_seen)
    )
    assoc = await net.connect(server.port, config=config, handlers=n_handlers(client_seen))
    cid = assoc.context_for(UPS_PUSH).context_id
    big = dataset(2500)
    rsp = await assoc.request(NCreateRQ(assoc.new_message_id(), UPS_PUSH, IUID, dataset=big), cid)
    assert isinstance(rsp, NCreateRSP) and rsp.dataset == big
    rsp = await assoc.request(NSetRQ(assoc.new_message_id(), UPS_PUSH, IUID, dataset=big), cid)
    assert rsp.dataset == big
    rsp = await assoc.request(NGetRQ(assoc.new_message_id(), UPS_PUSH, IUID, (0x00100010,)), cid)
    assert rsp.dataset is not None
    assert decode_dataset(rsp.dataset, IMPLICIT_VR_LITTLE_ENDIAN).TextValue == "x" * 3000
    rsp = await assoc.request(
        NActionRQ(assoc.new_message_id(), UPS_PUSH, IUID, 1, dataset=dataset(300)), cid
    )
    assert isinstance(rsp, NActionRSP) and rsp.action_type_id == 1
    assert [type(r) for r in server_seen] == [NCreateRQ, NSetRQ, NGetRQ, NActionRQ]
    assert server_seen[0].dataset == big

    # The acceptor invokes an N-EVENT-REPORT on the same association (PS3.4 CC.2.4.2).
    (peer,) = server.associations
    pcid = peer.context_for(UPS_EVENT).context_id
    report = NEventReportRQ(peer.new_message_id(), UPS_EVENT, IUID, 1, dataset=dataset(1500))
    rsp = await peer.request(report, pcid)
    assert isinstance(rsp, NEventReportRSP) and rsp.dataset == dataset(700)
    assert client_seen == [report]
    await assoc.release()
    await asyncio.wait_for(peer.wait_closed(), 5)


# ------------------------------------------------------------------ C-FIND and C-CANCEL


def find_handler(contexts: list[RequestContext], *, honour: bool) -> Any:
    """Pending matches at a steady pace; with ``honour`` it answers a cancel itself."""

    async def handler(request: Request, ctx: RequestContext) -> AsyncIterator[Response]:
        assert isinstance(request, CFindRQ)
        contexts.append(ctx)
        for n in range(200):
            if honour and ctx.cancelled:
                yield CFindRSP(request.message_id, 0xFE00, UPS_QUERY)
                return
            yield CFindRSP(request.message_id, 0xFF00, UPS_QUERY, dataset=dataset(n))
            await asyncio.sleep(0.01)  # pacing only; the test waits on responses
        yield CFindRSP(request.message_id, 0x0000, UPS_QUERY)

    return handler


async def test_find_yields_matches_then_final(net: Net) -> None:
    async def three(request: Request, ctx: RequestContext) -> AsyncIterator[Response]:
        assert isinstance(request, CFindRQ)
        for n in range(3):
            yield CFindRSP(request.message_id, 0xFF00, UPS_QUERY, dataset=dataset(n + 1))
        yield CFindRSP(request.message_id, 0x0000, UPS_QUERY)

    server = await net.serve(handlers={UPS_QUERY: three})
    assoc = await net.connect(server.port, config=make_config(max_pdata_receive=256))
    cid = assoc.context_for(UPS_QUERY).context_id
    got = [
        r.status
        async for r in assoc.find(
            CFindRQ(assoc.new_message_id(), UPS_QUERY, dataset=dataset()), cid
        )
    ]
    assert got == [0xFF00, 0xFF00, 0xFF00, 0x0000]
    await assoc.release()


@pytest.mark.parametrize("honour", [True, False])
async def test_breaking_out_of_find_cancels(net: Net, honour: bool) -> None:
    """Leaving the loop sends C-CANCEL-RQ; the SCP sees it; the final response is Cancel.

    Without ``honour`` the handler ignores the cancel and the runtime ends it with the
    Cancel status itself. Either way the window slot (window 1) comes back.
    """
    served: list[RequestContext] = []
    server = await net.serve(handlers={UPS_QUERY: find_handler(served, honour=honour)})
    assoc = await net.connect(server.port)
    cid = assoc.context_for(UPS_QUERY).context_id
    request = CFindRQ(assoc.new_message_id(), UPS_QUERY, dataset=dataset())
    seen = 0
    async with contextlib.aclosing(
        cast(AsyncGenerator[CFindRSP, None], assoc.find(request, cid))
    ) as matches:
        async for rsp in matches:
            assert rsp.status == 0xFF00
            seen += 1
            if seen == 2:
                break
    # The final (Cancel) response arrives and frees the window slot for the next call.
    assert (await asyncio.wait_for(echo(assoc), 5)).status == 0
    assert not assoc._core.outstanding  # noqa: SLF001
    (ctx,) = served
    assert ctx.cancelled
    await assoc.release()


async def test_find_abandoned_without_aclosing_still_cancels(net: Net) -> None:
    """A plain ``break`` relies on the event loop finalising the generator."""
    served: list[RequestContext] = []
    server = await net.serve(handlers={UPS_QUERY: find_handler(served, honour=True)})
    assoc = await net.connect(server.port)
    cid = assoc.context_for(UPS_QUERY).context_id
    async for _ in assoc.find(CFindRQ(assoc.new_message_id(), UPS_QUERY, dataset=dataset()), cid):
        break
    assert (await asyncio.wait_for(echo(assoc), 5)).status == 0
    assert served[0].cancelled
    await assoc.release()


# ------------------------------------------------------------------ reaper


async def test_reaper_fails_every_waiter_with_the_overdue_message(net: Net) -> None:
    hold = asyncio.Event()

    async def never(request: Request, ctx: RequestContext) -> Response:
        await hold.wait()
        raise AssertionError("unreachable")

    server = await net.serve(policy=make_policy(max_ops_performed=2), handlers={UPS_PUSH: never})
    config = make_config(response_timeout=0.4, reaper_period=0.1, max_ops_invoked=2)
    assoc = await net.connect(server.port, config=config)
    cid = assoc.context_for(UPS_PUSH).context_id
    calls = [
        asyncio.ensure_future(assoc.request(NSetRQ(assoc.new_message_id(), UPS_PUSH, IUID), cid))
        for _ in range(3)  # two in flight, one waiting for a window slot
    ]
    done, _ = await asyncio.wait(calls, timeout=3)
    assert len(done) == 3, "a waiter hangs"
    errors = [c.exception() for c in calls]
    first = errors[0]
    assert isinstance(first, NetTimeout)
    assert "NSetRQ (message ID 1)" in str(first) and "-rspTO" in str(first)
    assert all(e is first for e in errors), errors
    # When it fires (exactly -rspTO after the request, on the -reaper beat) is asserted on
    # virtual time: tests/dimse/test_provider_deadlines.py.
    await asyncio.wait_for(assoc.wait_closed(), 2)
    (peer,) = [a for a in net.associations if a is not assoc]
    await asyncio.wait_for(peer.wait_closed(), 2)  # the SCP saw the A-ABORT
    with pytest.raises(NetTimeout):
        await echo(assoc)


# ------------------------------------------------------------------ release / abort


async def peers(net: Net, **kwargs: Any) -> tuple[Association, Association]:
    server = await net.serve(**kwargs)
    assoc = await net.connect(server.port)
    (peer,) = server.associations
    return assoc, peer


async def test_release_by_requestor(net: Net) -> None:
    assoc, peer = await peers(net)
    await asyncio.wait_for(assoc.release(), 5)
    await asyncio.wait_for(peer.wait_closed(), 5)
    assert not peer.is_established and not assoc.is_established


@pytest.mark.parametrize("side", ["requestor", "acceptor"])
async def test_abort_either_side(net: Net, side: str) -> None:
    assoc, peer = await peers(net)
    local, remote = (assoc, peer) if side == "requestor" else (peer, assoc)
    local.abort()
    await asyncio.wait_for(remote.wait_closed(), 5)
    await asyncio.wait_for(local.wait_closed(), 5)
    with pytest.raises(AssociationAborted, match="source 0, reason 0"):
        if remote is assoc:
            await echo(remote)
        else:
            remote._require_established()  # noqa: SLF001


async def test_peer_disconnect_fails_waiters(net: Net) -> None:
    hold = asyncio.Event()

    async def never(request: Request, ctx: RequestContext) -> Response:
        await hold.wait()
        raise AssertionError("unreachable")

    assoc, peer = await peers(net, handlers={UPS_PUSH: never})
    cid = assoc.context_for(UPS_PUSH).context_id
    call = asyncio.ensure_future(assoc.request(NSetRQ(assoc.new_message_id(), UPS_PUSH, IUID), cid))
    await asyncio.sleep(0.05)
    assert peer._transport is not None  # noqa: SLF001
    peer._transport.abort()  # noqa: SLF001 - TCP reset, no A-ABORT
    with pytest.raises(AssociationAborted):
        await asyncio.wait_for(call, 5)
    await asyncio.wait_for(assoc.wait_closed(), 5)
    await asyncio.wait_for(peer.wait_closed(), 5)


# ------------------------------------------------------------------ flow control


async def test_senders_block_on_a_peer_that_stops_reading(net: Net) -> None:
    """A peer that accepts but never reads: writes stop at the buffer limit; abort frees."""
    from tests.net.test_hostile import RawAcceptor

    async with RawAcceptor(window=(0, 0), rcvbuf=4096) as raw:
        limit = 64 * 1024
        config = make_config(
            max_ops_invoked=0, write_buffer_limit=limit, so_sndbuf=8192, response_timeout=30.0
        )
        assoc = await net.connect(raw.port, config=config)
        raw.stop_reading()
        cid = assoc.context_for(UPS_PUSH).context_id
        payload = dataset(200_000)
        calls = [
            asyncio.ensure_future(
                assoc.request(NSetRQ(assoc.new_message_id(), UPS_PUSH, IUID, dataset=payload), cid)
            )
            for _ in range(20)
        ]
        for _ in range(50):
            await asyncio.sleep(0.01)
        transport = assoc._transport  # noqa: SLF001
        assert transport is not None
        buffered = transport.get_write_buffer_size()
        assert buffered <= limit + len(payload) + 1024, buffered
        sent = assoc._core.outstanding  # noqa: SLF001
        assert sent < 20, "every sender wrote despite the stalled peer"
        assert not any(c.done() for c in calls)
        assoc.abort()
        done, _ = await asyncio.wait(calls, timeout=3)
        assert len(done) == 20
        assert all(isinstance(c.exception(), AssociationAborted) for c in calls)
        # The A-ABORT sits behind data the peer never reads: the close must not wait
        # for a drain that never comes (the transport is reset after a linger).
        await asyncio.wait_for(assoc.wait_closed(), 5)


async def test_send_timeout_ends_an_association_whose_peer_stops_reading(
    net: Net, caplog: pytest.LogCaptureFixture
) -> None:
    """-sendTO on the requestor side: a peer that stops reading our requests. Our writes
    stay blocked; the deadline aborts, every waiter gets the one send-timeout error, one
    log line names the peer and the bytes left queued, and the peer's end is reset. (The
    exact deadline is asserted on virtual time in test_provider_deadlines.)"""
    from tests.net.test_hostile import RawAcceptor

    async with RawAcceptor(window=(0, 0), rcvbuf=4096) as raw:
        config = make_config(
            max_ops_invoked=0,
            write_buffer_limit=64 * 1024,
            so_sndbuf=8192,
            response_timeout=30.0,
            send_timeout=0.3,
        )
        assoc = await net.connect(raw.port, config=config)
        raw.stop_reading()
        cid = assoc.context_for(UPS_PUSH).context_id
        payload = dataset(200_000)
        with caplog.at_level(logging.WARNING, logger="ups.net"):
            calls = [
                asyncio.ensure_future(
                    assoc.request(
                        NSetRQ(assoc.new_message_id(), UPS_PUSH, IUID, dataset=payload), cid
                    )
                )
                for _ in range(5)
            ]
            done, _ = await asyncio.wait(calls, timeout=10)
            await asyncio.wait_for(assoc.wait_closed(), 5)
        assert len(done) == 5
        errors = [call.exception() for call in calls]
        assert isinstance(errors[0], NetTimeout) and "(-sendTO)" in str(errors[0])
        assert all(error is errors[0] for error in errors)
        (line,) = [r.getMessage() for r in caplog.records if "-sendTO" in r.getMessage()]
        assert f"127.0.0.1:{raw.port} stopped reading" in line and "bytes still queued" in line
        conn = raw.conn
        assert conn is not None
        reset = 7  # TCP_CLOSE: the peer's end saw our RST (SO_LINGER 0)
        await asyncio.wait_for(_until(lambda: _tcp_state(conn) == reset), 5)


def _tcp_state(sock: socket.socket) -> int:
    return sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 8)[0]


async def _until(predicate: Callable[[], bool]) -> None:
    while not predicate():
        await asyncio.sleep(0.01)


# ------------------------------------------------------------------ TLS


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PKI:
    return make_pki(tmp_path_factory.mktemp("pki"))


async def test_tls_association(net: Net, pki: PKI) -> None:
    server = await net.serve(config=make_config(tls=pki.server_options()))
    assoc = await net.connect(server.port, config=make_config(tls=pki.client_options()))
    assert (await echo(assoc)).status == 0
    (peer,) = server.associations
    assert peer._transport is not None  # noqa: SLF001
    cert = peer._transport.get_extra_info("peercert")  # noqa: SLF001
    assert cert is not None
    await assoc.release()


async def test_tls_client_without_certificate_refused(net: Net, pki: PKI) -> None:
    server = await net.serve(config=make_config(tls=pki.server_options()))
    with pytest.raises((ConnectFailed, AssociationAborted)):
        await net.connect(server.port, config=make_config(tls=pki.client_options(keystore=None)))
    assert not server.associations


async def test_plain_client_on_tls_port_gets_a_clean_close(net: Net, pki: PKI) -> None:
    server = await net.serve(config=make_config(tls=pki.server_options()))
    loop = asyncio.get_running_loop()
    start = loop.time()
    with pytest.raises(AssociationAborted, match="before the association was established"):
        await net.connect(server.port, config=make_config(accept_timeout=5.0))
    assert loop.time() - start < 2.0  # closed by the server, not by our -acceptTO
    assert not server.associations


async def test_silent_client_on_tls_port_closed_by_handshake_timeout(net: Net, pki: PKI) -> None:
    server = await net.serve(config=make_config(tls=pki.server_options(handshake_timeout=0.5)))
    loop = asyncio.get_running_loop()
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    start = loop.time()
    try:
        data = await asyncio.wait_for(reader.read(), 5)
    except ConnectionResetError:
        data = b""
    elapsed = loop.time() - start
    writer.close()
    await writer.wait_closed()
    assert data == b""
    assert 0.4 <= elapsed < 2.0
    assert not server.associations


async def test_both_sides_sending_large_messages_do_not_deadlock(net: Net) -> None:
    """Two peers that both write faster than the other reads keep reading, so both finish."""

    def ack(request: Request, ctx: RequestContext) -> Response:
        assert isinstance(request, NEventReportRQ)
        return NEventReportRSP(request.message_id, 0, UPS_EVENT, IUID, request.event_type_id)

    small = dict(write_buffer_limit=16 * 1024, so_sndbuf=65536, so_rcvbuf=65536)
    server = await net.serve(
        policy=make_policy(max_ops_performed=8, max_ops_invoked=8),
        config=make_config(**small),
        handlers={UPS_EVENT: ack},
    )
    config = make_config(max_ops_invoked=8, max_ops_performed=8, **small)
    assoc = await net.connect(server.port, config=config, handlers={UPS_EVENT: ack})
    (peer,) = server.associations
    payload = dataset(300_000)

    async def flood(side: Association) -> list[Response]:
        cid = side.context_for(UPS_EVENT).context_id
        return await asyncio.gather(
            *(
                side.request(
                    NEventReportRQ(side.new_message_id(), UPS_EVENT, IUID, 1, dataset=payload), cid
                )
                for _ in range(8)
            )
        )

    both = await asyncio.wait_for(asyncio.gather(flood(assoc), flood(peer)), 15)
    assert all(r.status == 0 for side in both for r in side)
    await assoc.release()
