"""The PostgreSQL store's schema, its migrations and the small helpers its queries share.

``ups_schema`` holds the schema version; :func:`migrate` creates or upgrades the tables
on start. Table names carry a ``ups_`` prefix, since the database may be one the site
uses for other things too. ``ups_delivery_leases`` holds one row per subscriber AE: who
delivers its events now and until when (:mod:`ups.services.scp.pgstore`).

Version 2 (issue 13, as SQLite's version 3 for issue 17) adds ``ups_workitem_keys``, the
C-FIND index: one row per entry of :func:`ups.services.scp.prefilter.index_entries`,
written by :func:`write_entries` in the transaction of every workitem write and deleted
with the workitem (ON DELETE CASCADE on ``seq``). An entry's value is a DT as
microseconds UTC (``ivalue bigint``) or text (``tvalue text COLLATE "C"``: byte order,
which in UTF-8 is code point order, as Python and SQLite compare); exactly one is set,
and the empty text (:data:`~ups.services.scp.prefilter.UNKNOWN`) is kept. The indexes
(``key``, ``tvalue``, ``seq``) and (``key``, ``ivalue``, ``seq``) are what a condition
reads, in value then creation order (:mod:`ups.services.scp.pgfind`); (``seq``, ``key``)
checks the other conditions of one workitem and serves the cascade. Migrating from
version 1 writes every stored workitem's entries, in the migration's transaction.
"""

from __future__ import annotations

from typing import Any

import psycopg
from pydicom.dataset import Dataset

from ups.services.errors import ConfigError, UPSError
from ups.services.scp.prefilter import index_entries
from ups.services.scp.store import QueuedEvent, decode_dataset
from ups.services.scp.stores import shown
from ups.services.uids import EventType

__all__ = ["Connection", "Cursor", "DatabaseUnavailable", "connect", "migrate", "write_entries"]

Cursor = psycopg.Cursor[tuple[Any, ...]]
Connection = psycopg.Connection[tuple[Any, ...]]

SCHEMA_VERSION = 2
MIGRATIONS: tuple[str, ...] = (  # MIGRATIONS[v] brings version v to v + 1
    """
    CREATE TABLE ups_workitems (
        seq bigserial UNIQUE,
        iuid text PRIMARY KEY,
        state text NOT NULL,
        transaction_uid text NOT NULL DEFAULT '',
        sps_start text NOT NULL DEFAULT '',
        priority text NOT NULL DEFAULT '',
        patient_id text NOT NULL DEFAULT '',
        worklist_label text NOT NULL DEFAULT '',
        dataset bytea NOT NULL,
        finished double precision
    );
    CREATE INDEX ups_workitems_state ON ups_workitems (state);
    CREATE INDEX ups_workitems_sps_start ON ups_workitems (sps_start);
    CREATE INDEX ups_workitems_priority ON ups_workitems (priority);
    CREATE INDEX ups_workitems_patient_id ON ups_workitems (patient_id);
    CREATE INDEX ups_workitems_worklist_label ON ups_workitems (worklist_label);
    CREATE INDEX ups_workitems_finished ON ups_workitems (finished)
        WHERE finished IS NOT NULL;
    CREATE TABLE ups_subscriptions (
        ae_title text NOT NULL,
        iuid text NOT NULL,
        deletion_lock boolean NOT NULL,
        match_keys bytea,
        suspended boolean NOT NULL DEFAULT false,
        PRIMARY KEY (ae_title, iuid)
    );
    CREATE INDEX ups_subscriptions_iuid ON ups_subscriptions (iuid);
    CREATE TABLE ups_event_queue (
        id bigserial PRIMARY KEY,
        ae_title text NOT NULL,
        event_type integer NOT NULL,
        iuid text NOT NULL,
        dataset bytea NOT NULL,
        created double precision NOT NULL,
        attempts integer NOT NULL DEFAULT 0,
        next_attempt double precision NOT NULL
    );
    CREATE INDEX ups_event_queue_ae ON ups_event_queue (ae_title, id);
    CREATE INDEX ups_event_queue_next ON ups_event_queue (next_attempt);
    CREATE TABLE ups_delivery_leases (
        ae_title text PRIMARY KEY,
        lease_owner text NOT NULL DEFAULT '',
        lease_until double precision NOT NULL DEFAULT 0
    );
    """,
    """
    CREATE TABLE ups_workitem_keys (
        key text NOT NULL,
        ivalue bigint,
        tvalue text COLLATE "C",
        seq bigint NOT NULL REFERENCES ups_workitems (seq) ON DELETE CASCADE,
        CHECK ((ivalue IS NULL) <> (tvalue IS NULL))
    );
    CREATE INDEX ups_workitem_keys_text ON ups_workitem_keys (key, tvalue, seq);
    CREATE INDEX ups_workitem_keys_int ON ups_workitem_keys (key, ivalue, seq);
    CREATE INDEX ups_workitem_keys_seq ON ups_workitem_keys (seq, key);
    """,
)
BACKFILL_PAGE = 500
"""Workitems read per statement while a migration writes their index entries."""
MIGRATION_LOCK = 0x55505331  # advisory lock keys ("UPS1", "UPS2")
GLOBAL_LOCK = 0x55505332
RETRIES = 5
"""Attempts of a transaction that PostgreSQL rolled back (deadlock, serialization)."""

FINISHED = "CASE WHEN %s THEN COALESCE(finished, %s) END"
UNLOCKED = (
    "NOT EXISTS (SELECT 1 FROM ups_subscriptions s WHERE s.iuid = w.iuid AND s.deletion_lock)"
)
SET_COLUMNS = (
    "state=%s, transaction_uid=%s, sps_start=%s, priority=%s, patient_id=%s,"
    f" worklist_label=%s, dataset=%s, finished={FINISHED}"
)
EVENT_COLUMNS = "id, ae_title, event_type, iuid, dataset, created, attempts, next_attempt"


class DatabaseUnavailable(UPSError):
    """The PostgreSQL server cannot be reached (a network failure, exit status 3)."""


def reason(exc: BaseException) -> str:
    """The one line of a libpq message that says why (the server's FATAL, or the socket's)."""
    lines = [x.strip() for x in str(exc).splitlines() if x.strip()]
    line = lines[0] if lines else type(exc).__name__
    return line.rpartition(" failed: ")[2].removeprefix("FATAL:").strip()


def connect(url: str, timeout: float) -> Connection:
    """Connect, or one line: the server refused us (exit 2) or is not there (exit 3)."""
    try:
        return psycopg.connect(url, autocommit=True, connect_timeout=max(1, round(timeout)))
    except psycopg.Error as exc:
        where = f"database {shown(url)}"
        if "FATAL:" in str(exc) or "password" in str(exc):
            raise ConfigError(f"{where}: {reason(exc)}") from None
        raise DatabaseUnavailable(f"{where}: cannot connect: {reason(exc)}") from None


def text_of(ds: Dataset, keyword: str) -> str:
    value = ds.get(keyword)
    return "" if value is None else str(value).strip(" \x00")


def columns(ds: Dataset) -> tuple[str, ...]:
    keywords = (
        "ProcedureStepState",
        "TransactionUID",
        "ScheduledProcedureStepStartDateTime",
        "ScheduledProcedureStepPriority",
        "PatientID",
        "WorklistLabel",
    )
    return tuple(text_of(ds, k) for k in keywords)


def finished_args(ds: Dataset, now: float) -> tuple[bool, float]:
    return text_of(ds, "ProcedureStepState") in ("COMPLETED", "CANCELED"), now


def single(query: Dataset, keyword: str) -> str | None:
    """A query key usable as an exact SQL filter (single value, no wild card)."""
    if keyword not in query:
        return None
    value = query[keyword].value
    if value is None or not isinstance(value, str):
        return None
    text = value.strip(" \x00")
    if not text or "*" in text or "?" in text or "\\" in text:
        return None
    return text


def uid_list(query: Dataset) -> list[str]:
    if "SOPInstanceUID" not in query:
        return []
    value = query["SOPInstanceUID"].value
    if value is None or value == "":
        return []
    values = [value] if isinstance(value, str) else list(value)
    uids = [str(v).strip(" \x00") for v in values]
    return [] if any("*" in u or "?" in u for u in uids) else [u for u in uids if u]


def queued(row: tuple[Any, ...]) -> QueuedEvent:
    i, ae, kind, uid, blob, created, attempts, next_attempt = row
    info = decode_dataset(blob)
    return QueuedEvent(i, ae, EventType(kind), uid, info, created, attempts, next_attempt)


def write_entries(cur: Cursor, seq: int, dataset: Dataset, *, fresh: bool) -> None:
    """Replace the C-FIND index rows of workitem ``seq`` (``fresh``: it has none yet), in
    the caller's transaction; one INSERT whatever the number of entries."""
    if not fresh:
        cur.execute("DELETE FROM ups_workitem_keys WHERE seq = %s", (seq,))
    entries = list(index_entries(dataset))
    if not entries:
        return
    cur.execute(
        "INSERT INTO ups_workitem_keys (key, ivalue, tvalue, seq)"
        " SELECT k, i, t, %s FROM unnest(%s::text[], %s::bigint[], %s::text[]) AS e(k, i, t)",
        (
            seq,
            [key for key, _ in entries],
            [value if isinstance(value, int) else None for _, value in entries],
            [value if isinstance(value, str) else None for _, value in entries],
        ),
    )


def _backfill(conn: Connection) -> None:
    """Write the index entries of every stored workitem (migration to version 2)."""
    last = 0
    with conn.cursor() as cur:
        while True:
            rows = cur.execute(
                "SELECT seq, dataset FROM ups_workitems WHERE seq > %s ORDER BY seq LIMIT %s",
                (last, BACKFILL_PAGE),
            ).fetchall()
            for seq, blob in rows:
                write_entries(cur, seq, decode_dataset(blob), fresh=True)
            if len(rows) < BACKFILL_PAGE:
                return
            last = rows[-1][0]


def migrate(conn: Connection, url: str) -> None:
    """Create the schema, or bring it to :data:`SCHEMA_VERSION`, in one transaction under an
    advisory lock (several processes may start at once); a newer schema is refused."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
        conn.execute("CREATE TABLE IF NOT EXISTS ups_schema (version integer NOT NULL)")
        row = conn.execute("SELECT max(version) FROM ups_schema").fetchone()
        version = int(row[0]) if row and row[0] is not None else 0
        if version > SCHEMA_VERSION:
            raise ConfigError(
                f"database {shown(url)}: schema version {version} is newer than"
                f" this dcmups ({SCHEMA_VERSION})"
            )
        for step in range(version, SCHEMA_VERSION):
            conn.execute(MIGRATIONS[step])
            if step == 1:  # the C-FIND index: entries for what is stored already
                _backfill(conn)
        if version != SCHEMA_VERSION:
            conn.execute("DELETE FROM ups_schema")
            conn.execute("INSERT INTO ups_schema VALUES (%s)", (SCHEMA_VERSION,))
