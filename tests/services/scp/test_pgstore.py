"""What only the PostgreSQL store has: the schema version table, and delivery leases shared
between processes (each store here is one session, as one SCP process would have)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.services.scp.pg import PgCluster
from tests.services.scp.test_store import T0, create
from ups.services.errors import ConfigError
from ups.services.scp.reports import EventReport, cancel_requested
from ups.services.scp.store import Store
from ups.services.scp.stores import open_store
from ups.services.uids import EventType


@pytest.fixture
def url(pg_cluster: PgCluster) -> str:
    return pg_cluster.database()


@pytest.fixture
def two(url: str) -> Iterator[tuple[Store, Store]]:
    first, second = open_store(url), open_store(url)
    yield first, second
    first.close()
    second.close()


def queue(store: Store, ae_title: str, *iuids: str, now: float = T0) -> None:
    events = [
        EventReport(EventType.UPS_CANCEL_REQUESTED, iuid, cancel_requested("R"), ae_title)
        for iuid in iuids
    ]
    store.enqueue_events(events, now=now)


def test_the_schema_has_a_version_and_a_newer_one_is_refused(url: str) -> None:
    import psycopg

    from ups.services.scp.pgschema import SCHEMA_VERSION

    open_store(url).close()
    open_store(url).close()  # a second start migrates nothing
    with psycopg.connect(url, autocommit=True) as conn:
        assert conn.execute("SELECT version FROM ups_schema").fetchall() == [(SCHEMA_VERSION,)]
        conn.execute("UPDATE ups_schema SET version = 99")
    with pytest.raises(ConfigError, match="schema version 99 is newer"):
        open_store(url)


def test_one_process_at_a_time_delivers_to_an_ae(two: tuple[Store, Store]) -> None:
    a, b = two
    assert a.shared and b.shared
    queue(a, "W", "1.1", "1.2")
    queue(b, "X", "2.1")
    got_a = a.lease_events("A", T0, 10.0)
    assert [e.iuid for e in got_a] == ["1.1", "1.2", "2.1"]  # both AEs, FIFO
    assert b.lease_events("B", T0 + 1, 10.0) == []  # held by A
    assert sorted(a.renew_leases("A", ["W", "X"], T0 + 5, 10.0)) == ["W", "X"]
    assert b.lease_events("B", T0 + 12, 10.0) == []  # renewed until T0 + 15
    a.ack_event(got_a[0].id)
    a.release_lease("A", "W")  # done with W for now: B may take it at once
    assert [e.iuid for e in b.lease_events("B", T0 + 13, 10.0)] == ["1.2"]
    assert a.renew_leases("A", ["W"], T0 + 13, 10.0) == []  # W is B's now


def test_an_expired_lease_is_taken_over(two: tuple[Store, Store]) -> None:
    a, b = two
    queue(a, "W", "1.1", "1.2")
    assert len(a.lease_events("A", T0, 2.0)) == 2
    # A dies without acknowledging anything: B gets every event after the expiry, in order
    assert b.lease_events("B", T0 + 1.9, 2.0) == []
    assert [e.iuid for e in b.lease_events("B", T0 + 2.0, 2.0)] == ["1.1", "1.2"]
    assert a.lease_events("A", T0 + 2.5, 2.0) == []


def test_a_subscriber_waiting_for_its_retry_is_not_leased(two: tuple[Store, Store]) -> None:
    a, b = two
    queue(a, "W", "1.1")
    queue(a, "W", "1.2", now=T0 + 1)
    first = a.lease_events("A", T0 + 1, 10.0)[0]
    a.retry_later(first.id, T0 + 30)
    a.release_lease("A", "W")
    assert b.lease_events("B", T0 + 2, 10.0) == []  # 1.2 waits behind 1.1's retry
    assert [(e.iuid, e.attempts) for e in b.lease_events("B", T0 + 30, 10.0)] == [
        ("1.1", 1),
        ("1.2", 0),
    ]


def test_a_claim_from_each_of_16_sessions_exactly_one_wins(url: str) -> None:
    import threading

    from ups.services.errors import ServiceError
    from ups.services.scp.upsstate import check_change_state

    stores = [open_store(url) for _ in range(16)]
    create(stores[0], "1.2.1")
    barrier = threading.Barrier(len(stores))
    statuses: list[int] = []

    def claim(store: Store, tuid: str) -> None:
        barrier.wait()
        try:
            store.modify_workitem(
                "1.2.1", lambda cur: check_change_state(cur, "IN PROGRESS", tuid), now=T0
            )
            statuses.append(0)
        except ServiceError as err:
            statuses.append(err.status)

    threads = [threading.Thread(target=claim, args=(s, f"1.9.{i}")) for i, s in enumerate(stores)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(statuses) == [0] + [0xC301] * 15
    for s in stores:
        s.close()
