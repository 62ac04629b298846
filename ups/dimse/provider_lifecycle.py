"""The life of one association in the DIMSE provider core: open, establish, release, abort,
and every deadline.

``ProviderLifecycle`` drives the PS3.8 Upper Layer machine for the provider: transport
connected and lost, the A-ASSOCIATE exchange and the acceptor's negotiation
(``pdu.negotiation``), A-RELEASE in both directions and colliding (it waits for what we
perform to be answered first, as no P-DATA may follow our A-RELEASE-RQ), A-ABORT either
way, and ``handle_timer``: ARTIM (the machine's), the A-ASSOCIATE-AC and A-RELEASE-RP
phases, the partial-PDU limit, -idleTO, the reaper (-rspTO), the send deadline
(-sendTO) and the close delay and linger after an abort (``provider_deadlines``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from ups.dimse.errors import (
    ProviderAborted,
    ProviderError,
    ProviderRejected,
    ProviderSendTimeout,
    ProviderTimeout,
)
from ups.dimse.fragment import MIN_PDATA_LENGTH, Reassembler
from ups.dimse.provider_base import STA6, STA8, STA13, ProviderState
from ups.dimse.provider_events import RELEASED, RESET_TRANSPORT, Established
from ups.pdu.enums import AbortReason
from ups.pdu.events import (
    ARTIM_AWAITING_RQ,
    AbortIndication,
    AssociateConfirmation,
    AssociateIndication,
    AssociateRejected,
    ReleaseConfirmation,
    ReleaseIndication,
    TransportClosed,
    UpperLayerEvent,
)
from ups.pdu.fsm import State
from ups.pdu.negotiation import Negotiated, evaluate_accept, negotiate
from ups.pdu.pdus import AAssociateAC, AAssociateRJ, AAssociateRQ

log = logging.getLogger("ups.net")  # the name users filter the association log on


class ProviderLifecycle(ProviderState):
    """Establishment, release, abort and deadlines (see the module docstring)."""

    __slots__ = ()

    # ================================================================== transport and time

    def associate(self, rq: AAssociateRQ, now: float) -> None:
        """Requestor: the A-ASSOCIATE-RQ to send once the transport is up."""
        self._rq = rq
        self._machine.associate(rq, now)

    def connection_made(self, now: float, peer: str = "") -> None:
        """The transport is open (``peer`` as "host:port", for messages)."""
        self._now = now
        self._connected = True
        self._peer = peer
        self._clock.last_activity = now
        if self._requestor:
            self._clock.set_phase(now + self._settings.accept_timeout, "A-ASSOCIATE-AC")
        self._machine.transport_connected(now)
        self._after_machine(now)

    def connection_lost(self, now: float, detail: str = "") -> None:
        """The transport is gone (``detail``: the OS's reason, if any); ``Closed`` follows."""
        self._now = now
        if self._lost:
            return
        self._lost = True
        self._lost_detail = detail
        if self._machine.state is not State.STA1:
            self._machine.transport_closed(now)
            self._collect()

    def handle_timer(self, now: float) -> None:
        """Act on every deadline that has come by ``now``; then ``next_deadline`` is exact."""
        self._now = now
        if self._finished:
            return
        self._expire(now)
        machine = self._machine
        settings = self._settings
        idle = settings.idle_timeout if self.negotiated is not None else None
        self._clock.compute(
            machine.next_deadline(),
            aborting=machine.state is STA13 or machine.close_transport,
            idle=idle,
            pdu_timeout=settings.pdu_timeout,
            send_timeout=settings.send_timeout,
        )

    def _expire(self, now: float) -> None:
        """``handle_timer``'s work: each deadline that has come, in order of precedence."""
        clock = self._clock
        if clock.kill_at is not None and clock.kill_at <= now:
            clock.kill_at = None
            self._ready.append(RESET_TRANSPORT)
            return
        if clock.close_at is not None and clock.close_at <= now:
            self._close_transport(now)
        machine = self._machine
        deadline = machine.next_deadline()
        if deadline is not None and deadline <= now:
            machine.handle_timer(now)
            self._after_machine(now)
        if machine.state is STA13 or machine.close_transport:
            return  # aborting or over: only the close and reset deadlines still matter
        settings = self._settings
        if clock.phase is not None and clock.phase <= now:
            clock.phase = None
            self.abort(now, cause=ProviderTimeout(f"no {clock.phase_what} within the time limit"))
            return
        if clock.partial_since is not None and clock.partial_since + settings.pdu_timeout <= now:
            self.abort(
                now, cause=ProviderTimeout("a PDU did not arrive in full within the time limit")
            )
            return
        send = settings.send_timeout
        paused = clock.paused_since
        if send is not None and paused is not None and paused + send <= now:
            # The peer has read nothing for -sendTO: whatever is queued will not leave.
            # The A-ABORT is tried; the close that follows resets the transport.
            clock.paused_since = None
            clock.reset_on_close = True
            stalled = ProviderSendTimeout(
                f"writes blocked for {send:g} s: the peer is not reading (-sendTO)"
            )
            self.abort(now, cause=stalled)
            return
        idle = settings.idle_timeout
        if idle is not None and self.negotiated is not None and clock.last_activity + idle <= now:
            if not self._ours.pending and not self._performing:
                self.abort(now, cause=ProviderTimeout(f"association idle for {idle:g} s (-idleTO)"))
                return
            clock.idle_after = now + idle  # busy, not idle: look again later
        if clock.reaper_due is not None and clock.reaper_due <= now:
            clock.reaper_due = None
            overdue = self._ours.overdue(now, settings.response_timeout)
            if overdue is not None:
                limit = settings.response_timeout
                cause = ProviderTimeout(
                    f"no response to {overdue.describe()} within {limit:g} s (-rspTO)"
                )
                log.warning("%s from %s; aborting", cause, self.remote_ae_title)
                self.abort(now, cause=cause)
                return
            if self._ours.pending:
                clock.reaper_due = now + settings.reaper_period

    # ================================================================== establishment

    def _on_upper(self, event: UpperLayerEvent) -> None:
        handler = _UPPER.get(type(event))
        if handler is not None:
            handler(self, event)

    def _associate_indication(self, event: UpperLayerEvent) -> None:
        assert isinstance(event, AssociateIndication) and self._policy is not None
        rq = event.rq
        now = self._now
        answer, negotiated = negotiate(rq, self._policy)
        if negotiated is None:
            assert isinstance(answer, AAssociateRJ)
            self._machine.reject(answer, now)
            self._after_machine(now)
            self._fail(_rejected(answer), rq)
            return
        assert isinstance(answer, AAssociateAC)
        # Received P-DATA-TF are bounded by what we announced, which the policy decides.
        self._machine.set_max_pdata_length(negotiated.local_max_pdata_length)
        self._machine.accept(answer, now)
        self._after_machine(now)
        self._setup(negotiated)

    def _associate_confirmation(self, event: UpperLayerEvent) -> None:
        assert isinstance(event, AssociateConfirmation) and self._rq is not None
        self._clock.phase = None
        self._setup(evaluate_accept(self._rq, event.ac))

    def _associate_rejected(self, event: UpperLayerEvent) -> None:
        assert isinstance(event, AssociateRejected)
        self._clock.phase = None
        self._fail(_rejected(event.rj))

    def _setup(self, negotiated: Negotiated) -> None:
        peer_max = negotiated.remote_max_pdata_length
        if 0 < peer_max < MIN_PDATA_LENGTH:
            # No PDV with an even fragment fits: nothing could ever be sent (PS3.8 D.1).
            self.abort(
                self._now,
                AbortReason.INVALID_PDU_PARAMETER_VALUE,
                ProviderAborted(
                    f"{negotiated.remote_ae_title} announced a Maximum Length Received of "
                    f"{peer_max}, below the {MIN_PDATA_LENGTH} bytes one PDV needs"
                ),
            )
            return
        settings = self._settings
        self.negotiated = negotiated
        self._reassembler = Reassembler(
            negotiated.contexts, max_dataset_length=settings.max_dataset_length
        )
        ours = settings.max_pdata_send
        self._send_limit = min(x for x in (peer_max, ours) if x) if (peer_max or ours) else 0
        self._ours.set_window(negotiated.max_ops_local_invokes)
        self._perform_limit = negotiated.max_ops_remote_invokes
        if settings.idle_timeout is not None:
            self._clock.note(self._clock.last_activity + settings.idle_timeout)
        self._ready.append(Established(negotiated))

    # ================================================================== release and abort

    def _release_indication(self, event: UpperLayerEvent) -> None:
        assert isinstance(event, ReleaseIndication)
        if event.collision and not self._requestor:
            return  # Sta10: wait for the A-RELEASE-RP, then answer (AR-10, AR-4)
        if self._performing or self._held:
            self._release_after = True  # P-DATA may still go in Sta8 (AR-7)
            return
        self._answer_release(self._now)

    def _release_confirmation(self, event: UpperLayerEvent) -> None:
        self._ready.append(RELEASED)
        if not self._requestor and self._machine.state is State.STA12:
            self._machine.release_response(self._now)
            self._after_machine(self._now)

    def _abort_indication(self, event: UpperLayerEvent) -> None:
        assert isinstance(event, AbortIndication)
        who = "peer" if event.from_peer else "provider"
        detail = f" ({event.detail})" if event.detail else ""
        if event.from_peer:
            text = f"association aborted by {self.remote_ae_title or 'the peer'}"
            text += f": source {int(event.source)}, reason {int(event.reason)}"
        elif self.negotiated is None and event.detail == ARTIM_AWAITING_RQ:
            where = f" from {self._peer}" if self._peer else ""
            text = f"no A-ASSOCIATE-RQ{where} within the time limit (-requestTO)"
        elif self.negotiated is None:
            where = f" by {self._peer}" if self._peer else ""
            text = f"connection closed{where} before the association was established"
        else:
            text = f"association aborted{detail}"
        log.info("%s abort%s", who, detail)
        self._fail(ProviderAborted(text, int(event.source), int(event.reason)))

    def _transport_closed(self, event: UpperLayerEvent) -> None:
        self._close_transport(self._now)

    def release(self, now: float) -> None:
        """A-RELEASE-RQ, once what we perform for the peer is answered (no P-DATA may
        follow our A-RELEASE-RQ, Sta7); the A-RELEASE-RP is awaited for -releaseTO."""
        self._now = now
        if self._lost or self._failure is not None:
            return
        if self._performing or self._held:
            self._release_wanted = True
            return
        self._start_release(now)

    def _start_release(self, now: float) -> None:
        if self.negotiated is None:
            self.abort(now)  # nothing to release yet
        elif self._machine.state is STA6:
            self._machine.release(now)
            self._clock.set_phase(now + self._settings.release_timeout, "A-RELEASE-RP")
            self._after_machine(now)

    def _answer_release(self, now: float) -> None:
        if self._machine.state in (STA8, State.STA9, State.STA12):
            self._machine.release_response(now)
            self._ready.append(RELEASED)
            self._after_machine(now)

    def abort(
        self,
        now: float,
        reason: AbortReason | None = None,
        cause: ProviderError | None = None,
    ) -> None:
        """A-ABORT now: service user, or service provider with ``reason``; ``cause`` is
        what the waiters get (by default "association aborted locally")."""
        self._now = now
        self._fail(cause or ProviderAborted("association aborted locally"))
        state = self._machine.state
        if state is STA13 and (self._clock.close_at is not None or self._close_sent):
            return  # already aborting: the A-ABORT leaves within -soclosedelay
        if state in (State.STA1, STA13, State.STA2, State.STA4):
            self._close_transport(now)  # no A-ABORT to send (yet, or any more)
            return
        self._machine.abort(now, reason)
        self._after_machine(now)


_UPPER: dict[type, Callable[[ProviderLifecycle, UpperLayerEvent], None]] = {
    AssociateIndication: ProviderLifecycle._associate_indication,
    AssociateConfirmation: ProviderLifecycle._associate_confirmation,
    AssociateRejected: ProviderLifecycle._associate_rejected,
    ReleaseIndication: ProviderLifecycle._release_indication,
    ReleaseConfirmation: ProviderLifecycle._release_confirmation,
    AbortIndication: ProviderLifecycle._abort_indication,
    TransportClosed: ProviderLifecycle._transport_closed,
}
"""What each Upper Layer indication does to the provider (P-DATA is the hot path)."""


def _rejected(rj: AAssociateRJ) -> ProviderRejected:
    result, source, reason = int(rj.result), int(rj.source), int(rj.reason)
    return ProviderRejected(
        f"association rejected: result {result}, source {source}, reason {reason}",
        result,
        source,
        reason,
    )
