"""Delivery of the SCP's queued N-EVENT-REPORTs to subscribers (PS3.4 CC.2.4.3).

The store keeps one durable FIFO queue per subscriber AE; this module empties it.
For each AE with due events one sender task opens (or reuses) an association to
the AE's configured address, proposing the final and Trial UPS Event SOP Classes
with SCP/SCU Role Selection asking for the SCP role (PS3.7 D.3.3.4), and sends
each report as N-EVENT-REPORT-RQ with UPS Push of the accepted family as Affected
SOP Class UID (CC.2.4.3).  An event leaves the queue only after its response has
arrived (at-least-once); a failure status means the subscriber got it and refused
it, so it is not resent.  When the AE cannot be reached the event is rescheduled
with exponential back-off and the AE's later events wait behind it.  The
association is released after ``event_idle`` seconds without events.

Nothing polls: the dispatcher sleeps until a change queues events (``kick``), a
sender finishes, or the next retry falls due.

On a shared store (PostgreSQL, several SCP processes) an AE's events are delivered
under a lease (:meth:`~ups.services.scp.store.Store.lease_events`): one process at a
time sends to an AE, renews the lease while its sender runs and releases it when the
sender ends. Another process's change or crash is not a kick here, so the dispatcher
also looks at the queue every third of ``delivery_lease``: a crashed process's AEs are
taken over once its leases expire.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from typing import Any, Protocol, TypeVar

from ups.dimse.datasets import encode_dataset
from ups.dimse.messages import NEventReportRQ
from ups.dimse.status import StatusCategory, describe, status_info
from ups.errors import DicomError
from ups.net.association import Association
from ups.net.errors import NoPresentationContext
from ups.net.requestor import build_request, connect
from ups.pdu.items import RoleSelection
from ups.services.errors import ConfigError
from ups.services.scp.config import SCPOptions
from ups.services.scp.store import QueuedEvent, Store
from ups.services.uids import UPS_EVENT, UPS_EVENT_TRIAL, push_of

__all__ = ["EventDispatcher", "RunDB"]

log = logging.getLogger("ups.scp.events")

_T = TypeVar("_T")
_DELIVERED = (StatusCategory.SUCCESS, StatusCategory.WARNING)
"""A response in these categories means the subscriber took the report."""


class RunDB(Protocol):
    """Runs a store call on the store thread and awaits its result."""

    def __call__(self, fn: Callable[..., _T], /, *args: Any, **kwargs: Any) -> Awaitable[_T]: ...


class EventDispatcher:
    """Delivers the store's queued N-EVENT-REPORTs, one sender task per subscriber AE."""

    def __init__(
        self,
        store: Store,
        run_db: RunDB,
        options: SCPOptions,
    ) -> None:
        self._store = store
        self._db = run_db
        self._options = options
        self._wake = asyncio.Event()
        self._busy: dict[str, asyncio.Task[None]] = {}
        self._links: dict[str, Association] = {}
        self._idle: dict[str, asyncio.TimerHandle] = {}
        self._blocked: dict[str, float] = {}
        self._closing: set[asyncio.Task[None]] = set()
        self._quiet: list[asyncio.Future[None]] = []
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        """Who holds this process's delivery leases on a shared store."""
        self._renewed = 0.0
        self.delivered = 0
        self.refused = 0
        self.failed_attempts = 0
        config = options.config
        if config.connect_timeout is None:
            config = replace(config, connect_timeout=5.0)
        self._config = config

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="ups-events")

    def kick(self) -> None:
        """Something was queued (or a delivery finished): look at the queue again."""
        self._wake.set()

    async def drain(self, timeout: float | None = None) -> bool:
        """Wait until nothing is due and no delivery is under way; False on timeout.

        Events for a subscriber that is down stay queued for their retry; they do
        not keep ``drain`` waiting.
        """
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._quiet.append(waiter)
        self.kick()
        try:
            await asyncio.wait_for(asyncio.shield(waiter), timeout)
        except TimeoutError:
            return False
        finally:
            if waiter in self._quiet:
                self._quiet.remove(waiter)
        return True

    async def stop(self) -> None:
        """Stop sending; release open event associations.  Unsent events stay queued."""
        self._stopping = True
        self._wake.set()
        tasks = [t for t in (self._task, *self._busy.values()) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for handle in self._idle.values():
            handle.cancel()
        links = list(self._links.values())
        self._links.clear()
        await asyncio.gather(*(a.release() for a in links), return_exceptions=True)
        await asyncio.gather(*self._closing, return_exceptions=True)
        for waiter in self._quiet:
            if not waiter.done():
                waiter.set_result(None)

    # ------------------------------------------------------------------ loop

    async def _run(self) -> None:
        while not self._stopping:
            self._wake.clear()
            now = time.time()
            try:
                lease = self._options.delivery_lease
                due = await self._db(self._store.lease_events, self.owner, now, lease, 500)
                batches: dict[str, list[QueuedEvent]] = {}
                for event in due:
                    if event.ae_title not in self._busy:
                        batches.setdefault(event.ae_title, []).append(event)
                for ae_title, events in batches.items():
                    self._start_sender(ae_title, events)
                if not self._busy:
                    self._set_quiet()
                await self._renew(now)
                timeout = self._shared_cap(await self._timeout(now))
            except asyncio.CancelledError:
                raise
            except Exception:  # the store failed: log, back off, try again
                log.exception("event dispatcher: store error")
                timeout = self._options.retry_initial
            if self._wake.is_set():
                continue
            try:
                async with asyncio.timeout(timeout):
                    await self._wake.wait()
            except TimeoutError:
                pass

    async def _renew(self, now: float) -> None:
        """Shared store: keep the leases of the AEs being sent to; stop a sender whose
        lease another process has taken (this one stalled past its expiry)."""
        lease = self._options.delivery_lease
        if not self._store.shared or not self._busy or now - self._renewed < lease / 3:
            return
        self._renewed = now
        busy = list(self._busy)
        held = set(await self._db(self._store.renew_leases, self.owner, busy, now, lease))
        for ae_title in busy:
            task = self._busy.get(ae_title)
            if ae_title not in held and task is not None:
                log.warning("delivery lease for %s lost to another process", ae_title)
                task.cancel()

    def _shared_cap(self, timeout: float | None) -> float | None:
        """Shared store: wake at least every third of the lease (renew, take over)."""
        if not self._store.shared:
            return timeout
        cap = self._options.delivery_lease / 3
        return cap if timeout is None else min(timeout, cap)

    def _set_quiet(self) -> None:
        waiters, self._quiet = self._quiet, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    async def _timeout(self, now: float) -> float | None:
        """Seconds until the next thing to do, or None: only a kick can bring work."""
        next_time = await self._db(self._store.next_event_time)
        if next_time is None:
            return None
        if next_time > now:
            return next_time - now
        retries = [t for t in self._blocked.values() if t > now]
        if retries:
            return max(0.0, min(retries) - now)
        if self._busy:
            return None  # a sender's end kicks us
        # Due but held back behind an earlier event whose retry time an earlier run of
        # the SCP set: we do not know that time, so look again after the first back-off.
        return self._options.retry_initial

    # ------------------------------------------------------------------ senders

    def _start_sender(self, ae_title: str, events: list[QueuedEvent]) -> None:
        handle = self._idle.pop(ae_title, None)
        if handle is not None:
            handle.cancel()
        task = asyncio.get_running_loop().create_task(
            self._send_batch(ae_title, events), name=f"ups-events-{ae_title}"
        )
        self._busy[ae_title] = task

    async def _send_batch(self, ae_title: str, events: Sequence[QueuedEvent]) -> None:
        try:
            for event in events:
                try:
                    status = await self._deliver(ae_title, event)
                except (DicomError, OSError) as exc:
                    await self._failed(ae_title, event, exc)
                    return
                if status_info(status).category not in _DELIVERED:
                    self.refused += 1
                    log.warning(
                        "%s refused %s for %s with status %s; not resent",
                        ae_title,
                        event.event_type.label,
                        event.iuid,
                        describe(status),
                    )
                await self._db(self._store.ack_event, event.id)
                self._blocked.pop(ae_title, None)
                self.delivered += 1
        finally:
            await self._release(ae_title)  # before the AE looks free to this dispatcher
            self._busy.pop(ae_title, None)
            if not self._stopping:
                self._arm_idle(ae_title)
                self._wake.set()

    async def _release(self, ae_title: str) -> None:
        if not self._store.shared:
            return
        try:
            await self._db(self._store.release_lease, self.owner, ae_title)
        except Exception:  # the lease expires by itself
            log.exception("releasing the delivery lease for %s failed", ae_title)

    async def _failed(self, ae_title: str, event: QueuedEvent, exc: BaseException) -> None:
        self.failed_attempts += 1
        self._drop_link(ae_title)
        delay = min(
            self._options.retry_max, self._options.retry_initial * (2 ** min(event.attempts, 30))
        )
        when = time.time() + delay
        self._blocked[ae_title] = when
        log.info("cannot deliver event to %s (%s); retry in %.1f s", ae_title, exc, delay)
        await self._db(self._store.retry_later, event.id, when)

    async def _deliver(self, ae_title: str, event: QueuedEvent) -> int:
        association = await self._link(ae_title)
        negotiated = association.negotiated
        assert negotiated is not None
        context = negotiated.context_for(UPS_EVENT) or negotiated.context_for(UPS_EVENT_TRIAL)
        if context is None:
            raise NoPresentationContext(f"{ae_title} accepted no UPS Event context")
        request = NEventReportRQ(
            message_id=association.new_message_id(),
            affected_sop_class_uid=push_of(context.abstract_syntax),
            affected_sop_instance_uid=event.iuid,
            event_type_id=int(event.event_type),
            dataset=encode_dataset(event.info, context.transfer_syntax),
        )
        response = await association.request(request, context.context_id)
        return response.status

    async def _link(self, ae_title: str) -> Association:
        association = self._links.get(ae_title)
        if association is not None and association.is_established:
            return association
        remote = self._options.remote_aes.get(ae_title)
        if remote is None:
            raise ConfigError(f"no address configured for subscriber {ae_title}")
        syntaxes = self._options.event_transfer_syntaxes
        rq = build_request(
            ae_title,
            self._options.ae_title,
            [(UPS_EVENT, syntaxes), (UPS_EVENT_TRIAL, syntaxes)],
            self._config,
            roles=[
                RoleSelection(UPS_EVENT, False, True),
                RoleSelection(UPS_EVENT_TRIAL, False, True),
            ],
        )
        association = await connect(remote.host, remote.port, rq, self._config)
        self._links[ae_title] = association
        return association

    def _arm_idle(self, ae_title: str) -> None:
        if ae_title not in self._links:
            return
        old = self._idle.pop(ae_title, None)
        if old is not None:
            old.cancel()
        self._idle[ae_title] = asyncio.get_running_loop().call_later(
            self._options.event_idle, self._release_idle, ae_title
        )

    def _release_idle(self, ae_title: str) -> None:
        self._idle.pop(ae_title, None)
        if ae_title not in self._busy:
            self._drop_link(ae_title, release=True)

    def _drop_link(self, ae_title: str, release: bool = False) -> None:
        association = self._links.pop(ae_title, None)
        if association is None:
            return
        if release and association.is_established:
            task = asyncio.get_running_loop().create_task(association.release())
        else:
            association.abort()
            task = asyncio.get_running_loop().create_task(association.wait_closed())
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)
