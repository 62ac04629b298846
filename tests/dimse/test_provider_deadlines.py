"""ups.dimse.provider deadlines on virtual time: each one fires exactly when it is due.

ARTIM (PS3.8 §9.1.5), the A-ASSOCIATE-AC and A-RELEASE-RP phases, the partial-PDU
limit, -idleTO (only when nothing is outstanding either way), the reaper (-rspTO), the
send deadline (-sendTO: writes paused that long abort, then reset), the close delay
after an A-ABORT (-soclosedelay) and the linger before a transport whose peer never
reads is reset. These are the timing assertions of the loopback tests in
``tests/net/test_hostile.py``, ``tests/net/test_association.py`` and
``tests/reliability/test_slow_peers.py``, asserted here as deadlines instead of as
wall-clock windows; the loopback tests keep what the adapter adds (the real timer and
socket, the process left as it was).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from tests.dimse.provider_pair import (
    ECHO_CID,
    IUID,
    PUSH_CID,
    QUERY_CID,
    SETTINGS,
    UPS_PUSH,
    UPS_QUERY,
    Lone,
    Pair,
    associate_rq,
    find_rsp,
    policy,
    take_on_all,
)
from ups.dimse.errors import ProviderAborted, ProviderSendTimeout, ProviderTimeout
from ups.dimse.messages import (
    CEchoRQ,
    CFindRQ,
    NEventReportRQ,
    NSetRQ,
    NSetRSP,
    encode_command,
)
from ups.dimse.provider import ProviderSettings
from ups.dimse.provider_deadlines import LINGER
from ups.dimse.provider_events import (
    Aborted,
    Closed,
    CloseTransport,
    RequestFailed,
    ResetTransport,
)
from ups.pdu.codec import encode_pdu
from ups.pdu.enums import ContextResult
from ups.pdu.fsm import State
from ups.pdu.items import PresentationContextAC, UserInformation
from ups.pdu.pdus import AAssociateAC

TIMER = 0.6
"""request, PDU and release timeouts, as in the slow-peer battery."""
IDLE = 1.0
SLOW = replace(
    SETTINGS,
    request_timeout=TIMER,
    pdu_timeout=TIMER,
    release_timeout=TIMER,
    accept_timeout=TIMER,
    idle_timeout=IDLE,
    so_close_delay=0.01,
)
ABORT_0_0 = bytes([0x07, 0, 0, 0, 0, 4, 0, 0, 0, 0])
RELEASE_RQ = bytes([0x05, 0, 0, 0, 0, 4, 0, 0, 0, 0])


def pdata(context_id: int, command: bytes, control: int = 0x03) -> bytes:
    """One P-DATA-TF with one PDV (PS3.8 §9.3.5)."""
    pdv = (len(command) + 2).to_bytes(4, "big") + bytes((context_id, control)) + command
    return bytes((0x04, 0)) + len(pdv).to_bytes(4, "big") + pdv


def echo_pdu(message_id: int) -> bytes:
    return pdata(ECHO_CID, encode_command(CEchoRQ(message_id)))


def rq_bytes() -> bytes:
    return encode_pdu(associate_rq())


def acceptor(settings: ProviderSettings = SLOW, **kwargs: Any) -> Lone:
    return Lone(settings, **kwargs).connect()


def associated(settings: ProviderSettings = SLOW, **kwargs: Any) -> Lone:
    lone = acceptor(settings, **kwargs)
    lone.feed(rq_bytes())
    assert lone.take()[0] == 0x02  # A-ASSOCIATE-AC
    return lone


def dribble(lone: Lone, data: bytes, every: float = 0.05) -> None:
    """Slowloris: one byte every ``every`` seconds until the core gives up."""
    for byte in data:
        if lone.side.lost or lone.close_asked is not None:
            return
        lone.feed(bytes([byte]))
        lone.advance(every)


# ------------------------------------------------------------------ ARTIM


@pytest.mark.parametrize("sent", [0, 40])
def test_artim_closes_a_silent_or_half_sent_request(sent: int) -> None:
    """AA-2: ARTIM expiry awaiting the A-ASSOCIATE-RQ closes without a PDU, -requestTO
    after the connection (a half-sent RQ does not reset it)."""
    lone = acceptor()
    if sent:
        lone.feed(rq_bytes()[:sent])
    lone.advance(TIMER - 0.01)
    assert lone.close_asked is None
    lone.advance(0.01)
    assert lone.close_asked == pytest.approx(TIMER)
    assert lone.take() == b""
    assert lone.side.closed
    assert lone.core.next_deadline() is None


def test_slowloris_associate_rq_cut_by_artim() -> None:
    lone = acceptor()
    dribble(lone, rq_bytes())
    assert lone.close_asked == pytest.approx(TIMER)
    assert lone.take() == b""


@pytest.mark.parametrize("closes", [True, False])
def test_request_read_in_the_pass_artim_expired_is_ignored(closes: bool) -> None:
    """Under load the loop can run ARTIM's timer and then read an A-ASSOCIATE-RQ that
    arrived meanwhile (issue 12: this raised out of ``data_received``). The timer came
    first, so the association is over: the request is dropped without an answer, with
    the close still pending or already done."""
    lone = acceptor(closes=closes)
    lone.now = TIMER + 1.0
    lone.core.handle_timer(lone.now)
    lone.feed(rq_bytes())
    assert lone.close_asked == pytest.approx(TIMER + 1.0)
    assert lone.take() == b""
    assert lone.side.closed is closes
    [aborted] = lone.side.of(Aborted)
    assert str(aborted.cause) == (
        "no A-ASSOCIATE-RQ from 127.0.0.1:40000 within the time limit (-requestTO)"
    )


def test_request_read_before_a_late_artim_is_answered() -> None:
    """The other order in one pass: the request read first stops ARTIM (AE-6) and is
    answered; the timer handled afterwards finds nothing due."""
    lone = acceptor()
    lone.now = TIMER + 1.0
    lone.core.receive_data(rq_bytes(), lone.now)
    lone.core.handle_timer(lone.now)
    lone.pump()
    assert lone.take()[0] == 0x02  # A-ASSOCIATE-AC
    assert not lone.side.closed


def test_unknown_called_ae_gets_rj_then_artim_closes() -> None:
    lone = acceptor(acceptor_policy=policy(ae="OTHER"))
    lone.feed(rq_bytes())
    assert lone.take() == bytes([0x03, 0, 0, 0, 0, 4, 0, 0x01, 0x01, 0x07])
    # AE-8 starts ARTIM; Sta13 closes after -soclosedelay unless the peer closes first.
    lone.advance(SLOW.so_close_delay)
    assert lone.close_asked == pytest.approx(SLOW.so_close_delay)


# ------------------------------------------------------------------ partial PDUs


def test_half_a_pdu_then_silence_is_aborted_at_the_pdu_limit() -> None:
    lone = associated()
    lone.advance(0.2)
    lone.feed(echo_pdu(1)[:20])
    lone.advance(TIMER - 0.01)
    assert lone.take() == b""
    lone.advance(0.01)
    assert lone.take() == ABORT_0_0
    assert lone.close_asked is None  # the A-ABORT gets -soclosedelay to leave
    lone.advance(SLOW.so_close_delay)
    assert lone.close_asked == pytest.approx(0.2 + TIMER + SLOW.so_close_delay)
    assert isinstance(lone.side.failure, ProviderTimeout)
    assert "did not arrive in full" in str(lone.side.failure)


def test_slowloris_pdata_cut_by_pdu_timeout() -> None:
    lone = associated()
    start = lone.now
    dribble(lone, echo_pdu(1))
    assert ABORT_0_0 in lone.take()
    assert lone.close_asked == pytest.approx(start + TIMER + SLOW.so_close_delay)


def test_slow_but_steady_peer_is_not_cut_off() -> None:
    """The limit bounds one PDU, not a stream of reads that each complete a PDU."""
    lone = associated(replace(SLOW, idle_timeout=None, pdu_timeout=0.3))
    one = echo_pdu(1)
    stream = b"".join(echo_pdu(i) for i in range(1, 9))
    chunk = len(one) + 7  # each write completes a PDU and starts the next
    for pos in range(0, len(stream), chunk):
        lone.feed(stream[pos : pos + chunk])
        lone.advance(0.06)
    assert lone.now > 0.3
    assert lone.core.is_established
    assert lone.take().count(b"\x04\x00") >= 8  # eight answers


def test_reset_mid_pdu_is_cleaned_up_at_once() -> None:
    lone = associated()
    lone.feed(echo_pdu(9)[:20])
    lone.core.connection_lost(lone.now, "connection reset by peer")
    lone.side.drain()
    assert lone.side.closed
    assert lone.core.next_deadline() is None


# ------------------------------------------------------------------ idle


def test_silent_association_cut_by_idle_timeout() -> None:
    lone = associated()
    lone.advance(IDLE - 0.01)
    assert lone.take() == b""
    lone.advance(0.01)
    assert lone.take() == ABORT_0_0
    assert "idle for 1 s (-idleTO)" in str(lone.side.failure)


def test_idle_timeout_aborts_only_when_idle() -> None:
    """Requests every 0.15 s for 0.9 s: never 0.6 s idle; then idle 0.6 s: aborted."""
    idle = 0.6
    pair = Pair(acceptor=replace(SETTINGS, idle_timeout=idle)).open()
    for _ in range(6):
        pair.echo()
        pair.advance(0.15)
    assert pair.req.core.is_established
    last = pair.now - 0.15
    pair.advance(idle)
    assert pair.req.closed and pair.acc.closed
    assert isinstance(pair.acc.failure, ProviderTimeout)
    assert pair.now >= last + idle


def test_a_busy_association_is_not_idle() -> None:
    """-idleTO counts only when nothing is outstanding either way (kept as it is)."""
    pair = Pair(
        requestor=replace(SETTINGS, response_timeout=100.0, reaper_period=50.0),
        acceptor=replace(SETTINGS, idle_timeout=1.0),
        performer=take_on_all,
    ).open()
    pair.send(NSetRQ(1, UPS_PUSH, IUID), PUSH_CID)
    pair.advance(5.0)
    assert pair.acc.core.is_established  # performing: busy, looked at again later
    performed = pair.acc.performing.pop(1)
    pair.acc.core.complete(performed, NSetRSP(1, 0, UPS_PUSH, IUID), pair.now)
    pair.settle()
    pair.advance(1.0)
    assert not pair.acc.core.is_established
    assert isinstance(pair.acc.failure, ProviderTimeout)


# ------------------------------------------------------------------ the reaper


def test_reaper_fails_every_waiter_with_the_overdue_message() -> None:
    """-rspTO 0.4 s, -reaper 0.1 s: at 0.4 s the first request is overdue; the
    association aborts and all three waiters (two sent, one queued) fail alike."""
    requestor = replace(SETTINGS, response_timeout=0.4, reaper_period=0.1)
    pair = Pair(
        requestor=requestor,
        acceptor_policy=policy(performed=2),
        rq=associate_rq(invoked=2),
        performer=take_on_all,
    ).open()
    for message_id in (1, 2, 3):
        pair.req.core.send_request(NSetRQ(message_id, UPS_PUSH, IUID), PUSH_CID, pair.now)
    pair.settle()
    assert pair.req.core.outstanding == 2 and pair.req.core.queued == 1
    pair.advance(0.39)
    assert not pair.req.failures()
    pair.advance(0.01)
    failures = pair.req.failures()
    assert set(failures) == {1, 2, 3}
    first = failures[1]
    assert isinstance(first, ProviderTimeout)
    assert "NSetRQ (message ID 1)" in str(first) and "-rspTO" in str(first)
    assert all(cause is first for cause in failures.values())
    pair.advance(SETTINGS.so_close_delay)
    assert pair.acc.closed  # the SCP saw the A-ABORT
    assert isinstance(pair.acc.failure, ProviderAborted)
    with pytest.raises(ProviderTimeout):
        pair.req.core.check_established()


def test_the_reaper_measures_from_the_latest_response() -> None:
    """For C-FIND, -rspTO runs between responses, not from the request."""
    from tests.dimse.provider_pair import QUERY_CID, UPS_QUERY, find_rsp
    from ups.dimse.messages import CFindRQ

    pair = Pair(
        requestor=replace(SETTINGS, response_timeout=1.0, reaper_period=0.25),
        performer=take_on_all,
    ).open()
    pair.send(CFindRQ(1, UPS_QUERY), QUERY_CID, stream=True)
    (performed,) = pair.acc.performing.values()
    for _ in range(4):
        pair.advance(0.75)
        pair.acc.core.answer(performed, find_rsp(1, 0xFF00))
        pair.settle()
    assert pair.now == pytest.approx(3.0) and pair.req.core.is_established
    pair.advance(1.0)
    assert isinstance(pair.req.failure, ProviderTimeout)


# ------------------------------------------------------------------ phases


def test_no_associate_ac_within_accept_timeout() -> None:
    """A subscriber that accepts TCP and never answers the A-ASSOCIATE-RQ (-acceptTO)."""
    lone = Lone(SLOW, requestor=True).connect()
    assert lone.take()[0] == 0x01
    lone.advance(TIMER - 0.01)
    assert lone.side.failure is None
    lone.advance(0.01)
    cause = lone.side.failure
    assert isinstance(cause, ProviderTimeout)
    assert str(cause) == "no A-ASSOCIATE-AC within the time limit"
    assert lone.take() == ABORT_0_0
    lone.advance(SLOW.so_close_delay)
    assert lone.side.closed


def _accept(lone: Lone) -> None:
    rq = associate_rq()
    ac = AAssociateAC(
        rq.called_ae_title,
        rq.calling_ae_title,
        tuple(
            PresentationContextAC(pc.context_id, ContextResult.ACCEPTANCE, pc.transfer_syntaxes[0])
            for pc in rq.presentation_contexts
        ),
        UserInformation(16384, "1.2.3.4"),
    )
    lone.feed(encode_pdu(ac))
    lone.take()


def test_no_response_to_our_report_within_rsp_timeout() -> None:
    """The SCP as requestor: a subscriber that never answers its N-EVENT-REPORT."""
    lone = Lone(replace(SLOW, response_timeout=TIMER, reaper_period=0.1), requestor=True)
    lone.connect()
    _accept(lone)
    lone.core.send_request(NEventReportRQ(1, UPS_PUSH, IUID, 1), PUSH_CID, lone.now)
    lone.pump()
    lone.take()
    sent = lone.now
    lone.advance(TIMER - 0.01)
    assert not lone.side.of(RequestFailed)
    lone.advance(0.01)
    (failed,) = lone.side.of(RequestFailed)
    assert "-rspTO" in str(failed.cause) and lone.now == pytest.approx(sent + TIMER)
    assert lone.take() == ABORT_0_0


@pytest.mark.parametrize("requestor", [True, False])
def test_no_release_rp_within_release_timeout(requestor: bool) -> None:
    """A-RELEASE-RQ unanswered: A-ABORT -releaseTO later (the SCP shutting down as
    acceptor, or releasing its event association as requestor)."""
    if requestor:
        lone = Lone(SLOW, requestor=True).connect()
        _accept(lone)
    else:
        lone = associated()
    lone.core.release(lone.now)
    lone.pump()
    assert lone.take() == RELEASE_RQ
    lone.advance(TIMER - 0.01)
    assert lone.take() == b""
    lone.advance(0.01)
    assert lone.take() == ABORT_0_0
    assert str(lone.side.failure) == "no A-RELEASE-RP within the time limit"
    lone.advance(SLOW.so_close_delay)
    assert lone.side.closed


# ------------------------------------------------------------------ close delay and linger


def test_close_delay_after_abort_then_linger_then_reset() -> None:
    """After an A-ABORT the close waits -soclosedelay; a transport that then cannot
    close (its peer never reads what is buffered) is reset ``LINGER`` later."""
    lone = associated(closes=False)
    lone.core.abort(lone.now)
    lone.pump()
    assert lone.take() == ABORT_0_0 and lone.close_asked is None
    lone.advance(SLOW.so_close_delay)
    assert lone.close_asked == pytest.approx(SLOW.so_close_delay)
    assert lone.side.of(CloseTransport)
    lone.advance(LINGER - 0.01)
    assert not lone.side.of(ResetTransport)
    lone.advance(0.01)
    assert lone.reset_asked == pytest.approx(SLOW.so_close_delay + LINGER)
    assert lone.side.closed


def test_a_transport_that_closes_is_never_reset() -> None:
    lone = associated()
    lone.core.abort(lone.now)
    lone.pump()
    lone.advance(SLOW.so_close_delay + LINGER + 1)
    assert lone.side.closed and not lone.side.of(ResetTransport)
    assert lone.core.next_deadline() is None
    assert lone.core.state is State.STA1


def test_peer_that_stops_reading_is_cut_off_then_reset() -> None:
    """Our writes stall and the peer's requests stop mid-PDU: the partial-PDU limit
    aborts, the A-ABORT cannot leave, and the transport is reset after the linger."""
    lone = associated(closes=False)
    lone.core.writing_paused(lone.now)
    flood = b"".join(echo_pdu(i) for i in range(1, 50))
    lone.feed(flood[:-5])  # reading stopped in the middle of a PDU
    assert lone.side.failure is None
    lone.advance(TIMER)
    assert isinstance(lone.side.failure, ProviderTimeout)
    lone.advance(SLOW.so_close_delay + LINGER)
    assert lone.reset_asked == pytest.approx(TIMER + SLOW.so_close_delay + LINGER)
    assert lone.side.closed
    assert lone.side.of(Closed)


# ------------------------------------------------------------------ the send deadline

SEND = 0.5
"""-sendTO in these tests (the loopback tests in tests/net use the same)."""
STALLS = replace(SLOW, idle_timeout=None, send_timeout=SEND)


def test_writes_paused_for_send_timeout_abort_then_reset_after_the_close_delay() -> None:
    """The peer reads nothing: -sendTO after the pause the association aborts (the
    A-ABORT is tried), and -soclosedelay later the transport is reset, not closed and
    left to linger: the peer has shown it will not read what is queued."""
    lone = associated(STALLS, closes=False)
    lone.advance(0.2)
    lone.core.writing_paused(lone.now)
    lone.core.handle_timer(lone.now)  # nothing due: the next deadline is now exact
    assert lone.core.next_deadline() == pytest.approx(0.2 + SEND)
    lone.advance(SEND - 0.01)
    assert lone.side.failure is None
    lone.advance(0.01)
    cause = lone.side.failure
    assert isinstance(cause, ProviderSendTimeout) and isinstance(cause, ProviderTimeout)
    assert str(cause) == "writes blocked for 0.5 s: the peer is not reading (-sendTO)"
    assert lone.take() == ABORT_0_0  # tried: it goes behind what is queued
    assert lone.reset_asked is None
    lone.advance(STALLS.so_close_delay)
    assert lone.reset_asked == pytest.approx(0.2 + SEND + STALLS.so_close_delay)
    assert not lone.side.of(CloseTransport)  # no linger: reset at once
    assert lone.side.closed and lone.core.next_deadline() is None


def test_the_send_deadline_runs_from_the_latest_pause() -> None:
    """Writes that resume stop it; a later pause starts it afresh (a slow reader that
    keeps reading is not cut off)."""
    lone = associated(STALLS, closes=False)
    for _ in range(4):
        lone.core.writing_paused(lone.now)
        lone.advance(SEND - 0.01)
        lone.core.writing_resumed(lone.now)
        lone.advance(0.2)
    assert lone.core.is_established and lone.now > 2 * SEND
    paused = lone.now
    lone.core.writing_paused(paused)
    lone.core.writing_paused(paused + 0.3)  # still paused: the deadline stays
    lone.advance(SEND)
    assert isinstance(lone.side.failure, ProviderSendTimeout)
    assert len(lone.side.of(Aborted)) == 1
    assert lone.now == pytest.approx(paused + SEND)


def test_resumed_writes_leave_no_deadline_behind() -> None:
    lone = associated(STALLS)
    lone.core.writing_paused(lone.now)
    lone.advance(0.1)
    lone.core.writing_resumed(lone.now)
    lone.advance(SEND)  # the timer fires at the stale deadline and finds nothing due
    assert lone.core.is_established
    assert lone.core.next_deadline() is None


def test_no_send_deadline_when_it_is_off() -> None:
    """-sendTO 0: writes may stay paused for ever (the other deadlines still apply)."""
    lone = associated(replace(STALLS, send_timeout=None), closes=False)
    lone.core.writing_paused(lone.now)
    lone.core.handle_timer(lone.now)
    assert lone.core.next_deadline() is None
    lone.advance(3600.0)
    assert lone.core.is_established


def test_a_stalled_find_reader_is_cut_by_the_send_deadline_not_kept_busy() -> None:
    """Issue 17: a C-FIND whose reader stops reading. -idleTO never fires (a request is
    being performed), -sendTO does: the SCP aborts exactly -sendTO after its writes
    paused, the stream ends (``answer`` says stop), and the reset reaches the reader."""
    scp = replace(SETTINGS, idle_timeout=3.0, send_timeout=10.0)
    pair = Pair(acceptor=scp, performer=take_on_all).open()
    pair.send(CFindRQ(1, UPS_QUERY), QUERY_CID, stream=True)
    (performed,) = pair.acc.performing.values()
    pair.req.reading = False  # the reader stops reading
    for _ in range(3):
        assert pair.acc.core.answer(performed, find_rsp(1, 0xFF00))
    pair.settle()
    paused = pair.now
    pair.acc.core.writing_paused(paused)  # its transport fills up
    pair.advance(9.99)
    assert pair.acc.core.is_established  # busy, so -idleTO (3 s) waits
    pair.advance(0.01)
    assert isinstance(pair.acc.failure, ProviderSendTimeout)
    assert not pair.acc.core.answer(performed, find_rsp(1, 0xFF00))  # producing stops
    pair.advance(scp.so_close_delay)
    assert pair.acc.resets == 1 and pair.acc.closed and pair.req.closed
    (failed,) = pair.req.of(RequestFailed)
    assert failed.message_id == 1
    assert pair.acc.core.next_deadline() is None and pair.req.core.next_deadline() is None


def test_send_deadline_on_the_requestor_side() -> None:
    """A subscriber that stops reading our N-EVENT-REPORTs: our requests queue behind
    the paused writes, and -sendTO later every waiter fails with the send timeout."""
    lone = Lone(STALLS, requestor=True, closes=False).connect()
    _accept(lone)
    lone.core.send_request(NEventReportRQ(1, UPS_PUSH, IUID, 1), PUSH_CID, lone.now)
    lone.core.writing_paused(lone.now)
    lone.core.send_request(NEventReportRQ(2, UPS_PUSH, IUID, 1), PUSH_CID, lone.now)
    lone.pump()
    assert lone.core.outstanding == 1 and lone.core.queued == 1
    start = lone.now
    lone.advance(SEND)
    failures = {e.message_id: e.cause for e in lone.side.of(RequestFailed)}
    assert set(failures) == {1, 2}
    assert all(isinstance(c, ProviderSendTimeout) for c in failures.values())
    assert lone.take().endswith(ABORT_0_0)
    lone.advance(STALLS.so_close_delay)
    assert lone.reset_asked == pytest.approx(start + SEND + STALLS.so_close_delay)
    assert lone.side.closed
