"""PostgreSQL C-FIND candidates on a real server: the prefilter's promise, the same answers
as SQLite for the matching corpus (issue 13), keyset pages, index entries that follow every
write, and the schema migration 1 -> 2 that writes them for what is stored already."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from tests.services.scp import test_matching
from tests.services.scp.pg import PgCluster
from tests.services.scp.strategies import pool_of, queries
from tests.services.scp.test_prefilter import ITEMS, keeps_every_true_match
from tests.services.scp.test_store import create
from tests.services.scp.workitems import workitem
from ups.services.errors import ServiceError
from ups.services.scp.finding import find_workitems
from ups.services.scp.matching import matches
from ups.services.scp.prefilter import compile_query
from ups.services.scp.sqlitestore import SQLiteStore
from ups.services.scp.store import Store, decode_dataset, encode_dataset
from ups.services.scp.upsstate import check_change_state

if TYPE_CHECKING:
    from ups.services.scp.pgstore import PgStore

# Odd values on purpose (an invalid DT, a PN of four component groups): pydicom warns.
pytestmark = [
    pytest.mark.filterwarnings("ignore:Invalid value for VR"),
    pytest.mark.filterwarnings("ignore:The number of PN components"),
    pytest.mark.filterwarnings("ignore:The value length"),
    pytest.mark.filterwarnings("ignore::UserWarning"),
]


def pg_store_at(url: str) -> PgStore:
    from ups.services.scp.pgstore import PgStore

    return PgStore(url)


@pytest.fixture
def store(pg_cluster: PgCluster) -> Iterator[PgStore]:
    s = pg_store_at(pg_cluster.database())
    yield s
    s.close()


@pytest.fixture(scope="module")
def shared_store(pg_cluster: PgCluster) -> Iterator[PgStore]:
    s = pg_store_at(pg_cluster.database())
    yield s
    s.close()


def q(**kw: object) -> Dataset:
    ds = Dataset()
    for key, value in kw.items():
        setattr(ds, key, value)
    return ds


def code(value: str) -> Dataset:
    return q(CodeValue=value, CodingSchemeDesignator="99L", CodeMeaning=value)


def uids(store: Store, query: Dataset) -> list[str]:
    return [str(d.SOPInstanceUID) for d in find_workitems(store, query)]


def key_count(store: PgStore, where: str = "") -> int:
    return int(store._rows(f"SELECT count(*) FROM ups_workitem_keys {where}")[0][0])


# ----------------------------------------------------------------------------- the promise


@settings(
    max_examples=60,  # each example rewrites the worklist on the server: keep CI time modest
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(items=ITEMS, data=st.data())
def test_the_prefilter_never_drops_a_true_match_on_postgresql(
    shared_store: PgStore, items: tuple[Dataset, ...], data: st.DataObject
) -> None:
    """test_prefilter's property on PgStore: SQL then matching == matching every workitem."""
    query = data.draw(queries(tuple(pool_of(items))), label="query")
    shared_store._atomic(lambda cur: cur.execute("DELETE FROM ups_workitems"))
    for item in items:
        shared_store.create_workitem(item, now=0.0)
    keeps_every_true_match(shared_store, items, query)


# ----------------------------------------------------------------------------- SQLite == PG


def _corpus() -> list[Dataset]:
    """test_matching's candidate, and variants that each query splits differently."""
    base = test_matching.CAND
    out = []
    for uid, changes in (
        ("1.2.3.4", {}),
        (
            "1.2.3.5",
            {
                "PatientID": "p1",
                "PatientName": "Roe^John",
                "ProcedureStepState": "IN PROGRESS",
                "WorklistLabel": "ct room",
                "ScheduledProcedureStepPriority": "LOW",
                "ScheduledProcedureStepStartDateTime": "20240106080000",
                "ScheduledWorkitemCodeSequence": Sequence([code("X9")]),
            },
        ),
        (
            "1.2.3.6",
            {
                "PatientID": ["P1", "P2"],
                "PatientName": "Müller^Hans",
                "ProcedureStepState": "COMPLETED",
                "ScheduledProcedureStepStartDateTime": "20240105113000",
                "TimezoneOffsetFromUTC": "+0100",
                "WorklistLabel": "CT",
                "StudyDate": "20240101",
                "ProcedureStepLabel": "A%_[1]",
                "ScheduledStationNameCodeSequence": Sequence([code("S1")]),
            },
        ),
        (
            "1.2.3.8",
            {
                "PatientName": "doe^john",
                "ProcedureStepLabel": "item77x",
                "ScheduledHumanPerformersSequence": Sequence(
                    [q(HumanPerformerCodeSequence=Sequence([code("U1")]), HumanPerformerName="X")]
                ),
            },
        ),
    ):
        ds = decode_dataset(encode_dataset(base))
        for keyword, value in {"SOPInstanceUID": uid, **changes}.items():
            setattr(ds, keyword, value)
        out.append(ds)
    out.append(q(SOPInstanceUID="1.2.3.7", ProcedureStepState="SCHEDULED"))  # nearly empty
    full = workitem()  # a whole created workitem (test_store's request)
    full.SOPInstanceUID = "1.2.9"
    out.append(full)
    for ds in out:
        ds.SpecificCharacterSet = "ISO_IR 192"  # the non-ASCII names survive the store
    return out


def _parametrized(test: Callable[..., None]) -> list[tuple[str, object]]:
    """The (key, value) queries of one of test_matching's parametrized tests."""
    for mark in getattr(test, "pytestmark", []):
        if mark.name == "parametrize":
            return [(key, value) for key, value, _ in mark.args[1]]
    raise AssertionError("not parametrized")


def _queries() -> list[Dataset]:
    """Every query of the matching corpus (test_matching's tables, sequences, malformed
    keys), test_sqlitefind's, the bench's worklist queries' forms, and a few combinations."""
    single = _parametrized(test_matching.test_keys)
    single += _parametrized(test_matching.test_dates_and_times)
    single += [("StudyDate", bad) for bad in ("2024010-", "20240101-20240102-20240103")]
    single += [("StudyTime", "25-"), ("ScheduledProcedureStepStartDateTime", "2024-13-01")]
    out = [q(**{key: value}) for key, value in single]
    seq = "ScheduledWorkitemCodeSequence"
    for items in (
        [],
        [Dataset()],
        [q(CodeValue="")],
        [q(CodeValue="B2", CodingSchemeDesignator="99L")],
        [q(CodeValue="B2", CodingSchemeDesignator="X")],
        [q(CodeValue="?1")],
        [q(CodeValue="A1"), q(CodeValue="X9")],
        [q(CodeValue="*")],
    ):
        out.append(q(**{seq: Sequence(items)}))
    for value in ("U1", "U2", "U*"):
        inner = Sequence([q(HumanPerformerCodeSequence=Sequence([q(CodeValue=value)]))])
        out.append(q(ScheduledHumanPerformersSequence=inner))
    out += [
        q(),
        q(PatientID="P1", ProcedureStepState="SCHEDULED"),
        q(ProcedureStepLabel="item7*"),
        q(ProcedureStepLabel="A%_*"),
        q(ProcedureStepLabel="A\\%*"),
        q(ScheduledProcedureStepStartDateTime="20240105-20240105"),
        q(ScheduledStationNameCodeSequence=Sequence([q(CodeValue="S1")])),
        q(PatientName="DOE*"),
        q(PatientName="m*"),
        q(PatientName="Müller^Hans"),
        q(PatientID=["P2", "p1"]),
        q(WorklistLabel="C*", ProcedureStepState="COMPLETED"),
        q(SOPInstanceUID=["1.2.3.7", "1.2.9", "1.2.3.6"]),
        q(ScheduledProcedureStepStartDateTime="20240105103000", TimezoneOffsetFromUTC="+0100"),
    ]
    return out


with warnings.catch_warnings():  # odd values on purpose, built at collection
    warnings.simplefilter("ignore")
    QUERIES = _queries()


@pytest.fixture(scope="module")
def both(
    pg_cluster: PgCluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Store, Store]]:
    """The corpus stored in SQLite and in PostgreSQL."""
    sqlite = SQLiteStore(Path(tmp_path_factory.mktemp("corpus")) / "ups.db")
    pg = pg_store_at(pg_cluster.database())
    for item in _corpus():
        sqlite.create_workitem(item, now=0.0)
        pg.create_workitem(item, now=0.0)
    yield sqlite, pg
    sqlite.close()
    pg.close()


def _answer(store: Store, query: Dataset) -> list[str] | int:
    """The matching UIDs, sorted (order is the store's own), or the refusal's status."""
    try:
        return sorted(uids(store, query))
    except ServiceError as err:
        return err.status


@pytest.mark.parametrize("query", QUERIES, ids=[f"q{i}" for i in range(len(QUERIES))])
def test_sqlite_and_postgresql_give_the_same_answers(
    both: tuple[Store, Store], query: Dataset
) -> None:
    """Issue 13's acceptance: the same set of matches for every query of the corpus (the
    order may differ: each store reads in its own index order, so both are sorted), and
    that set is matching's own over the whole corpus."""
    sqlite, pg = both
    answer = _answer(sqlite, query)
    assert _answer(pg, query) == answer
    try:
        expected: list[str] | int = sorted(
            str(d.SOPInstanceUID) for d in _corpus() if matches(d, query)
        )
    except ServiceError as err:
        expected = err.status
    assert answer == expected


def test_the_corpus_splits_the_queries(both: tuple[Store, Store]) -> None:
    """The corpus is not trivial: queries get different, non-empty answers."""
    sqlite, _ = both
    answers = [_answer(sqlite, query) for query in QUERIES]
    assert 0xA900 in answers
    lists = [tuple(a) for a in answers if isinstance(a, list)]
    assert len(set(lists)) >= 10 and sum(1 for a in lists if 0 < len(a) < 6) >= 20


# ----------------------------------------------------------------------------- pages, entries


def test_the_driver_reads_an_index(store: PgStore) -> None:
    for i in range(3):
        create(store, f"1.2.{i}", label=f"item{i}")
    store._conn.execute("SET enable_seqscan = off")  # three rows: the plan a big table gets
    for query, index in (
        (q(PatientID="P1"), "ups_workitem_keys_text"),
        (q(ProcedureStepLabel="item7*"), "ups_workitem_keys_text"),
        (q(ScheduledProcedureStepStartDateTime="20240105-20240105"), "ups_workitem_keys_int"),
    ):
        plan = "\n".join(store.find_candidates(compile_query(query)).plan())
        assert f"Index Only Scan using {index} on ups_workitem_keys k" in plan, plan
        assert "Seq Scan" not in plan, plan


def test_other_conditions_are_checked_on_the_drivers_candidates(store: PgStore) -> None:
    """The driver's index leads and each other condition, EXISTS or the NOT EXISTS of a
    range's earlier entries, stays a check on its candidates (a SubPlan): PostgreSQL must
    not pull one up into a join it may drive from. Bench scenario 14's worklist query did
    so, reading every SCHEDULED entry to find one patient's two (6,098 buffers a page
    against 25, with or without statistics)."""
    for i in range(40):
        create(store, f"1.2.{i}", label=f"item{i}", patient=f"P{i % 20}")
    for query, subplans in (
        (q(PatientID="P1", ProcedureStepState="SCHEDULED"), 1),
        (q(ProcedureStepLabel="item1*", ProcedureStepState="SCHEDULED"), 2),
    ):
        lines = store.find_candidates(compile_query(query)).plan()
        plan = "\n".join(lines)
        assert "Index Only Scan using ups_workitem_keys_text on ups_workitem_keys k" in plan, plan
        assert sum(line.strip().startswith("SubPlan") for line in lines) == subplans, plan
        for join in ("Semi Join", "Anti Join", "Aggregate", "Unique"):
            assert join not in plan, plan


def test_pages_hold_no_transaction_and_end(store: PgStore) -> None:
    from psycopg.pq import TransactionStatus

    for i in range(7):
        create(store, f"1.2.{i}", label=f"item{i}")
    cursor = store.find_candidates(compile_query(q(ProcedureStepLabel="item*")))
    first = cursor.fetch(3)
    assert len(first) == 3
    assert store._conn.info.transaction_status == TransactionStatus.IDLE
    create(store, "1.2.9", label="item9")  # a write between pages is fine, and seen
    rest = cursor.fetch(3) + cursor.fetch(3) + cursor.fetch(3)
    labels = [decode_dataset(b).ProcedureStepLabel for b in first + rest]
    assert labels == sorted(labels) and len(labels) == 8
    assert cursor.fetch(3) == []
    cursor.close()


def test_a_workitem_with_several_matching_values_comes_once(store: PgStore) -> None:
    ds = create(store, "1.2.1")
    ds.ScheduledWorkitemCodeSequence = Sequence([code(v) for v in ("W1", "W2", "W3")])
    ds.ProcedureStepLabel = ["A1", "A2"]
    assert store.update_workitem(
        "1.2.1", ds, expected_state="SCHEDULED", expected_transaction_uid="", now=0.0
    )
    assert uids(store, q(ScheduledWorkitemCodeSequence=Sequence([q(CodeValue="W*")]))) == ["1.2.1"]
    assert uids(store, q(ProcedureStepLabel=["A1", "A2", "A*"])) == ["1.2.1"]
    cursor = store.find_candidates(compile_query(q(ProcedureStepLabel="A*")))
    assert len(cursor.fetch(10)) == 1


def test_entries_follow_changes_and_deletes(store: PgStore) -> None:
    create(store, "1.2.1")
    create(store, "1.2.2")
    store.modify_workitem(
        "1.2.1", lambda cur: check_change_state(cur, "IN PROGRESS", "1.9.1"), now=0.0
    )
    assert uids(store, q(ProcedureStepState="SCHEDULED")) == ["1.2.2"]
    assert uids(store, q(ProcedureStepState="IN PROGRESS")) == ["1.2.1"]
    assert store.delete_workitem("1.2.2")
    assert uids(store, q(ProcedureStepState="SCHEDULED")) == []
    rows = store._rows(
        "SELECT count(*) FROM ups_workitem_keys k WHERE NOT EXISTS"
        " (SELECT 1 FROM ups_workitems w WHERE w.seq = k.seq)"
    )
    assert rows == [(0,)]  # deleted with the workitem
    assert key_count(store) > 0


def test_the_unknown_name_entry_is_kept(store: PgStore) -> None:
    ds = create(store, "1.2.1")
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.PatientName = "Müller^Hans"
    store.update_workitem(
        "1.2.1", ds, expected_state="SCHEDULED", expected_transaction_uid="", now=0.0
    )
    assert key_count(store, "WHERE key = 'patient_name' AND tvalue = ''") == 1
    assert uids(store, q(PatientName="M?LLER*")) == ["1.2.1"]  # matching decides: ü is ?


def test_a_key_with_a_nul_matches_nothing(store: PgStore) -> None:
    create(store, "1.2.1", patient="A")
    for value in ("A\0B", "A\0*", ["A\0B", "A"]):
        expected = ["1.2.1"] if isinstance(value, list) else []
        assert uids(store, q(PatientID=value)) == expected  # no error from the server


# ----------------------------------------------------------------------------- migration


def test_a_version_1_database_is_migrated_and_indexed(pg_cluster: PgCluster) -> None:
    import psycopg

    from ups.services.scp.pgschema import MIGRATIONS, SCHEMA_VERSION

    url = pg_cluster.database()
    blobs = [
        encode_dataset(q(SOPInstanceUID=f"1.2.{i}", PatientID="P7", ProcedureStepState="SCHEDULED"))
        for i in (1, 2)
    ]
    with psycopg.connect(url, autocommit=True) as conn:  # what version 1 left behind
        conn.execute(MIGRATIONS[0])
        conn.execute("CREATE TABLE ups_schema (version integer NOT NULL)")
        conn.execute("INSERT INTO ups_schema VALUES (1)")
        for i, blob in zip((1, 2), blobs, strict=True):
            conn.execute(
                "INSERT INTO ups_workitems (iuid, state, patient_id, dataset)"
                " VALUES (%s, 'SCHEDULED', 'P7', %s)",
                (f"1.2.{i}", blob),
            )
    store = pg_store_at(url)
    try:
        assert key_count(store, "WHERE key = 'patient_id' AND tvalue = 'P7'") == 2
        assert uids(store, q(PatientID="P7", ProcedureStepState="SCHEDULED")) == ["1.2.1", "1.2.2"]
        create(store, "1.2.3", patient="P7")
        assert uids(store, q(PatientID="P7")) == ["1.2.1", "1.2.2", "1.2.3"]
        assert store.delete_workitem("1.2.1")
        assert key_count(store, "WHERE key = 'patient_id' AND tvalue = 'P7'") == 2
    finally:
        store.close()
    with psycopg.connect(url, autocommit=True) as conn:
        assert conn.execute("SELECT version FROM ups_schema").fetchall() == [(SCHEMA_VERSION,)]
