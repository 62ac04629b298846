"""SQLite C-FIND candidates: index plans, keyset pages, each workitem once, schema v3."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from tests.services.scp.test_store import create
from ups.services.scp.finding import Find, find_workitems
from ups.services.scp.prefilter import compile_query
from ups.services.scp.sqlitefind import SQLiteCandidates
from ups.services.scp.sqliteschema import SCHEMA_VERSION
from ups.services.scp.sqlitestore import SQLiteStore
from ups.services.scp.store import decode_dataset, encode_dataset
from ups.services.scp.upsstate import check_change_state


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SQLiteStore]:
    s = SQLiteStore(tmp_path / "ups.db")
    yield s
    s.close()


def q(**kw: object) -> Dataset:
    ds = Dataset()
    for key, value in kw.items():
        setattr(ds, key, value)
    return ds


def uids(store: SQLiteStore, query: Dataset) -> list[str]:
    return [str(d.SOPInstanceUID) for d in find_workitems(store, query)]


def candidates(store: SQLiteStore, query: Dataset) -> SQLiteCandidates:
    return store.find_candidates(compile_query(query))


@pytest.mark.parametrize(
    "query",
    [
        q(PatientID="P1"),
        q(ProcedureStepLabel="item7*"),
        q(ScheduledProcedureStepStartDateTime="20240105-20240105"),
        q(ProcedureStepState="SCHEDULED", PatientID="P1"),
        q(PatientName="DOE*"),
    ],
)
def test_every_plan_reads_an_index(store: SQLiteStore, query: Dataset) -> None:
    plan = candidates(store, query).plan()
    assert plan[0].startswith("SEARCH k USING PRIMARY KEY (key=? AND value"), plan
    assert not any("SCAN" in step or "TEMP B-TREE" in step for step in plan), plan


def test_no_condition_reads_workitems_in_creation_order(store: SQLiteStore) -> None:
    for i in range(5):
        create(store, f"1.2.{i}")
    plan = candidates(store, q(CommentsOnTheScheduledProcedureStep="x")).plan()
    assert plan[0] == "SCAN w", plan  # the rowid order: no sort
    assert uids(store, q()) == [f"1.2.{i}" for i in range(5)]


def test_pages_hold_no_transaction_and_end(store: SQLiteStore) -> None:
    for i in range(7):
        create(store, f"1.2.{i}", label=f"item{i}")
    cursor = candidates(store, q(ProcedureStepLabel="item*"))
    first = cursor.fetch(3)
    assert len(first) == 3
    assert not store._conn.in_transaction  # nothing held between pages
    create(store, "1.2.9", label="item9")  # a write between pages is fine, and seen
    rest = cursor.fetch(3) + cursor.fetch(3) + cursor.fetch(3)
    labels = [decode_dataset(b).ProcedureStepLabel for b in first + rest]
    assert labels == sorted(labels) and len(labels) == 8
    assert cursor.fetch(3) == []
    cursor.close()
    cursor.close()


def test_a_workitem_with_several_matching_values_comes_once(store: SQLiteStore) -> None:
    ds = create(store, "1.2.1")
    codes = []
    for value in ("W1", "W2", "W3"):
        item = Dataset()
        item.CodeValue, item.CodingSchemeDesignator = value, "99L"
        codes.append(item)
    ds.ScheduledWorkitemCodeSequence = Sequence(codes)
    ds.ProcedureStepLabel = ["A1", "A2"]
    assert store.update_workitem(
        "1.2.1", ds, expected_state="SCHEDULED", expected_transaction_uid="", now=0.0
    )
    item = Dataset()
    item.CodeValue = "W*"
    assert uids(store, q(ScheduledWorkitemCodeSequence=Sequence([item]))) == ["1.2.1"]
    assert uids(store, q(ProcedureStepLabel=["A1", "A2", "A*"])) == ["1.2.1"]
    assert len(candidates(store, q(ProcedureStepLabel="A*")).fetch(10)) == 1


def test_entries_follow_changes_and_deletes(store: SQLiteStore) -> None:
    create(store, "1.2.1")
    store.modify_workitem(
        "1.2.1", lambda cur: check_change_state(cur, "IN PROGRESS", "1.9.1"), now=0.0
    )
    assert uids(store, q(ProcedureStepState="SCHEDULED")) == []
    assert uids(store, q(ProcedureStepState="IN PROGRESS")) == ["1.2.1"]
    with store._tx() as db:
        db.execute("DELETE FROM workitems")
    assert store._conn.execute("SELECT COUNT(*) FROM workitem_keys").fetchone()[0] == 0


def test_find_counts_candidates_and_stops_on_close(store: SQLiteStore) -> None:
    for i in range(40):
        create(store, f"1.2.{i}", patient="P1" if i % 2 else "P2")
    find = Find(store, q(PatientID="P1", ProcedureStepLabel=""), page=8)
    page = find.next_page()
    assert page is not None and len(page) == 8 and find.candidates == 8
    find.close()
    assert find.next_page() is None


def test_a_version_2_database_is_rebuilt_and_indexed(tmp_path: Path) -> None:
    path = tmp_path / "v2.db"
    blob = encode_dataset(q(SOPInstanceUID="1.2.1", PatientID="P7", ProcedureStepState="SCHEDULED"))
    with sqlite3.connect(str(path)) as conn:
        conn.executescript(
            "CREATE TABLE workitems (iuid TEXT PRIMARY KEY, state TEXT NOT NULL,"
            " transaction_uid TEXT NOT NULL DEFAULT '', sps_start TEXT NOT NULL DEFAULT '',"
            " priority TEXT NOT NULL DEFAULT '', patient_id TEXT NOT NULL DEFAULT '',"
            " worklist_label TEXT NOT NULL DEFAULT '', dataset BLOB NOT NULL, finished REAL);"
            "CREATE INDEX workitems_state ON workitems(state);"
            "PRAGMA user_version = 2;"
        )
        conn.execute(
            "INSERT INTO workitems (iuid, state, dataset, finished) VALUES (?,?,?,?)",
            ("1.2.1", "SCHEDULED", blob, None),
        )
    store = SQLiteStore(path)
    try:
        assert uids(store, q(PatientID="P7")) == ["1.2.1"]
        create(store, "1.2.2", patient="P7")
        assert uids(store, q(PatientID="P7")) == ["1.2.1", "1.2.2"]
    finally:
        store.close()
    with sqlite3.connect(str(path)) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


def test_a_later_page_reads_the_index_from_the_keyset(store: SQLiteStore) -> None:
    for i in range(6):
        create(store, f"1.2.{i}", label=f"item{i}")
    equal = candidates(store, q(ProcedureStepState="SCHEDULED"))
    equal.fetch(2)
    assert "wid>?" in equal.plan()[0], equal.plan()
    pattern = candidates(store, q(ProcedureStepLabel="item*"))
    first = pattern.fetch(2)
    assert len(first) == 2
    sql, args = pattern._sql(2)
    assert decode_dataset(first[-1]).ProcedureStepLabel in args  # the floor, not "item"
