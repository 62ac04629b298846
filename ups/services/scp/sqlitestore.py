"""The SQLite :class:`~ups.services.scp.store.Store`: one file, WAL, ``synchronous=FULL``.

What it promises is the store's contract (:mod:`ups.services.scp.store`): a method that
returned is on disk, events are queued in the transaction of their cause, one claim
wins, and time is an argument.

Retention: the ``finished`` column holds when a UPS reached COMPLETED or CANCELED (the
caller's ``now``), NULL before; an index on it lets :meth:`SQLiteStore.next_purge` find
the oldest finished UPS that no Deletion Lock holds without scanning, and
:meth:`SQLiteStore.purge_finished` delete those finished before a time. A database of
schema version 1 gains the column on open; its finished UPSs (which only a Deletion
Lock kept) count as finished long ago, so they go as soon as nothing holds them.

C-FIND (issue 17): every write of a workitem rewrites its rows in ``workitem_keys``
(:func:`ups.services.scp.sqliteschema.write_entries`, in the same transaction), and
:meth:`SQLiteStore.find_candidates` reads them in keyset pages
(:mod:`ups.services.scp.sqlitefind`). The schema and its migrations (version 3 adds
the index) live in :mod:`ups.services.scp.sqliteschema`.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from pydicom.dataset import Dataset

from ups.dimse.status import Status
from ups.services.errors import ConfigError, ServiceError
from ups.services.scp.matching import matches
from ups.services.scp.prefilter import Prefilter
from ups.services.scp.reports import EventReport, state_report
from ups.services.scp.sqlitefind import SQLiteCandidates
from ups.services.scp.sqliteschema import FINAL_STATES, migrate, write_entries
from ups.services.scp.store import (
    GLOBAL_UIDS,
    OutcomeT,
    QueuedEvent,
    Subscription,
    decode_dataset,
    encode_dataset,
)
from ups.services.uids import UPS_FILTERED_GLOBAL_SUBSCRIPTION_INSTANCE, EventType

__all__ = ["SQLiteStore"]

_FINISHED = "CASE WHEN ? THEN COALESCE(finished, ?) END"
"""The ``finished`` column after a write (parameters: the new state is final, now): when
the UPS first became final, NULL while it is not. (An UPDATE sees the old row's state.)"""
_UNLOCKED = (
    "NOT EXISTS (SELECT 1 FROM subscriptions s WHERE s.iuid = w.iuid AND s.deletion_lock = 1)"
)


def _text(ds: Dataset, keyword: str) -> str:
    value = ds.get(keyword)
    return "" if value is None else str(value).strip(" \x00")


class SQLiteStore:
    """:class:`Store` on one SQLite file (WAL, ``synchronous=FULL``)."""

    shared = False
    """One process owns the file: delivery needs no leases."""

    def __init__(self, path: str | Path) -> None:
        """Open (or create) the database at ``path``.

        A path that cannot be opened, or a file that is not an SQLite database, raises
        :class:`~ups.services.errors.ConfigError` in one line: it is a local setting.
        """
        self._lock = threading.RLock()
        try:
            self._conn = sqlite3.connect(
                str(path), isolation_level=None, check_same_thread=False, timeout=30.0
            )
        except sqlite3.Error as exc:
            raise ConfigError(f"database {str(path)!r}: {exc}") from None
        try:
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=FULL")
            self._conn.execute("PRAGMA foreign_keys=ON")
            with self._tx() as db:
                migrate(db)
        except sqlite3.Error as exc:
            self._conn.close()
            raise ConfigError(f"database {str(path)!r}: {exc}") from None

    # ------------------------------------------------------------------ plumbing

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def close(self) -> None:
        """Close the connection (every acknowledged change is already on disk)."""
        with self._lock:
            self._conn.close()

    # ------------------------------------------------------------------ workitems

    def create_workitem(
        self, dataset: Dataset, *, events: Sequence[EventReport] = (), now: float
    ) -> None:
        """Store a new UPS, subscribe the global subscribers, queue ``events``.

        A UPS with the same SOP Instance UID fails with 0111 (Table CC.1.1-2).
        """
        iuid = _text(dataset, "SOPInstanceUID")
        if not iuid:
            raise ServiceError(Status.MISSING_ATTRIBUTE, "SOP Instance UID missing")
        with self._tx() as db:
            try:
                wid = db.execute(
                    "INSERT INTO workitems (iuid, state, transaction_uid, sps_start, priority,"
                    " patient_id, worklist_label, dataset) VALUES (?,?,?,?,?,?,?,?)",
                    (iuid, *self._columns(dataset), encode_dataset(dataset)),
                ).lastrowid
            except sqlite3.IntegrityError:
                raise ServiceError(Status.DUPLICATE_SOP_INSTANCE) from None
            assert wid is not None
            write_entries(db, wid, dataset, fresh=True)
            rows = db.execute(
                "SELECT ae_title, deletion_lock, match_keys FROM subscriptions"
                " WHERE iuid = '' AND suspended = 0"
            ).fetchall()
            for ae_title, lock, keys in rows:
                if keys is None or matches(dataset, decode_dataset(keys)):
                    db.execute(
                        "INSERT OR IGNORE INTO subscriptions (ae_title, iuid, deletion_lock)"
                        " VALUES (?,?,?)",
                        (ae_title, iuid, lock),
                    )
            self._enqueue(db, events, now)

    @staticmethod
    def _columns(ds: Dataset) -> tuple[str, str, str, str, str, str]:
        return (
            _text(ds, "ProcedureStepState"),
            _text(ds, "TransactionUID"),
            _text(ds, "ScheduledProcedureStepStartDateTime"),
            _text(ds, "ScheduledProcedureStepPriority"),
            _text(ds, "PatientID"),
            _text(ds, "WorklistLabel"),
        )

    @staticmethod
    def _finished(ds: Dataset, now: float) -> tuple[bool, float]:
        return _text(ds, "ProcedureStepState") in FINAL_STATES, now

    def get_workitem(self, iuid: str) -> Dataset | None:
        """The stored UPS (with its Transaction UID: strip it before N-GET, CC.2.7.3)."""
        with self._lock:
            row = self._conn.execute(
                "SELECT dataset FROM workitems WHERE iuid = ?", (iuid,)
            ).fetchone()
        return None if row is None else decode_dataset(row[0])

    def update_workitem(
        self,
        iuid: str,
        dataset: Dataset,
        *,
        expected_state: str,
        expected_transaction_uid: str,
        events: Sequence[EventReport] = (),
        now: float,
    ) -> bool:
        """Compare-and-set: write ``dataset`` only if state and Transaction UID are as expected.

        Returns False (and changes nothing) when another change came first.
        """
        with self._tx() as db:
            row = db.execute(
                "UPDATE workitems SET state=?, transaction_uid=?, sps_start=?, priority=?,"
                f" patient_id=?, worklist_label=?, dataset=?, finished={_FINISHED}"
                " WHERE iuid=? AND state=? AND transaction_uid=? RETURNING id",
                (
                    *self._columns(dataset),
                    encode_dataset(dataset),
                    *self._finished(dataset, now),
                    iuid,
                    expected_state,
                    expected_transaction_uid,
                ),
            ).fetchone()
            if row is None:
                return False
            write_entries(db, row[0], dataset, fresh=False)
            self._enqueue(db, events, now)
            return True

    def modify_workitem(
        self, iuid: str, decide: Callable[[Dataset | None], OutcomeT], *, now: float
    ) -> OutcomeT:
        """Read, decide and write atomically.

        ``decide`` gets the stored UPS (or ``None``) and returns an outcome of
        :mod:`ups.services.scp.upsstate` (a Transition or Update); its data set is
        stored (when not ``None``) and its events queued, all in one
        transaction.  A :class:`ServiceError` from ``decide`` changes nothing.
        """
        with self._tx() as db:
            row = db.execute("SELECT dataset, id FROM workitems WHERE iuid = ?", (iuid,)).fetchone()
            outcome = decide(None if row is None else decode_dataset(row[0]))
            if outcome.dataset is not None and row is not None:
                write_entries(db, row[1], outcome.dataset, fresh=False)
                db.execute(
                    "UPDATE workitems SET state=?, transaction_uid=?, sps_start=?, priority=?,"
                    f" patient_id=?, worklist_label=?, dataset=?, finished={_FINISHED}"
                    " WHERE iuid=?",
                    (
                        *self._columns(outcome.dataset),
                        encode_dataset(outcome.dataset),
                        *self._finished(outcome.dataset, now),
                        iuid,
                    ),
                )
            self._enqueue(db, outcome.events, now)
            return outcome

    def find_candidates(self, prefilter: Prefilter) -> SQLiteCandidates:
        """The candidates of a C-FIND, a page at a time (:mod:`ups.services.scp.sqlitefind`)."""
        return SQLiteCandidates(self._conn, self._lock, prefilter)

    def is_locked(self, iuid: str) -> bool:
        """Whether any subscriber holds a deletion lock on the UPS (CC.2.1.3)."""
        with self._lock:
            row = self._conn.execute(
                "SELECT 1 FROM subscriptions WHERE iuid = ? AND deletion_lock = 1 LIMIT 1", (iuid,)
            ).fetchone()
        return row is not None

    def delete_workitem(self, iuid: str) -> bool:
        """Delete a UPS and its subscriptions unless a deletion lock holds it."""
        with self._tx() as db:
            if db.execute(
                "SELECT 1 FROM subscriptions WHERE iuid = ? AND deletion_lock = 1 LIMIT 1", (iuid,)
            ).fetchone():
                return False
            gone = db.execute("DELETE FROM workitems WHERE iuid = ?", (iuid,)).rowcount
            db.execute("DELETE FROM subscriptions WHERE iuid = ?", (iuid,))
            return gone == 1

    def purge_finished(self, before: float) -> list[str]:
        """Delete every COMPLETED or CANCELED UPS finished at or before ``before`` that no
        Deletion Lock holds, with its subscriptions; their UIDs (oldest first)."""
        with self._tx() as db:
            rows = db.execute(
                "SELECT iuid FROM workitems w WHERE finished IS NOT NULL AND finished <= ?"
                f" AND {_UNLOCKED} ORDER BY finished",
                (before,),
            ).fetchall()
            uids = [r[0] for r in rows]
            for iuid in uids:
                db.execute("DELETE FROM workitems WHERE iuid = ?", (iuid,))
                db.execute("DELETE FROM subscriptions WHERE iuid = ?", (iuid,))
            return uids

    def next_purge(self) -> float | None:
        """When the oldest finished UPS no Deletion Lock holds was finished (None: none)."""
        with self._lock:
            row = self._conn.execute(
                f"SELECT finished FROM workitems w WHERE finished IS NOT NULL AND {_UNLOCKED}"
                " ORDER BY finished LIMIT 1"
            ).fetchone()
        return None if row is None else float(row[0])

    # ------------------------------------------------------------------ subscriptions

    def subscribe(
        self,
        ae_title: str,
        iuid: str,
        *,
        deletion_lock: bool,
        now: float,
        match_keys: Dataset | None = None,
    ) -> int:
        """Subscribe ``ae_title`` to one UPS or globally (PS3.4 CC.2.3, Table CC.2.3-2).

        ``iuid`` is a UPS SOP Instance UID or one of :data:`GLOBAL_UIDS`
        (``match_keys`` only with the Filtered Global one).  Returns the number
        of initial UPS State Reports queued for the subscriber.  An unknown UPS
        fails with C307.
        """
        lock = int(deletion_lock)
        with self._tx() as db:
            if iuid not in GLOBAL_UIDS:
                row = db.execute("SELECT dataset FROM workitems WHERE iuid = ?", (iuid,)).fetchone()
                if row is None:
                    raise ServiceError(Status.UPS_NO_SUCH_INSTANCE, "No such UPS")
                db.execute(
                    "INSERT INTO subscriptions (ae_title, iuid, deletion_lock) VALUES (?,?,?)"
                    " ON CONFLICT (ae_title, iuid)"
                    " DO UPDATE SET deletion_lock = excluded.deletion_lock",
                    (ae_title, iuid, lock),
                )
                initial = EventReport(
                    EventType.UPS_STATE_REPORT, iuid, state_report(decode_dataset(row[0])), ae_title
                )
                self._enqueue(db, (initial,), now)
                return 1
            keys = match_keys if iuid == UPS_FILTERED_GLOBAL_SUBSCRIPTION_INSTANCE else None
            blob = None if keys is None else encode_dataset(keys)
            db.execute(
                "INSERT INTO subscriptions (ae_title, iuid, deletion_lock, match_keys, suspended)"
                " VALUES (?, '', ?, ?, 0) ON CONFLICT (ae_title, iuid) DO UPDATE SET"
                " deletion_lock = excluded.deletion_lock, match_keys = excluded.match_keys,"
                " suspended = 0",
                (ae_title, lock, blob),
            )
            rows = db.execute(
                "SELECT iuid, dataset FROM workitems w WHERE NOT EXISTS (SELECT 1 FROM"
                " subscriptions s WHERE s.ae_title = ? AND s.iuid = w.iuid) ORDER BY rowid",
                (ae_title,),
            ).fetchall()
            initial_events: list[EventReport] = []
            for uid, data in rows:
                ds = decode_dataset(data)
                if keys is not None and not matches(ds, keys):
                    continue
                db.execute(
                    "INSERT INTO subscriptions (ae_title, iuid, deletion_lock) VALUES (?,?,?)",
                    (ae_title, uid, lock),
                )
                if deletion_lock:
                    initial_events.append(
                        EventReport(EventType.UPS_STATE_REPORT, uid, state_report(ds), ae_title)
                    )
            self._enqueue(db, initial_events, now)
            return len(initial_events)

    def unsubscribe(self, ae_title: str, iuid: str) -> None:
        """Unsubscribe from one UPS, or globally: then from every UPS as well (CC.2.3.2)."""
        with self._tx() as db:
            if iuid in GLOBAL_UIDS:
                db.execute("DELETE FROM subscriptions WHERE ae_title = ?", (ae_title,))
                return
            if db.execute("SELECT 1 FROM workitems WHERE iuid = ?", (iuid,)).fetchone() is None:
                raise ServiceError(Status.UPS_NO_SUCH_INSTANCE, "No such UPS")
            db.execute(
                "DELETE FROM subscriptions WHERE ae_title = ? AND iuid = ?", (ae_title, iuid)
            )

    def suspend_global(self, ae_title: str) -> None:
        """Stop subscribing ``ae_title`` to new UPSs; keep its current ones (CC.2.3.2)."""
        with self._tx() as db:
            db.execute(
                "UPDATE subscriptions SET suspended = 1 WHERE ae_title = ? AND iuid = ''",
                (ae_title,),
            )

    def subscriptions(self, ae_title: str | None = None) -> list[Subscription]:
        """All subscription rows, or those of one AE."""
        sql = "SELECT ae_title, iuid, deletion_lock, match_keys, suspended FROM subscriptions"
        args: tuple[str, ...] = ()
        if ae_title is not None:
            sql += " WHERE ae_title = ?"
            args = (ae_title,)
        with self._lock:
            rows = self._conn.execute(sql + " ORDER BY ae_title, iuid", args).fetchall()
        return [
            Subscription(
                ae, uid, bool(lock), None if keys is None else decode_dataset(keys), bool(s)
            )
            for ae, uid, lock, keys, s in rows
        ]

    def subscribers_for(self, iuid: str) -> list[Subscription]:
        """Who gets the events of one UPS: its "Subscribed SCUs" (CC.2.4.3)."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT ae_title, deletion_lock FROM subscriptions WHERE iuid = ?"
                " ORDER BY ae_title",
                (iuid,),
            ).fetchall()
        return [Subscription(ae, iuid, bool(lock)) for ae, lock in rows]

    def all_subscriber_aes(self) -> list[str]:
        """AEs an SCP Status Change goes to, besides the fallback list (CC.2.4.3)."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT DISTINCT ae_title FROM subscriptions WHERE iuid != '' OR suspended = 0"
                " ORDER BY ae_title"
            ).fetchall()
        return [r[0] for r in rows]

    # ------------------------------------------------------------------ event queue

    def _enqueue(self, db: sqlite3.Connection, events: Sequence[EventReport], now: float) -> int:
        count = 0
        for event in events:
            if event.ae_title is not None:
                targets = [event.ae_title]
            else:
                targets = [
                    r[0]
                    for r in db.execute(
                        "SELECT ae_title FROM subscriptions WHERE iuid = ? ORDER BY ae_title",
                        (event.iuid,),
                    )
                ]
            blob = encode_dataset(event.info)
            for ae_title in targets:
                db.execute(
                    "INSERT INTO event_queue (ae_title, event_type, iuid, dataset, created,"
                    " next_attempt) VALUES (?,?,?,?,?,?)",
                    (ae_title, int(event.event_type), event.iuid, blob, now, now),
                )
                count += 1
        return count

    def enqueue_events(self, events: Sequence[EventReport], *, now: float) -> int:
        """Queue events that change no workitem (cancel requested, SCP status); row count."""
        with self._tx() as db:
            return self._enqueue(db, events, now)

    def due_events(self, now: float, limit: int = 100) -> list[QueuedEvent]:
        """Events to send now, oldest first, FIFO per AE (see the module docstring)."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT id, ae_title, event_type, iuid, dataset, created, attempts, next_attempt"
                " FROM event_queue e WHERE next_attempt <= ? AND NOT EXISTS (SELECT 1 FROM"
                " event_queue p WHERE p.ae_title = e.ae_title AND p.id < e.id"
                " AND p.next_attempt > ?) ORDER BY id LIMIT ?",
                (now, now, limit),
            ).fetchall()
        return [
            QueuedEvent(i, ae, EventType(t), uid, decode_dataset(blob), c, a, n)
            for i, ae, t, uid, blob, c, a, n in rows
        ]

    def next_event_time(self) -> float | None:
        """When the earliest queued event falls due (for the sender's one timer)."""
        with self._lock:
            row = self._conn.execute("SELECT MIN(next_attempt) FROM event_queue").fetchone()
        return None if row is None or row[0] is None else float(row[0])

    def ack_event(self, event_id: int) -> None:
        """The event was delivered: forget it."""
        with self._tx() as db:
            db.execute("DELETE FROM event_queue WHERE id = ?", (event_id,))

    def retry_later(self, event_id: int, next_attempt: float) -> None:
        """Delivery failed: count the attempt and try again at ``next_attempt``."""
        with self._tx() as db:
            db.execute(
                "UPDATE event_queue SET attempts = attempts + 1, next_attempt = ? WHERE id = ?",
                (next_attempt, event_id),
            )

    # ------------------------------------------------------------------ leases (one process)

    def lease_events(
        self, owner: str, now: float, lease: float, limit: int = 100
    ) -> list[QueuedEvent]:
        """:meth:`due_events`: one process delivers everything, so every lease is granted."""
        return self.due_events(now, limit)

    def renew_leases(
        self, owner: str, ae_titles: Sequence[str], now: float, lease: float
    ) -> list[str]:
        """Every lease is still held."""
        return list(ae_titles)

    def release_lease(self, owner: str, ae_title: str) -> None:
        """Nothing to release."""
