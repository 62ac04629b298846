"""ups.dimse.provider: two cores in memory on virtual time (see ``provider_pair``).

Establishment and rejection, both Asynchronous Operations Windows, Message IDs (a
duplicate of one outstanding is refused 0x0210), responses matched by Message ID,
C-FIND streams and C-CANCEL, release (and collision), abort. The deadlines have their
own module, ``test_provider_deadlines``.
"""

from __future__ import annotations

import pytest

from tests.dimse.provider_pair import (
    ECHO_CID,
    IMPLICIT_LE,
    IUID,
    PUSH_CID,
    QUERY_CID,
    SETTINGS,
    UPS_PUSH,
    UPS_QUERY,
    Lone,
    Pair,
    Performer,
    Side,
    answer_at_once,
    answers,
    associate_rq,
    final_statuses,
    find_rsp,
    policy,
    take_on_all,
    wire,
)
from ups.dimse.errors import ProviderAborted, ProviderError, ProviderRejected
from ups.dimse.messages import (
    CCancelRQ,
    CEchoRQ,
    CFindRQ,
    CFindRSP,
    NGetRQ,
    NGetRSP,
    NSetRQ,
    NSetRSP,
)
from ups.dimse.provider import DimseProvider
from ups.dimse.provider_events import (
    Aborted,
    Closed,
    Established,
    PauseReading,
    Rejected,
    Released,
    RequestReceived,
    RequestRejected,
    ResponseReceived,
    ResumeReading,
)
from ups.dimse.status import Status
from ups.pdu.codec import encode_pdu
from ups.pdu.enums import ContextResult
from ups.pdu.fsm import State
from ups.pdu.items import AsyncOpsWindow, PresentationContextAC, UserInformation
from ups.pdu.pdus import AAssociateAC

PENDING, CANCEL = 0xFF00, 0xFE00


def nset(message_id: int) -> NSetRQ:
    return NSetRQ(message_id, UPS_PUSH, IUID)


def received(side: Side) -> list[int]:
    return [getattr(e.request, "message_id", 0) for e in side.of(RequestReceived)]


# ------------------------------------------------------------------ establishment


def test_establish_and_echo() -> None:
    pair = Pair().open()
    (established,) = pair.req.of(Established)
    assert established.negotiated.remote_ae_title == "SCP"
    assert pair.acc.core.negotiated is not None
    assert pair.acc.core.negotiated.remote_ae_title == "SCU"
    assert pair.req.core.is_established and pair.acc.core.is_established
    message_id = pair.echo()
    assert final_statuses(pair.req) == {message_id: 0}
    assert pair.req.core.outstanding == 0


def test_rejected_by_policy_1_1_7() -> None:
    pair = Pair(rq=associate_rq(called="NOBODY")).open(establish=False)
    for side, local in ((pair.req, False), (pair.acc, True)):
        (rejected,) = side.of(Rejected)
        assert isinstance(rejected, Rejected) and rejected.local is local
        cause = rejected.cause
        assert (cause.result, cause.source, cause.reason) == (1, 1, 7)
        assert not side.of(Established)
    assert pair.acc.of(Rejected)[0].calling_ae_title == "SCU"
    pair.advance(SETTINGS.request_timeout)  # the acceptor's ARTIM closes if the peer does not
    assert pair.req.closed and pair.acc.closed
    with pytest.raises(ProviderRejected):
        pair.req.core.check_established()


def test_an_acceptor_needs_a_policy() -> None:
    with pytest.raises(ValueError):
        DimseProvider(SETTINGS, requestor=False)


def test_requests_before_establishment_are_refused() -> None:
    core = DimseProvider(SETTINGS, requestor=True)
    with pytest.raises(ProviderError, match="not established"):
        core.send_request(CEchoRQ(1), ECHO_CID, 0.0)


# ------------------------------------------------------------------ Message IDs


def test_message_ids_are_unique_among_outstanding_requests() -> None:
    pair = Pair(performer=take_on_all).open()
    core = pair.req.core
    first = core.new_message_id()
    pair.send(nset(first), PUSH_CID)
    with pytest.raises(ProviderError, match=f"message ID {first} is already outstanding"):
        core.send_request(nset(first), PUSH_CID, pair.now)
    for _ in range(0xFFFF - 1):
        assert core.new_message_id() != first  # wraps at 65535, skipping the one in use


# ------------------------------------------------------------------ duplicate Message IDs

DUPLICATE = int(Status.DUPLICATE_INVOCATION)


def established(*, requestor: bool, performed: int, performer: Performer = take_on_all) -> Lone:
    """A core of either role, established with a scripted peer that may invoke
    ``performed`` operations at once (the peer's requests come as raw bytes)."""
    rq = associate_rq(invoked=performed, performed=performed)
    if not requestor:
        lone = Lone(acceptor_policy=policy(performed=performed), performer=performer).connect()
        lone.feed(encode_pdu(rq))
    else:
        lone = Lone(requestor=True, performer=performer).connect(rq)
        contexts = tuple(
            PresentationContextAC(pc.context_id, ContextResult.ACCEPTANCE, IMPLICIT_LE)
            for pc in rq.presentation_contexts
        )
        window = AsyncOpsWindow(performed, performed)
        info = UserInformation(16384, "1.2.3.4", async_ops_window=window)
        lone.feed(encode_pdu(AAssociateAC("SCP", "SCU", contexts, info)))
    assert lone.core.is_established and lone.take()
    return lone


def nget(message_id: int) -> NGetRQ:
    return NGetRQ(message_id, UPS_PUSH, IUID)


def answer(lone: Lone, message_id: int, status: int = 0) -> None:
    performed = lone.side.performing.pop(message_id)
    lone.core.complete(performed, NGetRSP(message_id, status, UPS_PUSH, IUID), lone.now)
    lone.pump()


@pytest.mark.parametrize("requestor", [False, True], ids=["acceptor", "requestor"])
def test_a_duplicate_of_a_request_being_performed_is_refused_0210(requestor: bool) -> None:
    """PS3.7 C.5.1: two outstanding requests under Message ID 7 (window 2): the second
    is answered 0x0210 and never handed over; the first proceeds and gets its answer.
    Either role performs the peer's requests (an SCU receives N-EVENT-REPORTs)."""
    lone = established(requestor=requestor, performed=2)
    lone.feed(wire((nget(7), PUSH_CID), (nget(7), PUSH_CID)))
    assert [e.request.message_id for e in lone.side.of(RequestReceived)] == [7]  # type: ignore[union-attr]
    assert not lone.side.of(RequestRejected)  # the core answers it itself
    assert lone.core.performing == 1
    assert answers(lone.take()) == [(7, DUPLICATE)]
    answer(lone, 7)
    assert answers(lone.take()) == [(7, 0)]
    assert lone.core.is_established and lone.core.performing == 0


def test_a_duplicate_does_not_replace_the_first_request() -> None:
    """The first C-FIND under ID 3 stays the one a C-CANCEL-RQ reaches (the duplicate
    used to overwrite it in the table of requests being performed)."""
    lone = established(requestor=False, performed=2)
    lone.feed(wire((CFindRQ(3, UPS_QUERY), QUERY_CID), (CFindRQ(3, UPS_QUERY), QUERY_CID)))
    first = lone.side.performing[3]
    assert answers(lone.take()) == [(3, DUPLICATE)]
    lone.feed(wire((CCancelRQ(3), QUERY_CID)))
    assert first.cancelled
    assert not lone.core.answer(first, find_rsp(3, PENDING))  # the Cancel status instead
    lone.core.finish(first, lone.now)
    lone.pump()
    assert answers(lone.take()) == [(3, CANCEL)]


def test_a_duplicate_of_a_held_request_is_refused_0210() -> None:
    """Beyond the window (granted 1): 1 is performed, 2 held; a second 2 (held) and a
    second 1 (performing) are refused at once, and the held 2 still starts in turn."""
    lone = established(requestor=False, performed=1)
    lone.feed(wire(*((nget(message_id), PUSH_CID) for message_id in (1, 2, 2, 1))))
    assert lone.core.performing == 1 and lone.core.held == 1
    assert answers(lone.take()) == [(2, DUPLICATE), (1, DUPLICATE)]
    answer(lone, 1)
    assert lone.core.performing == 1 and lone.core.held == 0
    answer(lone, 2)
    assert answers(lone.take()) == [(1, 0), (2, 0)]
    assert [e.request.message_id for e in lone.side.of(RequestReceived)] == [1, 2]  # type: ignore[union-attr]


def test_a_message_id_may_be_used_again_once_answered() -> None:
    """Message IDs are unique among outstanding requests only (PS3.7 §9.1.1.1): answered
    at once, or answered before the next one arrives, the ID is free again."""
    lone = established(requestor=False, performed=2, performer=answer_at_once)
    lone.feed(wire((CEchoRQ(5), ECHO_CID), (CEchoRQ(5), ECHO_CID)))
    assert answers(lone.take()) == [(5, 0), (5, 0)]
    lone.feed(wire((nget(7), PUSH_CID)))
    answer(lone, 7)
    lone.feed(wire((nget(7), PUSH_CID)))
    answer(lone, 7)
    assert answers(lone.take()) == [(7, 0), (7, 0)]
    assert not lone.side.of(RequestRejected)


def test_responses_are_matched_by_message_id_in_any_order() -> None:
    pair = Pair(
        acceptor_policy=policy(performed=2, invoked=2),
        rq=associate_rq(invoked=2, performed=2),
        performer=take_on_all,
    ).open()
    pair.send(nset(7), PUSH_CID)
    pair.send(nset(9), PUSH_CID)
    acc = pair.acc
    for message_id in (9, 7):  # answered out of order
        performed = acc.performing.pop(message_id)
        acc.core.complete(performed, NSetRSP(message_id, message_id, UPS_PUSH, IUID), pair.now)
        pair.settle()
    assert [e.message_id for e in pair.req.of(ResponseReceived)] == [9, 7]
    assert final_statuses(pair.req) == {7: 7, 9: 9}


def test_response_to_unknown_message_id_aborts() -> None:
    """Kept as it is (issue 17 keeps it too): PS3.7 has no answer for a response to a
    request nobody sent, so the association aborts, as in dcm4che: A-ABORT (2, 5)."""
    pair = Pair().open()
    pair.acc.core.respond(NSetRSP(42, 0, UPS_PUSH, IUID), PUSH_CID)
    pair.settle()
    cause = pair.req.failure
    assert isinstance(cause, ProviderAborted)
    assert str(cause) == "response to unknown message ID 42"
    peer_cause = pair.acc.failure
    assert isinstance(peer_cause, ProviderAborted)
    assert (peer_cause.source, peer_cause.reason) == (2, 5)


# ------------------------------------------------------------------ our window


def test_requests_beyond_our_window_wait_their_turn() -> None:
    window, total = 4, 10
    pair = Pair(
        acceptor_policy=policy(performed=window),
        rq=associate_rq(invoked=window),
        performer=take_on_all,
    ).open()
    assert pair.req.core.negotiated is not None
    assert pair.req.core.negotiated.max_ops_local_invokes == window
    ids = [pair.req.core.new_message_id() for _ in range(total)]
    for message_id in ids:
        pair.req.core.send_request(nset(message_id), PUSH_CID, pair.now)
    pair.settle()
    assert pair.req.core.outstanding == window and pair.req.core.queued == total - window
    assert received(pair.acc) == ids[:window]  # the rest are not sent
    peak = 0
    while pair.acc.performing:
        peak = max(peak, len(pair.acc.performing))
        message_id = min(pair.acc.performing)
        performed = pair.acc.performing.pop(message_id)
        pair.acc.core.complete(performed, NSetRSP(message_id, 0, UPS_PUSH, IUID), pair.now)
        pair.settle()
    assert peak == window
    assert received(pair.acc) == ids
    assert list(final_statuses(pair.req)) == ids  # each caller got its own response
    assert set(final_statuses(pair.req).values()) == {0}
    assert pair.req.core.outstanding == pair.req.core.queued == 0


def test_a_queued_request_can_be_withdrawn() -> None:
    pair = Pair(performer=take_on_all).open()
    pair.send(nset(1), PUSH_CID)
    pair.send(nset(2), PUSH_CID)  # window 1: queued
    assert pair.req.core.queued == 1
    pair.req.core.abandon(2, pair.now)
    assert pair.req.core.queued == 0
    performed = pair.acc.performing.pop(1)
    pair.acc.core.complete(performed, NSetRSP(1, 0, UPS_PUSH, IUID), pair.now)
    pair.settle()
    assert received(pair.acc) == [1]


def test_requests_wait_while_writes_are_paused() -> None:
    pair = Pair(acceptor_policy=policy(performed=0), rq=associate_rq(invoked=0)).open()
    core = pair.req.core
    core.writing_paused(pair.now)
    for message_id in (1, 2, 3):
        core.send_request(nset(message_id), PUSH_CID, pair.now)
    pair.settle()
    assert core.queued == 3 and not received(pair.acc)
    core.writing_resumed(pair.now)
    pair.settle()
    assert received(pair.acc) == [1, 2, 3]
    assert final_statuses(pair.req) == {1: 0, 2: 0, 3: 0}


# ------------------------------------------------------------------ the peer's window


def test_requests_beyond_the_peers_window_are_held_and_reading_pauses() -> None:
    """The requestor claims a window of 3; the acceptor granted 1 (as a peer that ignores
    the negotiation would): two are held, reading pauses, then each starts in turn."""
    pair = Pair(
        acceptor_policy=policy(performed=1), rq=associate_rq(invoked=3), performer=take_on_all
    ).open()
    pair.req.core._ours.set_window(3)  # noqa: SLF001 - a peer beyond its window
    for message_id in (1, 2, 3):
        pair.req.core.send_request(nset(message_id), PUSH_CID, pair.now)
    pair.settle()
    acc = pair.acc
    assert received(acc) == [1] and acc.core.held == 2
    assert acc.of(PauseReading) and not acc.reading
    for message_id in (1, 2, 3):
        performed = acc.performing.pop(message_id)
        acc.core.complete(performed, NSetRSP(message_id, 0, UPS_PUSH, IUID), pair.now)
        pair.settle()
        assert acc.core.performing <= 1
    assert received(acc) == [1, 2, 3]
    assert acc.of(ResumeReading) and acc.reading
    assert final_statuses(pair.req) == {1: 0, 2: 0, 3: 0}


def test_answers_given_at_once_never_count_in_the_window() -> None:
    pair = Pair(acceptor_policy=policy(performed=1), rq=associate_rq(invoked=3)).open()
    pair.req.core._ours.set_window(3)  # noqa: SLF001
    for message_id in (1, 2, 3):
        pair.req.core.send_request(CEchoRQ(message_id), ECHO_CID, pair.now)
    pair.settle()
    assert not pair.acc.of(PauseReading) and pair.acc.core.held == 0
    assert final_statuses(pair.req) == {1: 0, 2: 0, 3: 0}


def test_a_peer_flooding_a_stalled_writer_is_paused() -> None:
    """Our answers back up (writes paused): past the window's worth, reading stops."""
    pair = Pair(acceptor_policy=policy(performed=2), rq=associate_rq(invoked=2)).open()
    pair.req.core._ours.set_window(0)  # noqa: SLF001 - a peer ignoring the window
    pair.acc.core.writing_paused(pair.now)
    for message_id in range(1, 4):
        pair.req.core.send_request(CEchoRQ(message_id), ECHO_CID, pair.now)
    pair.settle()
    assert pair.acc.of(PauseReading)
    pair.acc.core.writing_resumed(pair.now)
    pair.settle()
    assert pair.acc.reading
    assert final_statuses(pair.req) == {1: 0, 2: 0, 3: 0}


# ------------------------------------------------------------------ C-FIND and C-CANCEL


def find(pair: Pair, message_id: int = 1) -> None:
    pair.send(CFindRQ(message_id, UPS_QUERY), QUERY_CID, stream=True)


def test_find_streams_pending_responses_then_the_final_one() -> None:
    pair = Pair(performer=take_on_all).open()
    find(pair)
    (performed,) = pair.acc.performing.values()
    for _ in range(3):
        assert pair.acc.core.answer(performed, find_rsp(1, PENDING))
    pair.acc.core.answer(performed, find_rsp(1, 0))
    pair.acc.core.finish(performed, pair.now)
    pair.settle()
    events = pair.req.of(ResponseReceived)
    assert [(e.response.status, e.final) for e in events] == [
        (PENDING, False),
        (PENDING, False),
        (PENDING, False),
        (0, True),
    ]
    assert pair.req.core.outstanding == 0


def test_pending_responses_to_a_plain_request_are_not_reported() -> None:
    pair = Pair(performer=take_on_all).open()
    pair.send(CFindRQ(1, UPS_QUERY), QUERY_CID)  # not a stream
    (performed,) = pair.acc.performing.values()
    pair.acc.core.answer(performed, find_rsp(1, PENDING))
    pair.acc.core.complete(performed, find_rsp(1, 0), pair.now)
    pair.settle()
    assert [(e.final) for e in pair.req.of(ResponseReceived)] == [True]


@pytest.mark.parametrize("performer_honours", [True, False])
def test_cancel_marks_the_request_and_the_final_status_is_cancel(performer_honours: bool) -> None:
    """C-CANCEL-RQ marks the performed request; a performer that goes on with pending
    responses has the next one replaced by the final Cancel (PS3.7 §9.3.2.3)."""
    pair = Pair().open()
    find(pair)
    (performed,) = pair.acc.performing.values()
    assert pair.acc.core.answer(performed, find_rsp(1, PENDING))
    pair.settle()
    pair.req.core.cancel(1, pair.now)
    pair.settle()
    assert performed.cancelled
    if performer_honours:
        pair.acc.core.complete(performed, find_rsp(1, CANCEL), pair.now)
    else:
        assert not pair.acc.core.answer(performed, find_rsp(1, PENDING))
        pair.acc.core.finish(performed, pair.now)
    pair.settle()
    statuses = [e.response.status for e in pair.req.of(ResponseReceived)]
    assert statuses == [PENDING, CANCEL]
    assert pair.req.core.outstanding == 0
    assert pair.echo() and pair.req.core.outstanding == 0  # the window place came back


def test_abandoned_find_is_cancelled_and_its_answers_absorbed() -> None:
    pair = Pair().open()
    find(pair)
    (performed,) = pair.acc.performing.values()
    pair.acc.core.answer(performed, find_rsp(1, PENDING))
    pair.settle()
    pair.req.core.abandon(1, pair.now)
    pair.settle()
    assert performed.cancelled
    before = len(pair.req.of(ResponseReceived))
    assert not pair.acc.core.answer(performed, find_rsp(1, PENDING))
    pair.acc.core.finish(performed, pair.now)
    pair.settle()
    assert len(pair.req.of(ResponseReceived)) == before  # nothing after the abandon
    assert pair.req.core.outstanding == 0
    message_id = pair.echo()
    assert final_statuses(pair.req)[message_id] == 0


def test_cancel_for_a_request_not_performed_is_ignored() -> None:
    pair = Pair().open()
    message_id = pair.echo()  # answered at once: never performed
    pair.req.core._send(CCancelRQ(message_id), ECHO_CID)  # noqa: SLF001 - too late
    pair.settle()
    assert pair.acc.core.is_established and pair.req.core.is_established


# ------------------------------------------------------------------ release and abort


def test_release_by_requestor() -> None:
    pair = Pair().open()
    pair.req.core.release(pair.now)
    pair.settle()
    for side in pair.sides():
        assert side.closed and side.of(Released)
        assert not side.of(Aborted)
        (closed,) = side.of(Closed)
        assert str(closed.cause) == "association released"
    assert pair.req.core.state is State.STA1


def test_release_by_acceptor() -> None:
    pair = Pair().open()
    pair.acc.core.release(pair.now)
    pair.settle()
    assert pair.req.closed and pair.acc.closed
    with pytest.raises(ProviderError):
        pair.req.core.check_established()


def test_release_collision() -> None:
    pair = Pair().open()
    pair.req.core.release(pair.now)
    pair.acc.core.release(pair.now)
    pair.settle()
    assert pair.req.closed and pair.acc.closed
    assert not pair.req.of(Aborted) and not pair.acc.of(Aborted)


@pytest.mark.parametrize("releaser", ["requestor", "acceptor"])
def test_release_waits_for_operations_being_performed(releaser: str) -> None:
    """Our A-RELEASE-RQ (or our RP to the peer's) waits until what we perform is answered:
    the response still arrives (AR-6/AR-7)."""
    pair = Pair(performer=take_on_all).open()
    pair.send(nset(1), PUSH_CID)
    side = pair.req if releaser == "requestor" else pair.acc
    side.core.release(pair.now)
    pair.settle()
    assert not pair.req.closed and pair.acc.core.performing == 1
    performed = pair.acc.performing.pop(1)
    pair.acc.core.complete(performed, NSetRSP(1, 0, UPS_PUSH, IUID), pair.now)
    pair.settle()
    assert final_statuses(pair.req) == {1: 0}
    assert pair.req.closed and pair.acc.closed
    assert not pair.req.of(Aborted)


def test_release_before_establishment_aborts() -> None:
    pair = Pair()
    pair.req.core.associate(pair.rq, pair.now)
    pair.req.core.connection_made(pair.now)
    pair.req.core.release(pair.now)
    pair.req.drain()
    assert isinstance(pair.req.failure, ProviderAborted)


@pytest.mark.parametrize("which", ["requestor", "acceptor"])
def test_abort_either_side(which: str) -> None:
    pair = Pair(performer=take_on_all).open()
    pair.send(nset(1), PUSH_CID)
    local = pair.req if which == "requestor" else pair.acc
    remote = pair.other(local)
    local.core.abort(pair.now)
    pair.advance(SETTINGS.so_close_delay)
    assert local.closed and remote.closed
    cause = remote.failure
    assert isinstance(cause, ProviderAborted) and (cause.source, cause.reason) == (0, 0)
    assert "source 0, reason 0" in str(cause)
    assert isinstance(pair.req.failures()[1], ProviderAborted)


def test_a_provider_abort_carries_its_reason() -> None:
    from ups.pdu.enums import AbortReason

    pair = Pair().open()
    pair.req.core.abort(pair.now, AbortReason.UNEXPECTED_PDU)
    pair.advance(1.0)
    cause = pair.acc.failure
    assert isinstance(cause, ProviderAborted) and (cause.source, cause.reason) == (2, 2)


def test_transport_lost_fails_every_waiter() -> None:
    pair = Pair(performer=take_on_all).open()
    pair.send(nset(1), PUSH_CID)
    pair.send(nset(2), PUSH_CID)  # queued behind the window
    pair.req.core.connection_lost(pair.now, "connection reset")
    pair.req.drain()
    failures = pair.req.failures()
    assert set(failures) == {1, 2}
    assert failures[1] is failures[2] is pair.req.failure
    assert pair.req.closed


def test_get_answered_later_with_a_data_set() -> None:
    """A deferred N-GET: ``complete`` sends once; a second answer is ignored."""
    pair = Pair(performer=take_on_all).open()
    pair.send(NGetRQ(5, UPS_PUSH, IUID), PUSH_CID)
    performed = pair.acc.performing.pop(5)
    rsp = NGetRSP(5, 0, UPS_PUSH, IUID, dataset=b"\x10\x00\x10\x00\x04\x00\x00\x00Doe^")
    assert pair.acc.core.complete(performed, rsp, pair.now)
    assert not pair.acc.core.complete(performed, rsp, pair.now)
    pair.settle()
    (got,) = pair.req.responses(5)
    assert got == rsp


def test_answer_at_once_helper_keeps_other_requests() -> None:
    pair = Pair(performer=answer_at_once).open()
    find(pair)
    assert pair.acc.core.performing == 1
    assert isinstance(pair.acc.performing[1].request, CFindRQ)
    performed = pair.acc.performing.pop(1)
    pair.acc.core.complete(performed, CFindRSP(1, 0, UPS_QUERY), pair.now)
    pair.settle()
    assert final_statuses(pair.req) == {1: 0}
