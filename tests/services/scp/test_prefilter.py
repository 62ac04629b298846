"""The C-FIND prefilter: index entries, query conditions, and the promise that SQL never
drops a true match (a property test against matching every workitem in Python)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from tests.services.scp.strategies import pool_of, queries, workitems
from ups.services.errors import ServiceError
from ups.services.scp.finding import find_workitems
from ups.services.scp.matching import matches
from ups.services.scp.prefilter import (
    UNKNOWN,
    Between,
    Condition,
    Equal,
    Pattern,
    compile_query,
    index_entries,
)
from ups.services.scp.sqlitestore import SQLiteStore
from ups.services.scp.store import Store

# Odd values on purpose (an invalid DT, a PN of four component groups): pydicom warns.
pytestmark = [
    pytest.mark.filterwarnings("ignore:Invalid value for VR"),
    pytest.mark.filterwarnings("ignore:The number of PN components"),
    pytest.mark.filterwarnings("ignore:The value length"),
]


def ds(**kw: object) -> Dataset:
    out = Dataset()
    for key, value in kw.items():
        setattr(out, key, value)
    return out


def code(value: str) -> Dataset:
    return ds(CodeValue=value, CodingSchemeDesignator="99L")


# ----------------------------------------------------------------------------- entries


def test_entries_strip_fold_and_flatten() -> None:
    item = ds(HumanPerformerCodeSequence=Sequence([code("DR1"), code("DR2")]))
    entries = index_entries(
        ds(
            PatientID=" P1 ",
            PatientName="Müller^Hans=ミュラー",
            ProcedureStepLabel=["A", "B"],
            ScheduledProcedureStepStartDateTime="20240105",
            ScheduledWorkitemCodeSequence=Sequence([code("W1")]),
            ScheduledHumanPerformersSequence=Sequence([item]),
        )
    )
    assert ("patient_id", "P1") in entries
    assert {("label", "A"), ("label", "B")} <= entries
    assert ("patient_name", "müller^hans=ミュラー") in entries
    assert ("patient_name", "müller^hans") in entries
    assert ("patient_name", UNKNOWN) in entries  # not ASCII: every PN pattern accepts it
    assert ("workitem_code", "W1") in entries
    assert {("performer", "DR1"), ("performer", "DR2")} <= entries
    assert any(key == "sps_start" and isinstance(v, int) for key, v in entries)


def test_a_malformed_date_time_has_no_entry() -> None:
    entries = index_entries(ds(ScheduledProcedureStepStartDateTime="garbage"))
    assert not [e for e in entries if e[0] == "sps_start"]


# ----------------------------------------------------------------------------- conditions


def conditions(**kw: object) -> dict[str, tuple[object, ...]]:
    return {c.key: c.terms for c in compile_query(ds(**kw)).conditions}


def test_query_forms() -> None:
    assert conditions(PatientID="P1") == {"patient_id": (Equal("P1"),)}
    assert conditions(PatientID="") == {}  # universal
    assert conditions(ProcedureStepLabel="item77*") == {"label": (Pattern("item77*"),)}
    assert conditions(PatientID=["A", "B"]) == {"patient_id": (Equal("A"), Equal("B"))}
    assert conditions(PatientName="DOE^JOHN^^") == {"patient_name": (Equal("doe^john"),)}
    assert conditions(PatientName="Doe*") == {"patient_name": (Pattern("doe*"), Equal(UNKNOWN))}
    assert conditions(PatientName="Mü*") == {}  # re's case rules: matching decides
    (between,) = conditions(ScheduledProcedureStepStartDateTime="20240105-20240105")["sps_start"]
    assert isinstance(between, Between) and between.low is not None and between.high is not None
    assert between.high - between.low == 86_400_000_000 - 1
    assert conditions(SOPInstanceUID="1.2*") == {"iuid": (Equal("1.2*"),)}  # UI: no wild card


def test_sequence_keys() -> None:
    assert conditions(ScheduledWorkitemCodeSequence=Sequence([code("W1"), code("W2")])) == {
        "workitem_code": (Equal("W1"), Equal("W2"))
    }
    # an item that leaves the code universal makes the key unconstrained
    other = ds(CodingSchemeDesignator="DCM")
    assert conditions(ScheduledWorkitemCodeSequence=Sequence([code("W1"), other])) == {}
    assert conditions(ScheduledWorkitemCodeSequence=Sequence([ds(CodeValue="")])) == {}
    performer = ds(HumanPerformerCodeSequence=Sequence([code("DR1")]))
    assert conditions(ScheduledHumanPerformersSequence=Sequence([performer])) == {
        "performer": (Equal("DR1"),)
    }


def test_another_vr_is_left_to_matching() -> None:
    q = Dataset()
    q.add_new(0x00100010, "LO", "DOE")  # PatientName sent as LO: matched as LO
    assert compile_query(q).conditions == ()


def test_a_malformed_range_is_refused_before_any_match() -> None:
    with pytest.raises(ServiceError) as err:
        compile_query(ds(ScheduledProcedureStepStartDateTime="2024-13-01"))
    assert err.value.status == 0xA900


def test_patterns_escape_for_glob_and_like() -> None:
    p = Pattern("a[b]%_*?")
    assert p.glob() == "a[[]b]%_*?"
    assert p.like() == "a[b]\\%\\_%_"
    assert p.prefix() == "a[b]%_"
    assert Pattern("*x").prefix() == ""


def test_driver_prefers_the_selective_key() -> None:
    pre = compile_query(ds(ProcedureStepState="SCHEDULED", PatientID="P1"))
    assert pre.driver() == Condition("patient_id", (Equal("P1"),))
    assert [c.key for c in pre.others()] == ["state"]


# ----------------------------------------------------------------------------- the promise


@pytest.fixture(scope="module")
def memory_store() -> Iterator[SQLiteStore]:
    store = SQLiteStore(":memory:")
    yield store
    store.close()


def _load(store: SQLiteStore, items: list[Dataset]) -> None:
    with store._tx() as db:
        db.execute("DELETE FROM workitems")
    for item in items:
        store.create_workitem(item, now=0.0)


ITEMS = st.lists(st.integers(0, 10_000), min_size=1, max_size=8, unique=True).flatmap(
    lambda uids: st.tuples(*(workitems(f"1.{uid}") for uid in uids))
)
"""A few workitems with distinct UIDs (the property tests' worklist)."""


def keeps_every_true_match(store: Store, items: tuple[Dataset, ...], query: Dataset) -> None:
    """On ``store`` holding ``items`` (only): prefiltered by SQL then matched == every
    workitem matched in Python, each once (the body of the property test, per store)."""
    stored = find_workitems(store, Dataset())
    assert len(stored) == len(items)
    try:
        expected = [str(d.SOPInstanceUID) for d in stored if matches(d, query)]
    except ServiceError:
        with pytest.raises(ServiceError):
            find_workitems(store, query)
        return
    found = [str(d.SOPInstanceUID) for d in find_workitems(store, query)]
    assert sorted(found) == sorted(expected)
    assert len(set(found)) == len(found)


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(items=ITEMS, data=st.data())
def test_the_prefilter_never_drops_a_true_match(
    memory_store: SQLiteStore, items: tuple[Dataset, ...], data: st.DataObject
) -> None:
    """Prefiltered by SQL then matched == every workitem matched in Python, each once
    (on PostgreSQL: tests/services/scp/test_pgfind.py)."""
    query = data.draw(queries(tuple(pool_of(items))), label="query")
    _load(memory_store, list(items))
    keeps_every_true_match(memory_store, items, query)


_NAMES = ["ıa", "İa", "Ka", "ſa", "ßa", "ǅa", "Σσς", "DOE^JOHN", "Doe^John=ドウ", "doe"]


@st.composite
def _name_pattern(draw: st.DrawFn) -> str:
    base = draw(st.sampled_from(_NAMES).flatmap(lambda n: st.sampled_from([n, n.upper()])))
    chars = [draw(st.sampled_from([c, c.lower(), "*", "?"])) for c in base]
    return "".join(chars) + draw(st.sampled_from(["", "*", "?"]))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(names=st.lists(st.sampled_from(_NAMES), min_size=1, max_size=6), key=_name_pattern())
def test_pn_case_rules_never_drop_a_true_match(names: list[str], key: str) -> None:
    """PN wild cards match with ``re``'s case rules, exact PN keys with ``casefold``: the
    prefilter keeps every name either accepts (ı, İ, K, ſ, ß, ǅ, final sigma...)."""
    store = SQLiteStore(":memory:")
    try:
        for i, name in enumerate(names):
            item = Dataset()
            item.SpecificCharacterSet = "ISO_IR 192"
            item.SOPInstanceUID = f"1.{i}"
            item.PatientName = name
            store.create_workitem(item, now=0.0)
        query = Dataset()
        query.PatientName = key
        stored = find_workitems(store, Dataset())
        expected = sorted(str(d.SOPInstanceUID) for d in stored if matches(d, query))
        found = sorted(str(d.SOPInstanceUID) for d in find_workitems(store, query))
    finally:
        store.close()
    assert found == expected
