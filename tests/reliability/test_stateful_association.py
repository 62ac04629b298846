"""A stateful model of one association: two provider cores in memory, then our real
requestor and server on loopback.

``ProviderPair`` (``stateful_provider``) drives a requestor and an acceptor
``dimse.provider.DimseProvider`` on virtual time: requests both ways, answers,
cancel and abandon, release, abort, garbage, close and deadlines, with PDUs crossing
in any chunking; it checks the windows, that each request ends once, and that
``Closed`` is last. (The same model one layer down, over ``pdu.machine.UpperLayer``,
is ``tests/pdu/test_machine_stateful.py``.)

``LoopbackPair`` drives ``net.Association`` on 127.0.0.1 the same way and checks what
only the adapter can get wrong: every request waiter (a future) is resolved once the
association is closed, with a ``NetError``.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from tests.reliability.stateful_provider import GARBAGE, ProviderPair
from ups.dimse.messages import CEchoRQ, NGetRQ, NGetRSP, Request, Response
from ups.net.association import Association, RequestContext
from ups.net.config import AssociationConfig
from ups.net.errors import NetError
from ups.net.requestor import build_request, connect
from ups.net.server import Server, serve
from ups.pdu.enums import AbortReason
from ups.pdu.negotiation import AcceptorPolicy, SyntaxSupport

VERIFICATION = "1.2.840.10008.1.1"
UPS_PUSH = "1.2.840.10008.5.1.4.34.6.1"
IMPLICIT_LE = "1.2.840.10008.1.2"

TestProviderPair = ProviderPair.TestCase
TestProviderPair.settings = settings(
    max_examples=150,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


# =========================================================================== loopback

LOOPBACK_CONFIG = AssociationConfig(
    accept_timeout=5.0,
    request_timeout=5.0,
    release_timeout=2.0,
    response_timeout=5.0,
    reaper_period=1.0,
    pdu_timeout=2.0,
    so_close_delay=0.01,
    max_ops_invoked=4,
    max_ops_performed=4,
)
POLICY = AcceptorPolicy(
    ae_titles=frozenset({"SCP"}),
    supported={
        VERIFICATION: SyntaxSupport((IMPLICIT_LE,)),
        UPS_PUSH: SyntaxSupport((IMPLICIT_LE,)),
    },
    max_pdata_length=16384,
    implementation_class_uid="1.2.3.4",
    max_ops_invoked=4,
    max_ops_performed=4,
)
STEP = 5.0
"""Upper bound for one rule on loopback; a hang fails the step, not the whole run."""


class LoopbackPair(RuleBasedStateMachine):
    """Our requestor and our server on 127.0.0.1 driven by the same kinds of rules.

    The server's N-GET handler holds its answer until the ``answer`` rule, so requests
    can be outstanding when release, abort, garbage or close happen.
    """

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.server: Server | None = None
        self.association: Association | None = None
        self.held: list[tuple[int, asyncio.Future[Response]]] = []
        self.waiters: list[asyncio.Task[Response]] = []
        self.message_id = 0
        self.finished = False

    def run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(asyncio.wait_for(coro, STEP))

    def handler(self, request: Request, ctx: RequestContext) -> asyncio.Future[Response]:
        assert isinstance(request, NGetRQ)
        held: asyncio.Future[Response] = self.loop.create_future()
        self.held.append((request.message_id, held))
        return held

    @initialize()
    def start(self) -> None:
        async def go() -> Association:
            self.server = await serve(
                "127.0.0.1", 0, POLICY, LOOPBACK_CONFIG, handlers={UPS_PUSH: self.handler}
            )
            rq = build_request(
                "SCP",
                "SCU",
                [(VERIFICATION, (IMPLICIT_LE,)), (UPS_PUSH, (IMPLICIT_LE,))],
                LOOPBACK_CONFIG,
            )
            return await connect("127.0.0.1", self.server.port, rq, LOOPBACK_CONFIG)

        self.association = self.run(go())

    def live(self) -> bool:
        return self.association is not None and self.association.is_established

    def _send(self, request: Request, context_id: int) -> None:
        assert self.association is not None
        task = self.loop.create_task(self.association.request(request, context_id))
        task.add_done_callback(lambda t: t.cancelled() or t.exception())
        self.waiters.append(task)
        self.run(asyncio.sleep(0))  # let it reach the wire

    @rule()
    def let_time_pass(self) -> None:
        self.run(asyncio.sleep(0.005))

    @precondition(lambda self: self.live())
    @rule()
    def echo(self) -> None:
        self.message_id += 1
        self._send(CEchoRQ(self.message_id), 1)

    @precondition(lambda self: self.live() and sum(not f.done() for _, f in self.held) < 3)
    @rule()
    def held_request(self) -> None:
        self.message_id += 1
        self._send(NGetRQ(self.message_id, UPS_PUSH, "1.2.3"), 3)

    @precondition(lambda self: any(not f.done() for _, f in self.held))
    @rule()
    def answer(self) -> None:
        for message_id, held in self.held:
            if not held.done():
                held.set_result(NGetRSP(message_id, 0x0000, UPS_PUSH, "1.2.3"))
                break
        self.run(asyncio.sleep(0.01))

    @precondition(lambda self: self.association is not None and not self.finished)
    @rule()
    def release(self) -> None:
        assert self.association is not None
        # Held requests would keep the acceptor from answering: answer them first.
        for _, held in self.held:
            if not held.done():
                held.cancel()
        with contextlib.suppress(NetError):
            self.run(self.association.release())
        self.finished = True

    @precondition(lambda self: self.association is not None and not self.finished)
    @rule(provider=st.booleans())
    def abort(self, provider: bool) -> None:
        assert self.association is not None
        self.association.abort(AbortReason.UNEXPECTED_PDU if provider else None)
        self.run(self.association.wait_closed())
        self.finished = True

    @precondition(lambda self: self.association is not None and not self.finished)
    @rule(garbage=st.sampled_from(GARBAGE))
    def peer_garbage(self, garbage: bytes) -> None:
        """The server side writes bytes no peer may send; our requestor must abort."""
        assert self.server is not None and self.association is not None
        (acceptor,) = self.server.associations or (None,)
        if acceptor is None or acceptor._transport is None:  # noqa: SLF001
            return
        acceptor._transport.write(garbage)  # noqa: SLF001
        self.run(self.association.wait_closed())
        self.finished = True

    @precondition(lambda self: self.association is not None and not self.finished)
    @rule()
    def close(self) -> None:
        assert self.association is not None
        transport = self.association._transport  # noqa: SLF001
        if transport is not None:
            transport.abort()
        self.run(self.association.wait_closed())
        self.finished = True

    @invariant()
    def waiters_resolved_once_closed(self) -> None:
        association = self.association
        if association is None or not association.closed.done():
            return
        self.run(asyncio.sleep(0))
        for task in self.waiters:
            assert task.done(), "a request waiter outlived its association"
            if not task.cancelled() and task.exception() is not None:
                assert isinstance(task.exception(), NetError), task.exception()
        assert not association.is_established

    def teardown(self) -> None:
        try:
            if self.association is not None and not self.association.closed.done():
                self.association.abort()
                self.run(self.association.wait_closed())
            for _, held in self.held:
                if not held.done():
                    held.cancel()
            if self.server is not None:
                self.run(self.server.close(grace=1.0))
            self.waiters_resolved_once_closed()
            for task in self.waiters:
                assert task.done()
        finally:
            pending = [t for t in asyncio.all_tasks(self.loop) if not t.done()]
            for task in pending:
                task.cancel()
            if pending:
                self.loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            self.loop.close()


TestLoopbackPair = LoopbackPair.TestCase
TestLoopbackPair.settings = settings(
    max_examples=12,
    stateful_step_count=8,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestLoopbackPair = pytest.mark.timeout(60)(TestLoopbackPair)
