"""How long the SCP keeps finished workitems, and the one timer that purges them.

A UPS that reached COMPLETED or CANCELED stays for ``retain`` seconds (``dcmups scp
--retain``, :attr:`~ups.services.scp.config.SCPOptions.retain`) and as long as a
Deletion Lock holds it (PS3.4 CC.2.3.2), whichever is longer. Within that window Table
CC.1.1-2 is served as written: a performer that repeats its COMPLETED after a lost
response gets the B306 warning, an N-SET gets C300, N-GET returns the final state and
C-FIND still finds it. ``retain`` 0 purges a finished UPS as soon as nothing holds it.

The window counts from the time the store recorded with the change (wall-clock seconds
since the epoch), so it survives a restart: :meth:`Retention.start` purges what expired
while the SCP was down and arms the timer for the rest. Nothing polls: one
``call_later`` handle waits for the next UPS to expire, and every change that may bring
that time forward (a UPS finished, a Deletion Lock released) sweeps and re-arms it.
"""

from __future__ import annotations

import asyncio
import logging
import time

from ups.services.scp.delivery import RunDB
from ups.services.scp.store import Store

__all__ = ["Retention"]

log = logging.getLogger("ups.scp.retention")


class Retention:
    """Purges finished workitems ``retain`` seconds after they finished, on one timer."""

    def __init__(self, store: Store, run_db: RunDB, retain: float) -> None:
        if retain < 0:
            raise ValueError("retain must be at least 0 seconds")
        self.retain = retain
        self._store = store
        self._db = run_db
        self._timer: asyncio.TimerHandle | None = None
        self._sweeping: asyncio.Task[None] | None = None
        self._closed = False
        self.purged = 0

    async def sweep(self) -> list[str]:
        """Purge every finished UPS whose window has passed, then arm the timer.

        Called on start (what expired while the SCP was down) and after every change
        that may bring the next expiry forward: a UPS finished, a Deletion Lock went.
        """
        if self._closed:
            return []
        now = time.time()
        purged: list[str] = await self._db(self._store.purge_finished, now - self.retain)
        if purged:
            self.purged += len(purged)
            log.info("purged %d finished UPS (retained %gs)", len(purged), self.retain)
        oldest: float | None = await self._db(self._store.next_purge)
        self._arm(oldest, now)
        return purged

    def _arm(self, oldest: float | None, now: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if oldest is None or self._closed:
            return
        delay = max(0.0, oldest + self.retain - now)
        self._timer = asyncio.get_running_loop().call_later(delay, self._fire)

    def _fire(self) -> None:
        self._timer = None
        if self._closed or (self._sweeping is not None and not self._sweeping.done()):
            return
        self._sweeping = asyncio.get_running_loop().create_task(self._sweep_logged())

    async def _sweep_logged(self) -> None:
        try:
            await self.sweep()
        except Exception:  # the store failed: the next change or start tries again
            log.exception("purging finished workitems failed")

    @property
    def next_due(self) -> float | None:
        """Loop time at which the timer fires (None: not armed); for tests."""
        return None if self._timer is None else self._timer.when()

    async def close(self) -> None:
        """Stop the timer and wait for a sweep that is running (before the store closes)."""
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._sweeping is not None:
            await asyncio.gather(self._sweeping, return_exceptions=True)
