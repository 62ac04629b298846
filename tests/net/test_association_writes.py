"""One write per read, deferred answers and TCP_QUICKACK, on an in-memory transport.

DESIGN.md: the responses to what one read brought leave in one ``transport.write``;
a handler may answer later through ``ctx.respond`` (``DEFERRED``); and after a read
that leaves a message incomplete the adapter asks the kernel to ACK at once, so that a
peer with Nagle on is not held up by our delayed ACK.
"""

from __future__ import annotations

import asyncio
import socket

import pytest

from bench import rawpdu
from tests.net.conftest import VERIFICATION, make_config, make_policy
from tests.net.memtransport import open_acceptor, responses
from ups.dimse.messages import CEchoRSP, Request
from ups.net.association import DEFERRED, Association, HandlerResult, RequestContext

QUICKACK = getattr(socket, "TCP_QUICKACK", None)


def _echoes(count: int) -> bytes:
    template = rawpdu.echo_template()
    return b"".join(template.stamped(i + 1) for i in range(count))


def _acceptor(handlers: dict[str, object] | None = None, **config: object) -> Association:
    return Association(
        make_config(max_ops_performed=0, **config),
        requestor=False,
        policy=make_policy(ae_titles=None, max_ops_performed=0),
        handlers=handlers,  # type: ignore[arg-type]
    )


async def test_a_reads_answers_leave_in_one_write() -> None:
    association = _acceptor()
    transport = open_acceptor(association, VERIFICATION, window=16)
    association.data_received(_echoes(16))
    assert len(transport.writes) == 1
    answered = responses(transport.writes[0])
    assert [int.from_bytes(r[0x0120], "little") for r in answered] == list(range(1, 17))
    association.abort()


async def test_deferred_answers_wait_for_respond_and_count_in_the_window() -> None:
    held: list[tuple[Request, RequestContext]] = []

    def later(request: Request, ctx: RequestContext) -> HandlerResult:
        held.append((request, ctx))
        return DEFERRED

    association = _acceptor({VERIFICATION: later})
    transport = open_acceptor(association, VERIFICATION, window=4)
    association.data_received(_echoes(3))
    assert transport.writes == [] and len(held) == 3
    assert association._core.performing  # still in the window: release waits for them
    for request, ctx in held:
        ctx.respond(CEchoRSP(request.message_id, 0x0000, VERIFICATION))  # type: ignore[union-attr]
    held[0][1].respond(CEchoRSP(1, 0x0000, VERIFICATION))  # a second answer is ignored
    await asyncio.sleep(0)  # answers given outside a read share one write, a loop pass later
    assert len(transport.writes) == 1
    assert len(responses(transport.writes[0])) == 3
    assert not association._core.performing
    association.abort()


async def test_read_end_hooks_run_before_the_reads_write() -> None:
    order: list[str] = []
    association: Association

    def hooked(request: Request, ctx: RequestContext) -> HandlerResult:
        def at_end() -> None:
            order.append(f"hook, writes so far {len(transport.writes)}")
            ctx.respond(CEchoRSP(request.message_id, 0x0000, VERIFICATION))  # type: ignore[union-attr]

        ctx.association.at_read_end(at_end)
        return DEFERRED

    association = _acceptor({VERIFICATION: hooked})
    transport = open_acceptor(association, VERIFICATION, window=2)
    association.data_received(_echoes(2))
    assert order == ["hook, writes so far 0"] * 2
    assert len(transport.writes) == 1 and len(responses(transport.writes[0])) == 2
    association.abort()


@pytest.mark.skipif(QUICKACK is None, reason="TCP_QUICKACK is Linux only")
async def test_quickack_after_a_read_that_leaves_a_message_incomplete() -> None:
    association = _acceptor()
    transport = open_acceptor(association, VERIFICATION)
    assert QUICKACK is not None
    quick = (socket.IPPROTO_TCP, QUICKACK, 1)
    whole = _echoes(1)
    association.data_received(whole)
    assert quick not in transport.socket.options  # complete: our answer carries the ACK
    association.data_received(whole[:10])  # a partial PDU: the peer may wait on our ACK
    assert transport.socket.options.count(quick) == 1
    association.data_received(whole[10:])
    assert transport.socket.options.count(quick) == 1
    # A command PDU whose data set PDU is still to come (pynetdicom sends two PDUs).
    command = rawpdu.n_event_report_rq(2)
    association.data_received(rawpdu._pdu(rawpdu.P_DATA_TF, _pdv(command, 0x03)))
    assert transport.socket.options.count(quick) == 2
    association.abort()


@pytest.mark.skipif(QUICKACK is None, reason="TCP_QUICKACK is Linux only")
async def test_quickack_can_be_turned_off() -> None:
    association = _acceptor(tcp_quickack=False)
    transport = open_acceptor(association, VERIFICATION)
    association.data_received(_echoes(1)[:10])
    assert all(option[1] != QUICKACK for option in transport.socket.options)
    association.abort()


def _pdv(data: bytes, control: int, context_id: int = 1) -> bytes:
    return (len(data) + 2).to_bytes(4, "big") + bytes((context_id, control)) + data
