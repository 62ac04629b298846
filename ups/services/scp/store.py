"""Durable storage of the reference UPS SCP: workitems, subscriptions, outbound events.

This module owns the store interface (:class:`Store`) and its SQLite
implementation (:class:`SQLiteStore`, standard library ``sqlite3``).  The rules
live in :mod:`ups.services.scp.upsstate` and :mod:`ups.services.scp.matching`; the store
applies their decisions atomically:

* **Acknowledged = durable.**  WAL journal with ``synchronous=FULL``: when a
  method returns, its transaction is on disk, so the SCP answers success only
  after that (issue: "after a kill -9, everything acknowledged is still
  there").
* **Events in the same transaction as their cause.**  A state change and the
  N-EVENT-REPORTs it causes (PS3.4 CC.2.4.3) are written together, one queue
  row per subscriber; a crash never loses an acknowledged event and a
  subscriber that is down gets it later (the standard does not oblige an SCP to
  retry, CC.2.4.3 last paragraph; we do).  Per subscriber the queue is FIFO:
  :meth:`Store.due_events` holds back an event while an earlier one for
  the same AE waits for its retry.
* **Exactly one claim wins.**  :meth:`Store.modify_workitem` reads, runs
  the pure decision and writes inside one ``BEGIN IMMEDIATE`` transaction under
  a lock, so of two concurrent claims the second sees IN PROGRESS and gets
  C301 (PS3.4 CC.2.1.2 note 2); :meth:`Store.update_workitem` is the
  compare-and-set primitive for callers that decide outside the store.
* **Subscriptions as PS3.4 Table CC.2.3-2 describes them.**  Global
  subscriptions are rows with an empty ``iuid``; they are materialised into
  per-UPS rows for every existing UPS when made and for each new UPS when it is
  created (filtered ones only where the Matching Keys match, CC.2.3.3.1), so a
  deletion lock is always a per-UPS row.  Suspend keeps the per-UPS rows and
  stops the global one from applying to new UPSs; Unsubscribe globally removes
  them all.  Initial UPS State Reports go to the subscriber on a specific
  subscription and, for a global subscription with lock, for every UPS
  (CC.2.4.3).
* **Finished workitems are kept, then purged.**  A store records when a UPS became
  COMPLETED or CANCELED (the ``now`` of that change, so it survives a restart);
  :meth:`Store.next_purge` says when the oldest one no Deletion Lock holds finished,
  and :meth:`Store.purge_finished` deletes those finished before a time.  The SCP
  decides the retention window and runs the one timer (:mod:`ups.services.scp.retention`).
* **C-FIND streams.**  :meth:`Store.find_candidates` takes the database-neutral
  conditions of :mod:`ups.services.scp.prefilter` and returns a :class:`Candidates`
  cursor: the stored encodings of a superset of the matches, a page per
  :meth:`Candidates.fetch`, each workitem once, so memory per C-FIND is one page
  whatever the result size.  Matching (the final check) and the response Identifiers
  are the caller's (:mod:`ups.services.scp.finding`), the same for every store.  To
  serve it a store keeps :func:`ups.services.scp.prefilter.index_entries` beside each
  workitem it writes, and renders a condition as "some entry of this key satisfies one
  of these terms" (equal, wild card, range).
* **Time is an argument** (seconds since the epoch, as the caller's clock says);
  nothing here reads a clock.

One connection serves every caller.  It is opened with
``check_same_thread=False`` and guarded by a lock, so the SCP may call the store
from ``asyncio.to_thread`` workers or a single worker thread.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar

from pydicom.dataset import Dataset
from pydicom.filebase import DicomBytesIO
from pydicom.filereader import read_dataset
from pydicom.filewriter import write_dataset

from ups.services.scp.prefilter import Prefilter
from ups.services.scp.reports import EventReport
from ups.services.uids import GLOBAL_SUBSCRIPTION_INSTANCES, EventType

__all__ = [
    "GLOBAL_UIDS",
    "Candidates",
    "Outcome",
    "QueuedEvent",
    "Store",
    "Subscription",
    "decode_dataset",
    "encode_dataset",
]

GLOBAL_UIDS = GLOBAL_SUBSCRIPTION_INSTANCES
"""The well-known UPS Global Subscription instances (PS3.4 CC.3.1)."""


def encode_dataset(ds: Dataset) -> bytes:
    """Explicit VR Little Endian bytes of a data set (no preamble, no meta)."""
    fp = DicomBytesIO()
    fp.is_little_endian = True
    fp.is_implicit_VR = False
    write_dataset(fp, ds)
    return bytes(fp.getvalue())


def decode_dataset(data: bytes) -> Dataset:
    """The inverse of :func:`encode_dataset`."""
    return read_dataset(io.BytesIO(data), is_implicit_VR=False, is_little_endian=True)


@dataclass(frozen=True, slots=True)
class Subscription:
    """One subscription row: per-UPS (``iuid``) or global (``iuid == ""``)."""

    ae_title: str
    iuid: str
    deletion_lock: bool
    match_keys: Dataset | None = None
    suspended: bool = False


@dataclass(frozen=True, slots=True)
class QueuedEvent:
    """An N-EVENT-REPORT waiting to be sent to ``ae_title``."""

    id: int
    ae_title: str
    event_type: EventType
    iuid: str
    info: Dataset
    created: float
    attempts: int
    next_attempt: float


class Outcome(Protocol):
    """What a decision of :mod:`ups.services.scp.upsstate` gives the store to apply."""

    @property
    def dataset(self) -> Dataset | None: ...

    @property
    def events(self) -> tuple[EventReport, ...]: ...


OutcomeT = TypeVar("OutcomeT", bound=Outcome)


class Candidates(Protocol):
    """One C-FIND's candidates, read a page at a time (on the store's thread).

    Every workitem that matches the query is among them, each at most once; the
    caller matches them (:mod:`ups.services.scp.matching`).  Nothing needs to stay
    open between pages; :meth:`close` is called when the C-FIND ends (done,
    cancelled, or its association gone) and may be called twice.
    """

    def fetch(self, size: int) -> list[bytes]:
        """Up to ``size`` more stored encodings (:func:`encode_dataset`); [] only at the end."""
        ...

    def close(self) -> None: ...


class Store(Protocol):
    """The small interface the SCP needs; another database can implement it."""

    def create_workitem(
        self, dataset: Dataset, *, events: Sequence[EventReport] = (), now: float
    ) -> None: ...
    def get_workitem(self, iuid: str) -> Dataset | None: ...
    def update_workitem(
        self,
        iuid: str,
        dataset: Dataset,
        *,
        expected_state: str,
        expected_transaction_uid: str,
        events: Sequence[EventReport] = (),
        now: float,
    ) -> bool: ...
    def modify_workitem(
        self, iuid: str, decide: Callable[[Dataset | None], OutcomeT], *, now: float
    ) -> OutcomeT: ...
    def find_candidates(self, prefilter: Prefilter) -> Candidates: ...
    def delete_workitem(self, iuid: str) -> bool: ...
    def is_locked(self, iuid: str) -> bool: ...
    def purge_finished(self, before: float) -> list[str]: ...
    def next_purge(self) -> float | None: ...
    def subscribe(
        self,
        ae_title: str,
        iuid: str,
        *,
        deletion_lock: bool,
        now: float,
        match_keys: Dataset | None = None,
    ) -> int: ...
    def unsubscribe(self, ae_title: str, iuid: str) -> None: ...
    def suspend_global(self, ae_title: str) -> None: ...
    def subscriptions(self, ae_title: str | None = None) -> list[Subscription]: ...
    def subscribers_for(self, iuid: str) -> list[Subscription]: ...
    def all_subscriber_aes(self) -> list[str]: ...
    def enqueue_events(self, events: Sequence[EventReport], *, now: float) -> int: ...
    def due_events(self, now: float, limit: int = 100) -> list[QueuedEvent]: ...
    def next_event_time(self) -> float | None: ...
    def ack_event(self, event_id: int) -> None: ...
    def retry_later(self, event_id: int, next_attempt: float) -> None: ...
    def close(self) -> None: ...

    # Delivery shared between processes on one database (PgStore). ``shared`` says other
    # processes change the same data; a one-process store grants every lease at once.
    @property
    def shared(self) -> bool: ...
    def lease_events(
        self, owner: str, now: float, lease: float, limit: int = 100
    ) -> list[QueuedEvent]: ...
    def renew_leases(
        self, owner: str, ae_titles: Sequence[str], now: float, lease: float
    ) -> list[str]: ...
    def release_lease(self, owner: str, ae_title: str) -> None: ...
