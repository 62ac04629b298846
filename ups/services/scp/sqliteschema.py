"""The SQLite store's schema and its migrations (``PRAGMA user_version``).

Version 1 was the first layout; version 2 added ``finished`` (retention); version 3
(issue 17) gives ``workitems`` an ``id INTEGER PRIMARY KEY`` (a rowid that VACUUM
keeps) and adds ``workitem_keys``, the C-FIND index: one ``(key, value, wid)`` row per
entry of :func:`ups.services.scp.prefilter.index_entries`. Its primary key (``key``,
``value``, ``wid``; WITHOUT ROWID) is the index a condition reads, in value then
creation order; the second index (``wid``, ``key``, ``value``) checks the other
conditions of one workitem and deletes a workitem's rows (ON DELETE CASCADE). The
``value`` column has no type, so a DT entry stays an INTEGER and compares as one.

A database of an older version is migrated when it is opened: the table is rebuilt in
creation order and every workitem's entries are written, in one transaction.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable

from pydicom.dataset import Dataset

from ups.services.scp.prefilter import index_entries
from ups.services.scp.store import decode_dataset

__all__ = ["SCHEMA_VERSION", "migrate", "write_entries"]

SCHEMA_VERSION = 3
FINAL_STATES = ("COMPLETED", "CANCELED")

_WORKITEMS = """
CREATE TABLE IF NOT EXISTS workitems (
    id INTEGER PRIMARY KEY,
    iuid TEXT NOT NULL UNIQUE,
    state TEXT NOT NULL,
    transaction_uid TEXT NOT NULL DEFAULT '',
    sps_start TEXT NOT NULL DEFAULT '',
    priority TEXT NOT NULL DEFAULT '',
    patient_id TEXT NOT NULL DEFAULT '',
    worklist_label TEXT NOT NULL DEFAULT '',
    dataset BLOB NOT NULL,
    finished REAL
)"""
_COPIED = "iuid, state, transaction_uid, sps_start, priority, patient_id, worklist_label, dataset"

SCHEMA = f"""
{_WORKITEMS};
CREATE INDEX IF NOT EXISTS workitems_state ON workitems(state);
CREATE INDEX IF NOT EXISTS workitems_finished ON workitems(finished)
    WHERE finished IS NOT NULL;
CREATE TABLE IF NOT EXISTS workitem_keys (
    key TEXT NOT NULL,
    value NOT NULL,
    wid INTEGER NOT NULL REFERENCES workitems(id) ON DELETE CASCADE,
    PRIMARY KEY (key, value, wid)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS workitem_keys_wid ON workitem_keys(wid, key, value);
CREATE TABLE IF NOT EXISTS subscriptions (
    ae_title TEXT NOT NULL,
    iuid TEXT NOT NULL,
    deletion_lock INTEGER NOT NULL,
    match_keys BLOB,
    suspended INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (ae_title, iuid)
);
CREATE INDEX IF NOT EXISTS subscriptions_iuid ON subscriptions(iuid);
CREATE TABLE IF NOT EXISTS event_queue (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    ae_title TEXT NOT NULL,
    event_type INTEGER NOT NULL,
    iuid TEXT NOT NULL,
    dataset BLOB NOT NULL,
    created REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS event_queue_ae ON event_queue(ae_title, id);
CREATE INDEX IF NOT EXISTS event_queue_next ON event_queue(next_attempt);
"""


def _statements(script: str) -> Iterable[str]:
    return filter(None, (s.strip() for s in script.split(";")))


def write_entries(db: sqlite3.Connection, wid: int, dataset: Dataset, *, fresh: bool) -> None:
    """Replace the C-FIND index rows of workitem ``wid`` (``fresh``: it has none yet)."""
    if not fresh:
        db.execute("DELETE FROM workitem_keys WHERE wid = ?", (wid,))
    db.executemany(
        "INSERT INTO workitem_keys (key, value, wid) VALUES (?,?,?)",
        [(key, value, wid) for key, value in index_entries(dataset)],
    )


def migrate(db: sqlite3.Connection) -> None:
    """Create or bring the schema to :data:`SCHEMA_VERSION` (inside the caller's BEGIN)."""
    version = int(db.execute("PRAGMA user_version").fetchone()[0])
    columns = {row[1] for row in db.execute("PRAGMA table_info(workitems)")}
    rebuild = bool(columns) and "id" not in columns
    if rebuild:  # versions 1 and 2: a rowid table without its own key
        finished = "finished" if "finished" in columns else "NULL"
        db.execute("ALTER TABLE workitems RENAME TO workitems_old")
        db.execute(_WORKITEMS)
        db.execute(
            f"INSERT INTO workitems ({_COPIED}, finished)"
            f" SELECT {_COPIED}, {finished} FROM workitems_old ORDER BY rowid"
        )
        db.execute("DROP TABLE workitems_old")
        if "finished" not in columns:  # version 1: finished long ago, as far as we know
            db.execute("UPDATE workitems SET finished = 0 WHERE state IN (?, ?)", FINAL_STATES)
    for statement in _statements(SCHEMA):
        db.execute(statement)
    if rebuild or (columns and version < SCHEMA_VERSION):
        db.execute("DELETE FROM workitem_keys")
        for wid, blob in db.execute("SELECT id, dataset FROM workitems").fetchall():
            write_entries(db, wid, decode_dataset(blob), fresh=True)
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
