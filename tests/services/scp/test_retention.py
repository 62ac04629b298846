"""Finished workitems are kept for the retention window, then purged by one timer (issue 12).

Within the window Table CC.1.1-2 holds for a UPS without a Deletion Lock: a repeated
COMPLETED with the Transaction UID is the B306 warning, an N-SET is C300, N-GET returns
the final state and C-FIND finds it. The window is stored time, so it survives a
restart; ``retain=0`` purges at once as before. (The same through ``dcmups scp`` and a
``kill -9``: tests/cli/test_cli_retention.py.)
"""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from tests.services.scp.test_service import (
    EventReceiver,
    cancel_reason,
    client,
    final_state_attributes,
    scp_options,
)
from tests.services.scp.test_store import NOW, T0, create
from ups.services.errors import UPSFailure
from ups.services.scp import UPSSCP
from ups.services.scp.sqliteschema import SCHEMA_VERSION
from ups.services.scp.sqlitestore import SQLiteStore
from ups.services.scp.stores import open_store
from ups.services.scp.upsstate import Transition, check_change_state
from ups.services.scu import UPSClient

pytestmark = pytest.mark.timeout(30)


async def complete(scu: UPSClient) -> tuple[str, str]:
    """A UPS created, claimed and COMPLETED; its instance and Transaction UIDs."""
    tuid = str(generate_uid())
    iuid = (await scu.create()).iuid
    assert iuid is not None
    await scu.change_state(iuid, "IN PROGRESS", tuid)
    await scu.set(iuid, final_state_attributes(), tuid)
    await scu.change_state(iuid, "COMPLETED", tuid)
    return iuid, tuid


async def assert_retained(scu: UPSClient, iuid: str, tuid: str) -> None:
    """Table CC.1.1-2 and CC.2.7 for a finished UPS the SCP still keeps."""
    assert (await scu.change_state(iuid, "COMPLETED", tuid)).status == 0xB306
    with pytest.raises(UPSFailure) as refused:
        await scu.set(iuid, final_state_attributes(), tuid)
    assert refused.value.status == 0xC300
    got = (await scu.get(iuid)).dataset
    assert got is not None and got.ProcedureStepState == "COMPLETED"
    assert "TransactionUID" not in got
    query = Dataset()
    query.SOPInstanceUID = iuid
    query.ProcedureStepState = ""
    found = [m.dataset for m in [match async for match in scu.find(query)]]
    assert [ds.ProcedureStepState for ds in found if ds is not None] == ["COMPLETED"]


async def assert_gone(scu: UPSClient, iuid: str) -> None:
    with pytest.raises(UPSFailure) as gone:
        await scu.get(iuid)
    assert gone.value.status == 0xC307


async def test_a_finished_ups_without_a_lock_is_kept_within_the_window(tmp_path: Path) -> None:
    async with UPSSCP(scp_options(tmp_path / "ups.db", {})) as scp:
        async with await client(scp.port) as scu:
            iuid, tuid = await complete(scu)
            await assert_retained(scu, iuid, tuid)
        assert scp.options.retain == 3600.0  # the default: one hour
        due = scp.retention.next_due
        loop = asyncio.get_running_loop()
        assert due is not None and 3590 < due - loop.time() <= 3600


async def test_the_timer_purges_when_the_window_ends(tmp_path: Path) -> None:
    async with UPSSCP(scp_options(tmp_path / "ups.db", {}, retain=0.5)) as scp:
        async with await client(scp.port) as scu:
            iuid, tuid = await complete(scu)
            await assert_retained(scu, iuid, tuid)
            due = scp.retention.next_due
            loop = asyncio.get_running_loop()
            assert due is not None and 0 < due - loop.time() <= 0.5
            await asyncio.sleep(due - loop.time() + 0.2)  # no request: the timer alone
            assert scp.retention.purged == 1
            assert scp.retention.next_due is None  # nothing left to wait for
            await assert_gone(scu, iuid)


async def test_retain_0_purges_at_once(tmp_path: Path) -> None:
    async with (
        UPSSCP(scp_options(tmp_path / "ups.db", {}, retain=0)) as scp,
        await client(scp.port) as scu,
    ):
        iuid, _ = await complete(scu)
        await assert_gone(scu, iuid)


async def test_a_deletion_lock_holds_beyond_the_window(tmp_path: Path) -> None:
    receiver = await EventReceiver().start()
    try:
        options = scp_options(tmp_path / "ups.db", {"WATCHER": receiver.port}, retain=0)
        async with UPSSCP(options) as scp, await client(scp.port) as scu:
            iuid = (await scu.create()).iuid
            assert iuid is not None
            await scu.subscribe("WATCHER", iuid, deletion_lock=True)
            tuid = str(generate_uid())
            await scu.change_state(iuid, "IN PROGRESS", tuid)
            await scu.set(iuid, cancel_reason(), tuid)
            await scu.change_state(iuid, "CANCELED", tuid)
            assert scp.retention.next_due is None  # locked: no timer for it
            assert (await scu.get(iuid)).dataset.ProcedureStepState == "CANCELED"  # type: ignore[union-attr]
            await scu.unsubscribe("WATCHER", iuid)  # the lock goes, the window has passed
            await assert_gone(scu, iuid)
    finally:
        await receiver.close()


async def test_the_window_survives_a_restart(tmp_path: Path) -> None:
    db = tmp_path / "ups.db"
    async with UPSSCP(scp_options(db, {})) as scp, await client(scp.port) as scu:
        iuid, tuid = await complete(scu)
    async with UPSSCP(scp_options(db, {})) as scp, await client(scp.port) as scu:
        await assert_retained(scu, iuid, tuid)
    with sqlite3.connect(str(db)) as conn:  # as if the SCP had been down for two hours
        conn.execute("UPDATE workitems SET finished = finished - 7200")
    async with UPSSCP(scp_options(db, {})) as scp, await client(scp.port) as scu:
        assert scp.retention.purged == 1  # on start, before the first request
        await assert_gone(scu, iuid)


def test_the_store_records_when_a_ups_finished(db: str) -> None:
    store = open_store(db)
    try:
        create(store, "1.2.1")
        create(store, "1.2.2")
        for iuid in ("1.2.1", "1.2.2"):
            store.modify_workitem(
                iuid, lambda cur: check_change_state(cur, "IN PROGRESS", "1.9.1"), now=T0
            )
        assert store.next_purge() is None  # nothing finished
        store.modify_workitem("1.2.1", _cancel, now=T0 + 10)
        assert store.next_purge() == T0 + 10
        store.subscribe("W", "1.2.1", deletion_lock=True, now=T0 + 11)
        assert store.next_purge() is None  # the only finished one is locked
        assert store.purge_finished(T0 + 1e6) == []
        store.subscribe("W", "1.2.1", deletion_lock=False, now=T0 + 12)
        assert store.purge_finished(T0 + 9) == []  # finished after that
        assert store.purge_finished(T0 + 10) == ["1.2.1"]
        assert store.get_workitem("1.2.1") is None and store.subscriptions("W") == []
        assert store.get_workitem("1.2.2") is not None  # IN PROGRESS: never purged
    finally:
        store.close()


def _cancel(current: Dataset | None) -> Transition:
    assert current is not None
    current.update(cancel_reason())
    return check_change_state(current, "CANCELED", "1.9.1", now=NOW)


def test_a_version_1_database_gains_the_column(tmp_path: Path) -> None:
    """A database written before retention: its finished UPSs (kept by a lock) count as
    finished long ago, so they go once nothing holds them; the rest is untouched."""
    path = tmp_path / "old.db"
    with sqlite3.connect(str(path)) as conn:
        conn.executescript(
            "CREATE TABLE workitems (iuid TEXT PRIMARY KEY, state TEXT NOT NULL,"
            " transaction_uid TEXT NOT NULL DEFAULT '', sps_start TEXT NOT NULL DEFAULT '',"
            " priority TEXT NOT NULL DEFAULT '', patient_id TEXT NOT NULL DEFAULT '',"
            " worklist_label TEXT NOT NULL DEFAULT '', dataset BLOB NOT NULL);"
            "INSERT INTO workitems (iuid, state, dataset) VALUES ('1.2.1', 'COMPLETED', x'');"
            "INSERT INTO workitems (iuid, state, dataset) VALUES ('1.2.2', 'SCHEDULED', x'');"
            "PRAGMA user_version = 1;"
        )
    store = SQLiteStore(path)
    try:
        assert store.next_purge() == 0.0
        assert store.purge_finished(T0) == ["1.2.1"]
    finally:
        store.close()
    with sqlite3.connect(str(path)) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert conn.execute("SELECT iuid FROM workitems").fetchall() == [("1.2.2",)]
