"""The Store contract on both stores (SQLite, and PostgreSQL when installed): durability,
atomic claims, subscriptions, the outbound event queue."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pydicom.dataset import Dataset

from ups.services.errors import ServiceError
from ups.services.scp.attributes import check_create
from ups.services.scp.finding import find_workitems
from ups.services.scp.reports import EventReport, cancel_requested
from ups.services.scp.store import Store
from ups.services.scp.stores import open_store
from ups.services.scp.upsstate import check_change_state
from ups.services.uids import (
    UPS_FILTERED_GLOBAL_SUBSCRIPTION_INSTANCE,
    UPS_GLOBAL_SUBSCRIPTION_INSTANCE,
    EventType,
)

NOW = datetime(2024, 1, 5, 10, 30, tzinfo=UTC)
T0 = 1_700_000_000.0


def request(label: str = "Label", patient: str = "P1") -> Dataset:
    ds = Dataset()
    ds.ProcedureStepState = "SCHEDULED"
    ds.ScheduledProcedureStepPriority = "MEDIUM"
    ds.ProcedureStepLabel = label
    ds.ScheduledProcedureStepStartDateTime = "20240105100000"
    ds.InputReadinessState = "READY"
    ds.PatientID = patient
    return ds


@pytest.fixture
def store(db: str) -> Iterator[Store]:
    s = open_store(db)
    yield s
    s.close()


def create(store: Store, iuid: str, **kw: str) -> Dataset:
    created = check_create(request(**kw), iuid=iuid, now=NOW, default_worklist_label="WL")
    store.create_workitem(created.dataset, events=created.events, now=T0)
    return created.dataset


def test_is_a_store(store: Store) -> None:
    assert store.get_workitem("nope") is None


def test_create_get_duplicate(store: Store) -> None:
    ds = create(store, "1.2.1")
    got = store.get_workitem("1.2.1")
    assert got is not None and got.ProcedureStepLabel == ds.ProcedureStepLabel
    with pytest.raises(ServiceError) as err:
        create(store, "1.2.1")
    assert err.value.status == 0x0111


def test_find(store: Store) -> None:
    create(store, "1.2.1", patient="P1")
    create(store, "1.2.2", patient="P2", label="Other")
    q = Dataset()
    q.PatientID = "P2"
    q.ProcedureStepState = "SCHEDULED"
    assert [d.SOPInstanceUID for d in find_workitems(store, q)] == ["1.2.2"]
    q = Dataset()
    q.ProcedureStepLabel = "L*"
    assert [d.SOPInstanceUID for d in find_workitems(store, q)] == ["1.2.1"]
    q = Dataset()
    q.SOPInstanceUID = ["1.2.2", "1.2.1"]
    assert len(find_workitems(store, q)) == 2
    assert len(find_workitems(store, Dataset(), limit=1)) == 1


def test_concurrent_claims_exactly_one_wins(db: str) -> None:
    store = open_store(db)
    create(store, "1.2.1")
    barrier = threading.Barrier(2)
    results: list[object] = []

    def claim(tuid: str) -> None:
        barrier.wait()
        try:
            store.modify_workitem(
                "1.2.1", lambda cur: check_change_state(cur, "IN PROGRESS", tuid), now=T0
            )
            results.append(tuid)
        except ServiceError as err:
            results.append(err.status)

    threads = [threading.Thread(target=claim, args=(f"1.9.{i}",)) for i in (1, 2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    winners = [r for r in results if isinstance(r, str)]
    assert len(winners) == 1 and results.count(0xC301) == 1
    got = store.get_workitem("1.2.1")
    assert got is not None and got.TransactionUID == winners[0]
    store.close()


def test_concurrent_claims_across_connections(db: str) -> None:
    """Eight connections (for PostgreSQL: eight sessions, as eight processes would have)."""
    stores = [open_store(db) for _ in range(8)]
    create(stores[0], "1.2.1")
    barrier = threading.Barrier(len(stores))
    results: list[object] = []

    def claim(s: Store, tuid: str) -> None:
        barrier.wait()
        try:
            s.modify_workitem(
                "1.2.1", lambda cur: check_change_state(cur, "IN PROGRESS", tuid), now=T0
            )
            results.append(tuid)
        except ServiceError as err:
            results.append(err.status)

    threads = [
        threading.Thread(target=claim, args=(s, f"1.9.{i}")) for i, s in enumerate(stores, 1)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(results) == 8 and results.count(0xC301) == 7
    winners = [r for r in results if isinstance(r, str)]
    assert len(winners) == 1
    got = stores[1].get_workitem("1.2.1")
    assert got is not None and got.TransactionUID == winners[0]
    for s in stores:
        s.close()


def test_compare_and_set(store: Store) -> None:
    ds = create(store, "1.2.1")
    one = check_change_state(ds, "IN PROGRESS", "1.9.1").dataset
    two = check_change_state(ds, "IN PROGRESS", "1.9.2").dataset
    assert one is not None and two is not None
    assert store.update_workitem(
        "1.2.1", one, expected_state="SCHEDULED", expected_transaction_uid="", now=T0
    )
    assert not store.update_workitem(
        "1.2.1", two, expected_state="SCHEDULED", expected_transaction_uid="", now=T0
    )


def test_specific_subscription_and_events(store: Store) -> None:
    create(store, "1.2.1")
    with pytest.raises(ServiceError) as err:
        store.subscribe("WATCH", "9.9.9", deletion_lock=False, now=T0)
    assert err.value.status == 0xC307
    assert store.subscribe("WATCH", "1.2.1", deletion_lock=True, now=T0) == 1
    due = store.due_events(T0)
    assert [(e.ae_title, e.event_type, e.info.ProcedureStepState) for e in due] == [
        ("WATCH", EventType.UPS_STATE_REPORT, "SCHEDULED")
    ]
    store.ack_event(due[0].id)
    store.modify_workitem(
        "1.2.1", lambda cur: check_change_state(cur, "IN PROGRESS", "1.9.1"), now=T0 + 1
    )
    due = store.due_events(T0 + 1)
    assert [e.info.ProcedureStepState for e in due] == ["IN PROGRESS"]
    assert store.is_locked("1.2.1")
    assert [s.ae_title for s in store.subscribers_for("1.2.1")] == ["WATCH"]


def test_global_subscriptions(store: Store) -> None:
    create(store, "1.2.1")
    assert store.subscribe("G", UPS_GLOBAL_SUBSCRIPTION_INSTANCE, deletion_lock=True, now=T0) == 1
    assert store.subscribe("N", UPS_GLOBAL_SUBSCRIPTION_INSTANCE, deletion_lock=False, now=T0) == 0
    keys = Dataset()
    keys.PatientID = "P2"
    store.subscribe(
        "F", UPS_FILTERED_GLOBAL_SUBSCRIPTION_INSTANCE, deletion_lock=False, now=T0, match_keys=keys
    )
    create(store, "1.2.2", patient="P2")
    assert [s.ae_title for s in store.subscribers_for("1.2.1")] == ["G", "N"]
    assert [s.ae_title for s in store.subscribers_for("1.2.2")] == ["F", "G", "N"]
    created_reports = [e for e in store.due_events(T0) if e.iuid == "1.2.2"]
    assert sorted(e.ae_title for e in created_reports) == ["F", "G", "N"]
    store.suspend_global("N")
    create(store, "1.2.3")
    assert [s.ae_title for s in store.subscribers_for("1.2.3")] == ["G"]
    assert [s.ae_title for s in store.subscribers_for("1.2.1")] == ["G", "N"]
    store.unsubscribe("G", UPS_GLOBAL_SUBSCRIPTION_INSTANCE)
    assert store.subscriptions("G") == []
    assert "N" in store.all_subscriber_aes()


def test_deletion_lock(store: Store) -> None:
    create(store, "1.2.1")
    store.subscribe("W", "1.2.1", deletion_lock=True, now=T0)
    store.modify_workitem(
        "1.2.1", lambda cur: check_change_state(cur, "IN PROGRESS", "1.9.1"), now=T0
    )
    assert store.purge_finished(T0 + 1e9) == []
    assert not store.delete_workitem("1.2.1")
    store.subscribe("W", "1.2.1", deletion_lock=False, now=T0)
    assert not store.is_locked("1.2.1")
    assert store.purge_finished(T0 + 1e9) == []  # not final yet
    assert store.delete_workitem("1.2.1")
    assert store.get_workitem("1.2.1") is None


def test_event_queue_retry_is_fifo_per_ae(store: Store) -> None:
    events = [
        EventReport(EventType.UPS_CANCEL_REQUESTED, "1.2.1", cancel_requested("R"), "A"),
        EventReport(EventType.UPS_CANCEL_REQUESTED, "1.2.2", cancel_requested("R"), "A"),
        EventReport(EventType.UPS_CANCEL_REQUESTED, "1.2.3", cancel_requested("R"), "B"),
    ]
    assert store.enqueue_events(events, now=T0) == 3
    due = store.due_events(T0)
    assert [e.iuid for e in due] == ["1.2.1", "1.2.2", "1.2.3"]
    store.retry_later(due[0].id, T0 + 30)
    assert [e.iuid for e in store.due_events(T0 + 1)] == ["1.2.3"]
    assert store.next_event_time() == T0
    store.ack_event(due[2].id)
    assert store.next_event_time() == T0
    later = store.due_events(T0 + 30)
    assert [(e.iuid, e.attempts) for e in later] == [("1.2.1", 1), ("1.2.2", 0)]
    for e in later:
        store.ack_event(e.id)
    assert store.next_event_time() is None


CHILD = textwrap.dedent(
    """
    import sys
    from datetime import UTC, datetime
    from pydicom.dataset import Dataset
    from ups.services.scp.stores import open_store
    from ups.services.scp.attributes import check_create

    store = open_store(sys.argv[1])
    ds = Dataset()
    ds.ProcedureStepState = "SCHEDULED"
    ds.ScheduledProcedureStepPriority = "LOW"
    ds.ProcedureStepLabel = "durable"
    ds.ScheduledProcedureStepStartDateTime = "20240105100000"
    ds.InputReadinessState = "READY"
    created = check_create(ds, iuid="1.2.777", now=datetime.now(UTC))
    store.create_workitem(created.dataset, events=created.events, now=1.0)
    store.enqueue_events(created.events[:1], now=1.0)
    sys.stdout.write("committed\\n")
    sys.stdout.flush()
    import time
    time.sleep(60)
    """
)


def test_acknowledged_change_survives_sigkill(db: str) -> None:
    setup = open_store(db)
    setup.subscribe("W", UPS_GLOBAL_SUBSCRIPTION_INSTANCE, deletion_lock=False, now=0.0)
    setup.close()
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[2]))
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, db], stdout=subprocess.PIPE, text=True, env=env
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "committed"
        child.send_signal(signal.SIGKILL)
    finally:
        child.wait(timeout=10)
        if child.stdout is not None:
            child.stdout.close()
    reopened = open_store(db)
    got = reopened.get_workitem("1.2.777")
    assert got is not None and got.ProcedureStepLabel == "durable"
    assert [s.ae_title for s in reopened.subscribers_for("1.2.777")] == ["W"]
    assert len(reopened.due_events(2.0)) == 2  # creation report + explicit one
    reopened.close()
