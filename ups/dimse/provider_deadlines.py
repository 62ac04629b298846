"""Every deadline of one association except ARTIM, as plain numbers on the caller's clock.

The Upper Layer machine owns ARTIM (PS3.8 §9.1.5). The DIMSE provider adds:

* the phase deadline: A-ASSOCIATE-AC after our A-ASSOCIATE-RQ (-acceptTO), A-RELEASE-RP
  after our A-RELEASE-RQ (-releaseTO);
* the partial-PDU deadline: a PDU that started arriving must end within ``pdu_timeout``;
* idle (-idleTO): no bytes from the peer for that long, checked only when nothing is
  outstanding either way (a busy association is looked at again one period later);
* the reaper (-reaper, -rspTO): every period while requests are outstanding;
* the send deadline (-sendTO): our writes paused (``writing_paused``) and not resumed
  for that long; the abort that follows resets the transport after the close delay
  instead of lingering for a drain that will not come;
* the close delay after an A-ABORT (-soclosedelay), and the linger after which a closing
  transport whose peer never reads is reset.

``soonest`` is what the adapter arms its one timer at. Setting a deadline lowers it at
once (``note``); a deadline that is met or moved later leaves it early, so the timer
fires, ``DimseProvider.handle_timer`` finds nothing due and recomputes it exactly
(``compute``). Nothing polls.
"""

from __future__ import annotations

LINGER = 2.0
"""Seconds a closing transport may spend flushing to a peer that does not read."""


class Deadlines:
    """The provider's deadlines; None means "not running"."""

    __slots__ = (
        "phase",
        "phase_what",
        "partial_since",
        "last_activity",
        "idle_after",
        "reaper_due",
        "paused_since",
        "reset_on_close",
        "close_at",
        "kill_at",
        "soonest",
    )

    def __init__(self) -> None:
        self.phase: float | None = None
        self.phase_what = ""
        self.partial_since: float | None = None
        self.last_activity = 0.0
        self.idle_after: float | None = None  # busy at expiry: look again then
        self.reaper_due: float | None = None
        self.paused_since: float | None = None  # writes paused since (-sendTO)
        self.reset_on_close = False  # the peer stopped reading: reset, do not linger
        self.close_at: float | None = None
        self.kill_at: float | None = None
        self.soonest: float | None = None

    def note(self, when: float) -> None:
        """A deadline was set at ``when``: the timer must fire no later."""
        soonest = self.soonest
        if soonest is None or when < soonest:
            self.soonest = when

    def set_phase(self, when: float, what: str) -> None:
        self.phase = when
        self.phase_what = what
        self.note(when)

    def idle_due(self, idle: float) -> float:
        due = self.last_activity + idle
        after = self.idle_after
        return after if after is not None and after > due else due

    def compute(
        self,
        machine: float | None,
        *,
        aborting: bool,
        idle: float | None,
        pdu_timeout: float,
        send_timeout: float | None,
    ) -> float | None:
        """The exact soonest deadline (``machine`` is ARTIM). While aborting only the
        close, linger and ARTIM deadlines still matter; ``idle`` is None until the
        association is established or when -idleTO is off; ``send_timeout`` None when
        -sendTO is off."""
        found = [d for d in (machine, self.close_at, self.kill_at) if d is not None]
        if not aborting:
            if self.phase is not None:
                found.append(self.phase)
            if self.partial_since is not None:
                found.append(self.partial_since + pdu_timeout)
            if idle is not None:
                found.append(self.idle_due(idle))
            if self.reaper_due is not None:
                found.append(self.reaper_due)
            if self.paused_since is not None and send_timeout is not None:
                found.append(self.paused_since + send_timeout)
        self.soonest = min(found) if found else None
        return self.soonest
